"""Inversion (fe_fast.stylegan.project): projecting a generated image recovers it."""
import pytest
import torch

from fe_fast.stylegan import Generator
from fe_fast.stylegan.project import VGGPerceptual, multiscale_distance, project, psnr


@pytest.fixture(scope="module")
def small():
    G = Generator(16, z_dim=32, w_dim=32, n_mlp=2, channel_max=32, seed=0).eval()
    with torch.no_grad():
        target = G(torch.randn(1, 32, generator=torch.Generator().manual_seed(5)), noise_mode="const")
        start = G.synthesis(ws=G.mapping(torch.randn(1024, 32, generator=torch.Generator().manual_seed(0)))
                            .mean(0, keepdim=True), noise_mode="const")
    return G, target, psnr(start, target)


@pytest.mark.parametrize("space", ["w+", "s"])
def test_projection_recovers_a_generated_image(small, space):
    G, target, start_psnr = small
    r = project(G, target, space=space, steps=120, lr=0.1, progress=False, w_avg_samples=1024)
    # measured: 5.4 dB at the average w; ~23 (w+) / ~27 (s) dB after 200 steps
    assert start_psnr < 8 and r.psnr > 18, (start_psnr, r.psnr)
    assert r.history[-1] < r.history[0]
    assert len(r.s) == len(G.synthesis.s_layers) and r.ws.shape == (1, G.synthesis.num_ws, 32)
    with torch.no_grad():  # the returned codes reproduce the returned image
        torch.testing.assert_close(G.synthesis(s=r.s, noises=r.noises), r.image)
    assert r.perceptual.startswith("multiscale")


def test_distances_and_bad_input(small, tmp_path):
    G, target, _ = small
    assert float(multiscale_distance(target, target)) == 0.0
    assert float(multiscale_distance(target, -target)) > 0.1
    with pytest.raises(FileNotFoundError, match="VGG-16"):
        VGGPerceptual(tmp_path / "vgg16-397923af.pth")
    with pytest.raises(ValueError, match="vgg_weights"):
        project(G, target, perceptual="vgg", steps=1, progress=False)
    with pytest.raises(ValueError, match="RGB"):
        project(G, target[:, :1], steps=1, progress=False)
    with pytest.raises(ValueError, match="float"):
        project(G, (target * 127).to(torch.uint8), steps=1, progress=False)
    bad = target.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        project(G, bad, steps=1, progress=False)
    with pytest.raises(ValueError, match="space"):
        project(G, target, space="z", steps=1, progress=False)


def test_vgg_feature_distance_channel_weights():
    # the LPIPS weighting of VGGPerceptual: per-layer channel weights on the normalised difference
    from fe_fast.stylegan.features import VGG16Features

    g = torch.Generator().manual_seed(0)
    fa = [torch.randn(2, c, 4, 4, generator=g) for c in (3, 5)]
    fb = [torch.randn(2, c, 4, 4, generator=g) for c in (3, 5)]
    plain = VGG16Features.distance(fa, fb)
    ones = [torch.ones(1, c, 1, 1) for c in (3, 5)]
    torch.testing.assert_close(VGG16Features.distance(fa, fb, ones), plain)
    only_first = [torch.ones(1, 3, 1, 1), torch.zeros(1, 5, 1, 1)]
    torch.testing.assert_close(VGG16Features.distance(fa, fb, only_first), VGG16Features.distance(fa[:1], fb[:1]))
