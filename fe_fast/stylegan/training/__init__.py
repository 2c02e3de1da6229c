"""StyleGAN2 training with the thesis's losses (ch. 5.2.2-5.3.2, eq. 5-4 .. 5-7), split by concern:

- ``config``: ``TrainConfig`` with grouped sub-configs (dataset, G, D, optimiser, regularisation,
  logging), the flat-name mapping checkpoints and the CLI use, and the named ``PRESETS``;
- ``dataset``: image folder / zip and toy-face datasets, the sharded stream of real batches;
- ``loss``: WGAN-GP (eq. 5-4/5-5), logistic + lazy R1, the path loss (eq. 5-6, slerp eq. A-4)
  and its path-length stand-in, style mixing;
- ``distributed``: the process group under ``torchrun`` (explicit gradient averaging);
- ``state``: the networks, optimisers and counters a run carries, and its checkpoint;
- ``callbacks``: metrics log, sample grids, FID, snapshots, checkpoints;
- ``loop``: ``d_step`` / ``g_step`` / ``ema`` and ``train``.
"""
from fe_fast.stylegan.training.config import PRESETS, TrainConfig, preset
from fe_fast.stylegan.training.loop import train

__all__ = ["train", "TrainConfig", "PRESETS", "preset"]
