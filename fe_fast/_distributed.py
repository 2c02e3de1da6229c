"""The process group that ``torchrun`` starts, shared by every multi-process method (channel
localisation in :mod:`fe_fast.editing.locate`, training in :mod:`fe_fast.stylegan.training`).

``torchrun --nproc_per_node 2 -m fe_fast ...`` starts one process per rank with ``WORLD_SIZE``,
``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` in the environment.
:func:`init_from_env` joins that group with the backend of the run's device (nccl on CUDA, gloo
on the CPU). :func:`all_gather_or_raise` is the collective the methods meet at: an exception on
one rank reaches every rank as the same one-line error, instead of leaving the others waiting
in a collective until the backend's timeout."""
from __future__ import annotations

import os
from typing import Optional

import torch

__all__ = ["all_gather_or_raise", "backend_for", "init_from_env", "is_main", "shutdown", "world_size"]


def world_size() -> int:
    """WORLD_SIZE from the environment (1 outside torchrun); ValueError when it is not an integer."""
    raw = os.environ.get("WORLD_SIZE", "1")
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"WORLD_SIZE must be an integer, got {raw!r}") from None


def backend_for(device) -> str:
    """nccl for a CUDA device, gloo otherwise."""
    return "nccl" if torch.device(device).type == "cuda" else "gloo"


def init_from_env(device="cpu") -> bool:
    """Join torchrun's process group when WORLD_SIZE > 1 and none is initialised yet, with the
    backend of ``device`` (:func:`backend_for`; on CUDA the rank's current device becomes
    ``LOCAL_RANK`` modulo the visible devices first). Returns True when this call created the
    group (the caller then calls :func:`shutdown`)."""
    import torch.distributed as dist

    world = world_size()
    if world <= 1 or not dist.is_available() or dist.is_initialized():
        return False
    for name in ("RANK", "MASTER_ADDR", "MASTER_PORT"):
        if name not in os.environ:
            raise ValueError(f"WORLD_SIZE is {world} but {name} is not set: start the ranks with torchrun")
    backend = backend_for(device)
    if backend == "nccl" and torch.device(device).index is None:
        local = int(os.environ.get("LOCAL_RANK", os.environ["RANK"]))
        torch.cuda.set_device(local % max(1, torch.cuda.device_count()))
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


def all_gather_or_raise(dist, payload, error: Optional[BaseException] = None) -> list:
    """Every rank's ``payload`` (a picklable object), in rank order; ``error`` is the exception
    this rank hit in its own work since the last collective (None when it finished). When any
    rank passes one, every rank raises the lowest failing rank's error as one line
    ``"rank r: message"``: a ValueError stays a ValueError, anything else becomes a RuntimeError
    (chained to the local exception on the rank that hit it). Without a group (``dist`` None)
    the error is raised as it is."""
    if dist is None:
        if error is not None:
            raise error
        return [payload]
    failure = None
    if error is not None:
        line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        failure = (isinstance(error, ValueError), line)
    parts = [None] * dist.get_world_size()
    dist.all_gather_object(parts, (failure, None if error is not None else payload))
    for rank, (fail, _) in enumerate(parts):
        if fail is not None:
            is_value, line = fail
            raise (ValueError if is_value else RuntimeError)(f"rank {rank}: {line}") from error
    return [p for _, p in parts]
