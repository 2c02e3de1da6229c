"""Named DERC settings (``fe-fast cluster --preset NAME``) and the merge of a preset with overrides.

``"thesis"`` is the thesis's algorithm 4.1 with its stated settings (Table 4-2 autoencoder,
``d_z = 128``, ``alpha = 0.1``, at most 100 stage-1 epochs, t-SNE map, full-covariance Gaussian
mixture) plus the documented choices the text leaves open (batch 64, margin 0.5, 5 rounds, see
docs/clustering.md). It is frozen (a test compares it with a literal copy): every parameter a
data-dependent default (``"auto"``, :mod:`.auto`) could change is given explicitly, so
``--preset thesis`` runs algorithm 4.1 whatever DERC's defaults are. The options of ours it fixes
are off (no jitter, one map, one autoencoder, the training-loss plateau as the
stage-1 stop); ``n_neighbors=20`` is the UMAP neighbourhood the ``reducer="umap"`` recipe of
bench/results/derc.md was measured with (t-SNE ignores it). No preset: DERC's ``"auto"`` defaults.
"""
from __future__ import annotations

from typing import Optional

__all__ = ["PRESETS", "derc_params"]

PRESETS = {
    "thesis": dict(
        latent_dim=128, alpha=0.1, margin=0.5, stage1_epochs=100, stage2_rounds=5, stage2_tol=0.0,
        round_consensus=False, triplets_per_round=None, reducer="tsne", clusterer="gmm", n_maps=1,
        n_autoencoders=1, batch_size=64, lr=1e-3, betas=(0.9, 0.99), patience=3, tol=1e-3,
        perplexity=30.0, gmm_n_init=3, channels=(2, 16, 32, 128, 256, 32), normalize_codes=True,
        negative_weight="complement", augment_shift=0.0, augment_rotation=0.0, n_neighbors=20,
        covariance_type="full", validation_fraction=0.0, mirror=False,
    ),
}


def derc_params(preset: Optional[str] = None, **overrides) -> dict:
    """DERC keyword arguments: the ``preset``'s settings (none: DERC's own defaults), then every
    override that is not None (an option the user gave). Raises ``ValueError`` for an unknown preset
    or an unknown parameter name."""
    from .derc import DERC

    if preset is not None and preset not in PRESETS:
        raise ValueError(f"preset must be one of {sorted(PRESETS)}, got {preset!r}")
    params = dict(PRESETS[preset]) if preset is not None else {}
    valid = set(DERC().get_params())
    for name, value in overrides.items():
        if name not in valid:
            raise ValueError(f"{name!r} is not a DERC parameter")
        if value is not None:
            params[name] = value
    return params

# Large collections (tens of thousands of images; proposed for N >= 20000, chosen on MNIST-test and
# USPS): the options that met the thesis's accuracy (jitter, UMAP, consensus of maps and rounds)
# with the work per image cut, since every epoch and triplet round grows with N: 2 stage-1 epochs
# (70,000 images give 140,000 image passes, more than 10 epochs of MNIST-test), one autoencoder,
# 3 maps per clustering, 2 triplet rounds of at most 20,000 triplets (a fixed step budget).
PRESETS["large"] = dict(
    PRESETS["thesis"], stage1_epochs=2, stage2_rounds=2, round_consensus=True, triplets_per_round=20000,
    reducer="umap", n_maps=3, n_autoencoders=1, augment_shift=0.1, augment_rotation=10.0,
)
