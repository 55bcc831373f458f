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

The base class is in :mod:`.online_base`, the windows Dataset in
:mod:`mgr.data.sequences`; their names stay importable here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np

from mgr.data.readers.common import SequenceRecord, load_each
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
from mgr.data.sequences import (
    FeatureSequence,
    SequenceWindows,
    collate_sequences,
    normalize_sequence,
)
from mgr.data.transforms.pose import normalize_skeleton
from mgr.skeletons import get_layout

from .online_base import OnlineDataModule

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


#: SMG's non-micro-gesture class (0-based; raw id 17, "Illustrative hand gestures").
SMG_NON_MG = 16
#: iMiGUE's non-micro-gesture class (0-based; raw id 99, "Illustrative body language").
IMIGUE_NON_MG = 31


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
