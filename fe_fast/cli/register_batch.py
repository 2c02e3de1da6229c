"""``fe-fast register-batch PAIRS.csv --out results.jsonl``: register many pairs with HOUV.

PAIRS.csv has a header with at least the columns ``src`` and ``tgt`` (paths, relative to the CSV's
folder or absolute); optional ``name``, ``gt`` (a .npy or .json 4x4 ground truth P -> Q, which
adds rot_err / trans_err / mse / success to the output, thesis eq. 3-13, 3-14) and
``src_viewpoint`` / ``tgt_viewpoint`` (each scan's sensor position in its own frame, 'x y z': the
free-space check, with ``--select inlier``). This is the format
``fe_fast.datasets.partial_pairs.save_pairs`` writes.

Under ``torchrun`` (``WORLD_SIZE`` > 1) every rank takes rows ``rank, rank + world, ...``
(torch.distributed, gloo on CPU / nccl with ``--device cuda``: each rank uses GPU ``LOCAL_RANK``),
and rank 0 gathers all results and writes one JSONL in the CSV's row order. ``--pairs-per-call K``
registers K pairs at once (B pairs x G groups in one batched optimisation). ``--preset A+B`` (with
``--accept-score``: the cascade, :func:`fe_fast.registration.houv_best_of`) registers one pair per call
and adds each run's selection score (``best_of``) to the pair's line."""
from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path

from fe_fast.cli.register import add_houv_arguments, houv_settings, parse_point, read_cloud, read_transform


def add_parser(sub):
    p = sub.add_parser(
        "register-batch",
        help="register many point-cloud pairs listed in a CSV (torchrun: sharded over ranks)",
        description=__doc__,
    )
    p.add_argument("pairs", metavar="PAIRS.csv", help="CSV with columns src,tgt[,name,gt]")
    p.add_argument("--out", required=True, metavar="results.jsonl", help="output JSONL (written by rank 0)")
    p.add_argument("--pairs-per-call", type=int, default=1, help="pairs optimised together in one batch")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_houv_arguments(p)
    p.set_defaults(func=run)


def read_pairs_csv(path):
    from fe_fast.cli import UserError

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise UserError(f"{path}: no pairs (need a header with src,tgt and at least one row)")
    for k in ("src", "tgt"):
        if k not in rows[0]:
            raise UserError(f"{path}: missing column {k!r} (header must include src,tgt)")
    base = path.parent
    out = []
    for i, r in enumerate(rows):
        item = {
            "row": i,
            "name": r.get("name") or f"pair_{i}",
            "src": str((base / r["src"]) if not Path(r["src"]).is_absolute() else Path(r["src"])),
            "tgt": str((base / r["tgt"]) if not Path(r["tgt"]).is_absolute() else Path(r["tgt"])),
        }
        if r.get("gt"):
            item["gt"] = str((base / r["gt"]) if not Path(r["gt"]).is_absolute() else Path(r["gt"]))
        try:
            vp = tuple(parse_point(r.get(k) or None, f"{path} row {i + 2} column {k}")
                       for k in ("src_viewpoint", "tgt_viewpoint"))
        except ValueError as e:
            raise UserError(str(e)) from None
        if vp != (None, None):
            item["viewpoints"] = vp
        out.append(item)
    return out


def _dist_env():
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    return world, rank


def run(args) -> int:
    import numpy as np
    import torch

    from fe_fast.cli.register import result_dict
    from fe_fast.registration import baselines, houv_batch, houv_best_of
    from fe_fast.registration.metrics import evaluate

    if args.pairs_per_call < 1:
        raise ValueError("--pairs-per-call must be >= 1")
    names, settings = houv_settings(args)
    if len(names) > 1 and args.pairs_per_call != 1:
        raise ValueError("--preset A+B registers one pair per call (each pair may stop after a different "
                         "preset); leave --pairs-per-call at 1")
    items = read_pairs_csv(args.pairs)
    world, rank = _dist_env()
    kw = settings[0]
    dist = None
    if world > 1:
        import torch.distributed as dist

        use_cuda = kw["device"] is not None and torch.device(kw["device"]).type == "cuda"
        if use_cuda:
            local = int(os.environ.get("LOCAL_RANK", "0"))
            torch.cuda.set_device(local)
            for kw_ in settings:
                kw_["device"] = torch.device("cuda", local)
        dist.init_process_group("nccl" if use_cuda else "gloo")
    mine = items[rank::world]
    results = []
    bar = None
    if not args.no_progress and rank == 0:
        from tqdm import tqdm

        bar = tqdm(total=len(mine), desc=f"register-batch (rank {rank}/{world})", unit="pair", leave=False)
    K = args.pairs_per_call
    for s in range(0, len(mine), K):
        chunk = mine[s : s + K]
        Ps = [read_cloud(it["src"]) for it in chunk]
        Qs = [read_cloud(it["tgt"]) for it in chunk]
        t0 = time.perf_counter()
        vps = [it.get("viewpoints") for it in chunk]
        run_kw = {"viewpoints": vps} if any(v is not None for v in vps) else {}
        ransac = [baselines.ransac_icp(P, Q, seed=args.seed) for P, Q in zip(Ps, Qs)] if args.ransac_start else None
        if ransac is not None:
            run_kw["init_transforms"] = [r["transform"] for r in ransac]
        if len(settings) > 1:  # one pair
            one = {k: v[0] for k, v in run_kw.items()}
            res = [houv_best_of(Ps[0], Qs[0], settings, accept_score=args.accept_score, **one)]
        else:
            res = houv_batch(Ps, Qs, **kw, **run_kw)
        per_pair = (time.perf_counter() - t0) / len(chunk)
        for i, (it, P, Q, r) in enumerate(zip(chunk, Ps, Qs, res)):
            d = {"row": it["row"], "name": it["name"], "src": it["src"], "tgt": it["tgt"], **result_dict(r)}
            d["seconds"] = per_pair
            if ransac is not None:
                d["ransac_seconds"] = ransac[i]["seconds"]
            if "best_of" in r.extra:
                d.update(best_of=r.extra["best_of"], preset=names[r.extra["best_of_index"]])
            if "gt" in it:
                ev = evaluate(r.transform.numpy(), read_transform(it["gt"]), P, Q)
                d.update({k: ev[k] for k in ("rot_err", "trans_err", "mse", "rmse", "success")})
            results.append(d)
        if bar is not None:
            bar.update(len(chunk))
    if bar is not None:
        bar.close()
    if dist is not None:
        gathered = [None] * world if rank == 0 else None
        dist.gather_object(results, gathered, dst=0)
        dist.destroy_process_group()
        if rank != 0:
            return 0
        results = [r for part in gathered for r in part]
    results.sort(key=lambda r: r["row"])
    with open(args.out, "w") as f:
        for r in results:
            f.write(json.dumps(r) + "\n")
    ok = [r for r in results if "success" in r]
    msg = f"wrote {len(results)} results to {args.out}"
    if ok:
        msg += (
            f"; mean rotation error {np.mean([r['rot_err'] for r in ok]):.3f} deg, "
            f"recall {np.mean([r['success'] for r in ok]):.3f}"
        )
    print(msg)
    return 0
