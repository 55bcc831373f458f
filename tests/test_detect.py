"""``mgr detect`` on one untrimmed sequence: prediction csv in the start-kit layout + timeline."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl

from mgr.cli import main
from mgr.datamodules import SMGOnlineDataModule
from mgr.models import OnlineDetector


def test_detect_writes_start_kit_rows(synth_smg: Path, tmp_path: Path, capsys) -> None:
    dm = SMGOnlineDataModule(
        synth_smg, train_subjects=[1, 2], val_subjects=[3], test_subjects=[4], window=32
    )
    model = OnlineDetector(num_classes=17, embed_dim=16, num_levels=3)
    trainer = pl.Trainer(
        max_steps=2, accelerator="cpu", logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
    )  # fmt: skip
    trainer.fit(model, dm)
    ckpt = tmp_path / "det.ckpt"
    trainer.save_checkpoint(ckpt)
    out = tmp_path / "preds" / "Sample0004_prediction.csv"
    args = ["detect", "--ckpt", str(ckpt), "--input", str(synth_smg / "Sample0004")]
    assert main([*args, "--out", str(out), "--min-score", "0"]) == 0
    length = sum(1 for _ in open(synth_smg / "Sample0004" / "Sample0004_skeleton.csv"))
    rows = [line.split(",") for line in out.read_text().splitlines()]
    assert rows, "an untrained model with min-score 0 still emits its top detections"
    for label, start, end, score in rows:
        assert int(label) in range(1, 18)  # raw SMG ids, as in _finelabels.csv
        assert int(start) in range(int(end)) and int(end) in range(length + 1)
        assert 0.0 <= float(score) <= 1.0
    assert [int(r[1]) for r in rows] == sorted(int(r[1]) for r in rows)
    assert out.with_suffix(".png").stat().st_size > 0  # ground truth exists: timeline drawn
    assert "F1" in capsys.readouterr().out
