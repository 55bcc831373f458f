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
    tiny = {"in_channels": 5, "base_channels": 4, "stage_blocks": (1, 1, 1)}
    with pytest.raises(ValueError, match="reset_head"):  # forced to keep another class count
        PoseConv3D(
            num_classes=7, **tiny, pretrained=str(tmp_path / "m.pth"), pretrained_reset_head=False
        )
    for reset in (None, True):  # other classes: auto resets the head, as True does
        torch.manual_seed(5)
        fresh = PoseConv3D(
            num_classes=7, **tiny, pretrained=str(tmp_path / "m.pth"), pretrained_reset_head=reset
        ).eval()
        torch.manual_seed(5)
        init = PoseConv3D(num_classes=7, **tiny)
        torch.testing.assert_close(fresh.head.state_dict(), init.head.state_dict(), rtol=0, atol=0)
        torch.testing.assert_close(
            fresh.forward_features(x), src.forward_features(x), atol=1e-5, rtol=0
        )
    # Forced reset with the same classes: the head is the fresh one, not the checkpoint's.
    forced = PoseConv3D(
        num_classes=6, **tiny, pretrained=str(tmp_path / "m.pth"), pretrained_reset_head=True
    )
    assert not torch.equal(forced.head[1].weight, src.head[1].weight)


def test_pretrained_head_rule_reads_class_names(tmp_path, caplog):
    torch.manual_seed(0)
    tiny = {"in_channels": 5, "base_channels": 4, "stage_blocks": (1, 1, 1)}
    src = PoseConv3D(num_classes=3, **tiny).eval()
    state = {
        k.replace("head.1.", "cls_head.fc_cls."): v
        for k, v in src.state_dict().items()
        if k.startswith(("backbone.", "head.1."))
    }
    names = ["rub eyes", "fold arms", "nod"]
    meta = {"dataset_meta": {"classes": tuple(names)}}  # mmengine records the classes here
    torch.save({"meta": meta, "state_dict": state}, tmp_path / "m.pth")
    x = {"heatmap": torch.rand(2, 5, 4, 16, 16)}
    caplog.set_level("INFO")
    same = PoseConv3D(3, **tiny, class_names=names, pretrained=str(tmp_path / "m.pth")).eval()
    torch.testing.assert_close(same(x), src(x), atol=1e-5, rtol=0)
    assert "kept: the checkpoint has this model's 3 classes (same names)" in caplog.text
    caplog.clear()
    other = ["rub eyes", "nod", "fold arms"]
    swapped = PoseConv3D(3, **tiny, class_names=other, pretrained=str(tmp_path / "m.pth"))
    assert not torch.equal(swapped.head[1].weight, src.head[1].weight)
    assert "reset: the checkpoint's 3 classes have other names (id 1: 'fold arms'" in caplog.text
    torch.testing.assert_close(
        swapped.eval().forward_features(x), src.forward_features(x), atol=1e-5, rtol=0
    )
