"""Untrimmed SMG sequences for online micro-gesture detection."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, Dataset

from mgr.classes import get_classes
from mgr.data.readers.common import SequenceRecord
from mgr.data.readers.smg import SMG_SPLITS, find_smg_samples, load_smg_sequence
from mgr.data.samplers import repetition_factors
from mgr.data.transforms.pose import normalize_skeleton
from mgr.skeletons import get_layout

__all__ = ["SMGOnlineDataModule", "SequenceWindows", "collate_sequences", "normalize_sequence"]

log = logging.getLogger(__name__)

#: SMG's non-micro-gesture class (0-based; raw id 17, "Illustrative hand gestures").
SMG_NON_MG = 16


def normalize_sequence(keypoint: np.ndarray) -> np.ndarray:
    """Kinect-v2 keypoints ``(T, 25, C)`` centred on SpineMid per frame, in shoulder widths.

    The detector's input normalisation, shared by the datamodule and ``mgr detect``.
    """
    layout = get_layout("kinect_v2_25")
    shoulders = (layout.joints.index("ShoulderLeft"), layout.joints.index("ShoulderRight"))
    return normalize_skeleton(
        keypoint, layout.center, scale_joints=shoulders, center_mode="frame"
    ).astype(np.float32)


class SequenceWindows(Dataset):
    """Fixed-length windows of untrimmed sequences with the instances inside them.

    Training draws ``windows_per_sequence`` random windows per sequence and
    epoch; with ``instance_weights`` a window is placed around an instance drawn
    with those weights (rare-class repetition), else uniformly. Instances cut by
    the window are clipped to it and kept if at least ``min_overlap`` of them
    remains. Evaluation serves each whole sequence once.

    Items: ``skeleton (C, T, V, 1)``, ``mask (T,)`` bool, ``segments (G, 2)``
    int64 (inclusive, window frames), ``labels (G,)``, ``video_id``, ``offset``
    (first frame of the window in the sequence).

    Args:
        sequences: the untrimmed sequences (keypoints already normalised).
        window: frames per training window (sequences are padded up to it).
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
        return {
            "skeleton": torch.from_numpy(np.ascontiguousarray(kp.transpose(2, 0, 1)[..., None])),
            "mask": mask,
            "segments": torch.from_numpy(segments),
            "labels": torch.from_numpy(labels),
            "video_id": seq.video_id,
            "offset": start,
        }

    def _clip(self, seq: SequenceRecord, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """Instances inside ``[start, stop)``, clipped, in window frames."""
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
        ``skeleton (B, C, T, V, 1)``, ``mask (B, T)``, ``segments`` and ``labels``
        (lists of ``(G_i, 2)`` / ``(G_i,)``), ``video_id`` (list), ``offset (B,)``.
    """
    length = max(s["skeleton"].shape[1] for s in samples)
    skeleton = torch.zeros(len(samples), *samples[0]["skeleton"].shape[:1], length,
                           *samples[0]["skeleton"].shape[2:])  # fmt: skip
    mask = torch.zeros(len(samples), length, dtype=torch.bool)
    for i, s in enumerate(samples):
        t = s["skeleton"].shape[1]
        skeleton[i, :, :t] = s["skeleton"]
        mask[i, :t] = s["mask"]
    return {
        "skeleton": skeleton,
        "mask": mask,
        "segments": [s["segments"] for s in samples],
        "labels": [s["labels"] for s in samples],
        "video_id": [s["video_id"] for s in samples],
        "offset": torch.tensor([s["offset"] for s in samples], dtype=torch.long),
    }


class SMGOnlineDataModule(LightningDataModule):
    """Whole SMG sequences and their micro-gesture instances, for temporal detection.

    Reads the raw SMG layout (``SampleXXXX/SampleXXXX_{skeleton,finelabels}.csv``;
    SynthMG writes it) with the cross-subject splits of :class:`SMGDataModule`.
    Keypoints are centred on SpineMid in every frame and divided by the
    sequence's median shoulder width, so the detector sees the body's motion,
    not where the subject sits.

    Args:
        root: release folder.
        split: ``"miga"`` (1-30 / 31-35 / 36-40) or ``"official"`` (1-35 / 36-40;
            val = test).
        coords: ``"world"`` (Kinect xyz) or ``"pixel"`` (colour-image xy).
        end_inclusive: whether a finelabels end frame belongs to the instance.
        train_subjects: override the preset's training subjects.
        val_subjects: override the preset's validation subjects.
        test_subjects: override the preset's test subjects.
        non_mg: the non-micro-gesture class (SMG raw id 17): ``"detect"`` keeps it
            as class 16 of 17, as the SMG start kit (``class_count 17``) and the
            online-recognition paper (17 categories) do; ``"background"`` drops its
            instances, leaving 16 classes of micro-gestures to detect.
        window: frames per training window.
        windows_per_sequence: training windows per sequence and epoch.
        repeat_alpha: rare-class repetition (online-recognition paper eq. 1):
            windows are centred on instances drawn with weight ``R_c`` (the
            class's repetition factor) instead of placed uniformly; ``None``: off.
        batch_size: training windows per batch (evaluation: one sequence per batch).
        num_workers: DataLoader workers.
    """

    dataset = "smg"

    def __init__(
        self,
        root: str | Path,
        split: Literal["miga", "official"] = "miga",
        coords: Literal["world", "pixel"] = "world",
        end_inclusive: bool = False,
        train_subjects: list[int] | None = None,
        val_subjects: list[int] | None = None,
        test_subjects: list[int] | None = None,
        non_mg: Literal["detect", "background"] = "detect",
        window: int = 512,
        windows_per_sequence: int = 8,
        repeat_alpha: float | None = None,
        batch_size: int = 4,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        if split not in SMG_SPLITS:
            raise ValueError(f"split must be one of {sorted(SMG_SPLITS)}, got {split!r}")
        if non_mg not in ("detect", "background"):
            raise ValueError(f"non_mg must be 'detect' or 'background', got {non_mg!r}")
        if window < 8 or windows_per_sequence < 1 or batch_size < 1:
            raise ValueError("window >= 8, windows_per_sequence >= 1 and batch_size >= 1")
        self.root = Path(root)
        self.coords = coords
        self.end_inclusive = end_inclusive
        preset = SMG_SPLITS[split]
        self.subjects = {
            "train": list(train_subjects or preset["train"]),
            "val": list(val_subjects or preset["val"]),
            "test": list(test_subjects or preset["test"]),
        }
        self.non_mg = non_mg
        self.window = window
        self.windows_per_sequence = windows_per_sequence
        self.repeat_alpha = repeat_alpha
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.layout = get_layout("kinect_v2_25")
        self.sequences: dict[str, list[SequenceRecord]] = {}

    @property
    def num_classes(self) -> int:
        """17 with the non-MG class detected, 16 without."""
        return 17 if self.non_mg == "detect" else 16

    @property
    def class_names(self) -> list[str]:
        """Class names, index = 0-based label."""
        return list(get_classes("smg").names)[: self.num_classes]

    @property
    def num_channels(self) -> int:
        """Skeleton channels ``C``."""
        return 3 if self.coords == "world" else 2

    @property
    def num_joints(self) -> int:
        """Joints ``V`` (Kinect v2: 25)."""
        return self.layout.num_joints

    def load_sequences(self, split: str) -> list[SequenceRecord]:
        """Read and normalise one split's sequences (cached)."""
        if split in self.sequences:
            return self.sequences[split]
        samples = find_smg_samples(self.root)
        missing = [s for s in self.subjects[split] if s not in samples]
        if missing:
            raise FileNotFoundError(
                f"SMG subjects {missing} of split {split!r} have no Sample folder under "
                f"{self.root}; found subjects {list(samples)}"
            )
        out = []
        for s in self.subjects[split]:
            seq = load_smg_sequence(
                samples[s], coords=self.coords, end_inclusive=self.end_inclusive
            )
            if self.non_mg == "background":
                keep = seq.labels != SMG_NON_MG
                seq.segments, seq.labels = seq.segments[keep], seq.labels[keep]
            seq.keypoint = normalize_sequence(seq.keypoint)
            out.append(seq)
        self.sequences[split] = out
        log.info("%s %s: %d sequences", type(self).__name__, split, len(out))
        return out

    def _instance_weights(self, sequences: list[SequenceRecord]) -> list[np.ndarray] | None:
        if self.repeat_alpha is None:
            return None
        labels = np.concatenate([s.labels for s in sequences])
        factors = repetition_factors(labels, self.num_classes, alpha=self.repeat_alpha)
        return [factors[s.labels].astype(np.float64) for s in sequences]

    def _dataset(self, split: str) -> SequenceWindows:
        sequences = self.load_sequences(split)
        train = split == "train"
        return SequenceWindows(
            sequences,
            self.window,
            train=train,
            windows_per_sequence=self.windows_per_sequence,
            instance_weights=self._instance_weights(sequences) if train else None,
        )

    def _loader(self, split: str) -> DataLoader:
        train = split == "train"
        return DataLoader(
            self._dataset(split),
            batch_size=self.batch_size if train else 1,
            shuffle=train,
            num_workers=self.num_workers,
            collate_fn=collate_sequences,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        """Random windows of the training sequences."""
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        """Whole validation sequences, one per batch."""
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        """Whole test sequences, one per batch."""
        return self._loader("test")

    def predict_dataloader(self) -> DataLoader:
        """Whole test sequences, one per batch."""
        return self._loader("test")
