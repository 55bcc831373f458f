"""Shared fixtures: tiny SynthMG releases in the real iMiGUE and SMG layouts."""

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
