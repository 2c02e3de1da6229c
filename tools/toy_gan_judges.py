"""Diagnostic (not run by ``make bench``): use it before shipping a new toy generator or judge,
to see how much of a frequency gap the judge itself contributes.

How much of a toy generator's attribute-frequency gap is the judge's: the same generators scored
by several toy attribute classifiers (the toy-GAN goal: generated attribute frequencies within 10 points of real ones).

Each classifier labels 2000 held-out real toy faces (rendered like the training data, the seed
``bench/bm_toy_gan.py`` uses) and 2000 samples of each generator (truncation 1, z seed 99, as
there); the table gives generated minus real frequency in points per attribute, and the count of
attributes within 10 points. Classifiers trained by the same pipeline with other seeds disagree on
off-manifold (generated) images where they agree on real ones, so a gap that changes sign or size
between judges is not a property of the generator alone.

``--blur-sigmas`` adds rows for the real faces themselves, Gaussian-blurred at their resolution
(blurred minus sharp, points): a judge whose "smiling" or "old" falls by 15 points under a blur of
0.6 pixel counts a generator's soft-edged smiles and wrinkles as absent, so those gaps are then
partly a sharpness gap.

``--confidence`` adds a table of how sure each judge is: per attribute, the share of faces with a
probability between 0.1 and 0.9 ("unsure") and of at least 0.9 ("sure"). Real toy faces are discrete
(glasses or none); a generator that draws faint glasses or half smiles puts mass in between, and where
a judge's 0.5 threshold cuts that mass decides its frequency.

Without ``--classifiers`` the judge is the shipped reference judge 0 (``bench/judges/``, fixed bits;
the recipe's output differs across CPUs). Not in CI. Example (bench/results/stylegan.md)::

    python bench/bm_teachers.py --n 8000 --epochs 8 --seed 1 --out /tmp/teachers_s1
    python tools/toy_gan_judges.py --generators runs/lr30/G_ema.safetensors \\
        --classifiers /tmp/teachers_s0/attribute_classifier.pt /tmp/teachers_s1/attribute_classifier.pt
    python tools/toy_gan_judges.py --blur-sigmas 0.4 0.6 0.8 --classifiers /tmp/teachers_s0/attribute_classifier.pt
    python tools/toy_gan_judges.py --confidence --generators runs/lr30/G_ema.safetensors --classifiers /tmp/teachers_s0/attribute_classifier.pt
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fe_fast.stylegan.io import load_generator  # noqa: E402
from fe_fast.stylegan.metrics import classifier_frequencies, classifier_logits, generated_batches  # noqa: E402
from fe_fast.stylegan.train import ToyFaceImages  # noqa: E402
from fe_fast.teachers.toy import _gaussian_blur, load_teacher  # noqa: E402


REFERENCE_JUDGE = Path(__file__).resolve().parent / "judges" / "toy_attribute_classifier_judge0.pt"


def _name(path) -> str:
    """runs/lr30/G_ema.safetensors -> lr30; runs/dwide/snapshots/G_ema_000048000.safetensors -> dwide@48000;
    any other file by its stem (fe_fast/data/toy_generator_32.safetensors -> toy_generator_32)."""
    p = Path(path)
    if p.parent.name == "snapshots":
        return f"{p.parent.parent.name}@{int(p.stem.rsplit('_', 1)[-1])}"
    if p.stem == "G_ema":
        return p.parent.name or str(p)
    return p.stem


def _confidence(clf, images: torch.Tensor) -> dict:
    """{attribute: (share with probability in (0.1, 0.9), share >= 0.9)} under ``clf``."""
    p = torch.sigmoid(torch.cat([classifier_logits(clf, b) for b in images.split(256)]))
    return {a: (float(((q > 0.1) & (q < 0.9)).float().mean()), float((q >= 0.9).float().mean()))
            for a, q in zip(clf.attributes, p.T)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--generators", nargs="*", default=[], help="G_ema .safetensors files")
    ap.add_argument("--classifiers", nargs="+", default=[str(REFERENCE_JUDGE)],
                    help="attribute_classifier.pt files (default: the shipped reference judge, bench/judges/)")
    ap.add_argument("--n", type=int, default=10000, help="real and generated images per score (2000 before 2026-12-04)")
    ap.add_argument("--resolution", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0, help="bm_toy_gan.py's --seed")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--blur-sigmas", nargs="*", type=float, default=[],
                    help="also score the real faces Gaussian-blurred with these sigmas (pixels)")
    ap.add_argument("--confidence", action="store_true",
                    help="also print each judge's unsure (0.1-0.9) and sure (>= 0.9) shares per attribute")
    args = ap.parse_args(argv)
    if not args.generators and not args.blur_sigmas:
        ap.error("give --generators, --blur-sigmas or both")
    torch.set_num_threads(args.threads)

    real = ToyFaceImages(args.n, args.resolution, seed=args.seed + 1_000_003)
    real_images = real.batch(range(len(real)))
    # each generator's faces are drawn once (as attribute_frequencies draws them) and scored by every judge
    generated = [(_name(g), torch.cat(list(generated_batches(load_generator(g), args.n, args.seed + 99))))
                 for g in args.generators]
    header = None
    for ci, path in enumerate(args.classifiers):
        clf = load_teacher(path, kind="attribute_classifier")
        f_real = classifier_frequencies(clf, real_images)
        if header is None:
            header = list(f_real)
            print("| generator | judge | within 10 | " + " | ".join(header) + " |")
            print("| --- " * (len(header) + 3) + "|")
        rows = generated + [(f"real, blur {sigma:g} px", _gaussian_blur(real_images, sigma))
                            for sigma in args.blur_sigmas]
        for name, images in rows:
            f_gen = classifier_frequencies(clf, images)
            diffs = [100 * (f_gen[a] - f_real[a]) for a in header]
            within = sum(abs(d) <= 10 for d in diffs)
            print(f"| {name} | {ci} | {within} of {len(diffs)} | " + " | ".join(f"{d:+.1f}" for d in diffs) + " |",
                  flush=True)
        if args.confidence:
            print(f"\nJudge {ci}, unsure / sure (%):\n\n| faces | " + " | ".join(header) + " |\n" + "| --- " * (len(header) + 1) + "|")
            for name, images in [("real", real_images)] + generated:
                c = _confidence(clf, images)
                print(f"| {name} | " + " | ".join(f"{100 * c[a][0]:.1f} / {100 * c[a][1]:.1f}" for a in header) + " |",
                      flush=True)
            print()


if __name__ == "__main__":
    main()
