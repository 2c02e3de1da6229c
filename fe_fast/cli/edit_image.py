"""``fe-fast edit-image IMG``: edit a face photo end to end (thesis Figure 1-1): align (landmarks ->
FFHQ crop), project the crop into S, edit the located channels (``--classifier C --attribute a``,
or ``--channels`` by hand / from a ``fe-fast locate --json`` file), decode, paste back. Writes
``edited.png``, a before/after strip ``grid.png`` (photo, crop, reconstruction, edited crop,
result; ``--grid`` names another file) and ``edit.json`` (what ``--json`` prints) into ``--out``."""
from __future__ import annotations

import json

from fe_fast.cli._common import add_common_options, apply_common, deprecation, out_folder, print_json

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def add_parser(sub):
    from fe_fast.cli.locate import add_teacher_args

    p = sub.add_parser("edit-image", help="align, invert, edit and paste back a face photo", description=__doc__)
    p.add_argument("image", metavar="IMG", help="photo (any format Pillow reads)")
    p.add_argument("--generator", required=True, help="generator checkpoint")
    p.add_argument("--landmarks", metavar="FILE", help="68 landmarks (.npy .json .txt); default: 3D FAN")
    p.add_argument("--channels", help="LAYER:CHANNEL[,...] or a JSON file from `fe-fast locate --json`")
    p.add_argument("--strength", type=float, default=3.0, help="edit strength in units (default 3)")
    p.add_argument("--mode", default="single", choices=("single", "multi"), help="eq. 6-3 or eq. 6-7")
    p.add_argument("--steps", type=int, default=300, help="projection steps (default 300)")
    p.add_argument("--space", default="s", choices=("s", "w+"), help="projection space (default s)")
    p.add_argument("--vgg-weights", help="torchvision vgg16-397923af.pth (perceptual loss; else a stand-in)")
    p.add_argument("--lpips-weights", help="lpips weights/v0.1/vgg.pth (LPIPS weighting of the VGG loss)")
    p.add_argument("--grid", help="before/after strip (default: OUT/grid.png)")
    add_common_options(p, out_default=".", out_help="folder for edited.png, grid.png and edit.json (--json: pose, "
                                                   "channels, projection, seconds of each stage)")
    add_teacher_args(p, required=False)
    p.set_defaults(func=run)


def _channels(args, G):
    from pathlib import Path

    from fe_fast.cli.locate import channels_from_args
    from fe_fast.editing.locate import parse_channels

    p = Path(args.channels) if args.channels else None
    if p is not None and p.suffix == ".json" and not (args.classifier or args.parser):
        if not p.is_file():
            raise FileNotFoundError(f"channels file not found: {p}")
        rows = json.loads(p.read_text())
        if isinstance(rows, dict):  # the object `locate --json` prints
            rows = rows.get("channels", [])
        return parse_channels([(c["layer"], c["channel"]) for c in rows], G)
    return channels_from_args(args, G, "(LAYER:CHANNEL,... or a locate JSON file)")


def run(args) -> int:
    import time
    from pathlib import Path

    from fe_fast.cli import UserError
    from fe_fast.cli.locate import load_generator_on
    from fe_fast.editing.pipeline import edit_photo

    apply_common(args)
    src = Path(args.image)
    if not src.is_file():
        raise FileNotFoundError(f"image not found: {src}")
    info_path = None
    if Path(args.out).suffix.lower() in IMAGE_SUFFIXES:  # the old spelling: --out edited.png
        deprecation("--out FILE.png", "--out DIR (writes DIR/edited.png, DIR/grid.png and DIR/edit.json)")
        out = Path(args.out)
        grid = Path(args.grid) if args.grid else out.with_name(out.stem + "_grid.png")
    else:
        folder = out_folder(args, create=False)
        out, info_path = folder / "edited.png", folder / "edit.json"
        grid = Path(args.grid) if args.grid else folder / "grid.png"
    if src.resolve() in (out.resolve(), grid.resolve()):
        raise UserError("--out/--grid must not overwrite the input image")
    if args.steps < 1:
        raise UserError(f"--steps must be >= 1, got {args.steps}")
    t0 = time.perf_counter()
    G = load_generator_on(args)
    seconds = {"load_generator": time.perf_counter() - t0}
    t = time.perf_counter()
    channels = _channels(args, G)
    seconds["channels"] = time.perf_counter() - t
    from PIL import Image

    res = edit_photo(Image.open(src), G, channels, args.strength, landmarks=args.landmarks, mode=args.mode,
                     space=args.space, steps=args.steps, vgg_weights=args.vgg_weights,
                     lpips_weights=args.lpips_weights, seed=args.seed, progress=args.progress,
                     **({} if args.device is None else {"device": args.device}))
    seconds.update(res.timings)
    t = time.perf_counter()
    out.parent.mkdir(parents=True, exist_ok=True)
    res.result.save(out)
    res.grid().save(grid)
    seconds["write"] = time.perf_counter() - t
    seconds["total"] = time.perf_counter() - t0
    info = {"image": str(src), "out": str(out), "grid": str(grid), "projection": res.projection.to_dict(),
            "channels": [list(c) if isinstance(c, tuple) else c.as_dict() for c in channels],
            "pose": None if res.pose is None else res.pose.to_dict(), "resolution": G.synthesis.resolution,
            "seconds": seconds}
    if info_path is not None:
        info_path.write_text(json.dumps(info, indent=2) + "\n")
    if args.json:
        print_json(info)
    else:
        pose = "" if res.pose is None else f"pose yaw {res.pose.yaw:+.1f} pitch {res.pose.pitch:+.1f} " \
                                           f"roll {res.pose.roll:+.1f}; "
        print(f"{pose}projection PSNR {res.projection.psnr:.1f} dB ({res.projection.perceptual}); "
              f"wrote {out} and {grid} in {seconds['total']:.1f} s")
    return 0
