"""``fe-fast register-batch PAIRS.csv --out DIR``: register many pairs with HOUV.

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
and adds each run's selection score (``best_of``) to the pair's line. The work is
:func:`fe_fast.registration.register_pairs` (``sharded`` under torchrun); ``--out DIR`` receives
``results.jsonl`` and ``summary.json``."""
from __future__ import annotations

from pathlib import Path

from fe_fast.cli._common import HelpFormatter, add_common_options, apply_common, deprecation, out_folder, \
    print_json, record_defaults
from fe_fast.cli.register import add_houv_arguments, houv_settings


def add_parser(sub):
    p = sub.add_parser(
        "register-batch",
        help="register many point-cloud pairs listed in a CSV (torchrun: sharded over ranks)",
        description=__doc__,
        formatter_class=HelpFormatter,
    )
    p.add_argument("pairs", metavar="PAIRS.csv", help="CSV with columns src,tgt[,name,gt]")
    p.add_argument("--pairs-per-call", type=int, default=1, help="pairs optimised together in one batch")
    add_houv_arguments(p)
    add_common_options(p, out_required=True,
                       out_help="folder for results.jsonl (one line per pair, written by rank 0) and summary.json "
                                "(what --json prints)")
    record_defaults(p)
    p.set_defaults(func=run)


def read_pairs_csv(path):
    """The pair list (:func:`fe_fast.registration.io.read_pairs`)."""
    from fe_fast.registration.io import read_pairs

    return read_pairs(path)


def summary(rows, path) -> dict:
    """``{"results": path, "pairs": n}`` plus, over the pairs with a ground truth, the mean rotation
    error and the recall (share of successes)."""
    import numpy as np

    out = {"results": str(path), "pairs": len(rows)}
    ok = [r for r in rows if "success" in r]
    if ok:
        out.update(with_gt=len(ok), mean_rot_err=float(np.mean([r["rot_err"] for r in ok])),
                   recall=float(np.mean([r["success"] for r in ok])))
    return out


def run(args) -> int:
    import json

    from fe_fast.registration import register_pairs

    apply_common(args)
    out = Path(args.out)
    if out.suffix == ".jsonl":  # the old spelling: --out results.jsonl
        deprecation("--out FILE.jsonl", "--out DIR (writes DIR/results.jsonl)")
        path = out
    else:
        path = out_folder(args, create=False) / "results.jsonl"
    names, settings = houv_settings(args)
    if len(names) > 1 and args.pairs_per_call != 1:
        raise ValueError("--preset A+B registers one pair per call (each pair may stop after a different "
                         "preset); leave --pairs-per-call at 1")
    rows = register_pairs(args.pairs, settings, names=names or None, accept_score=args.accept_score,
                          pairs_per_call=args.pairs_per_call, ransac_start=args.ransac_start,
                          progress=args.progress)
    if rows is None:  # a rank other than 0 under torchrun
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    info = summary(rows, path)
    if path.name == "results.jsonl" and path.parent == out:
        (out / "summary.json").write_text(json.dumps(info, indent=2) + "\n")
    if args.json:
        print_json(info)
    else:
        msg = f"wrote {len(rows)} results to {path}"
        if "recall" in info:
            msg += f"; mean rotation error {info['mean_rot_err']:.3f} deg, recall {info['recall']:.3f}"
        print(msg)
    return 0
