"""``fe-fast train-gan``: train a StyleGAN2 with the thesis's losses (ch. 5, eq. 5-4 .. 5-7).

Single process: ``fe-fast train-gan --data toyfaces --resolution 32 --out runs/toy``.
Several processes: ``torchrun --nproc_per_node 2 -m fe_fast.stylegan.train ...`` (same options) (gloo on CPU,
nccl on GPU)."""
from __future__ import annotations

from fe_fast.cli._common import add_common_options, apply_common, deprecated_alias, out_folder, preset_values, \
    print_json, record_defaults


def add_parser(sub):
    p = sub.add_parser("train-gan", help="train a StyleGAN2 generator (WGAN-GP / logistic, path loss, EMA)",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="toyfaces", help="'toyfaces' (the toy face world) or a folder / .zip of images")
    p.add_argument("--resolution", type=int, default=32, help="power of two, 8..1024")
    p.add_argument("--toy-images", type=int, default=20000, help="number of toy faces (data=toyfaces)")
    p.add_argument("--xflip", action="store_true", help="random horizontal flips of real images")
    p.add_argument("--z-dim", type=int, default=512)
    p.add_argument("--w-dim", type=int, default=512)
    p.add_argument("--n-mlp", type=int, default=8)
    p.add_argument("--lr-mlp", type=float, default=0.01,
                   help="learning-rate multiplier of the mapping network's layers (StyleGAN2: 0.01)")
    p.add_argument("--channel-multiplier", type=float, default=2)
    p.add_argument("--channel-max", type=int, default=512)
    p.add_argument("--channel-base", type=int, default=None,
                   help="channels at resolution r = min(channel_base // r, channel_max) (default 16384 x multiplier)")
    p.add_argument("--d-channel-base", type=int, default=None,
                   help="the discriminator's channel_base, when it should differ from the generator's")
    p.add_argument("--mbstd-group", type=int, default=4,
                   help="discriminator minibatch-stddev group size (images per group; StyleGAN2: 4)")
    p.add_argument("--d-scales", type=int, default=1,
                   help="critics at full, 1/2, 1/4 ... resolution (multi-scale discriminator; "
                        "1 = StyleGAN2's single critic)")
    p.add_argument("--d-arch", choices=["resnet", "plain"], default="resnet",
                   help="critic layout: resnet = StyleGAN2's residual critic; plain = plain stride-2 convs on the "
                        "2x-upsampled image (sees the toy faces' 8-pixel fringe; bench/results/stylegan.md)")
    p.add_argument("--batch-size", dest="batch", type=int, default=32, help="global batch (split over processes)")
    deprecated_alias(p, "--batch", "--batch-size")
    p.add_argument("--kimg", type=float, default=100, help="stop after this many thousand real images")
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--minutes", type=float, default=None,
                   help="stop after this many minutes of training (checkpoint and samples written)")
    p.add_argument("--lr", type=float, default=0.002)
    p.add_argument("--d-lr", type=float, default=None, help="the discriminator's learning rate (default: --lr)")
    p.add_argument("--lr-rampdown", type=float, default=0.0,
                   help="last fraction of the run (--kimg or --minutes, whichever is nearer) over which both "
                        "learning rates fall to 0 along a half cosine (0: constant)")
    p.add_argument("--loss", choices=["wgan-gp", "logistic"], default="wgan-gp",
                   help="wgan-gp: thesis eq. 5-4 (default); logistic: non-saturating + lazy R1")
    p.add_argument("--gp-lambda", type=float, default=10.0)
    p.add_argument("--r1-gamma", type=float, default=10.0)
    p.add_argument("--r1-every", type=int, default=16, help="lazy R1 interval in steps (--loss logistic)")
    p.add_argument("--path", choices=["pl", "vgg", "none"], default="pl",
                   help="pl: StyleGAN2 path-length regulariser (default stand-in); vgg: eq. 5-6 with VGG-16")
    p.add_argument("--vgg-weights", default=None, help="torchvision VGG-16 state dict (needed by --path vgg)")
    p.add_argument("--path-alpha", type=float, default=0.5, help="alpha of eq. 5-7")
    p.add_argument("--path-epsilon", type=float, default=0.1, help="epsilon of eq. 5-6")
    p.add_argument("--path-every", type=int, default=4)
    p.add_argument("--style-mixing", type=float, default=0.9)
    p.add_argument("--d-attr-weight", type=float, default=0.0,
                   help="> 0: the discriminator also learns the toy faces' 13 attributes of real images "
                        "(auxiliary BCE on its features; toy faces only)")
    p.add_argument("--noise-mode", choices=["random", "none"], default="random",
                   help="the generator's noise inputs while training: random (StyleGAN2) or none (off)")
    p.add_argument("--ema-kimg", type=float, default=10.0, help="G EMA half-life in thousands of images")
    p.add_argument("--workers", type=int, default=0, help="data loader worker processes")
    p.add_argument("--log-every", type=int, default=10, help="steps between metrics.jsonl records")
    p.add_argument("--sample-every", type=int, default=5000, help="images between sample grids (0: never)")
    p.add_argument("--checkpoint-every", type=int, default=10000, help="images between checkpoints")
    p.add_argument("--snapshot-every", type=int, default=0,
                   help="images between kept copies of G_ema (snapshots/G_ema_<images>.safetensors; 0: none)")
    p.add_argument("--fid-every", type=int, default=0, help="images between FID evaluations (0: never)")
    p.add_argument("--fid-images", type=int, default=1000)
    p.add_argument("--inception-weights", default=None,
                   help="pytorch-fid pt_inception-2015-12-05-6726825d.pth (else toy-face features, labelled fid_toy)")
    p.add_argument("--resume", default=None, help="checkpoint.pt to resume, or 'auto'")
    p.add_argument("--preset", choices=["toy32"], default=None,
                   help="toy32: the CPU recipe for 32x32 toy faces (narrow nets, logistic + lazy R1; see "
                        "docs/stylegan.md); options given explicitly still win")
    add_common_options(p, out_default="stylegan-run",
                       out_help="output folder (metrics.jsonl, samples/, checkpoint.pt, G_ema.safetensors)",
                       device_help="auto, cpu, cuda, cuda:1 ...")
    record_defaults(p)
    p.set_defaults(func=run)


def run(args) -> int:
    import os

    from fe_fast.cli import UserError
    from fe_fast.stylegan.train import TrainConfig, train

    apply_common(args)
    out_folder(args, create=False)  # train() creates it (rank 0)
    if args.data != "toyfaces" and not os.path.exists(args.data):
        raise FileNotFoundError(f"training data not found: {args.data}")
    for name in ("vgg_weights", "inception_weights"):
        v = getattr(args, name)
        if v is not None and not os.path.isfile(v):
            raise FileNotFoundError(f"--{name.replace('_', '-')}: file not found: {v}")
    if args.preset is not None:
        from fe_fast.stylegan.train import PRESETS

        # the preset replaces only the options left at their default
        vars(args).update(preset_values(args, PRESETS[args.preset], rename={"ema_img": ("ema_kimg", _per_k)}))
    if args.resolution < 8 or args.resolution & (args.resolution - 1):
        raise UserError(f"--resolution must be a power of two >= 8, got {args.resolution}")
    fields = dict(out_dir=args.out, data=args.data, resolution=args.resolution, toy_images=args.toy_images,
                  xflip=args.xflip, z_dim=args.z_dim, w_dim=args.w_dim, n_mlp=args.n_mlp,
                  lr_mlp=args.lr_mlp, channel_multiplier=args.channel_multiplier, channel_max=args.channel_max,
                  channel_base=args.channel_base, d_channel_base=args.d_channel_base,
                  mbstd_group=args.mbstd_group, d_scales=args.d_scales, d_arch=args.d_arch, batch=args.batch,
                  total_img=int(args.kimg * 1000), max_steps=args.max_steps,
                  max_seconds=None if args.minutes is None else args.minutes * 60, lr=args.lr, d_lr=args.d_lr,
                  lr_rampdown=args.lr_rampdown,
                  loss=args.loss,
                  gp_lambda=args.gp_lambda, r1_gamma=args.r1_gamma, r1_every=args.r1_every, path=args.path,
                  vgg_weights=args.vgg_weights, path_alpha=args.path_alpha, path_epsilon=args.path_epsilon,
                  path_every=args.path_every, style_mixing=args.style_mixing,
                  noise_mode=args.noise_mode, d_attr_weight=args.d_attr_weight, ema_img=args.ema_kimg * 1000,
                  seed=args.seed, device=args.device, workers=args.workers, log_every=args.log_every,
                  sample_every=args.sample_every, checkpoint_every=args.checkpoint_every,
                  snapshot_every=args.snapshot_every,
                  fid_every=args.fid_every, fid_images=args.fid_images,
                  inception_weights=args.inception_weights, resume=args.resume,
                  progress=args.progress)
    if args.device is None:
        del fields["device"]  # TrainConfig's default
    result = train(TrainConfig(**fields))
    if result["rank"] == 0 and args.json:
        print_json({k: result[k] for k in ("steps", "img_seen", "img_per_s", "world", "out_dir", "checkpoint",
                                           "G_ema")})
    elif result["rank"] == 0:
        print(f"trained {result['steps']} steps ({result['img_seen']} images, {result['img_per_s']:.1f} img/s "
              f"on {result['world']} process(es)); generator: {result['G_ema']}")
    return 0


def _per_k(v):
    """images -> thousands of images (a preset's ``ema_img`` as ``--ema-kimg``)."""
    return v / 1000
