"""``fe-fast align IMG``: align a face photo like FFHQ (thesis Figure 1-1, first step).

Landmarks: the face-alignment package's 3D FAN (its weights must be in the torch hub cache when
offline), or ``--landmarks FILE`` (.npy / .json / .txt, 68 rows of x y [z], pixel coordinates).
Pose: the 68 3D landmarks registered to the frontal 3D mean face (``--pose-method umeyama``, closed
form; or ``houv``, thesis ch. 3, seeded by ``--seed``). Writes ``crop.png`` and ``align.json`` (yaw,
pitch, roll, the quad, the crop matrix and the landmarks; what ``--json`` prints) into ``--out``.
The work is :func:`fe_fast.align.align_face`; options left out take its defaults."""
from __future__ import annotations

import json

from fe_fast.cli._common import HelpFormatter, add_common_options, apply_common, deprecation, given, \
    library_option, out_folder, print_json

ALIGN = "fe_fast.align.face:align_face"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def add_parser(sub):
    p = sub.add_parser("align", help="align a face photo (landmarks -> pose -> FFHQ crop)", description=__doc__,
                       formatter_class=HelpFormatter)
    p.add_argument("image", metavar="IMG", help="photo (any format Pillow reads)")
    p.add_argument("--landmarks", metavar="FILE", help="68 landmarks (.npy .json .txt); default: 3D FAN")
    library_option(p, "--size", source=ALIGN, type=int, help="crop size in pixels")
    library_option(p, "--pose-method", choices=("umeyama", "houv"), source=ALIGN,
                   help="landmarks -> template registration (umeyama: the more accurate in bench_align)")
    add_common_options(p, out_default=".", out_help="folder for crop.png and align.json",
                       device_help="cpu, cuda ... (where the 3D FAN runs)", progress=False)
    p.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    import numpy as np
    from PIL import Image

    from fe_fast.align import align_face
    from fe_fast.cli import UserError

    apply_common(args)
    src = Path(args.image)
    if not src.is_file():
        raise FileNotFoundError(f"image not found: {src}")
    if args.size is not None and args.size < 8:
        raise UserError(f"--size must be >= 8, got {args.size}")
    out = Path(args.out)
    if out.suffix.lower() in IMAGE_SUFFIXES:  # the old spelling: --out crop.png
        deprecation("--out FILE.png", "--out DIR (writes DIR/crop.png and DIR/align.json)")
        crop_path, info_path = out, None
    else:
        out = out_folder(args, create=False)
        crop_path, info_path = out / "crop.png", out / "align.json"
    if crop_path.resolve() == src.resolve():
        raise UserError("--out must not overwrite the input image")
    photo = np.asarray(Image.open(src).convert("RGB"))
    kw = given(args, ("size", "pose_method", "device"))
    L, pose, crop = align_face(photo, args.landmarks, seed=args.seed, **kw)
    crop_path.parent.mkdir(parents=True, exist_ok=True)
    crop.image.save(crop_path)
    info = {"image": str(src), "crop": str(crop_path), **crop.to_dict(), "landmarks": L.tolist()}
    if pose is not None:
        info.update(yaw=pose.yaw, pitch=pose.pitch, roll=pose.roll, pose=pose.to_dict())
    if info_path is not None:
        info_path.write_text(json.dumps(info, indent=2) + "\n")
    if args.json:
        print_json(info)
    else:
        angles = "pose: 2D landmarks only" if pose is None else \
            f"yaw {pose.yaw:+.1f}  pitch {pose.pitch:+.1f}  roll {pose.roll:+.1f} deg ({pose.method})"
        print(f"{angles}\naligned crop {crop.image.size[0]}x{crop.image.size[1]}: {crop_path}")
    return 0
