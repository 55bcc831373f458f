"""MA-52 (Guo et al., TCSVT 2024): video-only micro-action clips."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mgr.data.readers.common import ClipRecord
from mgr.data.readers.ma52 import load_ma52_split

from .base import MicroGestureDataModule, Split

__all__ = ["MA52DataModule"]


class MA52DataModule(MicroGestureDataModule):
    """MA-52 RGB clips from the official list files.

    Layout under ``root`` (``datasets.md`` §3.2)::

        label_name.txt                       # "<id><TAB><name>", 52 lines
        {train,val,test}_list_videos.txt     # "<file> <label>", CRLF; test labels are dummies
        videos_{train,val,test}/<file>       # SSSS_BB_NNNN.mp4 (test: testNNNN.mp4)

    Batches carry ``video``, the fine action ``label`` (52 classes) and the
    ``coarse_label`` body part (7 classes, the official fine-to-coarse map).
    MA-52 releases no skeleton, so ``modalities`` is ``["video"]`` and the
    saliency crop is not available (``video.crop`` must be ``"center"``). Train
    and val share participants: the split is not cross-subject.

    Args:
        root: release folder.
        check_body_part: refuse list lines whose ``BB`` field disagrees with the
            fine-to-coarse map of their label.
        **kwargs: :class:`~mgr.datamodules.base.MicroGestureDataModule` arguments.
    """

    dataset = "ma52"
    parent_layout = None
    default_keypoints = None

    def __init__(self, root: str | Path, check_body_part: bool = True, **kwargs: Any) -> None:
        super().__init__(root, **kwargs)
        self.check_body_part = check_body_part

    def cache_signature(self) -> dict[str, Any]:
        """Reader options that shape the records (see :mod:`mgr.data.cache`)."""
        return {**super().cache_signature(), "check_body_part": self.check_body_part}

    def load_records(self, split: Split) -> list[ClipRecord]:
        """Read one split's list file (video files are checked when attached)."""
        return load_ma52_split(
            self.root,
            split,
            check_files=False,
            on_error=self.reader_on_error,
            check_body_part=self.check_body_part,
        )
