import pytest
import torch
from torch import nn

from mgr.models.backbones.stcnn import DecoupledSTBlock, DecoupledSTCNN


def test_output_shape_and_feature_dim():
    net = DecoupledSTCNN(in_channels=3, num_joints=22, channels=(8, 16), temporal_strides=(1, 2))
    out = net(torch.randn(4, 3, 16, 22, 2))
    assert out.shape == (4, 16 * 22) == (4, net.out_features)
    net = DecoupledSTCNN(num_joints=22, channels=(8, 16), temporal_strides=(1, 2), readout="mean")
    assert net(torch.randn(4, 3, 16, 22, 1)).shape == (4, 16)


def test_kernels_are_decoupled_1x3_and_5x1():
    block = DecoupledSTBlock(3, 8)
    assert block.spatial[0].kernel_size == (1, 3)
    assert block.temporal[0].kernel_size == (5, 1)


def test_spatial_conv_mixes_only_neighbouring_joints_and_temporal_conv_only_nearby_frames():
    # Receptive field check by gradients: one block sees joints v-1..v+1 and frames t-2..t+2.
    block = DecoupledSTBlock(2, 4).eval()
    x = torch.randn(1, 2, 11, 9, requires_grad=True)
    block(x)[0, :, 5, 4].sum().backward()
    nz = x.grad[0].abs().sum(0) > 0
    frames, joints = torch.nonzero(nz, as_tuple=True)
    assert set(frames.tolist()) <= set(range(3, 8))
    assert set(joints.tolist()) <= {3, 4, 5}


def test_persons_are_averaged():
    net = DecoupledSTCNN(num_joints=5, channels=(4,), temporal_strides=(1,)).eval()
    a, b = torch.randn(1, 3, 8, 5, 1), torch.randn(1, 3, 8, 5, 1)
    both = net(torch.cat([a, b], dim=-1))
    torch.testing.assert_close(both, (net(a) + net(b)) / 2)


def test_shape_errors_name_the_mismatch():
    net = DecoupledSTCNN(num_joints=22, channels=(4,), temporal_strides=(1,))
    with pytest.raises(ValueError, match="num_joints=22"):
        net(torch.randn(1, 3, 8, 25, 1))
    with pytest.raises(ValueError, match=r"\(B, C, T, V, M\)"):
        net(torch.randn(1, 3, 8, 22))
    with pytest.raises(ValueError, match="same length"):
        DecoupledSTCNN(channels=(4, 8), temporal_strides=(1,))


def test_is_a_plain_module():
    assert isinstance(DecoupledSTCNN(), nn.Module)
    import mgr.models.backbones.stcnn as mod

    assert "lightning" not in " ".join(getattr(mod, "__dict__", {}).keys()).lower()
