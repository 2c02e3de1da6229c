"""``fe-fast register SRC TGT``: register a source point cloud onto a target with HOUV (thesis ch. 3,
algorithm 3.1; ``--angle-bounds`` gives HOUV_pri, algorithm 3.2).

Reads .ply .pcd .xyz .pts (Open3D), .npy (numpy [N, 3]) and .txt/.csv (numpy text, 3 columns);
clouds over a million points are subsampled (fe_fast.registration.io.read_cloud).
Prints the 4x4 matrix mapping SRC onto TGT and the losses, or with ``--json`` one JSON object with
keys ``transform`` (4x4 list), ``rotation`` (3x3), ``translation`` (3), ``local_cd``, ``loss``,
``seconds`` (plus ``group`` and ``iters``, ``ransac_seconds`` with ``--ransac-start``, ``preset``
and ``best_of`` with ``--preset A+B``). Options left out take houv()'s defaults."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from fe_fast.cli._common import (HelpFormatter, add_common_options, apply_common, given, library_option, out_folder,
                                 preset_values, print_json, record_defaults)


def add_parser(sub):
    p = sub.add_parser(
        "register",
        help="register a source point cloud onto a target with HOUV",
        description=__doc__,
        formatter_class=HelpFormatter,
    )
    p.add_argument("src", metavar="SRC", help="source cloud (.ply .pcd .xyz .npy .txt)")
    p.add_argument("tgt", metavar="TGT", help="target cloud")
    add_houv_arguments(p)
    p.add_argument("--init-transform", metavar="T.json", action="append", default=None,
                   help="start one group at this 4x4 transform (JSON as --out-transform writes, or a plain 4x4 "
                        "list), e.g. a feature matcher's answer or the previous frame's; repeatable")
    p.add_argument("--source-viewpoint", nargs=3, type=float, metavar=("X", "Y", "Z"), default=None,
                   help="the source scan's sensor position in SRC's frame (e.g. 0 0 0 for data in sensor "
                        "coordinates): enables the free-space check (needs --select inlier, as the robust presets)")
    p.add_argument("--target-viewpoint", nargs=3, type=float, metavar=("X", "Y", "Z"), default=None,
                   help="the target scan's sensor position in TGT's frame (see --source-viewpoint)")
    p.add_argument("--out-transform", metavar="T.json", help="write the 4x4 transform (JSON) here")
    p.add_argument("--out-aligned", metavar="aligned.ply", help="write the transformed source here")
    add_common_options(p, out_help="folder for result.json (what --json prints), transform.json and aligned.EXT "
                                   "(the transformed source, in SRC's format)")
    record_defaults(p)
    p.set_defaults(func=run)


HOUV = "fe_fast.registration.houv:houv"
#: houv() parameters that are options of register / register-batch with the same name.
HOUV_OPTIONS = ("alpha", "beta", "groups", "iters", "lr", "lr_schedule", "mapping", "d_max", "early_stop",
                "refine_iters", "refine_groups", "refine_lr", "init", "select", "inlier_factor", "init_translation",
                "refine_alpha", "refine_objective", "refine_by", "visibility_weight")
#: houv() parameters given as text options and parsed ('a:b,c:d', '32,8').
HOUV_SPEC_OPTIONS = ("angle_bounds", "schedule", "prune_groups")


def add_houv_arguments(p):
    """HOUV options shared by ``register`` and ``register-batch``: default None = houv()'s default
    (``--help`` shows it), so the defaults live in :func:`fe_fast.registration.houv` alone."""
    p.add_argument("--preset", metavar="NAME", default=None,
                   help="named settings that fill the options left at their default: thesis, fast, refine, "
                        "robust, robust-pruned, robust-sfib, robust-wide, robust-search, robust-halving, "
                        "halving-local (fe_fast.registration.presets, measured in bench/results/houv.md: with "
                        "a RANSAC+ICP start and the sensor positions, halving-local was the most accurate on "
                        "generated mvp and modelnet pairs, robust-halving on so3); 'A+B': run both, keep the "
                        "answer with the lower selection score (see --accept-score); default: the thesis's settings")
    p.add_argument("--accept-score", type=float, default=None, metavar="S",
                   help="with --preset A+B: run the presets in order and stop at the first answer whose selection "
                        "score is at most S (0 = every point has a partner; see fe_fast.registration.houv_best_of)")
    p.add_argument("--ransac-start", action="store_true",
                   help="also start one group (per pair) at Open3D RANSAC+ICP's answer on FPFH features (about "
                        "0.1 s for 2048 points; its time is included in 'seconds' and given as 'ransac_seconds')")
    opt = lambda *a, **k: library_option(p, *a, source=HOUV, **k)  # noqa: E731
    opt("--alpha", type=float, help="local Chamfer fraction, eq. 3-9")
    opt("--beta", type=float, help="projected Chamfer weight, eq. 3-11")
    opt("--groups", type=int, help="random initialisations optimised together")
    opt("--iters", type=int, help="Adam iterations")
    opt("--lr", type=float, help="Adam learning rate")
    opt("--mapping", choices=("sin", "sigmoid"), help="translation mapping, eq. 3-8 / 3-7")
    opt("--d-max", type=float, help="largest translation after centring (input units; None: from the clouds)")
    p.add_argument("--angle-bounds", default=None,
                   help="HOUV_pri angle sub-ranges in degrees, e.g. '0:45,45:90,90:135,135:180' (default: none)")
    p.add_argument("--schedule", default=None,
                   help="coarse-to-fine point counts and iterations, e.g. '256:400,2048:100' (replaces --iters; "
                        "default: all points for --iters)")
    opt("--lr-schedule", choices=("constant", "cosine"), help="Adam rate over each schedule stage")
    opt("--early-stop", type=float, help="relative plateau tolerance (None: off)")
    opt("--refine-iters", type=int,
        help="after the schedule: iterations of local-Chamfer-only refinement of the best groups "
             "(removes the projected terms' bias on partial pairs; 0 = off, the thesis's method)")
    opt("--refine-groups", type=int, help="groups refined")
    opt("--refine-lr", type=float, help="refinement rate (None: --lr)")
    opt("--init", choices=("random", "sfib"),
        help="initial rotations: 'random' (thesis) or 'sfib' (Super-Fibonacci, an even cover of SO(3) "
             "or of each --angle-bounds range)")
    opt("--select", choices=("local_cd", "inlier"),
        help="final choice: 'local_cd' (thesis, algorithm 3.1 line 10) or 'inlier' (truncated Chamfer "
             "within --inlier-factor x point spacing; holds at low overlap)")
    opt("--inlier-factor", type=float, help="inlier threshold / point spacing")
    opt("--refine-alpha", type=float,
        help="local Chamfer fraction during the refinement (None: --alpha; below the overlap helps)")
    opt("--refine-objective", choices=("local_cd", "inlier"),
        help="refinement loss: local Chamfer or the truncated Chamfer of --select inlier")
    opt("--refine-by", choices=("local_cd", "inlier"),
        help="criterion that picks the groups to refine (None: --select)")
    p.add_argument("--prune-groups", default=None,
                   help="with a --schedule: after its first stage keep only this many best groups; a comma "
                        "list prunes after each of the first stages in turn, e.g. '32,8' (default: no pruning)")
    opt("--init-translation", choices=("random", "search"),
        help="start translations: 'random' (small random offsets) or 'search' (the best of 79 "
             "candidate offsets for each start rotation)")
    opt("--visibility-weight", type=float,
        help="weight of the free-space violation share in the selection when viewpoints are given")


def parse_pairs_spec(text, name, cast=float):
    """'a:b,c:d' -> [[a, b], [c, d]]."""
    if text is None:
        return None
    out = []
    for part in text.split(","):
        bits = part.strip().split(":")
        if len(bits) != 2:
            raise ValueError(f"{name}: expected 'a:b,c:d', got {text!r}")
        try:
            out.append([cast(bits[0]), cast(bits[1])])
        except ValueError:
            raise ValueError(f"{name}: not numbers in {part!r}") from None
    return out


def parse_prune_groups(text):
    """'8' -> 8, '32,8' -> [32, 8] (a value already parsed passes through)."""
    if text is None or not isinstance(text, str):
        return text
    try:
        counts = [int(x) for x in text.split(",")]
    except ValueError:
        raise ValueError(f"--prune-groups: expected an int or a comma list of ints, got {text!r}") from None
    return counts[0] if len(counts) == 1 else counts


def preset_names(args) -> list:
    """``--preset``'s names: ``'A'`` -> ``['A']``; ``'A+B'`` -> ``['A', 'B']`` (``register`` runs each and
    keeps the answer with the lowest selection score, :func:`fe_fast.registration.houv_best_of`)."""
    return [] if args.preset is None else [n.strip() for n in args.preset.split("+")]


def houv_settings(args):
    """``(preset names, one houv() kwargs dict per run)`` from parsed options: one dict, or one per
    ``--preset A+B`` name (for :func:`fe_fast.registration.houv_best_of`); checks ``--accept-score``."""
    names = preset_names(args)
    if args.accept_score is not None and len(names) < 2:
        raise ValueError("--accept-score needs several presets, e.g. --preset halving-local+robust-halving")
    return names, ([houv_kwargs(args, n) for n in names] if len(names) > 1 else [houv_kwargs(args)])


def houv_kwargs(args, preset_name=None) -> dict:
    """houv() keyword arguments from parsed options: only the options given (houv()'s defaults apply
    to the rest), the preset's values for the options left at their default (``preset_name``:
    instead of ``--preset``), ``seed`` and ``device`` when given."""
    kw = given(args, HOUV_OPTIONS)
    kw.update(given(argparse.Namespace(
        angle_bounds=parse_pairs_spec(args.angle_bounds, "--angle-bounds"),
        schedule=parse_pairs_spec(args.schedule, "--schedule", int),
        prune_groups=parse_prune_groups(args.prune_groups)), HOUV_SPEC_OPTIONS))
    kw["seed"] = args.seed
    if args.device is not None:
        kw["device"] = args.device
    name = args.preset if preset_name is None else preset_name
    if name is not None:
        from fe_fast.registration.presets import preset

        kw.update(preset_values(args, preset(name)))  # the preset fills only the options left at their default
    return kw


def run(args) -> int:
    import numpy as np

    from fe_fast.registration import houv, houv_best_of
    from fe_fast.registration.io import read_cloud, read_transform, result_dict, write_cloud, write_transform

    apply_common(args)
    folder = out_folder(args, create=False)  # checked before the work
    names, settings = houv_settings(args)
    P = read_cloud(args.src, seed=args.seed)
    Q = read_cloud(args.tgt, seed=args.seed)
    run_kw = {"progress": args.progress}
    starts = [read_transform(f) for f in args.init_transform or []]
    ransac = None
    if args.ransac_start:
        from fe_fast.registration import baselines

        ransac = baselines.ransac_icp(P, Q, seed=args.seed)
        starts.append(ransac["transform"])
    if starts:
        run_kw["init_transforms"] = np.stack(starts)
    if args.source_viewpoint is not None or args.target_viewpoint is not None:
        run_kw["viewpoints"] = (args.source_viewpoint, args.target_viewpoint)
    res = (houv_best_of(P, Q, settings, accept_score=args.accept_score, **run_kw) if len(settings) > 1
           else houv(P, Q, **settings[0], **run_kw))
    out = result_dict(res)
    if ransac is not None:
        out["seconds"] += ransac["seconds"]
        out["ransac_seconds"] = ransac["seconds"]
    if len(names) > 1:
        out.update(preset=names[res.extra["best_of_index"]], best_of=res.extra["best_of"])
    aligned = P @ np.asarray(out["rotation"]).T + np.asarray(out["translation"])
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "result.json").write_text(json.dumps(out, indent=2) + "\n")
        write_transform(folder / "transform.json", out["transform"])
        write_cloud(folder / f"aligned{Path(args.src).suffix.lower()}", aligned)
    if args.out_transform:
        write_transform(args.out_transform, out["transform"])
    if args.out_aligned:
        write_cloud(args.out_aligned, aligned)
    if args.json:
        print_json(out)
    else:
        print("transform (SRC -> TGT):")
        for row in out["transform"]:
            print("  " + " ".join(f"{v: .8f}" for v in row))
        print(f"local Chamfer (eq. 3-9): {out['local_cd']:.6g}")
        print(f"hybrid loss (eq. 3-11): {out['loss']:.6g}")
        best = res.extra.get("best_of_index", 0)
        print(f"group {out['group']} of {res.all_R.shape[0]}, {out['iters']} iterations, {out['seconds']:.2f} s"
              + (f" with the RANSAC+ICP start's {ransac['seconds']:.2f} s" if ransac is not None else "")
              + (f" (best of presets {args.preset}: {names[best]}; {len(res.extra['best_of'])} of {len(names)} run)"
                 if len(names) > 1 else "")
              + (f"; wrote {folder}/" if folder is not None else ""))
    return 0
