"""User mistakes under ``mgr``: one line on stderr with the fix, exit status 2."""

import json
import re
import shlex
from pathlib import Path

import lightning.pytorch as pl
import pytest

from mgr.cli import main
from mgr.data.readers.common import DataFormatError
from mgr.data.synthetic import generate_synthmg
from mgr.datamodules import IMiGUEDataModule, SMGOnlineDataModule
from mgr.datamodules.release import synth_command
from mgr.errors import UserError
from mgr.models import STCNN

REPO = Path(__file__).resolve().parents[1]
STCNN_CONF = REPO / "tests" / "conf" / "stcnn_imigue.yaml"
TINY = {
    "seed": 3,
    "subjects": [2, 1, 1],
    "videos_per_subject": 1,
    "clips_per_video": 4,
    "clip_frames": [8, 16],
    "gap_frames": [1, 3],
}


@pytest.fixture(autouse=True)
def _plain(monkeypatch, tmp_path):
    monkeypatch.setattr("sys.argv", ["mgr"])
    monkeypatch.setenv("MGR_DEBUG", "0")
    monkeypatch.chdir(tmp_path)  # logs and checkpoints of the configs land here


def _one_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("mgr: error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_missing_root_of_a_synthmg_config_gives_the_synth_command(tmp_path, capsys):
    root = tmp_path / "synth_here"
    argv = ["fit", "--config", str(REPO / "experiments" / "synth" / "stcnn.yaml")]
    argv += ["--data.init_args.root", str(root), "--data.init_args.synthesize", "false"]
    argv += ["--data.init_args.synthmg", json.dumps(TINY), "--trainer.fast_dev_run", "true"]
    assert main(argv) == 2
    line = _one_line(capsys)
    command = re.search(r"`(mgr synth [^`]+)`", line).group(1)
    assert command == synth_command(root, "imigue", TINY)
    assert "synthesize: true" in line
    # The command writes the release the config describes.
    assert main(shlex.split(command)[1:]) == 0
    reference = generate_synthmg(tmp_path / "reference", layout="imigue", **TINY)
    ours = json.loads((root / "synthmg.json").read_text())
    theirs = json.loads((reference / "synthmg.json").read_text())
    ours["config"].pop("out", None), theirs["config"].pop("out", None)
    assert ours["class_counts"] == theirs["class_counts"]
    assert ours["videos"] == theirs["videos"]


def test_synthesize_writes_the_missing_release_and_runs(tmp_path, capsys):
    root = tmp_path / "fresh_clone" / "synthmg"
    argv = ["fit", "--config", str(STCNN_CONF), "--data.init_args.root", str(root)]
    argv += ["--data.init_args.synthmg", json.dumps(TINY), "--data.init_args.synthesize", "true"]
    assert main([*argv, "--trainer.fast_dev_run", "true"]) == 0
    reference = generate_synthmg(tmp_path / "reference", layout="imigue", **TINY)
    ours = IMiGUEDataModule(root)._get_records("train")
    theirs = IMiGUEDataModule(reference)._get_records("train")
    assert [(r.sample_id, r.label) for r in ours] == [(r.sample_id, r.label) for r in theirs]


def test_online_datamodule_writes_its_release(tmp_path):
    root = tmp_path / "untrimmed"
    subjects = {"train_subjects": [1, 2], "val_subjects": [3], "test_subjects": [4]}
    settings = {**TINY, "seed": 4}
    dm = SMGOnlineDataModule(root, window=16, synthmg=settings, synthesize=True, **subjects)
    dm.prepare_data()
    reference = generate_synthmg(tmp_path / "ref", layout="smg", **{**TINY, "seed": 4})
    ref = SMGOnlineDataModule(reference, window=16, **subjects)
    got = dm.load_sequences("train")
    assert [s.video_id for s in got] == [s.video_id for s in ref.load_sequences("train")]


def test_missing_root_of_a_real_dataset(tmp_path, capsys):
    root = tmp_path / "imigue_release"
    argv = ["test", "--config", str(STCNN_CONF), "--data.init_args.root", str(root)]
    assert main(argv) == 2
    line = _one_line(capsys)
    assert line == (
        f"mgr: error: data root {root} does not exist: point IMiGUEDataModule's root "
        "(data.init_args.root) at the release folder"
    )
    with pytest.raises(UserError, match="does not exist"):
        SMGOnlineDataModule(root).load_sequences("train")


def _checkpoint(path: Path, num_classes: int, class_path: str | None = None) -> Path:
    import torch

    model = STCNN(num_classes, num_joints=5, channels=(4,), temporal_strides=(1,))
    trainer = pl.Trainer(logger=False, enable_progress_bar=False, max_epochs=0)
    trainer.strategy.connect(model)
    trainer.save_checkpoint(path)
    if class_path is not None:
        ckpt = torch.load(path, weights_only=False)
        ckpt["hyper_parameters"]["_class_path"] = class_path
        torch.save(ckpt, path)
    return path


@pytest.mark.parametrize("kind", ["missing", "other_model", "other_classes"])
def test_wrong_checkpoint_is_one_line(kind, synth_imigue, tmp_path, capsys):
    num_classes = IMiGUEDataModule(synth_imigue).num_classes
    ckpt = tmp_path / "model.ckpt"
    if kind == "other_model":
        _checkpoint(ckpt, num_classes, class_path="mgr.models.PoseConv3D")
    elif kind == "other_classes":
        _checkpoint(ckpt, num_classes - 1, class_path="mgr.models.STCNN")  # as `mgr fit` saves
    argv = ["test", "--config", str(STCNN_CONF), "--data.init_args.root", str(synth_imigue)]
    assert main([*argv, "--ckpt_path", str(ckpt)]) == 2
    line = _one_line(capsys)
    expected = {
        "missing": f"--ckpt_path {ckpt} does not exist",
        "other_model": f"--ckpt_path {ckpt}: checkpoint of mgr.models.PoseConv3D, but the model "
        "is mgr.models.stcnn.STCNN",
        "other_classes": f"trained with num_classes={num_classes - 1}, this model has "
        f"num_classes={num_classes}",
    }[kind]
    assert expected in line


def test_bad_release_file_is_one_line_naming_file_and_row(synth_imigue, tmp_path, capsys):
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(synth_imigue, root)
    bad = root / "imigue_skeleton_train" / "0001" / "0001_label.csv"
    rows = bad.read_text().splitlines()
    rows[1] = ",".join(["x"] * len(rows[1].split(",")))
    bad.write_text("\n".join(rows) + "\n")
    with pytest.raises(DataFormatError) as err:
        IMiGUEDataModule(root).setup("fit")
    assert isinstance(err.value, ValueError) and isinstance(err.value, UserError)
    argv = ["fit", "--config", str(STCNN_CONF), "--data.init_args.root", str(root)]
    assert main([*argv, "--trainer.fast_dev_run", "true"]) == 2
    line = _one_line(capsys)
    assert str(err.value) in line and str(bad) in line


def test_unknown_config_key_is_lightning_clis_message(synth_imigue, capsys):
    argv = ["fit", "--config", str(STCNN_CONF), "--data.init_args.root", str(synth_imigue)]
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--model.init_args.no_such_knob", "1"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "no_such_knob" in err and "Traceback" not in err
