"""``fe-fast register SRC TGT``: register a source point cloud onto a target with HOUV (thesis ch. 3,
algorithm 3.1; ``--angle-bounds`` gives HOUV_pri, algorithm 3.2).

Reads .ply .pcd .xyz .pts (Open3D), .npy (numpy [N, 3]) and .txt/.csv (numpy text, 3 columns).
Prints the 4x4 matrix mapping SRC onto TGT and the losses, or with ``--json`` one JSON object with
keys ``transform`` (4x4 list), ``rotation`` (3x3), ``translation`` (3), ``local_cd``, ``loss``,
``seconds`` (plus ``group`` and ``iters``, and ``ransac_seconds`` with ``--ransac-start``)."""
from __future__ import annotations

import json
from pathlib import Path

OPEN3D_EXT = {".ply", ".pcd", ".xyz", ".xyzn", ".xyzrgb", ".pts"}
NUMPY_TEXT_EXT = {".txt", ".csv"}


def add_parser(sub):
    p = sub.add_parser(
        "register",
        help="register a source point cloud onto a target with HOUV",
        description=__doc__,
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
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=run)


def add_houv_arguments(p):
    """HOUV options shared by ``register`` and ``register-batch``."""
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
    p.add_argument("--alpha", type=float, default=0.5, help="local Chamfer fraction, eq. 3-9 (default 0.5)")
    p.add_argument("--beta", type=float, default=0.1, help="projected Chamfer weight, eq. 3-11 (default 0.1)")
    p.add_argument("--groups", type=int, default=32, help="random initialisations optimised together (default 32)")
    p.add_argument("--iters", type=int, default=500, help="Adam iterations (default 500)")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 1e-3)")
    p.add_argument("--mapping", choices=("sin", "sigmoid"), default="sin", help="translation mapping, eq. 3-8 / 3-7")
    p.add_argument("--d-max", type=float, default=None, help="largest translation after centring (input units)")
    p.add_argument(
        "--angle-bounds",
        default=None,
        help="HOUV_pri angle sub-ranges in degrees, e.g. '0:45,45:90,90:135,135:180'",
    )
    p.add_argument(
        "--schedule",
        default=None,
        help="coarse-to-fine point counts and iterations, e.g. '256:400,2048:100' (replaces --iters)",
    )
    p.add_argument("--lr-schedule", choices=("constant", "cosine"), default="constant",
                   help="Adam rate over each schedule stage (default constant, the thesis)")
    p.add_argument("--early-stop", type=float, default=None, help="relative plateau tolerance (off by default)")
    p.add_argument("--refine-iters", type=int, default=0,
                   help="after the schedule: iterations of local-Chamfer-only refinement of the best groups "
                        "(removes the projected terms' bias on partial pairs; 0 = off, the thesis's method)")
    p.add_argument("--refine-groups", type=int, default=4, help="groups refined (default 4)")
    p.add_argument("--refine-lr", type=float, default=None, help="refinement rate (default --lr)")
    p.add_argument("--init", choices=("random", "sfib"), default="random",
                   help="initial rotations: 'random' (thesis) or 'sfib' (Super-Fibonacci, an even cover of SO(3) "
                        "or of each --angle-bounds range)")
    p.add_argument("--select", choices=("local_cd", "inlier"), default="local_cd",
                   help="final choice: 'local_cd' (thesis, algorithm 3.1 line 10) or 'inlier' (truncated Chamfer "
                        "within --inlier-factor x point spacing; holds at low overlap)")
    p.add_argument("--inlier-factor", type=float, default=1.0, help="inlier threshold / point spacing (default 1)")
    p.add_argument("--refine-alpha", type=float, default=None,
                   help="local Chamfer fraction during the refinement (default --alpha; below the overlap helps)")
    p.add_argument("--refine-objective", choices=("local_cd", "inlier"), default="local_cd",
                   help="refinement loss: local Chamfer (default) or the truncated Chamfer of --select inlier")
    p.add_argument("--refine-by", choices=("local_cd", "inlier"), default=None,
                   help="criterion that picks the groups to refine (default: --select)")
    p.add_argument("--prune-groups", default=None,
                   help="with a --schedule: after its first stage keep only this many best groups; a comma "
                        "list prunes after each of the first stages in turn, e.g. '32,8'")
    p.add_argument("--init-translation", choices=("random", "search"), default="random",
                   help="start translations: 'random' (small random offsets) or 'search' (the best of 79 "
                        "candidate offsets for each start rotation)")
    p.add_argument("--visibility-weight", type=float, default=4.0,
                   help="weight of the free-space violation share in the selection when viewpoints are given "
                        "(default 4)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default cpu)")
    p.set_defaults(_houv_defaults={a.dest: a.default for a in p._actions})


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


def parse_point(text, name):
    """'x y z' -> [x, y, z] (None passes through)."""
    if text is None:
        return None
    try:
        xyz = [float(b) for b in text.split()]
    except ValueError:
        raise ValueError(f"{name}: expected three numbers 'x y z', got {text!r}") from None
    if len(xyz) != 3:
        raise ValueError(f"{name}: expected three numbers 'x y z', got {text!r}")
    return xyz


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
    """houv() keyword arguments from parsed options (``preset_name``: instead of ``--preset``)."""
    import torch

    device = args.device
    if device is not None:
        try:
            device = torch.device(device)
        except (RuntimeError, ValueError):
            raise ValueError(f"--device: not a device: {args.device!r}") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError("--device cuda: CUDA is not available")
    kw = dict(
        alpha=args.alpha,
        beta=args.beta,
        groups=args.groups,
        iters=args.iters,
        lr=args.lr,
        lr_schedule=args.lr_schedule,
        mapping=args.mapping,
        d_max=args.d_max,
        angle_bounds=parse_pairs_spec(args.angle_bounds, "--angle-bounds"),
        schedule=parse_pairs_spec(args.schedule, "--schedule", int),
        early_stop=args.early_stop,
        refine_iters=args.refine_iters,
        refine_groups=args.refine_groups,
        refine_lr=args.refine_lr,
        init=args.init,
        select=args.select,
        inlier_factor=args.inlier_factor,
        prune_groups=parse_prune_groups(args.prune_groups),
        init_translation=args.init_translation,
        refine_alpha=args.refine_alpha,
        refine_objective=args.refine_objective,
        refine_by=args.refine_by,
        visibility_weight=args.visibility_weight,
        seed=args.seed,
        device=device,
    )
    name = args.preset if preset_name is None else preset_name
    if name is not None:
        from fe_fast.registration.presets import preset

        for k, v in preset(name).items():  # the preset fills only the options left at their default
            if getattr(args, k) == args._houv_defaults[k]:
                kw[k] = v
    return kw


def read_cloud(path):
    """Read a point cloud file into a float64 numpy array [N, 3]; one-line errors for bad files,
    empty clouds and non-finite coordinates."""
    import numpy as np

    from fe_fast.cli import UserError

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    ext = p.suffix.lower()
    try:
        if ext == ".npy":
            arr = np.load(p, allow_pickle=False)
        elif ext in NUMPY_TEXT_EXT:
            arr = np.loadtxt(p, delimiter="," if ext == ".csv" else None, ndmin=2)
        elif ext in OPEN3D_EXT:
            import open3d as o3d

            if ext == ".ply" and p.read_bytes()[:3] != b"ply":
                raise UserError(f"{path}: not a PLY file (no 'ply' magic line)")
            o3d.utility.set_verbosity_level(o3d.utility.VerbosityLevel.Error)
            arr = np.asarray(o3d.io.read_point_cloud(str(p), format="auto", print_progress=False).points)
        else:
            raise UserError(f"{path}: unsupported format {ext or '(none)'} (use .ply .pcd .xyz .npy .txt)")
    except UserError:
        raise
    except Exception as exc:  # numpy / Open3D parse errors of every kind
        raise UserError(f"{path}: cannot read point cloud ({type(exc).__name__}: {exc})".splitlines()[0]) from None
    arr = np.asarray(arr)
    if arr.dtype.kind not in "fiu":
        raise UserError(f"{path}: not numeric point data")
    if arr.ndim != 2 or arr.shape[-1] != 3:
        if arr.size == 0:
            raise UserError(f"{path}: empty point cloud")
        raise UserError(f"{path}: expected N x 3 points, got shape {list(arr.shape)}")
    if arr.shape[0] == 0:
        raise UserError(f"{path}: empty point cloud")
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).any(axis=1).sum())
        raise UserError(f"{path}: {bad} point(s) with NaN or infinite coordinates")
    return arr


def write_cloud(path, points):
    import numpy as np

    p = Path(path)
    if p.suffix.lower() == ".npy":
        np.save(p, points)
        return
    import open3d as o3d

    ok = o3d.io.write_point_cloud(str(p), o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points)))
    if not ok:
        from fe_fast.cli import UserError

        raise UserError(f"{path}: could not write point cloud")


def read_transform(path):
    """A 4x4 transform (P onto Q) from ``.npy`` or JSON: ``{"transform": [[...] x 4]}`` (what
    --out-transform writes) or a plain 4x4 list."""
    import numpy as np

    from fe_fast.cli import UserError

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    try:
        if p.suffix == ".npy":
            T = np.load(p, allow_pickle=False)
        else:
            data = json.loads(p.read_text())
            T = data.get("transform") if isinstance(data, dict) else data
        T = np.asarray(T, dtype=np.float64)
    except (OSError, TypeError, ValueError) as e:
        raise UserError(f"{path}: cannot read a transform ({e})") from None
    if T.shape != (4, 4):
        raise UserError(f"{path}: expected a 4x4 transform (.npy, or JSON {{\"transform\": [[...], ...]}} or a 4x4 "
                        f"list), got shape {T.shape}")
    return T


def result_dict(res) -> dict:
    return {
        "transform": res.transform.tolist(),
        "rotation": res.R.tolist(),
        "translation": res.t.tolist(),
        "local_cd": res.local_cd,
        "loss": res.loss,
        "seconds": res.seconds,
        "group": res.group,
        "iters": res.iters,
    }


def run(args) -> int:
    import numpy as np

    from fe_fast.registration import houv, houv_best_of

    names, settings = houv_settings(args)
    P = read_cloud(args.src)
    Q = read_cloud(args.tgt)
    run_kw = {"progress": not args.no_progress and not args.json}
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
    if args.out_transform:
        Path(args.out_transform).write_text(json.dumps({"transform": out["transform"]}, indent=2) + "\n")
    if args.out_aligned:
        write_cloud(args.out_aligned, P @ np.asarray(out["rotation"]).T + np.asarray(out["translation"]))
    if args.json:
        print(json.dumps(out))
    else:
        print("transform (SRC -> TGT):")
        for row in out["transform"]:
            print("  " + " ".join(f"{v: .8f}" for v in row))
        print(f"local Chamfer (eq. 3-9): {out['local_cd']:.6g}")
        print(f"hybrid loss (eq. 3-11): {out['loss']:.6g}")
        best = res.extra.get("best_of_index", 0)
        print(f"group {out['group']} of {settings[best]['groups']}, {out['iters']} iterations, {out['seconds']:.2f} s"
              + (f" with the RANSAC+ICP start's {ransac['seconds']:.2f} s" if ransac is not None else "")
              + (f" (best of presets {args.preset}: {names[best]}; {len(res.extra['best_of'])} of {len(names)} run)"
                 if len(names) > 1 else ""))
    return 0
