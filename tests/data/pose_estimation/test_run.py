"""``mgr pose`` on a SynthMG RGB video with tiny ONNX models: files, readers, resume, errors."""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import numpy as np
import pytest

from mgr.cli import main
from mgr.data.pose_estimation.files import convert_layout, load_pose_keypoints, read_pose_npz
from mgr.data.readers.miga import read_openpose_xlsx
from mgr.data.readers.pose_json import read_openpose_json
from mgr.data.readers.video import probe_video, read_video
from mgr.skeletons import openpose_137_from_coco_wholebody
from tests.conftest import POSE_BOXES, POSE_FRAME

pytest.importorskip("onnxruntime")

SIZE = POSE_FRAME  # (H, W) of the conftest RGB videos
NAME = "Sample0002_color"  # the video file stem
MAIN, OTHER = POSE_BOXES["main"], POSE_BOXES["other"]


@pytest.fixture(scope="module")
def onnx_models(pose_onnx) -> dict[str, Path]:
    return pose_onnx


@pytest.fixture(scope="module")
def video(synth_smg_rgb: Path) -> Path:
    return synth_smg_rgb / "smg_rgb" / "Sample0002" / "Sample0002_color.mp4"


def pose_args(models: dict[str, Path], det: str = "det") -> list[str]:
    return ["--det", str(models[det]), "--pose", str(models["pose"]), "--no-progress"]


@pytest.fixture(scope="module")
def pose_dir(onnx_models, video, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pose_out")
    assert main(["pose", str(video), *pose_args(onnx_models), "--out", str(out)]) == 0
    return out


def test_files_round_trip_through_the_readers(pose_dir: Path, video: Path) -> None:
    num_frames = len(read_video(video))
    pose = read_pose_npz(pose_dir / f"{NAME}.npz")
    assert pose.keypoints.shape == (1, num_frames, 133, 2) and pose.scores.shape[:2] == (
        1,
        num_frames,
    )
    assert pose.image_size == SIZE and pose.fps == pytest.approx(probe_video(video).fps)
    # Main subject: the bigger person box, tracked in every frame; the non-person ignored.
    np.testing.assert_allclose(pose.boxes[0, :, :4], np.tile(MAIN, (num_frames, 1)), atol=1e-3)
    assert pose.track_ids.tolist() == [0]
    # The keypoints lie in the box (the template covers the middle of the crop).
    x, y = pose.keypoints[0, ..., 0], pose.keypoints[0, ..., 1]
    assert (x > 10).all() and (x < 70).all() and (y > -15).all() and (y < 60).all()
    # The xlsx and the JSON files hold the same OpenPose 137 keypoints.
    expected = openpose_137_from_coco_wholebody(pose.wholebody(0), min_score=0.3)
    assert (expected[..., 2] > 0).all()  # template scores 0.9: every point detected
    xlsx = read_openpose_xlsx(pose_dir / f"{NAME}_openpose.xlsx")
    np.testing.assert_allclose(xlsx, expected, atol=1e-4)
    json_kp = read_openpose_json(pose_dir / f"{NAME}_json")
    np.testing.assert_allclose(json_kp, expected, atol=1e-3)
    kp, layout, _ = load_pose_keypoints(pose_dir / f"{NAME}.npz")
    assert layout == "coco_wholebody_133"
    np.testing.assert_allclose(convert_layout(kp, layout, "openpose_137"), expected, atol=1e-6)


def test_rerun_skips_and_fills_in_missing_formats(
    pose_dir: Path, onnx_models, video: Path, capsys
) -> None:
    npz = pose_dir / f"{NAME}.npz"
    before = npz.stat().st_mtime_ns
    (pose_dir / f"{NAME}_openpose.xlsx").unlink()
    capsys.readouterr()
    assert main(["pose", str(video), *pose_args(onnx_models), "--out", str(pose_dir)]) == 0
    assert "(0 computed, 1 cached" in capsys.readouterr().out
    assert npz.stat().st_mtime_ns == before  # the models did not run again
    assert (pose_dir / f"{NAME}_openpose.xlsx").is_file()  # written from the npz
    assert not [p for p in pose_dir.iterdir() if p.name.startswith(".")]  # no temp files left
    # Another keypoint threshold changes the files: the video is computed again.
    args = ["pose", str(video), *pose_args(onnx_models), "--out", str(pose_dir)]
    assert main([*args, "--kpt-thr", "0.95"]) == 0
    assert "(1 computed, 0 cached" in capsys.readouterr().out
    assert read_pose_npz(npz).kpt_thr == pytest.approx(0.95)
    assert not read_openpose_xlsx(pose_dir / f"{NAME}_openpose.xlsx").any()  # all below 0.95


def test_all_people_keeps_every_track(onnx_models, video: Path, tmp_path: Path) -> None:
    folder = tmp_path / "videos"
    folder.mkdir()
    os.symlink(video, folder / "clip.mp4")
    args = ["pose", str(folder), *pose_args(onnx_models), "--out", str(tmp_path / "out")]
    assert main([*args, "--all-people", "--formats", "npz", "json"]) == 0
    pose = read_pose_npz(tmp_path / "out" / "clip.npz")
    assert pose.num_people == 2 and pose.track_ids.tolist() == [0, 1]
    np.testing.assert_allclose(pose.boxes[1, 0, :4], OTHER, atol=1e-3)
    assert not (tmp_path / "out" / "clip_openpose.xlsx").exists()
    # Both people are in every JSON frame; the reader picks the larger one.
    largest = read_openpose_json(tmp_path / "out" / "clip_json", person="largest")
    np.testing.assert_allclose(largest, pose.openpose(0), atol=1e-3)


def test_a_video_with_nobody_gives_empty_files_and_a_warning(
    onnx_models, video: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    with pytest.warns(UserWarning, match=r"Sample0002_color\.mp4: no person detected"):
        assert main(["pose", str(video), *pose_args(onnx_models, "blind"), "--out", str(out)]) == 0
    pose = read_pose_npz(out / f"{NAME}.npz")
    assert pose.num_people == 0 and pose.num_frames == len(read_video(video))
    assert not read_openpose_xlsx(out / f"{NAME}_openpose.xlsx").any()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # frames without people are fine here
        assert not read_openpose_json(out / f"{NAME}_json").any()


def test_bad_input_is_one_line_naming_the_file(
    onnx_models, video: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    monkeypatch.setenv("MGR_DEBUG", "0")
    out = ["--out", str(tmp_path / "out")]
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(500))
    cases = [
        (["pose", str(broken), *pose_args(onnx_models), *out], r"broken\.mp4: not a readable"),
        (
            ["pose", str(video), "--det", str(onnx_models["pose"]), "--pose",
             str(onnx_models["pose"]), "--no-progress", *out],
            r"pose\.onnx: not a person detector: .* outputs \[simcc_x",
        ),
        (["pose", str(tmp_path / "none.mp4"), *pose_args(onnx_models), *out], r"none\.mp4 does"),
    ]  # fmt: skip
    for argv, pattern in cases:
        capsys.readouterr()
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("mgr: error: ") and err.count("\n") == 1, err
        assert re.search(pattern, err), err
