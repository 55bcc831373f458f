"""Reading a release into clip records (a part of :class:`MicroGestureDataModule`).

The parsed-release cache, the clips' videos (raw or prepared), pseudo-labelled
extra clips and the label checks, per split, read once.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

from lightning.pytorch import LightningDataModule

from mgr.data.cache import (
    VideoCacheOptions,
    cache_signature_matches,
    prepared_clip_path,
    read_cache,
    read_video_cache_options,
    write_cache,
)
from mgr.data.readers.common import ClipRecord
from mgr.data.readers.media import index_media, media_num_frames
from mgr.data.readers.pseudo_labels import load_pseudo_labels

from .release import ensure_release

__all__ = ["Modality", "ReleaseRecords", "Split"]


log = logging.getLogger(__name__)

Split = Literal["train", "val", "test"]
Modality = Literal["skeleton", "video", "pose", "heatmap"]
_SPLITS: tuple[Split, ...] = ("train", "val", "test")


class ReleaseRecords(LightningDataModule):
    """Reading a release into clip records: cache, videos, extra labels, checks.

    Part of :class:`~mgr.datamodules.base.MicroGestureDataModule`, which supplies
    :meth:`load_records`, :meth:`video_names`, :meth:`video_frames` and the settings.
    """

    def cache_signature(self) -> dict[str, Any]:
        """What determines the records :meth:`load_records` returns (see :mod:`mgr.data.cache`).

        Subclasses add their reader options.
        """
        return {
            "datamodule": type(self).__name__,
            "root": str(self.root.resolve()),
            "on_error": self.reader_on_error,
        }

    def write_cache(self, out: str | Path, splits: Sequence[Split] = _SPLITS) -> Path:
        """Parse the raw release once and store its splits as a fast cache.

        Args:
            out: cache folder; pass it as ``cache_dir`` later.
            splits: splits to convert (missing ones are skipped with a log line).

        Returns:
            The cache folder.
        """
        records = {}
        for split in splits:
            try:
                records[split] = self._load_raw(split)
            except FileNotFoundError as err:
                log.warning("not caching split %r: %s", split, err)
        return write_cache(out, records, self.cache_signature())

    def _load_raw(self, split: Split) -> list[ClipRecord]:
        if self.cache_dir is not None and cache_signature_matches(
            self.cache_dir, self.cache_signature(), split
        ):
            log.info("%s %s: reading cache %s", type(self).__name__, split, self.cache_dir)
            return read_cache(self.cache_dir, split)
        self._ensure_release()
        return self.load_records(split)

    def prepare_data(self) -> None:
        """With ``synthesize``, write the SynthMG release at :attr:`root` if it is missing.

        Lightning calls this on one process per node before the others read.
        """
        if self.synthesize:
            self._ensure_release()

    def _ensure_release(self) -> None:
        ensure_release(self.root, self.dataset, self.synthmg, self.synthesize, type(self).__name__)

    def _load_checked(self, split: Split) -> list[ClipRecord]:
        """Read a split; in ``skip`` mode the readers' skip warnings are logged and counted."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            records = self._load_raw(split)
            if "video" in self.modalities:
                records = self._attach_videos(records, split)
        skipped = 0
        for w in caught:
            if "skipping" in str(w.message):
                skipped += 1
                log.warning("%s", w.message)
                self.skip_messages.setdefault(split, []).append(str(w.message))
            else:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        self.skipped[split] = self.skipped.get(split, 0) + skipped
        return records

    def _attach_videos(self, records: list[ClipRecord], split: Split) -> list[ClipRecord]:
        """Find every clip's video file; drop or refuse clips whose video is bad."""
        root = Path(self.video.root) if self.video and self.video.root else self.root
        index = None
        kept: list[ClipRecord] = []
        # Clips prepared by `mgr prepare --video` replace their raw videos, one by one.
        prepared = read_video_cache_options(self.cache_dir) if self.cache_dir else None
        for rec in records:
            if rec.video is None or (self.video and self.video.root):  # an explicit root wins
                index = index if index is not None else index_media(root)
                path = next((index[n] for n in self.video_names(rec) if n in index), None)
                first, last = self.video_frames(rec)
                rec = replace(
                    rec, video=str(path) if path else None, video_start=first, video_end=last
                )
            problem = None
            if rec.video is None or not Path(rec.video).is_file():
                names = rec.video or " or ".join(f"{n}.*" for n in self.video_names(rec))
                problem = f"no video {names} under {root}"
            elif self.on_bad_sample == "skip":  # probe now so a bad file never reaches training
                try:
                    frames = media_num_frames(rec.video)
                    if rec.video_end is not None and rec.video_end >= frames:
                        problem = f"{rec.video} has {frames} frames, clip ends at {rec.video_end}"
                except (OSError, ValueError) as err:
                    problem = str(err)
            if problem is None:
                kept.append(self._prepared(rec, prepared))
                continue
            message = f"clip {rec.sample_id} of split {split!r} ({rec.source}): {problem}"
            if self.on_bad_sample == "raise":
                raise FileNotFoundError(message)
            warnings.warn(f"skipping bad clip: {message}", stacklevel=2)
        return kept

    def _prepared(self, rec: ClipRecord, options: VideoCacheOptions | None) -> ClipRecord:
        """``rec`` reading its prepared clip from :attr:`cache_dir` when there is one."""
        if options is None or (self.video is not None and self.video.modality != "rgb"):
            return rec
        path = prepared_clip_path(self.cache_dir, rec, options)
        if not path.is_file():
            return rec
        return replace(rec, video=str(path), video_start=0, video_end=None)

    def _get_records(self, split: Split) -> list[ClipRecord]:
        if split not in self.records:
            records = self._load_checked(split)
            if split == "train" and self.extra_labels is not None:
                records = records + self._extra_training_records()
            if not records:
                raise ValueError(
                    f"{type(self).__name__}: split {split!r} under {self.root} has no clips"
                )
            self._check_labels(records, split)
            self.records[split] = records
            log.info("%s %s: %d clips", type(self).__name__, split, len(records))
        return self.records[split]

    def _extra_training_records(self) -> list[ClipRecord]:
        """Validation clips (optionally) and pseudo-labelled clips for the training set."""
        pseudo = load_pseudo_labels(self.extra_labels, self.class_names)
        extra: list[ClipRecord] = []
        if self.extra_labels_with_val:
            extra += self._get_records("val")
        source = {r.sample_id: r for r in self._get_records(pseudo.split)}
        missing = [s for s in pseudo.labels if s not in source]
        if missing:
            raise ValueError(
                f"{self.extra_labels}: {len(missing)} pseudo-labelled samples are not "
                f"in split {pseudo.split!r} under {self.root}, e.g. {missing[:3]}"
            )
        extra += [replace(source[s], label=c) for s, c in pseudo.labels.items()]
        log.info(
            "training on %d extra clips (%d pseudo-labelled from %s)",
            len(extra),
            len(pseudo.labels),
            pseudo.split,
        )
        return extra

    def _check_labels(self, records: Sequence[ClipRecord], split: str) -> None:
        bad = [r for r in records if not 0 <= r.label < self.num_classes]
        if bad:
            r = bad[0]
            raise ValueError(
                f"{len(bad)} clip(s) of split {split!r} have labels outside "
                f"0..{self.num_classes - 1}, e.g. {r.sample_id} ({r.source}): "
                f"{r.label}"
            )
