"""The encoder adapted to the input size (encoder_layout): Table 4-2 unchanged from 9x9 to 40x40 pixels
(28x28 included), more stride-2 layers beyond, the last feature map at most MAX_CODE_SIDE a side;
fewer below, the last map keeping at least latent_dim values."""
import math

import pytest
import torch

from fe_fast.clustering.autoencoder import (
    ENCODER_CHANNELS, ENCODER_STRIDES, MAX_CODE_SIDE, ConvAutoencoder, encoder_geometry, encoder_layout,
)


@pytest.mark.parametrize("hw", [(9, 9), (16, 16), (20, 13), (28, 28), (32, 32), (40, 40)])
def test_table_4_2_unchanged_from_9_to_40_pixels(hw):
    chans, strides, pads = encoder_layout(*hw)
    assert chans == ENCODER_CHANNELS and strides == ENCODER_STRIDES and pads == (1, 1, 1, 1, 0, 1)
    # the adapted model is the very model Table 4-2's fixed strides build (same weights for a seed)
    torch.manual_seed(0)
    a = ConvAutoencoder(1, *hw)
    torch.manual_seed(0)
    b = ConvAutoencoder(1, *hw, strides=ENCODER_STRIDES)
    assert a.sizes == b.sizes and a.flat_dim == b.flat_dim
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)


@pytest.mark.parametrize("hw, strides", [
    ((64, 64), (2, 2, 1, 2, 2, 1)),
    ((128, 128), (2, 2, 2, 2, 2, 1)),
    ((256, 256), (2, 2, 2, 2, 2, 2)),
    ((512, 512), (2, 2, 2, 2, 2, 2, 2)),
    ((96, 40), (2, 2, 2, 2, 2, 1)),
])
def test_larger_images_get_more_stride_2_layers(hw, strides):
    chans, got, pads = encoder_layout(*hw)
    assert got == strides
    assert chans[-len(ENCODER_CHANNELS):] == ENCODER_CHANNELS and len(chans) == len(strides)
    last = encoder_geometry(*hw, got, pads)[1][-1]
    assert max(last) <= MAX_CODE_SIDE
    # one fewer stride-2 layer would leave a larger map: the layout is the shallowest that fits
    if len(got) == len(ENCODER_STRIDES):
        fewer = list(got)
        fewer[max(i for i, s in enumerate(got) if s == 2 and ENCODER_STRIDES[i] == 1)] = 1
        assert max(encoder_geometry(*hw, fewer, pads)[1][-1]) > MAX_CODE_SIDE


@pytest.mark.parametrize("hw, latent, strides", [
    ((8, 8), 128, (1, 2, 1, 2, 1, 1)),      # 8x8 digits: a 2x2 map (128 values), not 1x1 (32)
    ((4, 4), 128, (1, 2, 1, 1, 1, 1)),
    ((8, 8), 32, ENCODER_STRIDES),         # a 1x1 map of 32 values is enough for a 32-d code
    ((16, 16), 256, (1, 2, 1, 2, 1, 1)),   # 2x2 (128 values) < 256 -> 4x4
])
def test_tiny_images_keep_latent_dim_values(hw, latent, strides):
    ae = ConvAutoencoder(1, *hw, latent_dim=latent)
    assert ae.strides == strides and ae.flat_dim >= latent
    assert encoder_layout(*hw, min_values=latent)[1] == strides
    # the shallowest change that reaches latent_dim values: one stride-1 layer fewer falls short
    if strides != ENCODER_STRIDES:
        more = list(strides)
        more[min(i for i, s in enumerate(strides) if s == 1 and ENCODER_STRIDES[i] == 2)] = 2
        assert 32 * math.prod(encoder_geometry(*hw, more)[1][-1]) < latent
    z, rec = ae(torch.rand(2, 1, *hw))
    assert z.shape == (2, latent) and rec.shape == (2, 1, *hw)


@pytest.mark.parametrize("hw, latent", [((9, 40), 128), ((8, 20), 128), ((28, 28), 512), ((64, 9), 128)])
def test_min_values_never_breaks_max_side(hw, latent):
    """Too few values for the code, but one stride-2 layer fewer would leave a map larger than
    MAX_CODE_SIDE: the map that fits wins."""
    ae = ConvAutoencoder(1, *hw, latent_dim=latent)
    assert max(ae.sizes[-1]) <= MAX_CODE_SIDE
    if ae.flat_dim < latent and 2 in ae.strides:
        fewer = list(ae.strides)
        fewer[len(fewer) - 1 - fewer[::-1].index(2)] = 1
        base_pads = encoder_layout(*hw, min_values=latent)[2]
        assert max(encoder_geometry(*hw, fewer, base_pads)[1][-1]) > MAX_CODE_SIDE


def test_adapted_autoencoder_runs_on_colour_images():
    ae = ConvAutoencoder(3, 72, 56, latent_dim=16)
    z, rec = ae(torch.rand(2, 3, 72, 56))
    assert z.shape == (2, 16) and rec.shape == (2, 3, 72, 56)
    assert max(ae.sizes[-1]) <= MAX_CODE_SIDE and ae.flat_dim <= 32 * MAX_CODE_SIDE ** 2
    with pytest.raises(ValueError, match="same length"):
        encoder_layout(64, 64, channels=(2, 16))


def test_derc_fits_colour_images_larger_than_table_4_2():
    """DERC end to end on 48x56 RGB images (an adapted encoder: conv1 stride 2)."""
    import numpy as np

    from fe_fast.clustering import DERC

    rng = np.random.default_rng(0)
    X = np.concatenate([rng.integers(0, 90, (8, 48, 56, 3)), rng.integers(150, 256, (8, 48, 56, 3))]).astype(np.uint8)
    m = DERC(2, stage1_epochs=1, stage2_rounds=1, latent_dim=8, reducer="none", gmm_n_init=1, batch_size=8).fit(X)
    assert m.image_shape_ == (3, 48, 56) and m.model_.strides == (2, 2, 1, 2, 2, 1)
    assert m.embedding_.shape == (16, 8) and m.transform(X[:2]).shape == (2, 8)
    # two well separated brightness groups: the clusters are the groups
    assert len(set(m.labels_[:8])) == 1 and len(set(m.labels_[8:])) == 1 and m.labels_[0] != m.labels_[8]
