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

Options beyond the thesis (defaults keep the thesis's algorithm): ``reducer="umap"`` maps with UMAP
instead of t-SNE, and ``n_maps > 1`` clusters several maps of the same codes (seeds ``seed``,
``seed + 1``, ...) and combines their mixtures (:mod:`.consensus`), so that one map's merge of two
close classes does not decide the clustering. ``n_autoencoders > 1`` trains several stage-1
autoencoders (seeds ``seed``, ``seed + 1000``, ...) and lets all of them vote in the first
clustering (the consensus of their mixtures); stage 2 then trains the first autoencoder on that
clustering's triplets, so one autoencoder's merge of two classes does not decide it either.
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

import math
import time
from typing import Optional

import numpy as np
import torch

from .augment import random_affine
from .autoencoder import ENCODER_CHANNELS, ConvAutoencoder
from .consensus import consensus_responsibilities
from .metrics import clustering_accuracy, nmi
from .triplets import probabilistic_triplet_loss, sample_triplets

__all__ = ["DERC", "DAE", "prepare_images", "reduce_tsne", "reduce_umap"]

REDUCERS = ("tsne", "umap", "none")


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


class DERC:
    """Deep embedded dimensionality-reduction clustering, scikit-learn style (thesis algorithm 4.1).

    Parameters
    ----------
    n_clusters: K, number of mixture components (2 <= K <= n_samples).
    latent_dim: code size ``d_z`` (thesis default 128).
    alpha: weight of the triplet loss in eq. 4-10 (thesis default 0.1).
    margin: the margin of eq. 4-7 (distances between unit-length codes when ``normalize_codes``).
    stage1_epochs: maximum epochs of stage 1 (thesis: 100, early stop on plateau).
    stage2_rounds: outer iterations ``iter`` of algorithm 4.1 (0 = DAE-like, stage 1 only).
    stage2_tol: label-free early stop of stage 2 (default 0 = always ``stage2_rounds`` rounds, the
        thesis). From the second round on, when the fraction of samples whose cluster changed
        since the previous round's clustering (cluster ids matched by the Hungarian assignment)
        is below ``stage2_tol``, stage 2 stops without training on it and that clustering is
        the final one. ``history_["rounds"][r]["changed"]`` records the fraction either way.
    round_consensus: final labels and ``proba_`` from the consensus (:mod:`.consensus`) of the
        responsibilities of every clustering of the run, round 0 to the final one (default False:
        the last clustering alone, the thesis). Costs one k-means on the stacked responsibilities;
        ``history_["final"]`` keeps the last clustering's own scores as ``acc_last``/``nmi_last``.
        Needs ``clusterer="gmm"``.
    triplets_per_round: triplets ``N`` sampled per round (default: the number of images).
    reducer: ``"tsne"`` (DERC), ``"umap"`` (UMAP map instead of t-SNE; not in the thesis) or
        ``"none"`` (DERC-R: cluster the codes directly).
    n_maps: maps per clustering (default 1, the thesis). With M > 1 every clustering fits the
        mixture on M maps of the codes (seeds ``seed .. seed + M - 1``) and combines them
        (:func:`.consensus.consensus_responsibilities`); needs a reducer and ``clusterer="gmm"``.
    n_autoencoders: stage-1 autoencoders (default 1, the thesis). With A > 1, autoencoders
        ``m = 1 .. A-1`` (seeds ``seed + 1000 m``) are trained as stage 1 trains the first, their
        codes are mapped and clustered (``n_maps`` maps each) and only the first clustering is the
        consensus of all A; stage 2 trains and the final labels use the first autoencoder (seed
        ``seed``), which is trained exactly as with A = 1. Costs A - 1 extra stage-1 trainings;
        needs ``clusterer="gmm"``.
    clusterer: ``"gmm"`` (eq. 4-4) or ``"dbscan"``.
    batch_size, lr, betas: optimiser settings (Adam, thesis lr 1e-3, momentum 0.99). The
        thesis gives no batch size; 64 is the size our USPS/MNIST measurements used.
    patience, tol: stage-1 early stop: stop after ``patience`` epochs without a relative loss
        improvement larger than ``tol``.
    perplexity, tsne_n_jobs: t-SNE settings.
    gmm_n_init: restarts of the mixture's EM.
    dbscan_eps, dbscan_min_samples: DBSCAN settings (eps None: 2x the median distance to the
        ``min_samples``-th neighbour in the reduced space).
    seed: every random choice (weights, shuffles, triplets, t-SNE, mixture) follows it; runs with
        the same seed and ``tsne_n_jobs`` on CPU give the same labels (openTSNE's map depends on
        its thread count).
    device: torch device for the autoencoder (default: CUDA when available, else CPU).
    normalize_codes: triplet distances between unit-length codes (see
        :func:`.triplets.probabilistic_triplet_loss`; a documented deviation that prevents the
        codes from shrinking to a collapse).
    negative_weight: ``"complement"`` (default: ``1 - p_{n,k}`` weights the negative distance) or
        ``"printed"`` (eq. 4-7 as printed, ``p_{n,k}``); see :mod:`.triplets`.
    augment_shift, augment_rotation: opt-in jitter, not in the thesis (default 0 = off): the
        encoder sees each training image shifted by up to ``augment_shift`` of its side and rotated
        by up to ``augment_rotation`` degrees, and the decoder reconstructs the clean image, in
        both stages (:mod:`.augment`). Codes and clustering always use the clean images.
    progress: show tqdm progress bars.

    Attributes after ``fit``: ``labels_`` (N,), ``embedding_`` (N, latent_dim codes),
    ``reduced_`` (the space the final clustering ran in: (N, 2) t-SNE map, or the codes),
    ``proba_`` (responsibilities, eq. 4-5), ``model_`` (the autoencoder), ``history_`` (dict with
    the stage-1 losses per epoch, per-round stage-2 losses, times and, when ``y`` was given to
    ``fit``, ACC/NMI after every clustering; ``y`` is never used for training).
    """

    def __init__(
        self,
        n_clusters: int,
        latent_dim: int = 128,
        alpha: float = 0.1,
        margin: float = 0.5,
        stage1_epochs: int = 100,
        stage2_rounds: int = 5,
        stage2_tol: float = 0.0,
        round_consensus: bool = False,
        triplets_per_round: Optional[int] = None,
        reducer: str = "tsne",
        clusterer: str = "gmm",
        n_maps: int = 1,
        n_autoencoders: int = 1,
        seed: int = 0,
        device=None,
        batch_size: int = 64,
        lr: float = 1e-3,
        betas=(0.9, 0.99),
        patience: int = 3,
        tol: float = 1e-3,
        perplexity: float = 30.0,
        tsne_n_jobs: int = 1,
        gmm_n_init: int = 3,
        dbscan_eps: Optional[float] = None,
        dbscan_min_samples: int = 10,
        channels=ENCODER_CHANNELS,
        normalize_codes: bool = True,
        negative_weight: str = "complement",
        augment_shift: float = 0.0,
        augment_rotation: float = 0.0,
        progress: bool = False,
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
        self.seed = seed
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
        self.channels = tuple(channels)
        self.normalize_codes = normalize_codes
        self.negative_weight = negative_weight
        self.augment_shift = augment_shift
        self.augment_rotation = augment_rotation
        self.progress = progress

    # ------------------------------------------------------------------ validation
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
            raise ValueError("n_autoencoders > 1 combines the mixtures of several autoencoders' codes: it needs "
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

    def _device(self) -> torch.device:
        if self.device is None:
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)

    # ------------------------------------------------------------------ pieces
    def _embed(self, X: torch.Tensor) -> np.ndarray:
        self.model_.eval()
        out = []
        with torch.no_grad():
            for i in range(0, X.shape[0], 1024):
                out.append(self.model_.encode(X[i : i + 1024].to(self._dev)).cpu())
        self.model_.train()
        return torch.cat(out).numpy().astype(np.float64)

    def _reduce(self, Z: np.ndarray, seed: Optional[int] = None) -> np.ndarray:
        seed = self.seed if seed is None else seed
        if not np.isfinite(Z).all() or float(Z.std(0).max()) == 0.0:
            raise RuntimeError(
                "DERC: the encoder produced constant or non-finite codes (collapsed training); "
                "try another seed, a lower learning rate or more varied images"
            )
        if self.reducer == "tsne":
            return reduce_tsne(Z, seed=seed, perplexity=self.perplexity, n_jobs=self.tsne_n_jobs)
        if self.reducer == "umap":
            return reduce_umap(Z, seed=seed)
        return Z

    def _reduce_and_cluster(self, Z: np.ndarray, seed: Optional[int] = None):
        """Map the codes and cluster the map; with ``n_maps`` > 1, combine the mixtures of several
        maps (seeds ``seed``, ``seed + 1``, ...; :mod:`.consensus`). Returns (first map, labels,
        responsibilities)."""
        seed = self.seed if seed is None else seed
        R = self._reduce(Z, seed=seed)
        labels, proba = self._cluster(R)
        if self.n_maps > 1:
            probas = [proba] + [self._cluster(self._reduce(Z, seed=seed + m))[1] for m in range(1, self.n_maps)]
            proba = consensus_responsibilities(probas, self.n_clusters, seed=self.seed)
            labels = proba.argmax(1)
        return R, labels, proba

    def _cluster(self, R: np.ndarray):
        """Cluster the reduced codes; returns (labels, responsibilities (N, K'))."""
        if self.clusterer == "gmm":
            from sklearn.mixture import GaussianMixture

            # standardise so the covariance regularisation is scale-free
            Rs = (R - R.mean(0)) / (R.std(0).mean() + 1e-12)
            gmm = GaussianMixture(
                n_components=self.n_clusters,
                covariance_type="full",
                n_init=self.gmm_n_init,
                reg_covar=1e-4,
                random_state=self.seed,
            ).fit(Rs)
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
        seed = self.seed if seed is None else seed
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        self.model_ = ConvAutoencoder(*image_shape, self.latent_dim, channels=self.channels).to(self._dev)
        opt = torch.optim.Adam(self.model_.parameters(), lr=self.lr, betas=tuple(self.betas))
        return opt, gen

    def _jitter(self, xb: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        # the opt-in augmentation (no random draws when it is off, so default runs are unchanged)
        return random_affine(xb, gen, self.augment_shift, self.augment_rotation)

    def _reconstruction_epoch(self, Xt: torch.Tensor, opt, gen: torch.Generator, bs: int) -> float:
        """One stage-1 epoch (eq. 4-8) over ``Xt`` in a shuffled order; returns the mean loss."""
        n = Xt.shape[0]
        perm = torch.randperm(n, generator=gen)
        total = 0.0
        for i in range(0, n, bs):
            xb = Xt[perm[i : i + bs]].to(self._dev)
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

        opt, gen = self._new_autoencoder(self.image_shape_, seed)
        bs = min(self.batch_size, Xt.shape[0])
        t0 = time.perf_counter()
        if init_from is not None:
            if getattr(init_from, "image_shape_", None) != self.image_shape_:
                raise ValueError("init_from was fitted on images of another shape")
            self.model_.load_state_dict(init_from.model_.state_dict())
            return opt, gen, list(init_from.history_["stage1_loss"]), 0, time.perf_counter() - t0
        losses, best, stale = [], math.inf, 0
        bar = tqdm(range(self.stage1_epochs), desc=desc, disable=not self.progress)
        for _ in bar:
            total = self._reconstruction_epoch(Xt, opt, gen, bs)
            losses.append(total)
            bar.set_postfix(loss=f"{total:.4f}")
            if total < best * (1.0 - self.tol):
                best, stale = total, 0
            else:
                stale += 1
                if stale >= self.patience:
                    break
        return opt, gen, losses, len(losses), time.perf_counter() - t0

    # ------------------------------------------------------------------ API
    def fit(self, X, y=None, init_from=None):
        """Run algorithm 4.1 on images ``X``; ``y`` (optional) is only used to score history_.

        ``init_from``: a fitted :class:`DERC`/:class:`DAE` on images of the same shape (or, with
        ``n_autoencoders`` > 1, a list of one per autoencoder); its autoencoder weights replace
        stage 1 (used by the benchmark so that DAE, DERC-R and DERC share one stage-1 training, as
        in the thesis's ablation); their stage-1 seconds add up in ``history_["stage1_init_seconds"]``.
        """
        from tqdm.auto import tqdm

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
        inits = inits or [None] * self.n_autoencoders
        self._dev = self._device()
        self.image_shape_ = tuple(Xn.shape[1:])
        rng = np.random.default_rng(self.seed)
        Xt = torch.from_numpy(Xn)
        hist = {"stage1_loss": [], "rounds": [], "n_samples": n}
        bs = min(self.batch_size, n)

        # ---------------- stage 1: reconstruction (eq. 4-8)
        # The extra autoencoders of the ensemble option (seeds seed + 1000 m) only vote in the first
        # clustering; they are trained first so that autoencoder 0 starts exactly as without them.
        t0 = time.perf_counter()
        extra_probas, seconds1 = [], 0.0
        for m in range(1, self.n_autoencoders):
            seed_m = self.seed + 1000 * m
            *_, sec = self._stage1(Xt, seed_m, inits[m], f"DERC stage 1 (autoencoder {m + 1}/{self.n_autoencoders})")
            seconds1 += sec
            extra_probas.append(self._reduce_and_cluster(self._embed(Xt), seed=seed_m)[2])
        opt, gen, losses, epochs1, sec = self._stage1(Xt, self.seed, inits[0], "DERC stage 1 (autoencoder)")
        hist["stage1_loss"] = losses
        hist["stage1_epochs"] = epochs1
        hist["stage1_seconds"] = seconds1 + sec
        if inits[0] is not None:
            hist["stage1_init_seconds"] = sum(m.history_["stage1_seconds"] for m in inits)

        def reduce_and_cluster(Z):
            R, labels, proba = self._reduce_and_cluster(Z)
            if extra_probas:  # the first clustering: the ensemble's vote (option n_autoencoders)
                proba = consensus_responsibilities([proba] + extra_probas, self.n_clusters, seed=self.seed)
                labels = proba.argmax(1)
                extra_probas.clear()
            return R, labels, proba

        # ---------------- stage 2: rounds of reduce / cluster / triplet training (eq. 4-9, 4-10)
        n_trip = int(self.triplets_per_round or n)
        steps = max(1, math.ceil(n_trip / bs))
        bar = tqdm(range(self.stage2_rounds), desc="DERC stage 2 (triplet rounds)", disable=not self.progress)
        converged, prev_labels, round_probas = None, None, []
        for rnd in bar:
            t1 = time.perf_counter()
            Z = self._embed(Xt)
            R, labels, proba = reduce_and_cluster(Z)
            round_probas.append(proba)
            rec = {"round": rnd, "n_clusters_found": int(np.unique(labels[labels >= 0]).size)}
            self._score(rec, labels, y)
            if prev_labels is not None:
                rec["changed"] = self._changed(prev_labels, labels)
                if rec["changed"] < self.stage2_tol:
                    rec["seconds"] = time.perf_counter() - t1
                    hist["rounds"].append(rec)
                    converged = (Z, R, labels, proba, rec)
                    break
            prev_labels = labels
            a, p, ng, pp, pn = sample_triplets(proba, n_trip, rng, valid=labels >= 0)
            lr_sum = lc_sum = 0.0
            if a.size:
                for s in range(steps):
                    sl = slice(s * bs, min((s + 1) * bs, a.size))
                    if sl.start >= a.size:
                        break
                    idx = torch.from_numpy(np.concatenate([a[sl], p[sl], ng[sl]]))
                    xb = Xt[idx].to(self._dev)
                    z, xr = self.model_(self._jitter(xb, gen))
                    b = sl.stop - sl.start
                    lp = self._rec_loss(xr, xb)
                    lc = probabilistic_triplet_loss(
                        z[:b], z[b : 2 * b], z[2 * b :],
                        torch.from_numpy(pp[sl]).to(self._dev), torch.from_numpy(pn[sl]).to(self._dev),
                        margin=self.margin, normalize=self.normalize_codes,
                        negative_weight=self.negative_weight,
                    )
                    loss = lp + self.alpha * lc
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    lr_sum += float(lp.detach())
                    lc_sum += float(lc.detach())
                rec["loss_rec"] = lr_sum / steps
                rec["loss_triplet"] = lc_sum / steps
            rec["seconds"] = time.perf_counter() - t1
            hist["rounds"].append(rec)
            if "acc" in rec:
                bar.set_postfix(acc=f"{rec['acc']:.3f}", lc=f"{rec.get('loss_triplet', 0):.3f}")

        # ---------------- final clustering (the converged round's, when stage2_tol stopped stage 2)
        t2 = time.perf_counter()
        if converged is None:
            Z = self._embed(Xt)
            R, labels, proba = reduce_and_cluster(Z)
            final = {"n_clusters_found": int(np.unique(labels[labels >= 0]).size)}
            self._score(final, labels, y)
            if prev_labels is not None:
                final["changed"] = self._changed(prev_labels, labels)
            round_probas.append(proba)
        else:
            Z, R, labels, proba, rec = converged
            final = {k: v for k, v in rec.items() if k not in ("round", "seconds")}
            final["converged_at_round"] = rec["round"]
        if self.round_consensus and len(round_probas) > 1:
            for key in ("acc", "nmi"):
                if key in final:
                    final[f"{key}_last"] = final[key]
            proba = consensus_responsibilities(round_probas, self.n_clusters, seed=self.seed)
            labels = proba.argmax(1)
            self._score(final, labels, y)
            final["n_clusters_found"] = int(np.unique(labels).size)
        final["seconds"] = time.perf_counter() - t2
        hist["final"] = final
        hist["seconds"] = time.perf_counter() - t0
        self.embedding_, self.reduced_, self.proba_, self.labels_ = Z, R, proba, labels
        self.history_ = hist
        return self

    def fit_predict(self, X, y=None) -> np.ndarray:
        """``fit(X)`` and return ``labels_``."""
        return self.fit(X, y).labels_

    def transform(self, X) -> np.ndarray:
        """The learned codes ``z = E(x)`` (eq. 4-1) of images ``X``: (N, latent_dim) float64."""
        if not hasattr(self, "model_"):
            raise ValueError("this DERC instance is not fitted yet; call fit(X) first")
        Xn = prepare_images(X)
        if tuple(Xn.shape[1:]) != self.image_shape_:
            raise ValueError(
                f"X: images of shape {tuple(Xn.shape[1:])} do not match the fitted shape {self.image_shape_}"
            )
        return self._embed(torch.from_numpy(Xn))


class DAE(DERC):
    """Ablation DAE of Table 4-3: stage 1 only, then the mixture fitted on the codes ``Z``.

    Same parameters as :class:`DERC`; ``stage2_rounds`` is forced to 0 and ``reducer`` defaults to
    ``"none"`` (the thesis's DAE clusters the autoencoder codes without the triplet stage).
    """

    def __init__(self, n_clusters: int, reducer: str = "none", **kwargs):
        kwargs["stage2_rounds"] = 0
        super().__init__(n_clusters, reducer=reducer, **kwargs)
