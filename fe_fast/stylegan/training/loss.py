"""The losses of StyleGAN2 training (thesis ch. 5.2.2-5.2.3, eq. 5-4 .. 5-7).

* Adversarial loss, default the thesis's WGAN-GP (eq. 5-4, lambda = 10) with gradient penalties
  on real AND generated images: the critic minimises
  ``E D(G(z)) - E D(x) + lambda [E(||grad_x D(x)|| - 1)^2 + E(||grad D(x~)|| - 1)^2]`` and the
  generator minimises ``-E D(G(z))`` (eq. 5-5: min_G max_D). Option ``loss="logistic"``: the
  StyleGAN2 non-saturating logistic loss with lazy R1 on real images.
* Path loss ``L_w`` (eq. 5-6): ``E[D_F(S(slerp(w1, w2; t)), S(slerp(w1, w2; t + eps))) / eps^2]``
  with slerp of thesis eq. A-4 and a pluggable feature network F (VGG-16 when the user gives its
  weights file). Default stand-in (no external weights): the StyleGAN2 path-length regulariser
  ``E(||J_w^T y|| - a)^2``.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from fe_fast.stylegan.networks import Generator

__all__ = ["slerp", "wgan_gp_d_loss", "logistic_d_loss", "path_loss", "path_length_penalty", "mix_ws"]


def mix_ws(G: Generator, z: torch.Tensor, prob: float) -> torch.Tensor:
    """[B, num_ws, w_dim] per-layer w of ``z``; with probability ``prob`` the layers from a random
    cutoff on take the w of a second latent (StyleGAN2 style mixing)."""
    w = G.mapping(z)
    ws = w.unsqueeze(1).repeat(1, G.num_ws, 1)
    if prob > 0 and torch.rand(()) < prob:
        w2 = G.mapping(torch.randn_like(z))
        cutoff = int(torch.randint(1, G.num_ws, ()))
        ws = torch.cat([ws[:, :cutoff], w2.unsqueeze(1).expand(-1, G.num_ws - cutoff, -1)], dim=1)
    return ws


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical linear interpolation, thesis eq. A-4:
    ``sin((1-t) W)/sin W a + sin(t W)/sin W b`` with ``cos W = a.b / (|a||b|)`` (per row)."""
    t = t.reshape(-1, 1) if t.ndim < 2 else t
    cos = (a * b).sum(-1, keepdim=True) / (a.norm(dim=-1, keepdim=True) * b.norm(dim=-1, keepdim=True) + 1e-12)
    omega = torch.acos(cos.clamp(-1 + 1e-7, 1 - 1e-7))
    so = torch.sin(omega)
    near = so.abs() < 1e-6
    wa = torch.where(near, 1 - t, torch.sin((1 - t) * omega) / torch.where(near, torch.ones_like(so), so))
    wb = torch.where(near, t, torch.sin(t * omega) / torch.where(near, torch.ones_like(so), so))
    return wa * a + wb * b


def _score_sum(d_out: torch.Tensor) -> torch.Tensor:
    """Sum over the batch of each sample's score; a multi-scale critic's [B, K] scores are averaged
    over the K scales first (the losses average them too), so penalties see the same critic."""
    return d_out.flatten(1).mean(1).sum()


def _grad_norm(d_out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    (g,) = torch.autograd.grad(_score_sum(d_out), x, create_graph=True)
    return g.flatten(1).norm(dim=1)


def wgan_gp_d_loss(D, real: torch.Tensor, fake: torch.Tensor, gp_lambda: float = 10.0):
    """Critic side of thesis eq. 5-4/5-5: minimise ``E D(G(z)) - E D(x) + lambda (E(||grad_x D(x)||-1)^2
    + E(||grad D(x~)||-1)^2)``. Returns (loss, dict of parts as detached 0-d tensors: no host sync)."""
    real = real.detach().requires_grad_(True)
    fake = fake.detach().requires_grad_(True)
    d_real, d_fake = D(real), D(fake)
    gp_real = (_grad_norm(d_real, real) - 1).square().mean()
    gp_fake = (_grad_norm(d_fake, fake) - 1).square().mean()
    wdist = d_real.mean() - d_fake.mean()
    loss = -wdist + gp_lambda * (gp_real + gp_fake)
    parts = {"wdist": wdist, "gp_real": gp_real, "gp_fake": gp_fake, "d_real": d_real.mean(), "d_fake": d_fake.mean()}
    return loss, {k: v.detach() for k, v in parts.items()}


def logistic_d_loss(D, real, fake, r1_gamma: float = 0.0, r1_scale: float = 1.0):
    """StyleGAN2 non-saturating logistic critic loss ``softplus(D(G(z))) + softplus(-D(x))`` plus,
    when ``r1_gamma > 0``, the lazy R1 penalty ``gamma/2 E||grad_x D(x)||^2 * r1_scale``."""
    real = real.detach().requires_grad_(r1_gamma > 0)
    d_real, d_fake = D(real), D(fake.detach())
    loss = F.softplus(d_fake).mean() + F.softplus(-d_real).mean()
    parts = {"d_real": d_real.detach().mean(), "d_fake": d_fake.detach().mean()}
    if r1_gamma > 0:
        (g,) = torch.autograd.grad(_score_sum(d_real), real, create_graph=True)
        r1 = g.square().flatten(1).sum(1).mean()
        loss = loss + r1 * (r1_gamma / 2) * r1_scale
        parts["r1"] = r1.detach()
    return loss, parts


def path_loss(G: Generator, feature_net, batch: int, epsilon: float = 0.1, device=None) -> torch.Tensor:
    """Thesis eq. 5-6: ``E[ D_F(S(slerp(w1, w2; t)), S(slerp(w1, w2; t + eps))) / eps^2 ]`` with
    w = M(z), t ~ U(0, 1 - eps), the same (constant) noise for both images, and ``D_F`` the
    feature network's ``distance`` (squared Euclidean distance of normalised VGG features)."""
    device = device or next(G.parameters()).device
    z = torch.randn(2 * batch, G.z_dim, device=device)
    w = G.mapping(z)
    w1, w2 = w[:batch], w[batch:]
    t = torch.rand(batch, 1, device=device) * (1 - epsilon)
    wa, wb = slerp(w1, w2, t), slerp(w1, w2, t + epsilon)
    img = G.synthesis(torch.cat([wa, wb]), noise_mode="const")
    f = feature_net(img)
    if isinstance(f, (list, tuple)):
        fa, fb = [x[:batch] for x in f], [x[batch:] for x in f]
    else:
        fa, fb = f[:batch], f[batch:]
    return (feature_net.distance(fa, fb) / epsilon ** 2).mean()


def path_length_penalty(G: Generator, batch: int, pl_mean: torch.Tensor, decay: float = 0.01,
                        all_reduce=None, noise_mode: str = "random"):
    """StyleGAN2 path-length regulariser (the weight-free stand-in for eq. 5-6):
    ``E(||J_w^T y||_2 - a)^2`` with y ~ N(0, I)/sqrt(HW) and a the moving mean of the lengths.
    Returns (penalty, new pl_mean, mean length as a detached 0-d tensor)."""
    device = pl_mean.device
    z = torch.randn(batch, G.z_dim, device=device)
    ws = G.mapping(z).unsqueeze(1).repeat(1, G.num_ws, 1)
    img = G.synthesis(ws, noise_mode=noise_mode)
    y = torch.randn_like(img) / math.sqrt(img.shape[2] * img.shape[3])
    (g,) = torch.autograd.grad((img * y).sum(), ws, create_graph=True)
    lengths = g.square().sum(2).mean(1).sqrt()
    mean_len = lengths.detach().mean()
    if all_reduce is not None:
        mean_len = all_reduce(mean_len)
    new_mean = pl_mean + decay * (mean_len - pl_mean)
    return (lengths - new_mean).square().mean(), new_mean.detach(), mean_len
