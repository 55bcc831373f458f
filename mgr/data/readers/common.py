"""Types shared by every reader."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ClipRecord", "DataFormatError"]


class DataFormatError(ValueError):
    """A released file does not have the documented layout.

    The message always names the file and, where it applies, the row or sample.
    """


@dataclass
class ClipRecord:
    """One trimmed micro-gesture clip, as read from a release.

    Attributes:
        sample_id: the dataset's own sample name (e.g. ``"0187_0"`` for iMiGUE,
            ``"Sample00360"`` for SMG).
        label: 0-based class id.
        keypoint: ``(T, V, C)`` float32 keypoints of the clip, in the reader's
            parent layout and channel order (documented by each reader).
        video_id: id of the long sequence the clip was cut from.
        start: first frame (0-based row of the sequence file).
        end: last frame (0-based, inclusive).
        source: path of the file the keypoints came from.
        subject: subject id where the release gives it, else ``None``.
    """

    sample_id: str
    label: int
    keypoint: np.ndarray
    video_id: str
    start: int
    end: int
    source: str
    subject: int | None = None

    @property
    def num_frames(self) -> int:
        """Number of frames ``T`` of the clip."""
        return int(self.keypoint.shape[0])
