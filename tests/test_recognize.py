"""``mgr recognize`` and ``mgr detect --video`` on a SynthMG RGB video, end to end."""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from unittest import mock

import lightning.pytorch as pl
import numpy as np
import pytest
import torch

from mgr.cli import main
from mgr.data.pose_estimation.files import read_pose_npz
from mgr.data.readers.video import read_video
from mgr.data.transforms.pose import flip_skeleton, normalize_skeleton, uniform_sample_indices
from mgr.datamodules import IMiGUEDataModule, IMiGUEOnlineDataModule
from mgr.models import STCNN, OnlineDetector
from mgr.skeletons import (
    IMIGUE_LIGHT_HAND_35_FROM_137,
    IMIGUE_MIGA_22,
    openpose_137_from_coco_wholebody,
)

pytest.importorskip("onnxruntime")

CONF = Path(__file__).parent / "conf"
QUIET = {
    "accelerator": "cpu", "logger": False, "enable_checkpointing": False,
    "enable_progress_bar": False, "enable_model_summary": False,
}  # fmt: skip
WINDOW, STRIDE = 16, 8


def _fit_run(config: str, root: Path, run: Path) -> Path:
    """``mgr fit`` one step with a tests/conf config; its checkpoint (config.yaml beside)."""
    pl.seed_everything(0, verbose=False)
    args = ["fit", "--config", str(CONF / config), "--data.init_args.root", str(root)]
    args += ["--trainer.max_steps", "1", "--trainer.limit_val_batches", "0"]
    args += ["--trainer.enable_checkpointing", "true", "--trainer.default_root_dir", str(run)]
    with mock.patch.object(sys, "argv", ["mgr"]):  # LightningCLI also looks at sys.argv
        assert main(args) == 0
    (ckpt,) = (run / "checkpoints").glob("*.ckpt")
    assert (run / "config.yaml").is_file()
    return ckpt


@pytest.fixture(scope="module")
def stcnn_ckpt(synth_imigue: Path, tmp_path_factory) -> Path:
    """A tiny ST-CNN (tests/conf/stcnn_imigue.yaml: 22 joints, 2 test clips x flips)."""
    return _fit_run("stcnn_imigue.yaml", synth_imigue, tmp_path_factory.mktemp("stcnn"))


@pytest.fixture(scope="module")
def video(synth_smg_rgb: Path) -> Path:
    return synth_smg_rgb / "smg_rgb" / "Sample0002" / "Sample0002_color.mp4"


@pytest.fixture(scope="module")
def pose_dir(video: Path, pose_onnx, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pose")
    args = ["--det", str(pose_onnx["det"]), "--pose", str(pose_onnx["pose"]), "--no-progress"]
    assert main(["pose", str(video), *args, "--out", str(out), "--formats", "npz"]) == 0
    return out


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def reference_probs(ckpt: Path, pose_dir: Path, start: int) -> np.ndarray:
    """The window's probabilities computed plainly: npz -> 137 -> 35 -> 22 joints,
    clip-centred on the neck in shoulder widths, 2 test clips x (plain, flipped), mean prob."""
    model = STCNN.load_from_checkpoint(ckpt, map_location="cpu").eval()
    pose = read_pose_npz(pose_dir / "Sample0002_color.npz")
    op = openpose_137_from_coco_wholebody(pose.wholebody(0), min_score=pose.kpt_thr)
    op[..., 2] = op[..., 2].clip(0, 1)
    kp = op[:, list(IMIGUE_LIGHT_HAND_35_FROM_137)][:, list(IMIGUE_MIGA_22.parent_indices)]
    kp = kp[start : start + WINDOW]
    lay = IMIGUE_MIGA_22
    kp = normalize_skeleton(
        kp, lay.center, score_channel=2,
        scale_joints=(lay.index("LShoulder"), lay.index("RShoulder")), center_mode="clip",
    )  # fmt: skip
    idx = uniform_sample_indices(len(kp), 8, num_clips=2, test_mode=True).reshape(2, 8)
    views = [kp[i] for i in idx]
    views += [flip_skeleton(v, lay.flip_permutation()) for v in views]
    x = torch.stack([torch.from_numpy(v).permute(2, 0, 1)[..., None] for v in views])
    with torch.no_grad():
        logits = model.forward_head(model.forward_features({"skeleton": x}))
    return logits.softmax(-1).mean(0).numpy()


@pytest.fixture(scope="module")
def skeleton_run(stcnn_ckpt: Path, video: Path, pose_dir: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("rec")
    args = ["recognize", str(video), "--ckpt", str(stcnn_ckpt), "--pose", str(pose_dir)]
    args += ["--window", str(WINDOW), "--stride", str(STRIDE), "--out", str(out), "--no-progress"]
    assert main(args) == 0
    return out


def test_recognize_skeleton_windows(
    stcnn_ckpt: Path, video: Path, pose_dir: Path, skeleton_run: Path, one_thread
) -> None:
    num_frames = len(read_video(video))
    rows = read_rows(skeleton_run / "Sample0002_color_windows.csv")
    starts = list(range(0, num_frames - WINDOW + 1, STRIDE))
    assert [int(r["start"]) for r in rows] == starts
    assert [int(r["end"]) for r in rows] == [s + WINDOW - 1 for s in starts]
    names = IMiGUEDataModule(pose_dir).class_names
    probs = np.array([[float(r[n]) for n in names] for r in rows])
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-3)
    assert all(r["top1"] == names[int(np.argmax(p))] for r, p in zip(rows, probs, strict=True))
    for i in (0, len(rows) - 1):
        np.testing.assert_allclose(
            probs[i], reference_probs(stcnn_ckpt, pose_dir, starts[i]), atol=2e-4
        )
    assert (skeleton_run / "Sample0002_color_timeline.png").stat().st_size > 0
    annotated = read_video(skeleton_run / "Sample0002_color_annotated.mp4")
    assert annotated.shape == (num_frames, 48 * 8, 80 * 8, 3)  # enlarged to >= 360 px


@pytest.mark.slow  # two more trainings and recognitions (~25 s)
@pytest.mark.parametrize(
    ("config", "release", "key"),
    [
        ("videoswin_imigue.yaml", "synth_imigue_rgb", "video"),  # RGB, saliency crop
        ("posec3d_imigue.yaml", "synth_imigue", "heatmap"),  # heatmap volumes
    ],
)
def test_recognize_rgb_and_heatmap_recognizers(
    config: str, release: str, key: str, video: Path, pose_dir: Path, tmp_path: Path, request,
    monkeypatch,
) -> None:  # fmt: skip
    ckpt = _fit_run(config, request.getfixturevalue(release), tmp_path / "run")
    # The batches are what the recognizer's own evaluation transform builds.
    seen = []
    from mgr.models.base import Recognizer

    forward = Recognizer.forward
    monkeypatch.setattr(Recognizer, "forward", lambda m, b: seen.append(b) or forward(m, b))
    args = ["recognize", str(video), "--ckpt", str(ckpt), "--pose", str(pose_dir)]
    args += ["--window", "16", "--stride", "16", "--out", str(tmp_path / "o"), "--no-progress"]
    assert main([*args, "--no-video"]) == 0
    rows = read_rows(tmp_path / "o" / "Sample0002_color_windows.csv")
    assert len(rows) == len(range(0, len(read_video(video)) - 16 + 1, 16))
    assert all(int(r["person"]) == 1 and 0 < float(r["top1_prob"]) <= 1 for r in rows)
    batch = seen[0][key]
    if key == "video":  # (B, views = 1 + flip, C, T, 32, 32)
        assert batch.shape[1:] == (2, 3, 4, 32, 32)
    else:  # (B, views = 2 clips x (plain, flipped), K = 22 joints, T, 20, 20): test_size 20
        assert batch.shape[1:] == (4, 22, 4, 20, 20)


def test_recognize_with_pose_models_on_the_fly(
    stcnn_ckpt: Path, video: Path, skeleton_run: Path, pose_onnx, tmp_path: Path
) -> None:
    args = ["recognize", str(video), "--ckpt", str(stcnn_ckpt), "--window", str(WINDOW)]
    args += ["--stride", str(STRIDE), "--no-progress", "--no-video", "--out", str(tmp_path)]
    args += ["--det", str(pose_onnx["det"]), "--pose-model", str(pose_onnx["pose"])]
    assert main(args) == 0
    assert (tmp_path / "pose" / "Sample0002_color.npz").is_file()
    assert not (tmp_path / "Sample0002_color_annotated.mp4").exists()
    on_the_fly = read_rows(tmp_path / "Sample0002_color_windows.csv")
    assert on_the_fly == read_rows(skeleton_run / "Sample0002_color_windows.csv")


def test_recognize_bad_input(
    stcnn_ckpt: Path, video: Path, synth_smg_rgb: Path, pose_onnx, tmp_path: Path, capsys,
    monkeypatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("MGR_DEBUG", "0")
    base = ["recognize", str(video), "--ckpt", str(stcnn_ckpt), "--no-progress", "--no-video"]
    # Nobody in the video: said so, nothing predicted.
    fly = ["--det", str(pose_onnx["blind"]), "--pose-model", str(pose_onnx["pose"])]
    with pytest.warns(UserWarning, match="no person detected"):
        assert main([*base, *fly, "--out", str(tmp_path / "nobody")]) == 2
    err = capsys.readouterr().err
    assert "Sample0002_color.npz: no person was detected in" in err and err.count("\n") == 1
    assert not (tmp_path / "nobody" / "Sample0002_color_windows.csv").exists()
    # Pose files of another (shorter) video.
    other = synth_smg_rgb / "smg_rgb" / "Sample0001" / "Sample0001_color.mp4"
    args = ["--det", str(pose_onnx["det"]), "--pose", str(pose_onnx["pose"]), "--no-progress"]
    assert main(["pose", str(other), *args, "--out", str(tmp_path / "p"), "--formats", "npz"]) == 0
    wrong = tmp_path / "p" / "Sample0001_color.npz"
    assert main([*base, "--pose", str(wrong), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "Sample0001_color.npz has keypoints for 12 frames but" in err, err
    # No keypoints at all for a skeleton recognizer.
    assert main([*base, "--out", str(tmp_path / "o")]) == 2
    assert "STCNN reads keypoints" in capsys.readouterr().err


@pytest.fixture(scope="module")
def detector_ckpt(synth_imigue: Path, tmp_path_factory) -> Path:
    """A raw-skeleton OnlineDetector on iMiGUE (22 joints), with the config mgr fit saves."""
    pl.seed_everything(0, verbose=False)
    dm = IMiGUEOnlineDataModule(synth_imigue, window=32, windows_per_sequence=2, batch_size=2)
    model = OnlineDetector(num_classes=32, class_names=dm.class_names, in_channels=66,
                           embed_dim=8, num_levels=2)  # fmt: skip
    trainer = pl.Trainer(max_steps=2, limit_val_batches=0, **QUIET)
    trainer.fit(model, dm)
    run = tmp_path_factory.mktemp("det_run")
    (run / "checkpoints").mkdir()
    trainer.save_checkpoint(run / "checkpoints" / "det.ckpt")
    (run / "config.yaml").write_text(  # what mgr fit would save, the data section
        "data:\n  class_path: mgr.datamodules.IMiGUEOnlineDataModule\n"
        f"  init_args:\n    root: {synth_imigue}\n    window: 32\n"
    )
    return run / "checkpoints" / "det.ckpt"


def test_detect_on_a_raw_video(detector_ckpt: Path, video: Path, pose_dir: Path,
                               tmp_path: Path) -> None:  # fmt: skip
    out = tmp_path / "det"
    args = ["detect", "--ckpt", str(detector_ckpt), "--video", str(video), "--pose", str(pose_dir)]
    assert main([*args, "--out", str(out), "--min-score", "0", "--no-progress"]) == 0
    num_frames = len(read_video(video))
    rows = read_rows(out / "Sample0002_color_detections.csv")
    assert rows, "an untrained detector with min-score 0 still emits its top detections"
    names = IMiGUEOnlineDataModule(pose_dir).class_names
    for r in rows:
        assert names[int(r["class"])] == r["name"]
        assert 0 <= int(r["start"]) < int(r["end"]) <= num_frames
        assert 0.0 <= float(r["score"]) <= 1.0
    assert (out / "Sample0002_color_timeline.png").stat().st_size > 0
    assert len(read_video(out / "Sample0002_color_annotated.mp4")) == num_frames


@pytest.mark.slow  # feature extraction and a detector trained on features (~20 s)
def test_detect_on_a_raw_video_with_recognizer_features(
    stcnn_ckpt: Path, synth_imigue: Path, video: Path, pose_dir: Path, tmp_path: Path
) -> None:
    feats = tmp_path / "feats"
    args = ["extract-features", "--ckpt", str(stcnn_ckpt), "--root", str(synth_imigue)]
    assert (
        main([*args, "--window", "16", "--stride", "4", "--out", str(feats), "--no-progress"]) == 0
    )
    pl.seed_everything(0, verbose=False)
    dm = IMiGUEOnlineDataModule(
        synth_imigue, window=16, windows_per_sequence=2, batch_size=2, features_dir=feats
    )
    model = OnlineDetector(num_classes=32, class_names=dm.class_names, in_channels=dm.in_channels,
                           input_key="features", embed_dim=8, num_levels=2)  # fmt: skip
    trainer = pl.Trainer(max_steps=2, limit_val_batches=0, **QUIET)
    trainer.fit(model, dm)
    trainer.save_checkpoint(tmp_path / "det.ckpt")
    args = ["detect", "--ckpt", str(tmp_path / "det.ckpt"), "--video", str(video)]
    args += ["--pose", str(pose_dir), "--recognizer", str(stcnn_ckpt), "--min-score", "0"]
    assert main([*args, "--out", str(tmp_path / "o"), "--no-progress", "--no-video"]) == 0
    rows = read_rows(tmp_path / "o" / "Sample0002_color_detections.csv")
    num_frames = len(read_video(video))
    assert rows and all(0 <= int(r["start"]) < int(r["end"]) <= num_frames for r in rows)
