from __future__ import annotations

import re
from pathlib import Path

import pytest

from mgr.classes import get_classes
from mgr.data.readers.common import ClipRecord, DataFormatError
from mgr.data.readers.ma52 import (
    MA52_SPLITS,
    load_ma52_split,
    read_label_names,
    read_video_list,
)

NAMES = get_classes("ma52").names


def coarse_of(label: int) -> int:
    """The official ``ma52_fine2coarse`` rule, written out independently."""
    for coarse, last in enumerate((4, 10, 23, 31, 37, 47, 51)):
        if label <= last:
            return coarse
    raise AssertionError(label)


# (file, label) of each split; names follow SSSS_BB_NNNN.mp4 with BB = coarse of the label.
TRAIN = [("0003_01_0001.mp4", 9), ("0003_00_0002.mp4", 0), ("0017_06_0003.mp4", 51)]
VAL = [("0003_05_0004.mp4", 45), ("0021_02_0005.mp4", 23)]
TEST = [("test0000.mp4", 0), ("test0001.mp4", 0)]


def write_lines(path: Path, lines: list[str]) -> None:
    # The release writes CRLF line endings.
    path.write_bytes("".join(f"{line}\r\n" for line in lines).encode())


def make_release(root: Path, *, names: tuple[str, ...] = NAMES, videos: bool = True) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    write_lines(root / "label_name.txt", [f"{i}\t{name}" for i, name in enumerate(names)])
    for split, entries in (("train", TRAIN), ("val", VAL), ("test", TEST)):
        write_lines(root / f"{split}_list_videos.txt", [f"{f} {lab}" for f, lab in entries])
        if videos:
            folder = root / f"videos_{split}"
            folder.mkdir()
            for name, _ in entries:
                (folder / name).write_bytes(b"not really an mp4")
    return root


# ----------------------------------------------------------------------------- list files


def test_read_video_list_crlf_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "train_list_videos.txt"
    path.write_bytes(b"0003_01_0001.mp4 9\r\n\r\n0003_00_0002.mp4 0\r\n")
    assert read_video_list(path) == [("0003_01_0001.mp4", 9), ("0003_00_0002.mp4", 0)]
    lf = tmp_path / "lf.txt"
    lf.write_text("a.mp4 3\nb.mp4 51\n")
    assert read_video_list(lf) == [("a.mp4", 3), ("b.mp4", 51)]


@pytest.mark.parametrize(
    ("content", "line", "match"),
    [
        (b"a.mp4 1\r\nb.mp4\r\n", 2, "2 fields"),
        (b"a.mp4 1\r\nb.mp4 x\r\n", 2, "not an integer"),
        (b"a.mp4 1 2\r\n", 1, "2 fields"),
        (b"a.mp4 1\r\n\r\nb.mp4 1.5\r\n", 3, "not an integer"),
    ],
)
def test_read_video_list_errors_name_file_and_line(
    tmp_path: Path, content: bytes, line: int, match: str
) -> None:
    path = tmp_path / "val_list_videos.txt"
    path.write_bytes(content)
    with pytest.raises(DataFormatError, match=re.escape(match)) as excinfo:
        read_video_list(path)
    assert f"{path}, line {line}:" in str(excinfo.value)


def test_read_video_list_range_check(tmp_path: Path) -> None:
    path = tmp_path / "list.txt"
    path.write_bytes(b"a.mp4 1\r\nb.mp4 52\r\n")
    assert read_video_list(path) == [("a.mp4", 1), ("b.mp4", 52)]  # no range without num_classes
    with pytest.raises(DataFormatError, match=r"line 2: label 52 of b.mp4 is outside 0..51"):
        read_video_list(path, num_classes=52)
    with pytest.raises(FileNotFoundError):
        read_video_list(tmp_path / "missing.txt")


def test_read_label_names(tmp_path: Path) -> None:
    path = tmp_path / "label_name.txt"
    path.write_bytes(b"0\tshaking body\r\n1\tsitting straightly\r\n\r\n")
    assert read_label_names(path) == ["shaking body", "sitting straightly"]


@pytest.mark.parametrize(
    ("content", "line", "match"),
    [
        (b"0\tshaking body\r\n1 sitting straightly\r\n", 2, "<id><TAB><name>"),
        (b"0\tshaking body\r\n2\tshrugging\r\n", 2, "class id 2 out of order, expected 1"),
        (b"1\tshaking body\r\n", 1, "class id 1 out of order, expected 0"),
        (b"x\tshaking body\r\n", 1, "not an integer"),
        (b"0\t \r\n", 1, "empty name"),
    ],
)
def test_read_label_names_errors(tmp_path: Path, content: bytes, line: int, match: str) -> None:
    path = tmp_path / "label_name.txt"
    path.write_bytes(content)
    with pytest.raises(DataFormatError, match=re.escape(match)) as excinfo:
        read_label_names(path)
    assert f"{path}, line {line}:" in str(excinfo.value)


# ----------------------------------------------------------------------------- splits


@pytest.mark.parametrize(("split", "entries"), [("train", TRAIN), ("val", VAL), ("test", TEST)])
def test_load_split_records(tmp_path: Path, split: str, entries: list[tuple[str, int]]) -> None:
    root = make_release(tmp_path / "ma52")
    records = load_ma52_split(root, split)
    assert [type(r) for r in records] == [ClipRecord] * len(entries)
    list_path = root / f"{split}_list_videos.txt"
    for record, (name, label) in zip(records, entries, strict=True):
        stem = name.removesuffix(".mp4")
        assert record.sample_id == stem
        assert record.video_id == stem
        assert record.label == label
        assert record.coarse_label == coarse_of(label)
        assert record.keypoint is None
        assert (record.start, record.end) == (0, -1)
        assert record.source == str(list_path)
        assert record.video is not None and Path(record.video).is_absolute()
        assert Path(record.video) == (root / f"videos_{split}" / name).absolute()
        assert (record.video_start, record.video_end) == (0, None)
        assert record.subject == (None if split == "test" else int(name[:4]))


def test_load_split_relative_root_gives_absolute_video(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_release(tmp_path / "ma52")
    monkeypatch.chdir(tmp_path)
    records = load_ma52_split("ma52", "train")
    assert records[0].video == str(tmp_path / "ma52" / "videos_train" / "0003_01_0001.mp4")


def test_load_split_missing_video(tmp_path: Path) -> None:
    root = make_release(tmp_path / "ma52")
    missing = root / "videos_val" / "0021_02_0005.mp4"
    missing.unlink()
    with pytest.raises(FileNotFoundError) as excinfo:
        load_ma52_split(root, "val")
    message = str(excinfo.value)
    assert str(root / "val_list_videos.txt") in message
    assert "line 2" in message
    assert str(missing) in message
    with pytest.warns(UserWarning, match="0021_02_0005.mp4"):
        records = load_ma52_split(root, "val", on_error="warn")
    assert [r.sample_id for r in records] == ["0003_05_0004"]
    assert len(load_ma52_split(root, "val", check_files=False)) == 2


def test_load_split_missing_video_folder(tmp_path: Path) -> None:
    root = make_release(tmp_path / "ma52", videos=False)
    with pytest.raises(FileNotFoundError, match="videos_train"):
        load_ma52_split(root, "train")
    records = load_ma52_split(root, "train", check_files=False)
    assert [r.label for r in records] == [label for _, label in TRAIN]


def test_load_split_body_part_mismatch(tmp_path: Path) -> None:
    root = make_release(tmp_path / "ma52", videos=False)
    # Label 12 is upper limb (02) but the name says head (01).
    write_lines(root / "train_list_videos.txt", ["0003_01_0001.mp4 9", "0003_01_0002.mp4 12"])
    with pytest.raises(DataFormatError, match="body-part field '01'") as excinfo:
        load_ma52_split(root, "train", check_files=False)
    assert f"{root / 'train_list_videos.txt'}, line 2:" in str(excinfo.value)
    records = load_ma52_split(root, "train", check_files=False, check_body_part=False)
    assert [r.coarse_label for r in records] == [1, 2]


def test_load_split_bad_name_pattern(tmp_path: Path) -> None:
    root = make_release(tmp_path / "ma52", videos=False)
    write_lines(root / "val_list_videos.txt", ["clip_a.mp4 3"])
    with pytest.raises(DataFormatError, match="SSSS_BB_NNNN") as excinfo:
        load_ma52_split(root, "val", check_files=False)
    assert f"{root / 'val_list_videos.txt'}, line 1:" in str(excinfo.value)
    (record,) = load_ma52_split(root, "val", check_files=False, check_body_part=False)
    assert (record.sample_id, record.subject) == ("clip_a", None)


@pytest.mark.parametrize("label", [52, -1])
def test_load_split_label_out_of_range(tmp_path: Path, label: int) -> None:
    root = make_release(tmp_path / "ma52", videos=False)
    write_lines(root / "test_list_videos.txt", ["test0000.mp4 0", f"test0001.mp4 {label}"])
    with pytest.raises(DataFormatError, match=f"label {label} of test0001.mp4") as excinfo:
        load_ma52_split(root, "test", check_files=False)
    assert f"{root / 'test_list_videos.txt'}, line 2:" in str(excinfo.value)


def test_load_split_duplicate_file(tmp_path: Path) -> None:
    root = make_release(tmp_path / "ma52", videos=False)
    write_lines(root / "test_list_videos.txt", ["test0000.mp4 0", "test0000.mp4 0"])
    with pytest.raises(DataFormatError, match=re.escape("line 2: test0000.mp4 is listed again")):
        load_ma52_split(root, "test", check_files=False)


def test_load_split_class_names_must_match(tmp_path: Path) -> None:
    names = list(NAMES)
    names[7] = "tilting the head"
    root = make_release(tmp_path / "ma52", names=tuple(names), videos=False)
    with pytest.raises(DataFormatError) as excinfo:
        load_ma52_split(root, "train", check_files=False)
    message = str(excinfo.value)
    assert str(root / "label_name.txt") in message
    assert "class 7" in message and "'tilting the head'" in message and "'tilting head'" in message

    short = make_release(tmp_path / "short", names=NAMES[:51], videos=False)
    with pytest.raises(DataFormatError, match="51 classes, expected 52"):
        load_ma52_split(short, "train", check_files=False)


def test_load_split_missing_files(tmp_path: Path) -> None:
    root = make_release(tmp_path / "ma52", videos=False)
    (root / "val_list_videos.txt").unlink()
    with pytest.raises(FileNotFoundError, match=re.escape("val_list_videos.txt")):
        load_ma52_split(root, "val", check_files=False)
    (root / "label_name.txt").unlink()
    with pytest.raises(FileNotFoundError, match=re.escape("label_name.txt")):
        load_ma52_split(root, "train", check_files=False)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_ma52_split(tmp_path / "nowhere", "train")


def test_load_split_bad_arguments(tmp_path: Path) -> None:
    root = make_release(tmp_path / "ma52", videos=False)
    assert MA52_SPLITS == ("train", "val", "test")
    with pytest.raises(ValueError, match="unknown MA-52 split"):
        load_ma52_split(root, "validate")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="on_error"):
        load_ma52_split(root, "train", on_error="skip")  # type: ignore[arg-type]
