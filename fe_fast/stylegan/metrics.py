"""Image-generation metrics: FID (thesis eq. 5-8)

    FID(I_g, I_r) = ||u_r - u_g||^2 + Tr(S_g + S_r - 2 (S_g S_r)^{1/2})

with (u, S) the mean and covariance of image features: pytorch-fid Inception-v3 features when the
user supplies its weights file, or the toy-face features (a fixed random CNN, labelled ``fid_toy``)
otherwise. The matrix square root is ``scipy.linalg.sqrtm``."""
from __future__ import annotations

import numpy as np
import torch

from fe_fast.stylegan.features import InceptionFeatures, ToyFaceFeatures

__all__ = ["frechet_distance", "feature_statistics", "fid_feature_network", "compute_features", "fid"]


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
