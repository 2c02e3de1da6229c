"""DERC: deep embedded dimensionality-reduction clustering (thesis chapter 4, algorithm 4.1).

Stage 1 trains the convolutional autoencoder of Table 4-2 (:mod:`.autoencoder`) on the
reconstruction loss (eq. 4-8 with the squared distance of eq. 4-11, averaged per pixel), Adam lr 1e-3,
betas (0.9, 0.99), up to ``stage1_epochs`` epochs with an early stop when the epoch loss stops
improving (plateau). Stage 2 repeats ``stage2_rounds`` times: embed all images ``Z = E(X)``
(eq. 4-1), reduce them to 2-D with t-SNE (eq. 4-2, 4-3; openTSNE, scikit-learn as fallback), fit a
K-component Gaussian mixture (eq. 4-4) whose responsibilities (eq. 4-5) drive the probabilistic
triplet sampling, then train the autoencoder on ``L_p + alpha * L_c`` (eq. 4-10; ``L_c`` eq. 4-9 of
the hinged eq. 4-7, see :mod:`.triplets`). The final labels come from one more
embed / reduce / cluster pass.

Options beyond the thesis (the preset ``"thesis"`` turns them off; DERC's ``"auto"`` defaults
use several of them, see :mod:`.auto`): ``reducer="umap"`` maps with UMAP
instead of t-SNE, and ``n_maps > 1`` clusters several maps of the same codes (seeds ``s``,
``s + 1``, ... for the run's seed ``s = random_state``) and combines their mixtures
(:mod:`.consensus`), so that one map's merge of two close classes does not decide the clustering. ``n_autoencoders > 1`` trains several stage-1
autoencoders (seeds ``s``, ``s + 1000``, ...) and maps their fused codes (:func:`fuse_codes`) in
the first clustering; stage 2 then trains the first autoencoder on that clustering's triplets,
so one autoencoder's merge of two classes does not decide it either.
``stage2_tol > 0`` ends stage 2 early once a round's clustering differs from the previous round's
in fewer than that fraction of the samples (after matching cluster ids), the convergence test of
DEC (Xie et al., 2016); that clustering is then the final one. ``round_consensus=True`` makes the
final labels the consensus of every clustering of the run (round 0 to the final one), a snapshot
ensemble over the rounds instead of the last clustering alone.

Ablations of Table 4-3: ``reducer="none"`` is DERC-R (the mixture is fitted on the codes ``Z``
directly) and :class:`DAE` is stage 1 only followed by a mixture on the codes. ``clusterer="dbscan"``
replaces the mixture by DBSCAN (the thesis's YTF setting); DBSCAN gives hard labels, used as
one-hot responsibilities, and marks noise with label -1 (excluded from triplets).
"""
from __future__ import annotations

import inspect
import math
import os
import sys
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from .augment import random_affine, random_mirror
from .auto import AUTO_PARAMS, MIRROR_RATIO, measure_mirror_ratio, resolve
from .autoencoder import ENCODER_CHANNELS, ConvAutoencoder
from .consensus import consensus_responsibilities
from .metrics import clustering_accuracy, nmi
from .triplets import probabilistic_triplet_loss, sample_triplets

__all__ = ["DERC", "DAE", "prepare_images", "reduce_tsne", "reduce_umap"]

REDUCERS = ("tsne", "umap", "none")
COVARIANCE_TYPES = ("full", "diag", "spherical")
#: images encoded per forward pass when embedding (memory: one chunk of activations at a time)
EMBED_CHUNK = 1024
#: the mixture's EM runs on at most this many points of a map (a seeded random subset beyond it);
#: responsibilities are computed for every sample. Runs up to this size are unchanged by it.
GMM_FIT_MAX = 20000


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, MiB (``getrusage``; NaN where unavailable)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on Windows
        return float("nan")
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024.0 / (1024.0 if sys.platform == "darwin" else 1.0)


class _Progress:
    """Overall progress of one fit with an ETA (printed to stderr when ``verbose``).

    The plan counts units of four kinds: stage-1 ``epoch``s, ``embed`` passes, ``map``s (a reduction
    plus its mixture) and ``triplets`` rounds. The ETA sums, over the units left, the mean seconds
    of units of the same kind measured so far; a kind not measured yet is priced from the epoch
    time by its image passes (an embed 1/3 of an epoch's, a triplet round 3 * triplets / N
    epochs, a map half an epoch) -- a rough guess until one of them has run.
    """

    PRIOR = {"embed": 1.0 / 3.0, "map": 0.5}

    def __init__(self, plan: dict, triplet_epochs: float, enabled: bool, stream=None):
        self.left = dict(plan)
        self.done = {k: 0 for k in plan}
        self.seconds = {k: 0.0 for k in plan}
        self.prior = dict(self.PRIOR, triplets=triplet_epochs)
        self.enabled = enabled
        self.stream = stream
        self.t0 = self.last = time.perf_counter()

    def unit_seconds(self, kind: str) -> Optional[float]:
        if self.done.get(kind):
            return self.seconds[kind] / self.done[kind]
        if self.done.get("epoch"):
            return self.seconds["epoch"] / self.done["epoch"] * self.prior.get(kind, 1.0)
        return None

    def eta(self) -> Optional[float]:
        total = 0.0
        for kind, n in self.left.items():
            if n <= 0:
                continue
            u = self.unit_seconds(kind)
            if u is None:
                return None
            total += n * u
        return total

    def skip(self, kind: str, n: int) -> None:
        """``n`` planned units of ``kind`` will not run (an early stop)."""
        self.left[kind] = max(0, self.left.get(kind, 0) - n)

    def step(self, kind: str, what: str = "") -> None:
        now = time.perf_counter()
        self.seconds[kind] = self.seconds.get(kind, 0.0) + now - self.last
        self.done[kind] = self.done.get(kind, 0) + 1
        self.left[kind] = max(0, self.left.get(kind, 0) - 1)
        self.last = now
        if self.enabled:
            eta = self.eta()
            left = "?" if eta is None else f"{eta / 60:.1f} min"
            units = ", ".join(f"{k} {self.done[k]}/{self.done[k] + self.left[k]}" for k in self.left
                              if self.done[k] + self.left[k])
            print(f"DERC progress: {units}; elapsed {(now - self.t0) / 60:.1f} min, ETA {left}"
                  + (f" ({what})" if what else ""), file=self.stream or sys.stderr, flush=True)


def prepare_images(X, name: str = "X") -> np.ndarray:
    """Validate images and return a float32 ``(N, C, H, W)`` copy scaled to [0, 1].

    Accepts ``(N, H, W)``, ``(N, C, H, W)`` (C in 1..4), ``(N, H, W, C)`` (C in 1..4, when the
    second axis is not a plausible channel count) and flat ``(N, D)`` with ``D`` a perfect square
    (grey square images). uint8 images are divided by 255; other images whose maximum exceeds 1 are
    divided by their maximum (e.g. scikit-learn's 0..16 digits); images already in [0, 1] are kept.
    Raises ``ValueError`` for empty input, non-finite pixels or an unsupported shape.
    """
    if isinstance(X, torch.Tensor):
        X = X.detach().cpu().numpy()
    arr = np.asarray(X)
    if arr.size == 0 or arr.ndim == 0 or arr.shape[0] == 0:
        raise ValueError(f"{name}: expected at least one image, got an empty array of shape {arr.shape}")
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise ValueError(f"{name}: expected numeric pixels, got dtype {arr.dtype}")
    src_dtype = arr.dtype
    arr = arr.astype(np.float32)  # copy: never touch the caller's data
    if not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).sum())
        raise ValueError(f"{name}: contains {bad} NaN or infinite pixel values")
    if arr.ndim == 2:
        side = int(round(math.sqrt(arr.shape[1])))
        if side * side != arr.shape[1]:
            raise ValueError(
                f"{name}: flat images of {arr.shape[1]} pixels are not square; pass (N, H, W) or (N, C, H, W)"
            )
        arr = arr.reshape(arr.shape[0], 1, side, side)
    elif arr.ndim == 3:
        arr = arr[:, None]
    elif arr.ndim == 4:
        if arr.shape[1] not in (1, 2, 3, 4) and arr.shape[3] in (1, 2, 3, 4):
            arr = np.ascontiguousarray(arr.transpose(0, 3, 1, 2))
        elif arr.shape[1] not in (1, 2, 3, 4):
            raise ValueError(f"{name}: cannot find the channel axis of images with shape {arr.shape}")
    else:
        raise ValueError(f"{name}: expected (N, H, W), (N, C, H, W), (N, H, W, C) or (N, D), got {arr.shape}")
    if arr.dtype != np.float32:  # pragma: no cover
        arr = arr.astype(np.float32)
    hi = float(arr.max())
    if src_dtype == np.uint8:
        arr /= 255.0
    elif hi > 1.0:
        arr /= hi  # e.g. scikit-learn's digits (0..16) or 16-bit images
    return np.ascontiguousarray(arr)


def reduce_tsne(
    Z: np.ndarray, seed: int = 0, perplexity: float = 30.0, n_jobs: int = 1, metric: str = "euclidean"
) -> np.ndarray:
    """2-D t-SNE of the codes (thesis eq. 4-2/4-3). openTSNE when importable, else scikit-learn.

    ``metric``: distance between codes for the input affinities (DERC uses the default, euclidean).
    """
    Z = np.asarray(Z, dtype=np.float64)
    perp = float(min(perplexity, max(2.0, (Z.shape[0] - 1) / 3.0)))
    try:
        from openTSNE import TSNE

        emb = TSNE(
            n_components=2,
            perplexity=perp,
            metric=metric,
            initialization="pca",
            random_state=seed,
            n_jobs=n_jobs,
            verbose=False,
        ).fit(Z)
        return np.asarray(emb, dtype=np.float64)
    except ImportError:  # pragma: no cover - openTSNE is a pinned dependency
        from sklearn.manifold import TSNE as SKTSNE

        return SKTSNE(n_components=2, perplexity=perp, metric=metric, init="pca", random_state=seed).fit_transform(Z)


def reduce_umap(Z: np.ndarray, seed: int = 0, n_neighbors: int = 20, min_dist: float = 0.0) -> np.ndarray:
    """2-D UMAP of the codes (an option of DERC in place of t-SNE's eq. 4-2/4-3; not in the thesis).

    ``min_dist=0`` packs each cluster tightly, the setting used for clustering on UMAP maps. With a
    seed, umap-learn runs single-threaded and is deterministic.
    """
    import warnings

    try:
        import umap
    except ImportError as e:  # pragma: no cover - umap-learn is a pinned dependency
        raise ImportError("reducer='umap' needs umap-learn: pip install 'fe-fast[clustering]'") from e
    Z = np.asarray(Z, dtype=np.float64)
    nn = int(min(n_neighbors, Z.shape[0] - 1))
    torch_threads = torch.get_num_threads()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="n_jobs value", category=UserWarning)
            # numba falls back from an old system TBB to its own threading layer; nothing to do
            warnings.filterwarnings("ignore", message="The TBB threading layer")
            emb = umap.UMAP(n_components=2, n_neighbors=nn, min_dist=min_dist, random_state=seed).fit_transform(Z)
    finally:
        # numba's OpenMP layer resets the process-wide thread count (torch went from 1 to 2 threads
        # here), which changed later codes in their last bits and so broke same-seed determinism
        torch.set_num_threads(torch_threads)
    return np.asarray(emb, dtype=np.float64)


def fuse_codes(codes) -> np.ndarray:
    """The codes of an ensemble of autoencoders as one array: each autoencoder's (N, d) codes
    divided by their mean feature standard deviation, so that each weighs the same in the
    neighbour graph of the map, then concatenated (N, sum of d). Not in the thesis (bench/results/derc.md,
    "Tiny images": fused codes against a vote of the autoencoders' clusterings)."""
    return np.hstack([np.asarray(z, dtype=np.float64) / (float(np.std(z, axis=0).mean()) + 1e-12) for z in codes])


_DEPRECATED = "deprecated"  # default of the deprecated aliases ``seed`` and ``progress``


@dataclass
class _FitState:
    """What the stages of one :meth:`DERC.fit` pass to each other (dropped when fit returns)."""

    Xt: torch.Tensor
    y: Optional[np.ndarray]
    inits: list
    rng: np.random.Generator
    hist: dict
    opt: Optional[torch.optim.Optimizer] = None
    gen: Optional[torch.Generator] = None
    extra_codes: list = field(default_factory=list)
    round_probas: list = field(default_factory=list)
    prev_labels: Optional[np.ndarray] = None
    converged: Optional[tuple] = None


class DERC(ClusterMixin, BaseEstimator):
    """Deep embedded dimensionality-reduction clustering, a scikit-learn estimator (thesis algorithm 4.1).

    Parameters are stored unchanged by the constructor (``get_params`` / ``set_params`` /
    ``sklearn.base.clone`` work, and so does a :class:`sklearn.pipeline.Pipeline` ending in DERC);
    they are checked by :meth:`fit`. Parameters whose good value depends on the data default to
    ``"auto"``: :meth:`fit` resolves them from the number of images, their shape and K with
    :func:`fe_fast.clustering.auto.resolve` (rules and how they were chosen in that module) and
    records the values it ran with in ``params_used_``; ``get_params`` keeps ``"auto"``. The
    thesis's settings are the preset :data:`fe_fast.clustering.presets.PRESETS` ``["thesis"]``.
    Below, "auto" names the parameters that accept it.

    Parameters
    ----------
    n_clusters: K, number of mixture components (2 <= K <= n_samples; default 8 as in
        scikit-learn's k-means, always pass the number of classes you expect).
    latent_dim: code size ``d_z`` (thesis 128; auto).
    alpha: weight of the triplet loss in eq. 4-10 (thesis default 0.1).
    margin: the margin of eq. 4-7 (distances between unit-length codes when ``normalize_codes``).
    stage1_epochs: maximum epochs of stage 1 (thesis: 100, early stop on plateau; auto).
    stage2_rounds: outer iterations ``iter`` of algorithm 4.1 (0 = DAE-like, stage 1 only; thesis 5;
        auto).
    stage2_tol: label-free early stop of stage 2 (default 0 = always ``stage2_rounds`` rounds, the
        thesis). From the second round on, when the fraction of samples whose cluster changed
        since the previous round's clustering (cluster ids matched by the Hungarian assignment)
        is below ``stage2_tol``, stage 2 stops without training on it and that clustering is
        the final one. ``history_["rounds"][r]["changed"]`` records the fraction either way.
    round_consensus: final labels and ``proba_`` from the consensus (:mod:`.consensus`) of the
        responsibilities of every clustering of the run, round 0 to the final one (auto; False:
        the last clustering alone, the thesis). Costs one k-means on the stacked responsibilities;
        ``history_["final"]`` keeps the last clustering's own scores as ``acc_last``/``nmi_last``.
        Needs ``clusterer="gmm"``.
    triplets_per_round: triplets ``N`` sampled per round (None: the number of images; "auto": that
        below 20,000 images, 20,000 from there on).
    reducer: ``"tsne"`` (DERC), ``"umap"`` (UMAP map instead of t-SNE; not in the thesis) or
        ``"none"`` (DERC-R: cluster the codes directly); auto.
    n_neighbors: UMAP's neighbourhood size (auto: a quarter of the images per cluster, 5 to 10
        below 200 per cluster, up to 20 from 200 on as in the full sets' recipe).
    covariance_type: covariance of the mixture's components, ``"full"`` (eq. 4-4, the thesis),
        ``"diag"`` or ``"spherical"`` (auto).
    clusterer: ``"gmm"`` (eq. 4-4) or ``"dbscan"``.
    n_maps: maps per clustering (thesis 1; auto). With M > 1 every clustering fits the
        mixture on M maps of the codes (seeds ``s .. s + M - 1`` for the run's seed ``s``) and
        combines them (:func:`.consensus.consensus_responsibilities`); needs a reducer and
        ``clusterer="gmm"``.
    n_autoencoders: stage-1 autoencoders (thesis 1; auto). With A > 1, autoencoders
        ``m = 1 .. A-1`` (seeds ``s + 1000 m``) are trained as stage 1 trains the first, and the
        first clustering maps the codes of all A, each scaled to unit mean feature standard
        deviation and concatenated (:func:`fuse_codes`); stage 2 trains and later clusterings use
        the first autoencoder (seed ``s``), which is trained exactly as with A = 1, and so do
        ``transform`` and ``embedding_``. Without stage 2 (``stage2_rounds=0``) the labels are
        those of the fused codes. Costs A - 1 extra stage-1 trainings; needs ``clusterer="gmm"``.
    random_state: the run's seed ``s``: every random choice (weights, shuffles, triplets, t-SNE,
        mixture) follows it. An int (default 0: runs are reproducible by default, unlike
        scikit-learn's ``None``), ``None`` (a fresh seed per fit) or a ``numpy.random.RandomState``
        (one integer is drawn from it per fit). Runs with the same int and ``tsne_n_jobs`` on CPU
        give the same labels (openTSNE's map depends on its thread count).
    device: torch device for the autoencoder (default: CUDA when available, else CPU).
    batch_size, lr, betas: optimiser settings (Adam, thesis lr 1e-3, momentum 0.99). The
        thesis gives no batch size; 64 is the size our USPS/MNIST measurements used (auto).
    patience, tol: stage-1 early stop: stop after ``patience`` epochs (auto; thesis preset 3)
        without a relative improvement larger than ``tol`` of the watched loss: the held-out
        reconstruction loss when ``validation_fraction`` > 0 (the weights of the best held-out
        epoch are kept), else the training loss (the thesis's plateau).
    validation_fraction: share of the images held out of stage-1 training and watched by its
        early stop (eq. 4-8 on the clean held-out images; auto; 0 = none, the thesis). Stage 2
        and the clustering use every image.
    perplexity, tsne_n_jobs: t-SNE settings.
    gmm_n_init: restarts of the mixture's EM.
    dbscan_eps, dbscan_min_samples: DBSCAN settings (eps None: 2x the median distance to the
        ``min_samples``-th neighbour in the reduced space).
    channels: encoder widths of Table 4-2; the strides follow the image size
        (:func:`.autoencoder.encoder_layout`: Table 4-2's strides from 9x9 to 40x40 pixels,
        28x28 included, more stride-2 layers for larger images, fewer for smaller ones).
    normalize_codes: triplet distances between unit-length codes (see
        :func:`.triplets.probabilistic_triplet_loss`; a documented deviation that prevents the
        codes from shrinking to a collapse).
    negative_weight: ``"complement"`` (default: ``1 - p_{n,k}`` weights the negative distance) or
        ``"printed"`` (eq. 4-7 as printed, ``p_{n,k}``); see :mod:`.triplets`.
    augment_shift, augment_rotation: jitter, not in the thesis (auto; 0 = off, the thesis): the
        encoder sees each training image shifted by up to ``augment_shift`` of its side and rotated
        by up to ``augment_rotation`` degrees, and the decoder reconstructs the clean image, in
        both stages (:mod:`.augment`). Codes and clustering always use the clean images.
    mirror: mirror invariance, not in the thesis (auto: on for tiny images of a mirror-symmetric
        collection, see :mod:`.auto`; False = the thesis): both stages train on each batch image
        mirrored left-right with probability 1/2 (the mirror image is then also the image to
        reconstruct), and the codes (``embedding_``, ``transform``, the maps) are the mean of the
        codes of an image and of its mirror image. For collections whose mirror images are images
        of the same kind (faces seen from either side), not for digits or text.
    verbose: > 0 shows tqdm progress bars (default 0).
    seed, progress: deprecated aliases of ``random_state`` and ``verbose`` (one release; a
        ``FutureWarning`` is raised by ``fit`` when they are set).
    n_jobs: threads for the ``n_maps`` UMAP maps of one clustering and their mixtures (default
        None: every CPU core; negative: all but ``-n_jobs - 1`` cores). Speed only: every map has
        its own seeded random state, so the labels do not depend on it (t-SNE maps stay sequential
        and use ``tsne_n_jobs``).

    Large collections: the codes are encoded in chunks (``EMBED_CHUNK`` images) into one float64
    (N, latent_dim) array, the mixture's EM runs on at most ``GMM_FIT_MAX`` points of a map, the
    maps (openTSNE, UMAP with approximate nearest neighbours beyond 4096 points), triplet sampling
    and the consensus work on (N, K) or (N, 2) arrays: no N x N matrix is formed. With
    ``verbose`` a line per stage-1 epoch, map and triplet round reports the progress and an ETA.

    Attributes after ``fit``: ``params_used_`` (every parameter as the fit ran it, ``"auto"``
    resolved), ``labels_`` (N,), ``embedding_`` (N, latent_dim codes),
    ``reduced_`` (the space the final clustering ran in: the first (N, 2) map, or the codes with
    ``reducer="none"``; made from the fused codes when an ensemble's first clustering is the final one),
    ``proba_`` (responsibilities, eq. 4-5), ``model_`` (the autoencoder), ``image_shape_``
    ((C, H, W)), ``n_features_in_`` (C*H*W), ``random_state_`` (the int seed the run used),
    ``stage_seconds_`` (wall seconds per stage: ``prepare``, ``autoencoder`` (stage-1 training),
    ``embedding`` (encoding the images), ``reducer`` (t-SNE/UMAP maps), ``mixture`` (GMM or
    DBSCAN), ``consensus``, ``triplet_training`` (stage-2 triplet sampling and training), and
    ``total``), ``history_`` (dict with the stage-1 losses per epoch, per-round stage-2 losses,
    times, ``peak_rss_mib`` (the process's peak resident memory when fit ended), ``mirror_ratio``
    (when ``mirror="auto"`` measured it: :func:`.auto.mirror_ratio`) and, when ``y`` was
    given to ``fit``, ACC/NMI after every clustering; ``y`` is never used for training).
    """

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        latent_dim="auto",
        alpha: float = 0.1,
        margin: float = 0.5,
        stage1_epochs="auto",
        stage2_rounds="auto",
        stage2_tol: float = 0.0,
        round_consensus="auto",
        triplets_per_round="auto",
        reducer: str = "auto",
        clusterer: str = "gmm",
        n_maps="auto",
        n_autoencoders="auto",
        random_state=0,
        device=None,
        batch_size="auto",
        lr: float = 1e-3,
        betas=(0.9, 0.99),
        patience="auto",
        tol: float = 1e-3,
        perplexity: float = 30.0,
        tsne_n_jobs: int = 1,
        gmm_n_init: int = 3,
        dbscan_eps: Optional[float] = None,
        dbscan_min_samples: int = 10,
        channels=ENCODER_CHANNELS,
        normalize_codes: bool = True,
        negative_weight: str = "complement",
        augment_shift="auto",
        augment_rotation="auto",
        mirror="auto",
        n_neighbors="auto",
        covariance_type: str = "auto",
        validation_fraction="auto",
        verbose: int = 0,
        seed=_DEPRECATED,
        progress=_DEPRECATED,
        n_jobs: Optional[int] = None,
    ):
        self.n_clusters = n_clusters
        self.latent_dim = latent_dim
        self.alpha = alpha
        self.margin = margin
        self.stage1_epochs = stage1_epochs
        self.stage2_rounds = stage2_rounds
        self.stage2_tol = stage2_tol
        self.round_consensus = round_consensus
        self.triplets_per_round = triplets_per_round
        self.reducer = reducer
        self.clusterer = clusterer
        self.n_maps = n_maps
        self.n_autoencoders = n_autoencoders
        self.random_state = random_state
        self.device = device
        self.batch_size = batch_size
        self.lr = lr
        self.betas = betas
        self.patience = patience
        self.tol = tol
        self.perplexity = perplexity
        self.tsne_n_jobs = tsne_n_jobs
        self.gmm_n_init = gmm_n_init
        self.dbscan_eps = dbscan_eps
        self.dbscan_min_samples = dbscan_min_samples
        self.channels = channels
        self.normalize_codes = normalize_codes
        self.negative_weight = negative_weight
        self.augment_shift = augment_shift
        self.augment_rotation = augment_rotation
        self.mirror = mirror
        self.n_neighbors = n_neighbors
        self.covariance_type = covariance_type
        self.validation_fraction = validation_fraction
        self.verbose = verbose
        self.seed = seed
        self.progress = progress
        self.n_jobs = n_jobs

    # ------------------------------------------------------------------ validation
    def _alias(self, new: str, old: str, warn: bool):
        """Parameter ``new``, or the deprecated ``old`` when that was given (with a FutureWarning)."""
        value = getattr(self, old)
        if isinstance(value, str) and value == _DEPRECATED:
            return getattr(self, new)
        if warn:
            warnings.warn(f"DERC: {old!r} is deprecated and will be removed in the next release; use {new!r}",
                          FutureWarning, stacklevel=4)
        return value

    def _resolve_seed(self, warn: bool = True) -> int:
        """The run's int seed from ``random_state`` (or the deprecated ``seed``)."""
        rs = self._alias("random_state", "seed", warn)
        if rs is None or isinstance(rs, np.random.RandomState):
            return int(check_random_state(rs).randint(0, 2**31 - 1))
        if isinstance(rs, bool) or not isinstance(rs, (int, np.integer)) or rs < 0:
            raise ValueError(f"random_state must be a non-negative int, None or a numpy RandomState, got {rs!r}")
        return int(rs)

    def _resolve_verbose(self, warn: bool = True) -> bool:
        v = self._alias("verbose", "progress", warn)
        if not isinstance(v, (bool, int, np.integer)) or v < 0:
            raise ValueError(f"verbose must be a non-negative int or a bool, got {v!r}")
        return bool(v)

    @property
    def _run_seed(self) -> int:
        # the fitted run's seed; on an unfitted estimator (helpers used by the benchmarks) the seed
        # the parameters give
        seed = self.__dict__.get("random_state_")
        return self._resolve_seed(warn=False) if seed is None else seed

    def _check_params(self, n_samples: int) -> None:
        k = self.n_clusters
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
            raise ValueError(f"n_clusters must be an integer, got {k!r}")
        if k < 2:
            raise ValueError(f"n_clusters must be >= 2, got {k}")
        if k > n_samples:
            raise ValueError(f"n_clusters ({k}) must not exceed the number of samples ({n_samples})")
        if self.reducer not in REDUCERS:
            raise ValueError(f"reducer must be one of {REDUCERS}, got {self.reducer!r}")
        if isinstance(self.n_maps, bool) or not isinstance(self.n_maps, (int, np.integer)) or self.n_maps < 1:
            raise ValueError(f"n_maps must be a positive integer, got {self.n_maps!r}")
        if self.n_maps > 1 and (self.reducer == "none" or self.clusterer != "gmm"):
            raise ValueError("n_maps > 1 combines mixtures fitted on several maps: it needs reducer 'tsne' or "
                             f"'umap' and clusterer 'gmm' (got reducer={self.reducer!r}, clusterer={self.clusterer!r})")
        if (isinstance(self.n_autoencoders, bool) or not isinstance(self.n_autoencoders, (int, np.integer))
                or self.n_autoencoders < 1):
            raise ValueError(f"n_autoencoders must be a positive integer, got {self.n_autoencoders!r}")
        if self.n_autoencoders > 1 and self.clusterer != "gmm":
            raise ValueError("n_autoencoders > 1 is measured with the Gaussian mixture only: it needs "
                             f"clusterer 'gmm' (got {self.clusterer!r})")
        if self.negative_weight not in ("printed", "complement"):
            raise ValueError(f"negative_weight must be 'printed' or 'complement', got {self.negative_weight!r}")
        if self.clusterer not in ("gmm", "dbscan"):
            raise ValueError(f"clusterer must be 'gmm' or 'dbscan', got {self.clusterer!r}")
        for name in ("stage1_epochs", "stage2_rounds"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or v < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {v!r}")
        if isinstance(self.stage2_tol, bool) or not isinstance(self.stage2_tol, (int, float)) \
                or not 0 <= self.stage2_tol < 1:
            raise ValueError(f"stage2_tol must be a fraction in [0, 1), got {self.stage2_tol!r}")
        if self.round_consensus and self.clusterer != "gmm":
            raise ValueError("round_consensus combines the mixtures of every round: it needs clusterer 'gmm' "
                             f"(got {self.clusterer!r})")
        if self.triplets_per_round is not None and self.triplets_per_round < 1:
            raise ValueError(f"triplets_per_round must be >= 1, got {self.triplets_per_round}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.alpha < 0 or self.margin < 0:
            raise ValueError("alpha and margin must be non-negative")
        if self.latent_dim < 2:
            raise ValueError(f"latent_dim must be >= 2, got {self.latent_dim}")
        if not 0 <= self.augment_shift < 0.5 or not 0 <= self.augment_rotation <= 180:
            raise ValueError(
                "augment_shift must be in [0, 0.5) (fraction of the image side) and augment_rotation in "
                f"[0, 180] degrees, got {self.augment_shift} and {self.augment_rotation}"
            )
        if not isinstance(self.mirror, (bool, np.bool_)):
            raise ValueError(f"mirror must be True, False or 'auto', got {self.mirror!r}")
        if isinstance(self.patience, bool) or not isinstance(self.patience, (int, np.integer)) or self.patience < 1:
            raise ValueError(f"patience must be a positive integer, got {self.patience!r}")
        nn_ = self.n_neighbors
        if isinstance(nn_, bool) or not isinstance(nn_, (int, np.integer)) or nn_ < 2:
            raise ValueError(f"n_neighbors must be an integer >= 2, got {nn_!r}")
        if self.covariance_type not in COVARIANCE_TYPES:
            raise ValueError(f"covariance_type must be one of {COVARIANCE_TYPES} or 'auto', got {self.covariance_type!r}")
        vf = self.validation_fraction
        if isinstance(vf, bool) or not isinstance(vf, (int, float, np.floating)) or not 0 <= vf < 0.5:
            raise ValueError(f"validation_fraction must be a fraction in [0, 0.5), got {vf!r}")
        try:
            chans = tuple(int(c) for c in self.channels)
        except TypeError:
            raise ValueError(f"channels must be a sequence of {len(ENCODER_CHANNELS)} positive ints, "
                             f"got {self.channels!r}") from None
        if len(chans) != len(ENCODER_CHANNELS) or min(chans) < 1:
            raise ValueError(f"channels must be a sequence of {len(ENCODER_CHANNELS)} positive ints, "
                             f"got {self.channels!r}")

    def _device(self) -> torch.device:
        if self.device is None:
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)

    def _add_seconds(self, stage: str, seconds: float) -> None:
        acc = self.__dict__.get("_stage_seconds")
        if acc is not None:
            acc[stage] = acc.get(stage, 0.0) + seconds

    def _progress_step(self, kind: str, what: str = "") -> None:
        prog = self.__dict__.get("_progress")
        if prog is not None:
            prog.step(kind, what)

    def _plan_progress(self, n: int) -> None:
        """The plan of units of :class:`_Progress` for a fit on ``n`` images."""
        a, rounds = self.n_autoencoders, self.stage2_rounds
        clusterings = rounds + 1  # the extra autoencoders are embedded, not clustered
        plan = {"epoch": self.stage1_epochs * a, "embed": (a - 1) + clusterings, "map": clusterings * self.n_maps,
                "triplets": rounds}
        n_trip = int(self.triplets_per_round or n)
        stream = self.__dict__.get("_progress_stream")  # tests capture the lines; default stderr
        self._progress = _Progress(plan, 3.0 * n_trip / max(n, 1), self._verbose, stream)

    @contextmanager
    def _timed(self, stage: str):
        """Add the block's wall seconds to ``stage_seconds_[stage]`` while fitting."""
        t = time.perf_counter()
        try:
            yield
        finally:
            acc = self.__dict__.get("_stage_seconds")
            if acc is not None:
                acc[stage] = acc.get(stage, 0.0) + time.perf_counter() - t

    # ------------------------------------------------------------------ pieces
    def _embed(self, X: torch.Tensor) -> np.ndarray:
        """Codes ``Z = E(X)`` (eq. 4-1), encoded in chunks of ``EMBED_CHUNK`` images into one
        preallocated (N, latent_dim) float64 array (memory: the codes plus one chunk)."""
        with self._timed("embedding"):
            self.model_.eval()
            out = np.empty((X.shape[0], self.model_.latent_dim), dtype=np.float64)
            try:
                with torch.inference_mode():
                    for i in range(0, X.shape[0], EMBED_CHUNK):
                        xb = X[i : i + EMBED_CHUNK].to(self._dev)
                        z = self.model_.encode(xb)
                        if self._mirrored:  # the mean of the image's and its mirror image's codes
                            z = 0.5 * (z + self.model_.encode(xb.flip(-1)))
                        out[i : i + z.shape[0]] = z.cpu().numpy()
            finally:
                self.model_.train()
        self._progress_step("embed")
        return out

    @staticmethod
    def _check_codes(Z: np.ndarray) -> None:
        if not np.isfinite(Z).all() or float(Z.std(0).max()) == 0.0:
            raise RuntimeError(
                "DERC: the encoder produced constant or non-finite codes (collapsed training); "
                "try another seed, a lower learning rate or more varied images"
            )

    def _reduce(self, Z: np.ndarray, seed: Optional[int] = None) -> np.ndarray:
        seed = self._run_seed if seed is None else seed
        self._check_codes(Z)
        with self._timed("reducer"):
            return self._reduce_raw(Z, seed)

    def _reduce_raw(self, Z: np.ndarray, seed: int) -> np.ndarray:
        if self.reducer == "tsne":
            return reduce_tsne(Z, seed=seed, perplexity=self.perplexity, n_jobs=self.tsne_n_jobs)
        if self.reducer == "umap":
            return reduce_umap(Z, seed=seed, n_neighbors=self.n_neighbors)
        return Z

    def _consensus(self, probas) -> np.ndarray:
        with self._timed("consensus"):
            return consensus_responsibilities(probas, self.n_clusters, seed=self._run_seed)

    def _reduce_and_cluster(self, Z: np.ndarray, seed: Optional[int] = None):
        """Map the codes and cluster the map; with ``n_maps`` > 1, combine the mixtures of several
        maps (seeds ``seed``, ``seed + 1``, ...; :mod:`.consensus`). Returns (first map, labels,
        responsibilities)."""
        seed = self._run_seed if seed is None else seed
        if self.n_maps > 1 and self.reducer == "umap" and self._map_threads() > 1:
            R, probas = self._maps_on_threads(Z, seed)
        else:
            R = self._reduce(Z, seed=seed)
            labels, proba = self._cluster(R)
            self._progress_step("map")
            probas = [proba]
            for m in range(1, self.n_maps):
                probas.append(self._cluster(self._reduce(Z, seed=seed + m))[1])
                self._progress_step("map")
            if self.n_maps == 1:
                return R, labels, proba
        proba = self._consensus(probas)
        return R, proba.argmax(1), proba

    def _map_threads(self) -> int:
        """Threads for the maps of one clustering (``n_jobs``; None: every CPU core)."""
        n = self.n_jobs
        if n is None:
            n = os.cpu_count() or 1
        elif n < 0:
            n = max(1, (os.cpu_count() or 1) + 1 + n)
        return int(max(1, min(n, self.n_maps)))

    def _maps_on_threads(self, Z: np.ndarray, seed: int):
        """The ``n_maps`` UMAP maps (seeds ``seed + m``) and their mixtures, computed on threads.

        Every map and mixture is the one the sequential loop makes (each has its own seeded random
        state; :mod:`._umap_threads` lets the layout release the GIL). The block's wall seconds go
        to ``reducer`` and ``mixture`` in the proportion of the threads' own seconds."""
        from concurrent.futures import ThreadPoolExecutor

        from ._umap_threads import install_nogil_layout

        self._check_codes(Z)
        install_nogil_layout()

        def one(m):
            t = time.perf_counter()
            R = self._reduce_raw(Z, seed + m)
            t_map = time.perf_counter() - t
            proba = self._cluster_raw(R)[1]
            return R, proba, t_map, time.perf_counter() - t - t_map

        t0 = time.perf_counter()
        results = []
        with ThreadPoolExecutor(max_workers=self._map_threads()) as pool:
            for res in pool.map(one, range(self.n_maps)):
                results.append(res)
                self._progress_step("map")
        wall = time.perf_counter() - t0
        t_maps, t_mix = sum(r[2] for r in results), sum(r[3] for r in results)
        share = t_maps / max(t_maps + t_mix, 1e-12)
        self._add_seconds("reducer", wall * share)
        self._add_seconds("mixture", wall * (1.0 - share))
        return results[0][0], [r[1] for r in results]

    def _cluster(self, R: np.ndarray):
        """Cluster the reduced codes; returns (labels, responsibilities (N, K'))."""
        with self._timed("mixture"):
            return self._cluster_raw(R)

    def _cluster_raw(self, R: np.ndarray):
        if self.clusterer == "gmm":
            from sklearn.mixture import GaussianMixture

            # standardise so the covariance regularisation is scale-free
            Rs = (R - R.mean(0)) / (R.std(0).mean() + 1e-12)
            fit_on = Rs
            if Rs.shape[0] > GMM_FIT_MAX:
                # large N: EM on a seeded random subset bounds the mixture's time (K components of
                # a low-dimensional map are well estimated from GMM_FIT_MAX points); the
                # responsibilities (eq. 4-5) are then computed for every sample
                pick = np.random.default_rng(self._run_seed).choice(Rs.shape[0], GMM_FIT_MAX, replace=False)
                fit_on = Rs[np.sort(pick)]
            gmm = GaussianMixture(
                n_components=self.n_clusters,
                covariance_type=self.covariance_type,
                n_init=self.gmm_n_init,
                reg_covar=1e-4,
                random_state=self._run_seed,
            ).fit(fit_on)
            proba = gmm.predict_proba(Rs)
            return proba.argmax(1), proba
        from sklearn.cluster import DBSCAN
        from sklearn.neighbors import NearestNeighbors

        eps = self.dbscan_eps
        if eps is None:
            m = min(self.dbscan_min_samples, R.shape[0] - 1)
            dist, _ = NearestNeighbors(n_neighbors=m + 1).fit(R).kneighbors(R)
            eps = 2.0 * float(np.median(dist[:, -1])) + 1e-12
        labels = DBSCAN(eps=eps, min_samples=self.dbscan_min_samples).fit_predict(R)
        ids = np.unique(labels[labels >= 0])
        remap = {c: i for i, c in enumerate(ids)}
        lab = np.array([remap.get(c, -1) for c in labels], dtype=np.int64)
        proba = np.zeros((R.shape[0], max(1, ids.size)))
        proba[lab >= 0, lab[lab >= 0]] = 1.0
        return lab, proba

    def _score(self, rec: dict, labels, y) -> None:
        if y is not None:
            rec["acc"] = clustering_accuracy(y, labels)
            rec["nmi"] = nmi(y, labels)

    @staticmethod
    def _changed(prev_labels, labels) -> float:
        # share of samples whose (matched) cluster changed since the previous clustering: DEC's
        # convergence test, used by stage2_tol
        return 1.0 - clustering_accuracy(prev_labels, labels)

    @staticmethod
    def _rec_loss(x_rec: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        # L_p of eq. 4-8 with the squared distance of eq. 4-11, averaged over pixels as well as
        # images (MSE). The per-pixel mean sets the balance with alpha * L_c in eq. 4-10: with the
        # per-image sum (256x larger on 16x16 USPS) alpha = 0.1 left L_c flat and the clusters
        # unchanged. Adam is invariant to the constant factor except through its eps.
        return ((x_rec - x) ** 2).mean()

    def _new_autoencoder(self, image_shape, seed: Optional[int] = None):
        """Seed torch, build the autoencoder on ``self._dev`` and its Adam, as stage 1 starts.
        Returns ``(optimizer, generator)``; the generator draws the shuffles and the jitter."""
        seed = self._run_seed if seed is None else seed
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        self.model_ = ConvAutoencoder(*image_shape, self.latent_dim, channels=tuple(self.channels)).to(self._dev)
        opt = torch.optim.Adam(self.model_.parameters(), lr=self.lr, betas=tuple(self.betas))
        return opt, gen

    def _jitter(self, xb: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        # the opt-in augmentation (no random draws when it is off, so default runs are unchanged)
        return random_affine(xb, gen, self.augment_shift, self.augment_rotation)

    def _mirror(self, xb: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        # ``mirror``: each image flipped left-right with probability 1/2 (no draws when off)
        return random_mirror(xb, gen) if self._mirrored else xb

    @property
    def _mirrored(self) -> bool:
        # ``mirror`` as the (last) fit resolved it: after fit the parameter is "auto" again
        return bool(self.__dict__.get("_mirror_used", False))

    def _reconstruction_epoch(self, Xt: torch.Tensor, opt, gen: torch.Generator, bs: int) -> float:
        """One stage-1 epoch (eq. 4-8) over ``Xt`` in a shuffled order; returns the mean loss."""
        n = Xt.shape[0]
        perm = torch.randperm(n, generator=gen)
        total = 0.0
        for i in range(0, n, bs):
            xb = self._mirror(Xt[perm[i : i + bs]].to(self._dev), gen)
            _, xr = self.model_(self._jitter(xb, gen))
            loss = self._rec_loss(xr, xb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * xb.shape[0]
        return total / n

    def _stage1(self, Xt: torch.Tensor, seed: int, init_from, desc: str):
        """Stage 1 (eq. 4-8) of one autoencoder seeded with ``seed``, or its weights copied from a
        fitted ``init_from``. Leaves it in ``self.model_``; returns ``(optimizer, generator,
        losses, epochs trained, seconds)``."""
        from tqdm.auto import tqdm

        t0 = time.perf_counter()
        with self._timed("autoencoder"):
            opt, gen = self._new_autoencoder(self.image_shape_, seed)
            bs = min(self.batch_size, Xt.shape[0])
            if init_from is not None:
                if getattr(init_from, "image_shape_", None) != self.image_shape_:
                    raise ValueError("init_from was fitted on images of another shape")
                self.model_.load_state_dict(init_from.model_.state_dict())
                prog = self.__dict__.get("_progress")
                if prog is not None:
                    prog.skip("epoch", self.stage1_epochs)
                return opt, gen, list(init_from.history_["stage1_loss"]), 0, time.perf_counter() - t0
            Xtrain, Xval = self._held_out_split(Xt, seed)
            bs = min(self.batch_size, Xtrain.shape[0])
            losses, best, stale, best_state = [], math.inf, 0, None
            self._val_losses = []
            bar = tqdm(range(self.stage1_epochs), desc=desc, disable=not self._verbose)
            for _ in bar:
                total = self._reconstruction_epoch(Xtrain, opt, gen, bs)
                losses.append(total)
                watched = total if Xval is None else self._held_out_loss(Xval)
                if Xval is not None:
                    self._val_losses.append(watched)
                bar.set_postfix(loss=f"{total:.4f}", **({} if Xval is None else {"held_out": f"{watched:.4f}"}))
                self._progress_step("epoch", f"{desc}, loss {total:.4f}")
                if watched < best * (1.0 - self.tol):
                    best, stale = watched, 0
                    if Xval is not None:
                        best_state = {k: v.detach().clone() for k, v in self.model_.state_dict().items()}
                else:
                    stale += 1
                    if stale >= self.patience:
                        break
            if best_state is not None:  # the weights of the best held-out epoch
                self.model_.load_state_dict(best_state)
            prog = self.__dict__.get("_progress")
            if prog is not None:
                prog.skip("epoch", self.stage1_epochs - len(losses))
        return opt, gen, losses, len(losses), time.perf_counter() - t0

    def _held_out_split(self, Xt: torch.Tensor, seed: int):
        """``(training images, held-out images or None)``: ``validation_fraction`` of the images
        (drawn with ``seed``), at least one, are kept out of stage-1 training and watched by its
        early stop."""
        n = Xt.shape[0]
        n_val = int(round(self.validation_fraction * n))
        if self.validation_fraction <= 0 or n_val < 1 or n - n_val < 2:
            return Xt, None
        perm = np.random.default_rng(seed + 7919).permutation(n)
        return Xt[torch.from_numpy(np.sort(perm[n_val:]))], Xt[torch.from_numpy(np.sort(perm[:n_val]))]

    def _held_out_loss(self, Xval: torch.Tensor) -> float:
        """Mean reconstruction loss (eq. 4-8) of the clean held-out images."""
        self.model_.eval()
        total = 0.0
        with torch.no_grad():
            for i in range(0, Xval.shape[0], 1024):
                xb = Xval[i : i + 1024].to(self._dev)
                total += float(self._rec_loss(self.model_(xb)[1], xb)) * xb.shape[0]
        self.model_.train()
        return total / Xval.shape[0]

    def _first_or_next_clustering(self, state: _FitState, Z: np.ndarray):
        """Reduce and cluster the codes; the first clustering of a run with ``n_autoencoders`` > 1
        maps the ensemble's fused codes (:func:`fuse_codes`) instead of the first autoencoder's."""
        if state.extra_codes:
            self._check_codes(Z)  # a collapsed autoencoder 0 would hide behind the other blocks
            Z = fuse_codes([Z] + state.extra_codes)
            state.extra_codes.clear()
        return self._reduce_and_cluster(Z)

    # ------------------------------------------------------------------ stages of fit
    def _prepare(self, X, y, init_from) -> _FitState:
        """Check the parameters and the images; returns the state the stages share."""
        with self._timed("prepare"):
            Xn = prepare_images(X)
            n = Xn.shape[0]
            if y is not None:
                y = np.asarray(y).reshape(-1)
                if y.shape[0] != n:
                    raise ValueError(f"y has {y.shape[0]} labels but X has {n} images")
            self._check_params(n)
            inits = list(init_from) if isinstance(init_from, (list, tuple)) else [init_from] * (init_from is not None)
            if inits and len(inits) != self.n_autoencoders:
                raise ValueError(f"init_from: {len(inits)} fitted models given for n_autoencoders={self.n_autoencoders}")
            self.random_state_ = self._resolve_seed()
            self._verbose = self._resolve_verbose()
            self._dev = self._device()
            self.image_shape_ = tuple(Xn.shape[1:])
            self.n_features_in_ = int(np.prod(self.image_shape_))
            return _FitState(
                Xt=torch.from_numpy(Xn), y=y, inits=inits or [None] * self.n_autoencoders,
                rng=np.random.default_rng(self.random_state_),
                hist={"stage1_loss": [], "rounds": [], "n_samples": n},
            )

    def _fit_autoencoders(self, state: _FitState) -> None:
        """Stage 1 (eq. 4-8). The extra autoencoders of the ensemble option (seeds s + 1000 m) only
        give codes to the first clustering; they are trained first so that autoencoder 0 starts
        exactly as without them."""
        seconds1 = 0.0
        for m in range(1, self.n_autoencoders):
            seed_m = self.random_state_ + 1000 * m
            *_, sec = self._stage1(state.Xt, seed_m, state.inits[m],
                                   f"DERC stage 1 (autoencoder {m + 1}/{self.n_autoencoders})")
            seconds1 += sec
            codes = self._embed(state.Xt)
            self._check_codes(codes)
            state.extra_codes.append(codes)
        state.opt, state.gen, losses, epochs1, sec = self._stage1(
            state.Xt, self.random_state_, state.inits[0], "DERC stage 1 (autoencoder)")
        state.hist["stage1_loss"] = losses
        state.hist["stage1_held_out_loss"] = self.__dict__.pop("_val_losses", [])
        state.hist["stage1_epochs"] = epochs1
        state.hist["stage1_seconds"] = seconds1 + sec
        if state.inits[0] is not None:
            state.hist["stage1_init_seconds"] = sum(m.history_["stage1_seconds"] for m in state.inits)

    def _triplet_round(self, state: _FitState, proba: np.ndarray, labels: np.ndarray, rec: dict) -> None:
        """Train the autoencoder on ``L_p + alpha L_c`` (eq. 4-10) over triplets drawn from the
        responsibilities (eq. 4-5, 4-7, 4-9)."""
        Xt = state.Xt
        n = Xt.shape[0]
        bs = min(self.batch_size, n)
        n_trip = int(self.triplets_per_round or n)
        steps = max(1, math.ceil(n_trip / bs))
        try:
            self._triplet_steps(state, proba, labels, rec, n_trip, bs, steps)
        finally:
            self._progress_step("triplets", f"round {rec.get('round', '?')}")

    def _triplet_steps(self, state: _FitState, proba, labels, rec: dict, n_trip: int, bs: int, steps: int) -> None:
        Xt = state.Xt
        with self._timed("triplet_training"):
            a, p, ng, pp, pn = sample_triplets(proba, n_trip, state.rng, valid=labels >= 0)
            lr_sum = lc_sum = 0.0
            if not a.size:
                return
            for s in range(steps):
                sl = slice(s * bs, min((s + 1) * bs, a.size))
                if sl.start >= a.size:
                    break
                idx = torch.from_numpy(np.concatenate([a[sl], p[sl], ng[sl]]))
                xb = self._mirror(Xt[idx].to(self._dev), state.gen)
                z, xr = self.model_(self._jitter(xb, state.gen))
                b = sl.stop - sl.start
                lp = self._rec_loss(xr, xb)
                lc = probabilistic_triplet_loss(
                    z[:b], z[b : 2 * b], z[2 * b :],
                    torch.from_numpy(pp[sl]).to(self._dev), torch.from_numpy(pn[sl]).to(self._dev),
                    margin=self.margin, normalize=self.normalize_codes,
                    negative_weight=self.negative_weight,
                )
                loss = lp + self.alpha * lc
                state.opt.zero_grad(set_to_none=True)
                loss.backward()
                state.opt.step()
                lr_sum += float(lp.detach())
                lc_sum += float(lc.detach())
            rec["loss_rec"] = lr_sum / steps
            rec["loss_triplet"] = lc_sum / steps

    def _fit_rounds(self, state: _FitState) -> None:
        """Stage 2: rounds of embed / reduce / cluster / triplet training (eq. 4-1 to 4-10), with
        the optional early stop of ``stage2_tol``."""
        from tqdm.auto import tqdm

        bar = tqdm(range(self.stage2_rounds), desc="DERC stage 2 (triplet rounds)", disable=not self._verbose)
        for rnd in bar:
            t1 = time.perf_counter()
            Z = self._embed(state.Xt)
            R, labels, proba = self._first_or_next_clustering(state, Z)
            state.round_probas.append(proba)
            rec = {"round": rnd, "n_clusters_found": int(np.unique(labels[labels >= 0]).size)}
            self._score(rec, labels, state.y)
            if state.prev_labels is not None:
                rec["changed"] = self._changed(state.prev_labels, labels)
                if rec["changed"] < self.stage2_tol:
                    prog = self.__dict__.get("_progress")
                    if prog is not None:  # the rounds left and the final pass will not run
                        left = self.stage2_rounds - rnd
                        prog.skip("triplets", left)
                        prog.skip("embed", left)
                        prog.skip("map", left * self.n_maps)
                    rec["seconds"] = time.perf_counter() - t1
                    state.hist["rounds"].append(rec)
                    state.converged = (Z, R, labels, proba, rec)
                    break
            state.prev_labels = labels
            self._triplet_round(state, proba, labels, rec)
            rec["seconds"] = time.perf_counter() - t1
            state.hist["rounds"].append(rec)
            if "acc" in rec:
                bar.set_postfix(acc=f"{rec['acc']:.3f}", lc=f"{rec.get('loss_triplet', 0):.3f}")

    def _final_clustering(self, state: _FitState) -> None:
        """The final labels: one more embed / reduce / cluster pass (or the converged round's
        clustering), optionally the consensus of every round (``round_consensus``)."""
        t2 = time.perf_counter()
        y = state.y
        if state.converged is None:
            Z = self._embed(state.Xt)
            R, labels, proba = self._first_or_next_clustering(state, Z)
            final = {"n_clusters_found": int(np.unique(labels[labels >= 0]).size)}
            self._score(final, labels, y)
            if state.prev_labels is not None:
                final["changed"] = self._changed(state.prev_labels, labels)
            state.round_probas.append(proba)
        else:
            Z, R, labels, proba, rec = state.converged
            final = {k: v for k, v in rec.items() if k not in ("round", "seconds")}
            final["converged_at_round"] = rec["round"]
        if self.round_consensus and len(state.round_probas) > 1:
            for key in ("acc", "nmi"):
                if key in final:
                    final[f"{key}_last"] = final[key]
            proba = self._consensus(state.round_probas)
            labels = proba.argmax(1)
            self._score(final, labels, y)
            final["n_clusters_found"] = int(np.unique(labels).size)
        final["seconds"] = time.perf_counter() - t2
        state.hist["final"] = final
        self.embedding_, self.reduced_, self.proba_, self.labels_ = Z, R, proba, labels

    # ------------------------------------------------------------------ API
    def fit(self, X, y=None, init_from=None):
        """Run algorithm 4.1 on images ``X``; ``y`` (optional) is only used to score ``history_``.

        ``X``: ``(N, H, W)``, ``(N, C, H, W)``, ``(N, H, W, C)`` or flat ``(N, D)`` square grey images
        (:func:`prepare_images`). ``init_from``: a fitted :class:`DERC`/:class:`DAE` on images of
        the same shape (or, with ``n_autoencoders`` > 1, a list of one per autoencoder); its
        autoencoder weights replace stage 1 (used by the benchmark so that DAE, DERC-R and DERC
        share one stage-1 training, as in the thesis's ablation); their stage-1 seconds add up in
        ``history_["stage1_init_seconds"]``.
        """
        t0 = time.perf_counter()
        self._stage_seconds = {}
        given = self.get_params(deep=False)
        try:
            with self._timed("prepare"):
                Xn = prepare_images(X)
                k = self.n_clusters
                ratio = measure_mirror_ratio(given, Xn)
                used = resolve(given, Xn.shape[0], Xn.shape[1:], k if isinstance(k, (int, np.integer)) else 1,
                               mirror_symmetric=ratio is not None and ratio <= MIRROR_RATIO)
            # the stages read the resolved values; the given ones (maybe "auto") are put back below,
            # so get_params / clone see the parameters unchanged
            for name in AUTO_PARAMS:
                if name in used:
                    setattr(self, name, used[name])
            state = self._prepare(Xn, y, init_from)
            self._mirror_used = bool(self.mirror)  # checked by _prepare
            self._plan_progress(state.Xt.shape[0])
            self._fit_autoencoders(state)  # stage 1
            self._fit_rounds(state)  # stage 2
            self._final_clustering(state)
            state.hist["seconds"] = time.perf_counter() - t0
            state.hist["peak_rss_mib"] = peak_rss_mib()
            if ratio is not None:
                state.hist["mirror_ratio"] = ratio
            self.history_ = state.hist
            self.params_used_ = {name: used[name] for name in given if name not in ("seed", "progress")}
            self.stage_seconds_ = dict(self._stage_seconds, total=time.perf_counter() - t0)
        finally:
            for name in AUTO_PARAMS:
                if name in given:
                    setattr(self, name, given[name])
            self.__dict__.pop("_stage_seconds", None)
            self.__dict__.pop("_progress", None)
        return self

    def fit_predict(self, X, y=None, init_from=None) -> np.ndarray:
        """``fit(X, y, init_from)`` and return ``labels_``."""
        return self.fit(X, y, init_from=init_from).labels_

    def transform(self, X) -> np.ndarray:
        """The learned codes ``z = E(x)`` (eq. 4-1) of images ``X``: (N, latent_dim) float64."""
        check_is_fitted(self, "model_")
        Xn = prepare_images(X)
        if tuple(Xn.shape[1:]) != self.image_shape_:
            raise ValueError(
                f"X: images of shape {tuple(Xn.shape[1:])} do not match the fitted shape {self.image_shape_}"
            )
        return self._embed(torch.from_numpy(Xn))


def _dae_signature() -> inspect.Signature:
    # DERC's parameters without stage2_rounds (DAE has no stage 2) and with reducer="none"
    params = []
    for p in inspect.signature(DERC.__init__).parameters.values():
        if p.name == "stage2_rounds":
            continue
        params.append(p.replace(default="none") if p.name == "reducer" else p)
    return inspect.Signature(params)


class DAE(DERC):
    """Ablation DAE of Table 4-3: stage 1 only, then the mixture fitted on the codes ``Z`` (with
    ``n_autoencoders`` > 1, the auto rule's on tiny images and from 5,000 images, on the fused codes).

    Same parameters as :class:`DERC` except ``stage2_rounds`` (always 0, a class attribute), and
    ``reducer`` defaults to ``"none"`` (the thesis's DAE clusters the autoencoder codes without
    the triplet stage). A ``stage2_rounds`` keyword is accepted for old callers and ignored with a
    ``UserWarning``.
    """

    stage2_rounds = 0

    def __init__(self, n_clusters: int = 8, **params):
        if params.pop("stage2_rounds", 0):
            warnings.warn("DAE has no stage 2: stage2_rounds is ignored", UserWarning, stacklevel=2)
        bound = _DAE_SIGNATURE.bind(self, n_clusters, **params)
        bound.apply_defaults()
        for name, value in bound.arguments.items():
            if name != "self":
                setattr(self, name, value)


_DAE_SIGNATURE = _dae_signature()
DAE.__init__.__signature__ = _DAE_SIGNATURE
