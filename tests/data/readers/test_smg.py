from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from mgr.data.readers.common import ClipRecord, DataFormatError
from mgr.data.readers.smg import (
    SMG_SPLITS,
    find_smg_samples,
    load_smg_split,
    load_smg_subject,
    read_smg_data_csv,
    read_smg_finelabels,
    read_smg_skeleton_csv,
)

V, K = 25, 11  # joints, floats per joint


# ----------------------------------------------------------------------------- fixtures


def encode(t: int, j: int, k: int) -> float:
    """A value unique to (frame, joint, value index), exact in float32."""
    return t * 1000.0 + j * 20.0 + k + 0.25


def make_skeleton(num_frames: int) -> np.ndarray:
    t, j, k = np.meshgrid(np.arange(num_frames), np.arange(V), np.arange(K), indexing="ij")
    return (t * 1000.0 + j * 20.0 + k + 0.25).astype(np.float32)


def write_skeleton(path: Path, skeleton: np.ndarray) -> None:
    """Write (T, 25, 11) as T rows of 275 comma-separated floats (joint j at column 11*j)."""
    with open(path, "w") as f:
        for frame in skeleton:
            f.write(",".join(repr(float(x)) for x in frame.reshape(-1)) + "\n")


def write_rows(path: Path, rows: list[tuple]) -> None:
    with open(path, "w") as f:
        for row in rows:
            f.write(",".join(str(x) for x in row) + "\n")


def write_sample(
    parent: Path,
    subject: int,
    skeleton: np.ndarray,
    clips: list[tuple[int, int, int]],
    *,
    num_frames: int | None = None,
    data_file: bool = True,
) -> Path:
    name = f"Sample{subject:04d}"
    sample_dir = parent / name
    sample_dir.mkdir(parents=True)
    write_skeleton(sample_dir / f"{name}_skeleton.csv", skeleton)
    write_rows(sample_dir / f"{name}_finelabels.csv", clips)
    if data_file:
        frames = len(skeleton) if num_frames is None else num_frames
        write_rows(sample_dir / f"{name}_data.csv", [(frames, 30, 8000)])
    return sample_dir


def error_message(excinfo: pytest.ExceptionInfo) -> str:
    return str(excinfo.value)


# ----------------------------------------------------------------------------- skeleton csv


def test_read_skeleton_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "Sample0001_skeleton.csv"
    expected = make_skeleton(5)
    write_skeleton(path, expected)
    out = read_smg_skeleton_csv(path)
    assert out.shape == (5, V, K)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, expected)
    assert out[3, 24, 10] == encode(3, 24, 10)


def test_read_skeleton_missing(tmp_path: Path) -> None:
    path = tmp_path / "Sample0001_skeleton.csv"
    with pytest.raises(FileNotFoundError) as excinfo:
        read_smg_skeleton_csv(path)
    assert str(path) in error_message(excinfo)


def test_read_skeleton_empty(tmp_path: Path) -> None:
    path = tmp_path / "Sample0001_skeleton.csv"
    path.write_text("")
    with pytest.raises(DataFormatError, match="empty") as excinfo:
        read_smg_skeleton_csv(path)
    assert str(path) in error_message(excinfo)


def test_read_skeleton_wrong_column_count(tmp_path: Path) -> None:
    path = tmp_path / "Sample0001_skeleton.csv"
    write_rows(path, [tuple(range(274))] * 2)
    with pytest.raises(DataFormatError, match="274 columns") as excinfo:
        read_smg_skeleton_csv(path)
    assert str(path) in error_message(excinfo)
    assert "275" in error_message(excinfo)


def test_read_skeleton_nan(tmp_path: Path) -> None:
    path = tmp_path / "Sample0001_skeleton.csv"
    skeleton = make_skeleton(4)
    skeleton[2, 6, 1] = np.nan
    write_skeleton(path, skeleton)
    with pytest.raises(DataFormatError, match="non-finite") as excinfo:
        read_smg_skeleton_csv(path)
    message = error_message(excinfo)
    assert str(path) in message
    assert "row 3" in message
    assert "joint 6" in message


def test_read_skeleton_non_numeric(tmp_path: Path) -> None:
    path = tmp_path / "Sample0001_skeleton.csv"
    skeleton = make_skeleton(3)
    write_skeleton(path, skeleton)
    lines = path.read_text().splitlines()
    cells = lines[1].split(",")
    cells[11 * 4 + 2] = "1.2.3"
    lines[1] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFormatError, match="not a number") as excinfo:
        read_smg_skeleton_csv(path)
    message = error_message(excinfo)
    assert str(path) in message
    assert "row 2" in message
    assert "joint 4" in message


# ----------------------------------------------------------------------------- finelabels / data


def test_read_finelabels(tmp_path: Path) -> None:
    path = tmp_path / "Sample0001_finelabels.csv"
    write_rows(path, [(1, 0, 5), (17, 10, 20), (9, 30, 31)])
    assert read_smg_finelabels(path) == [(0, 0, 5), (16, 10, 20), (8, 30, 31)]


@pytest.mark.parametrize(
    ("bad_row", "match"),
    [
        ("18,1,2", "unknown label id 18"),
        ("0,1,2", "unknown label id 0"),
        ("99,1,2", "unknown label id 99"),
        ("3,1", "expected 3 columns"),
        ("3,a,2", "not an integer"),
        ("3,-2,2", "negative start"),
        ("3,5,4", "end frame 4 < start frame 5"),
    ],
)
def test_read_finelabels_errors(tmp_path: Path, bad_row: str, match: str) -> None:
    path = tmp_path / "Sample0001_finelabels.csv"
    path.write_text(f"1,0,3\n2,4,8\n{bad_row}\n")
    with pytest.raises(DataFormatError, match=match) as excinfo:
        read_smg_finelabels(path)
    message = error_message(excinfo)
    assert str(path) in message
    assert "row 3" in message


def test_read_finelabels_missing(tmp_path: Path) -> None:
    path = tmp_path / "Sample0001_finelabels.csv"
    with pytest.raises(FileNotFoundError) as excinfo:
        read_smg_finelabels(path)
    assert str(path) in error_message(excinfo)


def test_read_data_csv(tmp_path: Path) -> None:
    path = tmp_path / "Sample0001_data.csv"
    path.write_text("20123,30,8000\n")
    num_frames, fps, max_depth = read_smg_data_csv(path)
    assert (num_frames, fps, max_depth) == (20123, 30.0, 8000)
    assert isinstance(num_frames, int) and isinstance(fps, float) and isinstance(max_depth, int)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("", "expected 1 row"),
        ("10,30\n", "expected 3 columns"),
        ("10,30,8000\n11,30,8000\n", "expected 1 row"),
        ("ten,30,8000\n", "numFrames 'ten' is not an integer"),
        ("10,fast,8000\n", "fps 'fast'"),
    ],
)
def test_read_data_csv_errors(tmp_path: Path, content: str, match: str) -> None:
    path = tmp_path / "Sample0001_data.csv"
    path.write_text(content)
    with pytest.raises(DataFormatError, match=match) as excinfo:
        read_smg_data_csv(path)
    assert str(path) in error_message(excinfo)


# ----------------------------------------------------------------------------- one subject


def test_load_subject_exclusive_default(tmp_path: Path) -> None:
    skeleton = make_skeleton(12)
    sample_dir = write_sample(tmp_path, 3, skeleton, [(17, 2, 6), (1, 6, 12)])
    records = load_smg_subject(sample_dir)
    first, second = records
    assert isinstance(first, ClipRecord)
    assert first.keypoint.shape == (4, V, 3)  # rows 2..5
    assert first.keypoint.dtype == np.float32
    np.testing.assert_array_equal(first.keypoint, skeleton[2:6, :, 0:3])
    assert (first.start, first.end) == (2, 5)  # stored inclusive
    assert first.label == 16
    assert (second.start, second.end) == (6, 11)  # end == T is valid when exclusive
    assert second.label == 0


def test_load_subject_inclusive(tmp_path: Path) -> None:
    skeleton = make_skeleton(12)
    sample_dir = write_sample(tmp_path, 3, skeleton, [(17, 2, 6)])
    (record,) = load_smg_subject(sample_dir, end_inclusive=True)
    assert record.keypoint.shape == (5, V, 3)  # rows 2..6
    np.testing.assert_array_equal(record.keypoint, skeleton[2:7, :, 0:3])
    assert (record.start, record.end) == (2, 6)


def test_load_subject_naming(tmp_path: Path) -> None:
    clips = [(1, i, i + 2) for i in range(11)]
    sample_dir = write_sample(tmp_path, 36, make_skeleton(15), clips)
    records = load_smg_subject(sample_dir)
    ids = [r.sample_id for r in records]
    assert ids[:2] == ["Sample00360", "Sample00361"]
    assert ids[10] == "Sample003610"  # official naming: no separator
    assert {r.video_id for r in records} == {"Sample0036"}
    assert {r.subject for r in records} == {36}
    assert records[0].source == str(sample_dir / "Sample0036_skeleton.csv")


def test_load_subject_world_vs_pixel(tmp_path: Path) -> None:
    skeleton = make_skeleton(8)
    sample_dir = write_sample(tmp_path, 1, skeleton, [(5, 1, 4)])
    (world,) = load_smg_subject(sample_dir, coords="world")
    (pixel,) = load_smg_subject(sample_dir, coords="pixel")
    assert world.keypoint.shape == (3, V, 3)
    assert pixel.keypoint.shape == (3, V, 2)
    # Frame 1 of the sequence, joint 9: world = values 0..2, pixel = values 7..8.
    assert world.keypoint[0, 9].tolist() == [encode(1, 9, k) for k in (0, 1, 2)]
    assert pixel.keypoint[0, 9].tolist() == [encode(1, 9, k) for k in (7, 8)]
    assert world.keypoint.flags.c_contiguous and pixel.keypoint.flags.c_contiguous
    with pytest.raises(ValueError, match="coords"):
        load_smg_subject(sample_dir, coords="depth")  # type: ignore[arg-type]


@pytest.mark.parametrize(("end_inclusive", "end"), [(False, 11), (True, 10)])
def test_load_subject_out_of_range(tmp_path: Path, end_inclusive: bool, end: int) -> None:
    sample_dir = write_sample(tmp_path, 2, make_skeleton(10), [(1, 0, 3), (2, 5, end), (3, 1, 2)])
    with pytest.raises(DataFormatError) as excinfo:
        load_smg_subject(sample_dir, end_inclusive=end_inclusive)
    message = error_message(excinfo)
    assert str(sample_dir / "Sample0002_finelabels.csv") in message
    assert "row 2" in message
    assert "Sample00021" in message
    assert "10 rows" in message
    with pytest.warns(UserWarning, match="Sample00021"):
        records = load_smg_subject(sample_dir, end_inclusive=end_inclusive, on_error="warn")
    assert [r.sample_id for r in records] == ["Sample00020", "Sample00022"]


def test_load_subject_empty_exclusive_clip(tmp_path: Path) -> None:
    # start == end is a valid inclusive one-frame clip but empty when end is exclusive.
    sample_dir = write_sample(tmp_path, 2, make_skeleton(10), [(1, 4, 4)])
    (record,) = load_smg_subject(sample_dir, end_inclusive=True)
    assert record.keypoint.shape == (1, V, 3)
    with pytest.raises(DataFormatError, match="Sample00020 is empty") as excinfo:
        load_smg_subject(sample_dir)
    assert "row 1" in error_message(excinfo)
    with pytest.warns(UserWarning, match="Sample00020 is empty"):
        assert load_smg_subject(sample_dir, on_error="warn") == []


def test_load_subject_all_zero_clip_skipped(tmp_path: Path) -> None:
    skeleton = make_skeleton(10)
    skeleton[3:6, :, 0:3] = 0  # world coordinates lost, pixel coordinates still there
    sample_dir = write_sample(tmp_path, 4, skeleton, [(1, 0, 4), (2, 3, 6), (3, 6, 9)])
    with pytest.warns(UserWarning, match="skipping clip Sample00041") as record:
        records = load_smg_subject(sample_dir)
    assert str(sample_dir / "Sample0004_skeleton.csv") in str(record[0].message)
    assert [r.sample_id for r in records] == ["Sample00040", "Sample00042"]
    # The check applies to the selected coordinates only.
    assert len(load_smg_subject(sample_dir, coords="pixel")) == 3


def test_load_subject_data_csv_cross_check(tmp_path: Path) -> None:
    sample_dir = write_sample(tmp_path, 5, make_skeleton(10), [(1, 0, 4)], num_frames=12)
    with pytest.warns(UserWarning, match=r"numFrames is 12 .* has 10 rows") as record:
        records = load_smg_subject(sample_dir)
    assert str(sample_dir / "Sample0005_data.csv") in str(record[0].message)
    assert len(records) == 1


def test_load_subject_without_data_csv(tmp_path: Path) -> None:
    sample_dir = write_sample(tmp_path, 5, make_skeleton(10), [(1, 0, 4)], data_file=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(load_smg_subject(sample_dir)) == 1


def test_load_subject_missing_files(tmp_path: Path) -> None:
    sample_dir = write_sample(tmp_path, 6, make_skeleton(4), [(1, 0, 2)])
    (sample_dir / "Sample0006_skeleton.csv").unlink()
    with pytest.raises(FileNotFoundError) as excinfo:
        load_smg_subject(sample_dir)
    assert str(sample_dir / "Sample0006_skeleton.csv") in error_message(excinfo)
    with pytest.raises(ValueError, match="not an SMG sample folder"):
        load_smg_subject(tmp_path)
    with pytest.raises(FileNotFoundError):
        load_smg_subject(tmp_path / "Sample0007")


# ----------------------------------------------------------------------------- discovery / splits


def test_find_samples_direct(tmp_path: Path) -> None:
    write_sample(tmp_path, 2, make_skeleton(3), [(1, 0, 2)])
    write_sample(tmp_path, 1, make_skeleton(3), [(1, 0, 2)])
    (tmp_path / "README").mkdir()
    (tmp_path / "Sample0003.zip").write_text("")
    samples = find_smg_samples(tmp_path)
    assert samples == {1: tmp_path / "Sample0001", 2: tmp_path / "Sample0002"}
    assert list(samples) == [1, 2]


def test_find_samples_nested(tmp_path: Path) -> None:
    write_sample(tmp_path / "smg_skeleton_train", 1, make_skeleton(3), [(1, 0, 2)])
    write_sample(tmp_path / "smg_skeleton_validate", 31, make_skeleton(3), [(1, 0, 2)])
    write_sample(tmp_path / "smg_skeleton_test", 36, make_skeleton(3), [(1, 0, 2)])
    samples = find_smg_samples(tmp_path)
    assert samples == {
        1: tmp_path / "smg_skeleton_train" / "Sample0001",
        31: tmp_path / "smg_skeleton_validate" / "Sample0031",
        36: tmp_path / "smg_skeleton_test" / "Sample0036",
    }


def test_find_samples_duplicate(tmp_path: Path) -> None:
    write_sample(tmp_path, 1, make_skeleton(3), [(1, 0, 2)])
    write_sample(tmp_path / "smg_skeleton_train", 1, make_skeleton(3), [(1, 0, 2)])
    with pytest.raises(DataFormatError, match="subject 1 found twice"):
        find_smg_samples(tmp_path)


def test_find_samples_missing_root(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as excinfo:
        find_smg_samples(tmp_path / "nope")
    assert str(tmp_path / "nope") in error_message(excinfo)


def test_load_split(tmp_path: Path) -> None:
    for subject in (3, 1, 2):
        parent = tmp_path / ("smg_skeleton_validate" if subject == 3 else "smg_skeleton_train")
        write_sample(parent, subject, make_skeleton(6), [(subject, 0, 3), (17, 2, 6)])
    records = load_smg_split(tmp_path, [3, 1], coords="pixel", end_inclusive=False)
    assert [r.sample_id for r in records] == [
        "Sample00010",
        "Sample00011",
        "Sample00030",
        "Sample00031",
    ]
    assert [r.label for r in records] == [0, 16, 2, 16]
    assert records[0].keypoint.shape == (3, V, 2)
    assert len(load_smg_split(tmp_path, range(1, 4))) == 6


def test_load_split_missing_subjects(tmp_path: Path) -> None:
    write_sample(tmp_path, 1, make_skeleton(3), [(1, 0, 2)])
    with pytest.raises(FileNotFoundError, match=r"\[36, 40\]") as excinfo:
        load_smg_split(tmp_path, [1, 36, 40])
    assert str(tmp_path) in error_message(excinfo)


def test_smg_splits() -> None:
    official, miga = SMG_SPLITS["official"], SMG_SPLITS["miga"]
    assert list(official["train"]) == list(range(1, 36))
    assert list(official["test"]) == list(range(36, 41))
    assert official["val"] == official["test"]  # official code validates on the test subjects
    assert list(miga["train"]) == list(range(1, 31))
    assert list(miga["val"]) == list(range(31, 36))
    assert list(miga["test"]) == list(range(36, 41))
    for split in (official, miga):
        assert set(split["train"]).isdisjoint(split["test"])
        assert set(split["train"]) | set(split["test"]) | set(split["val"]) == set(range(1, 41))
