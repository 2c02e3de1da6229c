"""The data-dependent default of :class:`~fe_fast.clustering.DERC`: :func:`resolve`.

DERC's parameters whose good value depends on the data default to the string ``"auto"``; the
constructor stores them unchanged and :meth:`DERC.fit` replaces them by :func:`resolve`'s values for
the number of images ``N``, their shape ``(C, H, W)``, the number of clusters ``K`` and, for tiny
images, whether the collection is mirror-symmetric (:func:`mirror_ratio`) (recorded in
``params_used_``). Parameters given explicitly are never changed, so ``--preset thesis`` (every
value explicit) runs algorithm 4.1 exactly.

The rules were chosen on MNIST-test and USPS only (subsamples of 100-400 images, 10-40 per class,
three seeds each, plus the full sets' recipe of bench/results/derc.md) and validated once on data
never used while choosing (scikit-learn's 8x8 digits, toy-face identities); the tiny-image rules
(``TINY_SIDE``) were chosen on 8x8 block averages of MNIST-test / USPS and a toy-face choosing split
and validated on fresh 8x8 toy faces (with ``mirror``, all six 8x8 face sets beat spectral
clustering on the pixels in one run; before it one of five failed on NMI). The log of every
candidate, the kept and the rejected, is the
protocol section of bench/results/derc.md. With ``m = N / K`` images per cluster:

* ``stage1_epochs``: an upper bound only; stage 1 stops early on a held-out reconstruction loss
  (``validation_fraction``). The bound gives about ``STAGE1_STEPS`` Adam steps whatever N (small
  sets need many epochs: 30 epochs of 100 images are 60 steps and left the codes worse than the
  pixels), between 10 and 300 epochs.
* ``patience``: a tenth of that bound, at least 3 epochs (the held-out loss of a few tens of
  images is noisy: 3 epochs stopped 100 images after 6 epochs, far from trained); a quarter on
  tiny images (below ``TINY_SIDE``, trained without the jitter), where a tenth stopped the 8x8 toy
  faces of the choosing split after 12-32 of 69 epochs.
* ``batch_size``: 16 below 1,000 images (more steps for the same pixels seen), else 64.
* ``validation_fraction``: 0.1 (at least ``MIN_HELD_OUT`` images, else no hold-out and the
  training-loss plateau of the thesis).
* ``augment_shift`` / ``augment_rotation``: 0.1 of the side and 10 degrees (the jitter measured on
  USPS/MNIST; it is what lets a small set train for many epochs without memorising it), on images
  of at least ``TINY_SIDE`` = 10 pixels a side. On smaller images 0.1 of the side is less than a
  pixel (a blur by interpolation, not a shift) and the jitter is off.
* ``stage2_rounds`` on tiny images (below ``TINY_SIDE``): 0, the first clustering (of the
  autoencoders' fused codes, 3 maps) is the final one. Chosen on 8x8 block averages of USPS / MNIST-test
  (150 images per class, seeds 0-2; bench/results/derc.md, "Tiny images"): with the jitter, stage 2
  changed little (mean NMI of stage 1 alone -> with stage 2: 0.697 -> 0.692 on MNIST-test, 0.744
  -> 0.744 on USPS); without the jitter it lowered NMI on 6 of 6 runs, and stage 1 alone without
  the jitter was best (0.749 / 0.752). The encoder of tiny images keeps ``latent_dim`` values in its
  last map (:func:`.autoencoder.encoder_layout`). Not measured: tiny collections of 5,000 images
  or more (the rules give the ensemble of 3 autoencoders and 5 maps with 0 rounds), and elongated
  images with only one short side (the jitter is off on both axes).
* ``latent_dim``: 128 (the thesis's ``d_z``); smaller codes did not help on the digit choosing sets
  (32 at 8x8, which also keeps Table 4-2's 1x1 map of 32 values: mean NMI 0.653 / 0.660 against
  0.749 / 0.752 on MNIST-test / USPS), though they did on the toy-face choosing split (0.842
  against 0.822).
* ``reducer``: ``"umap"``; ``n_neighbors``: ``clip(round(m / 4), 5, 10)`` below
  ``MID_NN_PER_CLUSTER`` = 200 images per cluster, ``clip(round(m / 4), 5, 20)`` from 200 on: a
  neighbourhood well inside one cluster of the expected size. At 40 per cluster 10 neighbours beat
  20 on all three runs; at 150 per cluster (1,500 images) 10 beat 20 on ACC and NMI on all four
  runs (USPS and MNIST-test, two seeds each); at 250 per cluster (2,500 images) 20 beat 10 on USPS
  and tied on MNIST-test (one seed each); 200 is the middle of the two measured sizes. The full
  sets' recipe (700-1,000 per cluster) used 20.
* ``covariance_type``: ``"full"`` when the clusters have at least ``FULL_COV_PER_PARAM`` images
  per free parameter of a full covariance in the clustered space (100 per cluster for a 2-D map),
  ``"diag"`` otherwise (diagonal beat full on 3 of 3 runs at 40 per cluster; at 150 per
  cluster it was mixed, below 10 neighbours with the full one on ACC in 3 of 4 runs).
* ``n_maps``, ``n_autoencoders``, ``stage2_rounds``: from ``ENSEMBLE_N`` = 5,000 images on, the
  recipe that met the thesis's numbers on the full sets (5 maps, 3 autoencoders, 3 rounds); below,
  3 maps, 1 autoencoder (a third of stage 1's time) and 2 rounds, measured on 100-400 images and
  at 1,500 and 2,500 images (one map per clustering instead of 3 lost on USPS at 1,500, both
  seeds, and, with 10 neighbours, on both sets at 2,500). Tiny images: 0 rounds (above).
  From ``LARGE_N`` = 20,000 images on (e.g. 70,000): one autoencoder, 3 maps, 2 rounds,
  ``LARGE_TRIPLETS`` = 20,000 triplets per round (``triplets_per_round``; below, one per image)
  and no 10-epoch floor on stage 1 (the ``STAGE1_STEPS`` bound gives 2 epochs at 70,000): the
  settings of the 70,000-image run (MNIST-test and six jittered copies, ACC 0.963, NMI 0.914,
  peak 2.1 GiB; bench/results/derc.md, "Large N"); with the full sets' ensemble that size takes
  hours on 2 cores.
  Tiny images (below ``TINY_SIDE``, fewer than ``LARGE_N``) also get the ensemble's 3
  autoencoders: without stage 2 their first clustering is the final one, and one autoencoder is a
  lottery there (NMI over four ``random_state`` values on the same 8x8 choosing images spread
  up to 0.19 on one set); the consensus of 3 beat the mean single autoencoder on 11 of 12
  choosing sets (mean NMI 0.771 against 0.755) and, on the four older 8x8 validation sets, the
  single one's means (ACC 0.724 / NMI 0.786 against 0.701 / 0.776; both with the vote of their
  clusterings, the mechanism before fused codes); 3x stage 1's time
  (bench/results/derc.md, "Tiny images: one autoencoder is a lottery"). Their codes are fused
  before mapping (:func:`.derc.fuse_codes`; NMI above the vote of their clusterings on 12 of 12
  of those choosing sets, mean 0.791 against 0.771, "Tiny images: one autoencoder is a lottery";
  every set with it: "Fused codes"). The rule holds for a
  :class:`~fe_fast.clustering.DAE` and ``reducer="none"`` too (the mixture is then fitted on the
  fused codes).
  ``round_consensus``: True. The consensus options stay off where the explicit
  parameters exclude them (``clusterer="dbscan"``; ``n_maps`` 1 with ``reducer="none"``).
* ``mirror``: True on tiny images (below ``TINY_SIDE``) of a mirror-symmetric collection
  (:func:`mirror_ratio` at most ``MIRROR_RATIO``: each image's mirror image lies about as close to
  the collection as the image itself, as for faces turned either way and lit from either side; not
  for digits, whose mirror images are not digits); False otherwise. With it, stage 1 also trains on
  mirror images and the codes are the mean of an image's and its mirror image's codes, so the
  clustering does not see which way a face turns. Chosen on the toy-face choosing sets (NMI of the
  six of "More choosing after the fused run" 0.810 -> 0.864, above spectral clustering on 5 of 6,
  against 3 of 6 without); the statistic was 0.99-1.02 on those faces and 1.46-1.52 on the 8x8
  MNIST-test / USPS choosing sets, where the rule leaves the default unchanged
  (bench/results/derc.md, "Mirror invariance"). Not measured on images of 10 pixels or more,
  where it stays off unless given.
"""
from __future__ import annotations

import math
from typing import Mapping, Optional, Sequence

__all__ = ["AUTO", "AUTO_PARAMS", "resolve", "STAGE1_STEPS", "FULL_COV_PER_PARAM",
           "MIN_HELD_OUT", "SMALL_N", "ENSEMBLE_N", "MID_NN_PER_CLUSTER", "LARGE_N", "LARGE_TRIPLETS",
           "TINY_SIDE", "MIRROR_RATIO", "MIRROR_SAMPLE", "mirror_ratio", "measure_mirror_ratio"]

AUTO = "auto"
#: Adam steps stage 1 may take (the bound on ``stage1_epochs``; early stopping usually ends sooner)
STAGE1_STEPS = 1500
#: images per cluster and free parameter of a full covariance below which ``covariance_type`` is
#: ``"diag"``: in a 2-D map (3 parameters) a full covariance from 100 images per cluster on
FULL_COV_PER_PARAM = 100 / 3
#: fewest held-out images for the held-out early stop
MIN_HELD_OUT = 10
#: below this many images Adam steps on batches of 16 (else 64)
SMALL_N = 1000
#: images per cluster from which UMAP's neighbourhood may grow past 10 (to 20)
MID_NN_PER_CLUSTER = 200
#: from this many images on, the ensemble of the full sets' recipe (bench/results/derc.md, measured on
#: 7,291 and 10,000 images): 5 maps, 3 autoencoders, 3 rounds
ENSEMBLE_N = 5000
#: from this many images on, the large-collection settings (one autoencoder, 3 maps, 2 rounds,
#: ``LARGE_TRIPLETS`` triplets per round, no epoch floor)
LARGE_N = 20000
LARGE_TRIPLETS = 20000
#: images with a shorter side than this are tiny: no jitter (0.1 of the side is under a pixel), no
#: stage 2, stage-1 patience a quarter of the epoch bound, 3 autoencoders below ``LARGE_N`` images
#: (measured at 8x8 and 1,500 images only)
TINY_SIDE = 10
#: a collection is mirror-symmetric when :func:`mirror_ratio` is at most this (toy faces 0.99-1.02,
#: 8x8 digits 1.46-1.52 on the choosing sets)
MIRROR_RATIO = 1.2
#: images :func:`mirror_ratio` looks at (a fixed subsample of larger collections)
MIRROR_SAMPLE = 2000

#: the parameters that accept ``"auto"``
AUTO_PARAMS = (
    "latent_dim", "stage1_epochs", "stage2_rounds", "round_consensus", "reducer", "n_maps",
    "n_autoencoders", "batch_size", "augment_shift", "augment_rotation", "n_neighbors",
    "covariance_type", "validation_fraction", "patience", "triplets_per_round", "mirror",
)


def _is_auto(v) -> bool:
    return isinstance(v, str) and v == AUTO


def _is_tiny(image_shape: Sequence[int]) -> bool:
    return min(tuple(image_shape)[1:]) < TINY_SIDE


def mirror_ratio(X) -> float:
    """How mirror-symmetric a collection of images is: the median distance from each image's mirror
    image (flipped left-right) to its nearest image of the collection other than itself, over the
    median distance from each image to its nearest other image. About 1 when the mirror images look
    like the collection (faces), well above 1 when they do not (digits).

    ``X``: ``(N, C, H, W)`` array, N >= 3; deterministic (collections of more than
    ``MIRROR_SAMPLE`` images: a fixed random subsample of that many).
    """
    import numpy as np
    from sklearn.neighbors import NearestNeighbors

    X = np.asarray(X)
    if X.ndim != 4 or X.shape[0] < 3:
        raise ValueError(f"mirror_ratio needs (N, C, H, W) images, N >= 3, got shape {X.shape}")
    if X.shape[0] > MIRROR_SAMPLE:
        X = X[np.sort(np.random.default_rng(0).choice(X.shape[0], MIRROR_SAMPLE, replace=False))]
    A = X.reshape(X.shape[0], -1).astype(np.float64)
    M = X[..., ::-1].reshape(X.shape[0], -1).astype(np.float64)
    nn = NearestNeighbors(n_neighbors=2).fit(A)
    own = nn.kneighbors(A)[0][:, 1]
    dist, idx = nn.kneighbors(M)
    # a symmetric image's mirror image is nearest to the image itself: take the next one
    mirrored = np.where(idx[:, 0] == np.arange(A.shape[0]), dist[:, 1], dist[:, 0])
    return float(np.median(mirrored) / max(float(np.median(own)), 1e-12))


def measure_mirror_ratio(params: Mapping, X) -> Optional[float]:
    """:func:`mirror_ratio` of images ``X`` ``(N, C, H, W)`` where :func:`resolve`'s ``mirror`` rule
    depends on it (``mirror`` is ``"auto"``, the images are tiny, N >= 3); else None (nothing is
    computed)."""
    if not (_is_auto(params.get("mirror")) and _is_tiny(X.shape[1:]) and X.shape[0] >= 3):
        return None
    return mirror_ratio(X)


def resolve(params: Mapping, n_samples: int, image_shape: Sequence[int], n_clusters: int,
            mirror_symmetric: bool = False) -> dict:
    """A copy of DERC parameters ``params`` with every ``"auto"`` value replaced by its rule.

    ``n_samples``: N images; ``image_shape``: ``(C, H, W)``; ``n_clusters``: K;
    ``mirror_symmetric``: whether :func:`mirror_ratio` of the images is at most ``MIRROR_RATIO``
    (:func:`measure_mirror_ratio`, which DERC calls before it). Only the keys
    present in ``params`` are returned (a :class:`~fe_fast.clustering.DAE` has no
    ``stage2_rounds``). Values other than ``"auto"`` are returned unchanged (DERC checks them).
    Pure: no randomness, no I/O. Raises ``ValueError`` for a non-positive ``n_samples`` or
    ``n_clusters`` or an image shape that is not ``(C, H, W)``.
    """
    n, k = int(n_samples), int(n_clusters)
    if n < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}")
    if k < 1:
        raise ValueError(f"n_clusters must be >= 1, got {n_clusters}")
    if len(tuple(image_shape)) != 3:
        raise ValueError(f"image_shape must be (C, H, W), got {tuple(image_shape)}")
    tiny = _is_tiny(image_shape)
    small = n < SMALL_N
    large = n >= LARGE_N
    ensemble = ENSEMBLE_N <= n < LARGE_N
    per_cluster = n / k
    out = dict(params)

    def rule(name, value):
        if name in out and _is_auto(out[name]):
            out[name] = value

    rule("batch_size", 16 if small else 64)
    bs = out.get("batch_size", 64)
    bs = bs if isinstance(bs, int) and bs > 0 else 64
    steps_per_epoch = max(1, math.ceil(0.9 * n / min(bs, n)))
    rule("stage1_epochs", int(min(300, max(1 if large else 10, math.ceil(STAGE1_STEPS / steps_per_epoch)))))
    epochs = out.get("stage1_epochs")
    rule("patience", max(3, epochs // (4 if tiny else 10)) if isinstance(epochs, int) else 3)
    rule("validation_fraction", 0.1 if n * 0.1 >= MIN_HELD_OUT else 0.0)
    rule("augment_shift", 0.0 if tiny else 0.1)
    rule("augment_rotation", 0.0 if tiny else 10.0)
    rule("latent_dim", 128)
    rule("reducer", "umap")
    rule("n_neighbors", int(min(10 if per_cluster < MID_NN_PER_CLUSTER else 20, max(5, round(per_cluster / 4)))))
    # the consensus options need mixtures (and several maps need a map); they stay off otherwise
    gmm = out.get("clusterer", "gmm") == "gmm"
    rule("n_autoencoders", (3 if ensemble or (tiny and not large) else 1) if gmm else 1)
    # the space the mixture is fitted in: a 2-D map (3 free parameters per full covariance), or the
    # codes (latent_dim (latent_dim + 1) / 2; an ensemble's fused codes are n_autoencoders times wider)
    dim = 2
    if out.get("reducer") == "none":
        dim = out.get("latent_dim", 128) if isinstance(out.get("latent_dim"), int) else 128
        a = out.get("n_autoencoders", 1)
        if isinstance(a, int) and a > 1:  # (True > 1 is False, so a bool never widens it)
            dim *= a
    full_params = dim * (dim + 1) / 2
    rule("covariance_type", "full" if per_cluster >= FULL_COV_PER_PARAM * full_params else "diag")
    rule("n_maps", (5 if ensemble else 3) if gmm and out.get("reducer") != "none" else 1)
    rule("stage2_rounds", 0 if tiny else 3 if ensemble else 2)
    rule("round_consensus", gmm)
    rule("triplets_per_round", LARGE_TRIPLETS if large else None)
    rule("mirror", bool(tiny and mirror_symmetric))
    return out
