import pytest
import torch

from mgr.models.backbones.resnet3d_slowonly import ResNet3dSlowOnly, slowonly_r50_rgb
from mgr.models.backbones.rgbposeconv3d import (
    DeConvBNAct3d,
    LateralConv3d,
    ResNet3dPathway,
    RGBPoseConv3D,
)

pytestmark = pytest.mark.usefixtures("one_thread")

# RGB base 8 = 2 x pose base 4, as channel_ratio=4 requires (64 / 32 in the real model).
TINY = {
    "in_channels": 5,
    "rgb_base_channels": 8,
    "rgb_stage_blocks": (1, 1, 1, 1),
    "pose_base_channels": 4,
    "pose_stage_blocks": (1, 1, 1),
}


def _inputs(b=2, t=4, size=32, k=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    video = torch.randn(b, 3, t, size, size, generator=g)
    heatmap = torch.rand(b, k, 4 * t, size // 4, size // 4, generator=g)
    return video, heatmap


@pytest.fixture(scope="module")
def default_net():
    torch.manual_seed(0)
    return RGBPoseConv3D().eval()


def test_default_config_shapes_on_a_small_input(default_net):
    # RGB 8 x 64², heatmaps 32 x 16² (a quarter of the size, 4x the frames).
    with torch.no_grad():
        rgb, pose = default_net(torch.randn(1, 3, 8, 64, 64), torch.rand(1, 17, 32, 16, 16))
    assert rgb.shape == (1, 2048, 8, 2, 2)
    assert pose.shape == (1, 512, 32, 2, 2)
    assert default_net.rgb_out_channels == 2048 and default_net.pose_out_channels == 512


def test_default_state_dict_keys_follow_mmaction2(default_net):
    shapes = {k: tuple(v.shape) for k, v in default_net.state_dict().items()}
    expected = {
        # Laterals: pose -> RGB strided convs without norm, RGB -> pose deconv + BN.
        "rgb_path.layer2_lateral.conv.weight": (128, 128, 7, 1, 1),
        "rgb_path.layer3_lateral.conv.weight": (256, 256, 7, 1, 1),
        "pose_path.layer1_lateral.conv.weight": (512, 32, 7, 1, 1),
        "pose_path.layer1_lateral.bn.weight": (32,),
        "pose_path.layer1_lateral.bn.running_var": (32,),
        "pose_path.layer2_lateral.conv.weight": (1024, 64, 7, 1, 1),
        "pose_path.layer2_lateral.bn.bias": (64,),
        # Stems and stages (first blocks widened by the laterals).
        "rgb_path.conv1.conv.weight": (64, 3, 1, 7, 7),
        "rgb_path.layer1.0.conv1.conv.weight": (64, 64, 1, 1, 1),
        "rgb_path.layer3.0.conv1.conv.weight": (256, 512 + 128, 3, 1, 1),
        "rgb_path.layer3.0.downsample.conv.weight": (1024, 640, 1, 1, 1),
        "rgb_path.layer3.1.conv1.conv.weight": (256, 1024, 3, 1, 1),
        "rgb_path.layer4.0.conv1.conv.weight": (512, 1024 + 256, 3, 1, 1),
        "rgb_path.layer4.0.downsample.conv.weight": (2048, 1280, 1, 1, 1),
        "pose_path.conv1.conv.weight": (32, 17, 1, 7, 7),
        "pose_path.layer1.0.conv1.conv.weight": (32, 32, 1, 1, 1),
        "pose_path.layer2.0.conv1.conv.weight": (64, 128 + 32, 3, 1, 1),
        "pose_path.layer2.0.downsample.conv.weight": (256, 160, 1, 1, 1),
        "pose_path.layer3.0.conv1.conv.weight": (128, 256 + 64, 3, 1, 1),
        "pose_path.layer3.2.conv3.bn.weight": (512,),
    }
    assert {k: shapes.get(k) for k in expected} == expected
    laterals = sorted({k.split(".")[1] for k in shapes if "lateral" in k})
    assert laterals == ["layer1_lateral", "layer2_lateral", "layer3_lateral"]
    assert sorted({k.rsplit(".", 1)[0] for k in shapes if "lateral" in k}) == [
        "pose_path.layer1_lateral.bn",
        "pose_path.layer1_lateral.conv",
        "pose_path.layer2_lateral.bn",
        "pose_path.layer2_lateral.conv",
        "rgb_path.layer2_lateral.conv",
        "rgb_path.layer3_lateral.conv",
    ]
    # Everything but the widened first blocks is a plain SlowOnly R50 key with its shape.
    r50 = {k: tuple(v.shape) for k, v in slowonly_r50_rgb().state_dict().items()}
    rgb = {k.removeprefix("rgb_path."): v for k, v in shapes.items() if k.startswith("rgb_path.")}
    differing = sorted(k for k in r50 if rgb[k] != r50[k])
    assert differing == [
        "layer3.0.conv1.conv.weight",
        "layer3.0.downsample.conv.weight",
        "layer4.0.conv1.conv.weight",
        "layer4.0.downsample.conv.weight",
    ]
    assert set(rgb) - set(r50) == {
        "layer2_lateral.conv.weight",
        "layer3_lateral.conv.weight",
    }


def test_tiny_config_shapes_and_stage_arithmetic():
    net = RGBPoseConv3D(**TINY).eval()
    video, heatmap = _inputs()
    with torch.no_grad():
        rgb, pose = net(video, heatmap)
    assert rgb.shape == (2, 8 * 8 * 4, 4, 1, 1)
    assert pose.shape == (2, 4 * 4 * 4, 16, 1, 1)
    assert net.rgb_path.lateral_inplanes == [0, 0, 64 // 4, 128 // 4]
    assert net.pose_path.lateral_inplanes == [0, 16 * 4 // 16, 32 * 4 // 16]
    assert isinstance(net.rgb_path.layer2_lateral, LateralConv3d)
    assert isinstance(net.pose_path.layer1_lateral, DeConvBNAct3d)
    assert isinstance(net.rgb_path, ResNet3dSlowOnly)


def _features(net, video, heatmap):
    with torch.no_grad():
        return net(video, heatmap)


def test_laterals_connect_the_pathways_both_ways():
    torch.manual_seed(0)
    net = RGBPoseConv3D(**TINY).eval()
    video, heatmap = _inputs()
    rgb, pose = _features(net, video, heatmap)
    rgb2, _ = _features(net, video, heatmap + torch.rand_like(heatmap))
    _, pose2 = _features(net, video + torch.randn_like(video), heatmap)
    assert (rgb2 - rgb).abs().max() > 1e-4  # the heatmap reaches the RGB features
    assert (pose2 - pose).abs().max() > 1e-4  # the video reaches the pose features

    alone = RGBPoseConv3D(**TINY, lateral=False).eval()
    assert not [k for k in alone.state_dict() if "lateral" in k]
    rgb, pose = _features(alone, video, heatmap)
    rgb2, _ = _features(alone, video, heatmap + torch.rand_like(heatmap))
    _, pose2 = _features(alone, video + torch.randn_like(video), heatmap)
    torch.testing.assert_close(rgb2, rgb, rtol=0, atol=0)
    torch.testing.assert_close(pose2, pose, rtol=0, atol=0)


def test_detach_and_drop_path_cut_the_laterals():
    video, heatmap = _inputs(b=1)
    heatmap.requires_grad_(True)
    net = RGBPoseConv3D(**TINY, rgb_detach=True).eval()
    rgb, _ = net(video, heatmap)
    rgb.sum().backward()
    assert heatmap.grad is None  # the RGB output's graph does not reach the heatmap
    heatmap = heatmap.detach()

    torch.manual_seed(0)
    net = RGBPoseConv3D(**TINY, rgb_drop_path=1.0).train()
    with torch.no_grad():
        rgb, _ = net(video, heatmap)
        rgb2, _ = net(video, heatmap + 1)
    torch.testing.assert_close(rgb, rgb2)  # laterals into RGB dropped in training
    with pytest.raises(ValueError, match="rgb_drop_path"):
        RGBPoseConv3D(**TINY, rgb_drop_path=1.5)


def test_misaligned_inputs_and_channels_raise_clear_errors():
    net = RGBPoseConv3D(**TINY).eval()
    video, heatmap = _inputs()
    with pytest.raises(ValueError, match="speed_ratio=4"):
        net(video, heatmap[:, :, :8])
    with pytest.raises(ValueError, match="quarter"):
        net(video, torch.rand(2, 5, 16, 16, 16))
    with pytest.raises(ValueError, match="in_channels=5"):
        net(video, torch.rand(2, 4, 16, 8, 8))
    with pytest.raises(ValueError, match="rgb_base_channels = 2 \\* pose_base_channels"):
        RGBPoseConv3D(**{**TINY, "pose_base_channels": 8})
    with pytest.raises(ValueError, match="conv1_lateral"):
        ResNet3dPathway(
            base_channels=8, stage_blocks=(1, 1, 1, 1), lateral=True, lateral_activate=(1, 1, 1, 1)
        )
    lateral = ResNet3dPathway(base_channels=8, stage_blocks=(1, 1, 1, 1), lateral=True)
    with pytest.raises(RuntimeError, match="inside RGBPoseConv3D"):
        lateral(torch.rand(1, 3, 2, 32, 32))
    plain = ResNet3dPathway(base_channels=8, stage_blocks=(1, 1, 1, 1))
    assert plain(torch.rand(1, 3, 2, 32, 32)).shape == (1, 256, 2, 1, 1)


def test_deconv_lateral_upsamples_time_exactly():
    deconv = DeConvBNAct3d(16, 4, fusion_kernel=7, speed_ratio=4)
    assert deconv(torch.rand(2, 16, 3, 5, 6)).shape == (2, 4, 12, 5, 6)
    conv = LateralConv3d(4, 8, fusion_kernel=7, speed_ratio=4)
    assert conv(torch.rand(2, 4, 12, 5, 6)).shape == (2, 8, 3, 5, 6)
    assert not hasattr(conv.bn, "weight")  # no norm: only conv.weight, as in mmaction2
    normed = LateralConv3d(4, 8, fusion_kernel=7, speed_ratio=4, norm=True)
    assert {k.split(".")[0] for k in normed.state_dict()} == {"conv", "bn"}
