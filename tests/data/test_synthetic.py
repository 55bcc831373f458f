"""Tests of the SynthMG generator, checked against the on-disk layouts with plain csv parsing."""

from __future__ import annotations

import csv
import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from mgr.data.readers.imigue import load_imigue_split
from mgr.data.readers.smg import load_smg_split
from mgr.data.synthetic import SynthMGConfig, generate_synthmg

TINY = {
    "subjects": (2, 1, 1),
    "videos_per_subject": 1,
    "clips_per_video": 4,
    "clip_frames": (8, 12),
}
IMIGUE_DIRS = {
    "train": "imigue_skeleton_train",
    "val": "imigue_skeleton_validate",
    "test": "imigue_skeleton_test",
}
NECK, R_SHOULDER, R_WRIST, L_SHOULDER = 1, 2, 4, 5  # OpenPose BODY_25 indices


# ------------------------------------------------------------------ helpers


def read_rows(path: Path) -> list[list[str]]:
    with open(path, newline="") as f:
        return [row for row in csv.reader(f) if row]


def read_light_hand(path: Path) -> np.ndarray:
    """(T, 35, 3) from a light_hand csv, checking the layout on the way."""
    rows = read_rows(path)
    assert rows, path
    for t, row in enumerate(rows):
        assert len(row) == 106, (path, t, len(row))
        assert int(row[0]) == t, (path, t, row[0])  # column 0 is the 0-based frame index
    return np.array([[float(x) for x in row[1:]] for row in rows]).reshape(len(rows), 35, 3)


def read_labels(path: Path) -> list[tuple[int, int, int]]:
    rows = read_rows(path)
    for row in rows:
        assert len(row) == 3, (path, row)
    return [(int(a), int(b), int(c)) for a, b, c in rows]


def imigue_videos(root: Path) -> dict[str, list[Path]]:
    return {
        split: sorted(p for p in (root / d).iterdir() if p.is_dir())
        for split, d in IMIGUE_DIRS.items()
    }


def all_files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def imigue_label(gid: int) -> int:
    return 31 if gid == 99 else gid - 1


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def tiny_imigue(tmp_path_factory) -> Path:
    return generate_synthmg(tmp_path_factory.mktemp("imigue"), seed=0, **TINY)


@pytest.fixture(scope="module")
def tiny_smg(tmp_path_factory) -> Path:
    return generate_synthmg(tmp_path_factory.mktemp("smg"), layout="smg", seed=0, **TINY)


@pytest.fixture(scope="module")
def hand_release(tmp_path_factory) -> list[tuple[np.ndarray, list[tuple[int, int, int]]]]:
    """Uniform classes, right-handed subjects, default clip and gap lengths.

    Returns ``(keypoints (T, 35, 3), label rows)`` per video, parsed with plain csv.
    """
    root = generate_synthmg(
        tmp_path_factory.mktemp("hands"),
        seed=0,
        subjects=(3, 1, 1),
        videos_per_subject=2,
        clips_per_video=40,
        tail_floor=1.0,
        left_handed=0.0,
    )
    return [
        (read_light_hand(d / f"{d.name}_light_hand.csv"), read_labels(d / f"{d.name}_label.csv"))
        for folders in imigue_videos(root).values()
        for d in folders
    ]


# ------------------------------------------------------------------ determinism


@pytest.mark.parametrize("layout", ["imigue", "smg"])
def test_same_seed_gives_identical_files(tmp_path, layout, tiny_imigue, tiny_smg):
    first = tiny_imigue if layout == "imigue" else tiny_smg
    again = generate_synthmg(tmp_path / "again", layout=layout, seed=0, **TINY)
    a, b = all_files(first), all_files(again)
    assert len(a) > 3
    assert a.keys() == b.keys()
    for name in a:
        assert a[name] == b[name], name


def test_other_seed_gives_other_skeletons(tmp_path, tiny_imigue, tiny_smg):
    other = generate_synthmg(tmp_path / "imigue", seed=1, **TINY)
    rel = "imigue_skeleton_train/0001/0001_light_hand.csv"
    assert (other / rel).read_bytes() != (tiny_imigue / rel).read_bytes()
    other = generate_synthmg(tmp_path / "smg", layout="smg", seed=1, **TINY)
    rel = "Sample0001/Sample0001_skeleton.csv"
    assert (other / rel).read_bytes() != (tiny_smg / rel).read_bytes()


# ------------------------------------------------------------------ iMiGUE layout


def test_imigue_layout(tiny_imigue):
    videos = imigue_videos(tiny_imigue)
    assert [len(v) for v in videos.values()] == [2, 1, 1]  # one video per subject
    for folders in videos.values():
        for d in folders:
            vid = d.name
            assert len(vid) == 4 and vid.isdigit()
            assert sorted(p.name for p in d.iterdir()) == [
                f"{vid}_label.csv",
                f"{vid}_light_hand.csv",
            ]
            kp = read_light_hand(d / f"{vid}_light_hand.csv")
            conf = kp[..., 2]
            assert np.all((conf >= 0) & (conf <= 1))
            # OpenPose convention: an undetected joint is (0, 0) with confidence 0
            undetected = conf == 0
            assert np.array_equal(undetected, np.all(kp[..., :2] == 0, axis=-1))
            assert not undetected.all()
            clips = read_labels(d / f"{vid}_label.csv")
            assert clips
            prev_end = -1
            for gid, start, end in clips:
                assert gid in range(1, 32) or gid == 99
                assert 0 <= start <= end < len(kp)  # 0-based inclusive, inside the csv
                assert start > prev_end  # in order, not overlapping
                assert 8 <= end - start + 1 <= 12  # clip_frames
                prev_end = end


def test_imigue_release_reads_back(tiny_imigue):
    for split, folders in imigue_videos(tiny_imigue).items():
        want = []
        for d in folders:
            kp = read_light_hand(d / f"{d.name}_light_hand.csv")
            for k, (gid, start, end) in enumerate(read_labels(d / f"{d.name}_label.csv")):
                want.append((f"{d.name}_{k}", imigue_label(gid), start, end, kp[start : end + 1]))
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            records = load_imigue_split(tiny_imigue, split)
        assert len(records) == len(want) > 0
        for rec, (sample_id, label, start, end, kp) in zip(records, want, strict=True):
            assert rec.sample_id == sample_id
            assert rec.label == label
            assert (rec.start, rec.end) == (start, end)
            assert rec.keypoint.shape == (end - start + 1, 35, 3)
            np.testing.assert_allclose(rec.keypoint, kp, rtol=1e-6, atol=1e-4)


# ------------------------------------------------------------------ SMG layout


def smg_folders(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir())


def test_smg_layout(tiny_smg):
    folders = smg_folders(tiny_smg)
    assert [d.name for d in folders] == ["Sample0001", "Sample0002", "Sample0003", "Sample0004"]
    for d in folders:
        name = d.name
        assert sorted(p.name for p in d.iterdir()) == [
            f"{name}_data.csv",
            f"{name}_finelabels.csv",
            f"{name}_skeleton.csv",
        ]
        rows = read_rows(d / f"{name}_skeleton.csv")
        for row in rows:
            assert len(row) == 275
            assert all(np.isfinite(float(x)) for x in row)
        data = read_rows(d / f"{name}_data.csv")
        assert len(data) == 1
        assert int(data[0][0]) == len(rows)  # numFrames
        clips = read_labels(d / f"{name}_finelabels.csv")
        assert clips
        prev_end = 0
        for label, start, end in clips:
            assert label in range(1, 18)
            assert prev_end <= start < end <= len(rows)  # end exclusive, no overlap
            prev_end = end


def test_smg_release_reads_back(tiny_smg):
    folders = smg_folders(tiny_smg)
    want = []
    for d in folders:
        sk = np.array([[float(x) for x in r] for r in read_rows(d / f"{d.name}_skeleton.csv")])
        sk = sk.reshape(len(sk), 25, 11)
        for k, (label, start, end) in enumerate(read_labels(d / f"{d.name}_finelabels.csv")):
            want.append((f"{d.name}{k}", label - 1, start, sk[start:end, :, 0:3]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. a numFrames mismatch would warn
        records = load_smg_split(tiny_smg, [int(d.name[6:]) for d in folders])
    assert len(records) == len(want) > 0
    for rec, (sample_id, label, start, kp) in zip(records, want, strict=True):
        assert rec.sample_id == sample_id
        assert rec.label == label
        assert rec.start == start
        np.testing.assert_allclose(rec.keypoint, kp, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ cross-subject


@pytest.mark.parametrize("layout", ["imigue", "smg"])
def test_subjects_are_disjoint_across_splits(layout, tiny_imigue, tiny_smg):
    root = tiny_imigue if layout == "imigue" else tiny_smg
    meta = json.loads((root / "synthmg.json").read_text())
    by_split: dict[str, set[int]] = {"train": set(), "val": set(), "test": set()}
    for name, info in meta["videos"].items():
        by_split[info["split"]].add(info["subject"])
        if layout == "imigue":
            assert (root / IMIGUE_DIRS[info["split"]] / name).is_dir()
        else:
            assert name == f"Sample{info['subject']:04d}" and (root / name).is_dir()
    assert [len(by_split[s]) for s in ("train", "val", "test")] == [2, 1, 1]
    assert not by_split["train"] & by_split["val"]
    assert not by_split["train"] & by_split["test"]
    assert not by_split["val"] & by_split["test"]
    # every video on disk is listed
    if layout == "imigue":
        on_disk = {d.name for v in imigue_videos(root).values() for d in v}
    else:
        on_disk = {d.name for d in smg_folders(root)}
    assert on_disk == set(meta["videos"])


# ------------------------------------------------------------------ class distribution


def test_class_distribution_is_long_tailed_and_counted(tmp_path):
    root = generate_synthmg(
        tmp_path,
        seed=0,
        subjects=(3, 1, 1),
        videos_per_subject=2,
        clips_per_video=30,
        clip_frames=(8, 12),
        gap_frames=(0, 1),
    )
    meta = json.loads((root / "synthmg.json").read_text())
    total = np.zeros(32, dtype=int)
    for split, folders in imigue_videos(root).items():
        counts = np.zeros(32, dtype=int)
        for d in folders:
            for gid, _, _ in read_labels(d / f"{d.name}_label.csv"):
                counts[imigue_label(gid)] += 1
        assert meta["class_counts"][split] == counts.tolist()
        total += counts
    assert total.sum() > 200
    median = float(np.median(total))
    assert total.max() >= 5 * max(median, 1.0), total


# ------------------------------------------------------------------ geometry


def mid_clip_right_wrists(videos, labels: tuple[int, ...]) -> dict[int, list[np.ndarray]]:
    """Right wrist minus neck at each clip's middle frame, in shoulder widths."""
    out: dict[int, list[np.ndarray]] = {c: [] for c in labels}
    for kp, clips in videos:
        for gid, start, end in clips:
            label = imigue_label(gid)
            if label not in out:
                continue
            frame = kp[(start + end) // 2]
            if np.any(frame[[NECK, R_SHOULDER, R_WRIST, L_SHOULDER], 2] == 0):
                continue  # a joint we need was not detected
            width = np.linalg.norm(frame[R_SHOULDER, :2] - frame[L_SHOULDER, :2])
            out[label].append((frame[R_WRIST, :2] - frame[NECK, :2]) / width)
    return out


def test_eye_and_forehead_gestures_differ_by_a_small_motion(hand_release):
    # class 6 "rubbing eyes" (hand to the eye) vs class 4 "scratching forehead"
    wrists = mid_clip_right_wrists(hand_release, (4, 6))
    assert len(wrists[4]) >= 4 and len(wrists[6]) >= 4, {k: len(v) for k, v in wrists.items()}
    eye, forehead = np.mean(wrists[6], 0), np.mean(wrists[4], 0)
    # both raise the hand to the face: well above the neck (image y points down) ...
    assert eye[1] < -0.2 and forehead[1] < -0.2, (eye, forehead)
    # ... and end up at nearby but different places
    dist = float(np.linalg.norm(eye - forehead))
    assert 0.03 < dist < 0.5, dist


def test_body_stays_upright(hand_release):
    # Seated subjects with a slow sway and a small in-plane roll: the shoulder line
    # stays near horizontal in every frame where both shoulders are detected.
    worst = 0.0
    for kp, _ in hand_release:
        ok = (kp[:, R_SHOULDER, 2] > 0) & (kp[:, L_SHOULDER, 2] > 0)
        v = kp[ok, L_SHOULDER, :2] - kp[ok, R_SHOULDER, :2]
        tilt = np.degrees(np.abs(np.arctan2(v[:, 1], v[:, 0])))
        worst = max(worst, float(tilt.max()))
    assert worst < 30.0, f"shoulder line tilted by {worst:.1f} degrees"


# ------------------------------------------------------------------ bad configs


@pytest.mark.parametrize(
    "kwargs",
    [
        {"difficulty": -0.1},
        {"difficulty": 1.5},
        {"layout": "ntu"},
        {"subjects": (0, 1, 1)},
        {"subjects": (2, 1, 0)},
        {"clip_frames": (3, 8)},
        {"clip_frames": (10, 8)},
    ],
)
def test_bad_config_raises(tmp_path, kwargs):
    with pytest.raises(ValueError):
        SynthMGConfig(**kwargs)
    with pytest.raises(ValueError):
        generate_synthmg(tmp_path, **kwargs)


def test_config_boundaries_are_accepted():
    SynthMGConfig(difficulty=0.0)
    SynthMGConfig(difficulty=1.0, layout="smg", subjects=(1, 1, 1), clip_frames=(4, 4))
