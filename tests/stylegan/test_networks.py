"""Generator / Discriminator shapes, the S-space table (thesis Table 6-2) and S <-> w consistency."""
import pytest
import torch

from fe_fast.ops.reference.modulated_conv import modulated_conv2d_reference
from fe_fast.stylegan import Discriminator, Generator
from fe_fast.stylegan.networks import modconv_impl

# thesis Table 6-2: (w+ index, channels, output resolution) for s^0 .. s^25
TABLE_6_2 = [
    (0, 512, 4), (1, 512, 4), (1, 512, 8), (2, 512, 8), (3, 512, 8), (3, 512, 16), (4, 512, 16), (5, 512, 16),
    (5, 512, 32), (6, 512, 32), (7, 512, 32), (7, 512, 64), (8, 512, 64), (9, 512, 64), (9, 512, 128),
    (10, 256, 128), (11, 256, 128), (11, 256, 256), (12, 128, 256), (13, 128, 256), (13, 128, 512),
    (14, 64, 512), (15, 64, 512), (15, 64, 1024), (16, 32, 1024), (17, 32, 1024),
]


def test_s_layer_table_at_1024_matches_thesis_table_6_2():
    # parameters only (~120 MB), no synthesis activations. (The meta device works too, but its
    # first use imports torch's meta registrations, ~10 s on the CI machine.)
    G = Generator(1024, seed=0)
    with torch.no_grad():
        s = G.synthesis.w_to_s(torch.zeros(2, 18, 512))
    layers = G.synthesis.s_layers
    assert G.num_ws == 18 and len(layers) == 26
    assert [(t.w_index, t.channels, t.resolution) for t in layers] == TABLE_6_2
    assert sum(t.channels for t in layers if t.kind == "conv") == 6048
    assert sum(t.channels for t in layers if t.kind == "torgb") == 3040
    assert [t.kind for t in layers].count("torgb") == 9
    assert [t.index for t in layers] == list(range(26))
    assert [tuple(x.shape) for x in s] == [(2, t.channels) for t in layers]
    assert layers[0].name == "b4.conv1" and layers[-1].name == "b1024.torgb"
    # config-f size: about 30 M parameters in G
    n = sum(p.numel() for p in G.parameters())
    assert 28e6 < n < 32e6


@pytest.mark.parametrize("res", [8, 32])
def test_shapes_and_s_equals_w(res):
    G = Generator(res, z_dim=32, w_dim=24, n_mlp=3, channel_max=16, seed=0)
    z = torch.randn(3, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        w = G.mapping(z)
        assert w.shape == (3, 24)
        ws = G.truncate(w)
        assert ws.shape == (3, G.num_ws, 24) and G.num_ws == 2 * (res.bit_length() - 1) - 2
        s = G.synthesis.w_to_s(ws)
        assert len(s) == len(G.s_layers) == 3 * (res.bit_length() - 3) + 2
        img_w = G.synthesis(ws, noise_mode="const")
        img_s = G.synthesis(s=s, noise_mode="const")
        assert img_w.shape == (3, 3, res, res)
        torch.testing.assert_close(img_s, img_w, rtol=0, atol=0)
        torch.testing.assert_close(G(z, noise_mode="const"), img_w, rtol=0, atol=0)
        # editing one S channel changes the image, the other layers' s stay the same
        s2 = [x.clone() for x in s]
        s2[3][:, 0] += 5
        assert not torch.equal(G.synthesis(s=s2, noise_mode="const"), img_w)
    D = Discriminator(res, channel_max=16, seed=0)
    assert D(img_w).shape == (3, 1)


def test_truncation_uses_tracked_average():
    G = Generator(8, z_dim=16, w_dim=16, n_mlp=2, channel_max=8, seed=0)
    z = torch.randn(4, 16)
    with torch.no_grad():
        G.mapping(z, update_w_avg=True)
        assert G.mapping.w_avg.abs().sum() > 0
        w = G.mapping(z)
        wt = G.mapping(z, truncation_psi=0.0)
        torch.testing.assert_close(wt, G.mapping.w_avg.expand_as(w))
        ws = G.truncate(w, psi=0.5, cutoff=2)
        torch.testing.assert_close(ws[:, :2], G.mapping.w_avg.lerp(w, 0.5)[:, None].expand(-1, 2, -1))
        torch.testing.assert_close(ws[:, 2:], w[:, None].expand(-1, G.num_ws - 2, -1))


def test_modulated_layers_use_the_op_and_match_grouped_reference():
    """Every modulated layer goes through one function: swapping in the grouped-conv reference
    (the formulation of the reference implementations) gives the same images."""
    G = Generator(16, z_dim=16, w_dim=16, n_mlp=2, channel_max=16, seed=2).double()
    z = torch.randn(2, 16, dtype=torch.float64)
    calls = []

    def counting_ref(*a, **k):
        calls.append(1)
        return modulated_conv2d_reference(*a, **k)

    with torch.no_grad():
        ours = G(z, noise_mode="const")
        with modconv_impl(counting_ref):
            ref = G(z, noise_mode="const")
    assert len(calls) == len(G.s_layers)
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-10)


def test_double_backward_through_generator():
    """Path-length regularisation needs d/dparams of d(img)/d(ws)."""
    G = Generator(8, z_dim=8, w_dim=8, n_mlp=1, channel_max=8, seed=0)
    ws = G.mapping(torch.randn(2, 8)).unsqueeze(1).repeat(1, G.num_ws, 1)
    img = G.synthesis(ws)
    (g,) = torch.autograd.grad(img.square().sum(), ws, create_graph=True)
    g.square().sum().backward()
    assert G.synthesis.blocks[1].conv0.weight.grad is not None
    assert G.synthesis.blocks[1].conv0.weight.grad.abs().sum() > 0


def test_multiscale_discriminator_scores_box_downsampled_copies():
    import torch.nn.functional as F

    from fe_fast.stylegan.discriminator import MultiScaleDiscriminator, build_discriminator

    x = torch.randn(4, 3, 16, 16)
    D = MultiScaleDiscriminator(16, scales=2, channel_max=16, mbstd_group=2, seed=3)
    with torch.no_grad():
        out = D(x)
        assert out.shape == (4, 2)
        # column 0: the single critic of the same seed on the image; column 1: a 8x8 critic (seed + 1)
        # on the 2x2-averaged image
        torch.testing.assert_close(out[:, :1], Discriminator(16, channel_max=16, mbstd_group=2, seed=3)(x))
        coarse = Discriminator(8, channel_max=16, mbstd_group=2, seed=4)
        torch.testing.assert_close(out[:, 1:], coarse(F.avg_pool2d(x, 2)))
        D2 = build_discriminator(D.config)
        D2.load_state_dict(D.state_dict())
        assert isinstance(D2, MultiScaleDiscriminator)
        torch.testing.assert_close(D2(x), out)
        single = Discriminator(16, channel_max=16, seed=0)
        assert type(build_discriminator(single.config)) is Discriminator
    with pytest.raises(ValueError, match="scales"):
        MultiScaleDiscriminator(16, scales=3)  # 16 / 4 = 4 < 8


def test_plain_discriminator_layout_reload_and_double_backward():
    import torch.nn.functional as F

    from fe_fast.stylegan.discriminator import PlainDiscriminator, build_discriminator

    D = PlainDiscriminator(16, channel_max=16, mbstd_group=2, seed=3)
    # 2x input (32), stride-2 conv to 16, then conv + stride-2 conv at 16 and 8: maps of 16, 8, 4
    assert [(c.stride[0], c.out_channels) for c in D.convs] == [(2, 16), (1, 16), (2, 16), (1, 16), (2, 16)]
    x = torch.randn(4, 3, 16, 16, requires_grad=True)
    out = D(x)
    assert out.shape == (4, 1)
    # the first conv reads the bicubic 2x up-sampled image
    first = F.leaky_relu(D.convs[0](F.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False)), 0.2)
    assert first.shape[-1] == 16
    D2 = build_discriminator(D.config)
    D2.load_state_dict(D.state_dict())
    assert type(D2) is PlainDiscriminator and D.config["arch"] == "plain"
    with pytest.raises(ValueError, match="unknown critic layout"):
        build_discriminator({**D.config, "arch": "vgg"})
    torch.testing.assert_close(D2(x), out)
    torch.testing.assert_close(PlainDiscriminator(16, channel_max=16, mbstd_group=2, seed=3)(x), out)
    (g,) = torch.autograd.grad(out.sum(), x, create_graph=True)  # R1 / WGAN-GP need double backward
    g.square().sum().backward()
    assert D.convs[0].weight.grad is not None and D.convs[0].weight.grad.abs().sum() > 0
    Da = PlainDiscriminator(16, channel_max=16, n_attributes=3, seed=0)
    assert Da.attribute_logits(x.detach()).shape == (4, 3) and Da.config["n_attributes"] == 3
    with pytest.raises(RuntimeError, match="attribute head"):
        D.attribute_logits(x)
    with pytest.raises(ValueError, match=r"\[B, 3, 16, 16\]"):
        D(torch.randn(2, 3, 8, 8))


def test_bad_inputs_raise_value_error():
    with pytest.raises(ValueError, match="resolution"):
        Generator(24)
    with pytest.raises(ValueError, match="resolution"):
        Discriminator(4)
    G = Generator(8, z_dim=8, w_dim=8, n_mlp=1, channel_max=8, seed=0)
    with pytest.raises(ValueError, match="z must have shape"):
        G(torch.randn(2, 9))
    with pytest.raises(ValueError, match="exactly one"):
        G.synthesis()
    s = G.synthesis.w_to_s(torch.randn(2, 8))
    with pytest.raises(ValueError, match="list of 5"):
        G.synthesis(s=s[:-1])
    s[2] = s[2][:, :3]
    with pytest.raises(ValueError, match=r"s\[2\]"):
        G.synthesis(s=s)
    with pytest.raises(ValueError, match="noise_mode"):
        G(torch.randn(1, 8), noise_mode="fixed")


def test_seeded_construction_is_deterministic():
    a = Generator(8, z_dim=8, w_dim=8, n_mlp=1, channel_max=8, seed=5)
    b = Generator(8, z_dim=8, w_dim=8, n_mlp=1, channel_max=8, seed=5)
    for (k, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(x, y), k
    torch.testing.assert_close(a.sample(2, seed=1), b.sample(2, seed=1), rtol=0, atol=0)
