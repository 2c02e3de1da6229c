"""Diagnostic (not run by ``make bench``): use it when DERC's accuracy varies across seeds, to
tell bad stage-1 codes from an unlucky t-SNE map.

Why DERC's seeds differ: quality of the first t-SNE map of the stage-1 codes (thesis ch. 4).

Not part of CI (minutes). Trains stage 1 (eq. 4-8) exactly as ``DERC.fit`` does for one seed and,
at the given epochs, embeds the data, runs t-SNE + the K-component mixture (the clustering that
stage 2's first round trains on) and prints ACC, NMI and the confusion matrix (rows: classes,
columns: the non-empty mixture components). ``--tsne-seeds`` and ``--variants`` repeat the map of the last
checkpoint with other t-SNE seeds / settings, to tell the codes' fault from t-SNE's randomness.

    OMP_NUM_THREADS=2 python tools/derc_diag.py usps --seed 1 --checks 10 20 30 \\
        --tsne-seeds 0 1 2 --variants cosine:30 euclidean:100

Variants are ``metric:perplexity`` (openTSNE metrics, e.g. euclidean, cosine).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fe_fast.clustering import DERC, clustering_accuracy, nmi  # noqa: E402
from fe_fast.clustering.derc import prepare_images, reduce_tsne  # noqa: E402
from fe_fast.clustering.metrics import contingency  # noqa: E402
from fe_fast.datasets.images import load_clustering_data  # noqa: E402


def report(tag, model, R, y):
    labels, _ = model._cluster(R)
    print(f"== {tag}: ACC {clustering_accuracy(y, labels):.4f} NMI {nmi(y, labels):.4f}", flush=True)
    print(contingency(y, labels), flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset", help="usps, mnist-test, digits or a path (see fe_fast.datasets)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--checks", type=int, nargs="+", default=[10, 20, 30], help="epochs at which to map")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--tsne-seeds", type=int, nargs="*", default=[])
    ap.add_argument("--variants", nargs="*", default=[], help="metric:perplexity, e.g. cosine:30")
    ap.add_argument("--tsne-jobs", type=int, default=2)
    ap.add_argument("--augment-shift", type=float, default=0.0, help="DERC augment_shift (fraction of side)")
    ap.add_argument("--augment-rotation", type=float, default=0.0, help="DERC augment_rotation (degrees)")
    args = ap.parse_args(argv)

    X, y = load_clustering_data(args.dataset)
    k = int(np.unique(y).size)
    # a DERC object only for its settings, autoencoder and mixture (same code path as fit)
    d = DERC(
        k, random_state=args.seed, batch_size=args.batch_size,
        augment_shift=args.augment_shift, augment_rotation=args.augment_rotation,
    )
    Xt = torch.from_numpy(prepare_images(X))
    d._dev = torch.device("cpu")
    opt, gen = d._new_autoencoder(tuple(Xt.shape[1:]))  # the start of DERC.fit's stage 1
    t0 = time.perf_counter()
    Z = None
    for epoch in range(1, max(args.checks) + 1):
        loss = d._reconstruction_epoch(Xt, opt, gen, d.batch_size)
        print(f"epoch {epoch}: loss {loss:.5f} ({time.perf_counter() - t0:.0f} s)", flush=True)
        if epoch in args.checks:
            Z = d._embed(Xt)
            report(f"epoch {epoch}, t-SNE seed {args.seed}", d, reduce_tsne(Z, seed=args.seed, n_jobs=args.tsne_jobs), y)
    for s in args.tsne_seeds:
        report(f"epoch {max(args.checks)}, t-SNE seed {s}", d, reduce_tsne(Z, seed=s, n_jobs=args.tsne_jobs), y)
    for v in args.variants:
        metric, perp = v.split(":")
        R = reduce_tsne(Z, seed=args.seed, perplexity=float(perp), n_jobs=args.tsne_jobs, metric=metric)
        report(f"epoch {max(args.checks)}, t-SNE {metric} perplexity {perp}", d, R, y)


if __name__ == "__main__":
    main()
