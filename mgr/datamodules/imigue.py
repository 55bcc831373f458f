"""iMiGUE (Liu et al., CVPR 2021) skeleton clips, MiGA'23 raw csv layout."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from mgr.data.readers.common import ClipRecord
from mgr.data.readers.imigue import (
    IMIGUE_SPLIT_DIRS,
    MIGA_TEST_VIDEOS,
    MIGA_TRAIN_VIDEOS,
    MIGA_VAL_VIDEOS,
    find_imigue_videos,
    load_imigue_split,
    load_imigue_video,
)

from .base import MicroGestureDataModule, Split

__all__ = ["IMiGUEDataModule"]

_MIGA_VIDEOS = {"train": MIGA_TRAIN_VIDEOS, "val": MIGA_VAL_VIDEOS, "test": MIGA_TEST_VIDEOS}


class IMiGUEDataModule(MicroGestureDataModule):
    """iMiGUE clips from the MiGA'23 raw release.

    Layout under ``root``::

        imigue_skeleton_train/<vid>/<vid>_light_hand.csv   # frame idx + 35 joints x (x, y, c)
        imigue_skeleton_train/<vid>/<vid>_label.csv        # gid,start,end (99 = non-MG)
        imigue_skeleton_validate/...   imigue_skeleton_test/...

    Skeleton channels are ``(x, y, confidence)`` in pixels; the default keypoint
    subset is the MiGA baseline's 22 joints (``"imigue_miga_22"``); use
    ``"imigue_light_hand_35"`` for all 35.

    Args:
        root: release folder.
        split_scheme: ``"folders"``: train/val/test are the
            ``imigue_skeleton_{train,validate,test}`` folders as released (and as
            SynthMG writes them); ``"miga"``: the MiGA'23 video-id lists
            (241 train / 10 val / 104 test videos, ``datasets.md`` §7), wherever
            the videos lie under ``root``.
        **kwargs: :class:`~mgr.datamodules.base.MicroGestureDataModule` arguments.
    """

    dataset = "imigue"
    parent_layout = "imigue_light_hand_35"
    default_keypoints = "imigue_miga_22"

    def __init__(
        self, root: str | Path, split_scheme: Literal["folders", "miga"] = "folders", **kwargs: Any
    ) -> None:
        super().__init__(root, **kwargs)
        if split_scheme not in ("folders", "miga"):
            raise ValueError(f"split_scheme must be 'folders' or 'miga', got {split_scheme!r}")
        self.split_scheme = split_scheme

    def load_records(self, split: Split) -> list[ClipRecord]:
        """Read one split's clips (see ``split_scheme``)."""
        if self.split_scheme == "folders":
            return load_imigue_split(self.root, split, on_error=self.on_error)
        found = find_imigue_videos(self.root)
        wanted = _MIGA_VIDEOS[split]
        missing = [v for v in wanted if v not in found]
        if len(missing) == len(wanted):
            raise FileNotFoundError(
                f"none of the {len(wanted)} MiGA {split} videos were found under {self.root} "
                f"(looked in {sorted(IMIGUE_SPLIT_DIRS.values())})"
            )
        if missing:
            import warnings

            warnings.warn(
                f"{len(missing)} MiGA {split} videos are missing under {self.root}: "
                f"{missing[:10]}{' ...' if len(missing) > 10 else ''}",
                stacklevel=2,
            )
        records: list[ClipRecord] = []
        for vid in wanted:
            if vid in found:
                records += load_imigue_video(found[vid], on_error=self.on_error)
        return records
