"""FFHQ-style crop (fe_fast.align.crop) and its inverse."""
import numpy as np
import pytest
from PIL import Image

from fe_fast.align import align_crop, ffhq_quad, paste_back
from fe_fast.datasets.toyfaces import render_with_labels, sample_params


def _hand_landmarks():
    L = np.zeros((68, 2))
    L[36:42] = (40.0, 50.0)
    L[42:48] = (80.0, 50.0)
    L[48], L[54] = (45.0, 90.0), (75.0, 90.0)
    return L


def test_ffhq_quad_against_hand_computed_values():
    # eye_avg (60, 50), eye_to_eye (40, 0), eye_to_mouth (0, 40): x = (80, 0) scaled to
    # max(2 * 40, 1.8 * 40) = 80, y = (0, 80), c = (60, 54)
    q = ffhq_quad(_hand_landmarks())
    np.testing.assert_allclose(q, [[-20, -26], [-20, 134], [140, 134], [140, -26]])


def test_ffhq_quad_follows_a_rotated_face():
    L = _hand_landmarks()
    a = np.radians(30)
    Rm = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    q = ffhq_quad((L - 60) @ Rm.T + 60)
    np.testing.assert_allclose(q, (ffhq_quad(L) - 60) @ Rm.T + 60, atol=1e-9)


def _toy(roll=25.0, size=160):
    params, _ = sample_params(1, seed=5, attributes={"yaw": 0.0, "pitch": 0.0, "roll": roll})
    r = render_with_labels(params[0], size)
    return r.image, r.landmarks


def test_crop_levels_the_eyes_and_paste_back_inverts_it():
    img, lm = _toy()
    crop = align_crop(img, lm, size=64)
    assert crop.image.size == (64, 64)
    # landmarks mapped into the crop: the eye line is horizontal, the eyes in the upper half
    inv = np.linalg.inv(np.vstack([crop.matrix, [0, 0, 1]]))[:2]
    to_crop = lambda p: (np.c_[p + 0.5, np.ones(len(p))] @ inv.T) - 0.5  # noqa: E731
    eyes = to_crop(np.stack([lm[36:42, :2].mean(0), lm[42:48, :2].mean(0)]))
    assert abs(eyes[0, 1] - eyes[1, 1]) < 0.5 and eyes[:, 1].max() < 32
    # the unedited crop pasted back reproduces the photo inside the quad (resampling error only)
    out = np.asarray(crop.paste(img), dtype=np.float64)
    inside = np.zeros(img.shape[:2], bool)
    c = crop.quad.mean(0)
    yy, xx = np.mgrid[: img.shape[0], : img.shape[1]]
    inside[(np.abs(xx - c[0]) < 20) & (np.abs(yy - c[1]) < 20)] = True
    assert np.abs(out[inside] - img[inside]).mean() < 12
    # an edited crop lands inside the quad only; far pixels and the input stay untouched
    red = np.zeros((64, 64, 3), np.uint8)
    red[..., 0] = 255
    before = img.copy()
    out = np.asarray(paste_back(img, red, crop))
    assert (out[inside][:, 0] > 200).all() and (out[inside][:, 1] < 40).all()
    np.testing.assert_array_equal(img, before)
    far = np.hypot(xx - c[0], yy - c[1]) > np.hypot(*(crop.quad[0] - c)) + 2
    np.testing.assert_array_equal(out[far], img[far])


def test_crop_outside_the_photo_replicates_edges_and_rejects_bad_input():
    img = np.zeros((40, 40, 3), np.uint8)
    img[:, :, 1] = 200
    crop = align_crop(img, quad=np.array([[-30, -30], [-30, 70], [70, 70], [70, -30]]), size=32)
    a = np.asarray(crop.image)
    assert (a[..., 1] > 190).all()  # no black borders
    with pytest.raises(ValueError, match="RGB uint8"):
        align_crop(np.zeros((10, 10)), _hand_landmarks())
    with pytest.raises(ValueError, match="size"):
        align_crop(img, _hand_landmarks(), size=4)
    L = _hand_landmarks()
    L[40] = np.nan
    with pytest.raises(ValueError, match="eye"):
        ffhq_quad(L)
    with pytest.raises(ValueError, match="photo is"):
        paste_back(np.zeros((30, 30, 3), np.uint8), crop.image, crop)
