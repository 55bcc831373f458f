"""iMiGUE (Liu et al., CVPR 2021) skeleton clips, MiGA'23 raw csv layout."""

from __future__ import annotations

import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from mgr.data.readers.common import ClipRecord, DataFormatError, load_each
from mgr.data.readers.imigue import (
    IMIGUE_SPLIT_DIRS,
    MIGA_TEST_VIDEOS,
    MIGA_TRAIN_VIDEOS,
    MIGA_VAL_VIDEOS,
    find_imigue_videos,
    load_imigue_split,
    load_imigue_video,
)
from mgr.data.readers.miga import load_miga23_arrays, load_miga25_split, load_miga25_video

from .base import MicroGestureDataModule, Split

__all__ = ["IMIGUE_TEST_SUBJECTS", "IMIGUE_TRAIN_SUBJECTS", "IMiGUEDataModule", "read_subject_map"]

_MIGA_VIDEOS = {"train": MIGA_TRAIN_VIDEOS, "val": MIGA_VAL_VIDEOS, "test": MIGA_TEST_VIDEOS}


# Paper cross-subject protocol (iMiGUE "evaluation protocol.pdf"; datasets.md §2.2).
# fmt: off
IMIGUE_TRAIN_SUBJECTS: tuple[int, ...] = (
    2, 4, 5, 6, 9, 10, 12, 13, 14, 15, 17, 18, 20, 21, 22, 23, 25, 28, 29, 30, 31, 35, 36, 38,
    39, 41, 42, 43, 44, 46, 47, 48, 52, 53, 59, 61, 62,
)
IMIGUE_TEST_SUBJECTS: tuple[int, ...] = (
    1, 3, 7, 8, 11, 16, 19, 24, 26, 27, 32, 33, 34, 37, 40, 45, 49, 50, 51, 54, 55, 56, 57, 58,
    60, 63, 64, 65, 66, 67, 68, 69, 70, 71, 72,
)
# fmt: on


class IMiGUEDataModule(MicroGestureDataModule):
    """iMiGUE clips from the MiGA'23 (csv) or MiGA'25 (xlsx) raw release.

    Layout under ``root`` (``source="miga23"``)::

        imigue_skeleton_train/<vid>/<vid>_light_hand.csv   # frame idx + 35 joints x (x, y, c)
        imigue_skeleton_train/<vid>/<vid>_label.csv        # gid,start,end (99 = non-MG)
        imigue_skeleton_validate/...   imigue_skeleton_test/...

    ``source="miga25"`` reads ``<vid>/<vid>_openpose.xlsx`` (137 OpenPose
    keypoints) instead of ``_light_hand.csv``; its default keypoint subset is
    MM-Gesture's 36 joints (``"mmgesture_36"``). RGB clips (``modalities``
    with ``"video"``) are the per-clip files ``<vid>_<k>.mp4`` found anywhere
    under ``video.root`` (default ``root``), as in MiGA'25's RGB release.

    Skeleton channels are ``(x, y, confidence)`` in pixels; the default keypoint
    subset is the MiGA baseline's 22 joints (``"imigue_miga_22"``); use
    ``"imigue_light_hand_35"`` for all 35.

    Args:
        root: release folder.
        split_scheme: ``"folders"``: train/val/test are the
            ``imigue_skeleton_{train,validate,test}`` folders as released (and as
            SynthMG writes them); ``"miga"``: the MiGA'23 video-id lists
            (241 train / 10 val / 104 test videos, ``datasets.md`` §7), wherever
            the videos lie under ``root``; ``"subjects"``: the paper's
            cross-subject protocol (37 train / 35 test subjects), which needs
            ``subject_map``; the paper has no validation split, so val = test.
        subject_map: csv or xlsx mapping videos to subjects, with columns
            ``Video_id`` and ``Sub_id`` (the layout of iMiGUE's ``Link_V2.xlsx``).
        source: ``"miga23"`` (``_light_hand.csv``), ``"miga25"`` (``_openpose.xlsx``)
            or ``"miga23_arrays"``: the MiGA'23 processed arrays
            ``{train,valid,test}_data.npy`` + ``_label.pkl`` directly under
            ``root`` (22 joints, padding trimmed; clip frames are not in them).
        image_size: ``(H, W)`` of the keypoints' pixel space. MiGA'23 code uses
            1080x1920, MiGA'25 code 720x1280; the release does not say.
        **kwargs: :class:`~mgr.datamodules.base.MicroGestureDataModule` arguments.
    """

    dataset = "imigue"
    parent_layout = "imigue_light_hand_35"
    default_keypoints = "imigue_miga_22"

    def __init__(
        self,
        root: str | Path,
        split_scheme: Literal["folders", "miga", "subjects"] = "folders",
        subject_map: str | Path | None = None,
        source: Literal["miga23", "miga25", "miga23_arrays"] = "miga23",
        image_size: tuple[int, int] = (1080, 1920),
        **kwargs: Any,
    ) -> None:
        if source not in ("miga23", "miga25", "miga23_arrays"):
            raise ValueError(
                f"source must be 'miga23', 'miga25' or 'miga23_arrays', got {source!r}"
            )
        self.source = source
        self.image_size = tuple(image_size)
        if source == "miga25":  # instance attributes: the layout depends on the source
            self.parent_layout = "openpose_137"
            self.default_keypoints = "mmgesture_36"
        elif source == "miga23_arrays":
            self.parent_layout = "imigue_miga_22"
        super().__init__(root, **kwargs)
        if split_scheme not in ("folders", "miga", "subjects"):
            raise ValueError(
                f"split_scheme must be 'folders', 'miga' or 'subjects', got {split_scheme!r}"
            )
        if source == "miga23_arrays" and split_scheme != "folders":
            raise ValueError("the MiGA'23 arrays come per split: use split_scheme='folders'")
        if split_scheme == "subjects" and subject_map is None:
            raise ValueError("split_scheme='subjects' needs subject_map (Video_id -> Sub_id)")
        self.split_scheme = split_scheme
        self.subject_map = subject_map

    def cache_signature(self) -> dict[str, Any]:
        """Reader options that shape the records (see :mod:`mgr.data.cache`)."""
        subject_map = str(Path(self.subject_map).resolve()) if self.subject_map else None
        return {
            **super().cache_signature(),
            "split_scheme": self.split_scheme,
            "subject_map": subject_map,
            "source": self.source,
        }

    def _load_video(self, folder: Path) -> list[ClipRecord]:
        if self.source == "miga25":
            return load_miga25_video(folder, on_error=self.reader_on_error)
        return load_imigue_video(folder, on_error=self.reader_on_error)

    @property
    def protocol_scheme(self) -> str:
        """``split_scheme`` (see :data:`mgr.protocols.SCHEMES`)."""
        return self.split_scheme

    def _videos_of(self, split: Split) -> list[str]:
        if self.split_scheme == "miga":
            return list(_MIGA_VIDEOS[split])
        subjects = read_subject_map(self.subject_map)
        wanted = set(IMIGUE_TRAIN_SUBJECTS if split == "train" else IMIGUE_TEST_SUBJECTS)
        return sorted(v for v, s in subjects.items() if s in wanted)

    def load_records(self, split: Split) -> list[ClipRecord]:
        """Read one split's clips (see ``split_scheme``)."""
        if self.source == "miga23_arrays":
            return load_miga23_arrays(self.root, split, on_error=self.reader_on_error)
        if self.split_scheme == "folders":
            load = load_miga25_split if self.source == "miga25" else load_imigue_split
            return load(self.root, split, on_error=self.reader_on_error)
        found = find_imigue_videos(self.root)
        wanted = self._videos_of(split)
        scheme = {"miga": "MiGA", "subjects": "cross-subject"}[self.split_scheme]
        missing = [v for v in wanted if v not in found]
        if len(missing) == len(wanted):
            raise FileNotFoundError(
                f"none of the {len(wanted)} {scheme} {split} videos were found under "
                f"{self.root} (looked in {sorted(IMIGUE_SPLIT_DIRS.values())})"
            )
        if missing:
            warnings.warn(
                f"{len(missing)} {scheme} {split} videos are missing under {self.root}: "
                f"{missing[:10]}{' ...' if len(missing) > 10 else ''}",
                stacklevel=2,
            )
        subjects = read_subject_map(self.subject_map) if self.subject_map else {}
        return load_each(
            [found[vid] for vid in wanted if vid in found],
            lambda path: [
                replace(r, subject=subjects.get(path.name)) for r in self._load_video(path)
            ],
        )


def read_subject_map(path: str | Path) -> dict[str, int]:
    """Video id -> subject id, from a csv or xlsx with ``Video_id`` and ``Sub_id`` columns.

    Video ids are zero-padded to 4 digits, as in the release's folder names.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        DataFormatError: naming the file, for missing columns or non-integer ids.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"subject map {path} does not exist")
    if path.suffix.lower() in (".xlsx", ".xls"):
        table = pd.read_excel(path, engine="openpyxl")
    else:
        table = pd.read_csv(path)
    table.columns = [str(c).strip().lower() for c in table.columns]
    if not {"video_id", "sub_id"} <= set(table.columns):
        raise DataFormatError(
            f"{path}: needs columns Video_id and Sub_id, got {list(table.columns)}"
        )
    try:
        videos = table["video_id"].astype(int)
        subjects = table["sub_id"].astype(int)
    except (ValueError, TypeError) as err:
        raise DataFormatError(f"{path}: Video_id and Sub_id must be integers ({err})") from err
    return {f"{v:04d}": int(s) for v, s in zip(videos, subjects, strict=True)}
