"""Attribute dependency (thesis §6.3.2) on hand-computed logits."""
import pytest
import torch

from fe_fast.editing.metrics import attribute_dependency


def test_hand_computed():
    before = torch.tensor([[0.0, 1.0, 2.0], [1.0, 3.0, 0.0]])
    after = torch.tensor([[2.0, 1.5, 1.0], [4.0, 3.0, 0.0]])
    std = torch.tensor([1.0, 0.5, 2.0])
    ad = attribute_dependency(before, after, 0, std)
    assert ad.ad_t == pytest.approx((2 + 3) / 2)
    # others: sample 0: 0.5/0.5 = 1, 1/2 = 0.5; sample 1: 0, 0 -> mean 0.375
    assert ad.ad_o == pytest.approx(0.375)
    assert ad.ratio == pytest.approx(2.5 / 0.375)
    ad_default = attribute_dependency(before, after, 1)
    std_b = before.std(0)
    assert ad_default.ad_t == pytest.approx(0.25)
    assert ad_default.ad_o == pytest.approx(float(((torch.tensor([[2.0, 1.0], [3.0, 0.0]]) / std_b[[0, 2]]).mean())))


def test_bad_input():
    b = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="target"):
        attribute_dependency(b, b, 3)
    with pytest.raises(ValueError, match="\\[N, K\\]"):
        attribute_dependency(b, torch.zeros(2, 2), 0)
    with pytest.raises(ValueError, match="positive"):
        attribute_dependency(b, b, 0, torch.tensor([1.0, 0.0, 1.0]))
