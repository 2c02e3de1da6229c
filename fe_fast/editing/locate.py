"""Locating the S-space channels that control a region or an attribute (thesis §6.2.2, §6.2.3).

Pipeline (thesis Fig. 6-1): sample N latent codes (default 1000, §6.3.1), map them to S
(``G.synthesis.w_to_s``), let a teacher pick the samples that count, back-propagate the teacher's
objective to every style channel, average (eq. 6-5) and select channels layer first (eq. 6-6).

* Region-based, eq. 6-2: the objective of sample i is the mean generated intensity inside the
  parser's region mask M^r (argmax of the parser's logits), g^r_s = d/ds (1/|M^r| sum_{p in M^r} I_p);
  the samples whose mask is empty do not count.
* Attribute-based, eq. 6-4: the objective is the classifier's cross-entropy l_a (binary, target
  "attribute present"), on the positive samples only: the samples with p_a > ``threshold``, at most
  ``max_positives`` of them (the most confident; §6.3.2 uses 20-50 of 1000).

The per-sample gradients are computed in batches with the summed-loss trick: G has no batch
statistics and the teacher runs in eval mode, so sample i's output depends only on s_i and
d(sum_j l_j)/ds_i = dl_i/ds_i exactly; one backward per batch gives every per-sample gradient.
They are packed into one [P, C] buffer and reduced by :func:`fe_fast.ops.s_grad_reduce.s_grad_reduce`
(signed mean = eq. 6-5, per-layer mean |g| = the layer response, per-layer top-k = eq. 6-6).

At full scale (1024x1024, N = 1000) the run is organised in two passes over chunks of samples:
the teacher pass renders every sample once without a graph and keeps the S codes and the
teacher's logits (or the parser's region mask), so the gradient pass renders again only the
chosen positives. Batch sizes follow from the generator's feature-map size
(:func:`auto_batch_sizes`, about 4 GiB of activations per batch). With ``cache_dir`` every
finished chunk is written at once (:mod:`fe_fast.editing.cache`) and a restarted run continues
where the last one stopped. Under ``torchrun`` the chunks are shared out over the ranks and
gathered in chunk order, so the result does not depend on the number of processes.

Selection (``selection=``):

* ``"layerwise"`` (the thesis): pick the responding layer(s) first (``layers="auto"``: the
  ``n_layers`` candidate layers with the largest mean |g|; ``"all"``; or explicit indices), then the
  top-k channels by |mean gradient| inside each (eq. 6-6); ranks restart at 1 in every layer, as in
  thesis Table 6-3.
* ``"global"`` (ablation 1 of §6.3.4): top-k by |mean gradient| over all candidate layers at once.
* ``"whole"`` (ablation 2 of §6.3.4): the whole normalised mean gradient over the candidate layers
  is the edit direction (the listed channels are just its k largest entries).

Candidate layers default to the convolution layers (``kinds=("conv",)``): the ToRGB styles act on
colour globally and do not appear in thesis Table 6-3; pass ``kinds=("conv", "torgb")`` for all 26.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F

__all__ = ["Channel", "ChannelSet", "locate", "auto_batch_sizes", "sample_styles",
           "style_offsets", "flatten_s", "unflatten_s",
           "teacher_kind", "attribute_index", "region_index", "classify", "render", "positives_for_attribute"]


# --------------------------------------------------------------------------------------------
# Small helpers shared by edit / baselines / metrics
# --------------------------------------------------------------------------------------------
def style_offsets(G) -> torch.Tensor:
    """int64 [L+1] offsets of the style layers in the packed S vector (thesis Table 6-2 order)."""
    from fe_fast.ops.s_grad_reduce import layer_offsets

    return layer_offsets([t.channels for t in G.synthesis.s_layers])


def flatten_s(s: Sequence[torch.Tensor]) -> torch.Tensor:
    """list of [B, C_l] -> [B, sum C_l]."""
    return torch.cat(list(s), dim=1)


def unflatten_s(flat: torch.Tensor, G) -> List[torch.Tensor]:
    sizes = [t.channels for t in G.synthesis.s_layers]
    return list(torch.split(flat, sizes, dim=1))


def _param(G):
    return next(G.parameters())


@contextlib.contextmanager
def _eval_mode(*modules):
    """Eval mode for the duration (batch-norm teachers must not use batch statistics: the
    summed-loss trick needs samples to be independent)."""
    was = [m.training for m in modules]
    for m in modules:
        m.eval()
    try:
        yield
    finally:
        for m, w in zip(modules, was):
            m.train(w)


@torch.no_grad()
def sample_styles(G, n: int, seed: int = 0, truncation_psi: float = 1.0, batch_size: int = 1000):
    """N seeded samples: (w [N, w_dim], s list of [N, C_l]). Cheap (mapping + affine maps only)."""
    if int(n) < 1:
        raise ValueError(f"n_samples must be >= 1, got {n}")
    p = _param(G)
    g = torch.Generator().manual_seed(int(seed))
    z = torch.randn(int(n), G.z_dim, generator=g).to(device=p.device, dtype=p.dtype)
    ws = []
    for i in range(0, z.shape[0], batch_size):
        ws.append(G.mapping(z[i:i + batch_size], truncation_psi=truncation_psi))
    w = torch.cat(ws)
    return w, G.synthesis.w_to_s(w)


def render(G, s: Sequence[torch.Tensor], noise_mode: str = "const") -> torch.Tensor:
    """Images from S (deterministic noise by default, so edits compare like with like)."""
    return G.synthesis(s=list(s), noise_mode=noise_mode)


def _teacher_input(img: torch.Tensor, size: Optional[int], teacher) -> torch.Tensor:
    """The generator's images as the teacher reads them: resized to ``size`` when given; else left
    as they are for a teacher that resizes its input itself (one with ``input_size``: the CelebA
    ResNet-50 and the BiSeNet parser), and brought down to 256 for the toy teachers (they take
    16..256). The resize is the teachers' own (:func:`fe_fast.teachers.preprocess.resize_for_teacher`:
    whole frame, antialiased bilinear)."""
    from fe_fast.teachers.preprocess import resize_for_teacher

    if size is None:
        if getattr(teacher, "input_size", None) is not None:
            return img
        size = 256 if img.shape[-1] > 256 else None
    return img if size is None else resize_for_teacher(img, int(size))


def teacher_kind(teacher) -> str:
    """"attribute" (logits [B, A], has ``attributes``) or "region" (per-class logits [B, K, H, W])."""
    if getattr(teacher, "attributes", None) is not None:
        return "attribute"
    if getattr(teacher, "n_classes", None) is not None or getattr(teacher, "classes", None) is not None \
            or type(teacher).__name__ in ("BiSeNetParser", "FaceParser"):
        return "region"
    raise ValueError(f"teacher {type(teacher).__name__} is neither an attribute classifier (with .attributes) "
                     "nor a face parser (with .n_classes or .classes)")


def attribute_index(teacher, name: str) -> int:
    names = list(getattr(teacher, "attributes", None) or [])
    if name not in names:
        raise ValueError(f"unknown attribute {name!r}: the classifier knows {names}")
    return names.index(name)


def region_names(teacher) -> List[str]:
    names = getattr(teacher, "classes", None)
    if names is not None:
        return list(names)
    n = getattr(teacher, "n_classes", None)
    from fe_fast.datasets.toyfaces import MASK_CLASSES
    from fe_fast.teachers.bisenet import BISENET_CLASSES

    if n is None and type(teacher).__name__ == "BiSeNetParser":
        return list(BISENET_CLASSES)
    if n == len(MASK_CLASSES):
        return list(MASK_CLASSES)
    if n == len(BISENET_CLASSES):
        return list(BISENET_CLASSES)
    return [str(i) for i in range(int(n))]


def region_index(teacher, name: str) -> int:
    names = region_names(teacher)
    if name not in names:
        raise ValueError(f"unknown region {name!r}: the parser knows {names}")
    return names.index(name)


@torch.no_grad()
def classify(G, teacher, s: Sequence[torch.Tensor], batch_size: int = 64, teacher_size: Optional[int] = None,
             noise_mode: str = "const") -> torch.Tensor:
    """Teacher logits of the images generated from ``s`` (attribute teacher: [N, A])."""
    n = s[0].shape[0]
    out = []
    with _eval_mode(teacher):
        for i in range(0, n, batch_size):
            img = render(G, [t[i:i + batch_size] for t in s], noise_mode)
            out.append(teacher(_teacher_input(img, teacher_size, teacher)).float())
    return torch.cat(out)


@torch.no_grad()
def _region_masks(G, parser, s, region: int, batch_size: int, teacher_size, noise_mode) -> torch.Tensor:
    """bool [N, H, W] at the generator's resolution: argmax of the parser == region."""
    n = s[0].shape[0]
    out = []
    with _eval_mode(parser):
        for i in range(0, n, batch_size):
            img = render(G, [t[i:i + batch_size] for t in s], noise_mode)
            lab = parser(_teacher_input(img, teacher_size, parser)).argmax(1, keepdim=True).float()
            if lab.shape[-1] != img.shape[-1]:
                lab = F.interpolate(lab, size=img.shape[-2:], mode="nearest")
            out.append(lab[:, 0] == region)
    return torch.cat(out)


def positives_for_attribute(logits: torch.Tensor, index: int, threshold: float = 0.5,
                            max_positives: Optional[int] = 50) -> torch.Tensor:
    """bool [N]: the samples the classifier calls positive (p > threshold), at most
    ``max_positives`` of them, the most confident first (thesis §6.3.2: 20-50 of 1000)."""
    _check_max_positives(max_positives)
    p = torch.sigmoid(logits[:, index])
    pos = p > threshold
    if max_positives is not None and int(pos.sum()) > max_positives:
        order = torch.argsort(torch.where(pos, p, torch.full_like(p, -1.0)), descending=True, stable=True)
        pos = torch.zeros_like(pos)
        pos[order[:max_positives]] = True
    return pos


def per_sample_grads(G, s: Sequence[torch.Tensor], objective, batch_size: int = 16, noise_mode: str = "const",
                     progress: bool = False) -> torch.Tensor:
    """Packed per-sample gradients d objective_i / d s_i, [N, C] (summed-loss trick, exact since the
    samples are independent in G and in an eval-mode teacher). ``objective(images, start) -> [b]``."""
    n = s[0].shape[0]
    rows = []
    it = range(0, n, batch_size)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc="gradients", unit="batch")
    for i in it:
        sb = [t[i:i + batch_size].detach().clone().requires_grad_(True) for t in s]
        with torch.enable_grad():
            img = render(G, sb, noise_mode)
            obj = objective(img, i)
            grads = torch.autograd.grad(obj.sum(), sb, allow_unused=True)
        rows.append(torch.cat([torch.zeros_like(t) if gr is None else gr for t, gr in zip(sb, grads)], dim=1))
    return torch.cat(rows).detach()


# --------------------------------------------------------------------------------------------
# Result type
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Channel:
    layer: int  # style layer index (thesis Table 6-2, s^layer)
    channel: int  # channel inside the layer
    rank: int  # 1-based rank (inside the layer for layer-wise selection, as in Table 6-3)
    score: float  # |average gradient| (eq. 6-5) or the baseline's score
    sign: float = 1.0  # +1/-1: moving s along sign increases the attribute / the region's intensity

    def as_dict(self) -> dict:
        return {"layer": self.layer, "channel": self.channel, "rank": self.rank, "score": self.score}


@dataclass
class ChannelSet:
    """Channels found by :func:`locate` (or a baseline) with what editing needs.

    ``mean_grad``: [C] packed averaged gradient (eq. 6-5), ``direction``: [C] the signed objective
    direction (-mean_grad for the attribute cross-entropy, +mean_grad for the region intensity),
    ``sigma``: [C] std of s over the positives (unit edit strength, eq. 6-3), ``layer_response``:
    [L] mean |g| per layer; ``selection``: "layerwise", "global", "whole" or a baseline name."""

    target: str
    mode: str
    selection: str
    channels: List[Channel]
    offsets: torch.Tensor
    layer_names: List[str]
    sigma: Optional[torch.Tensor] = None
    direction: Optional[torch.Tensor] = None
    mean_grad: Optional[torch.Tensor] = None
    layer_response: Optional[torch.Tensor] = None
    layers: List[int] = field(default_factory=list)  # the selected (or candidate, for "whole") layers
    n_samples: int = 0
    n_positives: int = 0
    seconds: float = 0.0
    timings: dict = field(default_factory=dict)  # seconds per stage: sample, teacher, gradients, reduce

    def __len__(self):
        return len(self.channels)

    def __iter__(self):
        return iter(self.channels)

    def __getitem__(self, i):
        return self.channels[i]

    def top(self, n: int = 1) -> "ChannelSet":
        """The same set restricted to its first ``n`` channels (e.g. the single-channel edit)."""
        out = ChannelSet(**{k: getattr(self, k) for k in self.__dataclass_fields__})
        out.channels = self.channels[:n]
        return out

    def to_json(self) -> list:
        return [c.as_dict() for c in self.channels]

    def table(self) -> str:
        """Thesis Table 6-3 style: the attribute and its (layer, channel, rank) triples."""
        head = f"{self.mode} {self.target!r} ({self.selection}; {self.n_positives} of {self.n_samples} samples)"
        lines = [head, f"{'(layer, channel, rank)':<24} {'score':>12}  layer name"]
        for c in self.channels:
            lines.append(f"{f'({c.layer}, {c.channel}, {c.rank})':<24} {c.score:>12.4g}  {self.layer_names[c.layer]}")
        return "\n".join(lines)

    def __str__(self):
        return self.table()


# --------------------------------------------------------------------------------------------
# Run plan: batch sizes, distributed ranks
# --------------------------------------------------------------------------------------------
ACTIVATION_BUDGET = 4 << 30  # bytes of activations one batch may hold (with G and the buffers: < 8 GiB at 1024)
PACKED_BUDGET = 1 << 30  # per-sample gradients stay packed [P, C] up to this size, else reduced chunk by chunk


def _feature_bytes(G) -> int:
    """float32 bytes of one sample's feature maps, one per resolution (sum over r of C_r r^2 4):
    263 MB for the 1024 config-f generator."""
    widest = {}
    for t in G.synthesis.s_layers:
        if t.kind == "conv":
            widest[t.resolution] = max(widest.get(t.resolution, 0), t.out_channels)
    return 4 * sum(c * r * r for r, c in widest.items())


def auto_batch_sizes(G, budget: int = ACTIVATION_BUDGET):
    """(teacher-pass batch, gradient batch) for ``G``: as many samples as fit ``budget`` bytes of
    activations (a forward keeps about 3, a forward + backward about 6 feature-map stacks per
    sample, measured at 1024), at most 64 and 16. 1024 config-f: (5, 2); small generators: (64, 16)."""
    f = max(1, _feature_bytes(G))
    return max(1, min(64, budget // (3 * f))), max(1, min(16, budget // (6 * f)))


def _dist():
    """(torch.distributed or None, rank, world size): the process group of ``torchrun`` when one is
    initialised (:func:`fe_fast._distributed.init_from_env`)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        return dist, dist.get_rank(), dist.get_world_size()
    return None, 0, 1


def _gather_chunks(dist, mine: dict, error: Optional[BaseException] = None) -> dict:
    """Union over ranks of {chunk index: payload} (payloads on the CPU). ``error``: this rank's
    failure since the last collective; every rank then raises it (one line, see
    :func:`fe_fast._distributed.all_gather_or_raise`)."""
    from fe_fast._distributed import all_gather_or_raise

    out = {}
    for p in all_gather_or_raise(dist, mine, error):
        out.update(p)
    return out


def _on_this_rank(dist, error: Optional[BaseException], fn):
    """(fn(), None), or (None, the exception) under a process group, so that the rank takes its
    failure to the next collective instead of leaving; (None, error) without calling ``fn`` when an
    earlier step of this rank failed. Without a group the exception is raised as it is."""
    if error is not None:
        return None, error
    try:
        return fn(), None
    except Exception as e:
        if dist is None:
            raise
        return None, e


def _progress(total: int, desc: str, enabled: bool, initial: int = 0):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit="img", disable=not enabled, leave=False,
                dynamic_ncols=True)


def _finish_streamed(n: int, s_sum: torch.Tensor, a_sum: torch.Tensor, off: torch.Tensor, k: int, dtype):
    """The outputs of :func:`fe_fast.ops.s_grad_reduce.s_grad_reduce` from float64 signed and
    absolute gradient sums over ``n`` positives (eq. 6-5 means, layer responses, eq. 6-6 top-k with
    ties to the smaller channel index, as the kernel)."""
    from fe_fast.ops.s_grad_reduce import SGradReduce

    mean, mean_abs = (s_sum / n).to(dtype), (a_sum / n).to(dtype)
    L = off.numel() - 1
    layer = torch.empty(L, dtype=dtype)
    idx = torch.empty(L, k, dtype=torch.int64)
    for l in range(L):
        a, b = int(off[l]), int(off[l + 1])
        layer[l] = mean_abs[a:b].double().mean().to(dtype)
        idx[l] = torch.sort(mean[a:b].abs(), descending=True, stable=True).indices[:k]
    val = torch.stack([mean[int(off[l]) + idx[l]] for l in range(L)])
    return SGradReduce(mean, mean_abs, layer, idx, val)


# --------------------------------------------------------------------------------------------
# locate
# --------------------------------------------------------------------------------------------
def _candidate_layers(G, kinds) -> List[int]:
    kinds = tuple(kinds)
    bad = [k for k in kinds if k not in ("conv", "torgb")]
    if bad or not kinds:
        raise ValueError(f"kinds must be a non-empty subset of ('conv', 'torgb'), got {kinds}")
    return [t.index for t in G.synthesis.s_layers if t.kind in kinds]


def _resolve_layers(layers, candidates: List[int], response: torch.Tensor, n_layers: int, L: int) -> List[int]:
    if isinstance(layers, str):
        if layers == "auto":
            order = sorted(candidates, key=lambda l: (-float(response[l]), l))
            return order[:max(1, int(n_layers))]
        if layers == "all":
            return list(candidates)
        raise ValueError(f"layers must be 'auto', 'all' or a list of layer indices, got {layers!r}")
    out = []
    for l in layers:
        if isinstance(l, bool) or not isinstance(l, int) or not 0 <= l < L:
            raise ValueError(f"layer {l!r} out of range: G has {L} style layers (0..{L - 1})")
        out.append(int(l))
    if not out:
        raise ValueError("layers is empty")
    return out


def _check_max_positives(v):
    if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
        raise ValueError(f"max_positives must be a positive int or None (no limit), got {v!r}")


def _check_batch(name, v):
    if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
        raise ValueError(f"{name} must be a positive int or None (automatic), got {v!r}")


def _teacher_stage(G, teacher, s, mode: str, idx: int, tb: int, teacher_size, cache, dist, rank, world,
                   progress: bool, error: Optional[BaseException] = None) -> dict:
    """:func:`_teacher_chunks` on this rank, then the union over ranks; ``error``: this rank's
    failure before the stage (every rank then raises it)."""
    done, error = _on_this_rank(dist, error, lambda: _teacher_chunks(G, teacher, s, mode, idx, tb, teacher_size,
                                                                      cache, rank, world, progress))
    return _gather_chunks(dist, done, error)


def _teacher_chunks(G, teacher, s, mode: str, idx: int, tb: int, teacher_size, cache, rank, world,
                    progress: bool) -> dict:
    """First pass, thesis Fig. 6-1 "teacher": every sample rendered once (no graph) in chunks of
    ``tb``; kept per chunk: the classifier's logits [b, A] (attribute), or the parser's region mask
    at the teacher's resolution and whether the region is present at G's (region). Chunk c is
    computed by rank c % world; finished chunks go to the cache as they are done."""
    n = s[0].shape[0]
    n_chunks = (n + tb - 1) // tb
    mine = [c for c in range(n_chunks) if c % world == rank]
    done = {}
    for c in mine:
        got = cache.get(f"teacher_{c:06d}")
        if got is not None:
            done[c] = got
    bar = _progress(sum(min(tb, n - c * tb) for c in mine), "locate: teacher", progress,
                    sum(min(tb, n - c * tb) for c in done))
    with torch.no_grad(), _eval_mode(teacher):
        for c in mine:
            if c in done:
                continue
            a, b = c * tb, min(n, (c + 1) * tb)
            img = render(G, [t[a:b] for t in s])
            if mode == "attribute":
                out = {"logits": teacher(_teacher_input(img, teacher_size, teacher)).float().cpu()}
            else:
                lab = teacher(_teacher_input(img, teacher_size, teacher)).argmax(1, keepdim=True)
                small = (lab[:, 0] == idx)
                if lab.shape[-1] != img.shape[-1]:
                    lab = F.interpolate(lab.float(), size=img.shape[-2:], mode="nearest")
                present = (lab[:, 0] == idx).flatten(1).any(1)
                out = {"mask": small.cpu(), "present": present.cpu()}
            cache.put(f"teacher_{c:06d}", out)
            done[c] = out
            bar.update(b - a)
    bar.close()
    return done


def _gradient_stage(G, s, pos_idx: torch.Tensor, objective_for, gb: int, cache, dist, rank, world,
                    progress: bool, keep: bool, off, backend):
    """:func:`_gradient_chunks` on this rank, then the union over ranks (a failure on any rank is
    raised on every rank)."""
    mine, error = _on_this_rank(dist, None, lambda: _gradient_chunks(G, s, pos_idx, objective_for, gb, cache, rank,
                                                                      world, progress, keep, off, backend))
    return _gather_chunks(dist, mine, error)


def _gradient_chunks(G, s, pos_idx: torch.Tensor, objective_for, gb: int, cache, rank, world,
                     progress: bool, keep: bool, off, backend) -> dict:
    """Second pass: only the positives, in chunks of ``gb`` (global order of their sample index);
    chunk j is computed by rank j % world and written to the cache as soon as it is done (cached
    chunks are read one at a time, when their turn comes). Returns {j: [b, C] gradients} for every
    chunk of every rank (``keep``), else {rank: ((n, float64 sum g, float64 sum |g|), dtype)}, each
    rank's sums accumulated in its chunk order."""
    from fe_fast.ops.s_grad_reduce import s_grad_reduce

    P = pos_idx.numel()
    n_chunks = (P + gb - 1) // gb
    mine = [j for j in range(n_chunks) if j % world == rank]
    size = {j: min(gb, P - j * gb) for j in mine}
    out = {}
    acc, dtype = None, None
    bar = _progress(sum(size.values()), "locate: gradients", progress,
                    sum(size[j] for j in mine if cache.has(f"grads_{j:06d}")))
    for j in mine:
        sel = pos_idx[j * gb:(j + 1) * gb]
        got = cache.get(f"grads_{j:06d}")
        if got is not None:
            if not torch.equal(got["index"], sel):
                raise ValueError(f"cache_dir {cache.root}: grads_{j:06d}.pt holds other samples than this run's "
                                 "positives; delete the directory")
            g = got["grad"]
        else:
            g = per_sample_grads(G, [t[sel] for t in s], objective_for(sel), batch_size=sel.numel())
            g = g.float() if g.dtype not in (torch.float32, torch.float64) else g
            cache.put(f"grads_{j:06d}", {"index": sel.clone(), "grad": g.cpu()})
            bar.update(sel.numel())
        if keep:
            out[j] = g.cpu()
        else:  # streamed: only float64 sums stay in memory
            r = s_grad_reduce(g, off.to(g.device), None, 1, backend=backend)
            b = g.shape[0]
            acc = (b, r.mean.double().cpu() * b, r.mean_abs.double().cpu() * b) if acc is None else \
                (acc[0] + b, acc[1] + r.mean.double().cpu() * b, acc[2] + r.mean_abs.double().cpu() * b)
            dtype = g.dtype
    bar.close()
    if keep:
        return out
    return {rank: (acc, dtype)}  # summed in rank order by the caller


def locate(G, teacher, target: str, n_samples: int = 1000, k: int = 3, layers: Union[str, Sequence[int]] = "auto",
           *, n_layers: int = 1, selection: str = "layerwise", kinds: Sequence[str] = ("conv",), seed: int = 0,
           truncation_psi: float = 1.0, threshold: float = 0.5, max_positives: Optional[int] = 50,
           batch_size: Optional[int] = None, teacher_batch_size: Optional[int] = None,
           teacher_size: Optional[int] = None, backend: Optional[str] = None, cache_dir=None,
           packed_budget: int = PACKED_BUDGET, progress: bool = False) -> ChannelSet:
    """Locate the S channels of an attribute (eq. 6-4..6-6) or a region (eq. 6-2).

    Args:
        G: a :class:`fe_fast.stylegan.Generator` (or anything with ``mapping``, ``synthesis.w_to_s``,
            ``synthesis(s=...)`` and ``synthesis.s_layers``).
        teacher: an attribute classifier (logits [B, A], ``.attributes``) or a face parser
            (logits [B, K, H, W]; class names from ``.classes``, or the toy / BiSeNet classes).
        target: attribute name or region name.
        n_samples: N generated samples (thesis: 1000).
        k: channels per selected layer (eq. 6-6); for "global"/"whole", channels listed in total.
        layers: "auto" (the ``n_layers`` most responding candidate layers), "all" or indices.
        selection: "layerwise" (thesis), "global" or "whole" (the ablations of §6.3.4).
        kinds: which style layers are candidates ("conv", "torgb").
        threshold, max_positives: positive samples (p > threshold, at most max_positives).
        batch_size, teacher_batch_size: samples per backward pass / per teacher-pass forward; None
            picks them from G's size (:func:`auto_batch_sizes`: 2 and 5 at 1024, 16 and 64 for small G).
        cache_dir: a directory where the run keeps its finished chunks (samples, teacher outputs,
            gradients); the same call again continues where an interrupted one stopped
            (:class:`fe_fast.editing.cache.RunCache`). k, layers, selection, kinds and backend are
            not part of the cached work: one cache serves every selection.
        packed_budget: bytes up to which the per-sample gradients are reduced as one packed [P, C]
            buffer; beyond, chunk by chunk (memory then independent of the number of positives).
        progress: tqdm bars with an ETA for the two passes.

    Under ``torchrun`` (an initialised ``torch.distributed`` group) the chunks of both passes are
    shared out over the ranks, the positives are chosen from every rank's logits, and the
    gradients are reduced in chunk order: every rank returns the channels of a one-process run.

    Raises ValueError for an unknown target, a bad k/layers/batch size, a cache written for other
    arguments, or no positive sample."""
    import time

    t0 = time.perf_counter()
    if selection not in ("layerwise", "global", "whole"):
        raise ValueError(f"selection must be 'layerwise', 'global' or 'whole', got {selection!r}")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    _check_batch("batch_size", batch_size)
    _check_batch("teacher_batch_size", teacher_batch_size)
    _check_max_positives(max_positives)
    mode = teacher_kind(teacher)
    idx = attribute_index(teacher, target) if mode == "attribute" else region_index(teacher, target)
    s_layers = G.synthesis.s_layers
    L = len(s_layers)
    candidates = _candidate_layers(G, kinds)
    _resolve_layers(layers, candidates, torch.zeros(L), n_layers, L)  # validate before the heavy work
    if int(n_samples) < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}")
    tb_auto, gb_auto = auto_batch_sizes(G)
    tb = int(teacher_batch_size or tb_auto)
    gb = int(batch_size or gb_auto)
    dist, rank, world = _dist()
    progress = bool(progress) and rank == 0
    from fe_fast.editing.cache import RunCache, module_fingerprint

    key = {"target": target, "mode": mode, "n_samples": int(n_samples), "seed": int(seed),
           "truncation_psi": float(truncation_psi), "threshold": float(threshold),
           "max_positives": None if max_positives is None else int(max_positives), "batch_size": gb,
           "teacher_batch_size": tb, "teacher_size": teacher_size, "noise_mode": "const",
           "generator": module_fingerprint(G) if cache_dir is not None else None,
           "teacher": module_fingerprint(teacher) if cache_dir is not None else None}
    cache = RunCache(cache_dir, key)
    error = None  # this rank's failure, taken to the next collective (all ranks then raise it)
    if dist is not None and cache.enabled:  # rank 0 writes the manifest first (shared file systems)
        if rank == 0:
            _, error = _on_this_rank(dist, None, cache.open)
        _gather_chunks(dist, {}, error)  # the barrier: a refused manifest on rank 0 stops every rank
        if rank != 0:
            _, error = _on_this_rank(dist, None, cache.open)
    else:
        cache.open()
    G_was = G.training
    G.eval()
    try:
        def sample():
            got = cache.get("samples")
            if got is not None:
                w = got["w"]
                with torch.no_grad():
                    return G.synthesis.w_to_s(w.to(device=_param(G).device, dtype=_param(G).dtype))
            w, s = sample_styles(G, n_samples, seed, truncation_psi)
            if rank == 0:
                cache.put("samples", {"w": w.detach().cpu()})
            return s

        s, error = _on_this_rank(dist, error, sample)
        timings = {"sample": time.perf_counter() - t0}
        t1 = time.perf_counter()
        chunks = _teacher_stage(G, teacher, s, mode, idx, tb, teacher_size, cache, dist, rank, world, progress,
                                error)
        order = sorted(chunks)
        if mode == "attribute":
            logits = torch.cat([chunks[c]["logits"] for c in order])
            pos = positives_for_attribute(logits, idx, threshold, max_positives)
            if not bool(pos.any()):
                raise ValueError(f"the classifier finds no positive sample for {target!r} among {n_samples} "
                                 f"generated samples (max p = {float(torch.sigmoid(logits[:, idx]).max()):.3g}, "
                                 f"threshold {threshold}): raise n_samples or lower the threshold")
        else:
            pos = torch.cat([chunks[c]["present"] for c in order])
            if not bool(pos.any()):
                raise ValueError(f"the parser finds region {target!r} in none of the {n_samples} generated samples")
        timings["teacher"] = time.perf_counter() - t1
        t1 = time.perf_counter()
        pos_idx = torch.nonzero(pos).flatten().cpu()
        dev = s[0].device
        if mode == "attribute":
            sign = -1.0

            def objective_for(sel):
                def objective(img, start):  # eq. 6-4: cross-entropy of "attribute present"
                    lg = teacher(_teacher_input(img, teacher_size, teacher))[:, idx]
                    # -log sigmoid(l) written as softplus(-l): its gradient -sigmoid(-l) keeps its
                    # precision on confident positives, where sigmoid(l) - 1 rounds to 0 in float32
                    return F.softplus(-lg)
                return objective
        else:
            sign = 1.0

            def objective_for(sel):
                small = torch.stack([chunks[int(i) // tb]["mask"][int(i) % tb] for i in sel]).to(dev)
                m = small[:, None].to(s[0].dtype)
                res = G.synthesis.resolution
                if m.shape[-1] != res:
                    m = F.interpolate(m, size=(res, res), mode="nearest")
                m = m[:, 0]
                area = m.flatten(1).sum(1).clamp_min(1.0)

                def objective(img, start):  # eq. 6-2: mean intensity inside M^r
                    mm = m[start:start + img.shape[0]]
                    return (img.mean(1) * mm).flatten(1).sum(1) / area[start:start + img.shape[0]]
                return objective

        off = style_offsets(G)
        C = int(off[-1])
        keep = pos_idx.numel() * C * 4 <= int(packed_budget)
        with _eval_mode(teacher):
            grads = _gradient_stage(G, s, pos_idx, objective_for, gb, cache, dist, rank, world, progress,
                                    keep, off, backend)
        timings["gradients"] = time.perf_counter() - t1
    finally:
        G.train(G_was)

    from fe_fast.ops.s_grad_reduce import s_grad_reduce

    t1 = time.perf_counter()
    sizes = (off[1:] - off[:-1]).tolist()
    k_kernel = min(k, min(sizes))
    order = sorted(grads)
    if keep:
        g = torch.cat([grads[j] for j in order])
        red = s_grad_reduce(g, off.to(g.device), torch.ones(g.shape[0], dtype=torch.bool, device=g.device),
                            k_kernel, backend=backend)
    else:
        parts = [grads[r] for r in order if grads[r][0] is not None]
        n_all = sum(p[0][0] for p in parts)
        s_sum = sum((p[0][1] for p in parts[1:]), parts[0][0][1])
        a_sum = sum((p[0][2] for p in parts[1:]), parts[0][0][2])
        red = _finish_streamed(n_all, s_sum, a_sum, off, k_kernel, parts[0][1])
    mean = red.mean.detach().cpu()
    flat_pos = flatten_s([t[pos_idx.to(t.device)] for t in s]).detach().cpu()
    if flat_pos.shape[0] >= 2:
        sigma = flat_pos.std(0)
    else:  # one positive: fall back to the spread over all samples (eq. 6-3 needs a std)
        sigma = flatten_s(s).detach().cpu().std(0)
    timings["reduce"] = time.perf_counter() - t1
    direction = sign * mean
    response = red.layer.detach().cpu()
    names = [t.name for t in s_layers]

    def chan(l, c, rank, score):
        d = float(direction[int(off[l]) + c])
        return Channel(int(l), int(c), int(rank), float(score), 1.0 if d >= 0 else -1.0)

    channels: List[Channel] = []
    if selection == "layerwise":
        chosen = _resolve_layers(layers, candidates, response, n_layers, L)
        for l in chosen:
            n = sizes[l]
            kk = min(k, n)
            if kk <= k_kernel:
                top = red.topk_idx[l, :kk].cpu().tolist()
            else:
                seg = mean[int(off[l]):int(off[l + 1])].abs()
                top = torch.sort(seg, descending=True, stable=True).indices[:kk].tolist()
            for r, c in enumerate(top, 1):
                channels.append(chan(l, c, r, abs(float(mean[int(off[l]) + c]))))
    else:
        chosen = _resolve_layers(layers, candidates, response, n_layers, L) if not isinstance(layers, str) \
            or layers != "auto" else list(candidates)
        cols = torch.cat([torch.arange(int(off[l]), int(off[l + 1])) for l in chosen])
        scores = mean[cols].abs()
        order = torch.sort(scores, descending=True, stable=True).indices[:k]
        layer_of = torch.repeat_interleave(torch.tensor(chosen), torch.tensor([sizes[l] for l in chosen]))
        for r, j in enumerate(order.tolist(), 1):
            l = int(layer_of[j])
            channels.append(chan(l, int(cols[j]) - int(off[l]), r, float(scores[j])))
    cs = ChannelSet(target=target, mode=mode, selection=selection, channels=channels, offsets=off,
                    layer_names=names, sigma=sigma, direction=direction, mean_grad=mean,
                    layer_response=response, layers=list(chosen), n_samples=int(n_samples),
                    n_positives=int(pos.sum()), timings=timings)
    cs.seconds = time.perf_counter() - t0
    return cs


def parse_channels(spec, G=None) -> List[Tuple[int, int]]:
    """"6:501,9:6" or [(6, 501), "9:6"] -> [(6, 501), (9, 6)], checked against G's layers."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    out = []
    for it in items:
        if isinstance(it, str):
            parts = it.strip().split(":")
            if len(parts) != 2:
                raise ValueError(f"channel {it!r} must be written LAYER:CHANNEL, e.g. 6:501")
            try:
                l, c = int(parts[0]), int(parts[1])
            except ValueError:
                raise ValueError(f"channel {it!r} must be written LAYER:CHANNEL with integers") from None
        elif isinstance(it, Channel):
            l, c = it.layer, it.channel
        else:
            l, c = (int(v) for v in it)
        out.append((l, c))
    if not out:
        raise ValueError("no channel given")
    if G is not None:
        s_layers = G.synthesis.s_layers
        for l, c in out:
            if not 0 <= l < len(s_layers):
                raise ValueError(f"layer {l} out of range: G has {len(s_layers)} style layers (0..{len(s_layers) - 1})")
            if not 0 <= c < s_layers[l].channels:
                raise ValueError(f"channel {c} out of range for layer {l} ({s_layers[l].name}, "
                                 f"{s_layers[l].channels} channels)")
    return out
