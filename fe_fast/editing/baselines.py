"""Baselines of thesis Table 6-4: StyleSpace (region and attribute detectors), InterFaceGAN, GANSpace.

* :func:`stylespace_attribute` (StyleSpace, Wu et al.): normalise every s channel by its mean/std
  over the N generated samples, then rank channels by |mean| / std of the normalised values over the
  positives; unit edit = the channel's std over all samples (delta s = alpha * sigma_c).
* :func:`stylespace_region`: gradient maps of the (pooled, 32x32 at most) image w.r.t. each s
  channel (finite differences of +sigma_c, batched over channels), thresholded to the area of the
  semantic region; per channel the share of the thresholded pixels that falls in each region,
  averaged over samples; a channel is kept when its share for the target region is > 0.5 and beats
  the runner-up region by > 0.25 (ranked by share).
* :func:`interfacegan`: linear SVM (scikit-learn) on W separating the classifier's positives from
  the negatives; edit along the unit normal n, unit strength = std of w . n.
* :func:`ganspace`: PCA of W (scikit-learn); the component most correlated with the target logit,
  oriented to increase it; unit strength = the component's std.

W-space edits move w for every layer (w+ = w broadcast) and return the new s via ``w_to_s``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from fe_fast.editing.locate import (
    Channel,
    ChannelSet,
    _candidate_layers,
    _eval_mode,
    _region_masks,
    _teacher_input,
    attribute_index,
    classify,
    flatten_s,
    positives_for_attribute,
    region_index,
    region_names,
    render,
    sample_styles,
    style_offsets,
    unflatten_s,
)

__all__ = ["WDirection", "stylespace_attribute", "stylespace_region", "interfacegan", "ganspace"]


@dataclass
class WDirection:
    """A direction in W: ``w* = w + alpha * sigma * direction`` (``direction`` unit norm)."""

    name: str
    target: str
    direction: torch.Tensor  # [w_dim]
    sigma: float
    info: dict

    def edit_w(self, w: torch.Tensor, alpha: float) -> torch.Tensor:
        return w + float(alpha) * self.sigma * self.direction.to(device=w.device, dtype=w.dtype)

    def edit(self, G, w: torch.Tensor, alpha: float) -> List[torch.Tensor]:
        """s codes of the edited w (thesis §6.3.2 compares all methods in the images they make)."""
        return G.synthesis.w_to_s(self.edit_w(w, alpha))


def _attribute_setup(G, teacher, target, n_samples, seed, truncation_psi, threshold, max_positives, teacher_size):
    idx = attribute_index(teacher, target)
    w, s = sample_styles(G, n_samples, seed, truncation_psi)
    logits = classify(G, teacher, s, teacher_size=teacher_size)
    return idx, w, s, logits


@torch.no_grad()
def stylespace_attribute(G, teacher, target: str, n_samples: int = 1000, k: int = 1, *, seed: int = 0,
                         kinds: Sequence[str] = ("conv",), truncation_psi: float = 1.0, threshold: float = 0.5,
                         max_positives: Optional[int] = 50, teacher_size: Optional[int] = None) -> ChannelSet:
    """StyleSpace attribute channels: rank by |mean| / std over the positives of the normalised s."""
    idx, _, s, logits = _attribute_setup(G, teacher, target, n_samples, seed, truncation_psi, threshold,
                                         max_positives, teacher_size)
    pos = positives_for_attribute(logits, idx, threshold, max_positives)
    if int(pos.sum()) < 2:
        raise ValueError(f"StyleSpace needs at least 2 positive samples for {target!r}, the classifier finds "
                         f"{int(pos.sum())} among {n_samples}")
    flat = flatten_s(s).detach().cpu().double()
    mu, sd = flat.mean(0), flat.std(0).clamp_min(1e-12)
    z = (flat - mu) / sd
    zp = z[pos.cpu()]
    score = zp.mean(0).abs() / zp.std(0).clamp_min(1e-12)
    off = style_offsets(G)
    cand = _candidate_layers(G, kinds)
    allowed = torch.zeros(flat.shape[1], dtype=torch.bool)
    for l in cand:
        allowed[int(off[l]):int(off[l + 1])] = True
    score = torch.where(allowed, score, torch.full_like(score, -1.0))
    order = torch.sort(score, descending=True, stable=True).indices[:k]
    chans = []
    for r, j in enumerate(order.tolist(), 1):
        l = int(torch.searchsorted(off, torch.tensor(j), right=True)) - 1
        chans.append(Channel(l, j - int(off[l]), r, float(score[j]), 1.0 if float(zp[:, j].mean()) >= 0 else -1.0))
    names = [t.name for t in G.synthesis.s_layers]
    return ChannelSet(target=target, mode="attribute", selection="stylespace", channels=chans, offsets=off,
                      layer_names=names, sigma=sd.float(), direction=None, layers=sorted({c.layer for c in chans}),
                      n_samples=n_samples, n_positives=int(pos.sum()))


@torch.no_grad()
def stylespace_region(G, parser, region: str, n_samples: int = 10, k: int = 5, *, seed: int = 0,
                      kinds: Sequence[str] = ("conv",), pool: int = 32, share_min: float = 0.5,
                      margin: float = 0.25, batch_size: int = 64, teacher_size: Optional[int] = None) -> ChannelSet:
    """StyleSpace region channels from thresholded gradient maps (finite differences of +sigma_c).

    Cost: one forward per candidate channel and sample (batched), so ``n_samples`` is small (StyleSpace
    uses a few images; at 1024 this is 6048 forwards per sample)."""
    r_idx = region_index(parser, region)
    n_regions = len(region_names(parser))
    _, s = sample_styles(G, n_samples, seed)
    _, s_stats = sample_styles(G, 1000, seed + 1)
    sig = flatten_s(s_stats).std(0)
    masks = _region_masks(G, parser, s, r_idx, batch_size, teacher_size, "const")  # target only, for area
    with _eval_mode(parser):
        labels = []
        for i in range(n_samples):
            img = render(G, [t[i:i + 1] for t in s])
            lab = parser(_teacher_input(img, teacher_size, parser)).argmax(1, keepdim=True).float()
            labels.append(lab)
    off = style_offsets(G)
    cand = _candidate_layers(G, kinds)
    cols = torch.cat([torch.arange(int(off[l]), int(off[l + 1])) for l in cand])
    res = min(pool, G.synthesis.resolution if hasattr(G.synthesis, "resolution") else pool)
    shares = torch.zeros(len(cols), n_regions, dtype=torch.float64)
    counted = 0
    for i in range(n_samples):
        if not bool(masks[i].any()):
            continue
        counted += 1
        lab = F.interpolate(labels[i], size=(res, res), mode="nearest")[0, 0].long()  # [res, res]
        onehot = F.one_hot(lab, n_regions).reshape(-1, n_regions).double()  # [P, R]
        area = int((lab == r_idx).sum())
        if area == 0:
            continue
        flat_i = flatten_s([t[i:i + 1] for t in s])
        base = render(G, unflatten_s(flat_i, G))
        for j0 in range(0, len(cols), batch_size):
            cj = cols[j0:j0 + batch_size]
            pert = flat_i.repeat(len(cj), 1)
            pert[torch.arange(len(cj)), cj] += sig[cj].to(pert.dtype)
            diff = (render(G, unflatten_s(pert, G)) - base).abs().mean(1, keepdim=True)
            gmap = F.adaptive_avg_pool2d(diff, res).flatten(1)  # [b, P]
            thr = torch.topk(gmap, area, dim=1).values[:, -1:]
            top = (gmap >= thr).double()
            top = top / top.sum(1, keepdim=True).clamp_min(1.0)
            shares[j0:j0 + len(cj)] += top @ onehot
    if counted == 0:
        raise ValueError(f"the parser finds region {region!r} in none of the {n_samples} samples")
    shares /= counted
    tgt = shares[:, r_idx]
    other = shares.clone()
    other[:, r_idx] = -1
    keep = (tgt > share_min) & (tgt - other.max(1).values > margin)
    order = [int(j) for j in torch.sort(torch.where(keep, tgt, torch.full_like(tgt, -1.0)), descending=True,
                                        stable=True).indices[:k] if bool(keep[j])]
    chans = []
    for r, j in enumerate(order, 1):
        col = int(cols[j])
        l = int(torch.searchsorted(off, torch.tensor(col), right=True)) - 1
        chans.append(Channel(l, col - int(off[l]), r, float(tgt[j]), 1.0))
    names = [t.name for t in G.synthesis.s_layers]
    return ChannelSet(target=region, mode="region", selection="stylespace", channels=chans, offsets=off,
                      layer_names=names, sigma=sig.detach().cpu(), layers=sorted({c.layer for c in chans}),
                      n_samples=n_samples, n_positives=counted)


@torch.no_grad()
def interfacegan(G, teacher, target: str, n_samples: int = 1000, *, seed: int = 0, truncation_psi: float = 1.0,
                 threshold: float = 0.5, teacher_size: Optional[int] = None, C: float = 1.0) -> WDirection:
    """InterFaceGAN: linear SVM boundary in W between the classifier's positives and negatives."""
    from sklearn.svm import LinearSVC

    idx, w, _, logits = _attribute_setup(G, teacher, target, n_samples, seed, truncation_psi, threshold, None,
                                         teacher_size)
    y = (torch.sigmoid(logits[:, idx]) > threshold).cpu().numpy()
    if y.all() or not y.any():
        raise ValueError(f"InterFaceGAN needs positives and negatives for {target!r}: the classifier calls "
                         f"{int(y.sum())} of {n_samples} samples positive")
    X = w.detach().cpu().double().numpy()
    mu, sd = X.mean(0), X.std(0) + 1e-12
    svm = LinearSVC(C=C, max_iter=20000, random_state=seed).fit((X - mu) / sd, y)
    n = svm.coef_[0] / sd  # normal in raw W coordinates
    n = n / np.linalg.norm(n)
    d = torch.from_numpy(n).float()
    sigma = float(np.std(X @ n))
    return WDirection("interfacegan", target, d, sigma, {"train_accuracy": float(svm.score((X - mu) / sd, y))})


@torch.no_grad()
def ganspace(G, teacher, target: str, n_samples: int = 1000, n_components: int = 20, *, seed: int = 0,
             truncation_psi: float = 1.0, teacher_size: Optional[int] = None) -> WDirection:
    """GANSpace: PCA of W; the component most correlated with the target logit (sign: increasing it)."""
    from sklearn.decomposition import PCA

    idx, w, _, logits = _attribute_setup(G, teacher, target, n_samples, seed, truncation_psi, 0.5, None,
                                         teacher_size)
    X = w.detach().cpu().double().numpy()
    nc = min(n_components, X.shape[0], X.shape[1])
    pca = PCA(n_components=nc, random_state=seed).fit(X)
    proj = pca.transform(X)
    lt = logits[:, idx].cpu().double().numpy()
    corr = np.array([np.corrcoef(proj[:, i], lt)[0, 1] if proj[:, i].std() > 0 and lt.std() > 0 else 0.0
                     for i in range(nc)])
    corr = np.nan_to_num(corr)
    best = int(np.argmax(np.abs(corr)))
    v = pca.components_[best] * (1.0 if corr[best] >= 0 else -1.0)
    return WDirection("ganspace", target, torch.from_numpy(v / np.linalg.norm(v)).float(),
                      float(np.sqrt(pca.explained_variance_[best])), {"component": best, "corr": float(corr[best])})
