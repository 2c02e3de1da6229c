"""``fe-fast register-batch PAIRS.csv --out DIR``: register many pairs with HOUV.

PAIRS.csv has a header with at least the columns ``src`` and ``tgt`` (paths, relative to the CSV's
folder or absolute); optional ``name``, ``gt`` (a .npy or .json 4x4 ground truth P -> Q, which
adds rot_err / trans_err / mse / success to the output, thesis eq. 3-13, 3-14) and
``src_viewpoint`` / ``tgt_viewpoint`` (each scan's sensor position in its own frame, 'x y z': the
free-space check, with ``--select inlier`` or ``flips``). The options are ``register``'s: each sets
one field of the config (fe_fast.registration.config; none given: the default config). This is the format
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

from fe_fast.cli._common import HelpFormatter, add_common_options, apply_common, deprecation, given, \
    library_option, out_folder, print_json, record_defaults
from fe_fast.cli.register import add_houv_arguments, houv_settings


def add_parser(sub):
    p = sub.add_parser(
        "register-batch",
        help="register many point-cloud pairs listed in a CSV (torchrun: sharded over ranks)",
        description=__doc__,
        formatter_class=HelpFormatter,
    )
    p.add_argument("pairs", metavar="PAIRS.csv", help="CSV with columns src,tgt[,name,gt]")
    library_option(p, "--pairs-per-call", source="fe_fast.registration.batch:register_pairs", type=int,
                   help="pairs optimised together in one batch")
    add_houv_arguments(p)
    add_common_options(p, out_required=True,
                       out_help="folder for results.jsonl (one line per pair, written by rank 0) and summary.json "
                                "(what --json prints)")
    record_defaults(p)
    p.set_defaults(func=run)


def run(args) -> int:
    import json

    from fe_fast.registration import register_pairs
    from fe_fast.registration.batch import summarize
    from fe_fast.registration.io import write_rows

    apply_common(args)
    legacy = Path(args.out).suffix == ".jsonl"  # the old spelling: --out results.jsonl
    if legacy:
        deprecation("--out FILE.jsonl", "--out DIR (writes DIR/results.jsonl)")
        path = Path(args.out)
    else:
        path = out_folder(args, create=False) / "results.jsonl"
    names, settings = houv_settings(args)
    rows = register_pairs(args.pairs, settings if len(settings) > 1 else settings[0], names=names or None,
                          accept_score=args.accept_score, seed=args.seed, device=args.device, progress=args.progress,
                          **given(args, ("pairs_per_call",)))
    if rows is None:  # a rank other than 0 under torchrun
        return 0
    write_rows(path, rows)
    info = {"results": str(path), **summarize(rows)}
    if not legacy:
        (path.parent / "summary.json").write_text(json.dumps(info, indent=2) + "\n")
    if args.json:
        print_json(info)
    else:
        msg = f"wrote {len(rows)} results to {path}"
        if "recall" in info:
            msg += f"; mean rotation error {info['mean_rot_err']:.3f} deg, recall {info['recall']:.3f}"
        print(msg)
    return 0
