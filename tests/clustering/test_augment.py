"""The opt-in jitter of DERC's training images (fe_fast.clustering.augment)."""
import math

import pytest
import torch

from fe_fast.clustering.augment import random_affine, random_mirror


def _dot(h, w, r, c):
    x = torch.zeros(1, 1, h, w)
    x[0, 0, r, c] = 1.0
    return x


def _centroid(x):
    h, w = x.shape[-2:]
    m = x[0, 0]
    rows = (m.sum(1) * torch.arange(h)).sum() / m.sum()
    cols = (m.sum(0) * torch.arange(w)).sum() / m.sum()
    return float(rows), float(cols)


def test_zero_ranges_return_input_and_draw_nothing():
    x = torch.rand(3, 1, 8, 8)
    g = torch.Generator().manual_seed(0)
    state = g.get_state()
    assert random_affine(x, g, 0.0, 0.0) is x
    assert torch.equal(g.get_state(), state)


def test_shift_moves_content_within_range_and_keeps_input():
    x = torch.zeros(64, 1, 20, 20)
    x[:, :, 8:12, 8:12] = 1.0
    x0 = x.clone()
    y = random_affine(x, torch.Generator().manual_seed(1), 0.1, 0.0)
    assert torch.equal(x, x0)  # not modified in place
    shifts = torch.tensor([[_centroid(y[i : i + 1])[k] - 9.5 for k in (0, 1)] for i in range(64)])
    assert shifts.abs().max() <= 0.1 * 20 + 1e-4  # at most 10 % of the side (2 px)
    assert shifts.abs().max() > 1.0  # and it does move things
    assert torch.allclose(y.sum((1, 2, 3)), x.sum((1, 2, 3)), atol=1e-3)  # mass kept inside the frame


def test_rotation_turns_a_point_about_the_centre():
    # a dot 6 px right of the centre of a 21x21 image (pixel centres at integer coordinates)
    x = _dot(21, 21, 10, 16).repeat(200, 1, 1, 1)
    y = random_affine(x, torch.Generator().manual_seed(2), 0.0, 30.0)
    angles = []
    for i in range(200):
        r, c = _centroid(y[i : i + 1])
        assert math.hypot(r - 10, c - 10) == pytest.approx(6.0, abs=0.35)
        angles.append(math.degrees(math.atan2(r - 10, c - 10)))
    assert max(abs(a) for a in angles) <= 30.5 and max(abs(a) for a in angles) > 20


def test_bad_ranges():
    with pytest.raises(ValueError, match=">= 0"):
        random_affine(torch.zeros(1, 1, 4, 4), torch.Generator(), -0.1, 0.0)


def test_random_mirror_flips_whole_images_about_half_the_time():
    x = torch.rand(400, 2, 5, 7)
    before = x.clone()
    out = random_mirror(x, torch.Generator().manual_seed(3))
    same = (out == x).flatten(1).all(1)
    flipped = (out == x.flip(-1)).flatten(1).all(1)
    assert bool((same ^ flipped).all())  # each image either kept or mirrored, never mixed
    assert 150 < int(flipped.sum()) < 250
    assert torch.equal(out, random_mirror(x, torch.Generator().manual_seed(3)))
    assert torch.equal(x, before)  # input untouched
