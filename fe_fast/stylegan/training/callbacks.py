"""What a StyleGAN2 training run writes while it trains (rank 0 only), as callbacks of the loop:
``on_step(state, rec)`` after every step (``rec``: that step's losses and schedule values) and
``on_end(state)`` once after the last one (in reverse order).

``MetricsLog``: ``metrics.jsonl`` records and the tqdm bar; ``SampleGrids``: PNG grids of G_ema on
fixed latents; ``FIDLog``: FID (thesis eq. 5-8) into ``metrics.jsonl``; ``Snapshots``: kept copies
of G_ema; ``Checkpoints``: ``checkpoint.pt`` + ``G_ema.safetensors``."""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

import torch

__all__ = ["Callback", "MetricsLog", "SampleGrids", "FIDLog", "Snapshots", "Checkpoints", "save_image_grid"]


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


class Callback:
    def on_step(self, state, rec: dict) -> None:
        pass

    def on_end(self, state) -> None:
        pass


class _Every:
    """Due once each time the images seen cross a multiple of ``every`` (0: never)."""

    def __init__(self, every: int, img_seen: int):
        self.every = every
        self.last = img_seen // every if every else 0

    def due(self, img_seen: int) -> bool:
        if self.every and img_seen // self.every > self.last:
            self.last = img_seen // self.every
            return True
        return False


class MetricsLog(Callback):
    """One JSON record per ``log_every`` steps (and the first) in ``metrics.jsonl`` (appended to
    on resume), and the progress bar."""

    def __init__(self, cfg, rank: int, out: Path, img_seen: int):
        self.cfg, self.rank = cfg, rank
        self.file = open(out / "metrics.jsonl", "a") if rank == 0 else None
        self.pbar = None
        if cfg.log.progress and rank == 0:
            from tqdm import tqdm

            self.pbar = tqdm(total=cfg.opt.total_img, initial=min(img_seen, cfg.opt.total_img), unit="img",
                             desc="train-gan")

    def write(self, rec: dict):
        self.file.write(json.dumps(rec) + "\n")
        self.file.flush()

    def on_step(self, state, rec):
        log_now = state.step % self.cfg.log.log_every == 0 or state.step == 1
        if self.pbar is not None:
            self.pbar.update(self.cfg.opt.batch)
            if log_now:
                self.pbar.set_postfix(D=f"{float(rec['loss_D']):.3f}", G=f"{float(rec['loss_G']):.3f}")
        if self.rank == 0 and log_now:
            el = time.perf_counter() - state.t_start
            rec = {k: (v.item() if isinstance(v, torch.Tensor) else v) for k, v in rec.items()}
            rec.update(step=state.step, img=state.img_seen, time_s=round(el, 3),
                       img_per_s=round((state.img_seen - state.img_at_start) / max(el, 1e-9), 3))
            self.write(rec)

    def on_end(self, state):
        if self.pbar is not None:
            self.pbar.close()
        if self.file is not None:
            self.file.close()


class SampleGrids(Callback):
    """``samples/fakes<img>.png`` every ``sample_every`` images and ``samples/final.png``: G_ema on
    16 fixed latents with constant noise."""

    def __init__(self, cfg, rank: int, out: Path, device, img_seen: int):
        self.rank, self.out = rank, out
        self.every = _Every(cfg.log.sample_every, img_seen)
        gen = torch.Generator().manual_seed(cfg.seed + 12345)
        self.fixed_z = torch.randn(16, cfg.G.z_dim, generator=gen).to(device)

    def on_step(self, state, rec):
        if self.every.due(state.img_seen) and self.rank == 0:
            with torch.no_grad():
                imgs = state.G_ema(self.fixed_z, noise_mode="const")
            save_image_grid(imgs, self.out / "samples" / f"fakes{state.img_seen:09d}.png")

    def on_end(self, state):
        if self.rank == 0:
            with torch.no_grad():
                save_image_grid(state.G_ema(self.fixed_z, noise_mode="const"), self.out / "samples" / "final.png")


class FIDLog(Callback):
    """FID of G_ema against ``fid_images`` real images every ``fid_every`` images, written to the
    metrics log (feature network and real statistics computed once, on first use)."""

    def __init__(self, cfg, rank: int, dataset, device, log: MetricsLog, img_seen: int):
        self.cfg, self.rank, self.dataset, self.device, self.log = cfg, rank, dataset, device, log
        self.every = _Every(cfg.log.fid_every, img_seen)
        self.net, self.real_stats, self.label = None, None, None

    def on_step(self, state, rec):
        if self.every.due(state.img_seen) and self.rank == 0:
            value = self.fid(state.G_ema)
            self.log.write({"step": state.step, "img": state.img_seen, "metric": self.label, "fid": value,
                            "time_s": round(time.perf_counter() - state.t_start, 3)})

    @torch.no_grad()
    def fid(self, G_ema) -> float:
        from fe_fast.stylegan.metrics import (compute_features, feature_statistics, fid_feature_network,
                                              frechet_distance)

        cfg, dataset = self.cfg, self.dataset
        if self.net is None:
            self.net = fid_feature_network(cfg.log.inception_weights).to(self.device)
            self.label = getattr(self.net, "label", type(self.net).__name__)
            n = min(cfg.log.fid_images, len(dataset))
            idx = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(cfg.seed + 1))[:n]
            reals = torch.stack([dataset[int(i)] for i in idx])
            self.real_stats = feature_statistics(compute_features(self.net, reals))
        g = torch.Generator().manual_seed(cfg.seed + 2)
        feats = []
        for start in range(0, cfg.log.fid_images, 64):
            n = min(64, cfg.log.fid_images - start)
            z = torch.randn(n, cfg.G.z_dim, generator=g).to(self.device)
            feats.append(self.net(G_ema(z, noise_mode="random").float()).cpu())
        mu, sig = feature_statistics(torch.cat(feats))
        return frechet_distance(self.real_stats[0], self.real_stats[1], mu, sig)


class Snapshots(Callback):
    """``snapshots/G_ema_<img>.safetensors`` every ``snapshot_every`` images."""

    def __init__(self, cfg, rank: int, out: Path, img_seen: int):
        self.rank, self.out = rank, out
        self.every = _Every(cfg.log.snapshot_every, img_seen)

    def on_step(self, state, rec):
        if self.every.due(state.img_seen) and self.rank == 0:
            from fe_fast.stylegan.io import save_generator

            (self.out / "snapshots").mkdir(exist_ok=True)
            save_generator(state.G_ema, self.out / "snapshots" / f"G_ema_{state.img_seen:09d}.safetensors")


class Checkpoints(Callback):
    """``checkpoint.pt`` (resumable) and ``G_ema.safetensors`` every ``checkpoint_every`` images
    and at the end."""

    def __init__(self, cfg, rank: int, out: Path, img_seen: int):
        self.cfg, self.rank, self.out = cfg, rank, out
        self.every = _Every(cfg.log.checkpoint_every, img_seen)

    def save(self, state):
        if self.rank != 0:
            return
        from fe_fast.stylegan.io import save_generator

        state.save(self.out / "checkpoint.pt", self.cfg)
        save_generator(state.G_ema, self.out / "G_ema.safetensors")

    def on_step(self, state, rec):
        if self.every.due(state.img_seen):
            self.save(state)

    def on_end(self, state):
        self.save(state)
