from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from mgr.data.readers.common import DataFormatError
from mgr.data.readers.pose_json import keypoints_to_record, read_mmpose_json, read_openpose_json
from mgr.skeletons import get_layout

# OpenPose --write_json keys and point counts, from the OpenPose output documentation.
PARTS = {
    "pose_keypoints_2d": 25,
    "face_keypoints_2d": 70,
    "hand_left_keypoints_2d": 21,
    "hand_right_keypoints_2d": 21,
}
# Where each part starts in openpose_137 (BODY_25 0-24, face 25-94, left 95-115, right 116-136).
OFFSET = {
    "pose_keypoints_2d": 0,
    "face_keypoints_2d": 25,
    "hand_left_keypoints_2d": 95,
    "hand_right_keypoints_2d": 116,
}
# MM-Gesture's 36 joints as indices into the 137 (datasets.md §2.6).
# fmt: off
MMGESTURE_36 = [0, 1, 2, 3, 4, 5, 6, 7, 15, 16, 17, 18, 27, 29, 33, 37, 39, 44, 49, 52,
                73, 76, 79, 82, 95, 99, 103, 107, 111, 115, 116, 120, 124, 128, 132, 136]
# fmt: on


def part_values(person: int, part: str, frame: int) -> list[float]:
    """Flat [x, y, c] * n with values unique to (frame, person, part, point); c in (0, 1)."""
    n = PARTS[part]
    base = frame * 100000 + person * 10000 + list(PARTS).index(part) * 1000
    out: list[float] = []
    for k in range(n):
        out += [base + 10 * k + 0.5, base + 10 * k + 1.5, 0.25 + k / 400]
    return out


def full_person(person: int, frame: int, parts=tuple(PARTS)) -> dict:
    entry = {"person_id": [-1]}
    for part in PARTS:
        entry[part] = part_values(person, part, frame) if part in parts else []
        entry[part.replace("_2d", "_3d")] = []
    return entry


def write_openpose(folder: Path, name: str, people: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(json.dumps({"version": 1.3, "people": people}))
    return path


def frame_name(video: str, frame: int) -> str:
    return f"{video}_{frame:012d}_keypoints.json"


def body(points: dict[int, tuple[float, float, float]]) -> list[float]:
    """A pose_keypoints_2d list: the given joints, zeros (undetected) elsewhere."""
    flat = [0.0] * 75
    for j, xyc in points.items():
        flat[3 * j : 3 * j + 3] = xyc
    return flat


# ----------------------------------------------------------------------------- OpenPose


def test_openpose_values_land_at_layout_indices(tmp_path: Path) -> None:
    write_openpose(tmp_path, frame_name("clip", 0), [full_person(0, 0)])
    write_openpose(tmp_path, frame_name("clip", 1), [])  # nobody
    write_openpose(tmp_path, frame_name("clip", 3), [full_person(0, 3)])  # frame 2 missing
    with pytest.warns(UserWarning, match=r"1 of 4 frame numbers.*\(2\)"):
        out = read_openpose_json(tmp_path)
    assert out.shape == (4, 137, 3) and out.dtype == np.float32
    for t in (0, 3):
        for part, n in PARTS.items():
            expected = np.array(part_values(0, part, t), np.float32).reshape(n, 3)
            np.testing.assert_array_equal(out[t, OFFSET[part] : OFFSET[part] + n], expected)
    # Spot checks written straight from the spec: left-hand joint k -> 95 + k.
    assert out[0, 95 + 4, 0] == 2 * 1000 + 10 * 4 + 0.5
    assert out[3, 116 + 20, 1] == 300000 + 3 * 1000 + 10 * 20 + 1.5
    assert out[0, 25 + 69, 2] == np.float32(0.25 + 69 / 400)
    np.testing.assert_array_equal(out[1], 0)
    np.testing.assert_array_equal(out[2], 0)


def test_openpose_subset_layouts(tmp_path: Path) -> None:
    write_openpose(tmp_path, frame_name("v", 0), [full_person(0, 0)])
    full = read_openpose_json(tmp_path)
    body25 = read_openpose_json(tmp_path, layout="openpose_body_25")
    assert body25.shape == (1, 25, 3)
    np.testing.assert_array_equal(
        body25[0], np.array(part_values(0, "pose_keypoints_2d", 0), np.float32).reshape(25, 3)
    )
    sub = read_openpose_json(tmp_path, layout="mmgesture_36")
    assert sub.shape == (1, 36, 3)
    np.testing.assert_array_equal(sub, full[:, MMGESTURE_36])
    # joint 24 of the 36 is the left-hand wrist: hand_left point 0.
    np.testing.assert_array_equal(sub[0, 24], part_values(0, "hand_left_keypoints_2d", 0)[:3])
    with pytest.raises(ValueError, match="coco_17"):
        read_openpose_json(tmp_path, layout="coco_17")


def test_openpose_absent_face_and_hands_are_zero(tmp_path: Path) -> None:
    person = full_person(0, 0, parts=("pose_keypoints_2d",))
    del person["face_keypoints_2d"]  # key missing entirely; the hands are []
    write_openpose(tmp_path, frame_name("v", 0), [person])
    out = read_openpose_json(tmp_path)
    np.testing.assert_array_equal(out[0, 25:], 0)
    np.testing.assert_array_equal(
        out[0, :25], np.array(person["pose_keypoints_2d"], np.float32).reshape(25, 3)
    )


def test_openpose_frames_sorted_numerically(tmp_path: Path) -> None:
    # Unpadded numbers: lexicographic order would put 10 before 2.
    for t in (0, 1, 2, 10):
        write_openpose(tmp_path, f"v_{t}_keypoints.json", [full_person(0, t)])
    with pytest.warns(UserWarning, match="7 of 11"):
        out = read_openpose_json(tmp_path, layout="openpose_body_25")
    assert out.shape[0] == 11
    for t in (0, 1, 2, 10):
        assert out[t, 0, 0] == t * 100000 + 0.5
    np.testing.assert_array_equal(out[3:10], 0)


def make_two_people(tmp_path: Path) -> tuple[list[float], list[float]]:
    # A: two detected joints, confidence 0.9, small box 10 x 10; an undetected joint (c = 0)
    # far away that must not count for the box.
    a = body({0: (100, 100, 0.9), 1: (110, 110, 0.9), 8: (5000, 5000, 0.0)})
    # B: every joint detected at 0.6 (mean over all 25 beats A's mean over 25: 0.072), box 200 x 50.
    b = body({j: (j * 200 / 24, 50 * (j % 2), 0.6) for j in range(25)})
    write_openpose(
        tmp_path,
        frame_name("v", 0),
        [{"pose_keypoints_2d": b}, {"pose_keypoints_2d": a}],
    )
    return a, b


def test_openpose_person_confident(tmp_path: Path) -> None:
    a, _ = make_two_people(tmp_path)
    out = read_openpose_json(tmp_path, layout="openpose_body_25", person="confident")
    np.testing.assert_array_equal(out[0], np.array(a, np.float32).reshape(25, 3))


def test_openpose_person_largest(tmp_path: Path) -> None:
    _, b = make_two_people(tmp_path)
    out = read_openpose_json(tmp_path, layout="openpose_body_25", person="largest")
    np.testing.assert_array_equal(out[0], np.array(b, np.float32).reshape(25, 3))


def test_openpose_several_videos(tmp_path: Path) -> None:
    write_openpose(tmp_path, frame_name("alpha", 0), [full_person(1, 0)])
    write_openpose(tmp_path, frame_name("beta_cam", 0), [full_person(2, 0)])
    write_openpose(tmp_path, frame_name("beta_cam", 1), [full_person(2, 1)])
    with pytest.raises(ValueError, match=r"\['alpha', 'beta_cam'\].*video="):
        read_openpose_json(tmp_path)
    out = read_openpose_json(tmp_path, video="beta_cam", layout="openpose_body_25")
    assert out.shape == (2, 25, 3)
    assert out[1, 0, 0] == 100000 + 2 * 10000 + 0.5
    with pytest.raises(FileNotFoundError, match=r"gamma_<frame>_keypoints\.json"):
        read_openpose_json(tmp_path, video="gamma")


def test_openpose_file_list(tmp_path: Path) -> None:
    files = [write_openpose(tmp_path, frame_name("v", t), [full_person(0, t)]) for t in (1, 0)]
    write_openpose(tmp_path, frame_name("other", 0), [])
    out = read_openpose_json(files, layout="openpose_body_25")
    assert out.shape == (2, 25, 3) and out[1, 0, 0] == 100000 + 0.5
    with pytest.raises(FileNotFoundError):
        read_openpose_json([tmp_path / "nope_000000000000_keypoints.json"])


def test_openpose_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(FileNotFoundError, match=r"_keypoints\.json") as info:
        read_openpose_json(tmp_path)
    assert str(tmp_path) in str(info.value)
    with pytest.raises(FileNotFoundError):
        read_openpose_json(tmp_path / "missing_folder")


def test_openpose_wrong_length(tmp_path: Path) -> None:
    bad = full_person(1, 0)
    bad["pose_keypoints_2d"] = bad["pose_keypoints_2d"][:-1]
    path = write_openpose(tmp_path, frame_name("v", 0), [full_person(0, 0), bad])
    with pytest.raises(DataFormatError) as info:
        read_openpose_json(tmp_path)
    text = str(info.value)
    assert path.name in text and "person 1" in text
    assert "pose_keypoints_2d has 74 values, expected 75" in text


def test_openpose_wrong_hand_length(tmp_path: Path) -> None:
    bad = full_person(0, 0)
    bad["hand_right_keypoints_2d"] = bad["hand_right_keypoints_2d"] + [1.0, 2.0, 3.0]
    write_openpose(tmp_path, frame_name("v", 0), [bad])
    with pytest.raises(DataFormatError, match=r"person 0: hand_right_keypoints_2d has 66 values"):
        read_openpose_json(tmp_path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "invalid JSON"),
        ('{"version": 1.3}', "'people'"),
        ('{"people": [3]}', "person 0"),
        ('{"people": [{"pose_keypoints_2d": ["a", 1, 2]}]}', "pose_keypoints_2d"),
    ],
)
def test_openpose_bad_file(tmp_path: Path, content: str, message: str) -> None:
    write_openpose(tmp_path, frame_name("v", 0), [full_person(0, 0)])
    bad = tmp_path / frame_name("v", 1)
    bad.write_text(content)
    with pytest.raises(DataFormatError, match=message) as info:
        read_openpose_json(tmp_path)
    assert bad.name in str(info.value)


def test_openpose_duplicate_frame_number(tmp_path: Path) -> None:
    write_openpose(tmp_path, frame_name("v", 1), [])
    write_openpose(tmp_path, "v_1_keypoints.json", [])
    with pytest.raises(DataFormatError, match="frame number 1"):
        read_openpose_json(tmp_path)


def test_openpose_bad_person_rule(tmp_path: Path) -> None:
    write_openpose(tmp_path, frame_name("v", 0), [])
    with pytest.raises(ValueError, match="person"):
        read_openpose_json(tmp_path, person="tallest")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- mmpose

K = 17


def instance(seed: int, score: float, bbox: list[float] | None = None) -> dict:
    inst = {
        "keypoints": [[seed * 1000 + 10 * k + 0.5, seed * 1000 + 10 * k + 1.5] for k in range(K)],
        "keypoint_scores": [score] * K,
        "bbox_score": 0.9,
    }
    if bbox is not None:
        inst["bbox"] = [bbox]
    return inst


def expected(inst: dict) -> np.ndarray:
    return np.array(
        [[x, y, s] for (x, y), s in zip(inst["keypoints"], inst["keypoint_scores"], strict=True)],
        np.float32,
    )


def write_json(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data))
    return path


def test_coco_17_is_mmpose_order() -> None:
    # The COCO keypoint order mmpose uses (COCO dataset spec).
    # fmt: off
    coco = ["nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder",
            "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
            "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle"]
    # fmt: on
    assert list(get_layout("coco_17").joints) == coco


def test_mmpose_video(tmp_path: Path) -> None:
    f0 = [instance(1, 0.5), instance(2, 0.8)]
    f2 = [instance(3, 0.7)]
    frames = [
        {"frame_id": 0, "instances": f0},
        {"frame_id": 1, "instances": []},
        {"frame_id": 3, "instances": f2},  # frame 2 missing
    ]
    path = write_json(tmp_path / "video.json", frames)
    with pytest.warns(UserWarning, match=r"1 of 4 frame numbers.*\(2\)"):
        out = read_mmpose_json(path)
    assert out.shape == (4, 17, 3) and out.dtype == np.float32
    np.testing.assert_array_equal(out[0], expected(f0[1]))  # the more confident one
    np.testing.assert_array_equal(out[3], expected(f2[0]))
    np.testing.assert_array_equal(out[1], 0)
    np.testing.assert_array_equal(out[2], 0)
    assert out[0, 9, 0] == 2000 + 90 + 0.5  # left_wrist = COCO index 9


def test_mmpose_single_image(tmp_path: Path) -> None:
    inst = instance(4, 0.3)
    out = read_mmpose_json(write_json(tmp_path / "img.json", [inst]))
    assert out.shape == (1, 17, 3)
    np.testing.assert_array_equal(out[0], expected(inst))
    empty = read_mmpose_json(write_json(tmp_path / "none.json", []))
    np.testing.assert_array_equal(empty, np.zeros((1, 17, 3), np.float32))


def test_mmpose_largest_uses_bbox(tmp_path: Path) -> None:
    # Keypoint extents: both 160 x 160; the bboxes decide: 50 x 40 = 2000 vs 30 x 100 = 3000.
    small = instance(1, 0.9, bbox=[0, 0, 50, 40])
    large = instance(2, 0.1, bbox=[10, 10, 40, 110])
    path = write_json(tmp_path / "v.json", [{"frame_id": 0, "instances": [small, large]}])
    np.testing.assert_array_equal(read_mmpose_json(path, person="largest")[0], expected(large))
    np.testing.assert_array_equal(read_mmpose_json(path, person="confident")[0], expected(small))


def test_mmpose_largest_without_bbox_uses_keypoints(tmp_path: Path) -> None:
    wide = instance(1, 0.2)
    wide["keypoints"] = [[10 * k, 10 * k] for k in range(K)]  # 160 x 160
    narrow = instance(2, 0.9)
    narrow["keypoints"] = [[k, k] for k in range(K)]  # 16 x 16
    path = write_json(tmp_path / "v.json", [narrow, wide])
    np.testing.assert_array_equal(read_mmpose_json(path, person="largest")[0], expected(wide))


def _mmpose_bad_cases() -> list[tuple[str, object, str]]:
    def wrong_k(i: dict) -> None:
        i["keypoints"] = i["keypoints"][:-1]
        i["keypoint_scores"] = i["keypoint_scores"][:-1]

    return [
        ("wrong_k", wrong_k, "K = 16"),
        ("xyz", lambda i: i.update(keypoints=[[1, 2, 3]] * K), r"shape \(17, 3\)"),
        ("scores", lambda i: i.update(keypoint_scores=[0.5] * (K + 1)), "keypoint_scores"),
        ("no_scores", lambda i: i.pop("keypoint_scores"), "'keypoint_scores'"),
        ("bbox", lambda i: i.update(bbox=[[1, 2, 3]]), "bbox"),
        ("text", lambda i: i.update(keypoint_scores=["hi"] * K), "not numbers"),
    ]


@pytest.mark.parametrize(
    ("change", "message"),
    [c[1:] for c in _mmpose_bad_cases()],
    ids=[c[0] for c in _mmpose_bad_cases()],
)
def test_mmpose_bad_instance(tmp_path: Path, change, message: str) -> None:
    bad = instance(2, 0.5)
    change(bad)
    frames = [
        {"frame_id": 0, "instances": [instance(1, 0.5)]},
        {"frame_id": 1, "instances": [instance(1, 0.5), bad]},
    ]
    path = write_json(tmp_path / "preds_file.json", frames)
    with pytest.raises(DataFormatError, match=message) as info:
        read_mmpose_json(path)
    text = str(info.value)
    assert "preds_file.json" in text and "frame 1" in text and "instance 1" in text


def test_mmpose_bad_file(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match=r"a\.json.*invalid JSON"):
        read_mmpose_json(_text(tmp_path, "a.json", "[{"))
    with pytest.raises(DataFormatError, match=r"b\.json.*list"):
        read_mmpose_json(write_json(tmp_path / "b.json", {"frame_id": 0}))
    dup = [{"frame_id": 0, "instances": []}, {"frame_id": 0, "instances": []}]
    with pytest.raises(DataFormatError, match=r"c\.json.*frame_id 0 appears twice"):
        read_mmpose_json(write_json(tmp_path / "c.json", dup))
    no_inst = [{"frame_id": 0, "instances": []}, {"frame_id": 1}]
    with pytest.raises(DataFormatError, match=r"d\.json, entry 1"):
        read_mmpose_json(write_json(tmp_path / "d.json", no_inst))
    with pytest.raises(FileNotFoundError):
        read_mmpose_json(tmp_path / "absent.json")
    with pytest.raises(DataFormatError, match=r"e\.json.*K = 17.*'openpose_137' has 137"):
        read_mmpose_json(write_json(tmp_path / "e.json", [instance(0, 1.0)]), layout="openpose_137")


def _text(folder: Path, name: str, content: str) -> Path:
    (folder / name).write_text(content)
    return folder / name


# ----------------------------------------------------------------------------- record


def test_keypoints_to_record() -> None:
    kp = np.arange(2 * 17 * 3, dtype=np.float64).reshape(2, 17, 3)
    rec = keypoints_to_record(kp, sample_id="myvid_0", label=3, source="preds/myvid.json")
    assert (rec.sample_id, rec.label, rec.video_id, rec.start, rec.end, rec.source) == (
        "myvid_0", 3, "myvid_0", 0, 1, "preds/myvid.json",
    )  # fmt: skip
    assert rec.keypoint.dtype == np.float32
    np.testing.assert_array_equal(rec.keypoint, kp)
    assert keypoints_to_record(kp, sample_id="s", label=0, video_id="v", source="").video_id == "v"
    with pytest.raises(ValueError, match="'bad'"):
        keypoints_to_record(np.zeros((2, 17, 2)), sample_id="bad", label=0, source="")


def test_no_warning_without_gaps(tmp_path: Path) -> None:
    write_openpose(tmp_path, frame_name("v", 0), [])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = read_openpose_json(tmp_path)
    np.testing.assert_array_equal(out, np.zeros((1, 137, 3), np.float32))
