"""Untrimmed sequences as training windows: the Dataset and collate of online detection.

:class:`SequenceWindows` cuts fixed-length windows (training) or serves whole
sequences (evaluation) of raw skeletons or of recognizer features
(:class:`FeatureSequence`); :func:`collate_sequences` pads them into a batch.
The online datamodules (:mod:`mgr.datamodules.online`) build them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from mgr.data.readers.common import SequenceRecord
from mgr.data.transforms.pose import normalize_skeleton
from mgr.skeletons import get_layout

__all__ = ["FeatureSequence", "SequenceWindows", "collate_sequences", "normalize_sequence"]


def normalize_sequence(keypoint: np.ndarray) -> np.ndarray:
    """Kinect-v2 keypoints ``(T, 25, C)`` centred on SpineMid per frame, in shoulder widths.

    The detector's input normalisation, shared by the datamodule and ``mgr detect``.
    """
    layout = get_layout("kinect_v2_25")
    shoulders = (layout.joints.index("ShoulderLeft"), layout.joints.index("ShoulderRight"))
    return normalize_skeleton(
        keypoint, layout.center, scale_joints=shoulders, center_mode="frame"
    ).astype(np.float32)


@dataclass
class FeatureSequence(SequenceRecord):
    """A sequence as recognizer features: one step per sliding window.

    ``keypoint`` holds the features ``(N, D)`` (so window logic is shared with raw
    sequences) and ``segments`` the instances in steps (inclusive).

    Attributes:
        centers: ``(N,)`` frame of each window centre.
        total_frames: frames of the underlying video.
        frame_segments: ``(G, 2)`` the instances in frames (inclusive ends).
    """

    centers: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    total_frames: int = 0
    frame_segments: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.int64))


class SequenceWindows(Dataset):
    """Fixed-length windows of untrimmed sequences with the instances inside them.

    Training draws ``windows_per_sequence`` random windows per sequence and
    epoch; with ``instance_weights`` a window is placed around an instance drawn
    with those weights (rare-class repetition), else uniformly. Instances cut by
    the window are clipped to it and kept if at least ``min_overlap`` of them
    remains. Evaluation serves each whole sequence once.

    Items: ``skeleton (C, T, V, 1)`` (or, for :class:`FeatureSequence`,
    ``features (D, N)``), ``mask (T,)`` bool, ``segments (G, 2)`` int64
    (inclusive, window steps), ``labels (G,)``, ``video_id``, ``offset`` (first
    step of the window in the sequence). Feature sequences add ``centers (T,)``,
    ``num_frames`` and ``frame_segments (G, 2)`` (whole sequences only: the
    frame-unit instances scored at evaluation).

    Args:
        sequences: the untrimmed sequences (keypoints already normalised).
        window: steps (frames, or feature steps) per training window (sequences
            are padded up to it).
        train: random windows (training) or whole sequences.
        windows_per_sequence: training windows per sequence and epoch.
        instance_weights: per sequence, ``(G,)`` weights of centring a window on
            each instance; ``None``: uniformly placed windows.
        min_overlap: fraction of an instance that must lie inside a window.
    """

    def __init__(
        self,
        sequences: Sequence[SequenceRecord],
        window: int,
        train: bool,
        windows_per_sequence: int = 8,
        instance_weights: Sequence[np.ndarray] | None = None,
        min_overlap: float = 0.5,
    ) -> None:
        self.sequences = list(sequences)
        self.window = window
        self.train = train
        self.windows_per_sequence = windows_per_sequence
        self.instance_weights = instance_weights
        self.min_overlap = min_overlap

    def __len__(self) -> int:
        return len(self.sequences) * (self.windows_per_sequence if self.train else 1)

    def __getitem__(self, index: int) -> dict[str, Any]:
        seq = self.sequences[index % len(self.sequences)]
        start, stop = 0, seq.num_frames
        if self.train and seq.num_frames > self.window:
            rng = np.random.default_rng(int(torch.randint(2**62, ())))
            weights = (
                None
                if self.instance_weights is None
                else self.instance_weights[index % len(self.sequences)]
            )
            if weights is not None and len(seq.segments) and weights.sum() > 0:
                k = rng.choice(len(seq.segments), p=weights / weights.sum())
                s, e = seq.segments[k]
                # Any window that contains the instance (or the instance's centre, if longer).
                lo = max(0, min(int(e) - self.window + 1, (int(s) + int(e)) // 2))
                hi = min(seq.num_frames - self.window, max(int(s), (int(s) + int(e)) // 2))
                start = int(rng.integers(lo, max(hi, lo) + 1))
            else:
                start = int(rng.integers(0, seq.num_frames - self.window + 1))
            stop = start + self.window
        kp = seq.keypoint[start:stop]
        segments, labels = self._clip(seq, start, stop)
        length = len(kp)
        if self.train and length < self.window:  # pad short sequences to the window
            kp = np.concatenate([kp, np.zeros((self.window - length, *kp.shape[1:]), kp.dtype)])
        mask = torch.zeros(len(kp), dtype=torch.bool)
        mask[:length] = True
        item: dict[str, Any] = {
            "mask": mask,
            "segments": torch.from_numpy(segments),
            "labels": torch.from_numpy(labels),
            "video_id": seq.video_id,
            "offset": start,
        }
        if isinstance(seq, FeatureSequence):
            item["features"] = torch.from_numpy(np.ascontiguousarray(kp.T))  # (D, T)
            centers = np.zeros(len(kp), np.int64)
            centers[:length] = seq.centers[start:stop]
            item["centers"] = torch.from_numpy(centers)
            item["num_frames"] = seq.total_frames
            whole = start == 0 and stop >= seq.num_frames
            # Frame-unit instances only make sense for the whole sequence (evaluation).
            item["frame_segments"] = torch.from_numpy(
                seq.frame_segments if whole else np.zeros((0, 2), np.int64)
            )
        else:
            item["skeleton"] = torch.from_numpy(
                np.ascontiguousarray(kp.transpose(2, 0, 1)[..., None])
            )
        return item

    def _clip(self, seq: SequenceRecord, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """Instances inside ``[start, stop)``, clipped, in window steps."""
        seg = seq.segments.astype(np.int64)
        clipped = np.stack([np.maximum(seg[:, 0], start), np.minimum(seg[:, 1], stop - 1)], 1)
        inside = (clipped[:, 1] - clipped[:, 0] + 1) >= self.min_overlap * (
            seg[:, 1] - seg[:, 0] + 1
        )
        inside &= clipped[:, 1] >= clipped[:, 0]
        return (clipped[inside] - start).reshape(-1, 2), seq.labels[inside].astype(np.int64)


def collate_sequences(samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Pad sequences to the longest in the batch; instances stay lists (one tensor per item).

    Returns:
        ``skeleton (B, C, T, V, 1)`` or ``features (B, D, T)``, ``mask (B, T)``,
        ``segments`` and ``labels`` (lists of ``(G_i, 2)`` / ``(G_i,)``),
        ``video_id`` (list), ``offset (B,)``; with features also ``centers (B, T)``
        (0 in the padding), ``num_frames (B,)`` and ``frame_segments`` (list).
    """
    key = "features" if "features" in samples[0] else "skeleton"
    length = max(s[key].shape[1] for s in samples)
    first = samples[0][key]
    inputs = torch.zeros(len(samples), first.shape[0], length, *first.shape[2:])
    mask = torch.zeros(len(samples), length, dtype=torch.bool)
    for i, s in enumerate(samples):
        t = s[key].shape[1]
        inputs[i, :, :t] = s[key]
        mask[i, :t] = s["mask"]
    batch = {
        key: inputs,
        "mask": mask,
        "segments": [s["segments"] for s in samples],
        "labels": [s["labels"] for s in samples],
        "video_id": [s["video_id"] for s in samples],
        "offset": torch.tensor([s["offset"] for s in samples], dtype=torch.long),
    }
    if key == "features":
        centers = torch.zeros(len(samples), length, dtype=torch.long)
        for i, s in enumerate(samples):
            centers[i, : len(s["centers"])] = s["centers"]
        batch["centers"] = centers
        batch["num_frames"] = torch.tensor([s["num_frames"] for s in samples], dtype=torch.long)
        batch["frame_segments"] = [s["frame_segments"] for s in samples]
    return batch
