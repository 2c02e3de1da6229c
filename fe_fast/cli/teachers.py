"""``fe-fast teachers train``: render toy faces, train the toy attribute classifier and face parser,
print held-out accuracy per attribute and IoU per class (``--json``: one object), and save both
teachers in ``--out``. The work is :func:`fe_fast.teachers.toy.train_toy_teachers`; options left
out take its defaults."""
from __future__ import annotations

from fe_fast.cli._common import HelpFormatter, add_common_options, apply_common, given, library_default, \
    library_option, out_folder, print_json

TRAIN = "fe_fast.teachers.toy:train_toy_teachers"
#: train_toy_teachers() parameters that are options of ``teachers train`` with the same name.
TRAIN_OPTIONS = ("size", "n", "n_val", "epochs", "parser_epochs", "parser_n", "width")


def add_parser(sub):
    p = sub.add_parser("teachers", help="train the toy attribute / region teachers")
    tsub = p.add_subparsers(dest="teachers_command", metavar="ACTION")
    t = tsub.add_parser("train", help="train the toy attribute classifier and face parser on procedural faces",
                        description=__doc__, formatter_class=HelpFormatter)
    opt = lambda *a, **k: library_option(t, *a, source=TRAIN, type=int, **k)  # noqa: E731
    opt("--size", help="image size, 16..256")
    opt("--n", help="training faces")
    opt("--n-val", help="held-out faces")
    opt("--epochs", help="epochs of the attribute classifier")
    opt("--parser-epochs", help="epochs of the face parser")
    opt("--parser-n", help="training faces for the parser, the first N of the training set")
    opt("--width", help="base width of both networks")
    t.add_argument("--augment", action="store_true",
                   help="train the attribute classifier on half-resolution and blurred copies too (robust labels "
                        "for a half-resolution generator's upsampled output)")
    add_common_options(t, out_required=True, out_help="folder for attribute_classifier.pt and face_parser.pt")
    t.set_defaults(func=run)
    p.set_defaults(func=_help(p))


def _help(p):
    def show(args) -> int:
        p.print_help()
        return 0

    return show


def run(args) -> int:
    apply_common(args)
    kw = given(args, TRAIN_OPTIONS)
    use = {k: kw.get(k, library_default(TRAIN, k)) for k in TRAIN_OPTIONS}  # the values the run will use
    if use["n"] < 1 or use["n_val"] < 1:
        raise ValueError(f"--n and --n-val must be >= 1, got {use['n']}, {use['n_val']}")
    if use["epochs"] < 1 or use["parser_epochs"] < 1:
        raise ValueError("--epochs and --parser-epochs must be >= 1")
    if not 16 <= use["size"] <= 256:
        raise ValueError(f"--size must be between 16 and 256, got {use['size']}")
    out = out_folder(args, create=False)

    from fe_fast.teachers.toy import ATTRIBUTE_CLASSIFIER_FILE, FACE_PARSER_FILE, save_teacher, train_toy_teachers

    if args.device is not None:
        kw["device"] = args.device
    r = train_toy_teachers(**kw, seed=args.seed, progress=args.progress, augment=args.augment)
    acc, ious, miou, half = r.accuracy, r.iou, r.mean_iou, r.accuracy_half
    meta = {"size": use["size"], "n_train": use["n"], "n_val": use["n_val"], "seed": args.seed}
    p1 = save_teacher(r.classifier, out / ATTRIBUTE_CLASSIFIER_FILE,
                      metrics={**meta, "accuracy": acc, "accuracy_half": half, "augment": args.augment})
    p2 = save_teacher(r.parser, out / FACE_PARSER_FILE, metrics={**meta, "iou": ious, "mean_iou": miou})
    total = sum(w for w, _ in r.seconds.values())
    if args.json:
        print_json({**meta, "accuracy": acc, "accuracy_half": half, "iou": ious, "mean_iou": miou,
                    "attribute_classifier": str(p1), "face_parser": str(p2),
                    "seconds": {k: w for k, (w, _) in r.seconds.items()}})
        return 0
    n_val = use["n_val"]
    print(f"attribute classifier: held-out accuracy on {n_val} faces ({r.seconds['classifier'][0]:.0f} s)")
    for name, a in acc.items():
        print(f"  {name:12s} {100 * a:6.2f} %")
    print(f"  {'min':12s} {100 * min(acc.values()):6.2f} %   mean {100 * sum(acc.values()) / len(acc):6.2f} %")
    print(f"  through half resolution: min {100 * min(half.values()):6.2f} % ({min(half, key=half.get)}), "
          f"mean {100 * sum(half.values()) / len(half):6.2f} %")
    print(f"face parser: held-out IoU per class on {n_val} faces ({r.seconds['parser'][0]:.0f} s)")
    for name, v in ious.items():
        print(f"  {name:12s} {v:6.3f}")
    print(f"  {'mean IoU':12s} {miou:6.3f}")
    print(f"saved {p1} and {p2} (render {r.seconds['render'][0]:.0f} s, total {total:.0f} s)")
    return 0
