"""``fe-fast teachers train``: render toy faces, train the toy attribute classifier and face parser,
print held-out accuracy per attribute and IoU per class, and save both teachers in ``--out``."""
from __future__ import annotations


def add_parser(sub):
    p = sub.add_parser("teachers", help="train the toy attribute / region teachers")
    tsub = p.add_subparsers(dest="teachers_command", metavar="ACTION")
    t = tsub.add_parser("train", help="train the toy attribute classifier and face parser on procedural faces")
    t.add_argument("--out", required=True, help="directory for attribute_classifier.pt and face_parser.pt")
    t.add_argument("--size", type=int, default=64, help="image size, 16..256 (default 64)")
    t.add_argument("--n", type=int, default=8000, help="training faces (default 8000)")
    t.add_argument("--n-val", type=int, default=1000, help="held-out faces (default 1000)")
    t.add_argument("--epochs", type=int, default=8, help="epochs of the attribute classifier (default 8)")
    t.add_argument("--parser-epochs", type=int, default=8, help="epochs of the face parser (default 8)")
    t.add_argument("--parser-n", type=int, default=3000,
                   help="training faces for the parser, the first N of the training set (default 3000)")
    t.add_argument("--width", type=int, default=16, help="base width of both networks (default 16)")
    t.add_argument("--seed", type=int, default=0, help="seed of the faces and the training (default 0)")
    t.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    t.add_argument("--augment", action="store_true",
                   help="train the attribute classifier on half-resolution and blurred copies too (robust labels "
                        "for a half-resolution generator's upsampled output)")
    t.add_argument("--no-progress", action="store_true", help="hide progress bars")
    t.set_defaults(func=run)
    p.set_defaults(func=_help(p))


def _help(p):
    def show(args) -> int:
        p.print_help()
        return 0

    return show


def run(args) -> int:
    from pathlib import Path

    from fe_fast.cli import UserError

    if args.n < 1 or args.n_val < 1:
        raise ValueError(f"--n and --n-val must be >= 1, got {args.n}, {args.n_val}")
    if args.epochs < 1 or args.parser_epochs < 1:
        raise ValueError("--epochs and --parser-epochs must be >= 1")
    if not 16 <= args.size <= 256:
        raise ValueError(f"--size must be between 16 and 256, got {args.size}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a directory")

    import torch

    from fe_fast.teachers.toy import ATTRIBUTE_CLASSIFIER_FILE, FACE_PARSER_FILE, save_teacher, train_toy_teachers

    if args.threads:
        torch.set_num_threads(args.threads)
    r = train_toy_teachers(n=args.n, n_val=args.n_val, size=args.size, epochs=args.epochs, parser_n=args.parser_n,
                           parser_epochs=args.parser_epochs, width=args.width, seed=args.seed,
                           progress=not args.no_progress, augment=args.augment)
    acc, ious, miou = r.accuracy, r.iou, r.mean_iou
    print(f"attribute classifier: held-out accuracy on {args.n_val} faces ({r.seconds['classifier'][0]:.0f} s)")
    for name, a in acc.items():
        print(f"  {name:12s} {100 * a:6.2f} %")
    print(f"  {'min':12s} {100 * min(acc.values()):6.2f} %   mean {100 * sum(acc.values()) / len(acc):6.2f} %")
    half = r.accuracy_half
    print(f"  through half resolution: min {100 * min(half.values()):6.2f} % ({min(half, key=half.get)}), "
          f"mean {100 * sum(half.values()) / len(half):6.2f} %")
    print(f"face parser: held-out IoU per class on {args.n_val} faces ({r.seconds['parser'][0]:.0f} s)")
    for name, v in ious.items():
        print(f"  {name:12s} {v:6.3f}")
    print(f"  {'mean IoU':12s} {miou:6.3f}")

    meta = {"size": args.size, "n_train": args.n, "n_val": args.n_val, "seed": args.seed}
    p1 = save_teacher(r.classifier, out / ATTRIBUTE_CLASSIFIER_FILE,
                      metrics={**meta, "accuracy": acc, "accuracy_half": half, "augment": args.augment})
    p2 = save_teacher(r.parser, out / FACE_PARSER_FILE, metrics={**meta, "iou": ious, "mean_iou": miou})
    total = sum(w for w, _ in r.seconds.values())
    print(f"saved {p1} and {p2} (render {r.seconds['render'][0]:.0f} s, total {total:.0f} s)")
    return 0
