"""``fe-fast locate``: the S channels of an attribute (classifier teacher, thesis eq. 6-4..6-6) or of
a region (parser teacher, eq. 6-2), printed as thesis Table 6-3 or as JSON
(list of {layer, channel, rank, score}). Under ``torchrun --nproc_per_node N -m fe_fast locate ...`` the
samples are shared out over the ranks (gloo) and rank 0 prints the one-process result."""
from __future__ import annotations

from fe_fast.cli._common import add_common_options, apply_common, deprecated_alias, out_folder, print_json


def add_teacher_args(p, required: bool = True):
    """Teacher and locating options (``locate``, ``edit``, ``edit-image``); the parser must already
    have the shared options (the samples' seed is ``--seed``)."""
    p.add_argument("--classifier", help="attribute classifier file (fe-fast teachers train)")
    p.add_argument("--attribute", help="attribute to locate, e.g. smiling (with --classifier)")
    p.add_argument("--parser", help="face parser file (fe-fast teachers train), for --region")
    p.add_argument("--region", help="region to locate, e.g. mouth (with --parser)")
    p.add_argument("--channels-per-layer", dest="k", type=int, default=3,
                   help="channels per selected layer (eq. 6-6, default 3)")
    deprecated_alias(p, "--k", "--channels-per-layer")
    p.add_argument("--n", "--n-samples", dest="n", type=int, default=1000,
                   help="generated samples (default 1000; spell it --n-samples after torchrun, whose own "
                        "options --nnodes/--nproc-per-node make --n ambiguous)")
    p.add_argument("--layers", default="auto",
                   help="'auto' (most responding layer), 'all', or comma-separated layer indices")
    p.add_argument("--n-layers", type=int, default=1, help="layers picked by --layers auto (default 1)")
    p.add_argument("--selection", default="layerwise", choices=("layerwise", "global", "whole"),
                   help="layer-then-channel (thesis) or the §6.3.4 ablations")
    p.add_argument("--threshold", type=float, default=0.5, help="positive when p > threshold (default 0.5)")
    p.add_argument("--max-positives", type=int, default=50, help="most confident positives kept (default 50)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="samples per backward pass (default: from the generator's size, 16 small, 2 at 1024)")
    p.add_argument("--teacher-batch-size", type=int, default=None,
                   help="samples per teacher-pass forward (default: from the generator's size, 64 small, 5 at 1024)")
    p.add_argument("--cache-dir", help="keep finished chunks here; the same command again resumes an "
                                       "interrupted run (refused if the arguments differ)")
    deprecated_alias(p, "--sample-seed", "--seed")  # the seed of the N samples is the run's seed


def add_parser(sub):
    p = sub.add_parser("locate", help="locate the S-space channels of an attribute or a region")
    p.add_argument("--generator", required=True, help="generator checkpoint (.safetensors, rosinality .pt, NVlabs .pkl)")
    add_common_options(p, out_help="folder for channels.json (what --json prints: a list of {layer, channel, rank, "
                                   "score})")
    add_teacher_args(p)
    p.set_defaults(func=run)


def parse_layers(spec: str):
    if spec in ("auto", "all"):
        return spec
    try:
        return [int(x) for x in spec.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"--layers must be 'auto', 'all' or comma-separated integers, got {spec!r}") from None


def locate_from_args(args, G):
    """Load the teacher named by the arguments and run :func:`fe_fast.editing.locate`."""
    from fe_fast.editing.locate import locate
    from fe_fast.teachers.toy import load_teacher

    if bool(args.classifier) == bool(args.parser):
        raise ValueError("give exactly one teacher: --classifier (with --attribute) or --parser (with --region)")
    if args.classifier:
        if not args.attribute:
            raise ValueError("--classifier needs --attribute NAME")
        teacher, target = load_teacher(args.classifier, kind="attribute_classifier"), args.attribute
    else:
        if not args.region:
            raise ValueError("--parser needs --region NAME")
        teacher, target = load_teacher(args.parser, kind="face_parser"), args.region
    if getattr(args, "device", None) is not None:
        teacher = teacher.to(args.device)
    if args.n < 1:
        raise ValueError(f"--n must be >= 1, got {args.n}")
    if args.batch_size is not None and args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.teacher_batch_size is not None and args.teacher_batch_size < 1:
        raise ValueError(f"--teacher-batch-size must be >= 1, got {args.teacher_batch_size}")
    if not 0.0 <= args.threshold < 1.0:
        raise ValueError(f"--threshold must be in [0, 1), got {args.threshold}")
    return locate(G, teacher, target, n_samples=args.n, k=args.k, layers=parse_layers(args.layers),
                  n_layers=args.n_layers, selection=args.selection, threshold=args.threshold,
                  max_positives=args.max_positives, batch_size=args.batch_size,
                  teacher_batch_size=args.teacher_batch_size, seed=args.seed,
                  cache_dir=args.cache_dir, progress=args.progress)


def channels_from_args(args, G, channels_form: str = "LAYER:CHANNEL,..."):
    """The channels to edit: ``--channels`` parsed against G, or located with the teacher the
    arguments name; exactly one of the two must be given."""
    if bool(args.channels) == bool(args.classifier or args.parser):
        raise ValueError(f"give either --channels {channels_form} or a teacher (--classifier/--attribute or "
                         "--parser/--region) to locate the channels")
    if args.channels:
        from fe_fast.editing.locate import parse_channels

        return parse_channels(args.channels, G)
    return locate_from_args(args, G)


def load_generator_on(args):
    """The generator of ``--generator``, on ``--device`` when given."""
    from fe_fast.stylegan.io import load_generator

    G = load_generator(args.generator)
    return G if args.device is None else G.to(args.device)


def run(args) -> int:
    import json

    from fe_fast._distributed import init_from_env, is_main, shutdown

    apply_common(args)
    folder = out_folder(args, create=False)
    G = load_generator_on(args)
    joined = init_from_env(next(G.parameters()).device)  # under torchrun: one shard of the samples per rank
    try:
        cs = locate_from_args(args, G)
        if is_main():
            if folder is not None:
                folder.mkdir(parents=True, exist_ok=True)
                (folder / "channels.json").write_text(json.dumps(cs.to_json(), indent=2) + "\n")
            if args.json:
                print_json({"channels": cs.to_json(), "seconds": cs.seconds})
            else:
                print(cs.table())
                print(f"located in {cs.seconds:.1f} s")
    finally:
        if joined:
            shutdown()
    return 0
