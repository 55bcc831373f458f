"""Unlabelled video clips for self-supervised pretraining (:class:`mgr.models.VideoMAE`).

Masked video modelling needs no labels, so it can read every clip a release has:
all splits of any number of datamodules (iMiGUE + SMG + MA-52 together), the
untrimmed sequences those clips were cut from, and any folder of videos.
Batches carry ``video (B, C, T, H, W)`` and ``sample_id`` only: labels are
dropped so that nothing downstream can read them.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from lightning.pytorch import LightningDataModule
from torch.utils.data import ConcatDataset, DataLoader, Dataset

from mgr.data.datasets import (
    ClipDataset,
    SkeletonClipDataset,
    SkeletonTransformConfig,
    VideoOptions,
)
from mgr.data.readers.common import ClipRecord
from mgr.data.readers.media import VIDEO_SUFFIXES, index_media, media_num_frames
from mgr.data.transforms.video import VIDEO_RECIPE_KEYS
from mgr.options import coerce_options

from .base import MicroGestureDataModule, Split, collate

__all__ = ["UnlabeledDataModule", "untrimmed_windows", "video_windows"]

log = logging.getLogger(__name__)

#: batch keys an unlabelled item keeps.
_KEEP = ("video", "sample_id")


class _Unlabeled(Dataset):
    """Drops everything but the video and the sample id from the items of a dataset."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = self.dataset[index]
        # The uint8 video's recipe travels too: on_after_batch_transfer finishes it.
        return {k: item[k] for k in (*_KEEP, *VIDEO_RECIPE_KEYS) if k in item}


def video_windows(
    path: str | Path,
    window: int,
    *,
    num_frames: int | None = None,
    keypoint: np.ndarray | None = None,
    video_id: str | None = None,
) -> list[ClipRecord]:
    """Consecutive non-overlapping windows of a long video, as unlabelled clip records.

    Args:
        path: the video file.
        window: frames per window (the last, shorter remainder is dropped; a video
            shorter than ``window`` is one window).
        num_frames: the video's frame count (``None``: probed).
        keypoint: ``(T_k, V, C)`` keypoints whose person box crops every window
            (``saliency`` crops; e.g. all annotated clips of the video), resampled
            to ``window`` frames; ``None``: no keypoints (centre crops).
        video_id: id of the video (default: the file stem).

    Returns:
        Records with ``label = -1``, ``video_start``/``video_end`` the window's
        frames and ``sample_id = "<video_id>@<first frame>"``.
    """
    path = Path(path)
    total = media_num_frames(path) if num_frames is None else num_frames
    video_id = video_id or path.stem
    span = min(window, total)
    records = []
    for start in range(0, total - span + 1, max(1, span)):
        kp = None
        if keypoint is not None and len(keypoint):
            kp = keypoint[np.linspace(0, len(keypoint) - 1, span).round().astype(int)]
        records.append(
            ClipRecord(
                sample_id=f"{video_id}@{start}",
                label=-1,
                keypoint=kp,
                video_id=video_id,
                start=start,
                end=start + span - 1,
                source=str(path),
                video=str(path),
                video_start=start,
                video_end=start + span - 1,
            )
        )
    return records


def untrimmed_windows(
    records: Sequence[ClipRecord], index: dict[str, Path], window: int
) -> tuple[list[ClipRecord], list[str]]:
    """Windows of the long videos the clips were cut from.

    A clip whose ``video_end`` is set lies inside a long video (SMG), which is
    that video; otherwise the long video is looked up in ``index`` by the clip's
    ``video_id`` (``<vid>.mp4`` or ``<vid>_color.mp4``). The person box of each
    window is the box of all the video's annotated clips (keypoints of seated
    subjects barely move), so saliency crops apply to unannotated frames too.

    Args:
        records: clip records (with ``video_id``, keypoints if any).
        index: stem -> path of candidate long videos (:func:`~mgr.data.readers.media.index_media`).
        window: frames per window.

    Returns:
        ``(windows, video ids without a long video)``.
    """
    by_video: dict[str, list[ClipRecord]] = defaultdict(list)
    for rec in records:
        by_video[rec.video_id].append(rec)
    windows: list[ClipRecord] = []
    missing: list[str] = []
    for vid, clips in by_video.items():
        inside = [r for r in clips if r.video is not None and r.video_end is not None]
        if inside:
            path: Path | None = Path(inside[0].video)
        else:
            path = next((index[n] for n in (vid, f"{vid}_color") if n in index), None)
        if path is None:
            missing.append(vid)
            continue
        kps = [r.keypoint for r in clips if r.keypoint is not None]
        keypoint = np.concatenate(kps) if kps else None
        windows += video_windows(path, window, keypoint=keypoint, video_id=vid)
    return windows, missing


class UnlabeledDataModule(LightningDataModule):
    """Every clip of several releases and folders, without labels (VideoMAE pretraining).

    Three kinds of input, in any combination:

    * ``sources``: datamodules (``modalities: [video]``) whose ``splits`` are read
      in full, each clip transformed as that datamodule trains (random temporal
      sampling, flips, its crop: saliency or centre);
    * ``untrimmed``: windows of ``window`` frames covering the long videos the
      sources' clips were cut from (SMG's ``SampleXXXX_color.mp4``; for iMiGUE a
      ``<vid>.mp4`` under ``untrimmed_root``: SynthMG writes them with
      ``--untrimmed-video``), cropped to the person box of the video's clips;
    * ``root``: a folder of any videos (searched recursively), cut into windows
      of ``window`` frames and centre-cropped.

    Args:
        root: folder of extra unlabelled videos, or ``None``.
        sources: datamodules whose clips are read, or ``None``.
        splits: the sources' splits to read (labels are never used).
        untrimmed: also read windows of the sources' untrimmed videos.
        untrimmed_root: folder searched for long videos by video id; ``None``:
            each source's video root.
        window: frames per window of untrimmed and folder videos (the clip's
            ``clip_len`` frames are sampled uniformly inside it).
        clip_len: frames per clip of folder videos; ``None``: the first source's.
        video: frame options of folder videos (``crop`` must be ``"center"``);
            ``None``: the first source's with a centre crop. A dict of
            :class:`~mgr.data.datasets.VideoOptions` fields is checked as the CLI checks it.
        flip_prob: random horizontal flips of folder videos.
        batch_size: clips per batch.
        num_workers: DataLoader worker processes.
        pin_memory: pin host memory in the loader.
        drop_last: drop the last incomplete batch (VideoMAE does).
    """

    def __init__(
        self,
        root: str | Path | None = None,
        sources: list[MicroGestureDataModule] | None = None,
        splits: list[Split] | None = None,
        untrimmed: bool = False,
        untrimmed_root: str | Path | None = None,
        window: int = 32,
        clip_len: int | None = None,
        video: VideoOptions | None = None,
        flip_prob: float = 0.5,
        batch_size: int = 32,
        num_workers: int = 0,
        pin_memory: bool = False,
        drop_last: bool = True,
    ) -> None:
        super().__init__()
        self.sources = list(sources or [])
        if root is None and not self.sources:
            raise ValueError("UnlabeledDataModule needs sources and/or root (a folder of videos)")
        self.splits: tuple[Split, ...] = tuple(splits or ("train", "val", "test"))
        bad = [s for s in self.splits if s not in ("train", "val", "test")]
        if bad:
            raise ValueError(f"splits must be among train, val, test; got {bad}")
        for src in self.sources:
            if tuple(src.modalities) != ("video",):
                raise ValueError(
                    f"{type(src).__name__} source supplies {list(src.modalities)}: "
                    "pretraining sources need modalities: [video]"
                )
        if untrimmed and not self.sources:
            raise ValueError("untrimmed windows are cut around the sources' clips: add sources")
        if window < 1 or batch_size < 1:
            raise ValueError("window and batch_size must be positive")
        self.root = Path(root) if root is not None else None
        self.untrimmed = untrimmed
        self.untrimmed_root = Path(untrimmed_root) if untrimmed_root is not None else None
        self.window = window
        first = self.sources[0] if self.sources else None
        self.clip_len = clip_len or (first.clip_len if first else 16)
        video = coerce_options(VideoOptions, video, "video")
        if video is None:
            video = VideoOptions(crop="center") if first is None else first.video
            video = dataclasses.replace(video, crop="center", root=None)
        if video.crop != "center":
            raise ValueError("folder videos have no keypoints: video.crop must be 'center'")
        self.video = video
        self.flip_prob = flip_prob
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.drop_last = drop_last
        self.parts: dict[str, Dataset] = {}
        self.dataset: Dataset | None = None

    # The CLI links the data's class list into the model; pretraining has none.
    num_classes = None
    class_names = None

    @property
    def supplies(self) -> tuple[str, ...]:
        """Batch keys: ``video`` and ``sample_id`` (no labels)."""
        return _KEEP

    def _check_shapes(self) -> None:
        """Every part must give clips of the same frames and size (they share batches)."""
        shapes = {
            f"{i}:{type(s).__name__}({s.root})": (s.video.clip_len or s.clip_len, s.video.size)
            for i, s in enumerate(self.sources)
        }
        if self.root is not None:
            shapes[f"root {self.root}"] = (self.video.clip_len or self.clip_len, self.video.size)
        if len(set(shapes.values())) > 1:
            raise ValueError(
                "all inputs of UnlabeledDataModule must give clips of the same "
                f"(frames, size): {shapes}"
            )
        norms = {(tuple(s.video.mean), tuple(s.video.std)) for s in self.sources}
        if len(norms) > 1:
            raise ValueError(f"sources normalise their videos differently: {sorted(norms)}")

    def setup(self, stage: str) -> None:
        """Read every source split, the untrimmed windows and the folder (once)."""
        if self.dataset is not None:
            return
        self._check_shapes()
        parts: dict[str, Dataset] = {}
        for i, src in enumerate(self.sources):
            name = f"{i}:{type(src).__name__}"
            for split in self.splits:
                if split not in src.datasets:
                    src.setup({"train": "fit", "val": "validate", "test": "test"}[split])
            template: SkeletonClipDataset | None = None
            clips: list[ClipRecord] = []
            for split in self.splits:
                ds = self._as_training(src, src.datasets[split])
                parts[f"{name}:{split}"] = ds
                template = template or ds
                clips += ds.records
            if self.untrimmed:
                root = self.untrimmed_root or Path(src.video.root or src.root)
                index = index_media(root, VIDEO_SUFFIXES) if root.is_dir() else {}
                windows, missing = untrimmed_windows(clips, index, self.window)
                if missing:
                    log.info(
                        "%s: no untrimmed video under %s for %d of %d videos (e.g. %s)",
                        name,
                        root,
                        len(missing),
                        len(missing) + len({w.video_id for w in windows}),
                        missing[:3],
                    )
                if windows:
                    ds = copy.copy(template)
                    ds.records = windows
                    parts[f"{name}:untrimmed"] = ds
            if self.untrimmed and not any(k.startswith(name) and "untrimmed" in k for k in parts):
                log.warning("%s: untrimmed=True but none of its videos has a long video", name)
        if self.untrimmed and not any(k.endswith(":untrimmed") for k in parts):
            raise FileNotFoundError(
                "untrimmed=True but no source has long videos (SMG SampleXXXX_color.mp4, or "
                f"<vid>.mp4 under untrimmed_root={self.untrimmed_root})"
            )
        if self.root is not None:
            parts[f"root:{self.root}"] = self._folder_dataset()
        self.parts = parts
        self.dataset = ConcatDataset([_Unlabeled(d) for d in parts.values()])
        sizes = ", ".join(f"{k} {len(d)}" for k, d in parts.items())
        log.info("UnlabeledDataModule: %d clips (%s)", len(self.dataset), sizes)

    @staticmethod
    def _as_training(src: MicroGestureDataModule, dataset: Dataset) -> Dataset:
        """A copy of a source's split dataset that samples as its training set does."""
        ds = copy.copy(dataset)
        ds.train = True
        ds.config = src.transform_config(train=True)
        return ds

    def _folder_dataset(self) -> ClipDataset:
        index = index_media(self.root, VIDEO_SUFFIXES)
        if not index:
            raise FileNotFoundError(
                f"no video files ({', '.join(VIDEO_SUFFIXES)}) under {self.root}"
            )
        records = [r for p in sorted(index.values()) for r in video_windows(p, self.window)]
        config = SkeletonTransformConfig(
            clip_len=self.clip_len, normalize=False, flip_permutation=(), flip_prob=self.flip_prob
        )
        return ClipDataset(
            records,
            config,
            train=True,
            modalities=("video",),
            video=self.video,
            pixel_channels=None,
        )

    def __len__(self) -> int:
        if self.dataset is None:
            self.setup("fit")
        return len(self.dataset)

    def train_dataloader(self) -> DataLoader:
        """Shuffled unlabelled clips of every input."""
        if self.dataset is None:
            self.setup("fit")
        return DataLoader(
            self.dataset,
            batch_size=self.batch_size,
            shuffle=True,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
            drop_last=self.drop_last and len(self.dataset) >= self.batch_size,
            collate_fn=collate,
        )

    def on_after_batch_transfer(self, batch: dict[str, Any], dataloader_idx: int) -> dict:
        """The sources' own device-side step (they share the video options)."""
        if self.sources:
            return self.sources[0].on_after_batch_transfer(batch, dataloader_idx)
        return batch

    def state_dict(self) -> dict[str, Any]:
        """Nothing to save: the inputs are re-read."""
        return {}
