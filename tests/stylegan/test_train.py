"""Training (thesis eq. 5-4 .. 5-7), checkpoints/resume, the CLI, FID (eq. 5-8) and 2-process DDP."""
import json
import math
import os
import socket

import numpy as np
import pytest
import torch

from fe_fast.stylegan import Generator
from fe_fast.stylegan.io import load_generator
from fe_fast.stylegan.metrics import feature_statistics, fid, frechet_distance
from fe_fast.stylegan.train import TrainConfig, lr_rampdown_factor, path_loss, slerp, train

TINY = dict(resolution=16, toy_images=48, z_dim=32, w_dim=32, n_mlp=2, channel_max=16, batch=8,
            progress=False, sample_every=0, checkpoint_every=0, log_every=1)


def test_wgan_gp_steps_reduce_discriminator_loss_on_toy_faces(tmp_path):
    r = train(out_dir=str(tmp_path), total_img=8 * 10, **TINY)
    d = r["d_losses"]
    assert len(d) == 10 and all(math.isfinite(x) for x in d)
    assert np.mean(d[-3:]) < np.mean(d[:3]) - 0.5, d
    recs = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
    assert {"loss_D", "loss_G", "gp_real", "gp_fake", "wdist", "img_per_s"} <= set(recs[-1])
    assert any("loss_path" in rec for rec in recs)  # the path-length stand-in of eq. 5-6 ran
    assert (tmp_path / "samples" / "final.png").exists()


def test_logistic_with_lazy_r1_reduces_discriminator_loss(tmp_path):
    r = train(out_dir=str(tmp_path), total_img=8 * 8, loss="logistic", r1_every=2, path="none",
              **TINY)
    d = r["d_losses"]
    assert np.mean(d[-3:]) < np.mean(d[:2]), d


@pytest.mark.parametrize("loss", ["logistic", "wgan-gp"])
def test_multiscale_critic_trains_and_reloads_from_its_checkpoint(tmp_path, loss):
    from fe_fast.stylegan.discriminator import MultiScaleDiscriminator, build_discriminator

    r = train(out_dir=str(tmp_path), total_img=8 * 10, loss=loss, r1_every=2, path="none", d_scales=2, **TINY)
    d = r["d_losses"]
    assert len(d) == 10 and all(math.isfinite(x) for x in d)
    assert np.mean(d[-4:]) < np.mean(d[:4]), d
    ck = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert ck["D_config"]["scales"] == 2
    D = build_discriminator(ck["D_config"])
    D.load_state_dict(ck["D"])
    assert isinstance(D, MultiScaleDiscriminator) and D(torch.zeros(2, 3, 16, 16)).shape == (2, 2)
    with pytest.raises(ValueError, match="d_scales"):
        TrainConfig(resolution=16, d_scales=3).validate()


@pytest.mark.parametrize("loss", ["logistic", "wgan-gp"])
def test_plain_critic_with_its_own_learning_rate_trains_and_reloads(tmp_path, loss):
    from fe_fast.stylegan.discriminator import PlainDiscriminator, build_discriminator

    r = train(out_dir=str(tmp_path), total_img=8 * 10, loss=loss, r1_every=2, path="none", d_arch="plain",
              d_lr=0.001, lr=0.003, **TINY)
    d = r["d_losses"]
    assert len(d) == 10 and all(math.isfinite(x) for x in d)
    assert np.mean(d[-4:]) < np.mean(d[:4]), d
    ck = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    D = build_discriminator(ck["D_config"])
    D.load_state_dict(ck["D"])
    assert isinstance(D, PlainDiscriminator) and D(torch.zeros(2, 3, 16, 16)).shape == (2, 1)
    ratio = 2 / 3 if loss == "logistic" else 1.0  # lazy-R1 correction of Adam's lr (r1_every 2)
    assert ck["opt_D"]["param_groups"][0]["lr"] == pytest.approx(0.001 * ratio)
    assert ck["opt_G"]["param_groups"][0]["lr"] == pytest.approx(0.003)
    with pytest.raises(ValueError, match="d_arch"):
        TrainConfig(d_arch="vgg").validate()
    with pytest.raises(ValueError, match="single-scale"):
        TrainConfig(d_arch="plain", d_scales=2).validate()
    with pytest.raises(ValueError, match="d_lr"):
        TrainConfig(d_lr=0).validate()


def test_lr_rampdown_lowers_both_learning_rates_over_the_end_of_the_run(tmp_path):
    assert [lr_rampdown_factor(p, 0.5) for p in (0.0, 0.5, 0.75, 1.0, 2.0)] == pytest.approx([1, 1, 0.5, 0, 0])
    assert lr_rampdown_factor(1.0, 0.0) == 1.0
    train(out_dir=str(tmp_path), total_img=8 * 4, loss="logistic", r1_every=2, path="none", d_arch="plain",
          lr=0.003, d_lr=0.001, lr_rampdown=0.5, **TINY)
    recs = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
    assert [r["lr_scale"] for r in recs] == pytest.approx([1, 1, 1, 0.5])  # progress 0, 1/4, 1/2, 3/4
    ck = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert ck["opt_G"]["param_groups"][0]["lr"] == pytest.approx(0.003 * 0.5)
    assert ck["opt_D"]["param_groups"][0]["lr"] == pytest.approx(0.001 * 2 / 3 * 0.5)  # lazy-R1 ratio 2/3
    # a resumed run ramps from the configured rates, not from the ramped ones stored in the checkpoint
    train(out_dir=str(tmp_path), total_img=8 * 5, loss="logistic", r1_every=2, path="none", d_arch="plain",
          lr=0.003, d_lr=0.001, lr_rampdown=0.5, resume="auto", **TINY)
    last = json.loads(open(tmp_path / "metrics.jsonl").read().splitlines()[-1])
    assert last["lr_scale"] == pytest.approx(lr_rampdown_factor(4 / 5, 0.5))
    ck = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert ck["opt_G"]["param_groups"][0]["lr"] == pytest.approx(0.003 * lr_rampdown_factor(4 / 5, 0.5))
    # resumed without a rampdown: the configured rates again
    train(out_dir=str(tmp_path), total_img=8 * 6, loss="logistic", r1_every=2, path="none", d_arch="plain",
          lr=0.003, d_lr=0.001, resume="auto", **TINY)
    ck = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert ck["opt_G"]["param_groups"][0]["lr"] == pytest.approx(0.003)
    with pytest.raises(ValueError, match="lr_rampdown"):
        TrainConfig(lr_rampdown=1.5).validate()


def test_mapping_learning_rate_multiplier_scales_how_far_the_mapping_moves(tmp_path):
    start, moved = {}, {}
    for lr_mlp in (0.01, 1.0):
        r = train(out_dir=str(tmp_path / str(lr_mlp)), total_img=8 * 2, loss="logistic", r1_every=2, path="none",
                  lr_mlp=lr_mlp, seed=3, **TINY)
        fc, fc0 = r["G"].mapping.fcs[0], Generator(16, z_dim=32, w_dim=32, n_mlp=2, channel_max=16, lr_mlp=lr_mlp,
                                                     seed=3).mapping.fcs[0]
        start[lr_mlp] = (fc0.weight * fc0.scale).detach()  # the applied weight at initialisation
        moved[lr_mlp] = float((fc.weight * fc.scale).detach().sub(start[lr_mlp]).abs().max())
    assert torch.allclose(start[0.01], start[1.0])  # the multiplier does not change the initial function
    assert moved[1.0] > 20 * moved[0.01] > 0  # Adam steps the stored weight by ~lr, the applied one by lr * lr_mlp
    with pytest.raises(ValueError, match="lr_mlp"):
        TrainConfig(lr_mlp=0).validate()


def test_training_without_noise_inputs_leaves_their_strengths_at_zero(tmp_path):
    r = train(out_dir=str(tmp_path), total_img=8 * 4, loss="logistic", r1_every=2, path="pl", path_every=2,
              noise_mode="none", **TINY)
    G = r["G_ema_module"]
    strengths = [m.noise_strength for m in G.synthesis._s_modules if m.kind == "conv"]
    assert strengths and all(float(s) == 0.0 for s in strengths)  # no gradient ever reached them
    z = torch.randn(4, G.z_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(G(z, noise_mode="random"), G(z, noise_mode="none"), rtol=0, atol=1e-5)
    r = train(out_dir=str(tmp_path / "noisy"), total_img=8 * 4, loss="logistic", r1_every=2, path="none", **TINY)
    assert any(float(m.noise_strength) != 0.0 for m in r["G_ema_module"].synthesis._s_modules if m.kind == "conv")
    with pytest.raises(ValueError, match="noise_mode"):
        TrainConfig(noise_mode="const").validate()


def test_attribute_head_of_the_critic_learns_real_labels_and_reloads(tmp_path):
    from fe_fast.stylegan.discriminator import build_discriminator
    from fe_fast.stylegan.train import ToyFaceImages

    r = train(out_dir=str(tmp_path), total_img=8 * 30, loss="logistic", r1_every=4, path="none",
              d_attr_weight=1.0, **TINY)
    recs = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
    attr = [rec["loss_D_attr"] for rec in recs if "loss_D_attr" in rec]
    assert len(attr) == 30 and np.mean(attr[-5:]) < np.mean(attr[:5]) - 0.02, attr
    ck = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert ck["D_config"]["n_attributes"] == 13
    D = build_discriminator(ck["D_config"])
    D.load_state_dict(ck["D"])
    faces = ToyFaceImages(8, 16, seed=0)
    assert faces.labels.shape == (8, 13) and set(faces.labels.unique().tolist()) <= {0.0, 1.0}
    assert D.attribute_logits(faces.batch(range(8))).shape == (8, 13)
    with pytest.raises(RuntimeError, match="attribute head"):
        build_discriminator({k: v for k, v in ck["D_config"].items() if k != "n_attributes"}).attribute_logits(
            faces.batch(range(2)))
    with pytest.raises(ValueError, match="d_attr_weight"):
        TrainConfig(d_attr_weight=1.0, data=str(tmp_path)).validate()
    with pytest.raises(ValueError, match="d_attr_weight"):
        TrainConfig(d_attr_weight=-1.0).validate()


def test_checkpoint_resume_and_outputs(tmp_path):
    cfg = TrainConfig(out_dir=str(tmp_path), total_img=8 * 2, **{**TINY, "sample_every": 8})
    r1 = train(cfg)
    assert r1["steps"] == 2
    ck = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert ck["step"] == 2 and ck["img_seen"] == 16
    r2 = train(cfg, total_img=8 * 4, resume="auto")
    assert r2["steps"] == 4 and len(r2["d_losses"]) == 2
    G = load_generator(tmp_path / "G_ema.safetensors")
    assert isinstance(G, Generator) and G.resolution == 16
    for k, v in r2["G_ema_module"].state_dict().items():
        torch.testing.assert_close(G.state_dict()[k], v, rtol=0, atol=0)
    assert len(list((tmp_path / "samples").glob("fakes*.png"))) >= 2
    with pytest.raises(FileNotFoundError):
        train(cfg, resume=str(tmp_path / "missing.pt"))


def test_wall_clock_limit_stops_and_still_writes_outputs(tmp_path):
    r = train(out_dir=str(tmp_path), total_img=8 * 1000, max_seconds=1e-6, **TINY)
    assert r["steps"] == 0 and r["img_seen"] == 0  # the limit was hit before the first step
    assert (tmp_path / "checkpoint.pt").exists() and (tmp_path / "G_ema.safetensors").exists()
    with pytest.raises(ValueError, match="max_seconds"):
        train(out_dir=str(tmp_path), max_seconds=0, **TINY)


def test_slerp_matches_eq_a4():
    a, b = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 2.0]])
    torch.testing.assert_close(slerp(a, b, torch.tensor([0.0])), a)
    torch.testing.assert_close(slerp(a, b, torch.tensor([1.0])), b)
    mid = slerp(a, b, torch.tensor([0.5]))  # Omega = pi/2: sin(pi/4)/1 (a + b)
    torch.testing.assert_close(mid, (a + b) * math.sin(math.pi / 4))
    same = slerp(a, a, torch.tensor([0.3]))  # Omega -> 0 falls back to lerp
    torch.testing.assert_close(same, a)


class _PixelFeatures(torch.nn.Module):
    """A stand-in feature network F for eq. 5-6 (pixels as features)."""

    def forward(self, img):
        return [img]

    def distance(self, fa, fb):
        return sum((a - b).square().flatten(1).sum(1) for a, b in zip(fa, fb))


def test_path_loss_eq_5_6_with_pluggable_feature_net(tmp_path):
    G = Generator(8, z_dim=8, w_dim=8, n_mlp=2, channel_max=8, seed=0)
    torch.manual_seed(0)
    loss = path_loss(G, _PixelFeatures(), batch=3, epsilon=0.1)
    assert loss.ndim == 0 and loss.item() > 0
    loss.backward()
    assert G.mapping.fcs[0].weight.grad is not None  # L_w trains the mapping network (ch. 5.2.3)
    # plugged into training with path="vgg" (VGG replaced by the given network)
    r = train(out_dir=str(tmp_path), total_img=8 * 2, path="vgg", vgg_weights="(unused)", path_every=1,
              feature_net=_PixelFeatures(), **TINY)
    assert r["steps"] == 2
    with pytest.raises(ValueError, match="vgg_weights"):
        TrainConfig(path="vgg").validate()
    with pytest.raises(FileNotFoundError, match="VGG-16"):
        train(out_dir=str(tmp_path), total_img=8, path="vgg", vgg_weights=str(tmp_path / "vgg16.pth"), **TINY)


def test_frechet_distance_eq_5_8():
    mu1, mu2 = np.array([0.0, 1.0]), np.array([1.0, 3.0])
    s1, s2 = np.diag([1.0, 4.0]), np.diag([4.0, 1.0])
    # diagonal case: |mu1-mu2|^2 + sum (sqrt(a) - sqrt(b))^2
    expected = 1 + 4 + (1 - 2) ** 2 + (2 - 1) ** 2
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, abs=1e-9)
    x = torch.randn(500, 4, generator=torch.Generator().manual_seed(0))
    mu, sig = feature_statistics(x)
    assert frechet_distance(mu, sig, mu, sig) == pytest.approx(0, abs=1e-6)

    class Ident(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.p = torch.nn.Parameter(torch.zeros(1))

        def forward(self, img):
            return img.flatten(1)[:, :6]

    a = torch.randn(300, 3, 2, 2, generator=torch.Generator().manual_seed(1))
    assert fid(Ident(), a, a + 1.0) > fid(Ident(), a, a + 0.1) > 0


def test_inception_fid_needs_the_weights_file(tmp_path):
    from fe_fast.stylegan.features import InceptionFeatures, ToyFaceFeatures
    from fe_fast.stylegan.metrics import fid_feature_network

    with pytest.raises(FileNotFoundError, match="pt_inception-2015-12-05"):
        InceptionFeatures(None)
    with pytest.raises(FileNotFoundError, match="inception.pth"):
        fid_feature_network(str(tmp_path / "inception.pth"))
    net = fid_feature_network(None)
    assert isinstance(net, ToyFaceFeatures) and "fid_toy" in net.label


def test_cli_train_gan(tmp_path):
    from fe_fast.cli import main

    out = tmp_path / "run"
    rc = main(["train-gan", "--out", str(out), "--resolution", "8", "--toy-images", "16", "--z-dim", "8",
               "--w-dim", "8", "--n-mlp", "1", "--channel-max", "8", "--batch", "4", "--max-steps", "2",
               "--no-progress", "--sample-every", "4", "--mbstd-group", "2", "--channel-base", "32",
               "--d-channel-base", "64", "--snapshot-every", "4", "--noise-mode", "none",
               "--d-attr-weight", "0.5"])
    assert rc == 0 and (out / "G_ema.safetensors").exists() and (out / "metrics.jsonl").exists()
    ck = torch.load(out / "checkpoint.pt", weights_only=True)
    assert ck["D_config"]["mbstd_group"] == 2 and json.loads(ck["train_config"])["mbstd_group"] == 2
    assert json.loads(ck["train_config"])["noise_mode"] == "none" and ck["D_config"]["n_attributes"] == 13
    assert (ck["G_config"]["channel_base"], ck["D_config"]["channel_base"]) == (32, 64)
    assert ck["D"]["from_rgb.weight"].shape[0] == 8 and ck["G"]["synthesis.blocks.1.conv0.weight"].shape[0] == 4
    snaps = sorted(p.name for p in (out / "snapshots").iterdir())  # one G_ema copy per 4 images
    assert snaps == ["G_ema_000000004.safetensors", "G_ema_000000008.safetensors"]
    assert load_generator(out / "snapshots" / snaps[0]).resolution == 8
    with pytest.raises(ValueError, match="mbstd_group"):
        TrainConfig(mbstd_group=0).validate()
    with pytest.raises(ValueError, match="d_channel_base"):
        TrainConfig(d_channel_base=0).validate()
    assert main(["train-gan", "--data", str(tmp_path / "nope")]) == 2
    assert main(["train-gan", "--resolution", "24"]) == 2
    assert main(["train-gan", "--resolution", "8", "--d-scales", "2", "--out", str(tmp_path / "x")]) == 2  # 8/2 < 8
    plain = tmp_path / "plain"
    assert main(["train-gan", "--out", str(plain), "--resolution", "8", "--toy-images", "8", "--z-dim", "8",
                 "--w-dim", "8", "--n-mlp", "1", "--channel-max", "8", "--batch", "4", "--max-steps", "1",
                 "--no-progress", "--sample-every", "0", "--d-arch", "plain", "--d-lr", "0.0005",
                 "--lr-rampdown", "0.25", "--lr-mlp", "0.1"]) == 0
    ck = torch.load(plain / "checkpoint.pt", weights_only=True)
    assert ck["D_config"]["arch"] == "plain" and json.loads(ck["train_config"])["d_lr"] == 0.0005
    assert ck["G_config"]["lr_mlp"] == 0.1 and load_generator(plain / "G_ema.safetensors").mapping.fcs[0].lr_mul == 0.1
    assert json.loads(ck["train_config"])["lr_rampdown"] == 0.25


def test_cli_preset_toy32_fills_only_options_left_at_default(tmp_path):
    from fe_fast.cli import main

    out = tmp_path / "run"
    rc = main(["train-gan", "--preset", "toy32", "--out", str(out), "--toy-images", "16", "--batch", "8",
               "--max-steps", "1", "--no-progress", "--sample-every", "0", "--threads", "1"])
    assert rc == 0
    G = load_generator(out / "G_ema.safetensors")
    assert (G.z_dim, G.w_dim, G.config["n_mlp"], G.config["channel_base"]) == (128, 128, 2, 1024)
    assert G.synthesis.channels == {4: 64, 8: 64, 16: 64, 32: 32}
    cfg = json.loads(torch.load(out / "checkpoint.pt", weights_only=True)["train_config"])
    assert cfg["batch"] == 8 and cfg["loss"] == "logistic" and cfg["path"] == "none"  # explicit --batch wins
    assert (cfg["lr"], cfg["ema_img"], cfg["r1_gamma"], cfg["lr_rampdown"]) == (0.003, 10000.0, 2.0, 0.25)
    assert (cfg["d_arch"], cfg["d_lr"], cfg["d_channel_base"]) == ("plain", 0.001, 512)
    D_config = torch.load(out / "checkpoint.pt", weights_only=True)["D_config"]
    assert D_config["arch"] == "plain" and D_config["channel_base"] == 512
    assert main(["train-gan", "--threads", "0"]) == 2


def test_toy_face_images_are_prerendered_faces():
    from fe_fast.datasets.toyfaces import ToyFaces
    from fe_fast.stylegan.train import ToyFaceImages

    ds = ToyFaceImages(6, 16, seed=3)
    assert ds.images.shape == (6, 3, 16, 16) and ds.images.dtype == torch.uint8
    ref = ToyFaces(6, size=16, seed=3)[4][0]
    torch.testing.assert_close(ds[4], ref, rtol=0, atol=1e-6)
    torch.testing.assert_close(ds.batch([4, 1]), torch.stack([ds[4], ds[1]]))
    small = ToyFaceImages(2, 8, seed=3)  # rendered at 16, average pooled
    assert small.batch([0, 1]).shape == (2, 3, 8, 8)


def test_attribute_frequencies_of_generated_and_real_images():
    from fe_fast.stylegan.metrics import attribute_frequencies, classifier_frequencies, classifier_labels, classifier_logits
    from fe_fast.teachers.toy import AttributeClassifier

    torch.manual_seed(0)
    clf = AttributeClassifier(width=4).eval()
    G = Generator(16, z_dim=8, w_dim=8, n_mlp=1, channel_max=8, seed=0)
    f = attribute_frequencies(G, clf, n=10, seed=1, size=32, batch_size=4)
    assert list(f) == list(clf.attributes) and all(0 <= v <= 1 for v in f.values())
    assert f == attribute_frequencies(G, clf, n=10, seed=1, size=32, batch_size=4)  # seeded
    imgs = G.sample(10, seed=1, noise_mode="none")
    with torch.no_grad():
        up = torch.nn.functional.interpolate(imgs, size=(32, 32), mode="bicubic", align_corners=False)
        expect = (clf(up.clamp(-1, 1)) > 0).double().mean(0)
    got = classifier_frequencies(clf, imgs, size=32, batch_size=3)
    assert [got[a] for a in clf.attributes] == pytest.approx(expect.tolist())
    clf.train()
    labels = classifier_labels(clf, imgs, size=32)  # per image, in eval mode, mode restored
    assert labels.dtype == torch.bool and labels.shape == (10, len(clf.attributes)) and clf.training
    assert labels.double().mean(0).tolist() == pytest.approx(expect.tolist())
    logits = classifier_logits(clf, imgs, size=32)
    assert logits.dtype == torch.float32 and torch.equal(logits > 0, labels) and clf.training
    with pytest.raises(ValueError, match="n must be"):
        attribute_frequencies(G, clf, n=0)


def test_attribute_frequencies_seed_the_noise_inputs_and_keep_the_callers_random_state():
    from fe_fast.stylegan.metrics import attribute_frequencies, classifier_frequencies, generated_batches

    class PixelJudge(torch.nn.Module):
        """One logit per pixel of the first row: sensitive to any change of the noise."""
        attributes = [f"px{i}" for i in range(16)]

        def __init__(self):
            super().__init__()
            self.bias = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x):
            return x[:, 0, 0, :] - x[:, 0, 0, :].mean(1, keepdim=True) + self.bias

    G = Generator(16, z_dim=8, w_dim=8, n_mlp=1, channel_max=8, seed=0)
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith("noise_strength"):
                p.fill_(3.0)
    judge = PixelJudge()
    torch.manual_seed(1)
    a = attribute_frequencies(G, judge, n=64, seed=5, size=16)
    torch.manual_seed(2)
    before = torch.get_rng_state()
    b = attribute_frequencies(G, judge, n=64, seed=5, size=16)
    assert a == b
    assert torch.equal(torch.get_rng_state(), before)
    # the images themselves: the same draws whatever the caller's state, G's mode kept, batches of batch_size
    G.train()
    images = torch.cat(list(generated_batches(G, 64, seed=5)))
    assert G.training and torch.equal(torch.get_rng_state(), before) and not images.requires_grad
    torch.manual_seed(3)
    assert torch.equal(torch.cat(list(generated_batches(G, 64, seed=5))), images)
    assert [len(x) for x in generated_batches(G, 64, seed=5, batch_size=24)] == [24, 24, 16]
    assert classifier_frequencies(judge, images, size=16) == a
    assert a != attribute_frequencies(G, judge, n=64, seed=5, size=16, noise_mode="const")


def test_image_folder_and_zip_data(tmp_path):
    import zipfile

    from PIL import Image

    from fe_fast.stylegan.train import ImageFolderDataset

    d = tmp_path / "imgs"
    (d / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i, size in enumerate([(40, 30), (17, 17), (64, 80)]):
        Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(d / "sub" / f"{i}.png")
    ds = ImageFolderDataset(d, 16)
    assert len(ds) == 3 and ds[0].shape == (3, 16, 16) and -1 <= ds[2].min() and ds[2].max() <= 1
    z = tmp_path / "imgs.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for p in sorted((d / "sub").iterdir()):
            zf.write(p, f"faces/{p.name}")
    dz = ImageFolderDataset(z, 16)
    torch.testing.assert_close(dz[1], ds[1])
    r = train(out_dir=str(tmp_path / "run"), data=str(z), total_img=4, **{**TINY, "batch": 2})
    assert r["steps"] == 2
    with pytest.raises(FileNotFoundError):
        ImageFolderDataset(tmp_path / "missing", 16)


# ------------------------------------------------------------------------------------------------
# 2-process DDP (gloo on CPU)
# ------------------------------------------------------------------------------------------------
def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank, world, port, out_dir):
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    cfg = {**TINY, "resolution": 8, "toy_images": 16, "channel_max": 8, "z_dim": 16, "w_dim": 16, "batch": 4}
    # lr_rampdown with a clock limit: the ranks must agree on one schedule
    r = train(out_dir=out_dir, total_img=4 * 3, device="cpu", path_every=2, lr_rampdown=0.5, max_seconds=3600, **cfg)
    flat = torch.cat([p.detach().flatten() for p in r["G"].parameters()] +
                     [p.detach().flatten() for p in r["D"].parameters()] +
                     [b.flatten() for b in r["G"].buffers()] +
                     [p.detach().flatten() for p in r["G_ema_module"].parameters()])
    torch.save({"params": flat, "world": r["world"], "steps": r["steps"]}, os.path.join(out_dir, f"rank{rank}.pt"))


def test_ddp_two_processes_keep_parameters_identical(tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(_ddp_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert r0["world"] == r1["world"] == 2 and r0["steps"] == r1["steps"] == 3
    assert torch.equal(r0["params"], r1["params"])
    # and training did move them away from the initialisation
    G0 = Generator(8, z_dim=16, w_dim=16, n_mlp=2, channel_max=8, seed=0)
    n = sum(p.numel() for p in G0.parameters())
    init = torch.cat([p.detach().flatten() for p in G0.parameters()])
    assert not torch.equal(r0["params"][:n], init)
