"""``fe-fast demo``: the product on bundled data only; writes ``demo-out/`` with PNGs and a
``summary.md`` of every number it printed."""
from __future__ import annotations

import time
from pathlib import Path


def add_parser(sub):
    p = sub.add_parser("demo", help="run every method on bundled data and write demo-out/")
    p.add_argument("--out", default="demo-out", help="output folder (default: demo-out)")
    p.add_argument("--only", default=None, help="comma-separated stages to run (default: all)")
    p.set_defaults(func=run)


def _kernels(out: Path) -> list:
    """Nearest-neighbour kernel against dense torch.cdist on the HOUV workload (32 x 2048 points)."""
    import torch

    import fe_fast.ops as ops

    g = torch.Generator().manual_seed(0)
    x = torch.randn(32, 2048, 3, generator=g)
    q = torch.randn(2048, 3, generator=g)
    t0 = time.perf_counter()
    dist2, idx = ops.knn(x, q)
    ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    ref = torch.cdist(x, q.expand(32, -1, -1)).pow(2).min(dim=2)
    dense = time.perf_counter() - t0
    same = float((ref.values - dist2).abs().max())
    return [
        "| kernel | seconds |",
        "| --- | --- |",
        f"| fe_fast.ops.knn (32 x 2048 -> 2048, 3D) | {ours:.4f} |",
        f"| torch.cdist + min, same problem | {dense:.4f} |",
        "",
        f"max |difference| of squared distances: {same:.2e}",
    ]


def _registration(out: Path) -> list:
    """HOUV, HOUV_pri, HOUV+vis and Open3D's ICP / FGR / RANSAC+ICP on the bundled real bunny scan pair."""
    from fe_fast.registration.demo import run_demo

    rows = run_demo(seed=0, progress=False)
    lines = ["| method | rotation error (deg) | translation error (mm) | RMSE (mm) | recall hit | seconds |",
             "| --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['method']} | {r['rot_err']:.2f} | {1000 * r['trans_err']:.2f} | "
                     f"{1000 * r['rmse']:.2f} | {'yes' if r['success'] else 'no'} | {r['seconds']:.2f} |")
    return lines


def _clustering(out: Path) -> list:
    """DERC (:class:`fe_fast.clustering.DERC`, what ``fe-fast cluster`` runs) against k-means on
    pixels, on scikit-learn's 8x8 digits."""
    import json

    import numpy as np
    from sklearn.cluster import KMeans

    from fe_fast.clustering import DERC, clustering_accuracy, nmi
    from fe_fast.clustering.derc import prepare_images
    from fe_fast.datasets.digits import load_digits_8x8

    X, y = load_digits_8x8()
    t0 = time.perf_counter()
    km = KMeans(10, n_init=10, random_state=0).fit_predict(X.reshape(len(X), -1).astype(float))
    t_km = time.perf_counter() - t0
    folder = out / "clustering"
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    images = prepare_images(X, name="digits")
    from fe_fast.clustering.presets import PRESETS

    # the thesis's algorithm, shortened (DERC's own defaults follow the data: fe_fast.clustering.auto)
    model = DERC(10, **dict(PRESETS["thesis"], stage1_epochs=8, stage2_rounds=1, batch_size=32), seed=0,
                 progress=False)
    labels = model.fit_predict(images)
    seconds = time.perf_counter() - t0
    m = {"acc": clustering_accuracy(y, labels), "nmi": nmi(y, labels), "seconds": seconds,
         "n_clusters": int(model.history_["final"]["n_clusters_found"])}
    np.save(folder / "labels.npy", labels)
    (folder / "metrics.json").write_text(json.dumps(m, indent=2))
    _cluster_map(folder / "clusters.png", model, labels, images, m["n_clusters"])
    return [
        "| method | ACC | NMI | seconds |",
        "| --- | --- | --- | --- |",
        f"| k-means on pixels | {clustering_accuracy(y, km):.4f} | {nmi(y, km):.4f} | {t_km:.1f} |",
        f"| DERC, thesis preset (8 epochs, 1 round, batch 32) | {m['acc']:.4f} | {m['nmi']:.4f} | {m['seconds']:.1f} |",
        "",
        f"cluster map: {folder / 'clusters.png'}",
    ]


def _cluster_map(path, model, labels, images, k_found):
    """The 2-D map coloured by cluster with sample images per cluster (as ``fe-fast cluster`` draws it):
    the clustering report's plot, where the library has it."""
    try:
        from fe_fast.clustering.report import plot_clusters
    except ImportError:  # before the clustering report moved out of the command (then delete this branch)
        plot_clusters = None
    if plot_clusters is not None:
        plot_clusters(path, model.reduced_, labels, images, seed=0)
        return
    from fe_fast.cli.cluster import _plot

    reduced = model.reduced_
    if reduced.shape[1] != 2:
        from sklearn.decomposition import PCA

        reduced = PCA(2, random_state=0).fit_transform(reduced)
    _plot(path, reduced, labels, images, k_found, seed=0)


#: The shipped toy-face generator (``docs/stylegan.md`` gives the command that produced it).
TOY_GENERATOR = Path(__file__).resolve().parent.parent / "data" / "toy_generator_32.safetensors"
_STATE: dict = {}  # models shared by the later stages of one demo run


def _teacher(out: Path):
    """The toy attribute classifier at 32x32 (trained here, ~1 min)."""
    if "classifier" not in _STATE:
        import torch

        from fe_fast.datasets.toyfaces import ToyFaces
        from fe_fast.teachers.toy import AttributeClassifier, attribute_accuracy, save_teacher, \
            train_attribute_classifier

        train, val = ToyFaces(4000, size=32, seed=0), ToyFaces(500, size=32, seed=1_000_003)
        xi, _, _ = train.arrays()
        vi, _, _ = val.arrays()
        torch.manual_seed(0)
        clf, _ = train_attribute_classifier(xi, train.attributes, AttributeClassifier(width=16), epochs=6, seed=0)
        acc = attribute_accuracy(clf, vi, val.attributes)
        save_teacher(clf, out / "faces" / "attribute_classifier.pt", {"accuracy": acc})
        _STATE["classifier"], _STATE["accuracy"] = clf, acc
    return _STATE["classifier"]


def _generator(out: Path):
    """The shipped toy-face generator, or (if the file is missing) a small one trained for 2 minutes."""
    if "G" not in _STATE:
        from fe_fast.stylegan.io import load_generator

        if TOY_GENERATOR.exists():
            _STATE["G"], _STATE["G_source"] = load_generator(TOY_GENERATOR), f"shipped {TOY_GENERATOR.name}"
        else:
            from fe_fast.stylegan.train import train

            r = train(out_dir=str(out / "faces" / "gan"), resolution=32, toy_images=4000, z_dim=64, w_dim=64,
                      n_mlp=2, channel_max=64, batch=16, total_img=10**9, max_seconds=120, progress=False,
                      sample_every=0, checkpoint_every=0)
            _STATE["G"] = r["G_ema_module"].eval()
            _STATE["G_source"] = f"trained here for 2 min ({r['img_seen']} images; {TOY_GENERATOR} missing)"
    return _STATE["G"]


def _faces(out: Path) -> list:
    """Toy attribute classifier, generator samples, channel localisation for two attributes
    (thesis eq. 6-4..6-6) and an edit sweep for each (eq. 6-3)."""
    from fe_fast.editing.edit import edit, save_grid, sweep
    from fe_fast.editing.locate import attribute_index, classify, locate, sample_styles

    clf = _teacher(out)
    G = _generator(out)
    acc = _STATE["accuracy"]
    folder = out / "faces"
    folder.mkdir(parents=True, exist_ok=True)
    imgs = G.sample(16, seed=1)
    save_grid(imgs.reshape(2, 8, *imgs.shape[1:]), folder / "samples.png")
    lines = [f"generator: {_STATE['G_source']} ({G.synthesis.resolution}x{G.synthesis.resolution}, "
             f"{len(G.synthesis.s_layers)} style layers)",
             f"attribute classifier (32x32, 4000 faces, 6 epochs): held-out accuracy smiling "
             f"{acc['smiling']:.3f}, eyeglasses {acc['eyeglasses']:.3f}, mean {sum(acc.values()) / len(acc):.3f}",
             "", "| attribute | channel (layer:channel) | score | target logit change at +3 units | sweep |",
             "| --- | --- | --- | --- | --- |"]
    _, s_eval = sample_styles(G, 32, seed=7)
    logits_before = classify(G, clf, s_eval)  # every attribute, once
    for attr in ("smiling", "eyeglasses"):
        ch = locate(G, clf, attr, n_samples=300, k=3, seed=0, progress=False)
        _STATE[f"{attr}_channels"] = ch
        top = ch.top(1)
        i = attribute_index(clf, attr)
        imgs = sweep(G, [t[:4] for t in s_eval], top, [-6, -3, 0, 3, 6])  # [alphas, samples, ...]
        save_grid(imgs.transpose(0, 1), folder / f"sweep_{attr}.png")
        after = classify(G, clf, edit(G, s_eval, top, 3.0))[:, i]
        c, change = top[0], float((after - logits_before[:, i]).mean())
        lines.append(f"| {attr} | {c.layer}:{c.channel} | {c.score:.3g} | {change:+.2f} | "
                     f"{folder / f'sweep_{attr}.png'} |")
    lines += ["", f"samples: {folder / 'samples.png'}"]
    return lines


def _photo(out: Path) -> list:
    """A toy-face photo through the whole pipeline: landmarks -> pose -> FFHQ crop -> projection
    into S -> edit (smiling) -> paste back."""
    import numpy as np

    from fe_fast.datasets.toyfaces import render_with_labels, sample_params
    from fe_fast.editing.locate import locate
    from fe_fast.editing.pipeline import edit_photo

    clf, G = _teacher(out), _generator(out)
    params, _ = sample_params(1, seed=21, attributes={"yaw": 20.0, "pitch": -5.0, "roll": 8.0, "smiling": 0})
    r = render_with_labels(params[0], 160)
    ch = _STATE.get("smiling_channels") or locate(G, clf, "smiling", n_samples=300, k=3, seed=0, progress=False)
    res = edit_photo(r.image, G, ch.top(1), 4.0, landmarks=r.landmarks, steps=150, progress=False)
    folder = out / "photo"
    folder.mkdir(parents=True, exist_ok=True)
    res.grid(height=160).save(folder / "pipeline.png")
    res.result.save(folder / "edited.png")
    truth = np.array([params[0]["yaw"], params[0]["pitch"], params[0]["roll"]])
    est = np.array([res.pose.yaw, res.pose.pitch, res.pose.roll])
    return ["| step | result |", "| --- | --- |",
            f"| pose (yaw, pitch, roll), truth {truth.round(1).tolist()} | {est.round(1).tolist()} |",
            f"| projection into S ({res.projection.perceptual}, 150 steps) | PSNR {res.projection.psnr:.1f} dB, "
            f"{res.projection.seconds:.1f} s |",
            "| edit | smiling, top channel, +4 units |",
            "", f"strip (photo, crop, reconstruction, edited, result): {folder / 'pipeline.png'}"]


STAGES = {"kernels": _kernels, "registration": _registration, "clustering": _clustering, "faces": _faces,
          "photo": _photo}


def run(args) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    names = list(STAGES) if not args.only else [s.strip() for s in args.only.split(",")]
    unknown = [n for n in names if n not in STAGES]
    if unknown:
        raise ValueError(f"unknown demo stage(s) {unknown}; choose from {list(STAGES)}")
    summary = ["# fe-fast demo", ""]
    for name in names:
        print(f"== {name} ==", flush=True)
        t0 = time.perf_counter()
        lines = STAGES[name](out)
        print("\n".join(lines), flush=True)
        summary += [f"## {name} ({time.perf_counter() - t0:.1f} s)", "", *lines, ""]
    (out / "summary.md").write_text("\n".join(summary) + "\n", encoding="utf-8")
    print(f"wrote {out / 'summary.md'}")
    return 0
