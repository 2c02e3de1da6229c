"""How much a toy attribute classifier's frequencies move when real toy faces are slightly blurred
(issue 6's 30-minute goal is judged by such a classifier on 32x32 generator output).

Each classifier labels ``--n`` held-out real toy faces at 32x32 (rendered like
``bench/bench_toy_gan.py``'s held-out set), then the same faces Gaussian-blurred at 32x32 with each
``--sigmas`` value (pixels); the table gives blurred minus sharp frequency in points per attribute.
A judge whose "smiling" or "old" falls by 15 points under a blur of 0.6 pixel counts a generator's
soft-edged smiles and wrinkles as absent: the generated-minus-real gaps of those attributes are then
partly a sharpness gap.

Not in CI. Example (bench/results/stylegan.md)::

    python bench/toy_judge_blur.py --classifiers teachers/attribute_classifier.pt teachers_aug/attribute_classifier.pt
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fe_fast.stylegan.metrics import classifier_frequencies  # noqa: E402
from fe_fast.stylegan.train import ToyFaceImages  # noqa: E402
from fe_fast.teachers.toy import _gaussian_blur, load_teacher  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--classifiers", nargs="+", required=True, help="attribute_classifier.pt files")
    ap.add_argument("--sigmas", nargs="+", type=float, default=[0.4, 0.6, 0.8], help="blur sigmas in pixels at 32x32")
    ap.add_argument("--n", type=int, default=2000, help="held-out real faces")
    ap.add_argument("--resolution", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0, help="bench_toy_gan.py's --seed (the held-out set)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    real = ToyFaceImages(args.n, args.resolution, seed=args.seed + 1_000_003)
    images = real.batch(range(len(real)))
    header = None
    for ci, path in enumerate(args.classifiers):
        clf = load_teacher(path, kind="attribute_classifier")
        sharp = classifier_frequencies(clf, images)
        if header is None:
            header = list(sharp)
            print("| judge | blur sigma (px) | " + " | ".join(header) + " |")
            print("| --- " * (len(header) + 2) + "|")
        for sigma in args.sigmas:
            blurred = classifier_frequencies(clf, _gaussian_blur(images, sigma))
            print(f"| {ci} | {sigma:g} | " + " | ".join(f"{100 * (blurred[a] - sharp[a]):+.1f}" for a in header) + " |",
                  flush=True)


if __name__ == "__main__":
    main()
