"""Several training processes under ``torchrun`` (joined by :func:`fe_fast._distributed.init_from_env`:
gloo on CPU, nccl on GPU): parameters broadcast
from rank 0, gradients averaged with one all-reduce per step. This is DistributedDataParallel's
gradient averaging done explicitly (as NVlabs' training loop does): the ``DistributedDataParallel``
wrapper does not support the ``torch.autograd.grad`` calls of the gradient penalties and the
path-length regulariser. With one process every method is a no-op (``average_grads`` still
replaces non-finite gradients)."""
from __future__ import annotations

import os

import torch

from fe_fast._distributed import init_from_env

__all__ = ["Dist"]


class Dist:
    """The process group of a training run (created here when torchrun started several processes)."""

    def __init__(self, device_pref: str):
        import torch.distributed as dist

        self.dist = dist
        pref = ("cuda" if torch.cuda.is_available() else "cpu") if device_pref == "auto" else device_pref
        self.owned = init_from_env(pref)
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
