"""Edits (thesis eq. 6-3 single channel, eq. 6-7 multi channel) and sweeps."""
import pytest
import torch

from fe_fast.editing import edit, sweep, sweep_grid, unit_delta
from fe_fast.editing.locate import locate, render, sample_styles

from planted import PLANT_CHANNEL, PLANT_LAYER, PatchParser


@pytest.fixture(scope="module")
def cs(G):
    return locate(G, PatchParser(), "patch", n_samples=12, k=3, batch_size=12)


def test_single_channel_changes_only_the_target_layer(G, cs):
    _, s = sample_styles(G, 3, seed=7)
    before = [t.clone() for t in s]
    out = edit(G, s, cs, 2.0)
    for l, (a, b) in enumerate(zip(out, s)):
        if l != PLANT_LAYER:
            assert torch.equal(a, b)
    d = out[PLANT_LAYER] - s[PLANT_LAYER]
    expect = torch.zeros_like(d)
    expect[:, PLANT_CHANNEL] = 2.0 * cs.sigma[int(cs.offsets[PLANT_LAYER]) + PLANT_CHANNEL] * cs[0].sign
    torch.testing.assert_close(d, expect)
    assert all(torch.equal(a, b) for a, b in zip(s, before))  # inputs untouched
    # the edit moves the planted region's red channel, and in the sign of the detector
    with torch.no_grad():
        img0, img1 = render(G, s), render(G, out)
    assert float((img1 - img0)[:, 0, :8, :8].mean()) > 0


def test_multi_channel_unit_direction(G, cs):
    delta = unit_delta(G, cs, "multi")
    off = cs.offsets
    cols = [int(off[c.layer]) + c.channel for c in cs]
    nz = torch.nonzero(delta).flatten().tolist()
    assert sorted(nz) == sorted(cols)
    # eq. 6-7 in sigma-normalised coordinates: unit length there
    torch.testing.assert_close((delta[cols] / cs.sigma[cols]).norm(), torch.tensor(1.0))
    # direction follows the averaged gradient
    assert float((delta[cols] * cs.direction[cols]).sum()) > 0


def test_channels_by_hand_and_errors(G):
    _, s = sample_styles(G, 2, seed=1)
    out = edit(G, s, f"{PLANT_LAYER}:{PLANT_CHANNEL}", -1.0)
    assert torch.equal(out[0], s[0]) and not torch.equal(out[PLANT_LAYER], s[PLANT_LAYER])
    with pytest.raises(ValueError, match="channel 16 out of range for layer 3"):
        edit(G, s, "3:16", 1.0)
    with pytest.raises(ValueError, match="layer 8 out of range"):
        edit(G, s, "8:0", 1.0)
    with pytest.raises(ValueError, match="LAYER:CHANNEL"):
        edit(G, s, "3-5", 1.0)
    with pytest.raises(ValueError, match="alpha must be a number"):
        edit(G, s, "3:5", "big")


def test_sweep_grid_png(G, cs, tmp_path):
    _, s = sample_styles(G, 2, seed=2)
    imgs = sweep(G, s, cs, [-2, 0, 2])
    assert imgs.shape == (3, 2, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(imgs[1], render(G, s))
    grid = sweep_grid(G, s, cs, [-2, 0, 2], tmp_path / "g.png")
    assert (tmp_path / "g.png").exists() and grid.size == (3 * 18 + 2, 2 * 18 + 2)


def test_sweep_in_small_batches_equals_one_batch(G, cs, monkeypatch):
    """At 1024 a sweep renders a few samples at a time (the activation budget); same images."""
    import importlib

    E = importlib.import_module("fe_fast.editing.edit")
    _, s = sample_styles(G, 5, seed=2)
    whole = torch.stack([render(G, edit(G, s, cs, a)) for a in (-1.0, 2.0)]).detach()
    monkeypatch.setattr(E, "auto_batch_sizes", lambda G: (2, 1))
    torch.testing.assert_close(sweep(G, s, cs, [-1.0, 2.0]), whole, rtol=1e-5, atol=1e-5)
