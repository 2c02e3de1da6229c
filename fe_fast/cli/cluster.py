"""``fe-fast cluster DATA --k K``: cluster images with DERC (thesis ch. 4, algorithm 4.1).

DATA is a folder of images (one sub-folder per class gives labels for scoring), an ``.npy`` /
``.npz`` / USPS ``.mat`` / MNIST idx file, or one of the named datasets ``digits``, ``mnist-test``,
``usps`` (found in ``--data-dir``, ``$FE_FAST_DATA`` or ``../shared/data``). Writes
``labels.npy``, ``embedding.npy``, ``metrics.json`` (when labels are known) and ``clusters.png``
into ``--out``.
"""
from __future__ import annotations


def add_parser(sub):
    p = sub.add_parser("cluster", help="cluster images with DERC (thesis ch. 4)", description=__doc__)
    p.add_argument("data", metavar="DATA", help="image folder, .npy/.npz/.mat/idx file, or digits | mnist-test | usps")
    p.add_argument("--k", type=int, required=True, help="number of clusters K (>= 2)")
    p.add_argument("--epochs", type=int, default=100, help="maximum stage-1 (autoencoder) epochs (default 100)")
    p.add_argument("--rounds", type=int, default=5, help="stage-2 triplet rounds (default 5; 0 = autoencoder only)")
    p.add_argument("--stage2-tol", type=float, default=0.0,
                   help="stop stage 2 early once fewer than this share of images changed cluster since the "
                        "previous round (default 0 = run all --rounds, the thesis)")
    p.add_argument("--round-consensus", action="store_true",
                   help="final labels from the consensus of every round's clustering, not the last one alone "
                        "(off by default, the thesis)")
    p.add_argument("--triplets", type=int, default=None, help="triplets per round (default: number of images)")
    p.add_argument("--reducer", choices=("tsne", "umap", "none"), default="tsne",
                   help="t-SNE (DERC, default), UMAP (not in the thesis) or none (DERC-R)")
    p.add_argument("--n-maps", type=int, default=1,
                   help="maps combined per clustering (default 1, the thesis; e.g. 5 with --reducer umap)")
    p.add_argument("--n-autoencoders", type=int, default=1,
                   help="stage-1 autoencoders whose clusterings vote in the first clustering (default 1, the "
                        "thesis; 3 measured on USPS/MNIST, see bench/results/derc.md)")
    p.add_argument("--clusterer", choices=("gmm", "dbscan"), default="gmm")
    p.add_argument("--alpha", type=float, default=0.1, help="triplet weight of eq. 4-10 (default 0.1)")
    p.add_argument("--margin", type=float, default=0.5, help="margin of eq. 4-7 (default 0.5)")
    p.add_argument("--batch-size", type=int, default=64, help="images per Adam step (default 64)")
    p.add_argument("--augment-shift", type=float, default=0.0,
                   help="opt-in jitter, not in the thesis: shift training images by up to this fraction of "
                        "their side (default 0 = off; 0.1 measured on USPS/MNIST, see bench/results/derc.md)")
    p.add_argument("--augment-rotation", type=float, default=0.0,
                   help="opt-in jitter: rotate training images by up to this many degrees (default 0 = off)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--out", default="derc_out", help="output folder (default ./derc_out)")
    p.add_argument("--data-dir", default=None, help="where named datasets live (default $FE_FAST_DATA or ../shared/data)")
    p.add_argument("--json", action="store_true", help="print one JSON object {acc, nmi, n_clusters, seconds}")
    p.set_defaults(func=run)


def _plot(path, reduced, labels, images, k_found, seed=0, per_cluster=8):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    ids = [c for c in np.unique(labels) if c >= 0]
    fig = plt.figure(figsize=(13, 6.5))
    ax = fig.add_subplot(1, 2, 1)
    cmap = plt.get_cmap("tab20" if len(ids) > 10 else "tab10")
    noise = labels < 0
    if noise.any():
        ax.scatter(reduced[noise, 0], reduced[noise, 1], s=2, c="lightgrey", label="noise")
    for i, c in enumerate(ids):
        m = labels == c
        ax.scatter(reduced[m, 0], reduced[m, 1], s=2, color=cmap(i % cmap.N), label=str(c))
        cx, cy = np.median(reduced[m, 0]), np.median(reduced[m, 1])
        ax.text(cx, cy, str(c), fontsize=11, weight="bold", ha="center", va="center")
    ax.set_title(f"2-D map coloured by cluster ({k_found} clusters)")
    ax.set_xticks([])
    ax.set_yticks([])
    # grid of sample images: one row per cluster
    rng = np.random.default_rng(seed)
    rows = ids[:20]
    ax2 = fig.add_subplot(1, 2, 2)
    ax2.axis("off")
    ax2.set_title("samples per cluster (one row each)")
    if rows:
        imgs = images  # (N, C, H, W) in [0, 1]
        _, C, H, W = imgs.shape
        grid = np.ones((len(rows) * (H + 1), per_cluster * (W + 1), 3), dtype=np.float32)
        for r, c in enumerate(rows):
            members = np.flatnonzero(labels == c)
            pick = rng.choice(members, size=min(per_cluster, members.size), replace=False)
            for j, idx in enumerate(pick):
                im = imgs[idx].transpose(1, 2, 0)
                if C == 1:
                    im = np.repeat(im, 3, axis=2)
                elif C != 3:
                    im = np.repeat(im[..., :1], 3, axis=2)
                grid[r * (H + 1) : r * (H + 1) + H, j * (W + 1) : j * (W + 1) + W] = im
        ax2.imshow(np.clip(grid, 0, 1), interpolation="nearest")
        for r, c in enumerate(rows):
            ax2.text(-2, r * (H + 1) + H / 2, str(c), ha="right", va="center", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(args) -> int:
    import json
    import time
    from pathlib import Path

    import numpy as np

    from fe_fast.clustering import DERC, clustering_accuracy, nmi
    from fe_fast.clustering.derc import prepare_images
    from fe_fast.datasets.images import load_clustering_data

    t0 = time.perf_counter()
    X, y = load_clustering_data(args.data, data_dir=args.data_dir)
    images = prepare_images(X, name="DATA")
    if args.k < 2:
        raise ValueError(f"--k must be >= 2, got {args.k}")
    if args.k > images.shape[0]:
        raise ValueError(f"--k ({args.k}) must not exceed the number of images ({images.shape[0]})")
    if args.epochs < 0 or args.rounds < 0:
        raise ValueError("--epochs and --rounds must be >= 0")
    model = DERC(
        args.k,
        stage1_epochs=args.epochs,
        stage2_rounds=args.rounds,
        stage2_tol=args.stage2_tol,
        round_consensus=args.round_consensus,
        triplets_per_round=args.triplets,
        reducer=args.reducer,
        n_maps=args.n_maps,
        n_autoencoders=args.n_autoencoders,
        clusterer=args.clusterer,
        alpha=args.alpha,
        margin=args.margin,
        batch_size=args.batch_size,
        augment_shift=args.augment_shift,
        augment_rotation=args.augment_rotation,
        seed=args.seed,
        device=args.device,
        progress=not args.json,
    )
    labels = model.fit_predict(images)
    seconds = time.perf_counter() - t0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "labels.npy", labels)
    np.save(out / "embedding.npy", model.embedding_.astype(np.float32))
    acc = score_nmi = None
    if y is not None:
        acc = clustering_accuracy(y, labels)
        score_nmi = nmi(y, labels)
        (out / "metrics.json").write_text(
            json.dumps({"acc": acc, "nmi": score_nmi, "n_clusters": int(model.history_["final"]["n_clusters_found"]),
                        "n_samples": int(labels.shape[0]), "seconds": seconds,
                        "stage1_epochs": model.history_["stage1_epochs"], "rounds": args.rounds}, indent=2)
        )
    reduced = model.reduced_
    if reduced.shape[1] != 2:
        from sklearn.decomposition import PCA

        reduced = PCA(2, random_state=args.seed).fit_transform(reduced)
    k_found = int(model.history_["final"]["n_clusters_found"])
    _plot(out / "clusters.png", reduced, labels, images, k_found, seed=args.seed)
    result = {"acc": acc, "nmi": score_nmi, "n_clusters": k_found, "seconds": round(seconds, 3)}
    if args.json:
        print(json.dumps(result))
    else:
        msg = f"{labels.shape[0]} images -> {k_found} clusters in {seconds:.1f} s; wrote {out}/"
        if acc is not None:
            msg += f"  ACC {acc:.4f}  NMI {score_nmi:.4f}"
        print(msg)
    return 0
