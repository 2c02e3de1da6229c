"""Registration metrics against hand-computed values (thesis eq. 3-13, 3-14, recall)."""
import math

import numpy as np
import pytest
import torch

from fe_fast.registration.metrics import (
    bbox_diagonal,
    evaluate,
    mse,
    recall,
    rmse,
    rotation_error,
    summarize,
    translation_error,
)

RZ90 = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])


def _T(R=np.eye(3), t=(0, 0, 0)):
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = t
    return T


def test_rotation_error_eq_3_13():
    assert rotation_error(RZ90, np.eye(3)) == pytest.approx(90.0)
    assert rotation_error(np.eye(3), np.eye(3)) == pytest.approx(0.0, abs=1e-6)
    assert rotation_error(np.diag([-1.0, -1.0, 1.0]), np.eye(3)) == pytest.approx(180.0)
    c, s = math.cos(math.radians(10)), math.sin(math.radians(10))
    Rx = np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    assert rotation_error(torch.tensor(Rx), torch.tensor(np.eye(3))) == pytest.approx(10.0)
    batch = rotation_error(np.stack([RZ90, np.eye(3)]), np.eye(3)[None])
    assert np.allclose(batch, [90.0, 0.0])


def test_translation_error_l2():
    assert translation_error([3.0, 4.0, 0.0], [0.0, 0.0, 0.0]) == pytest.approx(5.0)


def test_mse_eq_3_14_and_rmse():
    P = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    # R_z(90) p - p: (-1, 1, 0) and (-1, -1, 0): squared norms 2 and 2
    assert mse(P, _T(RZ90), _T()) == pytest.approx(2.0)
    assert rmse(P, _T(RZ90), _T()) == pytest.approx(math.sqrt(2.0))
    # pure translation offset (1, 2, 2): |.|^2 = 9 for every point
    assert mse(P, _T(t=(1, 2, 2)), _T()) == pytest.approx(9.0)


def test_recall_and_bbox():
    Q = np.array([[0.0, 0.0, 0.0], [3.0, 4.0, 0.0]])
    assert bbox_diagonal(Q) == pytest.approx(5.0)
    # threshold 5 deg and 5 % of diag 10 = 0.5
    r = recall([1.0, 4.9, 6.0, 1.0], [0.1, 0.49, 0.1, 0.6], 10.0)
    assert r == pytest.approx(0.5)


def test_evaluate_and_summarize():
    P = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    Q = np.array([[0.0, 0.0, 0.0], [3.0, 4.0, 0.0]])
    ev = evaluate(_T(RZ90, (0, 0, 0.1)), _T(), P, Q)
    assert ev["rot_err"] == pytest.approx(90.0) and ev["trans_err"] == pytest.approx(0.1)
    assert ev["mse"] == pytest.approx(2.01) and ev["success"] is False
    ok = evaluate(_T(), _T(t=(0, 0, 0.2)), P, Q)
    assert ok["success"] is True
    s = summarize([ev, ok], [1.0, 3.0])
    assert s["recall"] == pytest.approx(0.5) and s["median_s"] == pytest.approx(2.0)
    assert s["rot_err"] == pytest.approx(45.0)
