"""mgr check: every bad file of a release, with its reason, before a long run."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mgr.check import check_data
from mgr.cli import main
from mgr.data.readers.video import read_video, write_video
from mgr.datamodules import IMiGUEDataModule

REPO = Path(__file__).resolve().parents[1]
VIDEO_CONF = REPO / "tests" / "conf" / "videoswin_imigue.yaml"
SKELETON_DIRS = {
    "train": "imigue_skeleton_train",
    "val": "imigue_skeleton_validate",
    "test": "imigue_skeleton_test",
}


@pytest.fixture(autouse=True)
def _plain_argv(monkeypatch):
    monkeypatch.setattr("sys.argv", ["mgr"])


def clips_of(root: Path, split: str, video: str | None = None) -> list[str]:
    """Clip ids from the label files, one per non-blank row (written independently of mgr)."""
    labels = sorted((root / SKELETON_DIRS[split]).glob("*/*_label.csv"))
    return [
        f"{label.parent.name}_{k}"
        for label in labels
        if video is None or label.parent.name == video
        for k, line in enumerate(label.read_text().splitlines())
        if line.strip()
    ]


@pytest.fixture
def planted(synth_imigue_rgb: Path, tmp_path: Path) -> dict:
    """A release with 3 planted bad files: a truncated mp4 whose header looks fine, a csv
    with a NaN keypoint, and a missing video."""
    root = Path(shutil.copytree(synth_imigue_rgb, tmp_path / "release"))
    truncated = root / "imigue_rgb_train" / "0001_1.mp4"
    write_video(truncated, read_video(truncated), faststart=True)  # index first: probe passes
    data = truncated.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    nan_csv = root / "imigue_skeleton_train" / "0002" / "0002_light_hand.csv"
    rows = nan_csv.read_text().splitlines()
    cells = rows[4].split(",")
    cells[7] = "nan"  # row 5, joint 2, x
    rows[4] = ",".join(cells)
    nan_csv.write_text("\n".join(rows) + "\n")
    missing = root / "imigue_rgb_validate" / "0003_0.mp4"
    missing.unlink()
    return {"root": root, "truncated": truncated, "nan_csv": nan_csv, "missing": missing}


def _rows(out: str) -> list[list[str]]:
    """The bad-file table's rows, split on runs of 2+ spaces (columns)."""
    import re

    lines = out.split("\n\n")[0].splitlines()[2:]  # "N bad:", header
    return [re.split(r"\s{2,}", line, maxsplit=3) for line in lines]


def test_check_reports_each_planted_bad_file_with_its_reason(planted, capsys):
    root = planted["root"]
    argv = [
        "check",
        "--config",
        str(VIDEO_CONF),
        "--data.init_args.root",
        str(root),
        "--data.init_args.modalities",
        "[skeleton, video]",
        "--data.init_args.fg_text",
        "true",
        "--workers",
        "2",
        "--no-progress",
    ]
    assert main(argv) == 1
    out = capsys.readouterr().out
    rows = sorted(_rows(out))
    assert rows == sorted(
        [
            ["train", "-", str(planted["nan_csv"]), rows[0][3]],
            ["train", "0001_1", str(planted["truncated"]), rows[1][3]],
            ["val", "0003_0", "0003_0.*", rows[2][3]],
        ]
    )
    reasons = {r[1]: r[3] for r in rows}
    assert reasons["-"] == "row 5: joint 2, channel 0 is nan (missing or non-finite value)"
    assert "truncated" in reasons["0001_1"]
    assert f"no video 0003_0.* under {root}" in reasons["0003_0"]
    # Counts per split: every other clip was read and loaded (nothing stopped at a bad file).
    counts = {line.split()[0]: line.split()[1:] for line in out.split("\n\n")[1].splitlines()[1:]}
    train = clips_of(root, "train", "0001")  # 0002's clips cannot be read: its csv is bad
    val, test = clips_of(root, "val"), clips_of(root, "test")
    assert counts["train"] == [str(len(train)), str(len(train) - 1), "2", "0"]
    assert counts["val"] == [str(len(val) - 1), str(len(val) - 1), "1", "0"]
    assert counts["test"] == [str(len(test)), str(len(test)), "0", "0"]


def test_fit_check_data_stops_before_training(planted, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = ["fit", "--config", str(VIDEO_CONF), "--data.init_args.root", str(planted["root"])]
    assert main([*argv, "--check_data", "true"]) == 2
    captured = capsys.readouterr()
    last = captured.err.strip().splitlines()[-1]
    assert last.startswith("mgr: error: --check_data: 3 bad file(s) or clip(s) in train, val")
    assert str(planted["truncated"]) in captured.out


def test_a_clean_release_passes_and_the_datamodule_is_untouched(synth_imigue, capsys):
    dm = IMiGUEDataModule(synth_imigue, clip_len=8, fg_text=True)
    report = check_data(dm, workers=0, progress=False)
    assert report.ok
    for split in ("train", "val", "test"):
        n = len(clips_of(synth_imigue, split))
        assert (report.splits[split].read, report.splits[split].ok) == (n, n)
    assert dm.records == {} and dm.on_bad_sample == "raise"  # checked on a copy


def test_online_datamodule_reports_a_bad_sequence_file(synth_smg, tmp_path, capsys):
    root = Path(shutil.copytree(synth_smg, tmp_path / "smg"))
    skeleton = next(root.rglob("Sample0003_skeleton.csv"))
    skeleton.write_text("")
    conf = REPO / "tests" / "conf" / "online_detector_smg.yaml"
    argv = ["check", "--config", str(conf), "--data.init_args.root", str(root), "--no-progress"]
    assert main(argv) == 1
    rows = _rows(capsys.readouterr().out)
    assert rows == [["val", "-", str(skeleton), rows[0][3]]]
    assert "empty" in rows[0][3]
