from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pytest

from mgr.data.readers.common import ClipRecord, DataFormatError
from mgr.data.readers.imigue import (
    IMIGUE_SPLIT_DIRS,
    MIGA_TEST_VIDEOS,
    MIGA_TRAIN_VIDEOS,
    MIGA_VAL_VIDEOS,
    find_imigue_videos,
    load_imigue_split,
    load_imigue_video,
    read_imigue_label_csv,
    read_light_hand_csv,
)

V, C = 35, 3


# ----------------------------------------------------------------------------- fixtures


def encode(t: int, v: int, c: int) -> float:
    """A value unique to (frame, joint, channel), exact in float32."""
    return t * 1000.0 + v * 10.0 + c + 0.5


def make_sequence(num_frames: int) -> np.ndarray:
    t, v, c = np.meshgrid(np.arange(num_frames), np.arange(V), np.arange(C), indexing="ij")
    return (t * 1000.0 + v * 10.0 + c + 0.5).astype(np.float32)


def write_light_hand(path: Path, keypoints: np.ndarray, *, extra: list[str] | None = None) -> None:
    """Write ``keypoints`` (T, 35, 3) in the MiGA layout: frame index, then 105 values."""
    with open(path, "w") as f:
        for t, frame in enumerate(keypoints):
            cells = [str(900 + t)] + [repr(float(x)) for x in frame.reshape(-1)]
            f.write(",".join(cells + (extra or [])) + "\n")


def write_rows(path: Path, rows: list[tuple]) -> None:
    with open(path, "w") as f:
        for row in rows:
            f.write(",".join(str(x) for x in row) + "\n")


def write_video(
    split_dir: Path, vid: str, keypoints: np.ndarray, clips: list[tuple[int, int, int]]
) -> Path:
    video_dir = split_dir / vid
    video_dir.mkdir(parents=True)
    write_light_hand(video_dir / f"{vid}_light_hand.csv", keypoints)
    write_rows(video_dir / f"{vid}_label.csv", clips)
    return video_dir


def error_message(excinfo: pytest.ExceptionInfo) -> str:
    return str(excinfo.value)


# ----------------------------------------------------------------------------- skeleton csv


def test_read_light_hand_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "0002_light_hand.csv"
    expected = make_sequence(6)
    # Trailing columns (even non-numeric ones) are ignored; column 0 (frame index) is skipped.
    write_light_hand(path, expected, extra=["7.0", "junk"])
    out = read_light_hand_csv(path)
    assert out.shape == (6, V, C)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, expected)
    assert out[4, 33, 1] == encode(4, 33, 1)
    assert out[0, 0, 0] == encode(0, 0, 0)  # not the frame index 900


def test_read_light_hand_accepts_str_path(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    write_light_hand(path, make_sequence(2))
    assert read_light_hand_csv(str(path)).shape == (2, V, C)


def test_read_light_hand_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope_light_hand.csv"
    with pytest.raises(FileNotFoundError) as excinfo:
        read_light_hand_csv(path)
    assert str(path) in error_message(excinfo)


@pytest.mark.parametrize("content", ["", "\n\n"])
def test_read_light_hand_empty(tmp_path: Path, content: str) -> None:
    path = tmp_path / "0002_light_hand.csv"
    path.write_text(content)
    with pytest.raises(DataFormatError, match="empty") as excinfo:
        read_light_hand_csv(path)
    assert str(path) in error_message(excinfo)


def test_read_light_hand_too_few_columns(tmp_path: Path) -> None:
    path = tmp_path / "0002_light_hand.csv"
    write_rows(path, [tuple(range(105))] * 3)
    with pytest.raises(DataFormatError, match="105 columns") as excinfo:
        read_light_hand_csv(path)
    assert str(path) in error_message(excinfo)
    assert "106" in error_message(excinfo)


def test_read_light_hand_non_numeric(tmp_path: Path) -> None:
    path = tmp_path / "0002_light_hand.csv"
    write_light_hand(path, make_sequence(5))
    lines = path.read_text().splitlines()
    cells = lines[2].split(",")
    cells[1 + 7 * 3 + 1] = "abc"  # row 3, joint 7, y
    lines[2] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFormatError, match="'abc' is not a number") as excinfo:
        read_light_hand_csv(path)
    message = error_message(excinfo)
    assert str(path) in message
    assert "row 3" in message
    assert "joint 7" in message


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_read_light_hand_non_finite(tmp_path: Path, bad: float) -> None:
    path = tmp_path / "0002_light_hand.csv"
    keypoints = make_sequence(6)
    keypoints[3, 12, 2] = bad  # row 4
    keypoints[5, 0, 0] = bad  # a later one: the first must be reported
    write_light_hand(path, keypoints)
    with pytest.raises(DataFormatError, match="non-finite") as excinfo:
        read_light_hand_csv(path)
    message = error_message(excinfo)
    assert str(path) in message
    assert "row 4" in message
    assert "joint 12" in message


def test_read_light_hand_short_row_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "0002_light_hand.csv"
    write_light_hand(path, make_sequence(4))
    lines = path.read_text().splitlines()
    lines[1] = ",".join(lines[1].split(",")[:50])
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFormatError, match="row 2") as excinfo:
        read_light_hand_csv(path)
    assert str(path) in error_message(excinfo)


# ----------------------------------------------------------------------------- label csv


def test_read_label_csv(tmp_path: Path) -> None:
    path = tmp_path / "0002_label.csv"
    write_rows(path, [(5, 0, 3), (99, 4, 9), (31, 10, 10), (1, 2, 2)])
    assert read_imigue_label_csv(path) == [(4, 0, 3), (31, 4, 9), (30, 10, 10), (0, 2, 2)]


def test_read_label_csv_empty_file_is_no_clips(tmp_path: Path) -> None:
    path = tmp_path / "0002_label.csv"
    path.write_text("")
    assert read_imigue_label_csv(path) == []


def test_read_label_csv_missing(tmp_path: Path) -> None:
    path = tmp_path / "0002_label.csv"
    with pytest.raises(FileNotFoundError) as excinfo:
        read_imigue_label_csv(path)
    assert str(path) in error_message(excinfo)


@pytest.mark.parametrize(
    ("bad_row", "match"),
    [
        ("5,1", "expected 3 columns"),
        ("5,1,2,3", "expected 3 columns"),
        ("x,1,2", "not an integer"),
        ("5,1.5,2", "not an integer"),
        ("32,1,2", "unknown label id 32"),
        ("0,1,2", "unknown label id 0"),
        ("98,1,2", "unknown label id 98"),
        ("5,-1,2", "negative start"),
        ("5,4,3", "end frame 3 < start frame 4"),
    ],
)
def test_read_label_csv_errors(tmp_path: Path, bad_row: str, match: str) -> None:
    path = tmp_path / "0002_label.csv"
    path.write_text(f"1,0,3\n{bad_row}\n")
    with pytest.raises(DataFormatError, match=match) as excinfo:
        read_imigue_label_csv(path)
    message = error_message(excinfo)
    assert str(path) in message
    assert "row 2" in message


# ----------------------------------------------------------------------------- one video


def test_load_video_inclusive_end_and_naming(tmp_path: Path) -> None:
    keypoints = make_sequence(12)
    video_dir = write_video(tmp_path, "0002", keypoints, [(4, 3, 7), (99, 0, 0), (31, 8, 11)])
    records = load_imigue_video(video_dir)
    assert [r.sample_id for r in records] == ["0002_0", "0002_1", "0002_2"]
    assert [r.label for r in records] == [3, 31, 30]
    first = records[0]
    assert isinstance(first, ClipRecord)
    assert first.keypoint.shape == (5, V, C)  # rows 3..7
    assert first.keypoint.dtype == np.float32
    np.testing.assert_array_equal(first.keypoint, keypoints[3:8])
    assert first.keypoint[0, 20, 2] == encode(3, 20, 2)
    assert (first.start, first.end) == (3, 7)
    assert first.num_frames == 5
    assert first.video_id == "0002"
    assert first.subject is None
    assert first.source == str(video_dir / "0002_light_hand.csv")
    assert records[1].keypoint.shape == (1, V, C)
    assert records[2].keypoint.shape == (4, V, C)  # last clip reaches the last row


def test_load_video_clip_is_a_copy(tmp_path: Path) -> None:
    video_dir = write_video(tmp_path, "0002", make_sequence(10), [(1, 0, 4), (1, 2, 6)])
    first, second = load_imigue_video(video_dir)
    first.keypoint[:] = 0
    assert second.keypoint.any()
    assert first.keypoint.base is None


def test_load_video_out_of_range_raises(tmp_path: Path) -> None:
    video_dir = write_video(tmp_path, "0002", make_sequence(10), [(1, 0, 4), (2, 8, 12)])
    with pytest.raises(DataFormatError) as excinfo:
        load_imigue_video(video_dir)
    message = error_message(excinfo)
    assert str(video_dir / "0002_label.csv") in message
    assert "row 2" in message
    assert "0002_1" in message
    assert "12" in message
    assert "10 rows" in message


def test_load_video_out_of_range_warn_skips(tmp_path: Path) -> None:
    clips = [(1, 0, 4), (2, 5, 10), (3, 2, 9)]  # end 10 == T is one past the last row
    video_dir = write_video(tmp_path, "0002", make_sequence(10), clips)
    with pytest.warns(UserWarning, match=r"0002_1 spans frames 5\.\.10"):
        records = load_imigue_video(video_dir, on_error="warn")
    # Sample ids keep the label-row index, so the skipped clip leaves a gap.
    assert [r.sample_id for r in records] == ["0002_0", "0002_2"]


def test_load_video_all_zero_clip_skipped(tmp_path: Path) -> None:
    keypoints = make_sequence(10)
    keypoints[2:5] = 0  # OpenPose found nobody in frames 2..4
    video_dir = write_video(tmp_path, "0002", keypoints, [(1, 0, 3), (2, 2, 4), (3, 5, 9)])
    for on_error in ("raise", "warn"):
        with pytest.warns(UserWarning, match="skipping clip 0002_1") as record:
            records = load_imigue_video(video_dir, on_error=on_error)
        assert str(video_dir / "0002_light_hand.csv") in str(record[0].message)
        assert [r.sample_id for r in records] == ["0002_0", "0002_2"]
        # A clip that is only partly zero is kept.
        np.testing.assert_array_equal(records[0].keypoint, keypoints[0:4])


def test_load_video_empty_label_file(tmp_path: Path) -> None:
    video_dir = write_video(tmp_path, "0002", make_sequence(3), [])
    assert load_imigue_video(video_dir) == []


def test_load_video_missing_files(tmp_path: Path) -> None:
    video_dir = write_video(tmp_path, "0002", make_sequence(3), [(1, 0, 1)])
    (video_dir / "0002_light_hand.csv").unlink()
    with pytest.raises(FileNotFoundError) as excinfo:
        load_imigue_video(video_dir)
    assert str(video_dir / "0002_light_hand.csv") in error_message(excinfo)
    with pytest.raises(FileNotFoundError) as excinfo:
        load_imigue_video(tmp_path / "0404")
    assert str(tmp_path / "0404") in error_message(excinfo)


def test_load_video_bad_on_error(tmp_path: Path) -> None:
    video_dir = write_video(tmp_path, "0002", make_sequence(3), [(1, 0, 1)])
    with pytest.raises(ValueError, match="on_error"):
        load_imigue_video(video_dir, on_error="ignore")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- splits


@pytest.fixture
def imigue_root(tmp_path: Path) -> Path:
    root = tmp_path / "imigue"
    train = root / IMIGUE_SPLIT_DIRS["train"]
    val = root / IMIGUE_SPLIT_DIRS["val"]
    write_video(train, "0013", make_sequence(8), [(1, 0, 2), (2, 3, 7)])
    write_video(train, "0012", make_sequence(6), [(99, 1, 5)])
    write_video(val, "0001", make_sequence(5), [(4, 0, 4)])
    (train / "__MACOSX").mkdir()  # archive debris: not a video
    (train / "notes.txt").write_text("not a video")
    return root


def test_load_split_sorted(imigue_root: Path) -> None:
    records = load_imigue_split(imigue_root, "train")
    assert [r.sample_id for r in records] == ["0012_0", "0013_0", "0013_1"]
    assert [r.label for r in records] == [31, 0, 1]
    assert [r.sample_id for r in load_imigue_split(imigue_root, "val")] == ["0001_0"]


def test_load_split_video_ids(imigue_root: Path) -> None:
    records = load_imigue_split(imigue_root, "train", video_ids=["0013"])
    assert [r.sample_id for r in records] == ["0013_0", "0013_1"]
    with pytest.raises(FileNotFoundError, match=r"\['0099'\]") as excinfo:
        load_imigue_split(imigue_root, "train", video_ids=["0013", "0099"])
    assert str(imigue_root / "imigue_skeleton_train") in error_message(excinfo)
    with pytest.raises(ValueError, match="string"):
        load_imigue_split(imigue_root, "train", video_ids="0013")


def test_load_split_missing_folder(imigue_root: Path) -> None:
    with pytest.raises(FileNotFoundError) as excinfo:
        load_imigue_split(imigue_root, "test")
    message = error_message(excinfo)
    assert str(imigue_root / "imigue_skeleton_test") in message
    assert "imigue_skeleton_train" in message and "imigue_skeleton_validate" in message
    with pytest.raises(ValueError, match="unknown iMiGUE split"):
        load_imigue_split(imigue_root, "validate")


def test_find_videos(imigue_root: Path) -> None:
    videos = find_imigue_videos(imigue_root)
    assert list(videos) == ["0001", "0012", "0013"]
    assert videos["0001"] == imigue_root / "imigue_skeleton_validate" / "0001"
    assert videos["0013"] == imigue_root / "imigue_skeleton_train" / "0013"
    # Split by id list, across folders.
    records = [r for vid in ("0001", "0012") for r in load_imigue_video(videos[vid])]
    assert [r.sample_id for r in records] == ["0001_0", "0012_0"]


def test_find_videos_duplicate_warns(imigue_root: Path) -> None:
    write_video(imigue_root / "imigue_skeleton_test", "0013", make_sequence(3), [(1, 0, 1)])
    with pytest.warns(UserWarning, match="0013"):
        videos = find_imigue_videos(imigue_root)
    assert videos["0013"].parent.name == "imigue_skeleton_train"


def test_find_videos_no_split_folder(tmp_path: Path) -> None:
    (tmp_path / "something_else").mkdir()
    with pytest.raises(FileNotFoundError, match="something_else") as excinfo:
        find_imigue_videos(tmp_path)
    assert str(tmp_path) in error_message(excinfo)


def test_find_videos_no_warning_when_clean(imigue_root: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        find_imigue_videos(imigue_root)


# ----------------------------------------------------------------------------- MiGA lists


def test_miga_video_lists() -> None:
    assert len(MIGA_VAL_VIDEOS) == 10
    assert len(MIGA_TRAIN_VIDEOS) == 241
    assert len(MIGA_TEST_VIDEOS) == 104
    lists = (MIGA_TRAIN_VIDEOS, MIGA_VAL_VIDEOS, MIGA_TEST_VIDEOS)
    for ids in lists:
        assert len(set(ids)) == len(ids)
        assert list(ids) == sorted(ids)
        assert all(re.fullmatch(r"\d{4}", vid) for vid in ids)
    train, val, test = (set(ids) for ids in lists)
    assert not train & val
    assert not train & test
    assert not val & test
    assert MIGA_VAL_VIDEOS[0] == "0001" and MIGA_TEST_VIDEOS[-1] == "0453"
