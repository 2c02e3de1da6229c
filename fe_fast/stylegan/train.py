"""StyleGAN2 training with the thesis's losses (ch. 5.2.2-5.2.3, eq. 5-4 .. 5-7).

* Adversarial loss, default the thesis's WGAN-GP (eq. 5-4, lambda = 10) with gradient penalties
  on real AND generated images: the critic minimises
  ``E D(G(z)) - E D(x) + lambda [E(||grad_x D(x)|| - 1)^2 + E(||grad D(x~)|| - 1)^2]`` and the
  generator minimises ``-E D(G(z))`` (eq. 5-5: min_G max_D). Option ``loss="logistic"``: the
  StyleGAN2 non-saturating logistic loss with lazy R1 on real images.
* Path loss ``L_w`` (eq. 5-6): ``E[D_F(S(slerp(w1, w2; t)), S(slerp(w1, w2; t + eps))) / eps^2]``
  with slerp of thesis eq. A-4 and a pluggable feature network F (VGG-16 when the user gives its
  weights file). Default stand-in (no external weights): the StyleGAN2 path-length regulariser
  ``E(||J_w^T y|| - a)^2``. Both are lazy (every ``path_every`` steps, scaled by the interval).
* Total generator objective eq. 5-7: ``L_total = L_gan + alpha L_w`` with alpha = 0.5.
* Adam, lr 0.002, betas (0, 0.99) for G and D (thesis §5.3.2), G EMA, style mixing, tracked
  average w for truncation.
* Data: an image folder or zip at any resolution (centre crop + resize), or the toy face world.
* Several processes under ``torchrun`` (gloo on CPU, nccl on GPU): parameters broadcast from rank 0,
  gradients averaged with one all-reduce per step, data sharded by rank. This is
  DistributedDataParallel's gradient averaging done explicitly (as NVlabs' training loop does):
  the ``DistributedDataParallel`` wrapper does not support the ``torch.autograd.grad`` calls of the
  gradient penalties and the path-length regulariser.
* Checkpoint + resume, tqdm progress, PNG sample grids every N images, JSONL metrics log, FID.
"""
from __future__ import annotations

import copy
import dataclasses
import io
import json
import math
import os
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from fe_fast.stylegan.discriminator import CRITICS, MultiScaleDiscriminator
from fe_fast.stylegan.networks import Generator

__all__ = ["TrainConfig", "train", "lr_rampdown_factor", "slerp", "wgan_gp_d_loss", "logistic_d_loss", "path_loss",
           "path_length_penalty", "ImageFolderDataset", "ToyFaceImages", "make_dataset", "save_image_grid"]

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


# ------------------------------------------------------------------------------------------------
# Configuration
# ------------------------------------------------------------------------------------------------
@dataclass
class TrainConfig:
    """Every knob of :func:`train`. Defaults follow the thesis (§5.3.2) / StyleGAN2 config-f."""

    out_dir: str = "stylegan-run"
    data: str = "toyfaces"            # "toyfaces" or a folder / .zip of images
    resolution: int = 32
    toy_images: int = 20000           # size of the toy-face training set
    xflip: bool = False
    # networks
    z_dim: int = 512
    w_dim: int = 512
    n_mlp: int = 8
    lr_mlp: float = 0.01              # mapping network's learning-rate multiplier (StyleGAN: 0.01)
    channel_multiplier: float = 2
    channel_base: int | None = None
    channel_max: int = 512
    d_channel_base: int | None = None  # D's channel_base when it differs from G's (None: the same)
    mbstd_group: int = 4              # D's minibatch-stddev group (StyleGAN2: 4)
    d_attr_weight: float = 0.0        # > 0: D also predicts the toy faces' 13 attributes of real images (aux. BCE)
    d_scales: int = 1                 # > 1: multi-scale critic (full, 1/2, 1/4 ... resolution; pix2pixHD)
    d_arch: str = "resnet"            # "resnet": StyleGAN2 critic; "plain": PlainDiscriminator (2x input, plain convs)
    # optimisation
    batch: int = 32                   # global batch (split over processes)
    total_img: int = 100_000          # stop after this many real images shown to D
    lr: float = 0.002
    d_lr: float | None = None         # D's Adam learning rate when it differs from G's (None: lr)
    lr_rampdown: float = 0.0          # last fraction of the run over which both learning rates fall to 0 (cosine)
    betas: tuple = (0.0, 0.99)
    loss: str = "wgan-gp"             # "wgan-gp" (eq. 5-4) or "logistic" (+ lazy R1)
    gp_lambda: float = 10.0
    r1_gamma: float = 10.0
    r1_every: int = 16
    path: str = "pl"                  # "pl" (StyleGAN2 path-length regulariser), "vgg", "none"
    path_alpha: float = 0.5           # alpha of eq. 5-7
    path_epsilon: float = 0.1         # epsilon of eq. 5-6
    path_every: int = 4
    path_batch_shrink: int = 2
    vgg_weights: str | None = None
    style_mixing: float = 0.9
    noise_mode: str = "random"        # G's noise inputs while training: "random" (StyleGAN2) or "none" (off)
    ema_img: float = 10_000.0         # G EMA half-life in images
    ema_rampup: float | None = 0.05   # half-life <= rampup * images seen (helps short runs)
    w_avg_beta: float = 0.995
    # bookkeeping
    seed: int = 0
    device: str = "auto"              # "auto", "cpu", "cuda", "cuda:1", ...
    workers: int = 0
    log_every: int = 10               # steps
    sample_every: int = 5_000         # images; 0 = never
    checkpoint_every: int = 10_000    # images; 0 = only at the end
    snapshot_every: int = 0           # images between kept G_ema copies (snapshots/G_ema_<img>.safetensors); 0 = none
    fid_every: int = 0                # images; 0 = never
    fid_images: int = 1000
    inception_weights: str | None = None
    resume: str | None = None         # checkpoint path or "auto" (out_dir/checkpoint.pt if present)
    progress: bool = True
    max_steps: int | None = None      # hard step limit (tests, benchmarks)
    max_seconds: float | None = None  # wall-clock limit of this run (checkpoint written at the end)

    def validate(self):
        if self.loss not in ("wgan-gp", "logistic"):
            raise ValueError(f"loss must be 'wgan-gp' or 'logistic', got {self.loss!r}")
        if self.path not in ("pl", "vgg", "none"):
            raise ValueError(f"path must be 'pl', 'vgg' or 'none', got {self.path!r}")
        if self.path == "vgg" and not self.vgg_weights:
            raise ValueError("path='vgg' (thesis eq. 5-6 with D_VGG) needs vgg_weights: a torchvision VGG-16 "
                             "state dict file (e.g. vgg16-397923af.pth); use path='pl' for the weight-free stand-in")
        if self.max_seconds is not None and not self.max_seconds > 0:
            raise ValueError(f"max_seconds must be > 0, got {self.max_seconds}")
        if not self.d_attr_weight >= 0:
            raise ValueError(f"d_attr_weight must be >= 0, got {self.d_attr_weight}")
        if self.d_attr_weight > 0 and (self.data != "toyfaces" or self.d_scales > 1):
            raise ValueError("d_attr_weight > 0 needs labelled data (data='toyfaces') and a single-scale critic")
        if self.noise_mode not in ("random", "none"):
            raise ValueError(f"noise_mode must be 'random' or 'none', got {self.noise_mode!r}")
        if self.r1_every < 1 or self.path_every < 1:
            raise ValueError(f"r1_every and path_every must be >= 1, got {self.r1_every}, {self.path_every}")
        if self.d_channel_base is not None and self.d_channel_base < 1:
            raise ValueError(f"d_channel_base must be >= 1 or None, got {self.d_channel_base}")
        if not isinstance(self.d_scales, int) or self.d_scales < 1 or self.resolution >> (self.d_scales - 1) < 8:
            raise ValueError(f"d_scales must be an int >= 1 with resolution / 2**(d_scales-1) >= 8, got "
                             f"{self.d_scales!r} at resolution {self.resolution}")
        if not self.lr_mlp > 0:
            raise ValueError(f"lr_mlp must be > 0, got {self.lr_mlp}")
        if self.mbstd_group < 1:
            raise ValueError(f"mbstd_group must be >= 1, got {self.mbstd_group}")
        if not 0 <= self.lr_rampdown <= 1:
            raise ValueError(f"lr_rampdown must be in [0, 1], got {self.lr_rampdown}")
        if self.d_lr is not None and not self.d_lr > 0:
            raise ValueError(f"d_lr must be > 0 or None, got {self.d_lr}")
        if self.d_arch not in CRITICS:
            raise ValueError(f"d_arch must be one of {sorted(CRITICS)}, got {self.d_arch!r}")
        if self.d_arch == "plain" and self.d_scales > 1:
            raise ValueError("d_arch='plain' is single-scale (d_scales=1)")
        if self.batch < 1 or self.total_img < 1:
            raise ValueError("batch and total_img must be >= 1")
        if not 0 < self.path_epsilon < 1:
            raise ValueError(f"path_epsilon must be in (0, 1), got {self.path_epsilon}")
        return self

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        return d


#: Named recipes (``fe-fast train-gan --preset NAME``; options given explicitly still win).
#: ``toy32``: the CPU recipe for 32x32 toy faces (bench/results/stylegan.md, issue 6): narrow
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


# ------------------------------------------------------------------------------------------------
# Data
# ------------------------------------------------------------------------------------------------
def _to_tensor(img, resolution: int) -> torch.Tensor:
    """PIL image -> centre-cropped square, resized to ``resolution``, [3, R, R] in [-1, 1]."""
    from PIL import Image

    img = img.convert("RGB")
    w, h = img.size
    s = min(w, h)
    if w != h:
        img = img.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
    if s != resolution:
        img = img.resize((resolution, resolution), Image.LANCZOS)
    a = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1)
    return a.float().div_(127.5).sub_(1.0)


class ImageFolderDataset(torch.utils.data.Dataset):
    """Every image under a folder (recursively) or inside a .zip, at any size: centre crop to a
    square, resize to ``resolution`` (Lanczos), values in [-1, 1]."""

    def __init__(self, path, resolution: int):
        self.path = os.fspath(path)
        self.resolution = resolution
        if not os.path.exists(self.path):
            raise FileNotFoundError(f"training data not found: {self.path}")
        self._zip = None
        if os.path.isfile(self.path):
            if not zipfile.is_zipfile(self.path):
                raise ValueError(f"data must be a folder of images or a .zip of images, got file {self.path}")
            with zipfile.ZipFile(self.path) as zf:
                self.files = sorted(n for n in zf.namelist() if n.lower().endswith(IMAGE_EXTS))
        else:
            self.files = sorted(str(p.relative_to(self.path)) for p in Path(self.path).rglob("*")
                                if p.suffix.lower() in IMAGE_EXTS)
        if not self.files:
            raise ValueError(f"no images ({', '.join(IMAGE_EXTS)}) found in {self.path}")

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        from PIL import Image

        if os.path.isfile(self.path):
            if self._zip is None:
                self._zip = zipfile.ZipFile(self.path)
            with self._zip.open(self.files[i]) as f:
                img = Image.open(io.BytesIO(f.read()))
                img.load()
        else:
            img = Image.open(os.path.join(self.path, self.files[i]))
            img.load()
        return _to_tensor(img, self.resolution)

    def __getstate__(self):
        d = dict(self.__dict__)
        d["_zip"] = None
        return d


class ToyFaceImages(torch.utils.data.Dataset):
    """Images of ``fe_fast.datasets.toyfaces.ToyFaces`` (rendered at max(16, resolution), average
    pooled below 16). All ``n`` faces are rendered once, up front (``progress`` shows a bar), and kept
    as one uint8 tensor ``images`` [n, 3, R, R]: rendering on first access cost about 1-15 ms per
    face inside the timed training loop; :meth:`batch` gathers a whole minibatch with one index."""

    def __init__(self, n: int, resolution: int, seed: int = 0, progress: bool = False):
        from fe_fast.datasets.toyfaces import BINARY_ATTRIBUTES, ToyFaces  # lazy: another package, heavy import

        self.resolution = resolution
        self.faces = ToyFaces(n, size=max(16, resolution), seed=seed)
        size = self.faces.size
        images = torch.empty(len(self.faces), 3, size, size, dtype=torch.uint8)
        it = range(len(self.faces))
        if progress:
            from tqdm import tqdm

            it = tqdm(it, desc=f"rendering {len(self.faces)} toy faces", unit="img")
        for i in it:
            images[i] = torch.from_numpy(self.faces.render(i).image).permute(2, 0, 1)
        #: the 13 binary attributes per face (float 0/1), for the critic's optional attribute head
        self.labels = torch.from_numpy(self.faces.attributes[:, :len(BINARY_ATTRIBUTES)]).float()
        if size != resolution:
            pooled = F.adaptive_avg_pool2d(images.float(), resolution)
            images = pooled.round().clamp(0, 255).to(torch.uint8)
        self.images = images

    def __len__(self):
        return len(self.faces)

    def batch(self, indices) -> torch.Tensor:
        """Images ``indices`` as float [len, 3, R, R] in [-1, 1]."""
        return self.images[torch.as_tensor(indices, dtype=torch.long)].float().div_(127.5).sub_(1.0)

    def __getitem__(self, i):
        return self.images[i].float().div(127.5).sub(1.0)


def make_dataset(cfg: TrainConfig, progress: bool = False):
    if cfg.data == "toyfaces":
        return ToyFaceImages(cfg.toy_images, cfg.resolution, seed=cfg.seed, progress=progress)
    return ImageFolderDataset(cfg.data, cfg.resolution)


class _ShardedInfiniteSampler(torch.utils.data.Sampler):
    """Endless seeded permutations; process ``rank`` of ``world`` takes every world-th index."""

    def __init__(self, n: int, rank: int, world: int, seed: int, start: int = 0):
        self.n, self.rank, self.world, self.seed, self.start = n, rank, world, seed, start

    def __iter__(self):
        epoch, k = divmod(self.start, max(1, self.n // self.world))
        while True:
            perm = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed * 100003 + epoch))
            mine = perm[self.rank::self.world].tolist()[: max(1, self.n // self.world)]
            for i in mine[k:]:
                yield i
            epoch, k = epoch + 1, 0


# ------------------------------------------------------------------------------------------------
# Losses
# ------------------------------------------------------------------------------------------------
def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical linear interpolation, thesis eq. A-4:
    ``sin((1-t) W)/sin W a + sin(t W)/sin W b`` with ``cos W = a.b / (|a||b|)`` (per row)."""
    t = t.reshape(-1, 1) if t.ndim < 2 else t
    cos = (a * b).sum(-1, keepdim=True) / (a.norm(dim=-1, keepdim=True) * b.norm(dim=-1, keepdim=True) + 1e-12)
    omega = torch.acos(cos.clamp(-1 + 1e-7, 1 - 1e-7))
    so = torch.sin(omega)
    near = so.abs() < 1e-6
    wa = torch.where(near, 1 - t, torch.sin((1 - t) * omega) / torch.where(near, torch.ones_like(so), so))
    wb = torch.where(near, t, torch.sin(t * omega) / torch.where(near, torch.ones_like(so), so))
    return wa * a + wb * b


def _score_sum(d_out: torch.Tensor) -> torch.Tensor:
    """Sum over the batch of each sample's score; a multi-scale critic's [B, K] scores are averaged
    over the K scales first (the losses average them too), so penalties see the same critic."""
    return d_out.flatten(1).mean(1).sum()


def _grad_norm(d_out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    (g,) = torch.autograd.grad(_score_sum(d_out), x, create_graph=True)
    return g.flatten(1).norm(dim=1)


def wgan_gp_d_loss(D, real: torch.Tensor, fake: torch.Tensor, gp_lambda: float = 10.0):
    """Critic side of thesis eq. 5-4/5-5: minimise ``E D(G(z)) - E D(x) + lambda (E(||grad_x D(x)||-1)^2
    + E(||grad D(x~)||-1)^2)``. Returns (loss, dict of parts as detached 0-d tensors: no host sync)."""
    real = real.detach().requires_grad_(True)
    fake = fake.detach().requires_grad_(True)
    d_real, d_fake = D(real), D(fake)
    gp_real = (_grad_norm(d_real, real) - 1).square().mean()
    gp_fake = (_grad_norm(d_fake, fake) - 1).square().mean()
    wdist = d_real.mean() - d_fake.mean()
    loss = -wdist + gp_lambda * (gp_real + gp_fake)
    parts = {"wdist": wdist, "gp_real": gp_real, "gp_fake": gp_fake, "d_real": d_real.mean(), "d_fake": d_fake.mean()}
    return loss, {k: v.detach() for k, v in parts.items()}


def logistic_d_loss(D, real, fake, r1_gamma: float = 0.0, r1_scale: float = 1.0):
    """StyleGAN2 non-saturating logistic critic loss ``softplus(D(G(z))) + softplus(-D(x))`` plus,
    when ``r1_gamma > 0``, the lazy R1 penalty ``gamma/2 E||grad_x D(x)||^2 * r1_scale``."""
    real = real.detach().requires_grad_(r1_gamma > 0)
    d_real, d_fake = D(real), D(fake.detach())
    loss = F.softplus(d_fake).mean() + F.softplus(-d_real).mean()
    parts = {"d_real": d_real.detach().mean(), "d_fake": d_fake.detach().mean()}
    if r1_gamma > 0:
        (g,) = torch.autograd.grad(_score_sum(d_real), real, create_graph=True)
        r1 = g.square().flatten(1).sum(1).mean()
        loss = loss + r1 * (r1_gamma / 2) * r1_scale
        parts["r1"] = r1.detach()
    return loss, parts


def path_loss(G: Generator, feature_net, batch: int, epsilon: float = 0.1, device=None) -> torch.Tensor:
    """Thesis eq. 5-6: ``E[ D_F(S(slerp(w1, w2; t)), S(slerp(w1, w2; t + eps))) / eps^2 ]`` with
    w = M(z), t ~ U(0, 1 - eps), the same (constant) noise for both images, and ``D_F`` the
    feature network's ``distance`` (squared Euclidean distance of normalised VGG features)."""
    device = device or next(G.parameters()).device
    z = torch.randn(2 * batch, G.z_dim, device=device)
    w = G.mapping(z)
    w1, w2 = w[:batch], w[batch:]
    t = torch.rand(batch, 1, device=device) * (1 - epsilon)
    wa, wb = slerp(w1, w2, t), slerp(w1, w2, t + epsilon)
    img = G.synthesis(torch.cat([wa, wb]), noise_mode="const")
    f = feature_net(img)
    if isinstance(f, (list, tuple)):
        fa, fb = [x[:batch] for x in f], [x[batch:] for x in f]
    else:
        fa, fb = f[:batch], f[batch:]
    return (feature_net.distance(fa, fb) / epsilon ** 2).mean()


def path_length_penalty(G: Generator, batch: int, pl_mean: torch.Tensor, decay: float = 0.01,
                        all_reduce=None, noise_mode: str = "random"):
    """StyleGAN2 path-length regulariser (the weight-free stand-in for eq. 5-6):
    ``E(||J_w^T y||_2 - a)^2`` with y ~ N(0, I)/sqrt(HW) and a the moving mean of the lengths.
    Returns (penalty, new pl_mean, mean length as a detached 0-d tensor)."""
    device = pl_mean.device
    z = torch.randn(batch, G.z_dim, device=device)
    ws = G.mapping(z).unsqueeze(1).repeat(1, G.num_ws, 1)
    img = G.synthesis(ws, noise_mode=noise_mode)
    y = torch.randn_like(img) / math.sqrt(img.shape[2] * img.shape[3])
    (g,) = torch.autograd.grad((img * y).sum(), ws, create_graph=True)
    lengths = g.square().sum(2).mean(1).sqrt()
    mean_len = lengths.detach().mean()
    if all_reduce is not None:
        mean_len = all_reduce(mean_len)
    new_mean = pl_mean + decay * (mean_len - pl_mean)
    return (lengths - new_mean).square().mean(), new_mean.detach(), mean_len


# ------------------------------------------------------------------------------------------------
# Distributed helpers
# ------------------------------------------------------------------------------------------------
class _Dist:
    def __init__(self, device_pref: str):
        import torch.distributed as dist

        self.dist = dist
        world = int(os.environ.get("WORLD_SIZE", "1"))
        self.owned = False
        if world > 1 and not dist.is_initialized():
            use_cuda = device_pref.startswith("cuda") or (device_pref == "auto" and torch.cuda.is_available())
            dist.init_process_group(backend="nccl" if use_cuda else "gloo")
            self.owned = True
        self.enabled = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
        self.rank = dist.get_rank() if self.enabled else 0
        self.world = dist.get_world_size() if self.enabled else 1
        self.local_rank = int(os.environ.get("LOCAL_RANK", self.rank))

    def device(self, pref: str) -> torch.device:
        if pref == "auto":
            pref = "cuda" if torch.cuda.is_available() else "cpu"
        dev = torch.device(pref)
        if dev.type == "cuda" and dev.index is None:
            dev = torch.device("cuda", self.local_rank % max(1, torch.cuda.device_count()))
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        return dev

    def broadcast_module(self, m: torch.nn.Module):
        if self.enabled:
            for t in list(m.parameters()) + list(m.buffers()):
                self.dist.broadcast(t.data, src=0)

    def mean(self, t: torch.Tensor) -> torch.Tensor:
        if not self.enabled:
            return t
        t = t.clone()
        self.dist.all_reduce(t)
        return t / self.world

    def average_grads(self, params):
        params = [p for p in params if p.grad is not None]
        if not params:
            return
        flat = torch.cat([p.grad.flatten() for p in params])
        if self.enabled:
            self.dist.all_reduce(flat)
            flat /= self.world
        torch.nan_to_num(flat, nan=0, posinf=1e5, neginf=-1e5, out=flat)
        off = 0
        for p in params:
            n = p.numel()
            p.grad.copy_(flat[off:off + n].view_as(p.grad))
            off += n

    def barrier(self):
        if self.enabled:
            self.dist.barrier()

    def close(self):
        if self.owned:
            self.dist.destroy_process_group()


# ------------------------------------------------------------------------------------------------
# Outputs
# ------------------------------------------------------------------------------------------------
def save_image_grid(images: torch.Tensor, path, nrow: int | None = None) -> None:
    """Write [N, 3, H, W] images in [-1, 1] as one PNG grid."""
    from PIL import Image

    x = ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    n, c, h, w = x.shape
    nrow = nrow or max(1, int(math.ceil(math.sqrt(n))))
    ncol = int(math.ceil(n / nrow))
    grid = torch.zeros(c, ncol * h, nrow * w, dtype=torch.uint8)
    for i in range(n):
        r, q = divmod(i, nrow)
        grid[:, r * h:(r + 1) * h, q * w:(q + 1) * w] = x[i]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid.permute(1, 2, 0).numpy()).save(path)


def _atomic_torch_save(obj, path: Path):
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


# ------------------------------------------------------------------------------------------------
# Training loop
# ------------------------------------------------------------------------------------------------
def lr_rampdown_factor(progress: float, rampdown: float) -> float:
    """Learning-rate multiplier at ``progress`` (0 = start, 1 = end of the run): 1 until the last
    ``rampdown`` fraction, then a half cosine down to 0 at the end."""
    start = 1.0 - rampdown
    if rampdown <= 0 or progress <= start:
        return 1.0
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (progress - start) / rampdown)))


def _mix_ws(G: Generator, z: torch.Tensor, prob: float) -> torch.Tensor:
    w = G.mapping(z)
    ws = w.unsqueeze(1).repeat(1, G.num_ws, 1)
    if prob > 0 and torch.rand(()) < prob:
        w2 = G.mapping(torch.randn_like(z))
        cutoff = int(torch.randint(1, G.num_ws, ()))
        ws = torch.cat([ws[:, :cutoff], w2.unsqueeze(1).expand(-1, G.num_ws - cutoff, -1)], dim=1)
    return ws


def _build(cfg: TrainConfig, device):
    G = Generator(cfg.resolution, z_dim=cfg.z_dim, w_dim=cfg.w_dim, n_mlp=cfg.n_mlp, lr_mlp=cfg.lr_mlp,
                  channel_multiplier=cfg.channel_multiplier, channel_base=cfg.channel_base,
                  channel_max=cfg.channel_max, seed=cfg.seed).to(device)
    d_base = cfg.channel_base if cfg.d_channel_base is None else cfg.d_channel_base
    d_kwargs = dict(channel_multiplier=cfg.channel_multiplier, channel_base=d_base, channel_max=cfg.channel_max,
                    mbstd_group=cfg.mbstd_group, seed=cfg.seed + 1)
    if cfg.d_attr_weight > 0:
        from fe_fast.datasets.toyfaces import BINARY_ATTRIBUTES

        d_kwargs["n_attributes"] = len(BINARY_ATTRIBUTES)
    if cfg.d_scales > 1:
        D = MultiScaleDiscriminator(cfg.resolution, scales=cfg.d_scales, **d_kwargs).to(device)
    else:
        D = CRITICS[cfg.d_arch](cfg.resolution, **d_kwargs).to(device)
    return G, D


def train(cfg: TrainConfig | None = None, feature_net=None, **overrides) -> dict:
    """Train a StyleGAN2 (thesis eq. 5-4 .. 5-7). ``train(TrainConfig(...))`` or ``train(**fields)``.

    ``feature_net`` (optional) replaces VGG-16 as ``F`` in eq. 5-6 (with ``path="vgg"``): a module
    mapping [-1, 1] images to features (tensor or list of tensors) with a ``distance(fa, fb)``
    method returning per-sample distances. Writes into ``cfg.out_dir`` (rank 0 only):
    ``metrics.jsonl``, ``samples/*.png``, ``checkpoint.pt``, ``G_ema.safetensors``.
    Returns a summary dict (``d_losses`` per step, ``img_per_s``, paths)."""
    cfg = dataclasses.replace(cfg, **overrides) if cfg is not None else TrainConfig(**overrides)
    cfg.validate()
    dist = _Dist(cfg.device)
    try:
        return _train(cfg, dist, feature_net)
    finally:
        dist.close()


def _train(cfg: TrainConfig, dist: _Dist, feature_net) -> dict:
    from fe_fast.stylegan.io import save_generator

    device = dist.device(cfg.device)
    if cfg.batch % dist.world:
        raise ValueError(f"batch ({cfg.batch}) must be divisible by the number of processes ({dist.world})")
    local_batch = cfg.batch // dist.world
    out = Path(cfg.out_dir)
    if dist.rank == 0:
        (out / "samples").mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    G, D = _build(cfg, device)
    dist.broadcast_module(G)
    dist.broadcast_module(D)
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    betas = tuple(cfg.betas)
    # lazy-regularisation correction of Adam (StyleGAN2): lr and betas scaled by interval/(interval+1)
    d_every = cfg.r1_every if cfg.loss == "logistic" else 1
    g_every = cfg.path_every if cfg.path != "none" else 1
    d_ratio = d_every / (d_every + 1) if d_every > 1 else 1.0
    g_ratio = g_every / (g_every + 1) if g_every > 1 else 1.0
    opt_G = torch.optim.Adam(G.parameters(), lr=cfg.lr * g_ratio, betas=tuple(b ** g_ratio for b in betas))
    d_lr = cfg.lr if cfg.d_lr is None else cfg.d_lr
    opt_D = torch.optim.Adam(D.parameters(), lr=d_lr * d_ratio, betas=tuple(b ** d_ratio for b in betas))

    def set_lr(scale: float):  # scale the configured rates (opt.defaults; a loaded state dict keeps its own)
        for opt in (opt_G, opt_D):
            for group in opt.param_groups:
                group["lr"] = opt.defaults["lr"] * scale
    pl_mean = torch.zeros((), device=device)
    step, img_seen = 0, 0

    resume = cfg.resume
    if resume == "auto":
        resume = str(out / "checkpoint.pt") if (out / "checkpoint.pt").exists() else None
    if resume:
        if not os.path.isfile(resume):
            raise FileNotFoundError(f"resume checkpoint not found: {resume}")
        ck = torch.load(resume, map_location=device, weights_only=True)
        if ck.get("G_config") != G.config:
            raise ValueError(f"resume checkpoint has generator config {ck.get('G_config')}, this run {G.config}")
        G.load_state_dict(ck["G"])
        D.load_state_dict(ck["D"])
        G_ema.load_state_dict(ck["G_ema"])
        opt_G.load_state_dict(ck["opt_G"])
        opt_D.load_state_dict(ck["opt_D"])
        set_lr(1.0)  # this run's rates, not those stored (e.g. ramped down) in the checkpoint
        pl_mean = ck["pl_mean"].to(device)
        step, img_seen = int(ck["step"]), int(ck["img_seen"])

    feature_net_vgg = None
    if cfg.path == "vgg":
        if feature_net is None:
            from fe_fast.stylegan.features import VGG16Features

            feature_net = VGG16Features(cfg.vgg_weights)
        feature_net_vgg = feature_net.to(device)

    dataset = make_dataset(cfg, progress=cfg.progress and dist.rank == 0)
    sampler = _ShardedInfiniteSampler(len(dataset), dist.rank, dist.world, cfg.seed, start=img_seen // cfg.batch * local_batch)
    if hasattr(dataset, "batch") and cfg.workers == 0:  # pre-rendered toy faces: one gather per batch
        indices = iter(sampler)

        def next_real():
            idx = [next(indices) for _ in range(local_batch)]
            return dataset.batch(idx), (dataset.labels[idx] if cfg.d_attr_weight > 0 else None)
    else:
        loader = iter(torch.utils.data.DataLoader(dataset, batch_size=local_batch, sampler=sampler,
                                                  num_workers=cfg.workers, drop_last=True))

        def next_real():
            return next(loader), None
    # per-rank RNG streams for z / noise (resume continues a fresh, still deterministic stream)
    torch.manual_seed(cfg.seed * 1000 + dist.rank + 7919 * step)

    fixed_z = torch.randn(16, cfg.z_dim, generator=torch.Generator().manual_seed(cfg.seed + 12345)).to(device)
    fid_net, fid_real_stats, fid_label = None, None, None
    log_f = open(out / "metrics.jsonl", "a") if dist.rank == 0 else None
    pbar = None
    if cfg.progress and dist.rank == 0:
        from tqdm import tqdm

        pbar = tqdm(total=cfg.total_img, initial=min(img_seen, cfg.total_img), unit="img", desc="train-gan")
    d_losses, g_losses = [], []
    ema_params, g_params = list(G_ema.parameters()), list(G.parameters())
    t_start = time.perf_counter()
    img_at_start = img_seen
    last_sample = img_seen // cfg.sample_every if cfg.sample_every else 0
    last_ckpt = img_seen // cfg.checkpoint_every if cfg.checkpoint_every else 0
    last_fid = img_seen // cfg.fid_every if cfg.fid_every else 0
    last_snapshot = img_seen // cfg.snapshot_every if cfg.snapshot_every else 0
    steps_run = 0

    def save_checkpoint():
        if dist.rank != 0:
            return
        _atomic_torch_save({"G": G.state_dict(), "D": D.state_dict(), "G_ema": G_ema.state_dict(),
                            "opt_G": opt_G.state_dict(), "opt_D": opt_D.state_dict(), "pl_mean": pl_mean.cpu(),
                            "step": step, "img_seen": img_seen, "G_config": G.config, "D_config": D.config,
                            "train_config": json.dumps(cfg.to_dict())}, out / "checkpoint.pt")
        save_generator(G_ema, out / "G_ema.safetensors")

    def out_of_time() -> bool:
        if cfg.max_seconds is None:
            return False
        late = time.perf_counter() - t_start >= cfg.max_seconds
        if dist.world == 1:
            return late
        return bool(dist.mean(torch.tensor(float(late), device=device)) > 0)  # all ranks stop together

    while img_seen < cfg.total_img and (cfg.max_steps is None or steps_run < cfg.max_steps) \
            and not out_of_time():
        real, real_attr = next_real()
        real = real.to(device)
        rec = {}
        if cfg.lr_rampdown > 0:  # progress: images or seconds, whichever limit is nearer
            progress = img_seen / cfg.total_img
            if cfg.max_seconds is not None:
                progress = max(progress, (time.perf_counter() - t_start) / cfg.max_seconds)
            if dist.world > 1:  # one schedule on every rank (clocks differ)
                progress = float(dist.mean(torch.tensor(progress, device=device)))
            rec["lr_scale"] = lr_rampdown_factor(progress, cfg.lr_rampdown)
            set_lr(rec["lr_scale"])
        if cfg.xflip:
            flip = torch.rand(real.shape[0], device=device) < 0.5
            real = torch.where(flip.reshape(-1, 1, 1, 1), real.flip(3), real)

        # One generator forward per step: the critic step sees it detached, the generator step
        # scores it with the updated critic (saves the second synthesis pass per step).
        G.requires_grad_(True)
        z = torch.randn(local_batch, cfg.z_dim, device=device)
        ws = _mix_ws(G, z, cfg.style_mixing)
        gen = G.synthesis(ws, noise_mode=cfg.noise_mode)

        # ---- D step (eq. 5-4, critic side) ----
        D.requires_grad_(True)
        if cfg.loss == "wgan-gp":
            d_loss, parts = wgan_gp_d_loss(D, real, gen.detach(), cfg.gp_lambda)
        else:
            do_r1 = cfg.r1_gamma > 0 and step % cfg.r1_every == 0
            d_loss, parts = logistic_d_loss(D, real, gen.detach(), cfg.r1_gamma if do_r1 else 0.0, cfg.r1_every)
        if cfg.d_attr_weight > 0:  # auxiliary task: D's features must carry the real faces' attributes
            attr_loss = F.binary_cross_entropy_with_logits(D.attribute_logits(real), real_attr.to(device))
            d_loss = d_loss + cfg.d_attr_weight * attr_loss
            parts["loss_D_attr"] = attr_loss.detach()
        opt_D.zero_grad(set_to_none=True)
        d_loss.backward()
        dist.average_grads(D.parameters())
        opt_D.step()
        rec.update(parts)
        rec["loss_D"] = d_loss.detach()

        # ---- G step (eq. 5-7: L_gan + alpha L_w) ----
        D.requires_grad_(False)
        d_gen = D(gen)
        g_gan = -d_gen.mean() if cfg.loss == "wgan-gp" else F.softplus(-d_gen).mean()
        g_loss = g_gan
        if cfg.path != "none" and step % cfg.path_every == 0:
            pb = max(1, local_batch // cfg.path_batch_shrink)
            if cfg.path == "pl":
                lw, pl_mean, mean_len = path_length_penalty(G, pb, pl_mean, all_reduce=dist.mean,
                                                            noise_mode=cfg.noise_mode)
                rec["pl_length"] = mean_len
            else:
                lw = path_loss(G, feature_net_vgg, pb, cfg.path_epsilon, device)
            g_loss = g_loss + cfg.path_alpha * lw * cfg.path_every
            rec["loss_path"] = lw.detach()
        opt_G.zero_grad(set_to_none=True)
        g_loss.backward()
        dist.average_grads(G.parameters())
        opt_G.step()
        with torch.no_grad():  # tracked average w (truncation), identical on every rank
            w_mean = dist.mean(ws[:, 0].detach().mean(0))
            G.mapping.w_avg.copy_(w_mean.lerp(G.mapping.w_avg, cfg.w_avg_beta))
        rec["loss_G"] = g_gan.detach()

        # ---- EMA ----
        img_seen += cfg.batch
        step += 1
        steps_run += 1
        ema_nimg = cfg.ema_img
        if cfg.ema_rampup is not None:
            ema_nimg = min(ema_nimg, img_seen * cfg.ema_rampup)
        beta = 0.5 ** (cfg.batch / max(ema_nimg, 1e-8))
        with torch.no_grad():  # p_ema <- p + beta (p_ema - p), all tensors in one foreach call
            torch._foreach_lerp_(ema_params, g_params, 1.0 - beta)
            for be, b in zip(G_ema.buffers(), G.buffers()):
                be.copy_(b)
        # losses stay tensors (no host sync per step on GPU); read out at log steps and at the end
        d_losses.append(rec["loss_D"])
        g_losses.append(rec["loss_G"])

        # ---- bookkeeping (rank 0 writes) ----
        log_now = step % cfg.log_every == 0 or step == 1
        if pbar is not None:
            pbar.update(cfg.batch)
            if log_now:
                pbar.set_postfix(D=f"{float(rec['loss_D']):.3f}", G=f"{float(rec['loss_G']):.3f}")
        if dist.rank == 0 and log_now:
            el = time.perf_counter() - t_start
            rec = {k: (v.item() if isinstance(v, torch.Tensor) else v) for k, v in rec.items()}
            rec.update(step=step, img=img_seen, time_s=round(el, 3),
                       img_per_s=round((img_seen - img_at_start) / max(el, 1e-9), 3))
            log_f.write(json.dumps(rec) + "\n")
            log_f.flush()
        if cfg.sample_every and img_seen // cfg.sample_every > last_sample:
            last_sample = img_seen // cfg.sample_every
            if dist.rank == 0:
                with torch.no_grad():
                    imgs = G_ema(fixed_z, noise_mode="const")
                save_image_grid(imgs, out / "samples" / f"fakes{img_seen:09d}.png")
        if cfg.fid_every and img_seen // cfg.fid_every > last_fid:
            last_fid = img_seen // cfg.fid_every
            if dist.rank == 0:
                fid_net, fid_real_stats, fid_label, value = _fid_now(cfg, G_ema, dataset, device, fid_net,
                                                                     fid_real_stats, fid_label)
                log_f.write(json.dumps({"step": step, "img": img_seen, "metric": fid_label, "fid": value,
                                        "time_s": round(time.perf_counter() - t_start, 3)}) + "\n")
                log_f.flush()
        if cfg.snapshot_every and img_seen // cfg.snapshot_every > last_snapshot:
            last_snapshot = img_seen // cfg.snapshot_every
            if dist.rank == 0:
                (out / "snapshots").mkdir(exist_ok=True)
                save_generator(G_ema, out / "snapshots" / f"G_ema_{img_seen:09d}.safetensors")
        if cfg.checkpoint_every and img_seen // cfg.checkpoint_every > last_ckpt:
            last_ckpt = img_seen // cfg.checkpoint_every
            save_checkpoint()

    save_checkpoint()
    if dist.rank == 0:
        with torch.no_grad():
            save_image_grid(G_ema(fixed_z, noise_mode="const"), out / "samples" / "final.png")
    elapsed = time.perf_counter() - t_start
    if pbar is not None:
        pbar.close()
    if log_f is not None:
        log_f.close()
    dist.barrier()
    d_losses = torch.stack(d_losses).tolist() if d_losses else []
    g_losses = torch.stack(g_losses).tolist() if g_losses else []
    return {"steps": step, "img_seen": img_seen, "d_losses": d_losses, "g_losses": g_losses,
            "img_per_s": (img_seen - img_at_start) / max(elapsed, 1e-9), "out_dir": str(out),
            "checkpoint": str(out / "checkpoint.pt"), "G_ema": str(out / "G_ema.safetensors"),
            "rank": dist.rank, "world": dist.world, "G": G, "D": D, "G_ema_module": G_ema}


@torch.no_grad()
def _fid_now(cfg, G_ema, dataset, device, net, real_stats, label):
    from fe_fast.stylegan.metrics import compute_features, feature_statistics, fid_feature_network, frechet_distance

    if net is None:
        net = fid_feature_network(cfg.inception_weights).to(device)
        label = getattr(net, "label", type(net).__name__)
        n = min(cfg.fid_images, len(dataset))
        idx = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(cfg.seed + 1))[:n]
        reals = torch.stack([dataset[int(i)] for i in idx])
        real_stats = feature_statistics(compute_features(net, reals))
    g = torch.Generator().manual_seed(cfg.seed + 2)
    feats = []
    for start in range(0, cfg.fid_images, 64):
        n = min(64, cfg.fid_images - start)
        z = torch.randn(n, cfg.z_dim, generator=g).to(device)
        feats.append(net(G_ema(z, noise_mode="random").float()).cpu())
    mu, sig = feature_statistics(torch.cat(feats))
    return net, real_stats, label, frechet_distance(real_stats[0], real_stats[1], mu, sig)


def main_from_env():  # pragma: no cover - used by `python -m fe_fast.stylegan.train` under torchrun
    import sys

    from fe_fast.cli import main

    sys.exit(main(["train-gan", *sys.argv[1:]]))


if __name__ == "__main__":  # pragma: no cover
    main_from_env()
