"""Tiny SynthMG releases with RGB videos (48x80 px) for the multi-modal datamodule tests."""

from pathlib import Path

import pytest

from mgr.data.synthetic import generate_synthmg

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
