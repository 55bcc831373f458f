import math

import pytest
import torch
from torch import nn

from mgr.models.backbones.temporal import (
    ConvEncoderLayer,
    DetectionHeads,
    DFAConv1d,
    DynamicEncoderLayer,
    MaskedConv1d,
    MSTAHead,
    SpatialTemporalAttention,
    TemporalDetectionNet,
    TemporalPyramid,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def _batch(b=2, c=6, t=24, valid=(24, 15), seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, c, t, generator=g)
    mask = torch.arange(t)[None, :] < torch.tensor(valid)[:, None]
    return x, mask[:, None, :]


def _perturb_padding(x, mask):
    """Garbage (incl. inf/NaN) at padded positions only."""
    noise = torch.randn_like(x) * 1e3
    noise[..., -1] = float("inf")
    noise[..., -2] = float("nan")
    return torch.where(mask, x, noise)


def _valid(a, mask):
    return a.masked_select(mask.expand_as(a))


# ---------------------------------------------------------------- MaskedConv1d


@pytest.mark.parametrize("stride", [1, 2])
def test_masked_conv_shapes_and_mask_downsampling(stride):
    conv = MaskedConv1d(6, 8, 3, stride=stride)
    x, mask = _batch(t=23, valid=(23, 10))
    out, out_mask = conv(x, mask)
    t_out = math.ceil(23 / stride)
    assert out.shape == (2, 8, t_out) and out_mask.shape == (2, 1, t_out)
    assert out_mask.dtype == torch.bool
    torch.testing.assert_close(out_mask, mask[..., ::stride])
    assert out_mask[1].sum() == math.ceil(10 / stride)
    assert (out.masked_select(~out_mask.expand_as(out)) == 0).all()


def test_masked_conv_rejects_even_kernels():
    with pytest.raises(ValueError, match="odd"):
        MaskedConv1d(2, 2, 4)


@pytest.mark.parametrize("stride", [1, 2])
def test_masked_conv_padding_never_leaks_and_matches_unpadded(stride):
    conv = MaskedConv1d(6, 8, 5, stride=stride)
    x, mask = _batch(valid=(24, 15))
    out, m = conv(x, mask)
    out2, _ = conv(_perturb_padding(x, mask), mask)
    torch.testing.assert_close(_valid(out, m), _valid(out2, m))
    # The short sequence alone, without padding, gives the same valid outputs.
    alone, _ = conv(x[1:, :, :15], mask[1:, :, :15])
    torch.testing.assert_close(alone[0], out[1][:, m[1, 0]])


# ---------------------------------------------------------------- encoder layers


def test_dfa_conv_starts_as_static_conv_with_uniform_taps():
    dfa = DFAConv1d(4, 4, 3, groups=4)
    x, mask = _batch(c=4, valid=(24, 24))
    m = dfa.tap_masks(x, mask)
    assert m.shape == (2, 1, 3, 24)
    torch.testing.assert_close(m, torch.full_like(m, math.tanh(1.0)))
    # Depth-wise: channel c of the output only sees channel c of the input.
    x.requires_grad_(True)
    dfa(x, mask)[0, 2, 10].backward()
    nz = x.grad[0].abs().sum(-1) > 0
    assert nz.tolist() == [False, False, True, False]


def test_dfa_conv_receptive_field_follows_kernel_and_dilation():
    dfa = DFAConv1d(3, 5, 3, dilation=2)
    x = torch.randn(1, 3, 20, requires_grad=True)
    mask = torch.ones(1, 1, 20, dtype=torch.bool)
    dfa(x, mask)[0, :, 10].sum().backward()
    frames = torch.nonzero(x.grad[0].abs().sum(0) > 0).squeeze(1).tolist()
    # taps at 8, 10, 12 plus the mask generator's depth-wise conv around them
    assert set(frames) <= set(range(6, 15)) and {8, 10, 12} <= set(frames)


@pytest.mark.parametrize("cls", [DynamicEncoderLayer, ConvEncoderLayer])
@pytest.mark.parametrize("stride", [1, 2])
def test_encoder_layers_shapes_and_masking(cls, stride):
    layer = cls(8, stride=stride).eval()
    x, mask = _batch(c=8, t=25, valid=(25, 13))
    out, m = layer(x, mask)
    assert out.shape == (2, 8, math.ceil(25 / stride))
    out2, _ = layer(_perturb_padding(x, mask), mask)
    torch.testing.assert_close(_valid(out, m), _valid(out2, m))
    assert torch.isfinite(out).all() and (out.masked_select(~m.expand_as(out)) == 0).all()


def test_dynamic_layer_is_input_dependent_at_the_tap_masks():
    layer = DynamicEncoderLayer(8)
    # Make the tap-mask generators non-trivial, as after training.
    for mod in layer.modules():
        if isinstance(mod, DFAConv1d):
            nn.init.normal_(mod.mask_gen[-1].weight)
    x, mask = _batch(c=8, valid=(24, 24))
    h = layer.norm(x)
    m1 = layer.local.tap_masks(h, mask)
    assert not torch.allclose(m1[0], m1[1])  # per-instance
    assert not torch.allclose(m1[0, ..., 3], m1[0, ..., 4])  # per-timestamp


# ---------------------------------------------------------------- pyramid


@pytest.mark.parametrize("arch", ["dyn", "conv"])
@pytest.mark.parametrize(("t", "lengths"), [(64, [64, 32, 16, 8]), (50, [50, 25, 13, 7])])
def test_pyramid_level_lengths_and_strides(arch, t, lengths):
    net = TemporalPyramid(6, embed_dim=16, num_levels=4, arch=arch)
    feats, masks = net(torch.randn(2, 6, t))
    assert [f.shape[-1] for f in feats] == lengths
    assert all(f.shape[:2] == (2, 16) for f in feats)
    assert [m.shape for m in masks] == [(2, 1, n) for n in lengths]
    assert net.strides == [1, 2, 4, 8]


@pytest.mark.parametrize("arch", ["dyn", "conv"])
def test_pyramid_padding_invariance_and_unpadded_equivalence(arch):
    net = TemporalPyramid(6, embed_dim=16, num_levels=4, arch=arch).eval()
    x, mask = _batch(t=40, valid=(40, 27))
    feats, masks = net(x, mask[:, 0])  # (B, T) masks are accepted too
    feats2, _ = net(_perturb_padding(x, mask), mask)
    alone, alone_masks = net(x[1:, :, :27])
    for f, f2, m, a in zip(feats, feats2, masks, alone, strict=True):
        torch.testing.assert_close(_valid(f, m), _valid(f2, m))
        torch.testing.assert_close(a[0], f[1][:, m[1, 0]], atol=1e-5, rtol=1e-4)
    assert [m[1].sum().item() for m in masks] == [m.shape[-1] for m in alone_masks]


def test_pyramid_rejects_wrong_channels_and_arch():
    with pytest.raises(ValueError, match=r"\(B, 6, T\)"):
        TemporalPyramid(6, embed_dim=8, num_levels=2)(torch.randn(1, 5, 8))
    with pytest.raises(ValueError, match="arch"):
        TemporalPyramid(6, arch="transformer")


# ---------------------------------------------------------------- MSTA head


def test_spatial_temporal_attention_shapes_and_padding():
    sta = SpatialTemporalAttention(8, reduction=2, kernel_size=7)
    assert sta.spatial.conv.kernel_size == (7,) and sta.spatial.conv.in_channels == 2
    x, mask = _batch(c=8, valid=(24, 9))
    out = sta(x, mask)
    assert out.shape == x.shape
    torch.testing.assert_close(
        _valid(out, mask), _valid(sta(_perturb_padding(x, mask), mask), mask)
    )
    # Fully padded sequence: finite zeros.
    empty = torch.zeros(1, 1, 24, dtype=torch.bool)
    assert (sta(x[:1], empty) == 0).all()


@pytest.mark.parametrize("num_levels", [1, 2, 4])
def test_msta_head_shapes_and_padding(num_levels):
    pyr = TemporalPyramid(6, embed_dim=16, num_levels=num_levels).eval()
    head = MSTAHead(16).eval()
    x, mask = _batch(t=37, valid=(37, 20))
    feats, masks = pyr(x, mask)
    out = head(feats, masks)
    assert [o.shape for o in out] == [f.shape for f in feats]
    feats2, _ = pyr(_perturb_padding(x, mask), mask)
    out2 = head(feats2, masks)
    for o, o2, m in zip(out, out2, masks, strict=True):
        torch.testing.assert_close(_valid(o, m), _valid(o2, m))


def test_msta_head_uses_neighbouring_levels():
    pyr = TemporalPyramid(6, embed_dim=8, num_levels=3).eval()
    feats, masks = pyr(torch.randn(1, 6, 16))
    feats = [f.detach().requires_grad_(True) for f in feats]
    MSTAHead(8)(feats, masks)[1].sum().backward()
    assert all(f.grad is not None and f.grad.abs().sum() > 0 for f in feats)
    feats = [f.detach().requires_grad_(True) for f in feats]
    MSTAHead(8, neighbours=False)(feats, masks)[1].sum().backward()
    assert feats[0].grad is None and feats[2].grad is None


# ---------------------------------------------------------------- heads


def test_detection_heads_shapes_prior_and_non_negative_offsets():
    heads = DetectionHeads(5, 16, prior_prob=0.01, num_levels=3, empty_classes=(4,))
    pyr = TemporalPyramid(6, embed_dim=16, num_levels=3)
    x, mask = _batch(t=32, valid=(32, 19))
    logits, offsets = heads(*pyr(x, mask))
    assert [tuple(t.shape) for t in logits] == [(2, 32, 5), (2, 16, 5), (2, 8, 5)]
    assert [tuple(t.shape) for t in offsets] == [(2, 32, 2), (2, 16, 2), (2, 8, 2)]
    assert all((o >= 0).all() for o in offsets)
    bias = heads.cls_head.out.conv.bias
    torch.testing.assert_close(bias[0], torch.tensor(-math.log(99.0)))
    assert torch.sigmoid(bias[4]) < 1e-5
    assert len(heads.scales) == 3
    with pytest.raises(ValueError, match="levels"):
        DetectionHeads(5, 16, num_levels=2)(*pyr(x, mask))


def test_detection_heads_softplus_and_per_level_scale():
    heads = DetectionHeads(2, 8, num_levels=2, offset_activation="softplus")
    feats = [torch.randn(1, 8, 8), torch.randn(1, 8, 4)]
    masks = [torch.ones(1, 1, 8, dtype=torch.bool), torch.ones(1, 1, 4, dtype=torch.bool)]
    _, off = heads(feats, masks)
    assert (off[0] > 0).all()
    with torch.no_grad():
        heads.scales[1].scale.fill_(0.0)
    _, off = heads(feats, masks)
    torch.testing.assert_close(off[1], torch.full_like(off[1], math.log(2.0)))


@pytest.mark.parametrize("arch", ["dyn", "conv"])
@pytest.mark.parametrize("msta", [True, False])
def test_detection_net_concatenates_levels(arch, msta):
    net = TemporalDetectionNet(6, 3, embed_dim=16, num_levels=3, arch=arch, msta=msta)
    x, mask = _batch(t=20, valid=(20, 11))
    out = net(x, mask[:, 0])
    assert out["lengths"] == [20, 10, 5]
    assert out["cls_logits"].shape == (2, 35, 3)
    assert out["offsets"].shape == (2, 35, 2)
    assert out["mask"].shape == (2, 35) and out["mask"][1].sum() == 11 + 6 + 3
    out["cls_logits"].sum().backward()  # differentiable end to end


def test_is_a_plain_module():
    import mgr.models.backbones.temporal as mod

    assert isinstance(TemporalDetectionNet(4, 2, embed_dim=8, num_levels=2), nn.Module)
    assert not any("lightning" in name.lower() for name in vars(mod))
