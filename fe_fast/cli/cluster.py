"""``fe-fast cluster DATA --k K``: cluster images with DERC (thesis ch. 4, algorithm 4.1).

DATA is a folder of images (colour or grey, any sizes; one sub-folder per class gives labels for
scoring), an ``.npy`` / ``.npz`` / USPS ``.mat`` / MNIST idx file, or one of the named datasets
``digits``, ``mnist-test``, ``usps`` (found in ``--data-dir``, ``$FE_FAST_DATA`` or
``../shared/data``). Folder images are resized to ``--size H W`` or, by default, to a size derived
from the data (docs/clustering.md); unreadable files are skipped and named on stderr. Writes
``labels.npy``, ``embedding.npy``, ``metrics.json`` (when labels are known) and ``clusters.png``
into ``--out``. Without options DERC runs its default: the settings marked ``auto`` are chosen
from the number of images, their size and ``--k`` (fe_fast.clustering.auto; the values used are in
``--json``'s ``params_used``). ``--preset thesis`` runs the thesis's algorithm 4.1 as published.
"""
from __future__ import annotations

import argparse
import copy

from fe_fast.cli._common import add_common_options, apply_common, out_folder

# option dest -> DERC parameter; the options' defaults are DERC's (or the preset's)
_PARAMS = {
    "epochs": "stage1_epochs", "rounds": "stage2_rounds", "stage2_tol": "stage2_tol",
    "round_consensus": "round_consensus", "triplets": "triplets_per_round", "reducer": "reducer",
    "n_maps": "n_maps", "n_autoencoders": "n_autoencoders", "clusterer": "clusterer", "alpha": "alpha",
    "margin": "margin", "batch_size": "batch_size", "augment_shift": "augment_shift",
    "augment_rotation": "augment_rotation", "mirror": "mirror", "seed": "random_state", "device": "device",
}
_LABELS = {"auto": None, "folders": True, "none": False}


def _default(dest: str):
    """The library's default behind option ``dest`` (imported only when help is printed)."""
    if dest == "max_side":
        from fe_fast.datasets.images import DEFAULT_MAX_SIDE

        return DEFAULT_MAX_SIDE
    import inspect

    from fe_fast.clustering.derc import DERC

    return inspect.signature(DERC.__init__).parameters[_PARAMS[dest]].default


class _HelpFormatter(argparse.HelpFormatter):
    # "%(default)s" of an option left at None shows the library's default, looked up only when
    # help is printed so that building the parser imports no torch
    def _expand_help(self, action):
        if action.default is None and (action.dest in _PARAMS or action.dest == "max_side"):
            action = copy.copy(action)
            action.default = _default(action.dest)
        return super()._expand_help(action)


def add_parser(sub):
    p = sub.add_parser("cluster", help="cluster images with DERC (thesis ch. 4)", description=__doc__,
                       formatter_class=_HelpFormatter)
    p.add_argument("data", metavar="DATA", help="image folder, .npy/.npz/.mat/idx file, or digits | mnist-test | usps")
    p.add_argument("--k", type=int, required=True, help="number of clusters K (>= 2)")
    p.add_argument("--preset", default=None,
                   help="named settings (fe_fast.clustering.presets) that the other options override: thesis "
                        "(algorithm 4.1 as published; without a preset the defaults marked auto follow the data)")
    p.add_argument("--epochs", type=int, help="maximum stage-1 (autoencoder) epochs (default %(default)s)")
    p.add_argument("--rounds", type=int,
                   help="stage-2 triplet rounds (default %(default)s; 0 = autoencoder only)")
    p.add_argument("--stage2-tol", type=float,
                   help="stop stage 2 early once fewer than this share of images changed cluster since the "
                        "previous round (default %(default)s = run all --rounds, the thesis)")
    p.add_argument("--round-consensus", action="store_const", const=True, default=None,
                   help="final labels from the consensus of every round's clustering, not the last one alone "
                        "(default auto: on with the mixture clusterer; off in the thesis)")
    p.add_argument("--triplets", type=int, help="triplets per round (default: one per image, 20,000 from 20,000 images on)")
    p.add_argument("--reducer", choices=("tsne", "umap", "none"),
                   help="t-SNE (DERC), UMAP (not in the thesis) or none (DERC-R) (default %(default)s)")
    p.add_argument("--n-maps", type=int,
                   help="maps combined per clustering (default %(default)s; the thesis: 1)")
    p.add_argument("--n-autoencoders", type=int,
                   help="stage-1 autoencoders whose fused codes make the first clustering (default "
                        "%(default)s; the thesis: 1)")
    p.add_argument("--clusterer", choices=("gmm", "dbscan"), help="(default %(default)s)")
    p.add_argument("--alpha", type=float, help="triplet weight of eq. 4-10 (default %(default)s)")
    p.add_argument("--margin", type=float, help="margin of eq. 4-7 (default %(default)s)")
    p.add_argument("--batch-size", type=int, help="images per Adam step (default %(default)s)")
    p.add_argument("--augment-shift", type=float,
                   help="jitter, not in the thesis: shift training images by up to this fraction of "
                        "their side (default %(default)s; 0 = off, the thesis)")
    p.add_argument("--augment-rotation", type=float,
                   help="jitter: rotate training images by up to this many degrees (default "
                        "%(default)s; 0 = off)")
    p.add_argument("--mirror", choices=("on", "off"), default=None,
                   help="mirror invariance, not in the thesis: train also on left-right mirror images and "
                        "average the codes of each image and its mirror image (default auto: on for images "
                        "under 10 pixels a side whose mirror images look like the collection, e.g. faces)")
    p.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), default=None,
                   help="image folders: resize every image to H x W (centre-cropped to that aspect first); "
                        "default: keep one shared size, else the median size scaled to --max-side")
    p.add_argument("--max-side", type=int, default=None,
                   help="image folders without --size: longest side of the derived size (default %(default)s)")
    p.add_argument("--labels", choices=sorted(_LABELS), default="auto",
                   help="image folders: auto (sub-folders are classes when present, default), folders (they "
                        "must be), none (read every image below DATA without labels)")
    p.add_argument("--data-dir", default=None, help="where named datasets live (default $FE_FAST_DATA or ../shared/data)")
    add_common_options(p, out_default="derc_out", device_help="cpu, cuda ... (DERC's default: cuda if available)")
    p.set_defaults(func=run)


def run(args) -> int:
    import json
    import sys
    import time

    from fe_fast.clustering import DERC
    from fe_fast.clustering.derc import prepare_images
    from fe_fast.clustering.presets import derc_params
    from fe_fast.clustering.report import write_report
    from fe_fast.datasets.images import load_images

    apply_common(args)
    out_folder(args, create=False)  # a file there is refused before the work
    if args.k < 2:
        raise ValueError(f"--k must be >= 2, got {args.k}")
    t0 = time.perf_counter()
    given = {"max_side": args.max_side} if args.max_side is not None else {}
    data = load_images(args.data, data_dir=args.data_dir, size=args.size, labels=_LABELS[args.labels], **given)
    for line in data.skipped:
        print(f"fe-fast cluster: skipped unreadable file {line}", file=sys.stderr)
    images = prepare_images(data.images, name="DATA")
    if args.k > images.shape[0]:
        raise ValueError(f"--k ({args.k}) must not exceed the number of images ({images.shape[0]})")
    if args.mirror is not None:
        args.mirror = args.mirror == "on"
    params = derc_params(args.preset, **{param: getattr(args, dest) for dest, param in _PARAMS.items()})
    model = DERC(args.k, verbose=args.progress, **params).fit(images)
    result = write_report(args.out, model, images, y=data.labels, seconds=time.perf_counter() - t0,
                          skipped=data.skipped)
    if args.json:
        print(json.dumps(result))
    else:
        msg = (f"{result['n_samples']} images ({result['image_size'][0]}x{result['image_size'][1]}) -> "
               f"{result['n_clusters']} clusters in {result['seconds']:.1f} s; wrote {args.out}/")
        if result["acc"] is not None:
            msg += f"  ACC {result['acc']:.4f}  NMI {result['nmi']:.4f}"
        print(msg)
        print("seconds per stage: " + ", ".join(f"{k} {v:.1f}" for k, v in result["stage_seconds"].items()))
    return 0
