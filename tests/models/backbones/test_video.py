import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

import mgr.models.backbones.video as video_mod
from mgr.models.backbones.video import adapt_input_channels, r2plus1d_backbone, swin3d_backbone

pytestmark = pytest.mark.usefixtures("one_thread")


def _clip(c: int = 3, b: int = 2, t: int = 8, s: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.randn(b, c, t, s, s, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------- adapt_input_channels
@pytest.mark.parametrize("channels", [1, 2, 3, 5])
def test_adapt_input_channels_keeps_the_response_to_uniform_input(channels):
    w = torch.randn(8, 3, 2, 4, 4, generator=torch.Generator().manual_seed(channels))
    new = adapt_input_channels(w, channels)
    assert new.shape == (8, channels, 2, 4, 4)
    if channels == 3:
        assert torch.equal(new, w) and new.data_ptr() != w.data_ptr()
    elif channels == 1:
        torch.testing.assert_close(new[:, 0], w.sum(1))
    else:
        for k in range(channels):
            torch.testing.assert_close(new[:, k], w.mean(1) * 3 / channels)
    # A uniform input (same value everywhere, on every channel) gives the same pre-activation.
    u = 0.7
    before = F.conv3d(torch.full((1, 3, 2, 4, 4), u), w)
    after = F.conv3d(torch.full((1, channels, 2, 4, 4), u), new)
    torch.testing.assert_close(after, before, atol=1e-5, rtol=1e-5)


def test_adapt_input_channels_rejects_non_rgb_weights():
    with pytest.raises(ValueError, match=r"\(O, 3"):
        adapt_input_channels(torch.zeros(8, 2, 1, 7, 7), 3)
    with pytest.raises(ValueError, match="in_channels"):
        adapt_input_channels(torch.zeros(8, 3, 1, 7, 7), 0)


# ---------------------------------------------------------------- swin3d
@pytest.fixture(scope="module")
def tv_swin() -> nn.Module:
    """A randomly initialised torchvision swin3d_t with its classifier removed."""
    torch.manual_seed(0)
    tv = torchvision.models.video.swin3d_t().eval()
    tv.head = nn.Identity()
    return tv


def _meta_swin(**kwargs) -> nn.Module:
    # Built without memory or initialisation; the test assigns torchvision's tensors.
    with torch.device("meta"):
        return swin3d_backbone("t", **kwargs)


def test_swin3d_backbone_is_torchvision_swin3d_t_without_head(tv_swin):
    ours = _meta_swin().eval()
    assert ours.out_channels == 768
    # Same names as torchvision minus the classifier: the state dict loads strictly.
    ours.load_state_dict(tv_swin.state_dict(), strict=True, assign=True)
    x = _clip()
    with torch.no_grad():
        feats = ours(x)
        assert feats.shape == (2, 768)
        torch.testing.assert_close(feats, tv_swin(x), atol=1e-6, rtol=0)


def test_swin3d_backbone_options():
    model = swin3d_backbone("t", in_channels=2, stochastic_depth_prob=0.3).eval()
    assert model.patch_embed.proj.in_channels == 2
    assert model.patch_embed.proj.weight.shape == (96, 2, 2, 4, 4)
    # torchvision ramps the rate linearly to its maximum on the last block.
    assert model.features[6][-1].stochastic_depth.p == pytest.approx(0.3)
    with torch.no_grad():
        assert model(_clip(c=2, b=1, t=4)).shape == (1, 768)
    with pytest.raises(ValueError, match="variant"):
        swin3d_backbone("x")  # type: ignore[arg-type]


def test_swin3d_gradient_checkpointing_gives_the_same_gradients(monkeypatch, tv_swin):
    calls = []
    real = video_mod.checkpoint

    def counting(fn, *args, **kwargs):
        calls.append(fn)
        return real(fn, *args, **kwargs)

    monkeypatch.setattr(video_mod, "checkpoint", counting)
    model = _meta_swin(stochastic_depth_prob=0.5)
    model.load_state_dict(tv_swin.state_dict(), assign=True)
    model.train()
    x = _clip(b=1, t=4)

    def grads(checkpointing: bool) -> list[torch.Tensor]:
        model.gradient_checkpointing = checkpointing
        model.zero_grad()
        torch.manual_seed(1)  # the same stochastic-depth draws in both runs
        model(x).square().sum().backward()
        return [p.grad.clone() for p in model.parameters()]

    plain = grads(False)
    assert calls == []
    checkpointed = grads(True)
    assert len(calls) == len(model.features) == 7  # 4 stages + 3 patch mergings
    for a, b in zip(plain, checkpointed, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    # No recomputation in eval mode.
    calls.clear()
    with torch.no_grad():
        model.eval()(x)
    assert calls == []


# ---------------------------------------------------------------- R(2+1)D
def test_r2plus1d_18_backbone_is_torchvision_r2plus1d_18_without_fc():
    torch.manual_seed(0)
    tv = torchvision.models.video.r2plus1d_18().eval()
    for m in tv.modules():  # non-trivial BN statistics, so eval-mode BN is compared too
        if isinstance(m, nn.BatchNorm3d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    tv.fc = nn.Identity()
    ours = r2plus1d_backbone(18).eval()
    assert ours.out_channels == 512
    ours.load_state_dict(tv.state_dict(), strict=True)
    x = _clip()
    with torch.no_grad():
        torch.testing.assert_close(ours(x), tv(x), atol=1e-5, rtol=0)


def test_r2plus1d_34_layout_and_input_channels():
    model = r2plus1d_backbone(34, in_channels=2).eval()
    assert [len(getattr(model, f"layer{i}")) for i in range(1, 5)] == [3, 4, 6, 3]
    assert isinstance(model.stem, torchvision.models.video.resnet.R2Plus1dStem)
    first = model.stem[0]
    assert (first.in_channels, first.out_channels, first.kernel_size) == (2, 45, (1, 7, 7))
    # Every block of the 34-layer net is a block of the 18-layer one (same key names).
    with torch.device("meta"):
        r18 = set(r2plus1d_backbone(18).state_dict())
    assert r18 <= set(model.state_dict())
    with torch.no_grad():
        assert model(_clip(c=2, b=1, t=4)).shape == (1, 512)
    with pytest.raises(ValueError, match="depth"):
        r2plus1d_backbone(50)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("variant", "weights", "dim"),
    [
        ("t", torchvision.models.video.Swin3D_T_Weights, 768),
        ("s", torchvision.models.video.Swin3D_S_Weights, 768),
        ("b", torchvision.models.video.Swin3D_B_Weights, 1024),
    ],
)
def test_swin3d_variants_have_torchvision_sizes(variant, weights, dim):
    # Built on the meta device (no memory, no init); sizes from torchvision's weight metadata.
    with torch.device("meta"):
        model = swin3d_backbone(variant)
    head = dim * 400 + 400
    assert model.out_channels == dim
    assert sum(p.numel() for p in model.parameters()) == weights.DEFAULT.meta["num_params"] - head
