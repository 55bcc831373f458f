from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from mgr.data.readers.common import ClipRecord, DataFormatError
from mgr.data.readers.posec3d import (
    PoseAnnotation,
    annotations_to_records,
    read_posec3d_pickle,
    records_to_annotations,
    write_posec3d_pickle,
)

V = 22


def encoded(m: int, t: int, v: int, c: int, offset: float = 0.0) -> np.ndarray:
    """A float32 array whose value at (m, t, v, c) is unique and exact."""
    grid = np.meshgrid(*(np.arange(n) for n in (m, t, v, c)), indexing="ij")
    return (grid[0] * 1e5 + grid[1] * 1e3 + grid[2] * 10 + grid[3] + offset).astype(np.float32)


def raw_annotation(frame_dir: str, label: int, t: int, m: int = 1, seed: int = 0) -> dict:
    """An annotation dict exactly as datasets.md §2.5 shows (built by hand, plain types)."""
    rng = np.random.default_rng(seed)
    return {
        "frame_dir": frame_dir,
        "label": label,
        "img_shape": (1080, 1920),
        "original_shape": (1080, 1920),
        "total_frames": t,
        "keypoint": rng.uniform(0, 1000, (m, t, V, 2)).astype(np.float32),
        "keypoint_score": rng.uniform(0, 1, (m, t, V)).astype(np.float32),
    }


def dump(path: Path, obj: object) -> Path:
    with open(path, "wb") as f:
        pickle.dump(obj, f)
    return path


def assert_matches_raw(a: PoseAnnotation, raw: dict) -> None:
    assert a.frame_dir == raw["frame_dir"]
    assert a.label == raw["label"] and type(a.label) is int
    assert a.img_shape == tuple(raw["img_shape"])
    assert a.original_shape == tuple(raw["original_shape"])
    assert a.total_frames == raw["total_frames"]
    assert a.keypoint.dtype == np.float32 and a.keypoint_score.dtype == np.float32
    np.testing.assert_array_equal(a.keypoint, raw["keypoint"])
    np.testing.assert_array_equal(a.keypoint_score, raw["keypoint_score"])


# ----------------------------------------------------------------------------- reading


def test_read_hand_written_dict_with_split(tmp_path: Path) -> None:
    raws = [raw_annotation("0187_0", 3, 5, seed=1), raw_annotation("0187_1", 31, 4, seed=2)]
    path = dump(
        tmp_path / "imigue_train.pkl",
        {"split": {"train": ["0187_0", "0187_1"]}, "annotations": raws},
    )
    got = read_posec3d_pickle(path)
    assert len(got) == 2
    for a, raw in zip(got, raws, strict=True):
        assert_matches_raw(a, raw)
        assert a.extra == {}
    assert [a.frame_dir for a in read_posec3d_pickle(path, split="train")] == ["0187_0", "0187_1"]


def test_read_bare_list(tmp_path: Path) -> None:
    raws = [raw_annotation("a_0", 0, 3, m=2)]
    got = read_posec3d_pickle(dump(tmp_path / "list.pkl", raws))
    assert len(got) == 1
    assert_matches_raw(got[0], raws[0])
    assert got[0].num_persons == 2


def test_bare_list_with_split_is_an_error(tmp_path: Path) -> None:
    path = dump(tmp_path / "list.pkl", [raw_annotation("a_0", 0, 3)])
    with pytest.raises(ValueError, match="no splits"):
        read_posec3d_pickle(path, split="train")


def test_split_filtering_keeps_file_order(tmp_path: Path) -> None:
    raws = [raw_annotation(f"v_{k}", k, 2, seed=k) for k in range(4)]
    splits = {"train": ["v_3", "v_0"], "val": ["v_1"], "test": []}
    path = dump(tmp_path / "s.pkl", {"split": splits, "annotations": raws})
    # mmaction2's PoseDataset filters the annotation list, keeping the file's order.
    assert [a.frame_dir for a in read_posec3d_pickle(path, split="train")] == ["v_0", "v_3"]
    val = read_posec3d_pickle(path, split="val")
    assert len(val) == 1
    assert_matches_raw(val[0], raws[1])
    assert read_posec3d_pickle(path, split="test") == []


def test_unknown_split_lists_available(tmp_path: Path) -> None:
    path = dump(
        tmp_path / "s.pkl",
        {"split": {"train": ["v_0"], "val": []}, "annotations": [raw_annotation("v_0", 0, 2)]},
    )
    with pytest.raises(ValueError, match=r"no split 'xsub_train'.*\['train', 'val'\]") as info:
        read_posec3d_pickle(path, split="xsub_train")
    assert "s.pkl" in str(info.value)


def test_split_entry_without_annotation(tmp_path: Path) -> None:
    path = dump(
        tmp_path / "s.pkl",
        {"split": {"train": ["v_0", "ghost_7"]}, "annotations": [raw_annotation("v_0", 0, 2)]},
    )
    with pytest.raises(DataFormatError, match="ghost_7") as info:
        read_posec3d_pickle(path, split="train")
    assert "s.pkl" in str(info.value)


def test_missing_score_means_ones(tmp_path: Path) -> None:
    raw = raw_annotation("v_0", 1, 3)
    del raw["keypoint_score"]
    (a,) = read_posec3d_pickle(dump(tmp_path / "noscore.pkl", [raw]))
    np.testing.assert_array_equal(a.keypoint, raw["keypoint"])
    np.testing.assert_array_equal(a.keypoint_score, np.ones((1, 3, V), np.float32))


def test_three_channel_keypoint_splits_score(tmp_path: Path) -> None:
    kp3 = encoded(2, 3, V, 3, offset=0.25)
    raw = {"frame_dir": "x", "label": 0, "img_shape": (10, 20), "total_frames": 3, "keypoint": kp3}
    (a,) = read_posec3d_pickle(dump(tmp_path / "kp3.pkl", [raw]))
    assert a.keypoint.shape == (2, 3, V, 2)
    np.testing.assert_array_equal(a.keypoint[..., 0], kp3[..., 0])
    np.testing.assert_array_equal(a.keypoint[..., 1], kp3[..., 1])
    np.testing.assert_array_equal(a.keypoint_score, kp3[..., 2])
    assert a.original_shape == (10, 20)  # defaults to img_shape


def test_numpy_scalars_and_float64_are_normalised(tmp_path: Path) -> None:
    raw = raw_annotation("v_0", 0, 2)
    raw["label"] = np.int64(7)
    raw["total_frames"] = np.int32(2)
    raw["img_shape"] = [480, 640]
    raw["keypoint"] = raw["keypoint"].astype(np.float64)
    (a,) = read_posec3d_pickle(dump(tmp_path / "np.pkl", [raw]))
    assert type(a.label) is int and a.label == 7
    assert type(a.total_frames) is int and a.total_frames == 2
    assert a.img_shape == (480, 640) and type(a.img_shape) is tuple
    assert a.keypoint.dtype == np.float32


def _bad_cases() -> list[tuple[str, object, str]]:
    """(name, change applied to a good annotation, expected message part)."""
    return [
        ("missing_label", lambda d: d.pop("label"), r"missing key.*'label'"),
        ("missing_keypoint", lambda d: d.pop("keypoint"), r"missing key.*'keypoint'"),
        ("missing_total", lambda d: d.pop("total_frames"), r"missing key.*'total_frames'"),
        ("kp_3d", lambda d: d.update(keypoint=np.zeros((4, V, 2), np.float32)), "shape"),
        ("kp_last4", lambda d: d.update(keypoint=np.zeros((1, 4, V, 4), np.float32)), "shape"),
        (
            "score_shape",
            lambda d: d.update(keypoint_score=np.ones((1, 4, V - 1))),
            "keypoint_score",
        ),
        ("kp3_and_score", lambda d: d.update(keypoint=np.zeros((1, 4, V, 3))), "3 channels"),
        ("total_frames", lambda d: d.update(total_frames=5), "total_frames is 5"),
        (
            "nan",
            lambda d: d["keypoint"].__setitem__((0, 2, 3, 1), np.nan),
            r"keypoint\[0, 2, 3, 1\]",
        ),
        ("inf_score", lambda d: d["keypoint_score"].__setitem__((0, 1, 0), np.inf), "non-finite"),
        ("neg_label", lambda d: d.update(label=-1), "label -1"),
        ("float_label", lambda d: d.update(label=2.0), "label 2.0"),
        ("bool_label", lambda d: d.update(label=True), "label True"),
        ("bad_shape", lambda d: d.update(img_shape=(0, 5)), "img_shape"),
    ]


@pytest.mark.parametrize(
    ("change", "message"), [c[1:] for c in _bad_cases()], ids=[c[0] for c in _bad_cases()]
)
def test_invalid_annotation(tmp_path: Path, change, message: str) -> None:
    good = raw_annotation("0001_0", 0, 4, seed=3)
    bad = raw_annotation("0042_9", 1, 4, seed=4)
    change(bad)
    path = dump(tmp_path / "broken_file.pkl", {"split": {}, "annotations": [good, bad]})
    with pytest.raises(DataFormatError, match=message) as info:
        read_posec3d_pickle(path)
    text = str(info.value)
    assert "broken_file.pkl" in text and "0042_9" in text and "annotation 1" in text


def test_invalid_top_level(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match=r"top\.pkl.*'annotations'"):
        read_posec3d_pickle(dump(tmp_path / "top.pkl", {"split": {}}))
    with pytest.raises(DataFormatError, match=r"tuple\.pkl"):
        read_posec3d_pickle(dump(tmp_path / "tuple.pkl", (["a"], [0])))
    (tmp_path / "junk.pkl").write_bytes(b"not a pickle")
    with pytest.raises(DataFormatError, match=r"junk\.pkl"):
        read_posec3d_pickle(tmp_path / "junk.pkl")
    with pytest.raises(FileNotFoundError):
        read_posec3d_pickle(tmp_path / "absent.pkl")


# ----------------------------------------------------------------------------- writing


def make_annotation(frame_dir: str, label: int, m: int, t: int, extra: dict | None = None):
    return PoseAnnotation(
        frame_dir=frame_dir,
        label=label,
        keypoint=encoded(m, t, V, 2, offset=0.5),
        keypoint_score=encoded(m, t, V, 1, offset=0.75)[..., 0] / 1e6,
        img_shape=(720, 1280),
        original_shape=(1080, 1920),
        total_frames=t,
        extra=extra or {},
    )


def test_round_trip(tmp_path: Path) -> None:
    anns = [
        make_annotation("0003_0", 5, 1, 6, extra={"subject": 12, "meta": {"fps": 30.0}}),
        make_annotation("0003_1", 31, 2, 3),
    ]
    path = tmp_path / "rt.pkl"
    write_posec3d_pickle(path, anns, splits={"train": ["0003_1"], "val": ["0003_0"]})
    got = read_posec3d_pickle(path)
    assert len(got) == 2
    for a, b in zip(got, anns, strict=True):
        assert (a.frame_dir, a.label, a.img_shape, a.original_shape, a.total_frames) == (
            b.frame_dir,
            b.label,
            b.img_shape,
            b.original_shape,
            b.total_frames,
        )
        np.testing.assert_array_equal(a.keypoint, b.keypoint)
        np.testing.assert_array_equal(a.keypoint_score, b.keypoint_score)
        assert a.extra == b.extra
    assert [a.frame_dir for a in read_posec3d_pickle(path, split="val")] == ["0003_0"]
    assert not list(tmp_path.glob(".*tmp"))  # the temporary file is gone


def test_written_file_is_plain_posec3d(tmp_path: Path) -> None:
    ann = make_annotation("v_0", 2, 1, 4)
    ann.keypoint = ann.keypoint.astype(np.float64)  # written back as float32
    path = tmp_path / "plain.pkl"
    write_posec3d_pickle(path, [ann])
    with open(path, "rb") as f:
        data = pickle.load(f)
    assert data["split"] == {}
    (item,) = data["annotations"]
    assert set(item) == {
        "frame_dir", "label", "img_shape", "original_shape", "total_frames", "keypoint",
        "keypoint_score",
    }  # fmt: skip
    assert type(item["label"]) is int and type(item["total_frames"]) is int
    assert item["img_shape"] == (720, 1280) and type(item["img_shape"]) is tuple
    assert item["keypoint"].dtype == np.float32 and item["keypoint"].shape == (1, 4, V, 2)
    assert item["keypoint_score"].dtype == np.float32
    assert path.read_bytes()[1] == pickle.HIGHEST_PROTOCOL  # PROTO opcode, then version


def test_write_errors(tmp_path: Path) -> None:
    ann = make_annotation("v_0", 0, 1, 3)
    with pytest.raises(ValueError, match=r"split 'val'.*'nope'"):
        write_posec3d_pickle(tmp_path / "a.pkl", [ann], splits={"val": ["v_0", "nope"]})
    bad = make_annotation("v_1", 0, 1, 3)
    bad.total_frames = 4
    with pytest.raises(ValueError, match=r"v_1.*total_frames"):
        write_posec3d_pickle(tmp_path / "b.pkl", [ann, bad])
    clash = make_annotation("v_2", 0, 1, 3, extra={"label": 3})
    with pytest.raises(ValueError, match="standard key"):
        write_posec3d_pickle(tmp_path / "c.pkl", [clash])
    assert not list(tmp_path.iterdir())


# ----------------------------------------------------------------------------- records


def test_records_round_trip() -> None:
    kp = encoded(1, 5, V, 3, offset=0.5)[0]
    kp[..., 2] = np.linspace(0, 1, 5 * V, dtype=np.float32).reshape(5, V)
    rec = ClipRecord(
        sample_id="0187_12", label=4, keypoint=kp, video_id="0187", start=30, end=34, source="x"
    )
    (ann,) = records_to_annotations([rec], image_size=(720, 1280))
    assert ann.frame_dir == "0187_12" and ann.label == 4 and ann.total_frames == 5
    assert ann.img_shape == ann.original_shape == (720, 1280)
    np.testing.assert_array_equal(ann.keypoint[0], kp[..., :2])
    np.testing.assert_array_equal(ann.keypoint_score[0], kp[..., 2])

    (back,) = annotations_to_records([ann], source="file.pkl")
    assert (back.sample_id, back.label, back.video_id, back.start, back.end, back.source) == (
        "0187_12", 4, "0187", 0, 4, "file.pkl",
    )  # fmt: skip
    np.testing.assert_array_equal(back.keypoint, kp)


def test_records_without_score_channel() -> None:
    kp = encoded(1, 2, V, 2)[0]
    rec = ClipRecord(sample_id="s", label=0, keypoint=kp, video_id="s", start=0, end=1, source="")
    (ann,) = records_to_annotations([rec], image_size=(10, 10), score_channel=None)
    np.testing.assert_array_equal(ann.keypoint_score, np.ones((1, 2, V), np.float32))


def test_record_without_keypoints_is_named() -> None:
    rec = ClipRecord(
        sample_id="0003_01_0001", label=0, keypoint=None, video_id="v", start=0, end=9, source=""
    )
    with pytest.raises(ValueError, match="0003_01_0001"):
        records_to_annotations([rec], image_size=(10, 10))


def test_multi_person_picks_highest_mean_score() -> None:
    kp = encoded(3, 4, V, 2)
    score = np.zeros((3, 4, V), np.float32)
    score[0] = 0.5
    score[1, :2] = 0.9  # mean 0.45: high peaks, but lower mean than person 0
    score[2] = 0.6  # mean 0.6: the best
    ann = PoseAnnotation("clip", 1, kp, score, (10, 10), (10, 10), 4)
    (rec,) = annotations_to_records([ann], source="")
    np.testing.assert_array_equal(rec.keypoint[..., :2], kp[2])
    np.testing.assert_array_equal(rec.keypoint[..., 2], score[2])
    assert rec.video_id == "clip"  # no "_<number>" suffix


@pytest.mark.parametrize(
    ("frame_dir", "video_id"),
    [
        ("0187_0", "0187"),
        ("0003_01_0001", "0003_01"),
        ("S001C001P001R001A001", "S001C001P001R001A001"),
        ("clip_a", "clip_a"),
        ("_5", "_5"),
    ],
)
def test_video_id_from_frame_dir(frame_dir: str, video_id: str) -> None:
    ann = PoseAnnotation(
        frame_dir,
        0,
        np.zeros((1, 1, 2, 2), np.float32),
        np.ones((1, 1, 2), np.float32),
        (1, 1),
        (1, 1),
        1,
    )
    (rec,) = annotations_to_records([ann], source="")
    assert rec.video_id == video_id
