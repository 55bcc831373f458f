"""Feature steps <-> frames of a long sequence (sliding windows of a recognizer).

``mgr extract-features`` (:mod:`mgr.features`) computes one feature per window of
``window`` frames every ``stride`` frames (:func:`window_starts`); window ``i`` is
step ``i``, centred on frame ``centers[i]``. Step ``i`` owns the frames nearest to
its centre, ``[b_i, b_{i+1})`` with :func:`step_boundaries`; an instance maps to the
steps whose frames it touches (:func:`frames_to_steps`, the online datamodules'
targets) and a detection ``[a, b)`` in steps to frames ``[b_a, b_b)``
(:func:`steps_to_frames`, the detector's output; linear between boundaries for
fractional steps).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

__all__ = ["frames_to_steps", "step_boundaries", "steps_to_frames", "window_starts"]


def window_starts(num_frames: int, window: int, stride: int) -> np.ndarray:
    """First frames ``(N,)`` of the windows: ``0, stride, ...`` while ``start + window <= T``.

    A sequence shorter than ``window`` gets one window at 0 (the transform samples
    it up to the recognizer's clip length).
    """
    if window < 1 or stride < 1:
        raise ValueError(f"window and stride must be >= 1, got {window}, {stride}")
    if num_frames < 1:
        raise ValueError("a sequence needs at least one frame")
    return np.arange(0, max(num_frames - window, 0) + 1, stride, dtype=np.int64)


def step_boundaries(centers: np.ndarray, num_frames: int) -> np.ndarray:
    """Frame boundaries ``(N + 1,)``: step ``i`` owns frames ``[b[i], b[i + 1])``.

    Boundaries lie half-way between neighbouring centres; the first step starts
    at frame 0 and the last ends at ``num_frames``.
    """
    centers = np.asarray(centers, dtype=np.int64)
    mids = (centers[:-1] + centers[1:] + 1) // 2
    return np.concatenate([[0], mids, [num_frames]]).astype(np.int64)


def frames_to_steps(segments: np.ndarray, centers: np.ndarray, num_frames: int) -> np.ndarray:
    """Instances ``(G, 2)`` in frames (inclusive ends) -> ``(G, 2)`` steps (inclusive ends).

    An instance covers every step whose frames it touches.
    """
    seg = np.asarray(segments, dtype=np.int64).reshape(-1, 2)
    bounds = step_boundaries(centers, num_frames)
    last = len(centers) - 1
    start = np.clip(np.searchsorted(bounds, seg[:, 0], side="right") - 1, 0, last)
    end = np.clip(np.searchsorted(bounds, seg[:, 1], side="right") - 1, 0, last)
    return np.stack([start, np.maximum(end, start)], 1).astype(np.int64)


def steps_to_frames(segments: Tensor, centers: Tensor, num_frames: int) -> Tensor:
    """Detections ``(D, 2)`` ``[start, end)`` in steps (float) -> ``[start, end)`` in frames.

    Integer steps land on :func:`step_boundaries`; fractional ones in between, linearly.
    """
    bounds = torch.as_tensor(
        step_boundaries(centers.cpu().numpy(), num_frames), dtype=torch.float32
    ).to(segments.device)
    x = segments.float().clamp(0, len(bounds) - 1)
    lo = x.floor().long().clamp(max=len(bounds) - 2)
    frac = x - lo
    return bounds[lo] + frac * (bounds[lo + 1] - bounds[lo])
