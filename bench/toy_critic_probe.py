"""Can the critic's architecture see an attribute at all? (issue 6, bangs)

Trains networks *supervised* on the 13 binary labels of 32x32 toy training faces (binary cross-entropy,
batch 16, Adam, the same images and steps for each) and reports per-attribute accuracy on held-out faces
against the majority rate:

* ``critic``: the StyleGAN2 residual discriminator of the toy preset (``Discriminator`` with an attribute
  head on its penultimate features, Adam lr 0.003, betas (0, 0.99) as in GAN training);
* ``plain critic``: :class:`PlainDiscriminator` (``--d-arch plain``) with its attribute head, Adam lr 0.001
  (the ``--d-lr`` of its GAN runs), betas (0, 0.99);
* ``judge``: the toy attribute classifier's architecture (conv-BN-ReLU, on the faces resized bicubic to
  64x64 as the judge reads them), Adam lr 0.003 default betas, and the same without BatchNorm.

A critic that stays at the majority rate on an attribute that the judge's architecture learns in the same
steps cannot tell faces with it from faces without it, however G draws it. ``--checkpoint`` adds a row
for the attribute head of a critic trained with ``--d-attr-weight`` inside a GAN run. Not in CI.
Example (bench/results/stylegan.md)::

    python bench/toy_critic_probe.py --steps 1500 --threads 2 --d-channel-bases 512 1024 \
        --checkpoint runs/dattr/checkpoint.pt
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fe_fast.datasets.toyfaces import BINARY_ATTRIBUTES  # noqa: E402
from fe_fast.stylegan.discriminator import Discriminator, PlainDiscriminator, build_discriminator  # noqa: E402
from fe_fast.stylegan.train import ToyFaceImages  # noqa: E402
from fe_fast.teachers.toy import AttributeClassifier  # noqa: E402


def _critic(channel_base: int):
    D = Discriminator(32, channel_base=channel_base, channel_max=64, n_attributes=len(BINARY_ATTRIBUTES))
    return D, D.attribute_logits, (lambda x: x), dict(lr=0.003, betas=(0.0, 0.99))


def _plain_critic(channel_base: int):
    D = PlainDiscriminator(32, channel_base=channel_base, channel_max=64, n_attributes=len(BINARY_ATTRIBUTES))
    return D, D.attribute_logits, (lambda x: x), dict(lr=0.001, betas=(0.0, 0.99))


def _judge(batch_norm: bool):
    C = AttributeClassifier(width=16)
    if not batch_norm:
        for stage in C.features:
            stage[1] = torch.nn.Identity()
    return C, C, (lambda x: F.interpolate(x, size=64, mode="bicubic", align_corners=False)), dict(lr=0.003)


def _held_out_accuracy(logits, prep, test_faces):
    with torch.no_grad():
        pred = torch.cat([logits(prep(test_faces.batch(range(i, min(i + 200, len(test_faces))))))
                          for i in range(0, len(test_faces), 200)]) > 0
    return (pred.float() == test_faces.labels).float().mean(0)


def supervised_accuracy(build, train_faces, test_faces, steps: int, batch: int = 16, seed: int = 0):
    """Train ``build()`` -> (module, logits_fn, input_transform, adam_kwargs) for ``steps`` minibatches;
    return per-attribute held-out accuracy [13] and the seconds it took."""
    torch.manual_seed(seed)
    net, logits, prep, adam = build()
    opt = torch.optim.Adam(net.parameters(), **adam)
    g = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    net.train()
    for _ in range(steps):
        idx = torch.randint(0, len(train_faces), (batch,), generator=g)
        loss = F.binary_cross_entropy_with_logits(logits(prep(train_faces.batch(idx))), train_faces.labels[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    net.eval()
    return _held_out_accuracy(logits, prep, test_faces), time.perf_counter() - t0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--train", type=int, default=10000, help="training faces (the toy preset's count)")
    ap.add_argument("--test", type=int, default=1000, help="held-out faces")
    ap.add_argument("--d-channel-bases", type=int, nargs="+", default=[512], help="critic widths to try")
    ap.add_argument("--checkpoint", default=None,
                    help="checkpoint.pt of a run with --d-attr-weight: also score its critic's attribute head")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    train_faces = ToyFaceImages(args.train, 32, seed=0)
    test_faces = ToyFaceImages(args.test, 32, seed=1)
    majority = torch.maximum(test_faces.labels.mean(0), 1 - test_faces.labels.mean(0))
    rows = [("majority rate", majority, 0.0)]
    if args.checkpoint:
        ck = torch.load(args.checkpoint, map_location="cpu", weights_only=True)
        D = build_discriminator(ck["D_config"])
        D.load_state_dict(ck["D"])
        D.eval()
        rows.append((f"GAN critic's head ({ck['img_seen']} images)", _held_out_accuracy(D.attribute_logits, lambda x: x,
                                                                                      test_faces), 0.0))
    for base in args.d_channel_bases:
        acc, sec = supervised_accuracy(lambda: _critic(base), train_faces, test_faces, args.steps)
        rows.append((f"critic, channel_base {base}", acc, sec))
        acc, sec = supervised_accuracy(lambda: _plain_critic(base), train_faces, test_faces, args.steps)
        rows.append((f"plain critic, channel_base {base}", acc, sec))
    for bn in (True, False):
        acc, sec = supervised_accuracy(lambda: _judge(bn), train_faces, test_faces, args.steps)
        rows.append(("judge's architecture" + ("" if bn else ", no BatchNorm"), acc, sec))
    print(f"{args.steps} steps of batch 16 on {args.train} faces; accuracy (%) on {args.test} held-out faces\n")
    print("| network | seconds | " + " | ".join(BINARY_ATTRIBUTES) + " |")
    print("| --- | --- | " + " | ".join("---" for _ in BINARY_ATTRIBUTES) + " |")
    for name, acc, sec in rows:
        print(f"| {name} | {sec:.0f} | " + " | ".join(f"{100 * float(a):.1f}" for a in acc) + " |")


if __name__ == "__main__":
    main()
