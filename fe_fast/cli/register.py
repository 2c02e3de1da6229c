"""``fe-fast register SRC TGT``: register a source point cloud onto a target with HOUV (thesis ch. 3,
algorithm 3.1; ``--angle-bounds`` gives HOUV_pri, algorithm 3.2).

Reads .ply .pcd .xyz .pts (Open3D), .npy (numpy [N, 3]) and .txt/.csv (numpy text, 3 columns);
clouds over a million points are subsampled (fe_fast.registration.io.read_cloud).
Prints the 4x4 matrix mapping SRC onto TGT and the losses, or with ``--json`` one JSON object with
keys ``transform`` (4x4 list), ``rotation`` (3x3), ``translation`` (3), ``local_cd``, ``loss``,
``seconds`` (plus ``group``, ``iters``, ``stage_seconds``, ``accepted``, ``ransac_seconds`` with
correspondence starts, ``preset`` and ``best_of`` with ``--preset A+B``).

With no options this runs the default config (fe_fast.registration.config.DEFAULT_CONFIG: RANSAC+ICP
starts on FPFH features, early accept, HOUV's halving schedule, flip-aware selection); ``--preset
thesis`` is the thesis's algorithm 3.1. Every option sets one field of the config (options left out
keep the preset's or the default config's value); ``--threads`` sets its torch thread count."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from fe_fast.cli._common import (HelpFormatter, add_common_options, apply_common, deprecation, given, library_option,
                                 out_folder, print_json, record_defaults)


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


CONFIG = "fe_fast.registration.config"
#: the register / register-batch options that set a config field: option dest -> (stage, field) of
#: fe_fast.registration.config.RegistrationConfig (each option's default, shown by --help, is the
#: field's default, i.e. DEFAULT_CONFIG's; tests/cli/test_register_cli.py checks the table)
CONFIG_OPTIONS = {
    "groups": ("starts", "groups"),
    "init": ("starts", "rotations"),
    "init_translation": ("starts", "translation"),
    "correspondence_starts": ("starts", "correspondence"),
    "alpha": ("objective", "alpha"),
    "beta": ("objective", "beta"),
    "mapping": ("objective", "mapping"),
    "d_max": ("objective", "d_max"),
    "angle_bounds": ("objective", "angle_bounds"),
    "schedule": ("schedule", "stages"),
    "iters": ("schedule", "iters"),
    "lr": ("schedule", "lr"),
    "lr_schedule": ("schedule", "lr_schedule"),
    "prune_groups": ("schedule", "prune"),
    "early_stop": ("schedule", "early_stop"),
    "patience": ("schedule", "patience"),
    "refine_iters": ("refinement", "iters"),
    "refine_groups": ("refinement", "groups"),
    "refine_lr": ("refinement", "lr"),
    "refine_objective": ("refinement", "objective"),
    "refine_alpha": ("refinement", "alpha"),
    "refine_by": ("refinement", "by"),
    "select": ("selection", "method"),
    "flip_hypotheses": ("selection", "hypotheses"),
    "flip_iters": ("selection", "flip_iters"),
    "flip_extra_axes": ("selection", "extra_axes"),
    "inlier_factor": ("selection", "inlier_factor"),
    "visibility_weight": ("selection", "visibility_weight"),
    "accept_threshold": ("accept", "score"),
}
_CLASSES = {"starts": "Starts", "objective": "Objective", "schedule": "Schedule", "refinement": "Refinement",
            "selection": "Selection", "accept": "Accept"}


def _optional_float(text):
    """A float, or the text 'none' (None once the config is built; None itself means "not given")."""
    return "none" if str(text).lower() == "none" else float(text)


def add_houv_arguments(p):
    """Registration options shared by ``register`` and ``register-batch``: one per config field
    (:data:`CONFIG_OPTIONS`), default None = "not given", so the value comes from ``--preset`` or the
    default config; ``--help`` shows the field's default. The defaults live in
    :mod:`fe_fast.registration.config` alone."""
    p.add_argument("--preset", metavar="NAME", default=None,
                   help="start from a named config instead of the default one: thesis (algorithm 3.1 exactly), fast, "
                        "refine, robust, robust-pruned, robust-sfib, robust-wide, robust-search, robust-halving, "
                        "halving-local, default (fe_fast.registration.presets); options given override its values; "
                        "'A+B': run both, keep the answer with the lower inlier score (see --accept-score); "
                        "default: the general recipe (RANSAC+ICP starts, early accept, halving schedule, flip-aware "
                        "selection)")
    p.add_argument("--accept-score", type=float, default=None, metavar="S",
                   help="with --preset A+B: run the presets in order and stop at the first answer whose selection "
                        "score is at most S (0 = every point has a partner; see fe_fast.registration.houv_best_of)")
    p.add_argument("--ransac-start", action="store_true", help=argparse.SUPPRESS)  # deprecated: --correspondence-starts 1

    def opt(flag, help, **kw):
        dest = flag.lstrip("-").replace("-", "_")
        stage, field = CONFIG_OPTIONS[dest]
        return library_option(p, flag, source=f"{CONFIG}:{_CLASSES[stage]}", param=field, help=help, **kw)

    g = p
    opt("--groups", "hypotheses (Starts.groups)", type=int)
    opt("--init", "initial rotations: 'random' (thesis) or 'sfib' (Super-Fibonacci, an even cover of SO(3) or of "
                  "each --angle-bounds range)", choices=("random", "sfib"))
    opt("--init-translation", "start translations: 'random' (small random offsets) or 'search' (the best of 79 "
                              "candidate offsets for each start rotation)", choices=("random", "search"))
    opt("--correspondence-starts", "Open3D RANSAC+ICP runs on FPFH features whose answers start groups (0: none)",
        type=int, metavar="K")
    opt("--alpha", "local Chamfer fraction, eq. 3-9", type=float)
    opt("--beta", "projected Chamfer weight, eq. 3-11", type=float)
    opt("--mapping", "translation mapping, eq. 3-8 / 3-7", choices=("sin", "sigmoid"))
    opt("--d-max", "largest translation after centring (input units; None: from the clouds)", type=float)
    opt("--angle-bounds", "HOUV_pri angle sub-ranges in degrees, e.g. '0:45,45:90,90:135,135:180' (None: none; needs "
                          "--correspondence-starts 0)")
    opt("--schedule", "coarse-to-fine point counts and iterations, e.g. '256:400,2048:100'; 'none': all points for "
                      "--iters")
    opt("--iters", "Adam iterations without a --schedule", type=int)
    opt("--lr", "Adam learning rate", type=float)
    opt("--lr-schedule", "Adam rate over the schedule", choices=("constant", "cosine"))
    opt("--prune-groups", "after the schedule's first stage keep only this many best groups; a comma list prunes "
                          "after each of the first stages in turn, e.g. '32,8'; 'none': no pruning")
    opt("--early-stop", "relative plateau tolerance (None: off)", type=float)
    opt("--patience", "iterations without improvement before --early-stop stops", type=int)
    opt("--refine-iters", "after the schedule: iterations of local-Chamfer-only refinement of the best groups "
                          "(0 = off, the thesis's method)", type=int)
    opt("--refine-groups", "groups refined", type=int)
    opt("--refine-lr", "refinement rate (None: --lr)", type=float)
    opt("--refine-objective", "refinement loss: local Chamfer or the truncated Chamfer of --select inlier",
        choices=("local_cd", "inlier"))
    opt("--refine-alpha", "local Chamfer fraction during the refinement (None: --alpha)", type=float)
    opt("--refine-by", "criterion that picks the groups to refine (None: the selection's)",
        choices=("local_cd", "inlier"))
    opt("--select", "final choice: 'local_cd' (thesis, algorithm 3.1 line 10), 'inlier' (truncated Chamfer within "
                    "--inlier-factor x point spacing) or 'flips' (the best --flip-hypotheses groups and their "
                    "symmetric flips, refined by point-to-plane ICP, by fe_fast.registration.selection's score)",
        choices=("local_cd", "inlier", "flips"))
    opt("--flip-hypotheses", "with --select flips: best groups expanded by their flips", type=int)
    opt("--flip-iters", "point-to-plane ICP iterations per flip candidate (and for --accept-threshold)", type=int)
    opt("--flip-extra-axes", "half-turns about this many more axes per hypothesis", type=int)
    opt("--inlier-factor", "inlier threshold / point spacing", type=float)
    opt("--visibility-weight", "weight of the free-space violation share in the selection when viewpoints are given",
        type=float)
    opt("--accept-threshold", "return the best correspondence start (flips, refined) at once when its selection score "
                              "is at most this ('none': never)", type=_optional_float, metavar="S")


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


def config_changes(args) -> dict:
    """The config fields the options given set: ``{stage: {field: value}}`` (plus ``threads`` from the
    shared ``--threads``), for :meth:`~fe_fast.registration.config.RegistrationConfig.replace`."""
    values = given(args, CONFIG_OPTIONS)
    for dest, parse in (("angle_bounds", lambda x: parse_pairs_spec(x, "--angle-bounds")),
                        ("schedule", lambda x: parse_pairs_spec(x, "--schedule", int)),
                        ("prune_groups", parse_prune_groups)):
        if dest in values:
            text = values[dest]
            values[dest] = None if isinstance(text, str) and text.strip().lower() == "none" else parse(text)
    if values.get("accept_threshold") == "none":
        values["accept_threshold"] = None
    changes = {}
    for dest, v in values.items():
        stage, field = CONFIG_OPTIONS[dest]
        changes.setdefault(stage, {})[field] = v
    if getattr(args, "ransac_start", False):
        deprecation("--ransac-start", "--correspondence-starts 1 (the default config has it)")
        starts = changes.setdefault("starts", {})
        starts.setdefault("correspondence", 1)
    if args.threads is not None:
        changes["threads"] = args.threads
    return changes


def houv_settings(args):
    """``(preset names, one RegistrationConfig per run)`` from parsed options: the default config or
    ``--preset``'s, with the options given applied; one per ``--preset A+B`` name (for
    :func:`fe_fast.registration.houv_best_of`); checks ``--accept-score``."""
    from fe_fast.registration.config import DEFAULT_CONFIG
    from fe_fast.registration.presets import preset

    names = preset_names(args)
    if args.accept_score is not None and len(names) < 2:
        raise ValueError("--accept-score needs several presets, e.g. --preset halving-local+robust-halving")
    changes = config_changes(args)
    bases = [preset(n) for n in names] or [DEFAULT_CONFIG]
    return names, [b.replace(**changes) for b in bases]


def run(args) -> int:
    import numpy as np

    from fe_fast.registration import houv, houv_best_of
    from fe_fast.registration.io import read_cloud, read_transform, result_dict, write_cloud, write_transform

    apply_common(args)
    folder = out_folder(args, create=False)  # checked before the work
    names, settings = houv_settings(args)
    P = read_cloud(args.src, seed=args.seed)
    Q = read_cloud(args.tgt, seed=args.seed)
    run_kw = {"progress": args.progress, "seed": args.seed, "device": args.device}
    starts = [read_transform(f) for f in args.init_transform or []]
    if starts:
        run_kw["init_transforms"] = np.stack(starts)
    if args.source_viewpoint is not None or args.target_viewpoint is not None:
        run_kw["viewpoints"] = (args.source_viewpoint, args.target_viewpoint)
    res = (houv_best_of(P, Q, settings, accept_score=args.accept_score, **run_kw) if len(settings) > 1
           else houv(P, Q, settings[0], **run_kw))
    out = result_dict(res)
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
              + (f" with the RANSAC+ICP starts' {out['ransac_seconds']:.2f} s" if "ransac_seconds" in out else "")
              + (" (a correspondence start accepted early)" if out["accepted"] else "")
              + (f" (best of presets {args.preset}: {names[best]}; {len(res.extra['best_of'])} of {len(names)} run)"
                 if len(names) > 1 else "")
              + (f"; wrote {folder}/" if folder is not None else ""))
    return 0
