"""Image-generation metrics: FID (thesis eq. 5-8)

    FID(I_g, I_r) = ||u_r - u_g||^2 + Tr(S_g + S_r - 2 (S_g S_r)^{1/2})

with (u, S) the mean and covariance of image features: pytorch-fid Inception-v3 features when the
user supplies its weights file, or the toy-face features (a fixed random CNN, labelled ``fid_toy``)
otherwise. The matrix square root is ``scipy.linalg.sqrtm``."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from fe_fast.stylegan.features import InceptionFeatures, ToyFaceFeatures

__all__ = ["frechet_distance", "feature_statistics", "fid_feature_network", "compute_features", "fid",
           "classifier_logits", "classifier_labels", "classifier_frequencies", "generated_batches",
           "attribute_frequencies"]


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    """Thesis eq. 5-8 for Gaussians (mu1, sigma1), (mu2, sigma2) (numpy arrays, float64).
    If the product of covariances is singular, ``eps`` is added to the diagonals."""
    from scipy import linalg

    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.size, mu1.size):
        raise ValueError(f"shapes do not match: mu {mu1.shape}/{mu2.shape}, sigma {sigma1.shape}/{sigma2.shape}")
    diff = mu1 - mu2
    covmean = linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def feature_statistics(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (rows = samples) of a [N, D] feature matrix."""
    f = features.detach().double().cpu().numpy() if isinstance(features, torch.Tensor) else np.asarray(features, np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"features must be [N >= 2, D], got shape {f.shape}")
    return f.mean(0), np.cov(f, rowvar=False)


def fid_feature_network(inception_weights=None):
    """Inception-v3 (pytorch-fid weights file, FileNotFoundError naming it when the given path is
    missing) when ``inception_weights`` is given, else the labelled toy-face features."""
    if inception_weights is not None:
        return InceptionFeatures(inception_weights)
    return ToyFaceFeatures()


@torch.no_grad()
def compute_features(net, images, batch_size: int = 64, device=None) -> torch.Tensor:
    """Features of an image tensor [N, 3, H, W] in [-1, 1] (or an iterable of such batches)."""
    net = net.to(device) if device is not None else net
    dev = next(net.parameters()).device
    out = []
    batches = images.split(batch_size) if isinstance(images, torch.Tensor) else images
    for b in batches:
        out.append(net(b.to(dev, torch.float32)).float().cpu())
    return torch.cat(out)


@torch.no_grad()
def fid(net, real_images, fake_images, batch_size: int = 64) -> float:
    """FID (eq. 5-8) between two image sets under feature network ``net``."""
    mu_r, s_r = feature_statistics(compute_features(net, real_images, batch_size))
    mu_g, s_g = feature_statistics(compute_features(net, fake_images, batch_size))
    return frechet_distance(mu_r, s_r, mu_g, s_g)


def _classifier_size(classifier, size):
    if size is not None:
        return int(size)
    return int(getattr(classifier, "metrics", {}).get("size", 64))


@torch.no_grad()
def classifier_logits(classifier, images: torch.Tensor, size: int | None = None) -> torch.Tensor:
    """Per-image logits [N, A] of a multi-label attribute classifier for one batch of ``images``
    ([N, 3, H, W] in [-1, 1]), resized (bicubic) to ``size`` (default: the classifier's stored
    ``metrics["size"]``, else 64) and clamped to [-1, 1], in eval mode."""
    size = _classifier_size(classifier, size)
    was = classifier.training
    classifier.eval()
    try:
        b = images.to(next(classifier.parameters()).device, torch.float32)
        if b.shape[-1] != size or b.shape[-2] != size:
            b = F.interpolate(b, size=(size, size), mode="bicubic", align_corners=False)
        return classifier(b.clamp(-1, 1))
    finally:
        classifier.train(was)


def classifier_labels(classifier, images: torch.Tensor, size: int | None = None) -> torch.Tensor:
    """Per-image labels [N, A] (bool, logit > 0) of :func:`classifier_logits`."""
    return classifier_logits(classifier, images, size) > 0


@torch.no_grad()
def classifier_frequencies(classifier, images, size: int | None = None, batch_size: int = 256) -> dict:
    """Fraction of ``images`` ([N, 3, H, W] in [-1, 1], or an iterable of such batches) that a
    multi-label attribute classifier (e.g. the toy attribute teacher of ``fe_fast.teachers.toy``)
    labels positive (sigmoid > 0.5), per attribute. Images are resized (bicubic) to ``size``, the
    size the classifier was trained at (default: its stored ``metrics["size"]``, else 64), and
    clamped to [-1, 1]. Returns ``{attribute: frequency}`` in ``classifier.attributes`` order."""
    if not hasattr(classifier, "attributes"):
        raise ValueError("classifier must have an `attributes` list (one logit per attribute)")
    size = _classifier_size(classifier, size)
    pos, n = None, 0
    batches = images.split(batch_size) if isinstance(images, torch.Tensor) else images
    for b in batches:
        p = classifier_labels(classifier, b, size=size).sum(0).double().cpu()
        pos = p if pos is None else pos + p
        n += b.shape[0]
    if not n:
        raise ValueError("images is empty")
    return {a: float(v) / n for a, v in zip(classifier.attributes, pos)}


def generated_batches(G, n: int, seed: int = 0, truncation_psi: float = 1.0, noise_mode: str = "random",
                      batch_size: int = 256):
    """Yield ``n`` images of generator ``G`` in batches of ``batch_size``, without gradients and in
    eval mode: z drawn from a generator seeded by ``seed``, the noise inputs (``noise_mode="random"``)
    from the global random stream seeded by ``seed`` inside a fork, so the caller's random state and
    ``G``'s mode are as they were once the iteration ends."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    was = G.training
    G.eval()
    dev = next(G.parameters()).device
    g = torch.Generator().manual_seed(seed)
    try:
        with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
            torch.manual_seed(seed)  # the noise inputs
            for start in range(0, n, batch_size):
                z = torch.randn(min(batch_size, n - start), G.z_dim, generator=g).to(dev)
                with torch.no_grad():
                    images = G(z, truncation_psi=truncation_psi, noise_mode=noise_mode)
                yield images
    finally:
        G.train(was)


def attribute_frequencies(G, classifier, n: int = 1000, seed: int = 0, truncation_psi: float = 1.0,
                          noise_mode: str = "random", size: int | None = None, batch_size: int = 256) -> dict:
    """Attribute frequencies of the ``n`` images :func:`generated_batches` draws from ``G`` with
    ``seed`` under the attribute classifier, as :func:`classifier_frequencies` (compare with the same
    function on real images). Returns ``{attribute: frequency}``."""
    return classifier_frequencies(classifier, generated_batches(G, n, seed, truncation_psi, noise_mode, batch_size),
                                  size=size, batch_size=batch_size)
