"""Grouped training configuration (fe_fast.stylegan.training.config): flat names <-> sub-configs,
presets, copies; and the loop's callbacks."""
import dataclasses
import json

import pytest
import torch

from fe_fast.stylegan.training import PRESETS, TrainConfig, preset, train
from fe_fast.stylegan.training.callbacks import Callback
from fe_fast.stylegan.training.config import FLAT_FIELDS, GeneratorConfig, OptimizerConfig


def test_flat_names_set_and_read_the_grouped_fields():
    cfg = TrainConfig(d_scales=2, data="imgs.zip", lr=0.01, ema_img=5.0, fid_every=7, max_steps=3)
    assert (cfg.D.scales, cfg.dataset.source, cfg.opt.lr, cfg.G.ema_img, cfg.log.fid_every, cfg.max_steps) == \
        (2, "imgs.zip", 0.01, 5.0, 7, 3)
    flat = cfg.to_dict()
    assert list(flat) == list(FLAT_FIELDS) and len(flat) == 52
    assert flat["d_scales"] == 2 and flat["data"] == "imgs.zip" and flat["betas"] == [0.0, 0.99]
    assert TrainConfig(**json.loads(json.dumps(flat))).to_dict() == flat  # a checkpoint's train_config
    with pytest.raises(TypeError, match="d_scale"):
        TrainConfig(d_scale=2)


def test_sub_configs_are_copied_and_flat_overrides_win():
    g = GeneratorConfig(z_dim=64)
    cfg = TrainConfig(G=g, opt=OptimizerConfig(lr=0.1), z_dim=16)
    assert cfg.G.z_dim == 16 and g.z_dim == 64 and cfg.opt.lr == 0.1
    other = dataclasses.replace(cfg, lr=0.5, w_dim=8)
    assert (other.opt.lr, other.G.w_dim, other.G.z_dim) == (0.5, 8, 16)
    assert (cfg.opt.lr, cfg.G.w_dim) == (0.1, 512)  # replace never changes the original


def test_presets_are_flat_recipes_and_configs():
    cfg = preset("toy32", batch=8)
    assert cfg.D.arch == "plain" and cfg.reg.loss == "logistic" and cfg.opt.batch == 8
    assert all(cfg.to_dict()[k] == v for k, v in PRESETS["toy32"].items() if k != "batch")
    assert TrainConfig().reg.loss == "wgan-gp"  # the thesis defaults stay the defaults
    with pytest.raises(ValueError, match="toy64"):
        preset("toy64")


def test_callbacks_see_every_step_then_the_end(tmp_path):
    class Recorder(Callback):
        def __init__(self):
            self.steps, self.ended = [], 0

        def on_step(self, state, rec):
            self.steps.append((state.step, state.img_seen, sorted(rec)))

        def on_end(self, state):
            self.ended += 1
            self.end_step = state.step

    rec = Recorder()
    train(out_dir=str(tmp_path), resolution=8, toy_images=16, z_dim=8, w_dim=8, n_mlp=1, channel_max=8, batch=4,
          total_img=12, loss="logistic", path="none", progress=False, sample_every=0, checkpoint_every=0,
          callbacks=[rec])
    assert [s[:2] for s in rec.steps] == [(1, 4), (2, 8), (3, 12)] and rec.ended == 1 and rec.end_step == 3
    assert {"loss_D", "loss_G", "d_real", "d_fake", "r1"} <= set(rec.steps[0][2])
    assert isinstance(torch.load(tmp_path / "checkpoint.pt", weights_only=True)["train_config"], str)
