"""Untrimmed iMiGUE videos for detection: instances from label.csv, windows, features."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest
import torch

from mgr.cli import main
from mgr.data.readers.common import DataFormatError
from mgr.data.readers.imigue import load_imigue_sequence
from mgr.datamodules import IMiGUEDataModule, IMiGUEOnlineDataModule
from mgr.models import STCNN, OnlineDetector

QUIET = {
    "accelerator": "cpu", "logger": False, "enable_checkpointing": False,
    "enable_progress_bar": False, "enable_model_summary": False,
}  # fmt: skip


def label_rows(folder: Path) -> list[tuple[int, int, int]]:
    """``(label 0-based, start, inclusive end)`` read plainly (raw 99 = non-MG = 31)."""
    with open(folder / f"{folder.name}_label.csv") as f:
        rows = [(int(a), int(b), int(c)) for a, b, c in csv.reader(f) if a]
    return [(31 if g == 99 else g - 1, s, e) for g, s, e in rows]


def test_videos_hold_every_label_file_instance(synth_imigue: Path) -> None:
    dm = IMiGUEOnlineDataModule(synth_imigue)
    assert dm.num_classes == 32 and dm.in_channels == 3 * 22
    for split, folder in (("train", "imigue_skeleton_train"), ("test", "imigue_skeleton_test")):
        videos = sorted(p for p in (synth_imigue / folder).iterdir() if p.is_dir())
        sequences = dm.load_sequences(split)
        assert [s.video_id for s in sequences] == [v.name for v in videos]
        for seq, video in zip(sequences, videos, strict=True):
            rows = label_rows(video)
            assert seq.segments.tolist() == [[s, e] for _, s, e in rows]
            assert seq.labels.tolist() == [c for c, _, _ in rows]
            n_rows = sum(1 for _ in open(video / f"{video.name}_light_hand.csv"))
            assert seq.keypoint.shape == (n_rows, 22, 3)
            # Per-frame centring on the neck (joint 1 of the 22) wherever it was detected.
            seen = seq.keypoint[:, 1, 2] > 0
            np.testing.assert_allclose(seq.keypoint[seen, 1, :2], 0.0, atol=1e-5)
    background = IMiGUEOnlineDataModule(synth_imigue, non_mg="background")
    assert background.num_classes == 31
    assert all((s.labels != 31).all() for s in background.load_sequences("train"))


def test_instance_past_the_end_names_the_row(synth_imigue: Path, tmp_path: Path) -> None:
    video = next(p for p in (synth_imigue / "imigue_skeleton_validate").iterdir() if p.is_dir())
    folder = Path(shutil.copytree(video, tmp_path / video.name))
    label = folder / f"{video.name}_label.csv"
    label.write_text(label.read_text() + "3,10,999999\n")
    with pytest.raises(DataFormatError, match=rf"{video.name}_label\.csv, row \d+"):
        load_imigue_sequence(folder)


def test_detector_fits_on_raw_imigue_and_on_its_features(
    synth_imigue: Path, tmp_path: Path, one_thread
) -> None:
    pl.seed_everything(0, verbose=False)
    dm = IMiGUEOnlineDataModule(synth_imigue, window=32, windows_per_sequence=2, batch_size=2)
    batch = next(iter(dm.train_dataloader()))
    assert batch["skeleton"].shape == (2, 3, 32, 22, 1)
    model = OnlineDetector(num_classes=32, in_channels=66, embed_dim=8, num_levels=2)
    pl.Trainer(fast_dev_run=True, **QUIET).fit(model, dm)

    # A recognizer trained with tests/conf/stcnn_imigue.yaml, whose saved config.yaml
    # (as `mgr fit` leaves it next to the checkpoints folder) supplies the transforms.
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    shutil.copy(Path(__file__).parents[1] / "conf" / "stcnn_imigue.yaml", run / "config.yaml")
    rec = STCNN(num_classes=32, in_channels=3, num_joints=22, channels=[8, 16],
                temporal_strides=[1, 2])  # fmt: skip
    trainer = pl.Trainer(max_steps=1, limit_val_batches=0, **QUIET)
    trainer.fit(rec, IMiGUEDataModule(synth_imigue, clip_len=8, batch_size=4))
    ckpt = run / "checkpoints" / "last.ckpt"
    trainer.save_checkpoint(ckpt)
    out = tmp_path / "feats"
    args = ["extract-features", "--ckpt", str(ckpt), "--root", str(synth_imigue)]
    assert main([*args, "--window", "8", "--stride", "2", "--out", str(out), "--no-progress"]) == 0
    assert len(list(out.glob("*.npz"))) == 4  # every video of the release
    feats = IMiGUEOnlineDataModule(synth_imigue, window=32, features_dir=out)
    (test,) = list(feats.test_dataloader())
    seq = feats.load_sequences("test")[0]
    assert test["features"].shape == (1, rec.feature_dim, len(seq.centers))
    assert torch.equal(test["frame_segments"][0], torch.from_numpy(seq.frame_segments))
    model = OnlineDetector(
        num_classes=32, in_channels=rec.feature_dim, input_key="features", embed_dim=8,
        num_levels=2,
    )  # fmt: skip
    pl.Trainer(fast_dev_run=True, **QUIET).fit(model, feats)
