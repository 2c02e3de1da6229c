"""StyleGAN2 training (thesis ch. 5.2.2-5.3.2, eq. 5-4 .. 5-7): the names of
``fe_fast.stylegan.training`` under the module path they have always had, and the entry point of
``torchrun -m fe_fast.stylegan.train`` (the options of ``fe-fast train-gan``).

The code lives in ``fe_fast.stylegan.training``: ``config`` (grouped settings, presets),
``dataset``, ``loss``, ``distributed``, ``state`` (checkpoint), ``callbacks`` and ``loop``.
"""
from __future__ import annotations

from fe_fast.stylegan.training.callbacks import save_image_grid
from fe_fast.stylegan.training.config import (FLAT_FIELDS, PRESETS, DatasetConfig, DiscriminatorConfig,
                                              GeneratorConfig, LoggingConfig, OptimizerConfig,
                                              RegularisationConfig, TrainConfig, preset)
from fe_fast.stylegan.training.dataset import IMAGE_EXTS, ImageFolderDataset, ToyFaceImages, make_dataset
from fe_fast.stylegan.training.loop import build_networks as _build
from fe_fast.stylegan.training.loop import lr_rampdown_factor, train
from fe_fast.stylegan.training.loss import (logistic_d_loss, path_length_penalty, path_loss, slerp,
                                            wgan_gp_d_loss)
from fe_fast.stylegan.training.loss import mix_ws as _mix_ws

__all__ = ["TrainConfig", "train", "lr_rampdown_factor", "slerp", "wgan_gp_d_loss", "logistic_d_loss", "path_loss",
           "path_length_penalty", "ImageFolderDataset", "ToyFaceImages", "make_dataset", "save_image_grid",
           "PRESETS", "preset", "FLAT_FIELDS", "DatasetConfig", "GeneratorConfig", "DiscriminatorConfig",
           "OptimizerConfig", "RegularisationConfig", "LoggingConfig", "IMAGE_EXTS", "_build", "_mix_ws"]


def main_from_env():  # pragma: no cover - used by `python -m fe_fast.stylegan.train` under torchrun
    import sys

    from fe_fast.cli import main

    sys.exit(main(["train-gan", *sys.argv[1:]]))


if __name__ == "__main__":  # pragma: no cover
    main_from_env()
