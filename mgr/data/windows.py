"""Sliding windows of a long sequence turned into a recognizer's batches.

:class:`SequenceSource` reads a release's untrimmed sequences; a :class:`WindowTransform`
(:class:`SkeletonWindows`, :class:`HeatmapWindows`, :class:`ClipWindows`, chosen by
:func:`window_transform_of`) builds the batch of each window with the evaluation
transforms of the recognizer's training datamodule. ``mgr extract-features``
(:mod:`mgr.features`), ``mgr detect`` and ``mgr recognize`` run recognizers on them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np
import torch
from torch import Tensor

from mgr.data.transforms.video import VIDEO_RECIPE_KEYS, finish_video_batch

if TYPE_CHECKING:
    from mgr.data.datasets import SkeletonTransformConfig
    from mgr.data.readers.common import SequenceRecord

__all__ = [
    "ClipWindows",
    "HeatmapWindows",
    "SequenceSource",
    "SkeletonWindows",
    "WindowTransform",
    "window_transform_of",
]


# ---------------------------------------------------------------------- sources
@dataclass(frozen=True)
class SequenceSource:
    """Where the long sequences of a release are and how to read them.

    Attributes:
        dataset: ``"smg"`` (``SampleXXXX`` folders) or ``"imigue"`` (``<vid>``
            folders under ``imigue_skeleton_*``).
        root: the release folder.
        coords: SMG only: ``"world"`` or ``"pixel"``.
        end_inclusive: SMG only: whether finelabels ends are inclusive.
        source: iMiGUE only: ``"miga23"`` or ``"miga25"``.
    """

    dataset: Literal["smg", "imigue"]
    root: str
    coords: str = "world"
    end_inclusive: bool = False
    source: str = "miga23"

    def find(self) -> dict[str, Path]:
        """Video id -> folder of every sequence under :attr:`root`, sorted."""
        if self.dataset == "smg":
            from mgr.data.readers.smg import find_smg_samples

            return {f"Sample{s:04d}": p for s, p in find_smg_samples(self.root).items()}
        if self.dataset == "imigue":
            from mgr.data.readers.imigue import find_imigue_videos

            return find_imigue_videos(self.root)
        raise ValueError(f"unknown dataset {self.dataset!r} (expected 'smg' or 'imigue')")

    def load(self, folder: str | Path) -> SequenceRecord:
        """One raw sequence (keypoints in the reader's layout, every instance)."""
        if self.dataset == "smg":
            from mgr.data.readers.smg import load_smg_sequence

            return load_smg_sequence(
                folder,
                coords=self.coords,
                end_inclusive=self.end_inclusive,  # type: ignore[arg-type]
            )
        from mgr.data.readers.imigue import load_imigue_sequence

        return load_imigue_sequence(folder, source=self.source)  # type: ignore[arg-type]

    @classmethod
    def of_datamodule(cls, dm: Any) -> SequenceSource:
        """The long sequences behind a clip datamodule (``SMGDataModule``, ``IMiGUEDataModule``)."""
        root = str(Path(dm.root).resolve())
        dataset = getattr(dm, "dataset", None)
        if dataset == "smg":
            return cls("smg", root, coords=dm.coords, end_inclusive=bool(dm.end_inclusive))
        if dataset == "imigue":
            source = getattr(dm, "source", "miga23")
            if source not in ("miga23", "miga25"):
                raise ValueError(
                    f"iMiGUE source {source!r} has no long sequences (the MiGA'23 arrays "
                    "hold trimmed clips): use the raw release (source miga23 or miga25)"
                )
            return cls("imigue", root, source=source)
        raise ValueError(
            f"{type(dm).__name__}: no long-sequence reader for dataset {dataset!r} "
            "(SMG and iMiGUE have untrimmed sequences; MA-52 has none)"
        )


# ---------------------------------------------------------------------- window transforms
class WindowTransform(Protocol):
    """Builds the recognizer's batch for windows of one sequence."""

    #: batch keys produced (checked against the recognizer's ``input_keys``).
    keys: tuple[str, ...]

    def __call__(self, seq: SequenceRecord, starts: np.ndarray, window: int) -> dict[str, Tensor]:
        """Batch of ``len(starts)`` windows ``[start, start + window)``."""
        ...

    def describe(self) -> dict[str, Any]:
        """JSON-able settings (stored in ``meta.json``; a change recomputes the cache)."""
        ...


def _window_records(seq: SequenceRecord, starts: np.ndarray, window: int) -> list:
    """One unlabelled ``ClipRecord`` per window ``[s, s + window)`` of a sequence.

    A sequence with its own ``video`` gives the windows' frame range in it; one with no
    joints (``keypoint (T, 0, C)``, a video-only recognizer's raw video) gives records
    without keypoints.
    """
    from mgr.data.readers.common import ClipRecord

    records = []
    for s in starts:
        start, end = int(s), int(min(s + window, seq.num_frames)) - 1
        records.append(
            ClipRecord(
                sample_id=f"{seq.video_id}@{start}", label=0, video_id=seq.video_id,
                start=start, end=end, source=seq.source,
                keypoint=seq.keypoint[start : end + 1] if seq.keypoint.shape[1] else None,
                video=seq.video, video_start=start, video_end=end,
            )
        )  # fmt: skip
    return records


class SkeletonWindows:
    """Skeleton windows as the recognizer's evaluation clips.

    Each window is treated exactly like an evaluation clip of the recognizer's
    datamodule (:class:`~mgr.data.datasets.SkeletonClipDataset` in eval mode):
    keypoint subset, normalisation over the window, uniform sampling to
    ``clip_len`` frames. One view per window.

    Args:
        config: the training datamodule's ``transform_config(train=False)``.
        views: keep the evaluation's test-time views (clips, flips; the batch gets a
            view axis the recognizer averages over) instead of one view per window.
    """

    keys = ("skeleton",)

    def __init__(self, config: SkeletonTransformConfig, views: bool = False) -> None:
        self.config = replace(config, flip_prob=0.0)
        if not views:
            self.config = replace(self.config, num_clips=1, test_flip=False)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> SkeletonWindows:
        """Rebuild from :meth:`describe` (lists back to tuples)."""
        from mgr.data.datasets import SkeletonTransformConfig

        names = {f.name for f in fields(SkeletonTransformConfig)}
        kwargs = {
            k: tuple(v) if isinstance(v, list) else v for k, v in values.items() if k in names
        }
        return cls(SkeletonTransformConfig(**kwargs))

    def __call__(self, seq: SequenceRecord, starts: np.ndarray, window: int) -> dict[str, Tensor]:
        """``skeleton (B, C, clip_len, V, 1)`` of the windows starting at ``starts (B,)``."""
        from mgr.data.datasets import SkeletonClipDataset

        records = _window_records(seq, starts, window)
        # The dataset's public item path: exactly what the recognizer was evaluated on.
        data = SkeletonClipDataset(records, self.config, train=False)
        return {"skeleton": torch.stack([data[i]["skeleton"] for i in range(len(records))])}

    def describe(self) -> dict[str, Any]:
        """The transform config as a dict."""
        return {"kind": "skeleton", **asdict(self.config)}


class HeatmapWindows:
    """Windows as PoseConv3D heatmap volumes, exactly as the recognizer's evaluation clips.

    Each window goes through :class:`~mgr.data.datasets.HeatmapClipDataset` in eval
    mode with the datamodule's heatmap options (rendered here, never on the device).

    Args:
        config: the training datamodule's ``transform_config(train=False)``.
        options: its heatmap options.
        limbs: joint pairs of the kept joints (limb heatmaps).
        image_size: ``(H, W)`` of the keypoints' frames (``PoseCompact``'s fallback box);
            ``None``: the options' ``img_shape``.
        views: keep the evaluation's test-time views (see :class:`SkeletonWindows`).
    """

    keys = ("heatmap",)

    def __init__(
        self,
        config: SkeletonTransformConfig,
        options: Any,
        limbs: Sequence[tuple[int, int]],
        image_size: tuple[int, int] | None = None,
        views: bool = False,
    ) -> None:
        self.config = replace(config, flip_prob=0.0)
        if not views:
            self.config = replace(self.config, num_clips=1, test_flip=False)
        self.options = replace(options, on_device=False)
        if image_size is not None:
            self.options = replace(self.options, img_shape=tuple(image_size))
        self.limbs = [tuple(e) for e in limbs]

    def __call__(self, seq: SequenceRecord, starts: np.ndarray, window: int) -> dict[str, Tensor]:
        """``heatmap (B, K, T, H, W)`` (views: ``(B, N, K, T, H, W)``) of the windows."""
        from mgr.data.datasets import HeatmapClipDataset

        records = _window_records(seq, starts, window)
        data = HeatmapClipDataset(records, self.config, self.options, self.limbs, train=False)
        return {"heatmap": torch.stack([data[i]["heatmap"] for i in range(len(records))])}

    def describe(self) -> dict[str, Any]:
        """The transform config and heatmap options as a dict."""
        return {"kind": "heatmap", **asdict(self.config), "heatmap": asdict(self.options)}


class ClipWindows:
    """Windows as the evaluation clips of any clip datamodule (video, heatmaps, pose, ...).

    Each window becomes a :class:`~mgr.data.readers.common.ClipRecord` of the
    sequence, its video is found the way the datamodule finds a clip's video (SMG:
    the long ``SampleXXXX_color.mp4``), or is the sequence's own ``video`` (a raw
    video, ``mgr recognize``), and the datamodule's evaluation
    :class:`~mgr.data.datasets.ClipDataset` builds the batch: the same frame
    sampling, crop (saliency boxes from the window's keypoints), resize and
    normalisation the recognizer was evaluated with. One view per window unless
    ``views``. Each window decodes its own frames, so this is slower than
    :class:`SkeletonWindows`.

    Args:
        dm: the recognizer's training datamodule (with ``modalities`` other than
            skeleton only; video-only datamodules such as MA-52's work on sequences
            with their own video).
        image_size: ``(H, W)`` of the pixel space of the sequences' keypoints, when it
            is not the datamodule's (keypoints estimated on the raw video: its frame
            size); ``None``: the datamodule's.
        views: keep the evaluation's test-time views (see :class:`SkeletonWindows`).
    """

    def __init__(
        self, dm: Any, image_size: tuple[int, int] | None = None, views: bool = False
    ) -> None:
        if dm.modalities == ("skeleton",):
            raise ValueError(
                f"{type(dm).__name__}: ClipWindows is for multi-modal datamodules "
                "(SMG/iMiGUE with video, MA-52); use SkeletonWindows for skeletons and "
                "HeatmapWindows for heatmaps"
            )
        self.dm = dm
        self.keys = tuple(k for k in dm.supplies if k not in ("label", "sample_id"))
        self.config = replace(dm.transform_config(train=False), flip_prob=0.0)
        if not views:
            self.config = replace(self.config, num_clips=1, test_flip=False)
        self.image_size = tuple(image_size) if image_size is not None else dm.image_size
        self.video = dm.video
        if image_size is not None and self.video is not None:  # keypoints are in video pixels
            self.video = replace(self.video, keypoint_image_size=None)

    def __call__(self, seq: SequenceRecord, starts: np.ndarray, window: int) -> dict[str, Tensor]:
        """The recognizer's batch (``video (B, C, T, H, W)``, ...) of the windows at ``starts``."""
        from mgr.data.datasets import ClipDataset

        records = _window_records(seq, starts, window)
        if seq.video is None:
            records = self.dm._attach_videos(records, "test")  # raises naming a missing video
        dm = self.dm
        data = ClipDataset(
            records,
            self.config,
            train=False,
            modalities=dm.modalities,
            video=self.video,
            pixel_channels=dm.pixel_channels if self.image_size is not None else None,
            image_size=self.image_size,
            heatmap=dm.heatmap,
            limbs=dm.layout.limbs if dm.layout is not None else (),
        )
        items = [data[i] for i in range(len(records))]
        keys = [k for k in (*self.keys, *VIDEO_RECIPE_KEYS) if k in items[0]]
        # uint8 video + recipe -> the float input the recognizer was evaluated on.
        return finish_video_batch({k: torch.stack([it[k] for it in items]) for k in keys})

    def describe(self) -> dict[str, Any]:
        """Modalities, video options and the transform config as a dict."""
        video = asdict(self.video) if self.video is not None else None
        return {
            "kind": "clip",
            "datamodule": f"{type(self.dm).__module__}.{type(self.dm).__qualname__}",
            "modalities": list(self.dm.modalities),
            "video": video,
            **asdict(self.config),
        }


def window_transform_of(
    dm: Any, image_size: tuple[int, int] | None = None, views: bool = False
) -> WindowTransform:
    """The window transform that builds a recognizer's batches as its datamodule did.

    Skeleton datamodules give :class:`SkeletonWindows`, heatmap ones (``heatmap`` set,
    skeleton modality only) :class:`HeatmapWindows`, any other :class:`ClipWindows`.

    Args:
        dm: the recognizer's training datamodule.
        image_size: ``(H, W)`` of the keypoints' frames when not the datamodule's
            (see :class:`ClipWindows`).
        views: keep the evaluation's test-time views.
    """
    if dm.modalities == ("skeleton",):
        config = dm.transform_config(train=False)
        if getattr(dm, "heatmap", None) is None:
            return SkeletonWindows(config, views=views)
        return HeatmapWindows(config, dm.heatmap, dm.layout.limbs, image_size, views=views)
    return ClipWindows(dm, image_size=image_size, views=views)
