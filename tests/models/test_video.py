import pytest
import torch
import torchvision
from lightning.pytorch import LightningDataModule, Trainer
from torch import nn
from torch.utils.data import DataLoader

from mgr.models import Recognizer
from mgr.models.backbones.video import adapt_input_channels
from mgr.models.video import R2Plus1D, VideoSwin
from mgr.models.video_checkpoints import (
    load_mgr_video_checkpoint,
    load_mmaction_swin_checkpoint,
    load_torchvision_video_checkpoint,
    mmaction_swin_key,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def _clip(c: int = 3, b: int = 2, t: int = 8, s: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.randn(b, c, t, s, s, generator=torch.Generator().manual_seed(seed))


def _features_of(model: nn.Module, classifier: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The input of ``classifier`` when ``model`` runs on ``x`` (torchvision's pooled features)."""
    seen = []
    handle = classifier.register_forward_hook(lambda m, args, out: seen.append(args[0]))
    with torch.no_grad():
        model(x)
    handle.remove()
    return seen[0]


@pytest.fixture(scope="module")
def tv_swin() -> nn.Module:
    """A randomly initialised torchvision swin3d_t (400 classes), in eval mode."""
    torch.manual_seed(0)
    model = torchvision.models.video.swin3d_t().eval()
    nn.init.normal_(model.head.bias)  # a zero bias would hide a bias that fails to load
    return model


@pytest.fixture(scope="module")
def tv_r2plus1d() -> nn.Module:
    """A randomly initialised torchvision r2plus1d_18 with non-trivial BN statistics."""
    torch.manual_seed(1)
    model = torchvision.models.video.r2plus1d_18().eval()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm3d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    nn.init.normal_(model.fc.bias)
    return model


@pytest.fixture(scope="module")
def swin5() -> VideoSwin:
    torch.manual_seed(2)
    return VideoSwin(num_classes=5).eval()


# ---------------------------------------------------------------- VideoSwin
def test_videoswin_shapes_and_input_check(swin5):
    x = {"video": _clip()}
    with torch.no_grad():
        assert swin5.forward_features(x).shape == (2, 768)
        assert swin5(x).shape == (2, 5)
    assert isinstance(swin5.head[0], nn.Dropout) and swin5.head[0].p == 0.5
    with pytest.raises(ValueError, match=r"C=3"):
        swin5.forward_features({"video": _clip(c=2)})
    with pytest.raises(ValueError, match=r"C=3"):
        swin5.forward_features({"video": torch.zeros(2, 3, 32, 32)})
    with pytest.raises(ValueError, match="pretrained_format"):
        VideoSwin(num_classes=5, pretrained_format="timm")  # type: ignore[arg-type]


@pytest.mark.parametrize("average", ["prob", "logit"])
def test_test_time_views_are_averaged(swin5, average, monkeypatch):
    monkeypatch.setitem(swin5.hparams, "test_average", average)
    views = torch.randn(2, 3, 3, 4, 32, 32, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        out = swin5({"video": views})
        per_view = torch.stack([swin5({"video": views[:, v]}) for v in range(3)], 1)  # (B, N, K)
    assert out.shape == (2, 5)
    if average == "prob":
        expected = per_view.softmax(-1).mean(1).log()
    else:
        expected = per_view.mean(1)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def test_videoswin_loads_a_torchvision_file_with_identical_logits(tv_swin, tmp_path):
    path = tmp_path / "swin3d_t.pth"
    torch.save(tv_swin.state_dict(), path)  # torchvision files are plain state dicts
    ours = VideoSwin(num_classes=400, pretrained=str(path), pretrained_reset_head=False).eval()
    x = {"video": _clip()}
    with torch.no_grad():
        torch.testing.assert_close(ours(x), tv_swin(x["video"]), atol=1e-5, rtol=0)
        features = _features_of(tv_swin, tv_swin.head, x["video"])
        torch.testing.assert_close(ours.forward_features(x), features, atol=1e-5, rtol=0)


def test_videoswin_pretrained_keeps_the_head_of_the_same_classes(tmp_path, caplog):
    # Issue 21: an MA-52 Video Swin loaded to evaluate on MA-52 must keep its classifier.
    torch.manual_seed(7)
    tiny = {"embed_dim": 8, "depths": [1, 1, 1, 1], "num_heads": [1, 1, 2, 2]}
    names = [f"class {i}" for i in range(5)]
    source = VideoSwin(num_classes=5, class_names=names, **tiny).eval()
    nn.init.normal_(source.head[1].bias)
    ckpt = {"state_dict": source.state_dict(), "hyper_parameters": dict(source.hparams)}
    torch.save(ckpt, tmp_path / "ma52.ckpt")
    caplog.set_level("INFO")
    kw = {"pretrained": str(tmp_path / "ma52.ckpt"), "pretrained_format": "mgr", **tiny}
    same = VideoSwin(num_classes=5, class_names=names, **kw).eval()  # default: auto
    x = {"video": _clip(b=1)}
    with torch.no_grad():
        torch.testing.assert_close(same(x), source(x), atol=1e-5, rtol=0)
    assert "classifier kept: the checkpoint has this model's 5 classes" in caplog.text
    caplog.clear()
    other = VideoSwin(num_classes=3, **kw).eval()  # other classes: reset, and said so
    assert "classifier reset: the checkpoint's classifier has 5 classes, this model 3" in (
        caplog.text
    )
    with torch.no_grad():
        torch.testing.assert_close(
            other.forward_features(x), source.forward_features(x), atol=1e-5, rtol=0
        )
    forced = VideoSwin(num_classes=5, class_names=names, pretrained_reset_head=True, **kw)
    assert not torch.equal(forced.head[1].bias, source.head[1].bias)


def _torchvision_to_mmaction(key: str) -> str:
    """The inverse of the documented mm -> tv map, written out plainly."""
    if key.startswith("patch_embed."):
        return "backbone." + key
    if key.startswith("norm."):
        return "backbone.norm3." + key.removeprefix("norm.")
    if key.startswith("head."):
        return "cls_head.fc_cls." + key.removeprefix("head.")
    _, index, rest = key.split(".", 2)  # features.{k}.rest
    k = int(index)
    if k % 2 == 1:  # patch merging after stage (k - 1) / 2
        return f"backbone.layers.{k // 2}.downsample.{rest}"
    block, rest = rest.split(".", 1)
    rest = rest.replace("mlp.0.", "mlp.fc1.").replace("mlp.3.", "mlp.fc2.")
    return f"backbone.layers.{k // 2}.blocks.{block}.{rest}"


def test_mmaction_swin_key_map():
    assert (
        mmaction_swin_key("backbone.layers.2.blocks.5.mlp.fc2.weight")
        == "features.4.5.mlp.3.weight"
    )
    assert mmaction_swin_key("backbone.layers.1.downsample.reduction.weight") == (
        "features.3.reduction.weight"
    )
    assert mmaction_swin_key("backbone.norm3.bias") == "norm.bias"
    assert mmaction_swin_key("module.cls_head.fc_cls.weight") == "head.weight"
    assert mmaction_swin_key("data_preprocessor.mean") is None


def test_videoswin_loads_an_mmaction2_checkpoint_with_identical_logits(tv_swin, tmp_path):
    state = {_torchvision_to_mmaction(k): v for k, v in tv_swin.state_dict().items()}
    assert "backbone.layers.3.blocks.1.attn.relative_position_bias_table" in state
    # mmaction2 re-creates relative_position_index; a checkpoint without it still loads.
    state = {k: v for k, v in state.items() if not k.endswith("relative_position_index")}
    state["data_preprocessor.mean"] = torch.tensor([123.675, 116.28, 103.53])
    torch.save({"meta": {"mmaction_version": "1.2.0"}, "state_dict": state}, tmp_path / "mm.pth")
    ours = VideoSwin(
        num_classes=400,
        pretrained=str(tmp_path / "mm.pth"),
        pretrained_format="mmaction2",
        pretrained_reset_head=False,
    ).eval()
    x = {"video": _clip()}
    with torch.no_grad():
        torch.testing.assert_close(ours(x), tv_swin(x["video"]), atol=1e-5, rtol=0)


def test_videoswin_flow_input_from_an_rgb_checkpoint_with_reset_head(tv_swin):
    model = VideoSwin(num_classes=5, in_channels=2).eval()
    head = {k: v.clone() for k, v in model.head.state_dict().items()}
    with pytest.raises(ValueError, match=r"400 classes.*has 5"):
        load_torchvision_video_checkpoint(model, tv_swin.state_dict(), reset_head=False)
    report = load_torchvision_video_checkpoint(model, tv_swin.state_dict())  # reset_head=True
    assert sorted(report.skipped_head) == ["head.bias", "head.weight"]
    assert report.missing == report.unexpected == []
    for k, v in model.head.state_dict().items():
        assert torch.equal(v, head[k])  # our head is kept
    torch.testing.assert_close(model.backbone.norm.weight, tv_swin.norm.weight)
    w = model.backbone.patch_embed.proj.weight
    assert w.shape == (96, 2, 2, 4, 4)
    torch.testing.assert_close(w, adapt_input_channels(tv_swin.patch_embed.proj.weight, 2))
    # A uniform clip embeds as the RGB model embeds a uniform RGB clip.
    with torch.no_grad():
        ours = model.backbone.patch_embed(torch.full((1, 2, 4, 16, 16), 0.3))
        theirs = tv_swin.patch_embed(torch.full((1, 3, 4, 16, 16), 0.3))
        torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
        assert model({"video": _clip(c=2, b=1, t=4)}).shape == (1, 5)


# ---------------------------------------------------------------- R(2+1)D
def test_r2plus1d_loads_a_torchvision_file_with_identical_logits(tv_r2plus1d, tmp_path):
    path = tmp_path / "r2plus1d_18.pth"
    torch.save(tv_r2plus1d.state_dict(), path)
    ours = R2Plus1D(num_classes=400, pretrained=str(path), pretrained_reset_head=False).eval()
    x = {"video": _clip()}
    with torch.no_grad():
        torch.testing.assert_close(ours(x), tv_r2plus1d(x["video"]), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match=r"C=3"):
        ours.forward_features({"video": _clip(c=1)})


def test_r2plus1d_flow_input_and_reset_head(tv_r2plus1d):
    model = R2Plus1D(num_classes=5, in_channels=2).eval()
    report = load_torchvision_video_checkpoint(model, tv_r2plus1d.state_dict())
    assert sorted(report.skipped_head) == ["fc.bias", "fc.weight"]
    stem = model.backbone.stem[0].weight
    torch.testing.assert_close(stem, adapt_input_channels(tv_r2plus1d.stem[0].weight, 2))
    with torch.no_grad():
        assert model({"video": _clip(c=2, b=1, t=4)}).shape == (1, 5)


def test_r2plus1d_mgr_checkpoint_round_trip(tmp_path):
    torch.manual_seed(4)
    source = R2Plus1D(num_classes=5, class_counts=[3, 1, 1, 1, 2]).eval()
    torch.save({"epoch": 3, "state_dict": source.state_dict()}, tmp_path / "mgr.ckpt")
    same = R2Plus1D(
        num_classes=5,
        pretrained=str(tmp_path / "mgr.ckpt"),
        pretrained_format="mgr",
        pretrained_reset_head=False,
    ).eval()
    x = {"video": _clip(b=1)}
    with torch.no_grad():
        torch.testing.assert_close(same(x), source(x), atol=1e-5, rtol=0)
    assert not same.class_counts.any()  # the old run's histogram is not taken
    state = source.state_dict()
    state["head.1.weight"], state["head.1.bias"] = (
        state["head.1.weight"][:4],
        state["head.1.bias"][:4],
    )
    with pytest.raises(ValueError, match=r"4 classes.*has 5"):
        load_mgr_video_checkpoint(same, {"state_dict": state}, reset_head=False)
    report = load_mgr_video_checkpoint(same, {"state_dict": state})
    assert sorted(report.skipped_head) == ["head.1.bias", "head.1.weight"]


# ---------------------------------------------------------------- training
class _TinyVideo(LightningDataModule):
    supplies = ("video", "label", "sample_id")
    num_classes = 5

    def _loader(self) -> DataLoader:
        g = torch.Generator().manual_seed(5)
        items = [
            {"video": torch.randn(3, 4, 32, 32, generator=g), "label": i % 5, "sample_id": f"s{i}"}
            for i in range(4)
        ]
        return DataLoader(items, batch_size=2)

    def train_dataloader(self) -> DataLoader:
        return self._loader()

    def val_dataloader(self) -> DataLoader:
        return self._loader()


def test_videoswin_fit_step_with_gradient_checkpointing(tmp_path):
    torch.manual_seed(6)
    model = VideoSwin(num_classes=5, gradient_checkpointing=True, stochastic_depth_prob=0.2)
    before = model.backbone.patch_embed.proj.weight.detach().clone()
    trainer = Trainer(
        fast_dev_run=1,
        accelerator="cpu",
        default_root_dir=tmp_path,
        enable_progress_bar=False,
        enable_model_summary=False,
        logger=False,
    )
    trainer.fit(model, datamodule=_TinyVideo())
    assert not torch.equal(model.backbone.patch_embed.proj.weight, before)


@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")
def test_r2plus1d_training_step():
    torch.manual_seed(7)
    model = R2Plus1D(num_classes=5).train()
    batch = {"video": _clip(t=4), "label": torch.tensor([0, 3]), "sample_id": ["a", "b"]}
    loss = model.training_step(batch, 0)
    loss.backward()
    assert torch.isfinite(loss)
    assert model.backbone.stem[0].weight.grad.abs().sum() > 0
    assert isinstance(model, Recognizer) and model.input_keys == ("video",)


# ---------------------------------------------------------------- mmaction2 parity
@pytest.fixture
def mm_swin(mmaction):
    """mmaction2's SwinTransformer3D (skips when the openmmlab extra is absent)."""
    from mmaction.models.backbones.swin import SwinTransformer3D

    return SwinTransformer3D


def test_mmaction2_swin_backbone_gives_our_features(mm_swin):
    torch.manual_seed(8)
    theirs = mm_swin(arch="tiny", pretrained=None, pretrained2d=False)
    theirs.eval()  # mmaction2's Swin overrides train() and returns None
    state = {f"backbone.{k}": v for k, v in theirs.state_dict().items()}
    ours = VideoSwin(num_classes=5).eval()
    report = load_mmaction_swin_checkpoint(ours, state, reset_head=True)
    assert report.missing == report.unexpected == []
    x = _clip(b=1)
    with torch.no_grad():
        expected = theirs(x).mean((2, 3, 4))  # (B, C, T', H', W') -> average pool
        torch.testing.assert_close(
            ours.forward_features({"video": x}), expected, atol=1e-4, rtol=1e-4
        )


def test_a_uint8_batch_fed_by_hand_is_normalised_first(swin5):
    """A loader batch (uint8 video + recipe) given to the model without the datamodule's
    on_after_batch_transfer gets the same logits as the finished float batch."""
    gen = torch.Generator().manual_seed(3)
    raw = torch.randint(0, 256, (2, 3, 8, 32, 32), dtype=torch.uint8, generator=gen)
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    flip = torch.tensor([True, False])
    batch = {
        "video": raw,
        "video_flip": flip,
        "video_mean": mean.expand(2, 3),
        "video_std": std.expand(2, 3),
    }
    # The float input written out independently: scale, normalise, mirror sample 0.
    x = (raw.float() / 255 - mean.view(1, 3, 1, 1, 1)) / std.view(1, 3, 1, 1, 1)
    x[0] = x[0].flip(-1)
    with torch.no_grad():
        want = swin5({"video": x})
        got = swin5(dict(batch))
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
