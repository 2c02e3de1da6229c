"""Tests of the procedural face world (fe_fast.datasets.toyfaces)."""
import numpy as np
import pytest
import torch
from PIL import Image

from fe_fast.datasets import toyfaces as T
from fe_fast.datasets.toyfaces import (
    ATTRIBUTES,
    BINARY_ATTRIBUTES,
    FACTORS,
    HAIR_COLORS,
    MASK_CLASSES,
    ToyFaces,
    read_labels,
    render,
    render_with_labels,
    sample_params,
)

A = {name: i for i, name in enumerate(ATTRIBUTES)}
C = {name: i for i, name in enumerate(MASK_CLASSES)}


@pytest.fixture(scope="module")
def faces48():
    """240 faces at 48x48 rendered once for the mask / landmark tests."""
    ds = ToyFaces(240, size=48, seed=11)
    images, masks, lms = ds.arrays()
    return ds, images, masks, lms


def test_item_types_shapes_and_ranges():
    ds = ToyFaces(4, size=40, seed=0)
    img, attrs, mask, lm, ident = ds[1]
    assert img.shape == (3, 40, 40) and img.dtype == torch.float32
    assert -1.0 <= float(img.min()) and float(img.max()) <= 1.0
    assert attrs.shape == (len(ATTRIBUTES),) and attrs.dtype == torch.float32
    assert mask.shape == (40, 40) and mask.dtype == torch.int64
    assert 0 <= int(mask.min()) and int(mask.max()) < len(MASK_CLASSES)
    assert lm.shape == (68, 3) and lm.dtype == torch.float32
    assert ident == 1 and len(ds) == 4
    assert set(torch.unique(attrs[: len(BINARY_ATTRIBUTES)]).tolist()) <= {0.0, 1.0}


def test_deterministic_by_seed():
    a, b, c = ToyFaces(6, size=32, seed=3), ToyFaces(6, size=32, seed=3), ToyFaces(6, size=32, seed=4)
    for i in range(6):
        for x, y in zip(a[i][:4], b[i][:4]):
            assert torch.equal(x, y)
    assert np.array_equal(a.attributes, b.attributes)
    assert not np.array_equal(a.attributes, c.attributes)
    assert not torch.equal(a[0][0], c[0][0])


def test_sizes_16_to_256():
    p, _ = sample_params(1, seed=2)
    for size in (16, 37, 256):
        r = render_with_labels(p[0], size)
        assert r.image.shape == (size, size, 3) and r.image.dtype == np.uint8
        assert r.mask.shape == (size, size)
        assert np.array_equal(render(p[0], size), r.image)


def test_masks_agree_with_attributes(faces48):
    ds, _, masks, _ = faces48
    counts = {c: (masks == C[c]).reshape(len(masks), -1).sum(1) for c in ("glasses", "beard", "hair", "mouth")}
    glasses = ds.attributes[:, A["eyeglasses"]] == 1
    beard = (ds.attributes[:, A["beard"]] == 1) | (ds.attributes[:, A["goatee"]] == 1)
    assert glasses.any() and (~glasses).any() and beard.any() and (~beard).any()
    assert (counts["glasses"][~glasses] == 0).all(), "glasses pixels without eyeglasses"
    assert (counts["glasses"][glasses] > 0).all()
    assert (counts["beard"][~beard] == 0).all(), "beard pixels without a beard or goatee"
    assert (counts["beard"][beard] > 0).all()
    assert (counts["hair"] > 0).all() and (counts["mouth"] > 0).all()
    # full beards are larger than goatees; long hair covers more pixels than short hair
    full = ds.attributes[:, A["beard"]] == 1
    goatee = ds.attributes[:, A["goatee"]] == 1
    assert counts["beard"][full].mean() > counts["beard"][goatee].mean()
    long_ = ds.attributes[:, A["long_hair"]] == 1
    assert counts["hair"][long_].mean() > counts["hair"][~long_].mean()


def test_mask_matches_drawn_pixels():
    """Switching eyeglasses on changes the image exactly where the mask changes (plus the
    anti-aliased border), and nowhere far from the glasses."""
    p = {"yaw": 10.0, "eyeglasses": False}
    off, on = render_with_labels(p, 64), render_with_labels({**p, "eyeglasses": True}, 64)
    changed = np.abs(on.image.astype(int) - off.image.astype(int)).sum(-1) > 0
    glasses = on.mask == C["glasses"]
    assert glasses.sum() > 20
    assert changed[glasses].mean() > 0.9
    # every changed pixel is within one pixel of a glasses pixel
    near = glasses.copy()
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            near |= np.roll(np.roll(glasses, dy, 0), dx, 1)
    assert not (changed & ~near).any()


def test_landmarks_inside_the_face(faces48):
    ds, _, masks, lms = faces48
    n, s = len(ds), ds.size
    assert (lms[:, :, :2] >= 0).all() and (lms[:, :, :2] <= s - 1).all()
    ij = np.clip(np.rint(lms[:, 17:68, :2]).astype(int), 0, s - 1)
    cls = masks[np.arange(n)[:, None], ij[..., 1], ij[..., 0]]
    # brows, nose, eyes and mouth landmarks fall on the head (not the background)
    assert (cls != C["background"]).mean() > 0.995
    # the eye landmarks' centroid is labelled with that eye (subject's left = iBUG 42-47)
    frontal = np.abs(ds.attributes[:, A["yaw"]]) < 30
    for idx, name in ((slice(36, 42), "right_eye"), (slice(42, 48), "left_eye")):
        c = np.rint(lms[:, idx, :2].mean(1)).astype(int)
        lab = masks[np.arange(n), c[:, 1], c[:, 0]]
        assert (lab[frontal] == C[name]).mean() > 0.97
    # the mouth centre is labelled mouth
    c = np.rint(lms[:, 48:68, :2].mean(1)).astype(int)
    assert (masks[np.arange(n), c[:, 1], c[:, 0]] == C["mouth"]).mean() > 0.97


def test_landmarks_follow_the_yaw_sign():
    ds = ToyFaces(300, size=64, seed=5, attributes={"roll": (-10.0, 10.0)})
    yaw = ds.attributes[:, A["yaw"]]
    lm = np.stack([T._render(p, 64).landmarks for p in ds.params])
    offset = lm[:, 30, 0] - 0.5 * (lm[:, 0, 0] + lm[:, 16, 0])  # nose tip vs the jaw ends
    big = np.abs(yaw) > 10
    assert (np.sign(offset[big]) == np.sign(yaw[big])).all()
    assert np.corrcoef(offset, yaw)[0, 1] > 0.95
    # depth: with yaw > 0 the subject's left jaw end (16) is farther than the right one (0)
    assert (np.sign(lm[big, 16, 2] - lm[big, 0, 2]) == np.sign(yaw[big])).all()
    # +-40 degrees of yaw are in the default range
    assert yaw.min() < -40 and yaw.max() > 40


def test_attribute_marginals_match_configuration():
    n = 2000
    for cfg in (None, {"smiling": 0.9, "hair_color": {"red": 1, "gray": 3}, "facial_hair": "goatee",
                       "yaw": (-10.0, 30.0), "skin_tone": 0.25}):
        params, _ = sample_params(n, seed=7, attributes=cfg)
        attrs = np.stack([T.attribute_vector(p) for p in params])
        dists = T._resolve_factors(cfg)
        for name in ("smiling", "mouth_open", "eyeglasses", "long_hair", "bangs", "old"):
            p = dists[name][1]
            assert abs(attrs[:, A[name]].mean() - p) <= 4 * np.sqrt(p * (1 - p) / n) + 1e-9, name
        hair = dists["hair_color"][1]
        for k, colour in enumerate(HAIR_COLORS):
            m, p = attrs[:, A[f"{colour}_hair"]].mean(), hair[k]
            assert abs(m - p) <= 4 * np.sqrt(p * (1 - p) / n) + 1e-9, colour
        assert np.all(attrs[:, [A[f"{c}_hair"] for c in HAIR_COLORS]].sum(1) == 1)
        fh = dists["facial_hair"][1]
        for k, name in ((1, "goatee"), (2, "beard")):
            m, p = attrs[:, A[name]].mean(), fh[k]
            assert abs(m - p) <= 4 * np.sqrt(p * (1 - p) / n) + 1e-9, name
        for name in ("skin_tone", "eye_size", "face_width", "background_hue", "light_azimuth", "yaw", "pitch", "roll"):
            lo, hi = dists[name][1]
            v = attrs[:, A[name]]
            assert lo - 1e-4 <= v.min() and v.max() <= hi + 1e-4, name
            if hi > lo:  # uniform: mean and spread
                assert abs(v.mean() - (lo + hi) / 2) <= 4 * (hi - lo) / np.sqrt(12 * n), name
                assert abs(v.std() - (hi - lo) / np.sqrt(12)) <= 0.05 * (hi - lo), name
            else:
                assert np.allclose(v, lo)
        # independence by default: smiling and eyeglasses are uncorrelated
        if cfg is None:
            assert abs(np.corrcoef(attrs[:, A["smiling"]], attrs[:, A["eyeglasses"]])[0, 1]) < 0.1


def test_identities_share_identity_parameters():
    ds = ToyFaces(60, size=32, seed=1, identities=6)
    assert sorted(np.bincount(ds.identity).tolist()) == [10] * 6
    for k in range(6):
        rows = ds.attributes[ds.identity == k]
        for name in ("skin_tone", "eye_size", "face_width", "long_hair", "bangs", "old", "beard", "goatee",
                     *[f"{c}_hair" for c in HAIR_COLORS]):
            assert np.all(rows[:, A[name]] == rows[0, A[name]]), name
        assert len(np.unique(rows[:, A["yaw"]])) == len(rows)  # pose varies within an identity
    img, _, _, _, ident = ds[3]
    assert ident == int(ds.identity[3])


def test_save_writes_pngs_and_labels(tmp_path):
    ds = ToyFaces(5, size=24, seed=9, identities=2)
    root = ds.save(tmp_path / "toy")
    files, ids, attrs = read_labels(root)
    assert files == [f"images/{i:06d}.png" for i in range(5)]
    assert np.array_equal(ids, ds.identity)
    assert np.allclose(attrs, ds.attributes, atol=1e-4)
    images, masks, lms = ds.arrays()
    for i in range(5):
        assert np.array_equal(np.asarray(Image.open(root / files[i])), images[i])
        assert np.array_equal(np.asarray(Image.open(root / "masks" / f"{i:06d}.png")), masks[i])
    assert np.allclose(np.load(root / "landmarks.npy"), lms)
    assert (root / "toyfaces.json").exists()


def test_mean_face_is_the_shipped_3d_shape():
    P = T.mean_face_68()
    assert P.shape == (68, 3)
    assert abs(P[:, 0].mean()) < 1e-6  # centred, symmetric
    assert 88 < np.linalg.norm(P[36] - P[45]) < 94  # outer eye corners about 91 mm apart
    assert P[30, 2] < P[27, 2] < P[0, 2]  # nose tip closest to the camera


def test_bad_parameters_raise_clear_errors():
    with pytest.raises(ValueError, match="size"):
        ToyFaces(4, size=8)
    with pytest.raises(ValueError, match="size"):
        ToyFaces(4, size=300)
    with pytest.raises(ValueError, match="size"):
        render({}, 15)
    with pytest.raises(ValueError, match="unknown attribute 'hat'"):
        ToyFaces(4, attributes={"hat": 0.5})
    with pytest.raises(ValueError, match="unknown attribute"):
        render({"hat": True})
    with pytest.raises(ValueError, match="smiling"):
        sample_params(4, attributes={"smiling": 1.5})
    with pytest.raises(ValueError, match="yaw"):
        sample_params(4, attributes={"yaw": (-90.0, 0.0)})
    with pytest.raises(ValueError, match="hair_color"):
        sample_params(4, attributes={"hair_color": "green"})
    with pytest.raises(ValueError, match="identities"):
        ToyFaces(4, identities=0)
    with pytest.raises(ValueError, match="n must be"):
        ToyFaces(-1)
    assert set(FACTORS) >= {"smiling", "yaw", "hair_color"}
