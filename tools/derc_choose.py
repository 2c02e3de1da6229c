"""The choosing runs of DERC's default (not run by ``make bench``; the log is in
bench/results/derc.md, "Default chosen to generalise"). Only MNIST-test, USPS and the toy-face
choosing split ``toyfaces-choose`` (seeds 8000+, which no validation set uses): the validation sets
(digits, the toy-face identities of bench/bm_derc.py) must never be passed here.

Per data set, subsample size (images per class) and seed (which also draws the subsample, as
``bench/bm_derc.py --default`` does): k-means and spectral clustering (10-NN graph) on the pixels,
then one DERC with ``stage2_rounds=0`` and the ``--stage1`` overrides (its stage-1 autoencoder is
shared, ``init_from``) and one DERC per ``--configs`` entry (name -> overrides of ``--stage1``).
One JSON line per subsample and seed on stdout::

    OMP_NUM_THREADS=1 nice -n 5 python tools/derc_choose.py usps --per 10 40 --seeds 0 1 2 \\
        --configs '{"full": {}, "diag": {"covariance_type": "diag"}, "nn10": {"n_neighbors": 10}}'

``--side 8`` averages the images down to 8x8 first (adaptive average pooling: 2x2 blocks of USPS,
3-4 pixel windows of MNIST-test, 8x8 blocks of the 64x64 faces; the tiny-image rules' choosing
data; ``toyfaces-choose --seeds 9 11 22`` and ``17 18 23``: the hard face choosing sets, the six
lowest spectral NMI on the pixels among seeds 8003-8024). A config that changes a stage-1 setting (``STAGE1_KEYS``) trains its own stage 1 instead of
sharing the base's. ``--old-tiny-layout`` gives the encoder layout before the tiny-image rules (the
rest of the old default at 8x8: ``--stage1 '{"augment_shift": 0.1, "augment_rotation": 10.0,
"patience": 6}'`` and a config with ``"stage2_rounds": 2``, at 1,500 images).
Prototype configs (not DERC options): ``"_pixel_vote"``, ``"_stretch"``, ``"_joint": w`` and
``"_vote"`` (the ensemble's autoencoders vote instead of fusing their codes, the mechanism before
fused codes; bench/results/derc.md, "Tiny images: one autoencoder is a lottery"). On tiny images the default base is an ensemble, so every
config trains its own stage 1.

``--explore`` runs the first step of the log instead (stage 1 of ``--epochs`` epochs without
early stop, then UMAP+GMM on the codes, on the pixels, on the concatenated maps and consensus
variants, computed here).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CHOOSING_SETS = ("usps", "mnist-test", "toyfaces-choose")
#: ``toyfaces-choose``: toy-face identities kept for choosing (10 identities, ``--per`` images each,
#: seeds TOYFACE_CHOOSE_SEED0 + seed), disjoint from every validation seed of bench/bm_derc.py
#: (5000+, 7000+, 7100+, 7200+, 7300+, 7400+, 7500+, 7600+, 7700+)
TOYFACE_CHOOSE_SEED0 = 8000
#: DERC parameters that change stage 1: a config that sets one cannot share the base's stage 1
STAGE1_KEYS = {"latent_dim", "stage1_epochs", "batch_size", "lr", "betas", "patience", "tol",
               "validation_fraction", "augment_shift", "augment_rotation", "channels", "n_autoencoders",
               "mirror"}


def subsample(X, y, per, seed):
    rng = np.random.default_rng(seed)
    idx = np.concatenate([rng.choice(np.flatnonzero(y == c), per, replace=False) for c in np.unique(y)])
    return X[idx], y[idx]


def _gmm(R, k, seed, cov="full"):
    from sklearn.mixture import GaussianMixture

    Rs = (R - R.mean(0)) / (R.std(0).mean() + 1e-12)
    return GaussianMixture(k, covariance_type=cov, n_init=3, reg_covar=1e-4, random_state=seed).fit(Rs).predict_proba(Rs)


def _patch_old_tiny_layout():
    """The encoder layout before the tiny-image rules (Table 4-2's strides at 8x8: a 1x1 map of 32
    values), part of the "before" arm of bench/results/derc.md, "Tiny images"."""
    from fe_fast.clustering import autoencoder as ae

    layout = ae.encoder_layout
    ae.encoder_layout = lambda *args, min_values=0, **kw: layout(*args, **kw)


#: the prototype switches of the running config (set from its "_pixel_vote", "_joint", "_vote" keys)
_PROTO_OFF = {"pixel_vote": False, "joint": 0.0, "vote": False}
_PROTO = dict(_PROTO_OFF)


def _patch_votes():
    """Prototypes (a config's ``"_vote": true`` or ``"_pixel_vote": true``): ``"_vote"`` is the
    ensemble's mechanism before fused codes: each extra autoencoder's codes are mapped and clustered
    (seed ``s + 1000 m``) and the first clustering is the consensus of every autoencoder's mixture;
    ``"_pixel_vote"``: the maps of the pixels vote in the first clustering as one more member."""
    from fe_fast.clustering.derc import DERC

    fit_autoencoders = DERC._fit_autoencoders
    first = DERC._first_or_next_clustering

    def fit_aes(self, state):
        fit_autoencoders(self, state)
        self._votes = []
        if _PROTO["vote"]:
            for m, codes in enumerate(state.extra_codes, start=1):
                self._votes.append(self._reduce_and_cluster(codes, seed=self.random_state_ + 1000 * m)[2])
            state.extra_codes.clear()
        if _PROTO["pixel_vote"]:
            pixels = state.Xt.reshape(state.Xt.shape[0], -1).numpy()
            self._votes.append(self._reduce_and_cluster(pixels, seed=self.random_state_ + 999)[2])

    def voted(self, state, Z):
        R, labels, proba = first(self, state, Z)
        votes = self.__dict__.pop("_votes", None)
        if votes:
            proba = self._consensus([proba] + votes)
            labels = proba.argmax(1)
        return R, labels, proba

    DERC._fit_autoencoders = fit_aes
    DERC._first_or_next_clustering = voted


def _patch_joint_codes():
    """Prototype (a config's ``"_joint": w``): the maps are made of the codes next to the pixels,
    each block divided by its mean feature standard deviation, the pixels weighted by ``w`` (logged
    with one autoencoder; with an ensemble every autoencoder's codes get the pixels before fusing)."""
    from fe_fast.clustering.derc import DERC

    embed = DERC._embed

    def patched(self, X):
        Z = embed(self, X)
        if not _PROTO["joint"]:
            return Z
        P = X.reshape(X.shape[0], -1).numpy().astype(np.float64)
        return np.hstack([Z / (Z.std(0).mean() + 1e-12), _PROTO["joint"] * P / (P.std(0).mean() + 1e-12)])

    DERC._embed = patched


def _contrast_stretch(X):
    """Prototype (a config's ``"_stretch": true``): each image scaled to the range [0, 1] of its
    own pixels (removes global brightness and contrast before DERC; the baselines keep the pixels)."""
    from fe_fast.clustering.derc import prepare_images

    X = prepare_images(X)
    flat = X.reshape(X.shape[0], -1)
    lo, hi = flat.min(1)[:, None, None, None], flat.max(1)[:, None, None, None]
    return ((X - lo) / np.maximum(hi - lo, 1e-6)).astype(np.float32)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset", choices=CHOOSING_SETS)
    ap.add_argument("--per", nargs="+", type=int, default=[10, 40], help="images per class")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--stage1", default="{}", help="JSON overrides of the shared stage-1 run")
    ap.add_argument("--configs", default='{"default": {}}', help="JSON: name -> DERC overrides")
    ap.add_argument("--explore", action="store_true", help="step 1 of the log (see the docstring)")
    ap.add_argument("--epochs", type=int, default=30, help="--explore: stage-1 epochs")
    ap.add_argument("--batch-size", type=int, default=64, help="--explore: stage-1 batch")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--side", type=int, default=None,
                    help="block-average the images down to SIDE x SIDE first (choosing data for tiny images)")
    ap.add_argument("--old-tiny-layout", action="store_true",
                    help="the encoder before the tiny-image rule (a 1x1 map of 32 values at 8x8; autoencoder.py)")
    args = ap.parse_args(argv)

    import torch
    from sklearn.cluster import KMeans, SpectralClustering

    from fe_fast.clustering import DERC, clustering_accuracy, nmi
    from fe_fast.clustering.consensus import consensus_responsibilities
    from fe_fast.clustering.derc import prepare_images, reduce_umap
    from fe_fast.datasets.images import load_clustering_data

    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")

    def score(y, lab):
        return round(clustering_accuracy(y, lab), 4), round(nmi(y, lab), 4)

    Xall, yall = (None, None) if args.dataset == "toyfaces-choose" else load_clustering_data(args.dataset, data_dir=args.data_dir)
    if args.side and Xall is not None:
        Xall = torch.nn.functional.adaptive_avg_pool2d(torch.from_numpy(prepare_images(Xall)), args.side).numpy()
    _patch_votes()
    _patch_joint_codes()
    if args.old_tiny_layout:
        _patch_old_tiny_layout()
    for per in args.per:
        for seed in args.seeds:
            if Xall is None:
                from fe_fast.datasets.face_identities import identity_set

                X, y = identity_set(10, per, size=64, seed=TOYFACE_CHOOSE_SEED0 + seed)
                if args.side:
                    X = torch.nn.functional.adaptive_avg_pool2d(torch.from_numpy(prepare_images(X)), args.side).numpy()
            else:
                X, y = subsample(Xall, yall, per, seed)
            k, n = int(np.unique(y).size), len(y)
            Xf = prepare_images(X).reshape(n, -1)
            res = {"ds": args.dataset, "per": per, "seed": seed}
            res["km"] = score(y, KMeans(k, n_init=10, random_state=seed).fit_predict(Xf))
            res["sc"] = score(y, SpectralClustering(k, affinity="nearest_neighbors", n_neighbors=10,
                                                    random_state=seed).fit_predict(Xf))
            if args.explore:
                maps_px = [reduce_umap(Xf, seed=seed + m, n_neighbors=10) for m in range(3)]
                m = DERC(k, stage1_epochs=args.epochs, stage2_rounds=0, reducer="none", random_state=seed,
                         patience=10**6, validation_fraction=0.0, batch_size=args.batch_size, latent_dim=128,
                         augment_shift="auto", augment_rotation="auto", n_maps=1, covariance_type="full").fit(X)
                Z = m.embedding_
                maps_z = [reduce_umap(Z, seed=seed + j, n_neighbors=10) for j in range(3)]
                res["umap_px"] = score(y, _gmm(maps_px[0], k, seed).argmax(1))
                res["ae_umap"] = score(y, _gmm(maps_z[0], k, seed).argmax(1))
                res["cat"] = score(y, _gmm(np.hstack([maps_px[0], maps_z[0]]), k, seed).argmax(1))
                res["cat_diag"] = score(y, _gmm(np.hstack([maps_px[0], maps_z[0]]), k, seed, "diag").argmax(1))
                P = [_gmm(M, k, seed) for M in maps_px + maps_z]
                res["cons6"] = score(y, consensus_responsibilities(P, k, seed).argmax(1))
                res["cons_z3"] = score(y, consensus_responsibilities(P[3:], k, seed).argmax(1))
                Pc = [_gmm(np.hstack([a, b]), k, seed) for a, b in zip(maps_px, maps_z)]
                res["cons_cat3"] = score(y, consensus_responsibilities(Pc, k, seed).argmax(1))
                res["sc_z"] = score(y, SpectralClustering(k, affinity="nearest_neighbors", n_neighbors=10,
                                                          random_state=seed).fit_predict(Z))
            else:
                stage1 = json.loads(args.stage1)
                _PROTO.update(_PROTO_OFF)
                base = DERC(k, random_state=seed, **dict(stage1, stage2_rounds=0)).fit(X, y)
                res["s1_sec"] = round(base.stage_seconds_["autoencoder"], 1)
                res["s1_ep"] = base.history_["stage1_epochs"]
                res["r0"] = score(y, base.labels_)
                for name, over in json.loads(args.configs).items():
                    over = dict(over)
                    _PROTO.update(pixel_vote=bool(over.pop("_pixel_vote", False)),
                                  joint=float(over.pop("_joint", 0.0)), vote=bool(over.pop("_vote", False)))
                    stretch = bool(over.pop("_stretch", False))
                    t = time.perf_counter()
                    # init_from shares one stage-1 autoencoder: not with other stage-1 settings,
                    # other input images or an ensemble (the default's on tiny images: every config
                    # then trains its own)
                    share = (not (STAGE1_KEYS & set(over)) and not stretch
                             and base.params_used_["n_autoencoders"] == 1)
                    m = DERC(k, random_state=seed, **dict(stage1, **over)).fit(
                        _contrast_stretch(X) if stretch else X, y, init_from=base if share else None)
                    res[name] = score(y, m.labels_)
                    res[name + "_sec"] = round(time.perf_counter() - t, 1)
            res["load"] = round(os.getloadavg()[0], 2)
            print(json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
