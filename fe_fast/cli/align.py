"""``fe-fast align IMG``: align a face photo like FFHQ (thesis Figure 1-1, first step).

Landmarks: the face-alignment package's 3D FAN (its weights must be in the torch hub cache when
offline), or ``--landmarks FILE`` (.npy / .json / .txt, 68 rows of x y [z], pixel coordinates).
Pose: the 68 3D landmarks registered to the frontal 3D mean face (``--pose-method umeyama``, closed
form, default; or ``houv``, thesis ch. 3). Writes the aligned crop; ``--json`` prints yaw, pitch,
roll, the quad, the crop matrix and the landmarks."""
from __future__ import annotations

import json


def add_parser(sub):
    p = sub.add_parser("align", help="align a face photo (landmarks -> pose -> FFHQ crop)", description=__doc__)
    p.add_argument("image", metavar="IMG", help="photo (any format Pillow reads)")
    p.add_argument("--landmarks", metavar="FILE", help="68 landmarks (.npy .json .txt); default: 3D FAN")
    p.add_argument("--size", type=int, default=256, help="crop size in pixels (default 256)")
    p.add_argument("--out", default="crop.png", help="aligned crop (default crop.png)")
    p.add_argument("--pose-method", choices=("umeyama", "houv"), default="umeyama",
                   help="landmarks -> template registration (default umeyama: the more accurate in bench_align)")
    p.add_argument("--device", default="cpu", help="device of the 3D FAN (default cpu)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    import numpy as np
    from PIL import Image

    from fe_fast.align import align_face
    from fe_fast.cli import UserError

    src = Path(args.image)
    if not src.is_file():
        raise FileNotFoundError(f"image not found: {src}")
    if args.size < 8:
        raise UserError(f"--size must be >= 8, got {args.size}")
    out = Path(args.out)
    if out.resolve() == src.resolve():
        raise UserError("--out must not overwrite the input image")
    photo = np.asarray(Image.open(src).convert("RGB"))
    L, pose, crop = align_face(photo, args.landmarks, args.size, args.pose_method, args.device)
    out.parent.mkdir(parents=True, exist_ok=True)
    crop.image.save(out)
    info = {"image": str(src), "crop": str(out), **crop.to_dict(), "landmarks": L.tolist()}
    if pose is not None:
        info.update(yaw=pose.yaw, pitch=pose.pitch, roll=pose.roll, pose=pose.to_dict())
    if args.json:
        print(json.dumps(info))
    else:
        angles = "pose: 2D landmarks only" if pose is None else \
            f"yaw {pose.yaw:+.1f}  pitch {pose.pitch:+.1f}  roll {pose.roll:+.1f} deg ({pose.method})"
        print(f"{angles}\naligned crop {args.size}x{args.size}: {out}")
    return 0
