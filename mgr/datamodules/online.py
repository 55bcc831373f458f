"""Untrimmed sequences (SMG, iMiGUE) for online micro-gesture detection.

Two inputs are served, chosen by ``features_dir``:

* raw skeletons (default): ``skeleton (B, C, T, V, 1)`` of normalised keypoints, one
  step per frame;
* recognizer features (``features_dir``, written by ``mgr extract-features``):
  ``features (B, D, N)``, one step per sliding window of the recognizer, at the
  window-centre rate (``stride`` frames per step). Step ``i`` owns the frames
  nearest to its window centre ``centers[i]`` (:func:`mgr.data.transforms.steps.step_boundaries`);
  instances are converted to the steps whose frames they cover
  (:func:`mgr.data.transforms.steps.frames_to_steps`) for training, and the detector converts
  its detections back to frames (:func:`mgr.data.transforms.steps.steps_to_frames`) with the
  ``centers (B, N)`` and ``num_frames (B,)`` of the batch, so evaluation and
  ``predict`` are in frames, comparable with the raw-skeleton detector.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, Dataset

from mgr.callbacks import seeded_train_sampler
from mgr.classes import get_classes
from mgr.data.readers.common import SequenceRecord, load_each
from mgr.data.readers.features import read_feature_meta, read_features
from mgr.data.readers.imigue import (
    IMIGUE_SPLIT_DIRS,
    MIGA_TEST_VIDEOS,
    MIGA_TRAIN_VIDEOS,
    MIGA_VAL_VIDEOS,
    _video_dirs,
    find_imigue_videos,
    load_imigue_sequence,
)
from mgr.data.readers.smg import SMG_SPLITS, find_smg_samples, load_smg_sequence
from mgr.data.samplers import ShuffleSampler, repetition_factors
from mgr.data.seeding import SeededDataset, loader_generator
from mgr.data.transforms.pose import normalize_skeleton
from mgr.data.transforms.steps import frames_to_steps
from mgr.datamodules.base import eval_shard_sampler
from mgr.datamodules.release import ensure_release
from mgr.protocols import Protocol
from mgr.skeletons import get_layout

__all__ = [
    "IMIGUE_NON_MG",
    "SMG_NON_MG",
    "FeatureSequence",
    "IMiGUEOnlineDataModule",
    "OnlineDataModule",
    "SMGOnlineDataModule",
    "SequenceWindows",
    "collate_sequences",
    "normalize_sequence",
]

log = logging.getLogger(__name__)

#: SMG's non-micro-gesture class (0-based; raw id 17, "Illustrative hand gestures").
SMG_NON_MG = 16
#: iMiGUE's non-micro-gesture class (0-based; raw id 99, "Illustrative body language").
IMIGUE_NON_MG = 31


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


class OnlineDataModule(LightningDataModule):
    """Base of the untrimmed-sequence datamodules: windows, repetition, features, loaders.

    Subclasses read a split's raw sequences (:meth:`read_sequences`) and
    normalise keypoints (:meth:`normalize`); this class drops non-MG
    instances if asked, swaps the keypoints for recognizer features with
    ``features_dir`` (see the module docstring) and serves the loaders.

    Args:
        root: release folder.
        non_mg: ``"detect"`` keeps the non-micro-gesture class as the last class;
            ``"background"`` drops its instances.
        window: frames per training window. With ``features_dir`` it is
            converted to ``ceil(window / stride)`` feature steps, so a config
            keeps its temporal context when it switches input.
        windows_per_sequence: training windows per sequence and epoch.
        repeat_alpha: rare-class repetition (online-recognition paper eq. 1):
            windows are centred on instances drawn with weight ``R_c`` (the
            class's repetition factor) instead of placed uniformly; ``None``: off.
        batch_size: training windows per batch (evaluation: one sequence per batch).
        num_workers: DataLoader workers.
        features_dir: a folder written by ``mgr extract-features`` (one
            ``<video>.npz`` per sequence + ``meta.json``): the detector's input
            becomes those features (``features (B, D, N)``); ``None``: raw skeletons.
        synthmg: ``root`` is a SynthMG release written with these settings (see
            :class:`~mgr.datamodules.base.MicroGestureDataModule`); ``None``: a real one.
        synthesize: write that SynthMG release when ``root`` is missing.
    """

    #: dataset key of :func:`mgr.classes.get_classes`.
    dataset: ClassVar[str]
    #: 0-based id of the non-micro-gesture class (the last class).
    non_mg_class: ClassVar[int]

    def __init__(
        self,
        root: str | Path,
        non_mg: Literal["detect", "background"] = "detect",
        window: int = 512,
        windows_per_sequence: int = 8,
        repeat_alpha: float | None = None,
        batch_size: int = 4,
        num_workers: int = 0,
        features_dir: str | Path | None = None,
        synthmg: dict[str, Any] | None = None,
        synthesize: bool = False,
    ) -> None:
        super().__init__()
        if non_mg not in ("detect", "background"):
            raise ValueError(f"non_mg must be 'detect' or 'background', got {non_mg!r}")
        if window < 8 or windows_per_sequence < 1 or batch_size < 1:
            raise ValueError("window >= 8, windows_per_sequence >= 1 and batch_size >= 1")
        self.root = Path(root)
        self.non_mg = non_mg
        self.window = window
        self.windows_per_sequence = windows_per_sequence
        self.repeat_alpha = repeat_alpha
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.features_dir = Path(features_dir) if features_dir is not None else None
        self.feature_meta: dict[str, Any] | None = None
        if self.features_dir is not None:
            self.feature_meta = read_feature_meta(self.features_dir)
            if self.feature_meta["source"]["dataset"] != self.dataset:
                raise ValueError(
                    f"{self.features_dir / 'meta.json'}: features of a "
                    f"{self.feature_meta['source']['dataset']!r} release, but "
                    f"{type(self).__name__} reads {self.dataset!r}"
                )
        self.sequences: dict[str, list[SequenceRecord]] = {}
        self.synthmg = dict(synthmg) if synthmg is not None else None
        self.synthesize = synthesize

    # ---------------------------------------------------------------- to override
    def read_sequences(self, split: str) -> list[SequenceRecord]:
        """A split's raw sequences (keypoints in the reader's layout, every instance)."""
        raise NotImplementedError

    def normalize(self, keypoint: np.ndarray) -> np.ndarray:
        """The detector's input normalisation of raw keypoints ``(T, V_parent, C)``."""
        raise NotImplementedError

    @property
    def num_channels(self) -> int:
        """Skeleton channels ``C``."""
        raise NotImplementedError

    @property
    def num_joints(self) -> int:
        """Skeleton joints ``V`` after :meth:`normalize`."""
        raise NotImplementedError

    # ---------------------------------------------------------------- properties
    @property
    def protocol_scheme(self) -> str:
        """How the splits were chosen (a key of :data:`mgr.protocols.SCHEMES`)."""
        return "official"

    def protocol(self, split: str) -> Protocol:
        """The evaluation protocol of one split, printed next to every metric."""
        synthetic = (Path(self.root) / "synthmg.json").is_file()
        return Protocol(
            self.dataset, self.protocol_scheme, split, task="online", synthetic=synthetic
        )

    @property
    def num_classes(self) -> int:
        """All classes with the non-MG class detected, one fewer without."""
        return self.non_mg_class + (1 if self.non_mg == "detect" else 0)

    @property
    def class_names(self) -> list[str]:
        """Class names, index = 0-based label."""
        return list(get_classes(self.dataset).names)[: self.num_classes]

    @property
    def input_key(self) -> Literal["skeleton", "features"]:
        """Batch key of the detector's input."""
        return "skeleton" if self.features_dir is None else "features"

    @property
    def in_channels(self) -> int:
        """Per-step input size of the detector: ``C * V``, or the feature size ``D``."""
        if self.feature_meta is not None:
            return int(self.feature_meta["dim"])
        return self.num_channels * self.num_joints

    @property
    def steps_window(self) -> int:
        """Training window in input steps (frames, or feature steps)."""
        if self.feature_meta is None:
            return self.window
        return max(1, math.ceil(self.window / int(self.feature_meta["stride"])))

    # ---------------------------------------------------------------- loading
    def prepare_data(self) -> None:
        """With ``synthesize``, write the SynthMG release at :attr:`root` if it is missing."""
        if self.synthesize:
            ensure_release(self.root, self.dataset, self.synthmg, True, type(self).__name__)

    def load_sequences(self, split: str) -> list[SequenceRecord]:
        """Read and normalise one split's sequences (cached); features with ``features_dir``."""
        if split in self.sequences:
            return self.sequences[split]
        ensure_release(self.root, self.dataset, self.synthmg, self.synthesize, type(self).__name__)
        out: list[SequenceRecord] = []
        for seq in self.read_sequences(split):
            if self.non_mg == "background":
                keep = seq.labels != self.non_mg_class
                seq.segments, seq.labels = seq.segments[keep], seq.labels[keep]
            if self.features_dir is None:
                seq.keypoint = self.normalize(seq.keypoint)
                out.append(seq)
            else:
                out.append(self._feature_sequence(seq))
        self.sequences[split] = out
        log.info("%s %s: %d sequences", type(self).__name__, split, len(out))
        return out

    def _feature_sequence(self, seq: SequenceRecord) -> FeatureSequence:
        assert self.features_dir is not None
        features, centers, num_frames = read_features(
            self.features_dir, seq.video_id, self.feature_meta
        )
        if num_frames != seq.num_frames:
            raise ValueError(
                f"{self.features_dir / (seq.video_id + '.npz')}: features of a "
                f"{num_frames}-frame sequence, but {seq.source} has {seq.num_frames} frames; "
                "re-run mgr extract-features on this release"
            )
        return FeatureSequence(
            video_id=seq.video_id,
            keypoint=features,
            segments=frames_to_steps(seq.segments, centers, num_frames),
            labels=seq.labels,
            source=seq.source,
            subject=seq.subject,
            centers=centers,
            total_frames=num_frames,
            frame_segments=seq.segments.astype(np.int64).reshape(-1, 2),
        )

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
            self.steps_window,
            train=train,
            windows_per_sequence=self.windows_per_sequence,
            instance_weights=self._instance_weights(sequences) if train else None,
        )

    def _loader(self, split: str) -> DataLoader:
        train = split == "train"
        dataset = self._dataset(split)
        kwargs: dict[str, Any] = {}
        if train:
            # Windows drawn from (seed, epoch, position): a resumed run draws the same
            # (mgr.data.seeding); the seed is seed_everything's.
            seed = int(os.environ.get("PL_GLOBAL_SEED", 0))
            order = ShuffleSampler(range(len(dataset)), seed=seed)
            kwargs["sampler"] = seeded_train_sampler(order, seed, self.trainer)
            kwargs["generator"] = loader_generator(seed)
            dataset = SeededDataset(dataset)
        else:
            # Evaluation: whole sequences, each on exactly one process under DDP.
            kwargs["sampler"] = eval_shard_sampler(self, dataset, 1, split)
        return DataLoader(
            dataset,
            batch_size=self.batch_size if train else 1,
            num_workers=self.num_workers,
            collate_fn=collate_sequences,
            persistent_workers=self.num_workers > 0,
            **kwargs,
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


class SMGOnlineDataModule(OnlineDataModule):
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
        window: frames per training window (see :class:`OnlineDataModule`).
        windows_per_sequence: training windows per sequence and epoch.
        repeat_alpha: rare-class repetition (see :class:`OnlineDataModule`).
        batch_size: training windows per batch (evaluation: one sequence per batch).
        num_workers: DataLoader workers.
        features_dir: recognizer features instead of raw skeletons (see
            :class:`OnlineDataModule`).
        synthmg: settings of the SynthMG release at ``root`` (see :class:`OnlineDataModule`).
        synthesize: write that SynthMG release when ``root`` is missing.
    """

    dataset = "smg"
    non_mg_class = SMG_NON_MG

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
        features_dir: str | Path | None = None,
        synthmg: dict[str, Any] | None = None,
        synthesize: bool = False,
    ) -> None:
        if split not in SMG_SPLITS:
            raise ValueError(f"split must be one of {sorted(SMG_SPLITS)}, got {split!r}")
        super().__init__(
            root,
            non_mg=non_mg,
            window=window,
            windows_per_sequence=windows_per_sequence,
            repeat_alpha=repeat_alpha,
            batch_size=batch_size,
            num_workers=num_workers,
            features_dir=features_dir,
            synthmg=synthmg,
            synthesize=synthesize,
        )
        self.split = split
        self.coords = coords
        self.end_inclusive = end_inclusive
        preset = SMG_SPLITS[split]
        self.subjects = {
            "train": list(train_subjects or preset["train"]),
            "val": list(val_subjects or preset["val"]),
            "test": list(test_subjects or preset["test"]),
        }
        self.layout = get_layout("kinect_v2_25")

    @property
    def protocol_scheme(self) -> str:
        """The subject preset ``split``, or ``"custom"`` when subjects were overridden."""
        preset = SMG_SPLITS[self.split]
        same = all(list(preset[s]) == self.subjects[s] for s in ("train", "val", "test"))
        return self.split if same else "custom"

    @property
    def num_channels(self) -> int:
        """Skeleton channels ``C``."""
        return 3 if self.coords == "world" else 2

    @property
    def num_joints(self) -> int:
        """Joints ``V`` (Kinect v2: 25)."""
        return self.layout.num_joints

    def normalize(self, keypoint: np.ndarray) -> np.ndarray:
        """SpineMid-centred per frame, in shoulder widths (:func:`normalize_sequence`)."""
        return normalize_sequence(keypoint)

    def read_sequences(self, split: str) -> list[SequenceRecord]:
        """The split's ``SampleXXXX`` sequences, raw."""
        samples = find_smg_samples(self.root)
        missing = [s for s in self.subjects[split] if s not in samples]
        if missing:
            raise FileNotFoundError(
                f"SMG subjects {missing} of split {split!r} have no Sample folder under "
                f"{self.root}; found subjects {list(samples)}"
            )
        return load_each(
            [samples[s] for s in self.subjects[split]],
            lambda folder: [
                load_smg_sequence(folder, coords=self.coords, end_inclusive=self.end_inclusive)
            ],
        )


_MIGA_VIDEOS = {"train": MIGA_TRAIN_VIDEOS, "val": MIGA_VAL_VIDEOS, "test": MIGA_TEST_VIDEOS}


class IMiGUEOnlineDataModule(OnlineDataModule):
    """Whole iMiGUE videos and their ``<vid>_label.csv`` instances, for temporal detection.

    The MiGA releases are per-video long sequences already (``datasets.md``
    §2.3, §2.6): ``<vid>_light_hand.csv`` (MiGA'23) or ``<vid>_openpose.xlsx``
    (MiGA'25) holds every frame of the video and ``<vid>_label.csv`` the
    instances' ``gid,start,end`` (0-based, inclusive; 99 = non-MG). SynthMG's
    iMiGUE layout writes the same (``gap_frames`` sets how untrimmed).

    A class of its own rather than a ``dataset`` switch on
    :class:`SMGOnlineDataModule`: the two releases share no reader option
    (subjects vs video-id splits, Kinect xyz vs OpenPose pixels with confidence,
    17 vs 32 classes), so one constructor would carry two sets of arguments
    that each apply to one dataset only.

    Keypoints (the ``keypoints`` subset of the release's layout) are centred on
    the layout's centre joint (the neck) in every frame and divided by the
    sequence's median shoulder width; the confidence channel is kept.

    Args:
        root: release folder (``imigue_skeleton_{train,validate,test}/<vid>/``).
        split_scheme: as :class:`~mgr.datamodules.IMiGUEDataModule`: ``"folders"``
            (the release's split folders), ``"miga"`` (MiGA'23 video-id lists) or
            ``"subjects"`` (the paper's cross-subject protocol, needs
            ``subject_map``; val = test).
        subject_map: csv/xlsx with ``Video_id`` and ``Sub_id`` columns.
        source: ``"miga23"`` (``_light_hand.csv``) or ``"miga25"`` (``_openpose.xlsx``).
        keypoints: keypoint subset (default: ``"imigue_miga_22"`` for MiGA'23,
            ``"mmgesture_36"`` for MiGA'25).
        non_mg: ``"detect"`` keeps the non-MG class (raw 99) as class 31 of 32;
            ``"background"`` drops its instances (31 classes).
        window: frames per training window (see :class:`OnlineDataModule`).
        windows_per_sequence: training windows per sequence and epoch.
        repeat_alpha: rare-class repetition (see :class:`OnlineDataModule`).
        batch_size: training windows per batch (evaluation: one sequence per batch).
        num_workers: DataLoader workers.
        features_dir: recognizer features instead of raw skeletons (see
            :class:`OnlineDataModule`).
        synthmg: settings of the SynthMG release at ``root`` (see :class:`OnlineDataModule`).
        synthesize: write that SynthMG release when ``root`` is missing.
    """

    dataset = "imigue"
    non_mg_class = IMIGUE_NON_MG

    def __init__(
        self,
        root: str | Path,
        split_scheme: Literal["folders", "miga", "subjects"] = "folders",
        subject_map: str | Path | None = None,
        source: Literal["miga23", "miga25"] = "miga23",
        keypoints: str | None = None,
        non_mg: Literal["detect", "background"] = "detect",
        window: int = 512,
        windows_per_sequence: int = 8,
        repeat_alpha: float | None = None,
        batch_size: int = 4,
        num_workers: int = 0,
        features_dir: str | Path | None = None,
        synthmg: dict[str, Any] | None = None,
        synthesize: bool = False,
    ) -> None:
        from mgr.datamodules.base import _shoulders

        if split_scheme not in ("folders", "miga", "subjects"):
            raise ValueError(
                f"split_scheme must be 'folders', 'miga' or 'subjects', got {split_scheme!r}"
            )
        if split_scheme == "subjects" and subject_map is None:
            raise ValueError("split_scheme='subjects' needs subject_map (Video_id -> Sub_id)")
        if source not in ("miga23", "miga25"):
            raise ValueError(f"source must be 'miga23' or 'miga25', got {source!r}")
        super().__init__(
            root,
            non_mg=non_mg,
            window=window,
            windows_per_sequence=windows_per_sequence,
            repeat_alpha=repeat_alpha,
            batch_size=batch_size,
            num_workers=num_workers,
            features_dir=features_dir,
            synthmg=synthmg,
            synthesize=synthesize,
        )
        self.split_scheme = split_scheme
        self.subject_map = subject_map
        self.source = source
        parent = "imigue_light_hand_35" if source == "miga23" else "openpose_137"
        default = "imigue_miga_22" if source == "miga23" else "mmgesture_36"
        self.layout = get_layout(keypoints or default)
        if self.layout.name != parent and self.layout.parent != parent:
            raise ValueError(f"keypoints={self.layout.name!r} is not a subset of {parent!r}")
        self._joints = list(self.layout.parent_indices) if self.layout.name != parent else None
        self._shoulders = _shoulders(self.layout)

    @property
    def protocol_scheme(self) -> str:
        """``split_scheme`` (see :data:`mgr.protocols.SCHEMES`)."""
        return self.split_scheme

    @property
    def num_channels(self) -> int:
        """Skeleton channels ``C``: x, y, confidence."""
        return 3

    @property
    def num_joints(self) -> int:
        """Joints ``V`` of the keypoint subset."""
        return self.layout.num_joints

    def normalize(self, keypoint: np.ndarray) -> np.ndarray:
        """Subset, then centre-joint-centred per frame, in shoulder widths."""
        kp = keypoint if self._joints is None else keypoint[:, self._joints]
        return normalize_skeleton(
            kp, self.layout.center, score_channel=2, scale_joints=self._shoulders,
            center_mode="frame",
        ).astype(np.float32)  # fmt: skip

    def _split_videos(self, split: str) -> dict[str, Path]:
        if self.split_scheme == "folders":
            split_dir = self.root / IMIGUE_SPLIT_DIRS[split]
            if not split_dir.is_dir():
                raise FileNotFoundError(
                    f"iMiGUE {split!r} split folder {split_dir} not found under {self.root}"
                )
            return _video_dirs(split_dir)
        from mgr.datamodules.imigue import (
            IMIGUE_TEST_SUBJECTS,
            IMIGUE_TRAIN_SUBJECTS,
            read_subject_map,
        )

        found = find_imigue_videos(self.root)
        if self.split_scheme == "miga":
            wanted = list(_MIGA_VIDEOS[split])
        else:
            subjects = read_subject_map(self.subject_map)  # type: ignore[arg-type]
            keep = set(IMIGUE_TRAIN_SUBJECTS if split == "train" else IMIGUE_TEST_SUBJECTS)
            wanted = sorted(v for v, s in subjects.items() if s in keep)
        videos = {v: found[v] for v in wanted if v in found}
        if not videos:
            raise FileNotFoundError(
                f"none of the {len(wanted)} {self.split_scheme} {split} videos were found "
                f"under {self.root}"
            )
        return videos

    def read_sequences(self, split: str) -> list[SequenceRecord]:
        """The split's videos, raw (parent layout, every instance)."""
        return load_each(
            self._split_videos(split).values(),
            lambda path: [load_imigue_sequence(path, source=self.source)],
        )
