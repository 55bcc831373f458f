from __future__ import annotations

import pickle
import re
import time
import warnings
from pathlib import Path

import numpy as np
import openpyxl
import pytest

from mgr.data.readers.common import ClipRecord, DataFormatError
from mgr.data.readers.miga import (
    load_miga23_arrays,
    load_miga25_split,
    load_miga25_video,
    read_clip_list,
    read_openpose_xlsx,
    write_openpose_xlsx,
)

# ============================================================================ MiGA'23 arrays

T_PAD = 90

# name, label, number of real frames (the rest is zero padding)
SAMPLES = [("0187_0", 30, 5), ("0187_1", 31, 90), ("0004_16", 0, 1), ("0012_3", 7, 12)]


def encode23(n: int, t: int, v: int, c: int) -> float:
    """A value unique to (sample, frame, joint, channel), exact in float32."""
    return n * 100000.0 + t * 1000.0 + v * 10.0 + c + 0.5


def make_arrays(samples=SAMPLES) -> np.ndarray:
    """``(N, 3, 90, 22, 1)`` float32 in the official layout, zero-padded at the end in T."""
    data = np.zeros((len(samples), 3, T_PAD, 22, 1), dtype=np.float32)
    for n, (_, _, length) in enumerate(samples):
        for t in range(length):
            for v in range(22):
                for c in range(3):
                    data[n, c, t, v, 0] = encode23(n, t, v, c)
    return data


def write_arrays(
    root: Path,
    prefix: str,
    data: np.ndarray,
    names: list,
    labels: list,
    *,
    label_obj: object = None,
) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    np.save(root / f"{prefix}_data.npy", data)
    with open(root / f"{prefix}_label.pkl", "wb") as f:
        pickle.dump((names, labels) if label_obj is None else label_obj, f)
    return root


def write_official(root: Path, prefix: str = "train", samples=SAMPLES) -> Path:
    names = [s[0] for s in samples]
    labels = [s[1] for s in samples]
    return write_arrays(root, prefix, make_arrays(samples), names, labels)


def expected_keypoint(n: int, length: int) -> np.ndarray:
    out = np.empty((length, 22, 3), dtype=np.float32)
    for t in range(length):
        for v in range(22):
            for c in range(3):
                out[t, v, c] = encode23(n, t, v, c)
    return out


@pytest.mark.parametrize("mmap", [True, False])
def test_miga23_records(tmp_path: Path, mmap: bool) -> None:
    root = write_official(tmp_path / "imigue_processed")
    records = load_miga23_arrays(root, "train", mmap=mmap)
    assert [type(r) for r in records] == [ClipRecord] * len(SAMPLES)
    for n, (record, (name, label, length)) in enumerate(zip(records, SAMPLES, strict=True)):
        assert record.sample_id == name
        assert record.label == label and type(record.label) is int
        assert record.video_id == name.split("_")[0]
        assert (record.start, record.end) == (0, length - 1)
        assert record.subject is None
        assert record.source == str(root / "train_data.npy")
        assert record.keypoint is not None
        assert record.keypoint.dtype == np.float32
        assert record.keypoint.flags.c_contiguous
        assert not isinstance(record.keypoint, np.memmap)
        np.testing.assert_array_equal(record.keypoint, expected_keypoint(n, length))
        assert record.num_frames == length


def test_miga23_trim_keeps_inner_and_leading_zero_frames(tmp_path: Path) -> None:
    data = make_arrays()
    data[0, :, 0] = 0.0  # missed detection at the start of sample 0 (5 real frames)
    data[0, :, 2] = 0.0  # and in its middle
    data[3, :, 11] = 0.0  # the last real frame of sample 3 (12 frames) is zero too
    root = write_arrays(tmp_path, "train", data, [s[0] for s in SAMPLES], [s[1] for s in SAMPLES])
    records = load_miga23_arrays(root, "train")
    assert [r.num_frames for r in records] == [5, 90, 1, 11]
    np.testing.assert_array_equal(records[0].keypoint[[0, 2]], 0.0)
    np.testing.assert_array_equal(records[0].keypoint[1], expected_keypoint(0, 2)[1])

    untrimmed = load_miga23_arrays(root, "train", trim_padding=False)
    assert [r.num_frames for r in untrimmed] == [90] * 4
    assert [r.end for r in untrimmed] == [89] * 4
    np.testing.assert_array_equal(untrimmed[2].keypoint[1:], 0.0)
    np.testing.assert_array_equal(untrimmed[2].keypoint[:1], expected_keypoint(2, 1))


@pytest.mark.parametrize(("split", "prefix"), [("val", "valid"), ("val", "val"), ("test", "test")])
def test_miga23_split_file_names(tmp_path: Path, split: str, prefix: str) -> None:
    root = write_official(tmp_path, prefix, SAMPLES[:2])
    records = load_miga23_arrays(root, split)  # type: ignore[arg-type]
    assert [r.sample_id for r in records] == ["0187_0", "0187_1"]
    assert records[0].source == str(root / f"{prefix}_data.npy")


def test_miga23_valid_preferred_over_val(tmp_path: Path) -> None:
    write_official(tmp_path, "val", SAMPLES[:1])
    write_official(tmp_path, "valid", SAMPLES[1:3])
    records = load_miga23_arrays(tmp_path, "val")
    assert [r.sample_id for r in records] == ["0187_1", "0004_16"]


def test_miga23_all_zero_sample_skipped(tmp_path: Path) -> None:
    data = make_arrays()
    data[1] = 0.0
    root = write_arrays(tmp_path, "train", data, [s[0] for s in SAMPLES], [s[1] for s in SAMPLES])
    with pytest.warns(UserWarning, match=r"sample 1 \('0187_1'\).*all keypoints are zero"):
        records = load_miga23_arrays(root, "train")
    assert [r.sample_id for r in records] == ["0187_0", "0004_16", "0012_3"]


def test_miga23_numpy_int_labels_and_tuple_lists(tmp_path: Path) -> None:
    names = tuple(s[0] for s in SAMPLES)
    labels = np.array([s[1] for s in SAMPLES], dtype=np.int64)
    root = write_arrays(tmp_path, "train", make_arrays(), names, labels)  # type: ignore[arg-type]
    records = load_miga23_arrays(root, "train")
    assert [r.label for r in records] == [30, 31, 0, 7]
    assert all(type(r.label) is int for r in records)


@pytest.mark.parametrize(
    ("shape", "match"),
    [
        ((2, 3, 90, 22), "expected 5 dimensions"),
        ((2, 2, 90, 22, 1), "C=2, expected C=3"),
        ((2, 3, 90, 25, 1), "V=25, expected V=22"),
        ((2, 3, 90, 22, 2), "M=2, expected M=1"),
        ((2, 3, 0, 22, 1), "T=0"),
    ],
)
def test_miga23_bad_shape(tmp_path: Path, shape: tuple, match: str) -> None:
    data = np.ones(shape, dtype=np.float32)
    root = write_arrays(tmp_path, "train", data, ["0001_0", "0001_1"], [0, 1])
    with pytest.raises(DataFormatError, match=re.escape(match)) as excinfo:
        load_miga23_arrays(root, "train")
    assert str(root / "train_data.npy") in str(excinfo.value)


def test_miga23_integer_array_rejected(tmp_path: Path) -> None:
    root = write_arrays(tmp_path, "train", np.ones((1, 3, 4, 22, 1), np.int32), ["0001_0"], [0])
    with pytest.raises(DataFormatError, match="dtype int32, expected float32"):
        load_miga23_arrays(root, "train")


@pytest.mark.parametrize(
    ("names", "labels"),
    [(["0187_0", "0187_1", "0004_16"], [30, 31, 0, 7]), (["a_0"] * 4, [1, 2, 3])],
)
def test_miga23_length_mismatch(tmp_path: Path, names: list, labels: list) -> None:
    root = write_arrays(tmp_path, "train", make_arrays(), names, labels)
    with pytest.raises(DataFormatError) as excinfo:
        load_miga23_arrays(root, "train")
    message = str(excinfo.value)
    assert str(root / "train_label.pkl") in message
    assert f"{len(names)} names and {len(labels)} labels for the 4 samples" in message


@pytest.mark.parametrize(
    "label_obj",
    [{"names": [], "labels": []}, (["a_0"], [0], [1]), "names"],
)
def test_miga23_label_file_not_a_pair(tmp_path: Path, label_obj: object) -> None:
    data = make_arrays(SAMPLES[:1])
    root = write_arrays(tmp_path, "train", data, [], [], label_obj=label_obj)
    with pytest.raises(DataFormatError, match="2-tuple") as excinfo:
        load_miga23_arrays(root, "train")
    assert str(root / "train_label.pkl") in str(excinfo.value)


def test_miga23_unreadable_files(tmp_path: Path) -> None:
    root = write_official(tmp_path)
    (root / "train_label.pkl").write_bytes(b"not a pickle")
    with pytest.raises(DataFormatError, match="not a readable pickle"):
        load_miga23_arrays(root, "train")
    write_official(root)
    (root / "train_data.npy").write_bytes(b"garbage")
    with pytest.raises(DataFormatError, match=r"train_data\.npy: not a readable \.npy"):
        load_miga23_arrays(root, "train")


@pytest.mark.parametrize(
    ("index", "name", "label", "match"),
    [
        (2, "0004_16", 32, "label 32 is outside 0..31"),
        (1, "0187_1", -1, "label -1 is outside 0..31"),
        (3, "0012_3", 2.5, "label 2.5 is not an integer"),
        (0, "clip0", 3, "name 'clip0' is not '<video id>_<clip index>'"),
    ],
)
def test_miga23_bad_sample(tmp_path: Path, index: int, name: str, label: object, match) -> None:
    names = [s[0] for s in SAMPLES]
    labels: list = [s[1] for s in SAMPLES]
    names[index], labels[index] = name, label
    root = write_arrays(tmp_path, "train", make_arrays(), names, labels)
    with pytest.raises(DataFormatError, match=re.escape(match)) as excinfo:
        load_miga23_arrays(root, "train")
    message = str(excinfo.value)
    assert str(root / "train_data.npy") in message
    assert f"sample {index} ({name!r})" in message
    with pytest.warns(UserWarning, match=re.escape(match)):
        records = load_miga23_arrays(root, "train", on_error="warn")
    assert [r.sample_id for r in records] == [n for i, n in enumerate(names) if i != index]


def test_miga23_non_finite(tmp_path: Path) -> None:
    data = make_arrays()
    data[3, 1, 7, 20, 0] = np.nan
    root = write_arrays(tmp_path, "train", data, [s[0] for s in SAMPLES], [s[1] for s in SAMPLES])
    with pytest.raises(DataFormatError) as excinfo:
        load_miga23_arrays(root, "train")
    message = str(excinfo.value)
    assert "sample 3 ('0012_3')" in message
    assert "frame 7, joint 20, channel 1 is nan" in message
    data[3, 1, 7, 20, 0] = 1.0
    data[2, 0, 50, 0, 0] = np.inf  # in the padding: still an error
    write_arrays(tmp_path, "train", data, [s[0] for s in SAMPLES], [s[1] for s in SAMPLES])
    with pytest.raises(DataFormatError, match=r"sample 2 .*frame 50, joint 0, channel 0 is inf"):
        load_miga23_arrays(root, "train")


def test_miga23_missing_files_and_bad_split(tmp_path: Path) -> None:
    root = write_official(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"valid_data\.npy.*val_data\.npy"):
        load_miga23_arrays(root, "val")
    (root / "train_label.pkl").unlink()
    with pytest.raises(FileNotFoundError, match=re.escape("train_label.pkl")):
        load_miga23_arrays(root, "train")
    with pytest.raises(ValueError, match="unknown MiGA'23 split"):
        load_miga23_arrays(root, "valid")  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError):
        load_miga23_arrays(tmp_path / "nowhere", "train")


# ============================================================================ MiGA'25 xlsx

NUM_KP = 137


def encode25(t: int, v: int, c: int) -> float:
    return t * 10000.0 + v * 10.0 + c + 0.25


def make_frames(num_frames: int) -> np.ndarray:
    t, v, c = np.meshgrid(np.arange(num_frames), np.arange(NUM_KP), np.arange(3), indexing="ij")
    return (t * 10000.0 + v * 10.0 + c + 0.25).astype(np.float32)


def write_xlsx_rows(path: Path, rows: list[list]) -> None:
    """Write a headerless sheet with openpyxl directly (independent of the code under test)."""
    book = openpyxl.Workbook()
    sheet = book.active
    for row in rows:
        sheet.append(row)
    book.save(path)


def frame_rows(frames: np.ndarray) -> list[list]:
    # Column 3 * v + c holds (keypoint v, channel c): x, y, c per keypoint, keypoints in order.
    return [
        [float(frames[t, v, c]) for v in range(NUM_KP) for c in range(3)]
        for t in range(len(frames))
    ]


def test_read_openpose_xlsx_values(tmp_path: Path) -> None:
    path = tmp_path / "0001_openpose.xlsx"
    write_xlsx_rows(path, frame_rows(make_frames(5)))
    start = time.perf_counter()
    out = read_openpose_xlsx(path)
    elapsed = time.perf_counter() - start
    assert out.shape == (5, NUM_KP, 3)
    assert out.dtype == np.float32
    assert out[0, 0, 0] == encode25(0, 0, 0)
    assert out[4, 136, 2] == encode25(4, 136, 2)
    assert out[3, 95, 1] == encode25(3, 95, 1)  # first left-hand keypoint
    np.testing.assert_array_equal(out, make_frames(5))
    assert elapsed < 5.0  # ~0.1 s on an idle core; generous for shared CI machines


def test_read_openpose_xlsx_integer_cells(tmp_path: Path) -> None:
    path = tmp_path / "ints.xlsx"
    write_xlsx_rows(path, [list(range(411)), [0] * 411])
    out = read_openpose_xlsx(path)
    np.testing.assert_array_equal(out[0].reshape(-1), np.arange(411, dtype=np.float32))
    np.testing.assert_array_equal(out[1], 0.0)


@pytest.mark.parametrize("columns", [410, 412])
def test_read_openpose_xlsx_wrong_columns(tmp_path: Path, columns: int) -> None:
    path = tmp_path / "0002_openpose.xlsx"
    write_xlsx_rows(path, [[1.0] * columns] * 2)
    with pytest.raises(DataFormatError, match=f"{columns} columns, expected 411") as excinfo:
        read_openpose_xlsx(path)
    assert str(path) in str(excinfo.value)


@pytest.mark.parametrize(
    ("cell", "match"),
    [("abc", "'abc' is not a number"), (None, "is empty or NaN")],
)
def test_read_openpose_xlsx_bad_cell(tmp_path: Path, cell: object, match: str) -> None:
    rows = frame_rows(make_frames(3))
    rows[2][3 * 40 + 1] = cell  # row 3 (frame 2), keypoint 40, channel 1 (y)
    path = tmp_path / "0003_openpose.xlsx"
    write_xlsx_rows(path, rows)
    with pytest.raises(DataFormatError, match=re.escape(match)) as excinfo:
        read_openpose_xlsx(path)
    message = str(excinfo.value)
    assert str(path) in message
    assert "row 3 (frame 2), joint 40, channel 1" in message


def test_read_openpose_xlsx_empty_and_missing(tmp_path: Path) -> None:
    path = tmp_path / "empty.xlsx"
    write_xlsx_rows(path, [])
    with pytest.raises(DataFormatError, match="sheet is empty") as excinfo:
        read_openpose_xlsx(path)
    assert str(path) in str(excinfo.value)
    bad = tmp_path / "bad.xlsx"
    bad.write_bytes(b"not a zip")
    with pytest.raises(DataFormatError, match="not a readable xlsx"):
        read_openpose_xlsx(bad)
    with pytest.raises(FileNotFoundError):
        read_openpose_xlsx(tmp_path / "missing.xlsx")


def test_write_openpose_xlsx_round_trip(tmp_path: Path) -> None:
    frames = make_frames(3)
    frames[1, 7, 0] = 123.456  # not exact in binary: must still come back as the same float32
    path = tmp_path / "written.xlsx"
    write_openpose_xlsx(path, frames)
    # Read back with openpyxl, independently of the reader.
    sheet = openpyxl.load_workbook(path, read_only=True).active
    rows = [list(row) for row in sheet.iter_rows(values_only=True)]
    assert len(rows) == 3 and all(len(r) == 411 for r in rows)
    np.testing.assert_array_equal(np.asarray(rows, dtype=np.float32).reshape(3, NUM_KP, 3), frames)
    np.testing.assert_array_equal(read_openpose_xlsx(path), frames)
    with pytest.raises(ValueError, match="shaped"):
        write_openpose_xlsx(tmp_path / "x.xlsx", np.zeros((2, 136, 3)))
    with pytest.raises(ValueError, match="shaped"):
        write_openpose_xlsx(tmp_path / "x.xlsx", np.zeros((0, NUM_KP, 3)))
    with pytest.raises(ValueError, match="finite"):
        write_openpose_xlsx(tmp_path / "x.xlsx", np.full((1, NUM_KP, 3), np.nan))


def write_label_csv(path: Path, rows: list[tuple[int, int, int]]) -> None:
    path.write_text("".join(f"{g},{s},{e}\n" for g, s, e in rows))


def write_miga25_video(split_dir: Path, vid: str, frames: np.ndarray, clips: list) -> Path:
    video_dir = split_dir / vid
    video_dir.mkdir(parents=True)
    write_xlsx_rows(video_dir / f"{vid}_openpose.xlsx", frame_rows(frames))
    write_label_csv(video_dir / f"{vid}_label.csv", clips)
    return video_dir


def test_load_miga25_video(tmp_path: Path) -> None:
    frames = make_frames(6)
    frames[4:6] = 0.0  # nobody detected in the last two frames
    clips = [(3, 0, 2), (99, 2, 5), (31, 4, 5)]
    video_dir = write_miga25_video(tmp_path / "imigue_skeleton_train", "0012", frames, clips)
    with pytest.warns(UserWarning, match="0012_2"):
        records = load_miga25_video(video_dir)
    assert [r.sample_id for r in records] == ["0012_0", "0012_1"]
    assert [r.label for r in records] == [2, 31]  # raw 3 -> 2, raw 99 -> 31
    assert [(r.start, r.end) for r in records] == [(0, 2), (2, 5)]
    assert all(r.video_id == "0012" for r in records)
    assert records[0].source == str(video_dir / "0012_openpose.xlsx")
    np.testing.assert_array_equal(records[0].keypoint, frames[0:3])
    np.testing.assert_array_equal(records[1].keypoint, frames[2:6])
    assert records[1].keypoint.shape == (4, NUM_KP, 3)


def test_load_miga25_video_clip_out_of_range(tmp_path: Path) -> None:
    video_dir = write_miga25_video(tmp_path, "0012", make_frames(3), [(1, 0, 1), (2, 1, 3)])
    with pytest.raises(DataFormatError, match=re.escape("row 2: clip 0012_1 spans frames 1..3")):
        load_miga25_video(video_dir)
    with pytest.warns(UserWarning, match="0012_1"):
        records = load_miga25_video(video_dir, on_error="warn")
    assert [r.sample_id for r in records] == ["0012_0"]


def test_load_miga25_video_bad_label_and_missing_xlsx(tmp_path: Path) -> None:
    video_dir = tmp_path / "0013"
    video_dir.mkdir()
    write_label_csv(video_dir / "0013_label.csv", [(1, 0, 1), (50, 0, 1)])
    # The label file is checked first, so the missing xlsx is not the reported problem.
    with pytest.raises(DataFormatError, match="row 2: unknown label id 50") as excinfo:
        load_miga25_video(video_dir)
    assert str(video_dir / "0013_label.csv") in str(excinfo.value)
    write_label_csv(video_dir / "0013_label.csv", [(1, 0, 1)])
    with pytest.raises(FileNotFoundError, match=re.escape("0013_openpose.xlsx")):
        load_miga25_video(video_dir)


def test_load_miga25_split(tmp_path: Path) -> None:
    split_dir = tmp_path / "imigue_skeleton_validate"
    write_miga25_video(split_dir, "0002", make_frames(3), [(5, 0, 2)])
    write_miga25_video(split_dir, "0001", make_frames(2), [(7, 0, 0), (99, 1, 1)])
    (split_dir / "__MACOSX").mkdir()  # not a video folder: ignored
    records = load_miga25_split(tmp_path, "val")
    assert [r.sample_id for r in records] == ["0001_0", "0001_1", "0002_0"]
    assert [r.label for r in records] == [6, 31, 4]
    with pytest.raises(FileNotFoundError, match="imigue_skeleton_train"):
        load_miga25_split(tmp_path, "train")
    with pytest.raises(ValueError, match="unknown MiGA'25 split"):
        load_miga25_split(tmp_path, "validate")  # type: ignore[arg-type]


# ============================================================================ RGB clip lists


def test_read_clip_list(tmp_path: Path) -> None:
    path = tmp_path / "iMiGUE_train_clips_list.txt"
    path.write_bytes(b"0012_0.mp4 30\r\n0012_1.mp4 31\r\n\r\n0013_0.mp4 0\r\n")
    assert read_clip_list(path) == [("0012_0.mp4", 30), ("0012_1.mp4", 31), ("0013_0.mp4", 0)]
    lf = tmp_path / "lf.txt"
    lf.write_text("0001_0.mp4 4\n")
    assert read_clip_list(lf) == [("0001_0.mp4", 4)]


@pytest.mark.parametrize(
    ("content", "line", "match"),
    [
        (b"0012_0.mp4 30\r\n0012_1.mp4 32\r\n", 2, "label 32 of 0012_1.mp4 is outside 0..31"),
        (b"0012_0.mp4\r\n", 1, "2 fields"),
        (b"0012_0.mp4 1\r\n\r\n0012_1.mp4 one\r\n", 3, "not an integer"),
    ],
)
def test_read_clip_list_errors(tmp_path: Path, content: bytes, line: int, match: str) -> None:
    path = tmp_path / "list.txt"
    path.write_bytes(content)
    with pytest.raises(DataFormatError, match=re.escape(match)) as excinfo:
        read_clip_list(path)
    assert f"{path}, line {line}:" in str(excinfo.value)


def test_no_unexpected_warnings_on_clean_release(tmp_path: Path) -> None:
    root = write_official(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(load_miga23_arrays(root, "train")) == len(SAMPLES)
