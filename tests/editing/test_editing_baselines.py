"""Baselines of thesis Table 6-4 on the planted generator: StyleSpace (attribute and region
detectors) find the planted channel; InterFaceGAN and GANSpace give unit W directions that move the
target logit."""
import pytest
import torch

from fe_fast.editing.baselines import ganspace, interfacegan, stylespace_attribute, stylespace_region
from fe_fast.editing.locate import classify, sample_styles

from planted import PLANT_CHANNEL, PLANT_LAYER, PatchParser


def test_stylespace_detectors_find_planted(G, clf):
    cs = stylespace_attribute(G, clf, "red_patch", n_samples=48, k=2, max_positives=12)
    assert (cs[0].layer, cs[0].channel, cs[0].sign) == (PLANT_LAYER, PLANT_CHANNEL, 1.0)
    reg = stylespace_region(G, PatchParser(), "patch", n_samples=1, k=2)
    assert (reg[0].layer, reg[0].channel) == (PLANT_LAYER, PLANT_CHANNEL)


@pytest.mark.parametrize("method", [interfacegan, ganspace])
def test_w_directions_move_the_target(G, clf, method):
    d = method(G, clf, "red_patch", n_samples=48)
    assert torch.linalg.norm(d.direction).item() == pytest.approx(1.0, abs=1e-5) and d.sigma > 0
    w, _ = sample_styles(G, 6, seed=9)
    before = classify(G, clf, G.synthesis.w_to_s(w))[:, 0]
    after = classify(G, clf, d.edit(G, w, 2.0))[:, 0]
    assert float((after - before).mean()) > 0


def test_interfacegan_needs_both_classes(G, clf):
    with pytest.raises(ValueError, match="positives and negatives"):
        interfacegan(G, clf, "red_patch", n_samples=8, threshold=1.0)


def test_stylespace_region_feeds_a_self_resizing_parser_the_generator_image(G, monkeypatch):
    """A parser that resizes its input itself (``input_size``: BiSeNetParser) gets G's images as
    they are, once resized (by itself), as locate() feeds it; not first brought down to 256."""
    import importlib

    import torch.nn.functional as F

    B = importlib.import_module("fe_fast.editing.baselines")
    L = importlib.import_module("fe_fast.editing.locate")
    real = L.render

    def render_512(G_, s, noise_mode="const"):  # G's 16x16 image shown at 320x320 (nearest: same patch)
        return F.interpolate(real(G_, s, noise_mode), size=(320, 320), mode="nearest")

    monkeypatch.setattr(B, "render", render_512)
    monkeypatch.setattr(L, "render", render_512)

    class SelfResizingParser(PatchParser):
        input_size = 320

        def __init__(self):
            super().__init__()
            self.seen = set()

        def forward(self, x):
            self.seen.add(tuple(x.shape[-2:]))
            return super().forward(x)

    parser = SelfResizingParser()
    reg = stylespace_region(G, parser, "patch", n_samples=1, k=2, kinds=("conv",))
    assert parser.seen == {(320, 320)}
    assert (reg[0].layer, reg[0].channel) == (PLANT_LAYER, PLANT_CHANNEL)
    toy = PatchParser()
    toy.seen, toy_forward = set(), toy.forward
    toy.forward = lambda x: toy.seen.add(tuple(x.shape[-2:])) or toy_forward(x)
    stylespace_region(G, toy, "patch", n_samples=1, k=2)
    assert toy.seen == {(256, 256)}  # a toy parser (no input_size) reads at most 256x256
