import ast
from pathlib import Path

import pytest
import torch
from torch import nn

from mgr.models.backbones.resnet3d_slowonly import (
    Bottleneck3d,
    ResNet3dSlowOnly,
    slowonly_pose,
    slowonly_r50_rgb,
)

pytestmark = pytest.mark.usefixtures("one_thread")


BN_KEYS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def _pose_checkpoint_shapes(k: int = 17) -> dict[str, tuple[int, ...]]:
    """mmaction2 PoseC3D backbone keys and shapes, written from reference-algorithms.md §2.2."""
    shapes: dict[str, tuple[int, ...]] = {}

    def conv_bn(name: str, c_out: int, c_in: int, kernel: tuple[int, int, int]) -> None:
        shapes[f"{name}.conv.weight"] = (c_out, c_in, *kernel)
        for b in BN_KEYS:
            shapes[f"{name}.bn.{b}"] = () if b == "num_batches_tracked" else (c_out,)

    conv_bn("conv1", 32, k, (1, 7, 7))
    c_in = 32
    for i, (planes, blocks, t_kernel) in enumerate(((32, 4, 1), (64, 6, 3), (128, 3, 3)), 1):
        for j in range(blocks):
            block_in = c_in if j == 0 else planes * 4
            conv_bn(f"layer{i}.{j}.conv1", planes, block_in, (t_kernel, 1, 1))
            conv_bn(f"layer{i}.{j}.conv2", planes, planes, (1, 3, 3))
            conv_bn(f"layer{i}.{j}.conv3", planes * 4, planes, (1, 1, 1))
        conv_bn(f"layer{i}.0.downsample", planes * 4, c_in, (1, 1, 1))
        c_in = planes * 4
    return shapes


def test_pose_state_dict_names_and_shapes_match_mmaction2():
    net = slowonly_pose(in_channels=17)
    got = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    expected = _pose_checkpoint_shapes(17)
    assert sorted(got) == sorted(expected)
    assert got == expected
    # Spot checks quoted verbatim in the document.
    assert got["conv1.conv.weight"] == (32, 17, 1, 7, 7)
    assert got["layer2.0.conv1.conv.weight"] == (64, 128, 3, 1, 1)
    assert got["layer3.0.downsample.conv.weight"] == (512, 256, 1, 1, 1)


def test_pose_parameter_count_matches_readme():
    # README: 2.0 M parameters including the 60-class I3D head (512 -> 60).
    net = slowonly_pose()
    n = sum(p.numel() for p in net.parameters()) + 512 * 60 + 60
    assert abs(n - 2.0e6) / 2.0e6 < 0.03


def test_pose_output_shape():
    net = slowonly_pose(in_channels=17).eval()
    assert net.out_channels == 512
    with torch.no_grad():
        assert net(torch.randn(1, 17, 8, 56, 56)).shape == (1, 512, 4, 7, 7)
        # The paper's T=48 input, on a narrow twin (strides alone set T', H', W').
        narrow = slowonly_pose(in_channels=17, base_channels=2).eval()
        assert narrow(torch.randn(1, 17, 48, 56, 56)).shape == (1, 32, 24, 7, 7)


def test_rgb_output_shape_and_width():
    net = slowonly_r50_rgb().eval()
    assert net.out_channels == 2048
    assert len(net.stage_names) == 4
    assert [len(getattr(net, n)) for n in net.stage_names] == [3, 4, 6, 3]
    with torch.no_grad():
        # Stem /4, then layer2-4 /2 each: 64 -> 16 -> 2; no temporal stride.
        assert net(torch.randn(1, 3, 4, 64, 64)).shape == (1, 2048, 4, 2, 2)


def test_zero_init_residual():
    net = slowonly_pose()
    blocks = [m for m in net.modules() if isinstance(m, Bottleneck3d)]
    assert len(blocks) == 4 + 6 + 3
    assert all(torch.all(b.conv3.bn.weight == 0) for b in blocks)
    assert all(torch.all(b.conv1.bn.weight == 1) for b in blocks)
    off = slowonly_pose(zero_init_residual=False)
    assert all(
        torch.all(b.conv3.bn.weight == 1) for b in off.modules() if isinstance(b, Bottleneck3d)
    )


def test_inflate_pattern_pose():
    net = slowonly_pose()
    for name, t in (("layer1", 1), ("layer2", 3), ("layer3", 3)):
        for block in getattr(net, name):
            assert block.conv1.conv.kernel_size == (t, 1, 1)
            assert block.conv1.conv.padding == ((t - 1) // 2, 0, 0)
            assert block.conv2.conv.kernel_size == (1, 3, 3)
            assert block.conv2.conv.padding == (0, 1, 1)


def test_temporal_stride_only_in_layer3_and_on_conv2():
    net = slowonly_pose()
    strides = {name: m.stride for name, m in net.named_modules() if isinstance(m, nn.Conv3d)}
    temporal = {name for name, s in strides.items() if s[0] != 1}
    assert temporal == {"layer3.0.conv2.conv", "layer3.0.downsample.conv"}
    assert strides["layer3.0.conv2.conv"] == (2, 2, 2)
    assert strides["layer1.0.conv2.conv"] == (1, 2, 2)
    assert strides["conv1.conv"] == (1, 1, 1)
    assert net.maxpool.stride == (1, 1, 1)


def test_no_parameters_outside_conv_and_bn():
    net = slowonly_pose()
    for name, module in net.named_modules():
        if isinstance(module, nn.ReLU | nn.MaxPool3d | nn.Identity):
            assert not list(module.parameters(recurse=False)), name


def test_temporal_only_stride_gets_a_shortcut():
    # mmaction2 would skip the projection here and fail on the residual add.
    net = ResNet3dSlowOnly(
        in_channels=2,
        base_channels=4,
        num_stages=2,
        stage_blocks=(1, 1),
        conv1_stride=(1, 1, 1),
        pool1_stride=(1, 1, 1),
        inflate=(0, 1),
        spatial_strides=(1, 1),
        temporal_strides=(1, 2),
    )
    assert net(torch.randn(1, 2, 4, 8, 8)).shape == (1, 32, 2, 8, 8)


def test_argument_and_input_errors():
    with pytest.raises(ValueError, match="num_stages=3"):
        ResNet3dSlowOnly(num_stages=3)
    with pytest.raises(ValueError, match="conv1_kernel"):
        ResNet3dSlowOnly(conv1_kernel=(1, 7))
    net = slowonly_pose(in_channels=17, base_channels=2)
    with pytest.raises(ValueError, match="in_channels=17"):
        net(torch.randn(1, 3, 4, 16, 16))
    with pytest.raises(ValueError, match=r"\(B, C, T, H, W\)"):
        net(torch.randn(17, 4, 16, 16))


def test_backbone_module_does_not_import_lightning():
    import mgr.models.backbones.resnet3d_slowonly as mod

    tree = ast.parse(Path(mod.__file__).read_text())
    imported = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    imported += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert not [m for m in imported if "lightning" in m]
