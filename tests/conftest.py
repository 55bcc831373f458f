"""Shared fixtures: tiny SynthMG releases in the real iMiGUE, SMG and MA-52 layouts."""

from pathlib import Path

import pytest
import torch

from mgr.data.synthetic import generate_synthmg

TINY = {"videos_per_subject": 1, "clips_per_video": 8, "clip_frames": (8, 16), "gap_frames": (1, 3)}


@pytest.fixture(scope="session")
def synth_imigue(tmp_path_factory) -> Path:
    """iMiGUE MiGA'23 layout: 2 train, 1 val, 1 test subject(s)."""
    return generate_synthmg(
        tmp_path_factory.mktemp("synth_imigue"), layout="imigue", seed=1, subjects=(2, 1, 1), **TINY
    )


@pytest.fixture(scope="session")
def synth_smg(tmp_path_factory) -> Path:
    """SMG layout: subjects 1-2 train, 3 val, 4 test."""
    return generate_synthmg(
        tmp_path_factory.mktemp("synth_smg"), layout="smg", seed=2, subjects=(2, 1, 1), **TINY
    )


@pytest.fixture
def one_thread():
    """Run a test with one intra-op thread (tiny convolutions only lose to thread sync)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# Tiny releases with RGB videos (48x80 px) for the multi-modal datamodule, model and CLI tests.
TINY_RGB = {
    "videos_per_subject": 1,
    "clips_per_video": 6,
    "clip_frames": (8, 12),
    "gap_frames": (1, 2),
    "video": True,
    "video_size": (48, 80),
}


@pytest.fixture(scope="session")
def synth_imigue_rgb(tmp_path_factory) -> Path:
    """iMiGUE skeleton folders + MiGA'25-style per-clip RGB: videos 0001-0002 train, 0003 val,
    0004 test."""
    return generate_synthmg(
        tmp_path_factory.mktemp("synth_imigue_rgb"),
        layout="imigue",
        seed=11,
        subjects=(2, 1, 1),
        **TINY_RGB,
    )


@pytest.fixture(scope="session")
def synth_smg_rgb(tmp_path_factory) -> Path:
    """SMG skeleton folders + one long ``SampleXXXX_color.mp4`` per subject (subjects 1-4)."""
    return generate_synthmg(
        tmp_path_factory.mktemp("synth_smg_rgb"),
        layout="smg",
        seed=12,
        subjects=(2, 1, 1),
        **TINY_RGB,
    )


@pytest.fixture(scope="session")
def synth_ma52(tmp_path_factory) -> Path:
    """MA-52 layout (video only): participants 1-2 in train and val, participant 3 in test."""
    return generate_synthmg(
        tmp_path_factory.mktemp("synth_ma52"),
        layout="ma52",
        seed=13,
        subjects=(2, 0, 1),
        **TINY_RGB,
    )


@pytest.fixture
def mmaction(monkeypatch):
    """mmaction2 1.2.0 with its shims (tests/openmmlab.py); skips without the openmmlab extra."""
    from tests.openmmlab import import_mmaction

    return import_mmaction(monkeypatch)


# Tiny ONNX pose models (tests/pose_models.py) for the conftest RGB videos (48x80 frames).
POSE_FRAME = (48, 80)
POSE_BOXES = {"main": [22, 4, 58, 46], "other": [0, 10, 16, 40], "not_person": [30, 10, 70, 40]}


@pytest.fixture(scope="session")
def pose_onnx(tmp_path_factory) -> dict[str, Path]:
    """``det``: persons ``main`` (0.9) and ``other`` (0.8) and a non-person (label 1);
    ``blind``: a detector that finds nobody; ``pose``: the whole-body template model."""
    pytest.importorskip("onnxruntime")
    from tests.pose_models import export_detector, export_template_pose

    d = tmp_path_factory.mktemp("pose_onnx")
    boxes = [POSE_BOXES[k] for k in ("main", "other", "not_person")]
    return {
        "det": export_detector(d / "det.onnx", boxes, POSE_FRAME, [0.9, 0.8, 0.95], [0, 0, 1]),
        "blind": export_detector(d / "blind.onnx", boxes[:1], POSE_FRAME, [0.01]),
        "pose": export_template_pose(d / "pose.onnx"),
    }
