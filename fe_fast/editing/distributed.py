"""Joining the process group of ``torchrun`` for a multi-process :func:`fe_fast.editing.locate`.

``torchrun --nproc_per_node 2 -m fe_fast locate ...`` starts one process per rank with
``WORLD_SIZE``, ``RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` in the environment;
:func:`init_from_env` joins that group (gloo: CPU tensors; the locate run gathers its chunks as
CPU objects) and :func:`locate` then shares the sample chunks out over the ranks."""
from __future__ import annotations

import os

__all__ = ["init_from_env", "is_main", "shutdown", "world_size"]


def world_size() -> int:
    """WORLD_SIZE from the environment (1 outside torchrun); ValueError when it is not an integer."""
    raw = os.environ.get("WORLD_SIZE", "1")
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"WORLD_SIZE must be an integer, got {raw!r}") from None


def init_from_env(backend: str = "gloo") -> bool:
    """Join torchrun's process group when WORLD_SIZE > 1 and none is initialised yet. Returns True
    when this call created the group (the caller then calls :func:`shutdown`)."""
    import torch.distributed as dist

    if world_size() <= 1 or not dist.is_available() or dist.is_initialized():
        return False
    for name in ("RANK", "MASTER_ADDR", "MASTER_PORT"):
        if name not in os.environ:
            raise ValueError(f"WORLD_SIZE is {world_size()} but {name} is not set: start the ranks with torchrun")
    dist.init_process_group(backend)
    return True


def is_main() -> bool:
    """True outside a process group and on rank 0 inside one (the rank that prints)."""
    import torch.distributed as dist

    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def shutdown() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
