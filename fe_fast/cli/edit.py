"""``fe-fast edit``: continuous S-space edits of generated (``--sample-seeds``) or given (``--latent``)
samples along channels (``--channels 6:501``; thesis eq. 6-3), or along the channels located for an
attribute / region (``--classifier C --attribute a`` / ``--parser P --region r``, from ``--seed``'s
samples; ``--mode multi`` for eq. 6-7), written as a PNG grid ``grid.png`` (rows: samples, columns:
``--alphas``) and ``edit.json`` (what ``--json`` prints) in ``--out``."""
from __future__ import annotations

from fe_fast.cli._common import add_common_options, apply_common, deprecation, out_folder, print_json


def add_parser(sub):
    from fe_fast.cli.locate import add_teacher_args

    p = sub.add_parser("edit", help="edit generated or inverted samples along S channels (PNG grid)")
    p.add_argument("--generator", required=True, help="generator checkpoint")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--sample-seeds", metavar="SEEDS", help="seed(s) of the generated samples, e.g. 3 or 3,4,5")
    src.add_argument("--latent", help="a .pt/.npy file: w [w_dim], w [B, w_dim], w+ [B, num_ws, w_dim], "
                                      "or a list of s tensors (e.g. from an encoder)")
    p.add_argument("--channels", help="LAYER:CHANNEL[,LAYER:CHANNEL...], e.g. 6:501 (or locate with a teacher)")
    p.add_argument("--alphas", default="-10,-5,0,5,10", help="edit strengths in units (default -10,-5,0,5,10)")
    p.add_argument("--mode", default="single", choices=("single", "multi"),
                   help="single channel (eq. 6-3) or multi channel (eq. 6-7)")
    add_common_options(p, out_required=True, out_help="folder for grid.png and edit.json")
    seed = next(a for a in p._actions if a.dest == "seed")
    seed.type, seed.default = str, None  # for one release also the old '--seed SEEDS' (see run)
    add_teacher_args(p, required=False)
    # Let "--alphas -10,-5,0,5,10" through: argparse only takes "-5"-like strings for values, not lists.
    import re

    p._negative_number_matcher = re.compile(r"^-\d[\d.,eE+-]*$|^-\.\d[\d.,eE+-]*$")
    p.set_defaults(func=run)


def parse_alphas(spec: str):
    try:
        alphas = [float(a) for a in spec.split(",") if a.strip()]
    except ValueError:
        raise ValueError(f"--alphas must be comma-separated numbers, got {spec!r}") from None
    if not alphas:
        raise ValueError("--alphas is empty")
    return alphas


def load_latent(path, G):
    """s codes from a file holding w, w+ or a list of s tensors."""
    from pathlib import Path

    import numpy as np
    import torch

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no latent file at {path}")
    if path.suffix == ".npy":
        obj = torch.from_numpy(np.load(path))
    else:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(obj, dict):
        for key in ("s", "w_plus", "w"):
            if key in obj:
                obj = obj[key]
                break
    if isinstance(obj, (list, tuple)):
        s = [torch.as_tensor(t).float() for t in obj]
        s = [t.unsqueeze(0) if t.dim() == 1 else t for t in s]
        if len(s) != len(G.synthesis.s_layers):
            raise ValueError(f"--latent holds {len(s)} s tensors, the generator has {len(G.synthesis.s_layers)} "
                             "style layers")
        return G.synthesis._check_s(s)
    w = torch.as_tensor(obj).float()
    if w.dim() == 1:
        w = w.unsqueeze(0)
    if w.dim() == 2 and w.shape[1] != G.w_dim:
        if w.shape == (G.num_ws, G.w_dim):
            w = w.unsqueeze(0)
        else:
            raise ValueError(f"--latent holds shape {list(w.shape)}: expected w [{G.w_dim}], [B, {G.w_dim}] or "
                             f"w+ [B, {G.num_ws}, {G.w_dim}]")
    with torch.no_grad():
        return G.synthesis.w_to_s(w)


def _old_spellings(args):
    """``--seed SEEDS`` without ``--sample-seeds``/``--latent`` (the old spelling of the samples'
    seeds) and ``--out GRID.png``: still accepted for this release, with a deprecation line."""
    from pathlib import Path

    seed = args.seed
    if args.sample_seeds is None and args.latent is None:
        if seed is None:
            raise ValueError("give the samples: --sample-seeds SEEDS or --latent FILE")
        deprecation("edit --seed SEEDS (the samples' seeds)", "--sample-seeds SEEDS (--seed is the run's seed)")
        args.sample_seeds, seed = seed, None
    try:
        args.seed = 0 if seed is None else int(seed)
    except ValueError:
        raise ValueError(f"--seed must be an integer, got {seed!r}") from None
    if Path(args.out).suffix.lower() == ".png":
        deprecation("--out GRID.png", "--out DIR (writes DIR/grid.png and DIR/edit.json)")
        return Path(args.out), None
    folder = out_folder(args, create=False)
    return folder / "grid.png", folder / "edit.json"


def run(args) -> int:
    import json

    from fe_fast.cli.locate import channels_from_args, load_generator_on
    from fe_fast.editing.edit import s_for_seeds, sweep_grid

    grid, info_path = _old_spellings(args)
    apply_common(args)
    alphas = parse_alphas(args.alphas)
    G = load_generator_on(args)
    if args.sample_seeds is not None:
        try:
            seeds = [int(x) for x in args.sample_seeds.split(",") if x.strip()]
        except ValueError:
            raise ValueError(f"--sample-seeds must be an integer or a comma-separated list, got "
                             f"{args.sample_seeds!r}") from None
        s = s_for_seeds(G, seeds)
    else:
        s = load_latent(args.latent, G)
        if args.device is not None:
            s = [t.to(args.device) for t in s]
    channels = channels_from_args(args, G)
    if not args.channels and not args.json:
        print(channels.table())
    grid.parent.mkdir(parents=True, exist_ok=True)
    sweep_grid(G, s, channels, alphas, grid, mode=args.mode)
    info = {"grid": str(grid), "samples": int(s[0].shape[0]), "alphas": alphas,
            "channels": [list(c) if isinstance(c, tuple) else c.as_dict() for c in channels]}
    if info_path is not None:
        info_path.write_text(json.dumps(info, indent=2) + "\n")
    if args.json:
        print_json(info)
    else:
        print(f"wrote {grid} ({info['samples']} sample(s) x {len(alphas)} alphas)")
    return 0
