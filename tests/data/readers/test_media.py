"""Per-clip frame sources: media index, .npy arrays, video frames and temporal alignment."""

from __future__ import annotations

import re
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from mgr.data.readers.common import DataFormatError
from mgr.data.readers.media import (
    align_indices,
    index_media,
    media_num_frames,
    read_media_frames,
    read_media_frames_each,
)
from mgr.data.readers.video import read_video, write_video

# --- index_media ---------------------------------------------------------------------------


def _touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_index_media_finds_files_in_nested_folders(tmp_path: Path) -> None:
    a = _touch(tmp_path / "imigue_rgb_train" / "0001_0.mp4")
    b = _touch(
        tmp_path / "SMG_RGB_Phase1" / "smg_rgb_train" / "Sample0001" / "Sample0001_color.MP4"
    )
    c = _touch(tmp_path / "flow" / "deep" / "er" / "0001_1.npy")
    d = _touch(tmp_path / "0002_3.webm")
    _touch(tmp_path / "imigue_rgb_train" / "0001_0_label.csv")  # not media
    _touch(tmp_path / "notes.txt")
    _touch(tmp_path / "flow" / "0009_9.npz")
    found = index_media(tmp_path)
    assert found == {"0001_0": a, "Sample0001_color": b, "0001_1": c, "0002_3": d}


def test_index_media_suffix_filter(tmp_path: Path) -> None:
    _touch(tmp_path / "a" / "0001_0.mp4")
    npy = _touch(tmp_path / "b" / "0001_0.npy")  # same stem, but only .npy is indexed
    assert index_media(tmp_path, suffixes=(".npy",)) == {"0001_0": npy}


def test_index_media_duplicate_stem_names_both_files(tmp_path: Path) -> None:
    first = _touch(tmp_path / "imigue_rgb_train" / "0001_0.mp4")
    second = _touch(tmp_path / "copy" / "0001_0.avi")
    with pytest.raises(DataFormatError) as info:
        index_media(tmp_path)
    message = str(info.value)
    assert "0001_0" in message
    assert str(first) in message and str(second) in message


def test_index_media_missing_root(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere"):
        index_media(tmp_path / "nowhere")
    _touch(tmp_path / "file.mp4")
    with pytest.raises(FileNotFoundError):
        index_media(tmp_path / "file.mp4")  # a file is not a folder


# --- .npy arrays ---------------------------------------------------------------------------


def test_npy_depth_gets_one_channel(tmp_path: Path) -> None:
    depth = np.arange(5 * 4 * 6, dtype=np.float32).reshape(5, 4, 6)
    path = tmp_path / "0001_0.npy"
    np.save(path, depth)
    assert media_num_frames(path) == 5
    out = read_media_frames(path, [3, 0, 3])
    assert out.shape == (3, 4, 6, 1) and out.dtype == np.float32
    np.testing.assert_array_equal(out[..., 0], depth[[3, 0, 3]])


def test_npy_flow_keeps_its_channels_and_dtype(tmp_path: Path) -> None:
    flow = np.random.default_rng(0).normal(size=(7, 4, 6, 2)).astype(np.float16)
    path = tmp_path / "clip.npy"
    np.save(path, flow)
    assert media_num_frames(path) == 7
    out = read_media_frames(path, np.array([6, 1]))
    assert out.shape == (2, 4, 6, 2) and out.dtype == np.float16
    np.testing.assert_array_equal(out, flow[[6, 1]])
    assert read_media_frames(path, []).shape == (0, 4, 6, 2)


@pytest.mark.parametrize("bad", [5, -1])
def test_npy_index_out_of_range_names_the_file(tmp_path: Path, bad: int) -> None:
    path = tmp_path / "0007_2.npy"
    np.save(path, np.zeros((5, 2, 2), np.uint8))
    with pytest.raises(DataFormatError) as info:
        read_media_frames(path, [0, bad, 1])
    assert str(path) in str(info.value)
    assert str(bad) in str(info.value)


@pytest.mark.parametrize("shape", [(5,), (5, 4), (5, 2, 2, 2, 2), (0, 4, 4)])
def test_npy_bad_shape_names_the_file(tmp_path: Path, shape: tuple) -> None:
    path = tmp_path / "bad.npy"
    np.save(path, np.zeros(shape, np.float32))
    with pytest.raises(DataFormatError, match=re.escape(str(path))):
        media_num_frames(path)
    with pytest.raises(DataFormatError, match=re.escape(str(path))):
        read_media_frames(path, [0])


def test_npy_not_an_array(tmp_path: Path) -> None:
    path = tmp_path / "text.npy"
    path.write_text("this is not an array\n")
    with pytest.raises(DataFormatError, match=re.escape(str(path))):
        read_media_frames(path, [0])
    with pytest.raises(FileNotFoundError):
        read_media_frames(tmp_path / "missing.npy", [0])


# --- video files ---------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".npy", ".mp4"])
def test_read_media_frames_each_cuts_the_box_then_applies_the_function(
    tmp_path: Path, suffix: str
) -> None:
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (6, 32, 48, 3), dtype=np.uint8)
    path = tmp_path / f"clip{suffix}"
    if suffix == ".npy":
        np.save(path, frames)
    else:
        write_video(path, frames, fps=25.0)
        frames = read_video(path)  # the lossy codec's frames are the reference
    sizes: list[tuple[int, int]] = []

    def box(height: int, width: int) -> tuple[int, int, int, int]:
        sizes.append((height, width))
        return (3, 7, 20, 25)

    out = read_media_frames_each(path, [4, 1], lambda f: f.flip(-1).clone(), box=box)
    expected = torch.from_numpy(frames[[4, 1], 3:23, 7:32]).permute(0, 3, 1, 2).flip(-1)
    torch.testing.assert_close(out, expected, atol=0, rtol=0)
    assert sizes == [(32, 48)]  # once per call, with the media's own size
    with pytest.raises(ValueError, match=r"clip\.(npy|mp4): crop box .* not inside"):
        read_media_frames_each(path, [0], lambda f: f, box=lambda h, w: (0, 0, 33, 48))


def test_video_frames_follow_the_index_order(tmp_path: Path) -> None:
    levels = (10 * np.arange(12)).astype(np.uint8)
    frames = np.broadcast_to(levels[:, None, None, None], (12, 16, 24, 3)).copy()
    path = tmp_path / "grey.mp4"
    write_video(path, frames)
    assert media_num_frames(path) == 12
    idx = [11, 0, 5, 5, 3]
    out = read_media_frames(path, np.array(idx))
    assert out.shape == (5, 16, 24, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, read_video(path)[idx])
    # Decoded grey levels are within a few units of what was written.
    np.testing.assert_allclose(out.mean(axis=(1, 2, 3)), levels[idx], atol=3)


# --- align_indices -------------------------------------------------------------------------


def brute_force_align(i: int, src: int, dst: int) -> int:
    """Source frame ``i`` spans ``[i, i + 1) / src``; return the destination frame whose span
    ``[j, j + 1) / dst`` holds the source span's start ``i / src`` (exact rationals)."""
    start = Fraction(i, src)
    hits = [j for j in range(dst) if Fraction(j, dst) <= start < Fraction(j + 1, dst)]
    assert len(hits) == 1
    return hits[0]


@pytest.mark.parametrize(
    ("src", "dst"),
    [(1, 1), (1, 7), (7, 1), (10, 10), (10, 9), (9, 10), (16, 24), (24, 16), (13, 5), (5, 13)],
)
def test_align_indices_matches_the_definition(src: int, dst: int) -> None:
    idx = np.arange(src)
    got = align_indices(idx, src, dst)
    want = np.array([brute_force_align(i, src, dst) for i in range(src)])
    np.testing.assert_array_equal(got, want)
    assert got.dtype == np.int64
    # Any order and repeats: the mapping is element-wise.
    shuffled = np.random.default_rng(src * 31 + dst).integers(0, src, 20)
    np.testing.assert_array_equal(align_indices(shuffled, src, dst), want[shuffled])


def test_align_indices_equal_lengths_is_identity() -> None:
    idx = np.array([4, 0, 2, 2, 9])
    np.testing.assert_array_equal(align_indices(idx, 10, 10), idx)


def test_align_indices_flow_has_one_frame_less() -> None:
    # Flow of T frames has T - 1 fields: the last RGB frame maps onto the last field.
    out = align_indices(np.arange(8), 8, 7)
    assert out.min() == 0 and out.max() == 6
    assert np.all(np.diff(out) >= 0)


@pytest.mark.parametrize(("src", "dst"), [(0, 5), (5, 0), (-1, 3)])
def test_align_indices_rejects_empty_clips(src: int, dst: int) -> None:
    with pytest.raises(ValueError, match="positive"):
        align_indices(np.array([0]), src, dst)
