"""DERC on a large collection: a data set repeated with jittered copies (e.g. MNIST-test x 7 = 70,000
images), with minutes, peak memory and the progress/ETA lines of ``verbose``.

Not part of CI (tens of minutes). The copies are made once, before the fit, by the same random
shift/rotation as DERC's training jitter (:func:`fe_fast.clustering.augment.random_affine`, seeded
by ``--seed``), stored as uint8 like the originals; copy ``c`` of image ``i`` keeps image ``i``'s
label. ``--preset large`` (default) runs :data:`fe_fast.clustering.presets.PRESETS` ``["large"]``;
the DERC options below override it.

    OMP_NUM_THREADS=2 nice -n 5 python tools/derc_large.py mnist-test --copies 7 \\
        --out bench/out/derc_large.json

Prints one JSON record (also written to ``--out``): images, minutes, ``peak_rss_mib`` (process peak,
``getrusage``), the DERC fit's ``stage_seconds``, ACC/NMI against the labels, the load average at
start and end, and the settings.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fe_fast.clustering import DERC, clustering_accuracy, nmi  # noqa: E402
from fe_fast.clustering.derc import peak_rss_mib, prepare_images  # noqa: E402
from fe_fast.clustering.presets import derc_params  # noqa: E402


def jittered_copies(X, y, copies: int, seed: int, shift: float = 0.1, rotation: float = 10.0, chunk: int = 4096):
    """``X`` followed by ``copies - 1`` jittered copies of it, uint8 (N * copies, C, H, W), and the
    repeated labels. Made chunk by chunk (memory: the result plus one float chunk)."""
    import torch

    from fe_fast.clustering.augment import random_affine

    if copies < 1:
        raise ValueError(f"copies must be >= 1, got {copies}")
    base = prepare_images(X)  # float32 in [0, 1]
    n = base.shape[0]
    out = np.empty((n * copies,) + base.shape[1:], dtype=np.uint8)
    out[:n] = np.round(base * 255.0).astype(np.uint8)
    gen = torch.Generator().manual_seed(seed)
    for c in range(1, copies):
        for i in range(0, n, chunk):
            xb = torch.from_numpy(base[i : i + chunk])
            xj = random_affine(xb, gen, shift, rotation).clamp_(0.0, 1.0)
            out[c * n + i : c * n + i + xb.shape[0]] = np.round(xj.numpy() * 255.0).astype(np.uint8)
    labels = None if y is None else np.tile(np.asarray(y).reshape(-1), copies)
    return out, labels


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset", help="usps, mnist-test, digits or a path (see fe_fast.datasets)")
    ap.add_argument("--copies", type=int, default=7, help="the data set plus copies-1 jittered copies")
    ap.add_argument("--subsample", type=int, default=None, help="first take this many images (a quick check)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--preset", default="large")
    ap.add_argument("--epochs", type=int, default=None, help="DERC stage1_epochs")
    ap.add_argument("--rounds", type=int, default=None, help="DERC stage2_rounds")
    ap.add_argument("--n-maps", type=int, default=None)
    ap.add_argument("--n-autoencoders", type=int, default=None)
    ap.add_argument("--triplets", type=int, default=None, help="DERC triplets_per_round")
    ap.add_argument("--n-jobs", type=int, default=None, help="DERC n_jobs (threads for the maps)")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--out", default=None, help="JSON file for the record")
    ap.add_argument("--quiet", action="store_true", help="no progress lines")
    args = ap.parse_args(argv)

    import torch

    from fe_fast.datasets.images import load_clustering_data

    load_start = os.getloadavg()
    t0 = time.perf_counter()
    X, y = load_clustering_data(args.dataset, data_dir=args.data_dir)
    if args.subsample:
        pick = np.random.default_rng(args.seed).choice(len(X), args.subsample, replace=False)
        X, y = X[pick], (None if y is None else np.asarray(y)[pick])
    Xb, yb = jittered_copies(X, y, args.copies, args.seed)
    del X
    build_s = time.perf_counter() - t0
    k = int(np.unique(yb).size) if yb is not None else 10
    params = derc_params(
        args.preset, stage1_epochs=args.epochs, stage2_rounds=args.rounds, n_maps=args.n_maps,
        n_autoencoders=args.n_autoencoders, triplets_per_round=args.triplets,
    )
    params.update(random_state=args.seed, verbose=0 if args.quiet else 1)
    if args.n_jobs is not None:
        params["n_jobs"] = args.n_jobs
    print(f"{len(Xb)} images {Xb.shape[1:]} (built in {build_s:.0f} s), K={k}, DERC {params}", flush=True)
    t1 = time.perf_counter()
    m = DERC(k, **params).fit(Xb, yb)
    minutes = (time.perf_counter() - t1) / 60
    rec = {
        "dataset": args.dataset, "copies": args.copies, "images": int(len(Xb)), "image_shape": list(Xb.shape[1:]),
        "minutes": round(minutes, 2), "peak_rss_mib": round(peak_rss_mib(), 1),
        "stage_seconds": {s: round(v, 1) for s, v in m.stage_seconds_.items()},
        "stage1_epochs_run": m.history_.get("stage1_epochs"),
        "rounds": [{k2: v for k2, v in r.items() if k2 in ("round", "acc", "nmi", "changed", "seconds")}
                   for r in m.history_["rounds"]],
        "final": m.history_["final"], "loadavg_start": load_start, "loadavg_end": os.getloadavg(),
        "torch_threads": torch.get_num_threads(), "cpus": os.cpu_count(), "python": platform.python_version(),
        "params": {p: (list(v) if isinstance(v, tuple) else v) for p, v in params.items()},
    }
    if yb is not None:
        rec["acc"], rec["nmi"] = clustering_accuracy(yb, m.labels_), nmi(yb, m.labels_)
    text = json.dumps(rec, indent=1, default=float)
    print(text, flush=True)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
    return rec


if __name__ == "__main__":
    main()
