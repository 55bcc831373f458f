"""Per-clip frame sources: RGB videos and precomputed flow / depth, as files or arrays.

RGB comes as video files. Derived modalities come from external tools (optical
flow from e.g. MemFlow or RAFT, monocular depth from e.g. Depth Anything), which
write either a video (flow visualised as colours, depth as grey levels) or an
array per clip. Both are read here:

* video files (``.mp4``, ``.avi``, ``.mkv``, ``.webm``, ``.mov``): decoded with PyAV,
  ``(N, H, W, 3)`` uint8;
* ``.npy`` arrays ``(T, H, W)`` (depth), ``(T, H, W, C)`` (flow ``C = 2``) in any
  dtype, memory-mapped so that only the sampled frames are read.

A derived clip may have a different number of frames than the RGB clip (flow of
``T`` frames has ``T - 1`` fields); :func:`align_indices` maps frame indices
between them proportionally, so every modality shows the same moment.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .common import DataFormatError, PathLike, _require_file
from .video import (
    Box,
    VideoBackend,
    check_box,
    decode_frames,
    decode_frames_each,
    probe_video,
)

__all__ = [
    "MEDIA_SUFFIXES",
    "VIDEO_SUFFIXES",
    "align_indices",
    "index_media",
    "media_num_frames",
    "read_media_frames",
    "read_media_frames_each",
]

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".webm", ".mov")
MEDIA_SUFFIXES = (*VIDEO_SUFFIXES, ".npy")


def index_media(root: PathLike, suffixes: Sequence[str] = MEDIA_SUFFIXES) -> dict[str, Path]:
    """Every media file under ``root`` (recursively), by file stem.

    Releases nest their videos differently (``imigue_rgb_train/<vid>_<k>.mp4``,
    ``SMG_RGB_Phase1/smg_rgb_train/Sample0001/Sample0001_color.mp4``), so clips
    are found by name wherever they lie.

    Args:
        root: folder to search.
        suffixes: file suffixes to index (lower case).

    Returns:
        stem -> path.

    Raises:
        FileNotFoundError: if ``root`` is not a folder.
        DataFormatError: if two files share a stem (the clip would be ambiguous).
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"media folder {root} does not exist")
    found: dict[str, Path] = {}
    for folder, _, files in os.walk(root):
        for name in files:
            path = Path(folder) / name
            if path.suffix.lower() not in suffixes:
                continue
            if path.stem in found:
                raise DataFormatError(
                    f"two media files for clip {path.stem!r} under {root}: "
                    f"{found[path.stem]} and {path}"
                )
            found[path.stem] = path
    return found


def media_num_frames(path: PathLike) -> int:
    """Number of frames of a video file or a ``.npy`` array (its first axis)."""
    path = Path(path)
    if path.suffix.lower() == ".npy":
        return int(_load_array(path).shape[0])
    return probe_video(path).num_frames


def read_media_frames(
    path: PathLike,
    indices: Sequence[int] | np.ndarray,
    *,
    backend: VideoBackend = "auto",
    threads: int | None = None,
) -> np.ndarray:
    """Frames of a video or array, by 0-based index (any order, repeats allowed).

    Args:
        path: video file or ``.npy`` array.
        indices: ``(N,)`` frame indices.
        backend: video decoder (:func:`mgr.data.readers.video.decode_frames`).
        threads: FFmpeg decoding threads (``None``: 1 in a DataLoader worker, else auto).

    Returns:
        ``(N, H, W, C)``: uint8 RGB for videos; the array's dtype for ``.npy``
        (a ``(T, H, W)`` array gets ``C = 1``).

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        DataFormatError: naming the file, for an index out of range, an array that
            is not 3-D or 4-D, or an unreadable video.
    """
    path = Path(path)
    idx = np.asarray(indices, dtype=np.int64)
    if path.suffix.lower() != ".npy":
        return decode_frames(path, idx.tolist(), backend=backend, threads=threads)
    arr = _load_array(path)
    if len(idx) and (idx.min() < 0 or idx.max() >= len(arr)):
        bad = int(idx[(idx < 0) | (idx >= len(arr))][0])
        raise DataFormatError(f"{path}: frame {bad} out of range (array has {len(arr)} frames)")
    frames = np.asarray(arr[idx])
    return frames[..., None] if frames.ndim == 3 else frames


def read_media_frames_each(
    path: PathLike,
    indices: Sequence[int] | np.ndarray,
    frame_fn: Callable[[Tensor], Tensor],
    *,
    box: Callable[[int, int], Box] | None = None,
    backend: VideoBackend = "auto",
    threads: int | None = None,
) -> Tensor:
    """:func:`read_media_frames` with ``frame_fn`` applied to each frame as it is read.

    For videos the full-resolution frames never exist together
    (:func:`mgr.data.readers.video.decode_frames_each`); for arrays only the indexed
    frames are read.

    Args:
        path: video file or ``.npy`` array.
        indices: ``(N,)`` frame indices.
        frame_fn: maps a ``(C, h, w)`` frame (uint8 RGB for videos, the array's dtype
            for ``.npy``) to a ``(C', h', w')`` tensor.
        box: maps the media's ``(H, W)`` to the region ``(top, left, height, width)``
            each frame is cut to before ``frame_fn`` (called once); ``None``: whole frames.
        backend: video decoder.
        threads: FFmpeg decoding threads (``None``: 1 in a DataLoader worker, else auto).

    Returns:
        ``(N, C', h', w')``.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        DataFormatError: as :func:`read_media_frames`.
        ValueError: if ``box`` gives a region that is empty or not inside the frame.
    """
    path = Path(path)
    if path.suffix.lower() != ".npy":
        idx = np.asarray(indices, dtype=np.int64).tolist()
        return decode_frames_each(path, idx, frame_fn, box=box, backend=backend, threads=threads)
    frames = read_media_frames(path, indices)  # (N, H, W, C)
    if box is not None:
        height, width = frames.shape[1:3]
        top, left, h, w = check_box(box(height, width), height, width, path)
        frames = frames[:, top : top + h, left : left + w]
    return torch.stack([frame_fn(torch.from_numpy(f).permute(2, 0, 1)) for f in frames])


def align_indices(indices: np.ndarray, src_frames: int, dst_frames: int) -> np.ndarray:
    """Map frame indices of a ``src_frames``-long clip onto a ``dst_frames``-long one.

    Frame ``i`` covers the time span ``[i, i + 1) / src_frames``; it maps to the
    destination frame whose span holds that span's start. Equal lengths map
    each index to itself.

    Args:
        indices: ``(N,)`` indices in ``0..src_frames-1``.
        src_frames: length of the clip the indices were sampled on.
        dst_frames: length of the other modality's clip.

    Returns:
        ``(N,)`` int64 indices in ``0..dst_frames-1``.
    """
    if src_frames < 1 or dst_frames < 1:
        raise ValueError(f"clip lengths must be positive, got {src_frames}, {dst_frames}")
    idx = np.asarray(indices, dtype=np.int64)
    return np.minimum(idx * dst_frames // src_frames, dst_frames - 1)


def _load_array(path: Path) -> np.ndarray:
    _require_file(path)
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as err:
        raise DataFormatError(f"{path}: not a readable .npy array ({err})") from err
    if arr.ndim not in (3, 4) or arr.shape[0] == 0:
        raise DataFormatError(
            f"{path}: expected a (T, H, W) or (T, H, W, C) array with T > 0, got shape {arr.shape}"
        )
    return arr
