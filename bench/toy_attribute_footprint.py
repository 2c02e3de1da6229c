"""How many pixels each binary toy attribute occupies: the same faces rendered with the attribute on
and off (every other factor fixed), pixels whose colour changes by more than ``--threshold`` (of
255, largest channel). Issue 6 context: a generator must place an attribute this precisely for the
toy classifier to count it; at 32x32 the bangs fringe moves the hairline by a pixel or two.

Hair colours are left out (switching colour repaints all the hair). Not in CI. Example
(bench/results/stylegan.md)::

    python bench/toy_attribute_footprint.py --n 300 --sizes 32 64
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fe_fast.datasets.toyfaces import ToyFaces, render  # noqa: E402

#: attribute -> (parameter, value when on, value when off)
TOGGLES = {
    "smiling": ("smiling", True, False),
    "mouth_open": ("mouth_open", True, False),
    "eyeglasses": ("eyeglasses", True, False),
    "long_hair": ("long_hair", True, False),
    "bangs": ("bangs", True, False),
    "goatee": ("facial_hair", "goatee", "none"),
    "beard": ("facial_hair", "beard", "none"),
    "old": ("old", True, False),
}


def changed_pixels(params: dict, name: str, size: int, threshold: float) -> int:
    key, on, off = TOGGLES[name]
    a = render({**params, key: on}, size).astype(np.int16)
    b = render({**params, key: off}, size).astype(np.int16)
    return int((np.abs(a - b).max(-1) > threshold).sum())


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=300, help="faces (toy world seed --seed)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[32, 64])
    ap.add_argument("--threshold", type=float, default=20.0, help="colour change (0-255) that counts a pixel")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    params = ToyFaces(args.n, size=args.sizes[0], seed=args.seed).params
    head = " | ".join(f"{s}x{s}: median (10th-90th pct) | % of image" for s in args.sizes)
    print(f"Pixels changed by each attribute, {args.n} faces (seed {args.seed}), threshold {args.threshold:g}/255\n")
    print(f"| attribute | {head} |")
    print("| --- |" + " --- | --- |" * len(args.sizes))
    for name in TOGGLES:
        cells = []
        for s in args.sizes:
            px = np.array([changed_pixels(p, name, s, args.threshold) for p in params])
            lo, med, hi = np.percentile(px, [10, 50, 90])
            cells.append(f"{med:.0f} ({lo:.0f}-{hi:.0f}) | {100 * med / s ** 2:.1f}")
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
