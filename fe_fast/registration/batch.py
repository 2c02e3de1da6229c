"""Register a list of pairs (files or arrays), optionally sharded over ``torch.distributed`` ranks.

``register_pairs(pairs, config)`` runs :func:`~fe_fast.registration.houv_batch` on
``pairs_per_call`` pairs at a time (B pairs x G groups in one batched optimisation, algorithm 3.1),
or, with several configs, :func:`~fe_fast.registration.houv_best_of` on one pair at a time, and
returns one JSON-ready dict per pair (:func:`~fe_fast.registration.io.result_dict` plus ``row``,
``name``, ``src``, ``tgt`` and, with a ground truth, ``rot_err`` / ``trans_err`` / ``mse`` /
``rmse`` / ``success``, thesis eq. 3-13, 3-14).

Sharded (under ``torchrun``: ``WORLD_SIZE`` > 1), rank r takes pairs r, r + world, ... (the group
of :mod:`fe_fast._distributed`: gloo on CPU; nccl on CUDA, each rank on GPU ``LOCAL_RANK``), and
rank 0 gathers every rank's rows and returns them all in the input order; the other ranks return
``None``. An error on one rank (say, an unreadable cloud) is raised on every rank as one line.
"""
from __future__ import annotations

import os
import time
from typing import Mapping, Optional, Sequence, Union

from fe_fast._distributed import all_gather_or_raise, init_from_env, shutdown, world_size
from fe_fast.registration.io import MAX_POINTS

__all__ = ["register_pairs", "summarize"]


def summarize(rows) -> dict:
    """``{"pairs": n}`` plus, over the rows with a ground truth, ``with_gt``, the mean rotation error
    ``mean_rot_err`` (degrees, thesis eq. 3-13) and ``recall`` (the share of successes)."""
    import numpy as np

    out = {"pairs": len(rows)}
    ok = [r for r in rows if "success" in r]
    if ok:
        out.update(with_gt=len(ok), mean_rot_err=float(np.mean([r["rot_err"] for r in ok])),
                   recall=float(np.mean([r["success"] for r in ok])))
    return out


def _as_pairs(pairs) -> list:
    from fe_fast.registration.io import read_pairs

    if isinstance(pairs, (str, os.PathLike)):
        return read_pairs(pairs)
    out = []
    for i, p in enumerate(pairs):
        if not isinstance(p, Mapping) or "src" not in p or "tgt" not in p:
            raise ValueError(f"pairs[{i}] must be a dict with 'src' and 'tgt' (paths or [N, 3] arrays)")
        out.append({"row": i, "name": f"pair_{i}", **p})
    return out


def _cloud(x, max_points, seed):
    from fe_fast.registration.io import check_cloud, read_cloud

    if isinstance(x, (str, os.PathLike)):
        return read_cloud(x, max_points=max_points, seed=seed)
    return check_cloud(x, "cloud")


def register_pairs(
    pairs: Union[str, os.PathLike, Sequence[Mapping]],
    config=None,
    *,
    names: Optional[Sequence[str]] = None,
    accept_score: Optional[float] = None,
    pairs_per_call: int = 1,
    seed: int = 0,
    device=None,
    sharded: Optional[bool] = None,
    max_points: Optional[int] = MAX_POINTS,
    progress: bool = False,
) -> Optional[list]:
    """Register every pair of ``pairs``: a pair-list CSV (:func:`~fe_fast.registration.io.read_pairs`)
    or dicts with ``src`` and ``tgt`` (file paths or [N, 3] arrays) and optional ``name``, ``gt``
    (4x4 array or file), ``viewpoints``.

    ``config``: a :class:`~fe_fast.registration.config.RegistrationConfig` or a preset name (None:
    the default config), or a list of them: the best of them per pair (``houv_best_of``, one pair
    per call, ``accept_score`` as there; ``names`` labels each in the rows' ``preset``). ``seed`` and
    ``device`` go to every call. ``sharded``: split the pairs over the
    ``torch.distributed`` ranks (None: when ``WORLD_SIZE`` > 1). ``max_points``: passed to
    :func:`~fe_fast.registration.io.read_cloud` (None: every point; arrays are used whole). Returns the rows in the order
    of ``pairs`` (``None`` on ranks other than 0 when sharded); ``seconds`` of a row is its share
    of its batch's time."""
    import numpy as np
    import torch

    from fe_fast.registration import houv_batch, houv_best_of
    from fe_fast.registration.io import read_transform, result_dict
    from fe_fast.registration.metrics import evaluate

    from fe_fast.registration.config import DEFAULT_CONFIG, RegistrationConfig
    from fe_fast.registration.presets import preset

    if config is None or isinstance(config, (RegistrationConfig, str, Mapping)):
        config = [config]
    if any(isinstance(c, Mapping) for c in config):  # the old style: houv() keyword dicts
        import warnings

        from fe_fast.registration.config import config_from_kwargs, split_run_kwargs

        warnings.warn("register_pairs with dicts of houv() keywords is deprecated and will be removed in the next "
                      "release; pass RegistrationConfig objects or preset names", FutureWarning, stacklevel=2)
        converted = []
        for c in config:
            if isinstance(c, Mapping):
                c, run = split_run_kwargs(dict(c))
                seed, device = run.get("seed", seed), run.get("device", device)
                c = config_from_kwargs(**c)
            converted.append(c)
        config = converted
    settings = [DEFAULT_CONFIG if c is None else preset(c) if isinstance(c, str) else c for c in config]
    if not settings:
        raise ValueError("config must be a RegistrationConfig, a preset name or a non-empty list of them")
    for i, c in enumerate(settings):
        if not isinstance(c, RegistrationConfig):
            raise ValueError(f"config[{i}] must be a RegistrationConfig or a preset name, got {type(c).__name__}")
    if names is not None and len(names) != len(settings):
        raise ValueError(f"names has {len(names)} entries for {len(settings)} settings")
    if int(pairs_per_call) < 1:
        raise ValueError(f"pairs_per_call must be >= 1, got {pairs_per_call}")
    if len(settings) > 1 and pairs_per_call != 1:
        raise ValueError("several settings (best of) register one pair per call (each pair may stop after a "
                         "different setting); leave pairs_per_call at 1")
    items = _as_pairs(pairs)
    if sharded is None:
        sharded = world_size() > 1
    dist, own_group, world, rank = None, False, 1, 0
    if sharded:
        import torch.distributed as dist

        if not dist.is_initialized() and "WORLD_SIZE" not in os.environ:
            raise ValueError("sharded=True needs torch.distributed: run under torchrun (WORLD_SIZE set) or "
                             "initialise the process group first")
        dev = torch.device(device or "cpu")
        own_group = init_from_env(dev)  # nccl on CUDA (this rank's GPU), gloo on the CPU
        if dev.type == "cuda" and dev.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        world, rank = dist.get_world_size(), dist.get_rank()
    mine = items[rank::world]
    bar = None
    if progress and rank == 0:
        from tqdm import tqdm

        bar = tqdm(total=len(mine), desc=f"registering pairs (rank {rank}/{world})", unit="pair", leave=False)
    rows, error = [], None
    K = int(pairs_per_call)
    try:
        for s0 in range(0, len(mine), K):
            chunk = mine[s0:s0 + K]
            Ps = [_cloud(it["src"], max_points, seed) for it in chunk]
            Qs = [_cloud(it["tgt"], max_points, seed) for it in chunk]
            t0 = time.perf_counter()
            vps = [it.get("viewpoints") for it in chunk]
            vps = vps if any(v is not None for v in vps) else None
            if len(settings) > 1:  # one pair
                res = [houv_best_of(Ps[0], Qs[0], settings, accept_score=accept_score, seed=seed, device=device,
                                    viewpoints=None if vps is None else vps[0])]
            else:
                res = houv_batch(Ps, Qs, settings[0], viewpoints=vps, seed=seed, device=device)
            per_pair = (time.perf_counter() - t0) / len(chunk)
            for i, (it, P, Q, r) in enumerate(zip(chunk, Ps, Qs, res)):
                d = {"row": it["row"], "name": it["name"]}
                d.update({k: it[k] for k in ("src", "tgt") if isinstance(it[k], (str, os.PathLike))})
                d.update(result_dict(r), seconds=per_pair)
                if "best_of" in r.extra:
                    d["best_of"] = r.extra["best_of"]
                    d["preset"] = names[r.extra["best_of_index"]] if names else r.extra["best_of_index"]
                if it.get("gt") is not None:
                    gt = read_transform(it["gt"]) if isinstance(it["gt"], (str, os.PathLike)) else np.asarray(it["gt"])
                    ev = evaluate(r.transform.numpy(), gt, P, Q)
                    d.update({k: ev[k] for k in ("rot_err", "trans_err", "mse", "rmse", "success")})
                rows.append(d)
            if bar is not None:
                bar.update(len(chunk))
    except Exception as exc:  # noqa: BLE001 - under torchrun every rank hears of it at the gather
        if dist is None:
            raise
        error = exc
    finally:
        if bar is not None:
            bar.close()
    if dist is not None:
        try:
            parts = all_gather_or_raise(dist, rows, error)  # one rank's error reaches every rank
        finally:
            if own_group:
                dist.barrier()  # every rank done communicating before the group goes (gloo aborts otherwise)
                shutdown()
        if rank != 0:
            return None
        rows = [r for part in parts for r in part]
    return sorted(rows, key=lambda r: r["row"])
