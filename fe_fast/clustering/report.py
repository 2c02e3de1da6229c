"""The files a clustering run leaves behind: labels, codes, scores and a picture of the clusters.

:func:`write_report` is what ``fe-fast cluster`` calls after :meth:`DERC.fit
<fe_fast.clustering.DERC.fit>`: it writes ``labels.npy``, ``embedding.npy``, ``metrics.json``
(ACC eq. 4-12 and NMI eq. 4-13 when labels are known) and ``clusters.png`` (:func:`plot_clusters`)
into a folder and returns the run's summary (:func:`summary`).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from .metrics import clustering_accuracy, nmi

__all__ = ["summary", "plot_clusters", "write_report"]


def summary(model, y=None, seconds: Optional[float] = None, skipped: Sequence[str] = (),
            image_size=None) -> dict:
    """One JSON-ready dict for a fitted DERC: ``acc``/``nmi`` (None without ``y``), ``n_clusters``
    found, ``n_samples``, ``seconds`` (``seconds``, else the fit's own), ``stage_seconds`` (the fit's
    ``stage_seconds_``, rounded to ms), ``stage1_epochs``, ``rounds`` (stage-2 rounds run),
    ``image_size`` ([H, W] the model saw), ``skipped`` (unreadable input files) and ``params_used``
    (the parameters the fit ran with, ``"auto"`` defaults resolved: ``params_used_``)."""
    labels = model.labels_
    acc = score_nmi = None
    if y is not None:
        acc = clustering_accuracy(y, labels)
        score_nmi = nmi(y, labels)
    hist = model.history_
    total = float(model.stage_seconds_["total"] if seconds is None else seconds)
    return {
        "acc": acc,
        "nmi": score_nmi,
        "n_clusters": int(hist["final"]["n_clusters_found"]),
        "n_samples": int(labels.shape[0]),
        "seconds": round(total, 3),
        "stage_seconds": {k: round(float(v), 3) for k, v in model.stage_seconds_.items()},
        "stage1_epochs": int(hist["stage1_epochs"]),
        "rounds": len(hist["rounds"]),
        "image_size": list(image_size if image_size is not None else model.image_shape_[1:]),
        "skipped": list(skipped),
        "params_used": {k: (list(v) if isinstance(v, tuple) else v)
                        for k, v in getattr(model, "params_used_", {}).items()
                        if v is None or isinstance(v, (bool, int, float, str, tuple, list))},
    }


def plot_clusters(path, reduced: np.ndarray, labels: np.ndarray, images: np.ndarray, seed: int = 0,
                  per_cluster: int = 8) -> None:
    """Save a two-panel figure: the 2-D map coloured by cluster (the first two PCA axes when the
    clustering ran in more dimensions) and up to ``per_cluster`` random member images per cluster
    (one row each, 20 rows at most). ``images``: (N, C, H, W) in [0, 1]; noise (label -1) grey."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    reduced = np.asarray(reduced)
    if reduced.shape[1] != 2:
        from sklearn.decomposition import PCA

        reduced = PCA(2, random_state=seed).fit_transform(reduced)
    ids = [c for c in np.unique(labels) if c >= 0]
    fig = plt.figure(figsize=(13, 6.5))
    ax = fig.add_subplot(1, 2, 1)
    cmap = plt.get_cmap("tab20" if len(ids) > 10 else "tab10")
    noise = labels < 0
    if noise.any():
        ax.scatter(reduced[noise, 0], reduced[noise, 1], s=2, c="lightgrey", label="noise")
    for i, c in enumerate(ids):
        m = labels == c
        ax.scatter(reduced[m, 0], reduced[m, 1], s=2, color=cmap(i % cmap.N), label=str(c))
        cx, cy = np.median(reduced[m, 0]), np.median(reduced[m, 1])
        ax.text(cx, cy, str(c), fontsize=11, weight="bold", ha="center", va="center")
    ax.set_title(f"2-D map coloured by cluster ({len(ids)} clusters)")
    ax.set_xticks([])
    ax.set_yticks([])
    rng = np.random.default_rng(seed)
    rows = ids[:20]
    ax2 = fig.add_subplot(1, 2, 2)
    ax2.axis("off")
    ax2.set_title("samples per cluster (one row each)")
    if rows:
        _, C, H, W = images.shape
        grid = np.ones((len(rows) * (H + 1), per_cluster * (W + 1), 3), dtype=np.float32)
        for r, c in enumerate(rows):
            members = np.flatnonzero(labels == c)
            pick = rng.choice(members, size=min(per_cluster, members.size), replace=False)
            for j, idx in enumerate(pick):
                im = images[idx].transpose(1, 2, 0)
                if C != 3:
                    im = np.repeat(im[..., :1], 3, axis=2)
                grid[r * (H + 1) : r * (H + 1) + H, j * (W + 1) : j * (W + 1) + W] = im
        ax2.imshow(np.clip(grid, 0, 1), interpolation="nearest")
        for r, c in enumerate(rows):
            ax2.text(-2, r * (H + 1) + H / 2, str(c), ha="right", va="center", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(out, model, images: np.ndarray, y=None, seconds: Optional[float] = None,
                 skipped: Sequence[str] = (), plot: bool = True) -> dict:
    """Write a fitted DERC's outputs into folder ``out`` (created) and return :func:`summary`.

    ``labels.npy`` (N,), ``embedding.npy`` (N, latent_dim float32 codes), ``metrics.json`` (the
    summary, only when ``y`` is given), ``clusters.png`` (:func:`plot_clusters`, unless ``plot`` is
    False). ``images``: the (N, C, H, W) images in [0, 1] the model was fitted on."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "labels.npy", model.labels_)
    np.save(out / "embedding.npy", model.embedding_.astype(np.float32))
    result = summary(model, y=y, seconds=seconds, skipped=skipped)
    if y is not None:
        (out / "metrics.json").write_text(json.dumps(result, indent=2))
    if plot:
        plot_clusters(out / "clusters.png", model.reduced_, model.labels_, images, seed=model.random_state_)
    return result
