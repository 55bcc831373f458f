"""SMG (Chen et al., IJCV 2023) skeleton clips, raw Kinect-v2 csv layout."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from mgr.data.readers.common import ClipRecord
from mgr.data.readers.smg import SMG_SPLITS, load_smg_split

from .base import MicroGestureDataModule, Split

__all__ = ["SMGDataModule"]


class SMGDataModule(MicroGestureDataModule):
    """SMG clips cut from the long sequences by their finelabels.

    Layout under ``root`` (``SampleXXXX`` folders directly under it, or one
    level below as in the MiGA ``smg_skeleton_{train,validate,test}`` folders)::

        Sample0001/Sample0001_skeleton.csv     # 25 Kinect-v2 joints x 11 values per frame
        Sample0001/Sample0001_finelabels.csv   # label,start,end (label 1..17; 17 = non-MG)
        Sample0001/Sample0001_data.csv         # numFrames,fps,maxDepth
        .../Sample0001/Sample0001_color.mp4    # RGB (anywhere under video.root)

    Args:
        root: release folder.
        split: ``"miga"`` (subjects 1-30 train / 31-35 val / 36-40 test) or
            ``"official"`` (1-35 train / 36-40 test; the official code validates
            on the test subjects, so val = test there).
        coords: ``"world"``: Kinect camera-space ``(x, y, z)`` in metres;
            ``"pixel"``: 2-D colour-image ``(x, y)`` (1920x1080; needed for
            saliency crops and the ``pose`` modality).
        end_inclusive: whether a finelabel's end frame belongs to the clip. The
            official classification code slices ``[start, end)``, so the default
            is ``False`` (the release does not say; see ``datasets.md`` §1.3).
        train_subjects: override the preset's training subjects.
        val_subjects: override the preset's validation subjects.
        test_subjects: override the preset's test subjects.
        **kwargs: :class:`~mgr.datamodules.base.MicroGestureDataModule` arguments.
    """

    dataset = "smg"
    parent_layout = "kinect_v2_25"
    default_keypoints = "kinect_v2_25"

    def __init__(
        self,
        root: str | Path,
        split: Literal["miga", "official"] = "miga",
        coords: Literal["world", "pixel"] = "world",
        end_inclusive: bool = False,
        train_subjects: list[int] | None = None,
        val_subjects: list[int] | None = None,
        test_subjects: list[int] | None = None,
        **kwargs: Any,
    ) -> None:
        if coords not in ("world", "pixel"):
            raise ValueError(f"coords must be 'world' or 'pixel', got {coords!r}")
        # Kinect v2 colour frames are 1920x1080; pixel keypoints live there.
        self.image_size = (1080, 1920) if coords == "pixel" else None
        super().__init__(root, **kwargs)
        if split not in SMG_SPLITS:
            raise ValueError(f"split must be one of {sorted(SMG_SPLITS)}, got {split!r}")
        self.split = split
        self.coords = coords
        self.end_inclusive = end_inclusive
        preset = SMG_SPLITS[split]
        self.subjects = {
            "train": list(train_subjects or preset["train"]),
            "val": list(val_subjects or preset["val"]),
            "test": list(test_subjects or preset["test"]),
        }
        train = set(self.subjects["train"])
        for other in ("val", "test"):
            overlap = train & set(self.subjects[other])
            if overlap:
                raise ValueError(
                    f"subjects {sorted(overlap)} are in both train and {other}: "
                    "SMG is evaluated cross-subject"
                )

    @property
    def channels(self) -> tuple[str, ...]:
        """``("x", "y", "z")`` for world coordinates, ``("x", "y")`` for pixels."""
        return ("x", "y", "z") if self.coords == "world" else ("x", "y")

    def cache_signature(self) -> dict[str, Any]:
        """Reader options that shape the records (see :mod:`mgr.data.cache`)."""
        return {
            **super().cache_signature(),
            "subjects": self.subjects,
            "coords": self.coords,
            "end_inclusive": self.end_inclusive,
        }

    def video_names(self, record: ClipRecord) -> list[str]:
        """SMG's RGB is one long ``SampleXXXX_color.mp4`` per subject."""
        return [f"{record.video_id}_color", record.video_id]

    def video_frames(self, record: ClipRecord) -> tuple[int, int | None]:
        """The clip's frames in the long video (Kinect colour and skeleton share frames)."""
        return record.start, record.end

    @property
    def protocol_scheme(self) -> str:
        """The subject preset ``split``, or ``"custom"`` when subjects were overridden."""
        preset = SMG_SPLITS[self.split]
        same = all(list(preset[s]) == self.subjects[s] for s in ("train", "val", "test"))
        return self.split if same else "custom"

    def load_records(self, split: Split) -> list[ClipRecord]:
        """Read one split's clips (subjects of the chosen preset)."""
        return load_smg_split(
            self.root,
            self.subjects[split],
            coords=self.coords,
            end_inclusive=self.end_inclusive,
            on_error=self.reader_on_error,
        )
