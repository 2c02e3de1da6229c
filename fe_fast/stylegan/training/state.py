"""What a StyleGAN2 training run carries from step to step, and its checkpoint (``checkpoint.pt``:
networks, G EMA, both Adam states, the path-length mean, step and image counters)."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch

__all__ = ["TrainState"]


@dataclass
class TrainState:
    G: torch.nn.Module
    D: torch.nn.Module
    G_ema: torch.nn.Module
    opt_G: torch.optim.Optimizer
    opt_D: torch.optim.Optimizer
    pl_mean: torch.Tensor             # moving mean of the path lengths (path-length regulariser)
    step: int = 0
    img_seen: int = 0                 # real images shown to D, over all processes and resumed runs
    t_start: float = 0.0              # time.perf_counter() when this run's loop started
    img_at_start: int = 0             # img_seen when this run's loop started

    def set_lr(self, scale: float):
        """Both optimisers' rates: the configured ones (``opt.defaults``; a loaded state dict keeps
        its own) times ``scale``."""
        for opt in (self.opt_G, self.opt_D):
            for group in opt.param_groups:
                group["lr"] = opt.defaults["lr"] * scale

    def save(self, path: Path, cfg):
        """Write the checkpoint (atomically: a temporary file, then a rename); ``cfg.to_dict()`` is
        stored as JSON under ``train_config``."""
        ck = {"G": self.G.state_dict(), "D": self.D.state_dict(), "G_ema": self.G_ema.state_dict(),
              "opt_G": self.opt_G.state_dict(), "opt_D": self.opt_D.state_dict(), "pl_mean": self.pl_mean.cpu(),
              "step": self.step, "img_seen": self.img_seen, "G_config": self.G.config, "D_config": self.D.config,
              "train_config": json.dumps(cfg.to_dict())}
        tmp = path.with_suffix(path.suffix + ".tmp")
        torch.save(ck, tmp)
        os.replace(tmp, path)

    def load(self, path: str, device):
        """Resume from a checkpoint written by ``save``; this run's learning rates (not those
        stored, e.g. ramped down) apply from here on."""
        if not os.path.isfile(path):
            raise FileNotFoundError(f"resume checkpoint not found: {path}")
        ck = torch.load(path, map_location=device, weights_only=True)
        if ck.get("G_config") != self.G.config:
            raise ValueError(f"resume checkpoint has generator config {ck.get('G_config')}, this run {self.G.config}")
        self.G.load_state_dict(ck["G"])
        self.D.load_state_dict(ck["D"])
        self.G_ema.load_state_dict(ck["G_ema"])
        self.opt_G.load_state_dict(ck["opt_G"])
        self.opt_D.load_state_dict(ck["opt_D"])
        self.set_lr(1.0)
        self.pl_mean = ck["pl_mean"].to(device)
        self.step, self.img_seen = int(ck["step"]), int(ck["img_seen"])
