"""Which way a toy run's discriminator pushes its generator on one attribute (issue 6, bangs).

Reads a training checkpoint (``checkpoint.pt`` of ``fe-fast train-gan`` / ``bench/bench_toy_gan.py``)
and reports D's mean logit on four sets of ``--n`` images: training faces (the first ``--n`` of the
run's own training set), held-out faces (the seed ``bench/bench_toy_gan.py`` holds out), samples of
the raw generator G and of G_ema. Each set is split by the attribute label of a toy attribute
classifier. Read it as:

* training faces scoring above held-out ones: D memorises its training set;
* generated faces with the attribute scoring above those without, while real faces score alike:
  the non-saturating G loss rewards drawing the attribute, so G over-produces it.

A multi-scale critic's scores are averaged over its scales (as the training losses do); the last
column then gives the with-minus-without difference per scale, full resolution first. ``--probe``
adds a linear probe: logistic regression from D's penultimate features of held-out real faces to
the classifier's label (fit on one half, accuracy on the other, against always answering the
majority label). A probe at the majority rate means D's features carry nothing about the attribute.

Not in CI. Example (bench/results/stylegan.md)::

    python bench/toy_gan_dscores.py --checkpoint runs/data100k/checkpoint.pt \\
        --classifier teachers/attribute_classifier.pt --attribute bangs
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fe_fast.stylegan.discriminator import build_discriminator  # noqa: E402
from fe_fast.stylegan.metrics import classifier_labels  # noqa: E402
from fe_fast.stylegan.networks import Generator  # noqa: E402
from fe_fast.stylegan.train import ToyFaceImages  # noqa: E402
from fe_fast.teachers.toy import load_teacher  # noqa: E402


@torch.no_grad()
def scores(D, clf, index: int, images: torch.Tensor, batch: int = 250):
    """D logits [N, scales] and the classifier's label for attribute ``index`` [N] (bool) of ``images``
    in [-1, 1]."""
    d, lab = [], []
    for b in images.split(batch):
        d.append(D(b))
        lab.append(classifier_labels(clf, b)[:, index])
    return torch.cat(d), torch.cat(lab)


@torch.no_grad()
def probe_accuracy(D, images: torch.Tensor, labels: torch.Tensor, batch: int = 250):
    """(held-out accuracy of a logistic-regression probe on D's features, majority-label rate)."""
    from sklearn.linear_model import LogisticRegression

    f = torch.cat([D.features(b) for b in images.split(batch)]).numpy()
    y = labels.numpy()
    half = len(y) // 2
    probe = LogisticRegression(max_iter=5000).fit(f[:half], y[:half])
    majority = max(y[half:].mean(), 1 - y[half:].mean())
    return float(probe.score(f[half:], y[half:])), float(majority)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", required=True, help="checkpoint.pt of a toy-face run")
    ap.add_argument("--classifier", required=True, help="attribute_classifier.pt from `fe-fast teachers train`")
    ap.add_argument("--attribute", default="bangs")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--probe", action="store_true", help="also fit a linear probe on D's features of real faces")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    ck = torch.load(args.checkpoint, map_location="cpu", weights_only=True)
    cfg = json.loads(ck["train_config"])
    if cfg.get("data") != "toyfaces":
        raise SystemExit(f"{args.checkpoint}: a toy-face run is needed (data={cfg.get('data')!r})")
    D = build_discriminator(ck["D_config"]).eval()
    D.load_state_dict(ck["D"])
    nets = {}
    for key in ("G", "G_ema"):
        nets[key] = Generator(**ck["G_config"]).eval()
        nets[key].load_state_dict(ck[key])
    clf = load_teacher(args.classifier, kind="attribute_classifier").eval()
    if args.attribute not in clf.attributes:
        raise SystemExit(f"--attribute {args.attribute!r} is not one of {clf.attributes}")
    index = clf.attributes.index(args.attribute)

    train = ToyFaceImages(cfg["toy_images"], cfg["resolution"], seed=cfg["seed"])
    held_out = ToyFaceImages(args.n, cfg["resolution"], seed=cfg["seed"] + 1_000_003)
    sets = {"training faces": train.batch(range(min(args.n, len(train)))),
            "held-out faces": held_out.batch(range(len(held_out)))}
    z = torch.randn(args.n, nets["G"].z_dim, generator=torch.Generator().manual_seed(99))
    with torch.no_grad(), torch.random.fork_rng():
        for key, G in nets.items():
            torch.manual_seed(99)  # the noise inputs
            sets[key] = torch.cat([G(b) for b in z.split(250)])

    a = args.attribute
    print(f"{args.checkpoint}: {ck['img_seen']} images seen; D logits (higher = more real)\n")
    scales = D.config.get("scales", 1)
    per_scale = " | difference per scale" if scales > 1 else ""
    print(f"| images | D mean | {a} | D, {a} | D, no {a} | difference{per_scale} |")
    print("| --- | --- | --- | --- | --- | --- |" + (" --- |" if scales > 1 else ""))
    labels = {}
    for name, images in sets.items():
        d, lab = scores(D, clf, index, images)
        labels[name] = lab
        gap = d[lab].mean(0) - d[~lab].mean(0) if lab.any() and (~lab).any() else torch.full([scales], float("nan"))
        d = d.mean(1)
        with_a = d[lab].mean().item() if lab.any() else float("nan")
        without = d[~lab].mean().item() if (~lab).any() else float("nan")
        extra = " | " + " / ".join(f"{g:+.3f}" for g in gap.tolist()) if scales > 1 else ""
        print(f"| {name} | {d.mean():+.3f} | {100 * lab.float().mean():.1f} % | {with_a:+.3f} | {without:+.3f} "
              f"| {with_a - without:+.3f}{extra} |")
    if args.probe:
        acc, majority = probe_accuracy(D, sets["held-out faces"], labels["held-out faces"])
        print(f"\nLinear probe for {a} on D's features of held-out faces: {100 * acc:.1f} % "
              f"(majority label: {100 * majority:.1f} %)")


if __name__ == "__main__":
    main()
