"""SynthMG with RGB videos: the three release layouts, frame counts, and a figure that is
where its skeleton says."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from mgr.classes import MA52, imigue_label_from_raw, ma52_fine_to_coarse
from mgr.data.readers.video import probe_video, read_video
from mgr.data.synthetic import SynthMGConfig, generate_synthmg
from mgr.skeletons import get_layout

H, W = 72, 128
BASE = {
    "seed": 1,
    "videos_per_subject": 1,
    "clips_per_video": 6,
    "clip_frames": (8, 12),
    "gap_frames": (1, 2),
    "video_size": (H, W),
}
IMIGUE_DIRS = {
    "train": ("imigue_skeleton_train", "imigue_rgb_train"),
    "val": ("imigue_skeleton_validate", "imigue_rgb_validate"),
    "test": ("imigue_skeleton_test", "imigue_rgb_test"),
}


def label_rows(path: Path) -> list[tuple[int, int, int]]:
    return [tuple(map(int, line.split(","))) for line in path.read_text().split() if line]


def num_lines(path: Path) -> int:
    return sum(1 for line in path.read_text().splitlines() if line.strip())


@pytest.fixture(scope="module")
def releases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each layout with video, and iMiGUE / SMG once more without (same seed)."""
    root = tmp_path_factory.mktemp("synth_video")
    out = {}
    for layout, subjects in (("imigue", (1, 1, 1)), ("smg", (1, 1, 1)), ("ma52", (2, 0, 1))):
        out[layout] = generate_synthmg(
            root / layout, layout=layout, subjects=subjects, video=True, **BASE
        )
        if layout != "ma52":
            out[f"{layout}_plain"] = generate_synthmg(
                root / f"{layout}_plain", layout=layout, subjects=subjects, video=False, **BASE
            )
    return out


# --- layouts and frame counts --------------------------------------------------------------


def test_imigue_rgb_layout(releases: dict[str, Path]) -> None:
    root = releases["imigue"]
    for split, (skeleton_dir, rgb_dir) in IMIGUE_DIRS.items():
        listed = (root / f"iMiGUE_{split}_clips_list.txt").read_text().splitlines()
        want = []
        for folder in sorted((root / skeleton_dir).iterdir()):
            vid = folder.name
            for k, (raw, start, end) in enumerate(label_rows(folder / f"{vid}_label.csv")):
                info = probe_video(root / rgb_dir / f"{vid}_{k}.mp4")
                assert info.num_frames == end - start + 1
                assert (info.height, info.width) == (H, W)
                want.append(f"{vid}_{k}.mp4 {imigue_label_from_raw(raw)}")
        assert want and listed == want
        assert sorted(p.name for p in (root / rgb_dir).iterdir()) == sorted(
            line.split()[0] for line in want
        )


def test_smg_rgb_layout(releases: dict[str, Path]) -> None:
    root = releases["smg"]
    samples = sorted(p.name for p in root.glob("Sample*") if p.is_dir())
    assert samples == ["Sample0001", "Sample0002", "Sample0003"]
    for name in samples:
        video = root / "smg_rgb" / name / f"{name}_color.mp4"
        frames = num_lines(root / name / f"{name}_skeleton.csv")
        assert probe_video(video).num_frames == frames
        data = (root / name / f"{name}_data.csv").read_text().strip().split(",")
        assert int(data[0]) == frames
        assert not list((root / name).glob("*.mp4"))  # RGB lives in its own tree


def test_ma52_layout(releases: dict[str, Path]) -> None:
    root = releases["ma52"]
    names = (root / "label_name.txt").read_text().splitlines()
    assert names == [f"{i}\t{n}" for i, n in enumerate(MA52.names)]
    # Video only: the one csv is SynthMG's FG-Text annotation file, not a skeleton.
    assert [p.name for p in root.rglob("*.csv")] == ["fgtext.csv"]
    meta = json.loads((root / "synthmg.json").read_text())
    participants = {}
    for split in ("train", "val", "test"):
        raw = (root / f"{split}_list_videos.txt").read_bytes()
        assert raw.endswith(b"\r\n") and raw.count(b"\n") == raw.count(b"\r\n")
        lines = raw.decode().split("\r\n")[:-1]
        assert lines, split
        counts = np.zeros(52, int)
        for line in lines:
            name, label = line.split(" ")
            label = int(label)
            counts[label] += 1
            video = root / f"videos_{split}" / name
            frames = probe_video(video).num_frames
            assert BASE["clip_frames"][0] <= frames <= BASE["clip_frames"][1]
            if split == "test":
                assert re.fullmatch(r"test\d{4}\.mp4", name)
            else:
                match = re.fullmatch(r"(\d{4})_(\d{2})_(\d{4})\.mp4", name)
                assert match and int(match.group(2)) == ma52_fine_to_coarse(label)
                participants.setdefault(split, set()).add(int(match.group(1)))
        assert sorted(p.name for p in (root / f"videos_{split}").iterdir()) == sorted(
            line.split(" ")[0] for line in lines
        )
        assert counts.tolist() == meta["class_counts"][split]
    # Validation clips come from the training participants (MA-52 is not cross-subject).
    assert participants["val"] <= participants["train"] == {1, 2}


def test_ma52_always_renders_video() -> None:
    assert SynthMGConfig(layout="ma52", video=False).video is True
    with pytest.raises(ValueError, match="even"):
        SynthMGConfig(layout="imigue", video=True, video_size=(45, 80))


@pytest.mark.parametrize("layout", ["imigue", "smg"])
def test_video_leaves_the_skeleton_files_unchanged(releases: dict[str, Path], layout: str) -> None:
    with_video, plain = releases[layout], releases[f"{layout}_plain"]
    files = sorted(p.relative_to(plain) for p in plain.rglob("*.csv"))
    assert files
    for rel in files:
        assert (with_video / rel).read_bytes() == (plain / rel).read_bytes(), rel
    assert not list(plain.rglob("*.mp4")) and not list(plain.glob("*_clips_list.txt"))


# --- the figure is where the skeleton says -------------------------------------------------
#
# A static check of "the pixel under the neck has the shirt colour" needs the background
# colour, which the release does not give. Instead we use motion, which both modalities show:
# pixels whose grey level changes by more than 40 over a clip (sensor noise and exposure
# flicker stay well below that) are the figure's moving edges, so each must lie within a few
# video pixels of a bone of the skeleton (joints and the segments between them, at any frame
# of the clip, scaled from the 1920-wide keypoint space to the video). As a control, the same
# skeleton shifted by 10 video pixels must fail the check in at least one direction.


def bone_points(xy: np.ndarray, limbs, width: int = 1920) -> np.ndarray:
    """Integer video pixels along every bone of every frame (joints at (0, 0) are missing);
    ``width``: of the keypoints' pixel space."""
    xy = xy * (W / width)
    i, j = np.array(limbs).T
    ok = (xy[:, i] != 0).any(-1) & (xy[:, j] != 0).any(-1)
    s = np.linspace(0, 1, 9)[:, None, None, None]
    pts = (xy[:, i] + s * (xy[:, j] - xy[:, i]))[:, ok]
    return np.unique(np.round(pts.reshape(-1, 2)).astype(int), axis=0)


def near_fraction(moving: np.ndarray, pts: np.ndarray, shift=(0, 0), radius: float = 4) -> float:
    ys, xs = np.nonzero(moving)
    q = np.stack([xs, ys], -1) - np.asarray(shift)
    d2 = ((q[:, None, :] - pts[None]) ** 2).sum(-1).min(1)
    return float((d2 <= radius**2).mean())


def moving_pixels(video: np.ndarray) -> np.ndarray:
    grey = video.astype(np.float32).mean(-1)
    return grey.max(0) - grey.min(0) > 40


def check_figure_follows_skeleton(moving: np.ndarray, pts: np.ndarray) -> None:
    assert moving.sum() >= 30  # enough motion to judge
    assert near_fraction(moving, pts) >= 0.98
    shifted = [near_fraction(moving, pts, s) for s in ((10, 0), (-10, 0), (0, 10), (0, -10))]
    assert min(shifted) < 0.9


def test_imigue_figure_follows_the_skeleton(releases: dict[str, Path]) -> None:
    root = releases["imigue"]
    folder = root / "imigue_skeleton_train" / "0001"
    rows = np.loadtxt(folder / "0001_light_hand.csv", delimiter=",", ndmin=2)
    kp = rows[:, 1:].reshape(len(rows), 35, 3)
    xy = kp[..., :2] * (kp[..., 2:] > 0)  # undetected joints count as missing
    limbs = get_layout("imigue_light_hand_35").limbs
    moving = np.zeros((H, W), bool)
    pts = []
    for k, (_, start, end) in enumerate(label_rows(folder / "0001_label.csv")):
        moving |= moving_pixels(read_video(root / "imigue_rgb_train" / f"0001_{k}.mp4"))
        pts.append(bone_points(xy[start : end + 1], limbs))
    check_figure_follows_skeleton(moving, np.unique(np.concatenate(pts), axis=0))


def test_smg_figure_follows_the_skeleton(releases: dict[str, Path]) -> None:
    root = releases["smg"]
    rows = np.loadtxt(root / "Sample0001" / "Sample0001_skeleton.csv", delimiter=",", ndmin=2)
    xy = rows.reshape(len(rows), 25, 11)[..., 7:9]  # colour-image pixel x, y
    video = read_video(root / "smg_rgb" / "Sample0001" / "Sample0001_color.mp4")
    pts = bone_points(xy, get_layout("kinect_v2_25").limbs)
    check_figure_follows_skeleton(moving_pixels(video), pts)


def test_imigue_untrimmed_videos(tmp_path: Path) -> None:
    """``untrimmed_video`` writes each whole sequence; its clips are frame ranges of it."""
    root = generate_synthmg(
        tmp_path, layout="imigue", subjects=(1, 1, 1), video=True, untrimmed_video=True, **BASE
    )
    for skeleton_dir, rgb_dir in IMIGUE_DIRS.values():
        for folder in sorted((root / skeleton_dir).iterdir()):
            vid = folder.name
            long = root / "imigue_rgb_untrimmed" / f"{vid}.mp4"
            assert probe_video(long).num_frames == num_lines(folder / f"{vid}_light_hand.csv")
            whole = read_video(long).astype(np.float32)
            _, start, end = label_rows(folder / f"{vid}_label.csv")[0]
            clip = read_video(root / rgb_dir / f"{vid}_0.mp4").astype(np.float32)
            assert np.abs(whole[start : end + 1] - clip).mean() < 2.0  # same frames, re-encoded
            assert np.abs(whole[start + 1 : end + 2] - clip).mean() > 2.0  # and not shifted
    with pytest.raises(ValueError, match="untrimmed_video"):
        SynthMGConfig(layout="smg", video=True, untrimmed_video=True)


# --- real resolution: keypoint pixel space and the MiGA'25 xlsx -----------------------------


@pytest.fixture(scope="module")
def miga25(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """iMiGUE as MiGA'25: OpenPose-137 xlsx in 1280x720 pixels, video 1/10 of that."""
    return generate_synthmg(
        tmp_path_factory.mktemp("miga25"),
        layout="imigue",
        subjects=(1, 1, 1),
        source="miga25",
        image_size=(720, 1280),
        video=True,
        **BASE,
    )


def test_image_size_scales_the_keypoint_space(releases: dict[str, Path], tmp_path: Path) -> None:
    """The same release framed in 1280x720 instead of 1920x1080: every pixel coordinate
    times 2/3 (csv rounding aside), confidences and missing joints unchanged."""
    small = generate_synthmg(
        tmp_path, layout="imigue", subjects=(1, 1, 1), image_size=(720, 1280), **BASE
    )
    full = releases["imigue_plain"]
    files = sorted(p.relative_to(full) for p in full.rglob("*_light_hand.csv"))
    assert files
    for rel in files:
        a = np.loadtxt(full / rel, delimiter=",", ndmin=2)[:, 1:].reshape(-1, 35, 3)
        b = np.loadtxt(small / rel, delimiter=",", ndmin=2)[:, 1:].reshape(-1, 35, 3)
        np.testing.assert_array_equal(a[..., 2], b[..., 2])
        np.testing.assert_allclose(b[..., :2], a[..., :2] * 2 / 3, atol=0.1)
        assert b[..., 0].max() < 1280 and b[..., 1].max() < 720
    for rel in sorted(p.relative_to(full) for p in full.rglob("*_label.csv")):
        assert (full / rel).read_text() == (small / rel).read_text()


def test_miga25_release_reads_back(miga25: Path) -> None:
    from mgr.data.readers.miga import load_miga25_split

    assert not list(miga25.rglob("*_light_hand.csv"))
    for split, (skeleton_dir, _) in IMIGUE_DIRS.items():
        (folder,) = (miga25 / skeleton_dir).iterdir()
        rows = label_rows(folder / f"{folder.name}_label.csv")
        records = load_miga25_split(miga25, split)
        assert [r.label for r in records] == [imigue_label_from_raw(c) for c, _, _ in rows]
        for r, (_, start, end) in zip(records, rows, strict=True):
            assert r.keypoint.shape == (end - start + 1, 137, 3)
            x, y, c = r.keypoint.transpose(2, 0, 1)
            seen = c > 0
            assert seen.mean() > 0.5
            assert (x[seen] > 0).all() and (x[seen] < 1280).all()
            assert (y[seen] > 0).all() and (y[seen] < 720).all()
            assert (r.keypoint[~seen] == 0).all()  # missing keypoints: zeros, as OpenPose


def test_miga25_hands_and_face_sit_on_the_body(miga25: Path) -> None:
    """OpenPose-137 blocks: the hand models' wrists (95 left, 116 right) on the body's
    LWrist (7) / RWrist (4), not on the other wrist; the face around the nose (0)."""
    from mgr.data.readers.miga import read_openpose_xlsx

    (folder,) = (miga25 / "imigue_skeleton_train").iterdir()
    kp = read_openpose_xlsx(folder / f"{folder.name}_openpose.xlsx")

    def dist(i: int, j: int) -> np.ndarray:
        ok = (kp[:, i, 2] > 0) & (kp[:, j, 2] > 0)
        return np.linalg.norm(kp[ok, i, :2] - kp[ok, j, :2], axis=-1)

    for hand, wrist, other in ((95, 7, 4), (116, 4, 7)):
        assert np.median(dist(hand, wrist)) < 10  # detector jitter only (~2 px)
        assert np.median(dist(hand, other)) > 4 * np.median(dist(hand, wrist))
    face = kp[:, 25:95]
    ok = (face[..., 2] > 0).all(1) & (kp[:, 0, 2] > 0) & (kp[:, 1, 2] > 0)
    centre = face[ok, :, :2].mean(1)
    nose_neck = np.linalg.norm(kp[ok, 0, :2] - kp[ok, 1, :2], axis=-1)
    assert np.median(np.linalg.norm(centre - kp[ok, 0, :2], axis=-1) / nose_neck) < 0.5


def test_miga25_figure_follows_the_skeleton(miga25: Path) -> None:
    from mgr.data.readers.miga import read_openpose_xlsx

    (folder,) = (miga25 / "imigue_skeleton_train").iterdir()
    vid = folder.name
    kp = read_openpose_xlsx(folder / f"{vid}_openpose.xlsx")
    assert probe_video(miga25 / "imigue_rgb_train" / f"{vid}_0.mp4").width == W
    xy = kp[..., :2] * (kp[..., 2:] > 0)
    limbs = get_layout("openpose_137").limbs
    moving = np.zeros((H, W), bool)
    pts = []
    for k, (_, start, end) in enumerate(label_rows(folder / f"{vid}_label.csv")):
        moving |= moving_pixels(read_video(miga25 / "imigue_rgb_train" / f"{vid}_{k}.mp4"))
        pts.append(bone_points(xy[start : end + 1], limbs, width=1280))
    check_figure_follows_skeleton(moving, np.unique(np.concatenate(pts), axis=0))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"layout": "smg", "image_size": (720, 1280)}, "Kinect"),
        ({"layout": "smg", "source": "miga25"}, "iMiGUE"),
        ({"source": "miga24"}, "source"),
        ({"image_size": (32, 64)}, "image_size"),
    ],
)
def test_bad_real_size_options(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SynthMGConfig(**kwargs)
