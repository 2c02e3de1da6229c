"""The StyleGAN2 training loop (thesis ch. 5.2.2-5.3.2): per step one generator forward, a critic
step (``d_step``, eq. 5-4), a generator step (``g_step``, eq. 5-7: ``L_gan + alpha L_w``), the G
EMA (``ema``), then the callbacks (metrics, samples, FID, snapshots, checkpoints).

Adam, lr 0.002, betas (0, 0.99) for G and D (thesis §5.3.2) with StyleGAN2's lazy-regularisation
correction, G EMA, style mixing, tracked average w for truncation; an optional cosine ramp-down
of both learning rates over the end of the run.
"""
from __future__ import annotations

import copy
import dataclasses
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from fe_fast.stylegan.discriminator import CRITICS, MultiScaleDiscriminator
from fe_fast.stylegan.networks import Generator
from fe_fast.stylegan.training.callbacks import Checkpoints, FIDLog, MetricsLog, SampleGrids, Snapshots
from fe_fast.stylegan.training.config import TrainConfig
from fe_fast.stylegan.training.dataset import make_dataset, real_batches
from fe_fast.stylegan.training.distributed import Dist
from fe_fast.stylegan.training.loss import (logistic_d_loss, mix_ws, path_length_penalty, path_loss,
                                            wgan_gp_d_loss)
from fe_fast.stylegan.training.state import TrainState

__all__ = ["train", "build_networks", "make_optimizers", "lr_rampdown_factor", "d_step", "g_step", "ema",
           "training_loop"]


def build_networks(cfg, device):
    """(G, D) of ``cfg`` (a ``TrainConfig``) on ``device``: D uses G's channel multiplier and
    maximum, and its own channel base where ``cfg.D.channel_base`` is set."""
    g, d, res = cfg.G, cfg.D, cfg.dataset.resolution
    G = Generator(res, z_dim=g.z_dim, w_dim=g.w_dim, n_mlp=g.n_mlp, lr_mlp=g.lr_mlp,
                  channel_multiplier=g.channel_multiplier, channel_base=g.channel_base,
                  channel_max=g.channel_max, seed=cfg.seed).to(device)
    d_base = g.channel_base if d.channel_base is None else d.channel_base
    d_kwargs = dict(channel_multiplier=g.channel_multiplier, channel_base=d_base, channel_max=g.channel_max,
                    mbstd_group=d.mbstd_group, seed=cfg.seed + 1)
    if d.attr_weight > 0:
        from fe_fast.datasets.toyfaces import BINARY_ATTRIBUTES

        d_kwargs["n_attributes"] = len(BINARY_ATTRIBUTES)
    if d.scales > 1:
        D = MultiScaleDiscriminator(res, scales=d.scales, **d_kwargs).to(device)
    else:
        D = CRITICS[d.arch](res, **d_kwargs).to(device)
    return G, D


def make_optimizers(cfg, G, D):
    """Adam for G and D. Lazy-regularisation correction (StyleGAN2): a network regularised every
    k steps gets lr and betas scaled by k / (k + 1)."""
    betas = tuple(cfg.opt.betas)
    d_every = cfg.reg.r1_every if cfg.reg.loss == "logistic" else 1
    g_every = cfg.reg.path_every if cfg.reg.path != "none" else 1
    d_ratio = d_every / (d_every + 1) if d_every > 1 else 1.0
    g_ratio = g_every / (g_every + 1) if g_every > 1 else 1.0
    opt_G = torch.optim.Adam(G.parameters(), lr=cfg.opt.lr * g_ratio, betas=tuple(b ** g_ratio for b in betas))
    d_lr = cfg.opt.lr if cfg.opt.d_lr is None else cfg.opt.d_lr
    opt_D = torch.optim.Adam(D.parameters(), lr=d_lr * d_ratio, betas=tuple(b ** d_ratio for b in betas))
    return opt_G, opt_D


def lr_rampdown_factor(progress: float, rampdown: float) -> float:
    """Learning-rate multiplier at ``progress`` (0 = start, 1 = end of the run): 1 until the last
    ``rampdown`` fraction, then a half cosine down to 0 at the end."""
    start = 1.0 - rampdown
    if rampdown <= 0 or progress <= start:
        return 1.0
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (progress - start) / rampdown)))


def _lr_scale(state, cfg, dist, device) -> float:
    """The ramp-down factor now; progress: images or seconds, whichever limit is nearer."""
    progress = state.img_seen / cfg.opt.total_img
    if cfg.max_seconds is not None:
        progress = max(progress, (time.perf_counter() - state.t_start) / cfg.max_seconds)
    if dist.world > 1:  # one schedule on every rank (clocks differ)
        progress = float(dist.mean(torch.tensor(progress, device=device)))
    return lr_rampdown_factor(progress, cfg.opt.lr_rampdown)


def _out_of_time(state, cfg, dist, device) -> bool:
    if cfg.max_seconds is None:
        return False
    late = time.perf_counter() - state.t_start >= cfg.max_seconds
    if dist.world == 1:
        return late
    return bool(dist.mean(torch.tensor(float(late), device=device)) > 0)  # all ranks stop together


def d_step(state: TrainState, cfg, real, real_attr, gen, dist) -> dict:
    """One critic update (eq. 5-4, critic side) on real images and the detached generated ones.
    Returns the step's record (loss parts, ``loss_D``) as detached tensors."""
    D, reg = state.D, cfg.reg
    D.requires_grad_(True)
    if reg.loss == "wgan-gp":
        d_loss, parts = wgan_gp_d_loss(D, real, gen.detach(), reg.gp_lambda)
    else:
        do_r1 = reg.r1_gamma > 0 and state.step % reg.r1_every == 0
        d_loss, parts = logistic_d_loss(D, real, gen.detach(), reg.r1_gamma if do_r1 else 0.0, reg.r1_every)
    if cfg.D.attr_weight > 0:  # auxiliary task: D's features must carry the real faces' attributes
        attr_loss = F.binary_cross_entropy_with_logits(D.attribute_logits(real), real_attr.to(real.device))
        d_loss = d_loss + cfg.D.attr_weight * attr_loss
        parts["loss_D_attr"] = attr_loss.detach()
    state.opt_D.zero_grad(set_to_none=True)
    d_loss.backward()
    dist.average_grads(D.parameters())
    state.opt_D.step()
    return {**parts, "loss_D": d_loss.detach()}


def g_step(state: TrainState, cfg, gen, ws, local_batch: int, dist, feature_net=None) -> dict:
    """One generator update (eq. 5-7: ``L_gan + alpha L_w``, the path term lazily every
    ``path_every`` steps) scoring ``gen`` with the updated critic, then the tracked average w.
    Returns the step's record (``pl_length``, ``loss_path`` when the path term ran; ``loss_G``)."""
    G, D, reg = state.G, state.D, cfg.reg
    rec = {}
    D.requires_grad_(False)
    d_gen = D(gen)
    g_gan = -d_gen.mean() if reg.loss == "wgan-gp" else F.softplus(-d_gen).mean()
    g_loss = g_gan
    if reg.path != "none" and state.step % reg.path_every == 0:
        pb = max(1, local_batch // reg.path_batch_shrink)
        if reg.path == "pl":
            lw, state.pl_mean, mean_len = path_length_penalty(G, pb, state.pl_mean, all_reduce=dist.mean,
                                                              noise_mode=cfg.G.noise_mode)
            rec["pl_length"] = mean_len
        else:
            lw = path_loss(G, feature_net, pb, reg.path_epsilon, gen.device)
        g_loss = g_loss + reg.path_alpha * lw * reg.path_every
        rec["loss_path"] = lw.detach()
    state.opt_G.zero_grad(set_to_none=True)
    g_loss.backward()
    dist.average_grads(G.parameters())
    state.opt_G.step()
    with torch.no_grad():  # tracked average w (truncation), identical on every rank
        w_mean = dist.mean(ws[:, 0].detach().mean(0))
        G.mapping.w_avg.copy_(w_mean.lerp(G.mapping.w_avg, cfg.G.w_avg_beta))
    rec["loss_G"] = g_gan.detach()
    return rec


def ema(state: TrainState, cfg) -> None:
    """G_ema <- G + beta (G_ema - G) with a half-life of ``ema_img`` images (at most
    ``ema_rampup`` times the images seen); buffers copied."""
    ema_nimg = cfg.G.ema_img
    if cfg.G.ema_rampup is not None:
        ema_nimg = min(ema_nimg, state.img_seen * cfg.G.ema_rampup)
    beta = 0.5 ** (cfg.opt.batch / max(ema_nimg, 1e-8))
    with torch.no_grad():  # all tensors in one foreach call
        torch._foreach_lerp_(list(state.G_ema.parameters()), list(state.G.parameters()), 1.0 - beta)
        for be, b in zip(state.G_ema.buffers(), state.G.buffers()):
            be.copy_(b)


def training_loop(cfg, dist, feature_net=None, callbacks=()) -> dict:
    """Train with ``cfg`` (a validated ``TrainConfig``) in the process group ``dist``
    (``distributed.Dist``). ``callbacks`` (``callbacks.Callback``) step after the built-in ones
    and, as ends run in reverse order, end before them."""
    device = dist.device(cfg.device)
    if cfg.opt.batch % dist.world:
        raise ValueError(f"batch ({cfg.opt.batch}) must be divisible by the number of processes ({dist.world})")
    local_batch = cfg.opt.batch // dist.world
    out = Path(cfg.out_dir)
    if dist.rank == 0:
        (out / "samples").mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    G, D = build_networks(cfg, device)
    dist.broadcast_module(G)
    dist.broadcast_module(D)
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    state = TrainState(G, D, G_ema, *make_optimizers(cfg, G, D), pl_mean=torch.zeros((), device=device))
    resume = cfg.resume
    if resume == "auto":
        resume = str(out / "checkpoint.pt") if (out / "checkpoint.pt").exists() else None
    if resume:
        state.load(resume, device)
    if cfg.reg.path == "vgg":
        if feature_net is None:
            from fe_fast.stylegan.features import VGG16Features

            feature_net = VGG16Features(cfg.reg.vgg_weights)
        feature_net = feature_net.to(device)
    dataset = make_dataset(cfg, progress=cfg.log.progress and dist.rank == 0)
    next_real = real_batches(dataset, cfg, dist.rank, dist.world, local_batch, state.img_seen)
    # per-rank RNG streams for z / noise (resume continues a fresh, still deterministic stream)
    torch.manual_seed(cfg.seed * 1000 + dist.rank + 7919 * state.step)

    metrics = MetricsLog(cfg, dist.rank, out, state.img_seen)
    callbacks = [metrics, SampleGrids(cfg, dist.rank, out, device, state.img_seen),
                 FIDLog(cfg, dist.rank, dataset, device, metrics, state.img_seen),
                 Snapshots(cfg, dist.rank, out, state.img_seen), Checkpoints(cfg, dist.rank, out, state.img_seen),
                 *callbacks]
    d_losses, g_losses = [], []
    state.t_start, state.img_at_start = time.perf_counter(), state.img_seen
    steps_run = 0
    while state.img_seen < cfg.opt.total_img and (cfg.max_steps is None or steps_run < cfg.max_steps) \
            and not _out_of_time(state, cfg, dist, device):
        real, real_attr = next_real()
        real = real.to(device)
        rec = {}
        if cfg.opt.lr_rampdown > 0:
            rec["lr_scale"] = _lr_scale(state, cfg, dist, device)
            state.set_lr(rec["lr_scale"])
        if cfg.dataset.xflip:
            flip = torch.rand(real.shape[0], device=device) < 0.5
            real = torch.where(flip.reshape(-1, 1, 1, 1), real.flip(3), real)
        # One generator forward per step: the critic step sees it detached, the generator step
        # scores it with the updated critic (saves the second synthesis pass per step).
        G.requires_grad_(True)
        ws = mix_ws(G, torch.randn(local_batch, cfg.G.z_dim, device=device), cfg.G.style_mixing)
        gen = G.synthesis(ws, noise_mode=cfg.G.noise_mode)
        rec.update(d_step(state, cfg, real, real_attr, gen, dist))
        rec.update(g_step(state, cfg, gen, ws, local_batch, dist, feature_net))
        state.img_seen += cfg.opt.batch
        state.step += 1
        steps_run += 1
        ema(state, cfg)
        # losses stay tensors (no host sync per step on GPU); read out at log steps and at the end
        d_losses.append(rec["loss_D"])
        g_losses.append(rec["loss_G"])
        for cb in callbacks:
            cb.on_step(state, rec)

    for cb in reversed(callbacks):
        cb.on_end(state)
    elapsed = time.perf_counter() - state.t_start
    dist.barrier()
    return {"steps": state.step, "img_seen": state.img_seen,
            "d_losses": torch.stack(d_losses).tolist() if d_losses else [],
            "g_losses": torch.stack(g_losses).tolist() if g_losses else [],
            "img_per_s": (state.img_seen - state.img_at_start) / max(elapsed, 1e-9), "out_dir": str(out),
            "checkpoint": str(out / "checkpoint.pt"), "G_ema": str(out / "G_ema.safetensors"),
            "rank": dist.rank, "world": dist.world, "G": G, "D": D, "G_ema_module": G_ema}


def train(cfg: TrainConfig | None = None, feature_net=None, callbacks=(), **overrides) -> dict:
    """Train a StyleGAN2 (thesis eq. 5-4 .. 5-7). ``train(TrainConfig(...))`` or ``train(**fields)``
    (``fields``: flat names of ``config.FLAT_FIELDS`` or sub-configs).

    ``feature_net`` (optional) replaces VGG-16 as ``F`` in eq. 5-6 (with ``path="vgg"``): a module
    mapping [-1, 1] images to features (tensor or list of tensors) with a ``distance(fa, fb)``
    method returning per-sample distances. ``callbacks``: extra ``callbacks.Callback`` objects.
    Writes into ``cfg.out_dir`` (rank 0 only): ``metrics.jsonl``, ``samples/*.png``,
    ``checkpoint.pt``, ``G_ema.safetensors``.
    Returns a summary dict (``d_losses`` per step, ``img_per_s``, paths)."""
    cfg = dataclasses.replace(cfg, **overrides) if cfg is not None else TrainConfig(**overrides)
    cfg.validate()
    dist = Dist(cfg.device)
    try:
        return training_loop(cfg, dist, feature_net, callbacks)
    finally:
        dist.close()
