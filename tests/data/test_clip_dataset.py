"""ClipDataset: a clip's skeleton, video and pose, sampled at the same moments, flipped together."""

from __future__ import annotations

import math
import re
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from mgr.data.datasets import ClipDataset, HeatmapOptions, SkeletonTransformConfig, VideoOptions
from mgr.data.readers.common import ClipRecord
from mgr.data.readers.video import write_video
from mgr.data.transforms.video import finish_video_batch
from mgr.datamodules.base import collate
from mgr.skeletons import IMIGUE_MIGA_22

LAYOUT = IMIGUE_MIGA_22
V = LAYOUT.num_joints
PERM = tuple(LAYOUT.flip_permutation())
RW, LW = LAYOUT.index("RWrist"), LAYOUT.index("LWrist")
RAW = VideoOptions(size=16, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))  # values = uint8 / 255

VIDEO_FRAMES, VH, VW = 32, 32, 48
GREY_STEP = 8  # frame f of the grey video has grey level 8 * f (max 248)
POSE_W = 1000  # pose pixel space width: keypoints stay far from their mirror images


def finished(item: dict) -> dict:
    """A dataset item as a model sees it: uint8 video finished as on the device."""
    batch = finish_video_batch(collate([item]))
    return {k: v[0] for k, v in batch.items()}


def frame_of(t: int, src: int, dst: int) -> int:
    """The frame of a ``dst``-frame clip showing the moment of frame ``t`` of a ``src``-frame
    clip: frame ``i`` spans ``[i, i + 1) / n`` of the clip's time; take the span holding
    ``t / src`` (exact rationals, no shortcut formula)."""
    moment = Fraction(t, src)
    return next(j for j in range(dst) if Fraction(j, dst) <= moment < Fraction(j + 1, dst))


def frame_index_keypoints(num: int) -> np.ndarray:
    """``(num, V, 3)`` keypoints: joint 0 (Nose, its own mirror) has ``x = t + 1`` in frame ``t``
    (``+ 1``: a joint at ``x = 0`` counts as missing and is not mirrored)."""
    kp = np.zeros((num, V, 3), np.float32)
    kp[:, :, 0] = 3.0 + np.arange(V)
    kp[:, :, 1] = 4.0 + 0.5 * np.arange(V)
    kp[:, :, 2] = 1.0
    kp[:, 0, 0] = np.arange(num) + 1
    return kp


def record(kp: np.ndarray, video: Path, start: int = 0, end: int | None = None) -> ClipRecord:
    return ClipRecord(
        sample_id="0001_0",
        label=3,
        keypoint=kp,
        video_id="0001",
        start=0,
        end=len(kp) - 1,
        source="0001_light_hand.csv",
        video=str(video),
        video_start=start,
        video_end=end,
    )


def config(**kwargs) -> SkeletonTransformConfig:
    base = {
        "clip_len": 10,
        "flip_permutation": PERM,
        "score_channel": 2,
        "normalize": False,
    }
    return SkeletonTransformConfig(**{**base, **kwargs})


def views(item: dict, key: str) -> torch.Tensor:
    """The item's ``key`` with a leading view axis, whether or not it has one."""
    x = item[key]
    ndim = {"skeleton": 4, "video": 4, "keypoint": 4, "keypoint_score": 3}[key]
    return x if x.ndim == ndim + 1 else x[None]


@pytest.fixture(scope="module")
def grey_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    levels = (GREY_STEP * np.arange(VIDEO_FRAMES)).astype(np.uint8)
    frames = np.broadcast_to(levels[:, None, None, None], (VIDEO_FRAMES, VH, VW, 3)).copy()
    path = tmp_path_factory.mktemp("clip_dataset") / "grey.mp4"
    write_video(path, frames, gop=8)
    return path


@pytest.fixture(scope="module", params=[np.float32, np.float16], ids=["float32", "float16"])
def flow_like(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Path:
    """A derived modality of ``VIDEO_FRAMES - 1`` float frames, frame ``j`` filled with ``j``.

    float16 too: flow is often stored in half precision (the real-size benchmark does).
    """
    arr = np.broadcast_to(
        np.arange(VIDEO_FRAMES - 1, dtype=request.param)[:, None, None], (VIDEO_FRAMES - 1, VH, VW)
    ).copy()
    path = tmp_path_factory.mktemp("flow") / "0001_0.npy"
    np.save(path, arr)
    return path


# --- temporal alignment --------------------------------------------------------------------


ALIGN_CASES = {
    # name: (skeleton frames, video_start, video_end, video frame of skeleton frame t)
    "same_length": (VIDEO_FRAMES, 0, None, lambda t: t),
    "offset_same_length": (16, 10, 25, lambda t: 10 + t),
    "offset_other_length": (16, 4, 27, lambda t: 4 + frame_of(t, 16, 24)),
}


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("case", list(ALIGN_CASES))
def test_video_shows_the_skeletons_moment(grey_video: Path, case: str, train: bool) -> None:
    num, start, end, expected = ALIGN_CASES[case]
    rec = record(frame_index_keypoints(num), grey_video, start, end)
    cfg = config(flip_prob=0.5) if train else config(num_clips=2, test_flip=True)
    ds = ClipDataset(
        [rec],
        cfg,
        train=train,
        modalities=("skeleton", "video", "pose"),
        video=RAW,
        image_size=(VH, POSE_W),
    )
    seen = set()
    for seed in range(4 if train else 1):
        torch.manual_seed(seed)
        item = finished(ds[0])
        skel, video, pose = views(item, "skeleton"), views(item, "video"), views(item, "keypoint")
        assert len(skel) == len(video) == len(pose) == (1 if train else 4)
        for n in range(len(skel)):
            # A flip negates the skeleton's x and mirrors the pose's (x -> POSE_W - x).
            t_skel = skel[n, 0, :, 0, 0].abs().round().long() - 1
            x_pose = pose[n, 0, :, 0, 0]
            flipped = bool(x_pose[0] > POSE_W / 2)
            if not train:  # test views 2 and 3 are the flipped ones
                assert flipped == (n >= 2)
            t_pose = (POSE_W - x_pose if flipped else x_pose).round().long() - 1
            assert torch.equal(t_skel, t_pose)
            grey = video[n].mean(dim=(0, 2, 3)) * 255  # (T,)
            want = torch.tensor([GREY_STEP * expected(int(t)) for t in t_skel], dtype=grey.dtype)
            torch.testing.assert_close(grey, want, atol=3.0, rtol=0.0)
            seen.update(t_skel.tolist())
    assert len(seen) >= 10  # the check covered many positions


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
def test_flow_with_one_frame_less_is_aligned(flow_like: Path, train: bool) -> None:
    rec = record(frame_index_keypoints(VIDEO_FRAMES), flow_like)
    opts = VideoOptions(size=16, modality="flow")  # float arrays are used as stored
    cfg = config() if train else config(num_clips=2)
    ds = ClipDataset([rec], cfg, train=train, modalities=("skeleton", "video"), video=opts)
    for seed in range(3):
        torch.manual_seed(seed)
        item = finished(ds[0])
        skel, video = views(item, "skeleton"), views(item, "video")
        assert video.shape[1:] == (1, 10, 16, 16)  # (T, H, W) arrays: one channel
        for n in range(len(skel)):
            t_skel = skel[n, 0, :, 0, 0].round().long() - 1
            got = video[n, 0].mean(dim=(1, 2))
            want = torch.tensor(
                [frame_of(int(t), VIDEO_FRAMES, VIDEO_FRAMES - 1) for t in t_skel],
                dtype=got.dtype,
            )
            torch.testing.assert_close(got.float(), want.float())


# --- flips ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dot_clip(tmp_path_factory: pytest.TempPathFactory) -> ClipRecord:
    """A black 48x48 video with a white 2x2 block under the right wrist (centre 10.5, 20.5)."""
    frames = np.zeros((12, 48, 48, 3), np.uint8)
    frames[:, 20:22, 10:12] = 255
    path = tmp_path_factory.mktemp("dot") / "dot.mp4"
    write_video(path, frames)
    kp = np.zeros((12, V, 3), np.float32)
    kp[:, :, 0] = 30.0 + 0.5 * np.arange(V)
    kp[:, :, 1] = 5.0 + np.arange(V)
    kp[:, :, 2] = 1.0
    kp[:, RW, :2] = (10.5, 20.5)
    return record(kp, path)


def bright_centroid(frame: torch.Tensor) -> tuple[float, float]:
    """``(x, y)`` centroid of the pixels brighter than half scale in a ``(C, H, W)`` frame."""
    ys, xs = torch.nonzero(frame.mean(0) > 0.5, as_tuple=True)
    assert len(xs) > 0
    return xs.float().mean().item(), ys.float().mean().item()


@pytest.mark.parametrize("flip", [False, True])
def test_flip_moves_video_pose_and_skeleton_together(dot_clip: ClipRecord, flip: bool) -> None:
    video_opts = VideoOptions(
        size=48, crop="center", train_scale=(1.0, 1.0), mean=(0, 0, 0), std=(1, 1, 1)
    )
    ds = ClipDataset(
        [dot_clip],
        config(clip_len=6, flip_prob=1.0 if flip else 0.0),
        train=True,
        modalities=("skeleton", "video", "pose"),
        video=video_opts,
        image_size=(48, 48),
    )
    torch.manual_seed(0)
    item = finished(ds[0])
    joint = LW if flip else RW  # after a flip the right wrist's pixel is the left wrist's
    kp = item["keypoint"][0]  # (T, V, 2)
    for t in range(6):
        cx, cy = bright_centroid(item["video"][:, t])
        px, py = kp[t, joint].tolist()
        # pose flips x -> W - x (mmaction2), the image c -> W - 1 - c: within a pixel.
        assert abs(cx - px) <= 1.0 + 1e-6 and abs(cy - py) <= 0.25
        assert abs(cx - (36.5 if flip else 10.5)) <= 0.25
    raw = torch.from_numpy(dot_clip.keypoint[:6])  # constant in time: any frames will do
    skel = item["skeleton"][:, :, :, 0].permute(1, 2, 0)  # (T, V, C)
    if flip:
        want = raw[:, list(PERM)].clone()
        want[..., 0] *= -1
        want_pose = raw[:, list(PERM), :2].clone()
        want_pose[..., 0] = 48 - want_pose[..., 0]
    else:
        want, want_pose = raw, raw[..., :2]
    torch.testing.assert_close(skel, want)
    torch.testing.assert_close(kp, want_pose)
    want_score = raw[:, list(PERM), 2] if flip else raw[..., 2]
    torch.testing.assert_close(item["keypoint_score"][0], want_score)


# --- saliency crop -------------------------------------------------------------------------

SH, SW = 48, 64  # the coordinate video


@pytest.fixture(scope="module")
def coordinate_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """uint8 frames whose channel 0 is 4 * column and channel 1 is 4 * row (lossless .npy)."""
    rows, cols = np.mgrid[:SH, :SW]
    frame = np.stack([4 * cols, 4 * rows, np.zeros_like(rows)], -1).astype(np.uint8)
    path = tmp_path_factory.mktemp("coords") / "coords.npy"
    np.save(path, np.broadcast_to(frame, (6, SH, SW, 3)).copy())
    return path


def expected_box(x0: float, x1: float, y0: float, y1: float, margin: float = 0.2):
    """``(top, left, bottom, right)`` (exclusive ends) of the grown box, clipped to the video."""
    dx, dy = margin * (x1 - x0), margin * (y1 - y0)
    left, right = max(math.floor(x0 - dx), 0), min(math.floor(x1 + dx) + 1, SW)
    top, bottom = max(math.floor(y0 - dy), 0), min(math.floor(y1 + dy) + 1, SH)
    return top, left, bottom, right


def box_keypoints(x0, x1, y0, y1, scale: float) -> np.ndarray:
    """Keypoints spanning the box ``[x0, x1] x [y0, y1]`` (video pixels), in a space ``scale``
    times larger; one far-away joint has score 0 and must be ignored."""
    kp = np.zeros((6, 5, 3), np.float32)
    kp[:, :4, :2] = [(x0, y0), (x1, y0), (x0, y1), (x1, y1)]
    kp[:, :4, 2] = 1.0
    kp[:, 4] = (1.0, 1.0, 0.0)
    kp[3, 1, :2] = ((x0 + x1) / 2, y0)  # keypoints move; the box covers the whole clip
    kp[..., :2] *= scale
    return kp


@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize(
    ("keypoint_image_size", "image_size"),
    [((2 * SH, 2 * SW), None), (None, (2 * SH, 2 * SW)), (None, None)],
    ids=["options", "dataset", "video"],
)
def test_saliency_crop_exact_box(
    coordinate_video: Path, keypoint_image_size: tuple | None, image_size: tuple | None, train: bool
) -> None:
    # The keypoints' pixel space: the options', else the dataset's image_size, else the video.
    # Box 20..45 x 8..33 grows by 5 px per side: a 36 x 36 crop, resized to 36 x 36 = exact.
    scale = 2.0 if keypoint_image_size or image_size else 1.0
    kp = box_keypoints(20, 45, 8, 33, scale)
    top, left, bottom, right = expected_box(20, 45, 8, 33)
    assert (bottom - top, right - left) == (36, 36)
    opts = VideoOptions(
        size=36,
        crop="saliency",
        train_scale=(1.0, 1.0),
        keypoint_image_size=keypoint_image_size,
        mean=(0, 0, 0),
        std=(1, 1, 1),
    )
    ds = ClipDataset(
        [record(kp, coordinate_video)],
        SkeletonTransformConfig(clip_len=4, score_channel=2, normalize=False),
        train=train,
        modalities=("video",),
        video=opts,
        image_size=image_size,
    )
    video = finished(ds[0])["video"] * 255  # (3, T, 36, 36)
    cols = torch.arange(left, right, dtype=video.dtype) * 4
    rows = torch.arange(top, bottom, dtype=video.dtype) * 4
    torch.testing.assert_close(video[0], cols.expand_as(video[0]), atol=1e-3, rtol=0)
    torch.testing.assert_close(video[1], rows[:, None].expand_as(video[1]), atol=1e-3, rtol=0)


def test_saliency_crop_clipped_and_resized(coordinate_video: Path) -> None:
    # The grown box leaves the image on the left and the bottom: it is clipped there, then
    # the (34 x 48) crop is resized to 24 x 24.
    x0, x1, y0, y1 = 2, 40, 20, 46
    top, left, bottom, right = expected_box(x0, x1, y0, y1)
    assert left == 0 and bottom == SH and right < SW
    size = 24
    opts = VideoOptions(
        size=size,
        crop="saliency",
        keypoint_image_size=(2 * SH, 2 * SW),
        mean=(0, 0, 0),
        std=(1, 1, 1),
    )
    ds = ClipDataset(
        [record(box_keypoints(x0, x1, y0, y1, 2.0), coordinate_video)],
        SkeletonTransformConfig(clip_len=4, score_channel=2, normalize=False),
        train=False,
        modalities=("video",),
        video=opts,
    )
    video = finished(ds[0])["video"] * 255 / 4  # source column / row of every output pixel
    col = video[0, 0].mean(0)  # (size,) columns, equal down the rows
    row = video[1, 0].mean(1)
    k = torch.arange(size, dtype=col.dtype) + 0.5
    # Output pixel k samples the source at left + (k + 0.5) * box / size - 0.5; the
    # antialiased resize bends that line by a fraction of a pixel at the edges.
    want_col = left + k * (right - left) / size - 0.5
    want_row = top + k * (bottom - top) / size - 0.5
    torch.testing.assert_close(col, want_col, atol=1.0, rtol=0)
    torch.testing.assert_close(row, want_row, atol=1.0, rtol=0)


# --- test-time views -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def pattern_clip(tmp_path_factory: pytest.TempPathFactory) -> ClipRecord:
    """uint8 .npy frames: channel 0 = 4 * column (asymmetric), channel 2 = 8 * frame."""
    t, h, w = 20, 24, 32
    rows, cols = np.mgrid[:h, :w]
    frames = np.zeros((t, h, w, 3), np.uint8)
    frames[..., 0] = 4 * cols
    frames[..., 1] = 4 * rows
    frames[..., 2] = (8 * np.arange(t))[:, None, None]
    path = tmp_path_factory.mktemp("pattern") / "0002_1.npy"
    np.save(path, frames)
    kp = frame_index_keypoints(t)
    kp[:, 1:, 0] = np.random.default_rng(0).uniform(1, w - 1, (t, V - 1))
    return record(kp, path)


def test_test_time_views(pattern_clip: ClipRecord) -> None:
    opts = VideoOptions(size=16, mean=(0, 0, 0), std=(1, 1, 1))
    ds = ClipDataset(
        [pattern_clip],
        config(clip_len=6, num_clips=2, test_flip=True),
        train=False,
        modalities=("skeleton", "video", "pose"),
        video=opts,
        image_size=(24, 32),
    )
    item = finished(ds[0])
    assert item["skeleton"].shape == (4, 3, 6, V, 1)
    assert item["video"].shape == (4, 3, 6, 16, 16)
    assert item["keypoint"].shape == (4, 1, 6, V, 2)
    assert item["keypoint_score"].shape == (4, 1, 6, V)
    assert item["img_shape"].tolist() == [24, 32] and item["img_shape"].dtype == torch.int64
    assert item["label"] == 3 and item["sample_id"] == "0001_0"
    video, skel, kp = item["video"], item["skeleton"], item["keypoint"]
    for n in range(4):  # every view: the video frame (channel 2) is the skeleton's frame
        t_skel = skel[n, 0, :, 0, 0].abs().round() - 1
        torch.testing.assert_close(video[n, 2].mean(dim=(1, 2)) * 255, 8 * t_skel)
    assert not torch.equal(skel[0], skel[1])  # two different test clips
    for clip in (0, 1):  # view clip + 2 is the mirror of view clip
        torch.testing.assert_close(video[clip + 2], video[clip].flip(-1))
        mirrored = skel[clip][:, :, list(PERM)].clone()
        mirrored[0] *= -1
        torch.testing.assert_close(skel[clip + 2], mirrored)
        want = kp[clip][:, :, list(PERM)].clone()
        want[..., 0] = 32 - want[..., 0]
        torch.testing.assert_close(kp[clip + 2], want)


def test_single_view_has_no_view_axis(pattern_clip: ClipRecord) -> None:
    ds = ClipDataset(
        [pattern_clip],
        config(clip_len=6),
        train=False,
        modalities=("video", "pose"),
        video=VideoOptions(size=16),
        image_size=(24, 32),
    )
    item = finished(ds[0])
    assert set(item) == {"video", "keypoint", "keypoint_score", "img_shape", "label", "sample_id"}
    assert item["video"].shape == (3, 6, 16, 16) and item["video"].dtype == torch.float32
    assert item["keypoint"].shape == (1, 6, V, 2)
    assert item["img_shape"].shape == (2,)


# --- construction errors and bad files -----------------------------------------------------


def test_construction_errors(pattern_clip: ClipRecord) -> None:
    cfg = config(clip_len=4)
    with pytest.raises(ValueError, match="modalities"):
        ClipDataset([pattern_clip], cfg, train=False, modalities=("skeleton", "depth"))
    with pytest.raises(ValueError, match="modalities"):
        ClipDataset([pattern_clip], cfg, train=False, modalities=())
    with pytest.raises(ValueError, match="VideoOptions"):
        ClipDataset([pattern_clip], cfg, train=False, modalities=("video",))
    no_video = ClipRecord(**{**pattern_clip.__dict__, "video": None, "sample_id": "0009_9"})
    with pytest.raises(ValueError, match="0009_9"):
        ClipDataset([no_video], cfg, train=False, modalities=("video",), video=RAW)
    with pytest.raises(ValueError, match="image_size"):
        ClipDataset([pattern_clip], cfg, train=False, modalities=("pose",))
    with pytest.raises(ValueError, match=re.escape("coords='pixel'")):
        ClipDataset(
            [pattern_clip],
            cfg,
            train=False,
            modalities=("video",),
            video=VideoOptions(crop="saliency"),
            pixel_channels=None,
        )
    with pytest.raises(ValueError, match="flip permutation"):
        ClipDataset(
            [pattern_clip],
            SkeletonTransformConfig(clip_len=4, flip_prob=0.5),
            train=True,
            modalities=("skeleton",),
        )


def test_unreadable_video_names_the_sample_and_file(tmp_path: Path) -> None:
    bad = tmp_path / "0005_2.mp4"
    bad.write_bytes(b"definitely not an mp4 file")
    rec = ClipRecord(
        **{**record(frame_index_keypoints(8), bad).__dict__, "sample_id": "0005_2"},
    )
    ds = ClipDataset([rec], config(clip_len=4), train=False, modalities=("video",), video=RAW)
    with pytest.raises(RuntimeError) as info:
        finished(ds[0])
    assert "0005_2" in str(info.value) and str(bad) in str(info.value)


# --- video clip length of its own, heatmaps cropped like the video -------------------------


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
def test_shorter_video_clip_spans_the_same_time(grey_video: Path, train: bool) -> None:
    # 4 video frames over the same 32-frame span as 8 skeleton frames: video frame k comes
    # from the k-th quarter of the clip.
    opts = VideoOptions(size=16, clip_len=4, mean=(0, 0, 0), std=(1, 1, 1))
    cfg = config(clip_len=8) if train else config(clip_len=8, num_clips=2, test_flip=True)
    rec = record(frame_index_keypoints(VIDEO_FRAMES), grey_video)
    ds = ClipDataset([rec], cfg, train=train, modalities=("skeleton", "video"), video=opts)
    for seed in range(3):
        torch.manual_seed(seed)
        item = finished(ds[0])
        skel, video = views(item, "skeleton"), views(item, "video")
        assert skel.shape[2] == 8 and video.shape[2] == 4
        for n in range(len(video)):
            frame = (video[n].mean(dim=(0, 2, 3)) * 255 / GREY_STEP).round()
            for k in range(4):
                assert 8 * k <= frame[k] < 8 * (k + 1)


def heat_centroid(volume: torch.Tensor) -> tuple[float, float]:
    """Weighted ``(x, y)`` centre of a ``(h, w)`` heatmap."""
    h, w = volume.shape
    total = volume.sum()
    assert total > 0
    x = (volume.sum(0) * torch.arange(w)).sum() / total
    y = (volume.sum(1) * torch.arange(h)).sum() / total
    return x.item(), y.item()


@pytest.mark.parametrize("flip", [False, True])
def test_heatmaps_are_cropped_and_flipped_like_the_video(dot_clip: ClipRecord, flip: bool) -> None:
    opts = VideoOptions(
        size=32, crop="center", train_scale=(0.5, 1.0), mean=(0, 0, 0), std=(1, 1, 1)
    )
    ds = ClipDataset(
        [dot_clip],
        config(clip_len=4, flip_prob=1.0 if flip else 0.0),
        train=True,
        modalities=("video", "heatmap"),
        video=opts,
        heatmap=HeatmapOptions(size=32, sigma=0.8, use_score=False),
        limbs=LAYOUT.limbs,
        image_size=(48, 48),
    )
    joint = LW if flip else RW
    compared = 0
    for seed in range(6):  # random crops: the dot moves in the output, the heatmap with it
        torch.manual_seed(seed)
        item = finished(ds[0])
        assert item["heatmap"].shape == (V, 4, 32, 32)
        for t in range(4):
            if item["video"][:, t].mean(0).max() < 0.5:
                continue  # the random crop left the dot out
            vx, vy = bright_centroid(item["video"][:, t])
            hx, hy = heat_centroid(item["heatmap"][joint, t])
            assert abs(vx - hx) <= 1.0 and abs(vy - hy) <= 1.0, (seed, t)
            compared += 1
    assert compared >= 12


# --- frames cropped and resized one at a time, as decoded ------------------------------------


@pytest.mark.parametrize("backend", ["pyav", "torchcodec"])
def test_video_frames_equal_the_whole_clip_cropped_and_resized(
    tmp_path: Path, backend: str
) -> None:
    """Each frame is cropped and resized as it is decoded: the same pixels as resizing the
    centre square of the plainly decoded clip (``read_video``) in one go."""
    import torch.nn.functional as F

    from mgr.data.readers.video import read_video, torchcodec_available
    from mgr.data.transforms.pose import uniform_sample_indices

    if backend == "torchcodec" and not torchcodec_available():
        pytest.skip("torchcodec does not load here (needs the system's FFmpeg libraries)")
    t, h, w = 40, 48, 64
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (t, h // 4, w // 4, 3), dtype=np.uint8).repeat(4, 1).repeat(4, 2)
    path = tmp_path / "0001_0.mp4"
    write_video(path, frames, fps=30)
    opts = VideoOptions(size=20, mean=(0, 0, 0), std=(1, 1, 1), backend=backend)
    ds = ClipDataset(
        [record(frame_index_keypoints(t), path)], config(clip_len=8), train=False,
        modalities=("video",), video=opts,
    )  # fmt: skip
    video = ds[0]["video"]  # (C, T, 20, 20) uint8, not yet normalised
    decoded = torch.from_numpy(read_video(path)).permute(0, 3, 1, 2)
    idx = uniform_sample_indices(t, 8, test_mode=True)
    square = decoded[idx, :, :, (w - h) // 2 : (w + h) // 2]
    expected = F.interpolate(square, size=(20, 20), mode="bilinear", antialias=True)
    assert video.dtype == torch.uint8
    torch.testing.assert_close(video.transpose(0, 1), expected, atol=0, rtol=0)
