import pickle
import sys
import types
import zipfile
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import torch
from torch import nn

from mgr.errors import UserError
from mgr.models import Recognizer
from mgr.models.backbones.resnet3d_slowonly import ResNet3dSlowOnly, slowonly_pose
from mgr.models.checkpoints import (
    DEFAULT_PREFIX_MAP,
    LoadReport,
    Opaque,
    check_lightning_checkpoint,
    load_mmaction_checkpoint,
    read_checkpoint,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def _tiny_backbone() -> ResNet3dSlowOnly:
    return ResNet3dSlowOnly(
        in_channels=3,
        base_channels=8,
        num_stages=3,
        stage_blocks=(1, 1, 1),
        conv1_stride=(1, 1, 1),
        pool1_stride=(1, 1, 1),
        inflate=(0, 1, 1),
        spatial_strides=(2, 2, 2),
        temporal_strides=(1, 1, 2),
    )


class TinyRecognizer(nn.Module):
    """``backbone`` + ``head = Sequential(_, Linear)``: the Recognizer layout, without Lightning."""

    def __init__(self, num_classes: int = 5) -> None:
        super().__init__()
        self.backbone = _tiny_backbone()
        self.head = nn.Sequential(nn.Identity(), nn.Linear(self.backbone.out_channels, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x).mean((2, 3, 4)))


def _randomise(module: nn.Module, seed: int) -> nn.Module:
    """Random weights *and* BN statistics, so a missed tensor changes the output."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
        for m in module.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
                m.num_batches_tracked.fill_(int(torch.randint(1, 1000, (), generator=g)))
    return module


def _mm_state_dict(model: TinyRecognizer) -> dict[str, torch.Tensor]:
    """The model's weights under mmaction2 / pyskl Recognizer3D key names."""
    state = {f"backbone.{k}": v.clone() for k, v in model.backbone.state_dict().items()}
    state["cls_head.fc_cls.weight"] = model.head[1].weight.detach().clone()
    state["cls_head.fc_cls.bias"] = model.head[1].bias.detach().clone()
    return state


def _mmengine_file(tmp_path, state):
    path = tmp_path / "epoch_24.pth"
    meta = {"epoch": 24, "iter": 1000, "mmengine_version": "0.10.7", "dataset_meta": None}
    torch.save({"meta": meta, "state_dict": state, "message_hub": {"log_scalars": {}}}, path)
    return path


@pytest.fixture
def source() -> TinyRecognizer:
    return _randomise(TinyRecognizer(5), seed=0).eval()


@pytest.fixture
def x() -> torch.Tensor:
    return torch.randn(2, 3, 4, 16, 16, generator=torch.Generator().manual_seed(1))


def test_mmengine_checkpoint_loads_with_identical_outputs(tmp_path, source, x):
    path = _mmengine_file(tmp_path, _mm_state_dict(source))
    target = _randomise(TinyRecognizer(5), seed=7).eval()
    report = load_mmaction_checkpoint(target, path)
    assert isinstance(report, LoadReport)
    assert report.missing == report.unexpected == report.skipped_head == []
    assert len(report.loaded) == len(target.state_dict())
    assert "loaded" in str(report)
    with torch.no_grad():
        torch.testing.assert_close(target(x), source(x), atol=1e-6, rtol=0)
    sd = target.state_dict()
    for k, v in source.state_dict().items():
        assert torch.equal(sd[k], v), k  # num_batches_tracked too


def test_plain_state_dict_with_dataparallel_prefix(source, x):
    state = {f"module.{k}": v for k, v in _mm_state_dict(source).items()}
    target = TinyRecognizer(5).eval()
    load_mmaction_checkpoint(target, state)
    with torch.no_grad():
        torch.testing.assert_close(target(x), source(x), atol=1e-6, rtol=0)


def test_class_count_mismatch_is_a_clear_error_when_the_head_is_kept(source):
    with pytest.raises(ValueError, match=r"5 classes.*has 7.*reset_head=True"):
        load_mmaction_checkpoint(TinyRecognizer(7), _mm_state_dict(source), reset_head=False)


def test_auto_head_rule_keeps_same_classes_and_resets_other_classes(source, x):
    same = TinyRecognizer(5).eval()
    report = load_mmaction_checkpoint(same, _mm_state_dict(source))  # reset_head=None: auto
    assert report.head.startswith("kept") and report.skipped_head == []
    with torch.no_grad():
        torch.testing.assert_close(same(x), source(x), atol=1e-6, rtol=0)
    other = TinyRecognizer(7).eval()
    fresh_head = {k: v.clone() for k, v in other.head.state_dict().items()}
    report = load_mmaction_checkpoint(other, _mm_state_dict(source))
    assert report.head == "reset: the checkpoint's classifier has 5 classes, this model 7"
    assert sorted(report.skipped_head) == ["cls_head.fc_cls.bias", "cls_head.fc_cls.weight"]
    assert all(torch.equal(v, fresh_head[k]) for k, v in other.head.state_dict().items())
    with torch.no_grad():
        torch.testing.assert_close(other.backbone(x), source.backbone(x), atol=1e-6, rtol=0)
    backbone_only = {k: v for k, v in _mm_state_dict(source).items() if "cls_head" not in k}
    report = load_mmaction_checkpoint(TinyRecognizer(5), backbone_only)
    assert report.head == "reset: the checkpoint has no classifier" and report.missing == []


def test_reset_head_loads_backbone_and_keeps_fresh_head(source, x):
    target = TinyRecognizer(7).eval()
    fresh_head = {k: v.clone() for k, v in target.head.state_dict().items()}
    report = load_mmaction_checkpoint(target, _mm_state_dict(source), reset_head=True)
    assert sorted(report.skipped_head) == ["cls_head.fc_cls.bias", "cls_head.fc_cls.weight"]
    assert report.missing == report.unexpected == []
    for k, v in target.head.state_dict().items():
        assert torch.equal(v, fresh_head[k])
    with torch.no_grad():
        torch.testing.assert_close(target.backbone(x), source.backbone(x), atol=1e-6, rtol=0)
    # A backbone-only checkpoint (no head at all) is fine with reset_head=True too.
    backbone_only = {k: v for k, v in _mm_state_dict(source).items() if "cls_head" not in k}
    assert load_mmaction_checkpoint(TinyRecognizer(7), backbone_only, reset_head=True).missing == []


def test_unexpected_and_missing_keys(source):
    state = _mm_state_dict(source)
    state["backbone.layer9.0.conv1.conv.weight"] = torch.zeros(1)
    del state["backbone.layer1.0.conv2.bn.running_mean"]
    with pytest.raises(ValueError, match="missing keys") as err:
        load_mmaction_checkpoint(TinyRecognizer(5), state)
    assert "backbone.layer1.0.conv2.bn.running_mean" in str(err.value)
    assert "backbone.layer9.0.conv1.conv.weight" in str(err.value)

    target = TinyRecognizer(5)
    report = load_mmaction_checkpoint(target, state, strict=False)
    assert report.missing == ["backbone.layer1.0.conv2.bn.running_mean"]
    assert report.unexpected == ["backbone.layer9.0.conv1.conv.weight"]
    assert "missing (1)" in str(report) and "unexpected (1)" in str(report)
    # Everything present was still loaded.
    assert torch.equal(target.backbone.conv1.conv.weight, source.backbone.conv1.conv.weight)


def test_unmapped_prefix_is_unexpected_and_data_preprocessor_is_dropped(source):
    state = _mm_state_dict(source)
    state["data_preprocessor.mean"] = torch.zeros(3, 1, 1, 1)
    state["neck.fc.weight"] = torch.zeros(2, 2)
    report = load_mmaction_checkpoint(TinyRecognizer(5), state, strict=False)
    assert report.dropped == ["data_preprocessor.mean"]
    assert report.unexpected == ["neck.fc.weight"]


def test_wrong_shape_names_the_key(source):
    state = _mm_state_dict(source)
    state["backbone.layer2.0.conv1.conv.weight"] = torch.zeros(16, 32, 1, 1, 1)
    with pytest.raises(ValueError, match=r"backbone\.layer2\.0\.conv1\.conv\.weight.*\(16, 32"):
        load_mmaction_checkpoint(TinyRecognizer(5), state)


def test_custom_prefix_map_into_a_bare_backbone(source, x):
    backbone = _tiny_backbone().eval()
    report = load_mmaction_checkpoint(
        backbone, _mm_state_dict(source), prefix_map={"backbone.": ""}, reset_head=True
    )
    assert report.missing == report.unexpected == []
    with torch.no_grad():
        torch.testing.assert_close(backbone(x), source.backbone(x), atol=1e-6, rtol=0)


class _SlowOnlyRecognizer(Recognizer):
    input_keys: ClassVar[tuple[str, ...]] = ("video",)

    def configure_models(self) -> None:
        self.backbone = _tiny_backbone()
        self.feature_dim = self.backbone.out_channels
        super().configure_models()

    def forward_features(self, batch):
        return self.backbone(batch["video"]).mean((2, 3, 4))


def test_default_map_fits_the_recognizer_head(source, x):
    model = _SlowOnlyRecognizer(num_classes=5, dropout=0.5, class_counts=[1, 2, 3, 4, 5]).eval()
    counts = model.class_counts.clone()
    report = load_mmaction_checkpoint(model, _mm_state_dict(source))
    assert DEFAULT_PREFIX_MAP["cls_head.fc_cls."] == "head.1."
    assert report.missing == report.unexpected == []
    assert torch.equal(model.class_counts, counts)  # outside the map: untouched
    with torch.no_grad():
        torch.testing.assert_close(model({"video": x}), source(x), atol=1e-6, rtol=0)


# ---------------------------------------------------------------- mmaction2 parity
@pytest.fixture
def mm_slowonly(mmaction):
    """mmaction2's ResNet3dSlowOnly class (skips when the openmmlab extra is absent)."""
    from mmaction.models.backbones.resnet3d_slowonly import ResNet3dSlowOnly as MMSlowOnly

    return MMSlowOnly


def test_mmaction2_posec3d_backbone_loads_with_identical_outputs(tmp_path, mm_slowonly):
    # The PoseC3D config of reference-algorithms.md §2.1.
    theirs = mm_slowonly(
        depth=50,
        pretrained=None,
        in_channels=17,
        base_channels=32,
        num_stages=3,
        out_indices=(2,),
        stage_blocks=(4, 6, 3),
        conv1_stride_s=1,
        pool1_stride_s=1,
        inflate=(0, 1, 1),
        spatial_strides=(2, 2, 2),
        temporal_strides=(1, 1, 2),
        dilations=(1, 1, 1),
    )
    theirs.init_weights()
    _randomise(theirs, seed=3).eval()
    state = {f"backbone.{k}": v for k, v in theirs.state_dict().items()}
    path = _mmengine_file(tmp_path, state)

    class Wrapper(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.backbone = slowonly_pose(17)

    ours = Wrapper().eval()
    report = load_mmaction_checkpoint(ours, path, reset_head=True)
    assert report.missing == report.unexpected == []
    x = torch.rand(1, 17, 8, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = theirs(x)
        expected = expected[-1] if isinstance(expected, tuple | list) else expected
        torch.testing.assert_close(ours.backbone(x), expected, atol=1e-4, rtol=1e-4)


def test_mmaction2_rgb_slowonly_r50_has_our_names_and_shapes(mm_slowonly):
    from mgr.models.backbones.resnet3d_slowonly import slowonly_r50_rgb

    theirs = mm_slowonly(depth=50, pretrained=None)
    expected = {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in slowonly_r50_rgb().state_dict().items()} == expected


# ---------------------------------------------------------------- files that are not checkpoints
def _zip_of_text(path):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("notes/readme.txt", "not weights")


class _RunsCode:
    """Unpickling this runs ``pathlib.Path(target).touch()``: what a hostile pickle does."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        return (Path.touch, (self.target,))


def _write_bad(kind: str, path: Path, tmp_path: Path, source: TinyRecognizer) -> str:
    """Write a file of ``kind``; returns what the one-line error must say it is."""
    if kind == "random":
        path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
        return "not a PyTorch checkpoint: neither torch.save's zip format nor a pickle"
    if kind == "text":
        path.write_text("seed_everything: 0\ntrainer:\n  max_epochs: 3\n")
        return "is a text file (first line 'seed_everything: 0')"
    if kind == "empty":
        path.write_bytes(b"")
        return "is empty (0 bytes)"
    if kind == "other_zip":
        _zip_of_text(path)
        return "is a zip archive of 1 file(s) (notes/readme.txt) but not a PyTorch checkpoint"
    if kind == "truncated":
        torch.save({"state_dict": source.state_dict()}, path)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        return "is a truncated or damaged zip archive"
    if kind == "whole_module":
        torch.save(source, path)
        return "a whole pickled model, not a state dict"
    if kind == "runs_code":
        torch.save({"state_dict": {}, "x": _RunsCode(tmp_path / "pwned")}, path)
        return "pickles pathlib"
    if kind == "safetensors":
        header = b'{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'
        path.write_bytes(len(header).to_bytes(8, "little") + header + b"\0\0\0\0")
        return "is a safetensors file"
    if kind == "torchscript":
        torch.jit.save(torch.jit.script(nn.Linear(2, 2)), path)
        return "is a TorchScript model"
    raise AssertionError(kind)


BAD_KINDS = (
    "random",
    "text",
    "empty",
    "other_zip",
    "truncated",
    "whole_module",
    "runs_code",
    "safetensors",
    "torchscript",
)


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_a_file_that_is_not_a_checkpoint_is_one_line_naming_it(kind, tmp_path, source):
    path = tmp_path / f"{kind}.pth"
    what = _write_bad(kind, path, tmp_path, source)
    for load in (
        lambda: read_checkpoint(path),
        lambda: load_mmaction_checkpoint(TinyRecognizer(5), path),
        lambda: check_lightning_checkpoint(path),
    ):
        with pytest.raises(UserError) as info:
            load()
        message = str(info.value)
        assert "\n" not in message and message.startswith(str(path)), message
        assert what in message and "weights_only=False" not in message
    assert not (tmp_path / "pwned").exists()  # nothing in the file ran


def test_missing_checkpoint_and_folder(tmp_path):
    with pytest.raises(UserError, match=r"checkpoint .*nope\.pth does not exist"):
        read_checkpoint(tmp_path / "nope.pth")
    with pytest.raises(UserError, match="is a directory"):
        read_checkpoint(tmp_path)


def test_trusted_files_are_unpickled_fully(tmp_path, source, x):
    path = tmp_path / "module.pth"
    torch.save(source, path)  # a whole pickled model: needs trust
    target = TinyRecognizer(5).eval()
    load_mmaction_checkpoint(
        target, path, prefix_map={"backbone.": "backbone.", "head.": "head."}, trust=True
    )
    with torch.no_grad():
        torch.testing.assert_close(target(x), source(x), rtol=0, atol=0)
    code = tmp_path / "code.pth"
    torch.save({"x": _RunsCode(tmp_path / "ran")}, code)
    read_checkpoint(code, trust=True)
    assert (tmp_path / "ran").exists()  # trust means exactly this


def test_mmengine_metadata_loads_weights_only_as_opaque_stand_ins(tmp_path, source, x, monkeypatch):
    # mmengine checkpoints pickle their training log: numpy scalars and arrays, and
    # HistoryBuffer objects. Pickle such a log with a stand-in module of that name...
    module = types.ModuleType("mmengine.logging.history_buffer")

    class HistoryBuffer:
        def __init__(self) -> None:
            self._log_history = np.array([0.5, 0.25])
            self.max_length = 1000000

    HistoryBuffer.__module__, HistoryBuffer.__qualname__ = module.__name__, "HistoryBuffer"
    module.HistoryBuffer = HistoryBuffer
    for name in ("mmengine", "mmengine.logging"):  # its parent packages, as stubs
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, module.__name__, module)
    hub = {
        "log_scalars": {"train/loss": HistoryBuffer()},
        "runtime_info": {"eta": np.float64(3.5), "dataset_meta": {"classes": ("a", "b")}},
    }
    path = tmp_path / "epoch_1.pth"
    torch.save(
        {"meta": {"epoch": 1}, "state_dict": _mm_state_dict(source), "message_hub": hub}, path
    )
    for name in ("mmengine", "mmengine.logging", module.__name__):  # ... gone when it is read
        monkeypatch.delitem(sys.modules, name)
    unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    assert "mmengine.logging.history_buffer.HistoryBuffer" in unsafe  # weights_only refuses it
    ckpt = read_checkpoint(path)
    buffer = ckpt["message_hub"]["log_scalars"]["train/loss"]
    assert isinstance(buffer, Opaque) and buffer.qualname.endswith("HistoryBuffer")
    assert isinstance(ckpt["message_hub"]["runtime_info"]["eta"], Opaque)
    target = TinyRecognizer(5).eval()
    load_mmaction_checkpoint(target, path)
    with torch.no_grad():
        torch.testing.assert_close(target(x), source(x), atol=1e-6, rtol=0)


def test_real_mmengine_message_hub_loads_weights_only(mmaction, tmp_path, source, x):
    from mmengine.logging import MessageHub

    hub = MessageHub.get_instance("mgr-test")
    hub.update_scalar("train/loss", 0.5)
    hub.update_info("eta", np.float64(12.0))
    path = tmp_path / "epoch_2.pth"
    ckpt = {"meta": {"epoch": 2}, "state_dict": _mm_state_dict(source)}
    torch.save({**ckpt, "message_hub": hub.state_dict()}, path)
    assert torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    target = TinyRecognizer(5).eval()
    load_mmaction_checkpoint(target, path)
    with torch.no_grad():
        torch.testing.assert_close(target(x), source(x), atol=1e-6, rtol=0)
    with pytest.raises(UserError, match="not a Lightning checkpoint"):
        check_lightning_checkpoint(path)


def test_lightning_checkpoint_with_extra_pickles_needs_trust(tmp_path, source):
    path = tmp_path / "run.ckpt"
    ckpt = {"state_dict": source.state_dict(), "pytorch-lightning_version": "2.6.6"}
    torch.save({**ckpt, "loops": {"eta": np.float64(1.5)}}, path)
    with pytest.raises(
        UserError, match=r"pickles numpy.*if you trust the file, pass --weights_only false"
    ):
        check_lightning_checkpoint(path)
    assert set(check_lightning_checkpoint(path, trust=True)) == {*ckpt, "loops"}
    with pytest.raises(pickle.UnpicklingError):  # what Lightning's own load would do
        torch.load(path, weights_only=True)
    plain = tmp_path / "plain.ckpt"
    torch.save(ckpt, plain)
    assert set(check_lightning_checkpoint(plain)) == set(ckpt)
