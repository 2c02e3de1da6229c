"""Thesis Table 6-4: attribute dependency of S-space edits against the baselines.

For every attribute: locate its channels (thesis eq. 6-4..6-6, N generated samples, positives picked by
the classifier), then edit the same ``--n-eval`` held-out samples with a matched unit edit of
strength ``--alpha`` for every method and measure AD_t, AD_o and AD_t / AD_o (§6.3.2, logit stds
from the unedited held-out samples):

* StyleSpace: the top channel of StyleSpace's attribute detector, delta s = alpha * sigma_c (std over
  all samples);
* InterFaceGAN: w + alpha * sigma_n * n (linear SVM normal in W, sigma_n = std of w . n);
* GANSpace: w + alpha * sigma_i * v_i (the PCA component most correlated with the target logit);
* Single-channel: eq. 6-3 on the rank-1 channel, sigma = std over the positives;
* Multi-channel: eq. 6-7 on the top-k channels of the selected layer (alpha in sigma-normalised units).

Also reports the end-to-end time of locating one attribute (sampling, classifying the N samples,
per-sample gradients of the positives, s_grad_reduce, selection).

``make bench`` runs it on the shipped toy generator with the shipped reference judge
(``bench/judges/``): quick (``QUICK_ARGS``: 2 attributes, N = 200, 50 held-out samples) or full
(``FULL_ARGS``: the 8 attributes of bench/results/editing.md, N = 1000, 200 held-out). By hand::

  python bench/bm_editing.py [--generator G.safetensors] [--classifier attribute_classifier.pt] \\
      [--attributes smiling,eyeglasses,...] [--n 1000] [--n-eval 200] [--alpha 3] [--k 3] [--out table.md]

Without a trained toy-face generator, ``--random-generator RES`` uses a seeded, untrained generator
(a pipeline/timing run only: its AD numbers say nothing about the method). The report goes to
``bench/out/editing.md``.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchutil  # noqa: E402

DEFAULT_ATTRS = "smiling,eyeglasses,goatee,black_hair,blond_hair,old,beard,bangs"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--generator", help="generator checkpoint (default: the shipped toy-face generator "
                                        "fe_fast/data/toy_generator_32.safetensors)")
    ap.add_argument("--random-generator", type=int, metavar="RES",
                    help="no checkpoint: an untrained seeded generator of this resolution (pipeline run)")
    ap.add_argument("--channel-max", type=int, default=512, help="with --random-generator (default 512)")
    ap.add_argument("--classifier", default=str(benchutil.BENCH_DIR / "judges" / "toy_attribute_classifier_judge0.pt"),
                    help="attribute classifier (fe-fast teachers train; default: the shipped reference judge)")
    ap.add_argument("--attributes", default=DEFAULT_ATTRS)
    ap.add_argument("--n", type=int, default=1000, help="samples for locating (default 1000)")
    ap.add_argument("--n-eval", type=int, default=200, help="held-out samples for AD (default 200)")
    ap.add_argument("--alpha", type=float, default=3.0, help="matched unit edit strength (default 3)")
    ap.add_argument("--k", type=int, default=3)
    ap.add_argument("--max-positives", type=int, default=50)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--ablations", action="store_true",
                    help="also score the §6.3.4 ablations (global top-k, whole normalised gradient)")
    ap.add_argument("--out", help="markdown report (default bench/out/editing.md)")
    args = ap.parse_args(argv)
    report = benchutil.Report("editing", "S-space editing vs baselines (thesis Table 6-4)",
                              benchutil.script_command(__file__, sys.argv[1:] if argv is None else argv))
    if args.threads:
        torch.set_num_threads(args.threads)

    from fe_fast.editing.baselines import ganspace, interfacegan, stylespace_attribute
    from fe_fast.editing.edit import unit_delta
    from fe_fast.editing.locate import attribute_index, classify, flatten_s, locate, sample_styles, unflatten_s
    from fe_fast.editing.metrics import attribute_dependency
    from fe_fast.stylegan import Generator
    from fe_fast.stylegan.io import describe_config, load_generator
    from fe_fast.teachers.toy import load_teacher

    if args.generator and args.random_generator:
        ap.error("give at most one of --generator and --random-generator")
    if not args.generator and not args.random_generator:  # the shipped toy-face generator
        args.generator = str(Path(__file__).resolve().parents[1] / "fe_fast" / "data" / "toy_generator_32.safetensors")
    if args.generator:
        G = load_generator(args.generator)
        gdesc = f"{args.generator}: {describe_config(G)}"
    else:
        G = Generator(args.random_generator, channel_max=args.channel_max, seed=0).eval()
        gdesc = f"UNTRAINED seeded generator: {describe_config(G)} (pipeline/timing run, AD meaningless)"
    clf = load_teacher(args.classifier, kind="attribute_classifier")
    attrs = [a for a in args.attributes.split(",") if a]
    for a in attrs:
        attribute_index(clf, a)

    w_eval, s_eval = sample_styles(G, args.n_eval, seed=12345)
    before = classify(G, clf, s_eval)
    std = before.std(0).clamp_min(1e-6)
    flat_eval = flatten_s(s_eval)

    def ad_s(delta, t):
        after = classify(G, clf, unflatten_s(flat_eval + args.alpha * delta.to(flat_eval.dtype), G))
        return attribute_dependency(before, after, t, std)

    def ad_w(d, t):
        after = classify(G, clf, d.edit(G, w_eval, args.alpha))
        return attribute_dependency(before, after, t, std)

    methods = ["StyleSpace", "InterFaceGAN", "GANSpace", "Single-channel", "Multi-channel"]
    if args.ablations:
        methods += ["Global top-k (multi)", "Whole gradient"]
    table = {m: {} for m in methods}
    notes, located = [], []
    for a in attrs:
        t = attribute_index(clf, a)
        try:
            t0 = time.perf_counter()
            cs = locate(G, clf, a, n_samples=args.n, k=args.k, max_positives=args.max_positives)
            t_loc = time.perf_counter() - t0
        except ValueError as e:
            notes.append(f"{a}: {e}")
            continue
        located.append((a, cs, t_loc))
        table["Single-channel"][a] = ad_s(unit_delta(G, cs, "single"), t)
        table["Multi-channel"][a] = ad_s(unit_delta(G, cs, "multi"), t)
        if args.ablations:
            for name, sel in (("Global top-k (multi)", "global"), ("Whole gradient", "whole")):
                ab = locate(G, clf, a, n_samples=args.n, k=args.k, max_positives=args.max_positives, selection=sel)
                table[name][a] = ad_s(unit_delta(G, ab, "multi"), t)
        for name, fn in (("StyleSpace", lambda: ad_s(unit_delta(G, stylespace_attribute(
                G, clf, a, args.n, k=1, max_positives=args.max_positives), "single"), t)),
                         ("InterFaceGAN", lambda: ad_w(interfacegan(G, clf, a, args.n), t)),
                         ("GANSpace", lambda: ad_w(ganspace(G, clf, a, args.n), t))):
            try:
                table[name][a] = fn()
            except ValueError as e:
                notes.append(f"{a} / {name}: {e}")
        print(f"{a}: located in {t_loc:.1f} s ({cs.n_positives} positives of {args.n})", file=sys.stderr)

    lines = [f"Generator: {gdesc}", f"Classifier: {args.classifier} (attributes {list(clf.attributes)})",
             f"N = {args.n} locate samples, {args.n_eval} held-out eval samples, alpha = {args.alpha}, k = {args.k}, "
             f"torch threads = {torch.get_num_threads()}", "",
             "| Method | " + " | ".join(f"{a} (AD_t, AD_o, Ratio)" for a, _, _ in located) + " |",
             "|---|" + "---|" * len(located)]
    for m in methods:
        cells = []
        for a, _, _ in located:
            r = table[m].get(a)
            cells.append("n/a" if r is None else f"({r.ad_t:.2f}, {r.ad_o:.2f}, {r.ratio:.2f})")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    wins = 0
    for a, _, _ in located:
        ours = max((table[m][a].ratio for m in ("Single-channel", "Multi-channel") if a in table[m]), default=None)
        theirs = [table[m][a].ratio for m in ("StyleSpace", "InterFaceGAN") if a in table[m]]
        if ours is not None and theirs and ours > max(theirs):
            wins += 1
    lines += ["", f"Single- or multi-channel ratio above both StyleSpace and InterFaceGAN: {wins} of {len(located)} "
              "attributes", "", "Located channels (thesis Table 6-3 style) and end-to-end locate time:", "```"]
    for a, cs, t_loc in located:
        lines.append(cs.table())
        stages = ", ".join(f"{k} {v:.1f} s" for k, v in getattr(cs, "timings", {}).items())
        lines.append(f"locate time: {t_loc:.1f} s ({stages})")
    lines.append("```")
    if notes:
        lines += ["", "Not evaluated:"] + [f"- {n}" for n in notes]
    text = "\n".join(lines)
    print(text)
    report.add(text)
    report.write(args.out)
    return 0


#: ``make bench`` arguments (the full ones are bench/results/editing.md's protocol)
QUICK_ARGS = ["--attributes", "smiling,eyeglasses", "--n", "200", "--n-eval", "50"]
FULL_ARGS = ["--n", "1000", "--n-eval", "200", "--threads", "2"]


def test_editing():
    assert main(benchutil.pick(QUICK_ARGS, FULL_ARGS)) == 0


if __name__ == "__main__":
    sys.exit(main())
