import lightning.pytorch as pl
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from mgr.datamodules.base import collate
from mgr.models.rgbposeconv3d import RGBPoseConv3D

pytestmark = [
    pytest.mark.usefixtures("one_thread"),
    pytest.mark.filterwarnings("ignore:.*self.log.*:UserWarning"),
]

TINY = {
    "in_channels": 5,
    "rgb_base_channels": 8,
    "rgb_stage_blocks": (1, 1, 1, 1),
    "pose_base_channels": 4,
    "pose_stage_blocks": (1, 1, 1),
}
RGB_DIM, POSE_DIM = 8 * 8 * 4, 4 * 4 * 4


def _model(num_classes=6, **kwargs):
    torch.manual_seed(0)
    model = RGBPoseConv3D(num_classes=num_classes, **{**TINY, **kwargs})
    # Larger-than-init head weights, so that the two heads disagree noticeably.
    for head in (model.head_rgb, model.head_pose):
        head[1].weight.data.normal_(0, 0.5)
        head[1].bias.data.normal_(0, 0.5)
    return model


def _batch(b=3, views=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    lead = (b,) if views is None else (b, views)
    return {
        "video": torch.randn(*lead, 3, 4, 32, 32, generator=g),
        "heatmap": torch.rand(*lead, 5, 16, 8, 8, generator=g),
        "label": torch.tensor([0, 3, 5])[:b],
        "sample_id": [f"s{i}" for i in range(b)],
    }


def _stream_logits(model, batch):
    """Each head's logits, written from the parts: pooled maps -> dropout/linear."""
    rgb, pose = model.backbone(batch["video"], batch["heatmap"])
    return (
        model.head_rgb(rgb.mean((2, 3, 4))),
        model.head_pose(pose.mean((2, 3, 4))),
    )


def test_shapes_features_and_fused_probability():
    model = _model().eval()
    batch = _batch()
    with torch.no_grad():
        out = model(batch)
        feats = model.forward_features(batch)
        rgb, pose = _stream_logits(model, batch)
    assert out.shape == (3, 6)
    assert feats.shape == (3, RGB_DIM + POSE_DIM) and model.feature_dim == RGB_DIM + POSE_DIM
    expected = 0.5 * rgb.softmax(-1) + 0.5 * pose.softmax(-1)
    torch.testing.assert_close(out.softmax(-1), expected)
    torch.testing.assert_close(out.exp(), expected)  # forward returns log-probabilities
    assert not torch.allclose(rgb.softmax(-1), pose.softmax(-1), atol=1e-3)

    weighted = _model(fusion_weight=0.8).eval()
    with torch.no_grad():
        rgb, pose = _stream_logits(weighted, batch)
        torch.testing.assert_close(
            weighted(batch).softmax(-1), 0.8 * rgb.softmax(-1) + 0.2 * pose.softmax(-1)
        )
    only_rgb = _model(fusion_weight=1.0).eval()
    with torch.no_grad():
        torch.testing.assert_close(
            only_rgb(batch), _stream_logits(only_rgb, batch)[0].log_softmax(-1)
        )
    with pytest.raises(ValueError, match="fusion_weight"):
        _model(fusion_weight=1.5)


def test_test_time_views_average_probabilities():
    model = _model().eval()
    batch = _batch(b=2, views=3)
    with torch.no_grad():
        out = model(batch)
        probs = []
        for v in range(3):
            rgb, pose = _stream_logits(
                model, {"video": batch["video"][:, v], "heatmap": batch["heatmap"][:, v]}
            )
            probs.append(0.5 * rgb.softmax(-1) + 0.5 * pose.softmax(-1))
    assert out.shape == (2, 6)
    torch.testing.assert_close(out.softmax(-1), torch.stack(probs).mean(0))
    with pytest.raises(ValueError, match="views"):
        model({**batch, "heatmap": batch["heatmap"][:, :2]})


def test_training_loss_is_the_sum_of_both_heads_losses():
    model = _model().eval()  # eval: dropout off, so the test can recompute the logits
    batch = _batch()
    y = batch["label"]
    rgb, pose = _stream_logits(model, batch)
    expected = F.cross_entropy(rgb, y) + F.cross_entropy(pose, y)
    torch.testing.assert_close(model.training_step(batch, 0), expected)

    weighted = _model(rgb_loss_weight=2.0, pose_loss_weight=0.5, label_smoothing=0.1).eval()
    rgb, pose = _stream_logits(weighted, batch)
    expected = 2.0 * F.cross_entropy(rgb, y, label_smoothing=0.1) + 0.5 * F.cross_entropy(
        pose, y, label_smoothing=0.1
    )
    loss = weighted.training_step(batch, 0)
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert weighted.backbone.pose_path.layer1_lateral.conv.weight.grad.abs().sum() > 0
    assert weighted.backbone.rgb_path.layer2_lateral.conv.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="loss weights"):
        _model(rgb_loss_weight=0.0, pose_loss_weight=0.0)


def test_fit_validate_predict_with_lightning(tmp_path):
    samples = []
    for i in range(4):
        b = _batch(b=1, seed=i)
        samples.append(
            {
                "video": b["video"][0],
                "heatmap": b["heatmap"][0],
                "label": i % 2,
                "sample_id": f"s{i}",
            }
        )
    loader = DataLoader(samples, batch_size=2, collate_fn=collate)
    model = _model(num_classes=2)
    trainer = pl.Trainer(
        fast_dev_run=True,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(model, loader, loader)
    for key in ("train/loss", "train/loss_rgb", "train/loss_pose", "val/acc_rgb", "val/acc_pose"):
        assert key in trainer.callback_metrics, key
    preds = trainer.predict(model, loader)
    out = preds[0]
    assert out["probs"].shape == (2, 2) and out["sample_id"] == ["s0", "s1"]
    torch.testing.assert_close(out["probs"], 0.5 * out["probs_rgb"] + 0.5 * out["probs_pose"])
    torch.testing.assert_close(out["probs"], out["logits"].softmax(-1))


def _to_mmaction(state):
    """mgr key names -> mmaction2's RGBPoseConv3D recognizer names."""
    renamed = {}
    for k, v in state.items():
        if k.startswith("backbone."):
            renamed[k] = v
        elif k.startswith("head_rgb.1."):
            renamed[k.replace("head_rgb.1.", "cls_head.fc_rgb.")] = v
        elif k.startswith("head_pose.1."):
            renamed[k.replace("head_pose.1.", "cls_head.fc_pose.")] = v
    return renamed


def test_mmaction2_checkpoint_loads_with_identical_predictions(tmp_path):
    src = _model()
    for p in src.backbone.parameters():
        p.data.normal_(0, 0.1)
    src.eval()
    state = _to_mmaction(src.state_dict())
    assert "backbone.rgb_path.layer2_lateral.conv.weight" in state
    assert "backbone.pose_path.layer1.0.conv1.conv.weight" in state
    assert "backbone.pose_path.layer1_lateral.bn.running_mean" in state
    assert state["cls_head.fc_rgb.weight"].shape == (6, RGB_DIM)
    assert state["cls_head.fc_pose.weight"].shape == (6, POSE_DIM)
    path = tmp_path / "rgbpose.pth"
    torch.save({"meta": {"mmaction_version": "1.2.0"}, "state_dict": state}, path)

    dst = RGBPoseConv3D(num_classes=6, **TINY, pretrained=str(path)).eval()
    batch = _batch()
    with torch.no_grad():
        torch.testing.assert_close(dst(batch), src(batch), atol=1e-5, rtol=0)
        torch.testing.assert_close(
            dst.forward_streams(batch)[0], src.forward_streams(batch)[0], atol=1e-5, rtol=0
        )
    with pytest.raises(ValueError, match="reset_head"):
        RGBPoseConv3D(num_classes=4, **TINY, pretrained=str(path), pretrained_reset_head=False)
    for reset in (None, True):  # other classes: auto resets both heads, as True does
        fresh = RGBPoseConv3D(
            num_classes=4, **TINY, pretrained=str(path), pretrained_reset_head=reset
        ).eval()
        with torch.no_grad():
            torch.testing.assert_close(
                fresh.forward_features(batch), src.forward_features(batch), atol=1e-5, rtol=0
            )


def test_input_checks():
    model = _model().eval()
    batch = _batch()
    with pytest.raises(KeyError, match="heatmap"):
        model({"video": batch["video"]})
    with pytest.raises(ValueError, match="K=5"):
        model({**batch, "heatmap": torch.rand(3, 17, 16, 8, 8)})
    with pytest.raises(ValueError, match="video"):
        model({**batch, "video": torch.rand(3, 1, 4, 32, 32)})


def test_init_weights_from_an_mgr_run_resets_both_heads(tmp_path):
    src = _model().eval()
    torch.save(src.state_dict(), tmp_path / "run.pt")
    dst = RGBPoseConv3D(num_classes=4, **TINY).eval()
    with pytest.raises(ValueError, match="init_reset_head"):
        dst.init_weights_from(tmp_path / "run.pt", reset_head=False)
    batch = _batch()
    for reset in (True, None):  # 6 classes -> 4: auto resets both heads too
        keys = dst.init_weights_from(tmp_path / "run.pt", reset_head=reset)
        assert not [k for k in keys if k.startswith(("head_rgb.", "head_pose."))]
        with torch.no_grad():
            torch.testing.assert_close(dst.forward_features(batch), src.forward_features(batch))
    same = RGBPoseConv3D(num_classes=6, **TINY).eval()
    keys = same.init_weights_from(tmp_path / "run.pt")  # same classes: both heads kept
    assert {"head_rgb.1.weight", "head_pose.1.weight"} <= set(keys)
    with torch.no_grad():
        torch.testing.assert_close(same(batch), src(batch))
