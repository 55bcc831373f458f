import pytest
import torch

from mgr.models import PoseConv3D

pytestmark = pytest.mark.usefixtures("one_thread")


def test_forward_shapes_and_default_config():
    model = PoseConv3D(num_classes=5, in_channels=17).eval()
    assert model.feature_dim == 512  # PoseC3D: 128 * 4 channels after layer3
    x = {"heatmap": torch.rand(2, 17, 8, 32, 32)}
    assert model(x).shape == (2, 5)
    assert model.forward_features(x).shape == (2, 512)
    views = {"heatmap": torch.rand(2, 3, 17, 8, 32, 32)}
    assert model(views).shape == (2, 5)
    with pytest.raises(ValueError, match="K=17"):
        model({"heatmap": torch.rand(1, 22, 8, 32, 32)})


def test_mmaction2_checkpoint_loads_with_identical_logits(tmp_path):
    torch.manual_seed(0)
    src = PoseConv3D(num_classes=6, in_channels=5, base_channels=4, stage_blocks=(1, 1, 1)).eval()
    for p in src.parameters():
        p.data.normal_(0, 0.1)
    # Rename to mmaction2's checkpoint layout: backbone.* kept, head.1.* -> cls_head.fc_cls.*.
    state = {}
    for k, v in src.state_dict().items():
        if k.startswith("backbone."):
            state[k] = v
        elif k.startswith("head.1."):
            state[k.replace("head.1.", "cls_head.fc_cls.")] = v
    torch.save({"meta": {"mmaction_version": "1.2.0"}, "state_dict": state}, tmp_path / "m.pth")
    dst = PoseConv3D(
        num_classes=6,
        in_channels=5,
        base_channels=4,
        stage_blocks=(1, 1, 1),
        pretrained=str(tmp_path / "m.pth"),
    ).eval()
    x = {"heatmap": torch.rand(2, 5, 4, 16, 16)}
    torch.testing.assert_close(dst(x), src(x), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="reset_head"):
        PoseConv3D(
            num_classes=7,
            in_channels=5,
            base_channels=4,
            stage_blocks=(1, 1, 1),
            pretrained=str(tmp_path / "m.pth"),
        )
    fresh = PoseConv3D(
        num_classes=7,
        in_channels=5,
        base_channels=4,
        stage_blocks=(1, 1, 1),
        pretrained=str(tmp_path / "m.pth"),
        pretrained_reset_head=True,
    ).eval()
    torch.testing.assert_close(
        fresh.forward_features(x), src.forward_features(x), atol=1e-5, rtol=0
    )
