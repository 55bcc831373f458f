"""`mgr fit|validate|test|predict` under DDP (2 gloo processes on CPU) give one process's results.

Each DDP run is a real ``python -m mgr ... --trainer.strategy ddp --trainer.devices 2``
subprocess (Lightning's launcher re-runs the command line for rank 1), compared with the
same command in one process (run in this process). The SynthMG release has 7 validation
and 11 test clips (odd, so not divisible by the 2 processes) and the batch size is 3, so
the last batch is partial and the processes run different numbers of batches (val: 2 and
1). Test-time views (2 clips x flip) are on, as in the tiny config. One DDP fit makes the
checkpoint that every comparison evaluates.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from mgr.cli import MgrCLI
from mgr.data.synthetic import generate_synthmg
from mgr.predictions import load_predictions

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "tests" / "conf" / "stcnn_imigue.yaml"
DDP = ["--trainer.strategy", "ddp", "--trainer.devices", "2", "--trainer.accelerator", "cpu"]
COUNT_METRICS = ("top1", "top5", "macro_f1", "mean_class_acc")


def _common(root: Path) -> list[str]:
    return ["--config", str(CONF), "--data.init_args.root", str(root)]


def _csv_logger(save_dir: Path) -> list[str]:
    return [
        "--trainer.logger",
        "lightning.pytorch.loggers.CSVLogger",
        "--trainer.logger.init_args.save_dir",
        str(save_dir),
    ]


def _mgr_ddp(args: list[str], cwd: Path) -> None:
    """Run ``python -m mgr ARGS`` with 2 DDP processes; fail with its output if it fails."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    env.pop("MASTER_PORT", None)  # Lightning picks a free port
    proc = subprocess.run(
        [sys.executable, "-m", "mgr", *args, *DDP],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, f"mgr {args[0]} under DDP failed:\n{proc.stderr[-4000:]}"


def _logged(save_dir: Path) -> list[dict[str, float]]:
    """The rows of a CSVLogger's metrics.csv (empty cells dropped)."""
    (path,) = save_dir.glob("lightning_logs/version_*/metrics.csv")
    with open(path) as f:
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(f)]


def _single(args: list[str], cwd: Path, monkeypatch: pytest.MonkeyPatch) -> MgrCLI:
    """The same command in this process (one device: the tiny config's trainer)."""
    monkeypatch.setattr("sys.argv", ["mgr"])
    monkeypatch.chdir(cwd)
    return MgrCLI(args=args)


@pytest.fixture(scope="module")
def ddp(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """A release with odd val/test sizes, and a checkpoint trained by a 2-process DDP fit."""
    tmp = tmp_path_factory.mktemp("ddp")
    root = generate_synthmg(
        tmp / "data",
        layout="imigue",
        seed=3,
        subjects=(3, 1, 1),
        videos_per_subject=1,
        clips_per_video=9,
        clip_frames=(8, 16),
        gap_frames=(1, 3),
    )
    fit_dir = tmp / "fit"
    fit_dir.mkdir()
    _mgr_ddp(
        [
            "fit",
            *_common(root),
            "--data.init_args.batch_size",
            "3",
            "--trainer.max_epochs",
            "3",
            "--model.init_args.optimizer.init_args.lr",
            "0.01",
            "--trainer.enable_checkpointing",
            "true",
            *_csv_logger(fit_dir),
        ],
        cwd=fit_dir,
    )
    (ckpt,) = fit_dir.glob("lightning_logs/version_0/checkpoints/*.ckpt")
    # Evaluation settings of every comparison: batch size 3 gives partial last batches.
    evaluate = [*_common(root), "--data.init_args.batch_size", "3", "--ckpt_path", str(ckpt)]
    return SimpleNamespace(root=root, tmp=tmp, fit_dir=fit_dir, evaluate=evaluate)


@pytest.fixture(scope="module")
def single_validate(ddp: SimpleNamespace) -> dict[str, float]:
    """``mgr validate`` of the DDP fit's checkpoint in one process."""
    out = ddp.tmp / "validate_single"
    out.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        cli = _single(["validate", *ddp.evaluate, *_csv_logger(out)], out, mp)
    assert len(cli.datamodule.datasets["val"]) == 7  # not divisible by 2 processes
    (row,) = _logged(out)
    return row


def _assert_same_metrics(got: dict[str, float], ref: dict[str, float], stage: str) -> None:
    for key in COUNT_METRICS:  # ratios of counts: exactly equal
        assert got[f"{stage}/{key}"] == ref[f"{stage}/{key}"], key
    if f"{stage}/loss" in ref:  # a float64 sum: only the summation order differs
        assert got[f"{stage}/loss"] == pytest.approx(ref[f"{stage}/loss"], rel=1e-12, abs=0)


def test_ddp_fit_logs_the_single_process_validation(ddp, single_validate):
    # The last validation (epoch 3 of 3) ran on the weights the checkpoint holds.
    fit_val = [row for row in _logged(ddp.fit_dir) if "val/top1" in row][-1]
    assert fit_val["epoch"] == 2
    _assert_same_metrics(fit_val, single_validate, "val")
    # The model learned something: the comparison is not between two chance runs.
    assert single_validate["val/top1"] > 0


def test_ddp_validate_equals_single_process(ddp, single_validate):
    out = ddp.tmp / "validate_ddp"
    out.mkdir()
    _mgr_ddp(["validate", *ddp.evaluate, *_csv_logger(out)], cwd=out)
    (row,) = _logged(out)
    _assert_same_metrics(row, single_validate, "val")


def test_ddp_test_equals_single_process(ddp, monkeypatch):
    single_dir, ddp_dir = ddp.tmp / "test_single", ddp.tmp / "test_ddp"
    single_dir.mkdir()
    ddp_dir.mkdir()
    cli = _single(["test", *ddp.evaluate, *_csv_logger(single_dir)], single_dir, monkeypatch)
    assert len(cli.datamodule.datasets["test"]) == 11
    _mgr_ddp(["test", *ddp.evaluate, *_csv_logger(ddp_dir)], cwd=ddp_dir)
    (single,), (ddp_row,) = _logged(single_dir), _logged(ddp_dir)
    _assert_same_metrics(ddp_row, single, "test")
    single_logs = next(single_dir.glob("lightning_logs/version_*"))
    ddp_logs = next(ddp_dir.glob("lightning_logs/version_*"))
    for name in ("per_class_accuracy.csv", "confusion_matrix.csv"):
        assert (ddp_logs / name).read_text() == (single_logs / name).read_text(), name
    assert (ddp_logs / "confusion_matrix.png").stat().st_size > 0
    # Every test clip once: the confusion matrix counts the 11 clips.
    cm = np.loadtxt(ddp_logs / "confusion_matrix.csv", delimiter=",", skiprows=1)[:, 1:]
    assert cm.sum() == 11
    assert ddp_row["test/top1"] == pytest.approx(np.trace(cm) / 11, abs=1e-7)


def test_ddp_predict_equals_single_process(ddp, monkeypatch):
    single_out, ddp_out = ddp.tmp / "preds_single", ddp.tmp / "preds_ddp"
    args = ["predict", *ddp.evaluate, "--prediction_writer.out_dir"]
    _single([*args, str(single_out)], ddp.tmp, monkeypatch)
    _mgr_ddp([*args, str(ddp_out)], cwd=ddp.tmp)
    ref, got = load_predictions(single_out)["test"], load_predictions(ddp_out)["test"]
    assert len(got.sample_id) == 11 and len(set(got.sample_id.tolist())) == 11
    # Same rows in the same (dataset) order; scores of the same batches are the same.
    np.testing.assert_array_equal(got.sample_id, ref.sample_id)
    np.testing.assert_array_equal(got.label, ref.label)
    np.testing.assert_allclose(got.logits, ref.logits, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(got.probs, ref.probs, rtol=1e-6, atol=1e-7)
    sub = "submission_test/Submission.csv"
    assert (ddp_out / sub).read_text() == (single_out / sub).read_text()
