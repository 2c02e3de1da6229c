"""Channel localisation (thesis eq. 6-2, 6-4..6-6, §6.3.4 ablations) on a tiny generator with a
planted channel (tests/editing/planted.py): every detector must rank the planted channel first."""
import pytest
import torch

from fe_fast.editing.locate import flatten_s, locate, per_sample_grads, sample_styles

from planted import PLANT_CHANNEL, PLANT_LAYER, PatchParser

N_ATTR = 48  # small: CI budget
KW = dict(n_samples=N_ATTR, k=3, max_positives=12, batch_size=12)


def test_region_detector_ranks_planted_first(G):
    cs = locate(G, PatchParser(), "patch", n_samples=16, k=3, batch_size=16)
    assert (cs[0].layer, cs[0].channel, cs[0].rank) == (PLANT_LAYER, PLANT_CHANNEL, 1)
    assert cs.layers == [PLANT_LAYER]  # layer selection first (layers="auto")
    assert int(torch.argmax(cs.layer_response)) == PLANT_LAYER
    assert cs[0].sign == 1.0  # +s adds red: the region gets brighter
    assert [c.rank for c in cs] == [1, 2, 3] and cs.n_positives == 16
    assert "(3, 5, 1)" in cs.table()


@pytest.mark.parametrize("selection", ["layerwise", "global", "whole"])
def test_attribute_detector_ranks_planted_first(G, clf, selection):
    cs = locate(G, clf, "red_patch", selection=selection, **KW)
    assert (cs[0].layer, cs[0].channel) == (PLANT_LAYER, PLANT_CHANNEL)
    assert cs.n_positives == 12 and cs.n_samples == N_ATTR
    assert cs[0].sign == 1.0  # increasing the planted s makes the patch redder
    js = cs.to_json()
    assert js[0] == {"layer": PLANT_LAYER, "channel": PLANT_CHANNEL, "rank": 1, "score": cs[0].score}
    if selection == "layerwise":
        assert all(c.layer == PLANT_LAYER for c in cs)


def test_explicit_layers_and_torgb_kinds(G, clf):
    cs = locate(G, clf, "red_patch", layers=[0, 6], **KW)
    assert [c.layer for c in cs] == [0, 0, 0, 6, 6, 6]
    assert [c.rank for c in cs] == [1, 2, 3, 1, 2, 3]
    cs2 = locate(G, clf, "red_patch", kinds=("conv", "torgb"), layers="all", **KW)
    assert {c.layer for c in cs2} == set(range(len(G.s_layers)))


def test_batched_gradients_equal_per_sample_loop(G, clf):
    """The summed-loss trick is exact: samples are independent in G and in the eval-mode teacher."""
    _, s = sample_styles(G, 5, seed=3)
    clf.eval()

    def obj(img, start):
        return torch.nn.functional.softplus(-clf(img)[:, 0])

    batched = per_sample_grads(G, s, obj, batch_size=5)
    single = torch.cat([per_sample_grads(G, [t[i:i + 1] for t in s], obj, batch_size=1) for i in range(5)])
    torch.testing.assert_close(batched, single, rtol=1e-4, atol=1e-7)
    assert batched.shape == flatten_s(s).shape


def test_bad_input(G, clf):
    with pytest.raises(ValueError, match="unknown attribute 'smiling'"):
        locate(G, clf, "smiling", n_samples=4)
    with pytest.raises(ValueError, match="unknown region 'mouth'"):
        locate(G, PatchParser(), "mouth", n_samples=4)
    with pytest.raises(ValueError, match="out of range"):
        locate(G, clf, "red_patch", layers=[99], n_samples=4)
    with pytest.raises(ValueError, match="k must be"):
        locate(G, clf, "red_patch", k=0, n_samples=4)
    with pytest.raises(ValueError, match="no positive sample"):
        locate(G, clf, "red_patch", n_samples=8, threshold=1.0)


def test_triton_backend_gives_the_same_channels(G):
    """locate() reduces through ops.s_grad_reduce; the Triton backend (interpreter on CPU) agrees."""
    import importlib.util
    import os

    if importlib.util.find_spec("triton") is None or os.environ.get("TRITON_INTERPRET") != "1":
        pytest.skip("needs triton with TRITON_INTERPRET=1 (set by tests/conftest.py)")
    a = locate(G, PatchParser(), "patch", n_samples=8, k=2, batch_size=8, layers="all")
    b = locate(G, PatchParser(), "patch", n_samples=8, k=2, batch_size=8, layers="all", backend="triton")
    assert [(c.layer, c.channel) for c in a] == [(c.layer, c.channel) for c in b]
    torch.testing.assert_close(a.layer_response, b.layer_response, rtol=1e-5, atol=1e-8)
