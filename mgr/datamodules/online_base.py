"""The base of the online datamodules: splits of untrimmed sequences -> window loaders.

See :mod:`mgr.datamodules.online` for the two inputs (raw skeletons, recognizer
features) and the datasets' subclasses.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader

from mgr.callbacks import seeded_train_sampler
from mgr.classes import get_classes
from mgr.data.readers.common import SequenceRecord
from mgr.data.readers.features import read_feature_meta, read_features
from mgr.data.samplers import ShuffleSampler, repetition_factors
from mgr.data.seeding import SeededDataset, loader_generator
from mgr.data.sequences import FeatureSequence, SequenceWindows, collate_sequences
from mgr.data.transforms.steps import frames_to_steps
from mgr.protocols import Protocol

from .base import eval_shard_sampler
from .release import ensure_release, is_synthmg_release

__all__ = ["OnlineDataModule"]


log = logging.getLogger(__name__)


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
        synthetic = is_synthmg_release(self.root)
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
