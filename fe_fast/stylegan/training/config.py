"""Configuration of StyleGAN2 training (thesis ch. 5.2.2-5.3.2), grouped by concern.

``TrainConfig`` holds one sub-config per concern (``dataset``, ``G``, ``D``, ``opt``, ``reg``,
``log``) plus the run's own settings (output folder, seed, device, resume, limits). Defaults
follow the thesis (§5.3.2) / StyleGAN2 config-f.

Flat names: every setting also has the single name it had before the grouping (``FLAT_FIELDS``:
``d_scales`` -> ``D.scales``, ``data`` -> ``dataset.source``, ...). ``TrainConfig(**flat)``,
``train(**flat)`` and ``dataclasses.replace(cfg, **flat)`` accept them, and ``to_dict()`` writes
them: that flat dict is what checkpoints store as ``train_config``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from fe_fast.stylegan.discriminator import CRITICS

__all__ = ["DatasetConfig", "GeneratorConfig", "DiscriminatorConfig", "OptimizerConfig",
           "RegularisationConfig", "LoggingConfig", "TrainConfig", "FLAT_FIELDS", "PRESETS", "preset"]


@dataclass
class DatasetConfig:
    source: str = "toyfaces"          # "toyfaces" or a folder / .zip of images
    resolution: int = 32              # of the images, G and D
    toy_images: int = 20000           # size of the toy-face training set
    xflip: bool = False
    workers: int = 0                  # data loader worker processes


@dataclass
class GeneratorConfig:
    z_dim: int = 512
    w_dim: int = 512
    n_mlp: int = 8
    lr_mlp: float = 0.01              # mapping network's learning-rate multiplier (StyleGAN: 0.01)
    channel_multiplier: float = 2     # channel_multiplier, channel_base, channel_max: D's too
    channel_base: int | None = None
    channel_max: int = 512
    style_mixing: float = 0.9
    noise_mode: str = "random"        # G's noise inputs while training: "random" (StyleGAN2) or "none" (off)
    ema_img: float = 10_000.0         # G EMA half-life in images
    ema_rampup: float | None = 0.05   # half-life <= rampup * images seen (helps short runs)
    w_avg_beta: float = 0.995         # tracked average w (truncation)


@dataclass
class DiscriminatorConfig:
    channel_base: int | None = None   # D's channel_base when it differs from G's (None: the same)
    mbstd_group: int = 4              # D's minibatch-stddev group (StyleGAN2: 4)
    attr_weight: float = 0.0          # > 0: D also predicts the toy faces' 13 attributes of real images (aux. BCE)
    scales: int = 1                   # > 1: multi-scale critic (full, 1/2, 1/4 ... resolution; pix2pixHD)
    arch: str = "resnet"              # "resnet": StyleGAN2 critic; "plain": PlainDiscriminator (2x input, plain convs)


@dataclass
class OptimizerConfig:
    batch: int = 32                   # global batch (split over processes)
    total_img: int = 100_000          # stop after this many real images shown to D
    lr: float = 0.002
    d_lr: float | None = None         # D's Adam learning rate when it differs from G's (None: lr)
    lr_rampdown: float = 0.0          # last fraction of the run over which both learning rates fall to 0 (cosine)
    betas: tuple = (0.0, 0.99)


@dataclass
class RegularisationConfig:
    loss: str = "wgan-gp"             # "wgan-gp" (eq. 5-4, gradient penalties) or "logistic" (+ lazy R1)
    gp_lambda: float = 10.0
    r1_gamma: float = 10.0
    r1_every: int = 16
    path: str = "pl"                  # "pl" (StyleGAN2 path-length regulariser), "vgg", "none"
    path_alpha: float = 0.5           # alpha of eq. 5-7
    path_epsilon: float = 0.1         # epsilon of eq. 5-6
    path_every: int = 4
    path_batch_shrink: int = 2
    vgg_weights: str | None = None


@dataclass
class LoggingConfig:
    log_every: int = 10               # steps
    sample_every: int = 5_000         # images; 0 = never
    checkpoint_every: int = 10_000    # images; 0 = only at the end
    snapshot_every: int = 0           # images between kept G_ema copies (snapshots/G_ema_<img>.safetensors); 0 = none
    fid_every: int = 0                # images; 0 = never
    fid_images: int = 1000
    inception_weights: str | None = None
    progress: bool = True


_GROUPS = ("dataset", "G", "D", "opt", "reg", "log")

#: Flat name (the one a checkpoint's ``train_config`` and the CLI use) -> (group or None, field),
#: in the order ``to_dict`` writes them.
FLAT_FIELDS = {
    "out_dir": (None, "out_dir"), "data": ("dataset", "source"), "resolution": ("dataset", "resolution"),
    "toy_images": ("dataset", "toy_images"), "xflip": ("dataset", "xflip"),
    **{k: ("G", k) for k in ("z_dim", "w_dim", "n_mlp", "lr_mlp", "channel_multiplier", "channel_base",
                             "channel_max")},
    "d_channel_base": ("D", "channel_base"), "mbstd_group": ("D", "mbstd_group"),
    "d_attr_weight": ("D", "attr_weight"), "d_scales": ("D", "scales"), "d_arch": ("D", "arch"),
    **{k: ("opt", k) for k in ("batch", "total_img", "lr", "d_lr", "lr_rampdown", "betas")},
    **{k: ("reg", k) for k in ("loss", "gp_lambda", "r1_gamma", "r1_every", "path", "path_alpha",
                               "path_epsilon", "path_every", "path_batch_shrink", "vgg_weights")},
    **{k: ("G", k) for k in ("style_mixing", "noise_mode", "ema_img", "ema_rampup", "w_avg_beta")},
    "seed": (None, "seed"), "device": (None, "device"), "workers": ("dataset", "workers"),
    **{k: ("log", k) for k in ("log_every", "sample_every", "checkpoint_every", "snapshot_every",
                               "fid_every", "fid_images", "inception_weights")},
    "resume": (None, "resume"), "progress": ("log", "progress"), "max_steps": (None, "max_steps"),
    "max_seconds": (None, "max_seconds"),
}


@dataclass(init=False)
class TrainConfig:
    """Every knob of ``train``. Keyword arguments: the sub-configs and run settings below, and any
    flat name of ``FLAT_FIELDS`` (applied after the sub-configs, so ``dataclasses.replace(cfg,
    lr=...)`` works). Sub-configs given are copied, never modified."""

    out_dir: str = "stylegan-run"
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    G: GeneratorConfig = field(default_factory=GeneratorConfig)
    D: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    opt: OptimizerConfig = field(default_factory=OptimizerConfig)
    reg: RegularisationConfig = field(default_factory=RegularisationConfig)
    log: LoggingConfig = field(default_factory=LoggingConfig)
    seed: int = 0
    device: str = "auto"              # "auto", "cpu", "cuda", "cuda:1", ...
    resume: str | None = None         # checkpoint path or "auto" (out_dir/checkpoint.pt if present)
    max_steps: int | None = None      # hard step limit (tests, benchmarks)
    max_seconds: float | None = None  # wall-clock limit of this run (checkpoint written at the end)

    def __init__(self, **kwargs):
        for f in dataclasses.fields(self):
            if f.name in kwargs:
                value = kwargs.pop(f.name)
                if f.name in _GROUPS:
                    value = dataclasses.replace(value)
            else:
                value = f.default_factory() if f.default is dataclasses.MISSING else f.default
            setattr(self, f.name, value)
        for name, value in kwargs.items():
            if name not in FLAT_FIELDS:
                raise TypeError(f"TrainConfig got an unexpected keyword argument {name!r}")
            group, attr = FLAT_FIELDS[name]
            setattr(getattr(self, group), attr, value)

    def to_dict(self) -> dict:
        """The flat dict of every setting (``FLAT_FIELDS`` names), as checkpoints store it."""
        d = {name: getattr(self if group is None else getattr(self, group), attr)
             for name, (group, attr) in FLAT_FIELDS.items()}
        d["betas"] = list(d["betas"])
        return d

    def validate(self):
        data, G, D, opt, reg = self.dataset, self.G, self.D, self.opt, self.reg
        if reg.loss not in ("wgan-gp", "logistic"):
            raise ValueError(f"loss must be 'wgan-gp' or 'logistic', got {reg.loss!r}")
        if reg.path not in ("pl", "vgg", "none"):
            raise ValueError(f"path must be 'pl', 'vgg' or 'none', got {reg.path!r}")
        if reg.path == "vgg" and not reg.vgg_weights:
            raise ValueError("path='vgg' (thesis eq. 5-6 with D_VGG) needs vgg_weights: a torchvision VGG-16 "
                             "state dict file (e.g. vgg16-397923af.pth); use path='pl' for the weight-free stand-in")
        if self.max_seconds is not None and not self.max_seconds > 0:
            raise ValueError(f"max_seconds must be > 0, got {self.max_seconds}")
        if not D.attr_weight >= 0:
            raise ValueError(f"d_attr_weight must be >= 0, got {D.attr_weight}")
        if D.attr_weight > 0 and (data.source != "toyfaces" or D.scales > 1):
            raise ValueError("d_attr_weight > 0 needs labelled data (data='toyfaces') and a single-scale critic")
        if G.noise_mode not in ("random", "none"):
            raise ValueError(f"noise_mode must be 'random' or 'none', got {G.noise_mode!r}")
        if reg.r1_every < 1 or reg.path_every < 1:
            raise ValueError(f"r1_every and path_every must be >= 1, got {reg.r1_every}, {reg.path_every}")
        if D.channel_base is not None and D.channel_base < 1:
            raise ValueError(f"d_channel_base must be >= 1 or None, got {D.channel_base}")
        if not isinstance(D.scales, int) or D.scales < 1 or data.resolution >> (D.scales - 1) < 8:
            raise ValueError(f"d_scales must be an int >= 1 with resolution / 2**(d_scales-1) >= 8, got "
                             f"{D.scales!r} at resolution {data.resolution}")
        if not G.lr_mlp > 0:
            raise ValueError(f"lr_mlp must be > 0, got {G.lr_mlp}")
        if D.mbstd_group < 1:
            raise ValueError(f"mbstd_group must be >= 1, got {D.mbstd_group}")
        if not 0 <= opt.lr_rampdown <= 1:
            raise ValueError(f"lr_rampdown must be in [0, 1], got {opt.lr_rampdown}")
        if opt.d_lr is not None and not opt.d_lr > 0:
            raise ValueError(f"d_lr must be > 0 or None, got {opt.d_lr}")
        if D.arch not in CRITICS:
            raise ValueError(f"d_arch must be one of {sorted(CRITICS)}, got {D.arch!r}")
        if D.arch == "plain" and D.scales > 1:
            raise ValueError("d_arch='plain' is single-scale (d_scales=1)")
        if opt.batch < 1 or opt.total_img < 1:
            raise ValueError("batch and total_img must be >= 1")
        if not 0 < reg.path_epsilon < 1:
            raise ValueError(f"path_epsilon must be in (0, 1), got {reg.path_epsilon}")
        return self


#: Named recipes as the flat settings they change (``fe-fast train-gan --preset NAME``: options
#: given explicitly still win; ``preset(NAME)`` gives the ``TrainConfig``).
#: ``toy32``: the CPU recipe for 32x32 toy faces: narrow
#: networks (G channels min(1024 // r, 64): 64 at 4, 8 and 16, 32 at 32; the critic min(512 // r, 64)),
#: z = w = 128, two mapping layers, the non-saturating logistic loss with lazy R1 (gamma 2) instead of
#: the thesis's WGAN-GP (two double-backward gradient penalties per step), no path regulariser and no
#: style mixing, batch 32, lr 0.003 falling to 0 over the last quarter of the run, G EMA half-life
#: 10k images, 10k pre-rendered faces, and the plain critic (``PlainDiscriminator``, lr 0.001), the
#: first that sees the toy faces' bangs fringe. The thesis defaults of :class:`TrainConfig` are unchanged.
PRESETS = {
    "toy32": dict(resolution=32, z_dim=128, w_dim=128, n_mlp=2, channel_max=64, channel_base=1024,
                  d_channel_base=512, batch=32, lr=0.003, lr_rampdown=0.25, loss="logistic", r1_gamma=2.0,
                  r1_every=16, path="none", style_mixing=0.0, ema_img=10000.0, toy_images=10000,
                  d_arch="plain", d_lr=0.001),
}


def preset(name: str, **overrides) -> TrainConfig:
    """The ``TrainConfig`` of recipe ``name`` (``PRESETS``), with flat-name ``overrides``."""
    if name not in PRESETS:
        raise ValueError(f"unknown training preset {name!r}; choose one of {', '.join(PRESETS)}")
    return TrainConfig(**{**PRESETS[name], **overrides})
