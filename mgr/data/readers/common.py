"""Types shared by every reader."""

from __future__ import annotations

import contextlib
import csv
import errno
import math
import os
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

import numpy as np
import pandas as pd

from mgr.errors import UserError

__all__ = [
    "ClipRecord",
    "DataFormatError",
    "FileProblem",
    "OnError",
    "PathLike",
    "SequenceRecord",
    "collect_file_problems",
    "load_each",
]

PathLike = str | os.PathLike[str]
OnError = Literal["raise", "warn"]


class DataFormatError(ValueError, UserError):
    """A released file does not have the documented layout.

    The message always names the file and, where it applies, the row or sample.
    A bad file is the user's to fix, so it is also a :class:`~mgr.errors.UserError`
    (one line from the ``mgr`` command); it stays a ``ValueError`` for callers
    that catch those.
    """


@dataclass
class ClipRecord:
    """One trimmed micro-gesture clip, as read from a release.

    A clip carries a skeleton (``keypoint``), a video (``video``) or both; the
    two are aligned in time by their frame ranges (the video's
    ``video_start..video_end`` covers the same moment as the skeleton's rows).

    Attributes:
        sample_id: the dataset's own sample name (e.g. ``"0187_0"`` for iMiGUE,
            ``"Sample00360"`` for SMG, ``"0003_01_0001"`` for MA-52).
        label: 0-based class id.
        keypoint: ``(T, V, C)`` float32 keypoints of the clip, in the reader's
            parent layout and channel order (documented by each reader), or
            ``None`` for a video-only release (MA-52).
        video_id: id of the long sequence the clip was cut from.
        start: first frame (0-based row of the sequence file).
        end: last frame (0-based, inclusive).
        source: path of the file the keypoints (or, video-only, the frames) came from.
        subject: subject id where the release gives it, else ``None``.
        video: path of the RGB (or derived-modality) video holding the clip, if any.
        video_start: first frame of the clip in ``video`` (0-based).
        video_end: last frame of the clip in ``video`` (inclusive); ``None``: the
            video's last frame (a per-clip file).
        coarse_label: body-part (coarse) class id where the dataset defines one
            (MA-52), else ``None``.
    """

    sample_id: str
    label: int
    keypoint: np.ndarray | None
    video_id: str
    start: int
    end: int
    source: str
    subject: int | None = None
    video: str | None = None
    video_start: int = 0
    video_end: int | None = None
    coarse_label: int | None = None

    @property
    def num_frames(self) -> int:
        """Number of frames ``T`` of the clip (from the skeleton, else the frame range)."""
        if self.keypoint is not None:
            return int(self.keypoint.shape[0])
        return self.end - self.start + 1


@dataclass
class SequenceRecord:
    """One untrimmed sequence with all its annotated instances (online recognition).

    Attributes:
        video_id: the sequence's name (e.g. ``"Sample0036"``).
        keypoint: ``(T, V, C)`` float32 keypoints of every frame.
        segments: ``(G, 2)`` int64 ``(start, end)`` frames of the instances, end inclusive.
        labels: ``(G,)`` int64 0-based class ids.
        source: path of the keypoint file.
        subject: subject id, if known.
        video: the sequence's own video file, whose frame ``t`` is keypoint row ``t``
            (a raw video with estimated keypoints, ``mgr recognize``); ``None``: the
            release's videos are found by name.
    """

    video_id: str
    keypoint: np.ndarray
    segments: np.ndarray
    labels: np.ndarray
    source: str
    subject: int | None = None
    video: str | None = None

    @property
    def num_frames(self) -> int:
        """Number of frames ``T``."""
        return int(self.keypoint.shape[0])


# Reading every file of a split, or every file that can be read (mgr check).


@dataclass(frozen=True)
class FileProblem:
    """A file a split reader could not read, with the reason (see :func:`collect_file_problems`).

    Attributes:
        source: what the reader was loading (a video folder, a sample folder, a file).
        error: the exception; its message names the file and, where it applies, the row.
    """

    source: str
    error: Exception


_PROBLEMS: ContextVar[list[FileProblem] | None] = ContextVar("mgr_file_problems", default=None)
_T = TypeVar("_T")
_R = TypeVar("_R")


@contextlib.contextmanager
def collect_file_problems() -> Iterator[list[FileProblem]]:
    """Within this context, split readers skip the files they cannot read and list them.

    Outside it a malformed or missing file stops a split's reading with an error, as
    training needs; ``mgr check`` reads every split inside it to report every bad file
    at once.

    Yields:
        The list the problems are appended to.
    """
    problems: list[FileProblem] = []
    token = _PROBLEMS.set(problems)
    try:
        yield problems
    finally:
        _PROBLEMS.reset(token)


def load_each(items: Iterable[_T], load: Callable[[_T], list[_R]]) -> list[_R]:
    """Concatenate ``load(item)`` over ``items`` (one item: one video folder or file).

    Inside :func:`collect_file_problems`, an item whose files are missing or malformed
    (``OSError``, :class:`DataFormatError`) is recorded and skipped; outside, its error
    propagates.
    """
    out: list[_R] = []
    for item in items:
        try:
            out += load(item)
        except (OSError, DataFormatError) as err:
            problems = _PROBLEMS.get()
            if problems is None:
                raise
            problems.append(FileProblem(str(item), err))
    return out


# Csv helpers shared by the iMiGUE and SMG readers.


def _check_on_error(on_error: str) -> None:
    if on_error not in ("raise", "warn"):
        raise ValueError(f"on_error must be 'raise' or 'warn', got {on_error!r}")


def _require_file(path: Path) -> None:
    if not path.is_file():
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), str(path))


def _require_dir(path: Path) -> None:
    if not path.is_dir():
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), str(path))


def _subdir_names(path: Path) -> list[str]:
    """Sorted names of the folders directly under ``path`` (for error messages)."""
    if not path.is_dir():
        return []
    return sorted(p.name for p in path.iterdir() if p.is_dir())


def _read_text_rows(path: Path) -> list[list[str]]:
    """Non-blank rows of a small headerless csv, split into cells."""
    _require_file(path)
    try:
        # utf-8-sig: tolerate a byte-order mark written by spreadsheet tools.
        with path.open(encoding="utf-8-sig", newline="") as f:
            rows = list(csv.reader(f))
    except UnicodeDecodeError as err:
        raise DataFormatError(f"{path}: not a UTF-8 text csv ({err})") from err
    return [row for row in rows if any(cell.strip() for cell in row)]


def _parse_int(cell: str, *, path: Path, row: int, name: str) -> int:
    """Parse an integer cell; integral floats such as ``"12.0"`` are accepted too."""
    text = cell.strip()
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if value.is_integer():
        return int(value)
    raise DataFormatError(f"{path}, row {row}: {name} {cell!r} is not an integer")


def _read_clip_rows(path: Path, label_from_raw: Callable[[int], int]) -> list[tuple[int, int, int]]:
    """Read ``label,start,end`` rows and validate them.

    Args:
        path: headerless csv with one clip per row.
        label_from_raw: maps a raw label id to the 0-based class id; raises ``ValueError``
            for an unknown id.

    Returns:
        ``(label, start, end)`` per non-blank row, in file order; ``start``/``end`` as written.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        DataFormatError: naming the file and 1-based row, for a wrong column count, a
            non-integer cell, an unknown label id, ``start < 0`` or ``end < start``.
    """
    clips: list[tuple[int, int, int]] = []
    for row, cells in enumerate(_read_text_rows(path), start=1):
        if len(cells) != 3:
            raise DataFormatError(
                f"{path}, row {row}: expected 3 columns (label,start,end), got {len(cells)}"
            )
        raw, start, end = (
            _parse_int(cell, path=path, row=row, name=name)
            for cell, name in zip(cells, ("label", "start", "end"), strict=True)
        )
        try:
            label = label_from_raw(raw)
        except ValueError as err:
            raise DataFormatError(f"{path}, row {row}: unknown label id {raw} ({err})") from err
        if start < 0:
            raise DataFormatError(f"{path}, row {row}: negative start frame {start}")
        if end < start:
            raise DataFormatError(f"{path}, row {row}: end frame {end} < start frame {start}")
        clips.append((label, start, end))
    return clips


def _count_columns(path: Path) -> int | None:
    """Number of cells of the first non-blank row, or ``None`` if the file has no data."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            for line in f:
                if line.strip():
                    return line.count(",") + 1
    except UnicodeDecodeError as err:
        raise DataFormatError(f"{path}: not a UTF-8 text csv ({err})") from err
    return None


def _locate_non_numeric(path: Path, columns: range, channels: int) -> str:
    """Describe the first cell of ``columns`` that is not a number (slow; error path only)."""
    cells = pd.read_csv(
        path,
        header=None,
        usecols=columns,
        dtype=str,
        keep_default_na=False,
        encoding="utf-8-sig",
    )
    for row, values in enumerate(cells.itertuples(index=False), start=1):
        for col, cell in zip(columns, values, strict=True):
            if not isinstance(cell, str) or not cell.strip():
                continue  # missing cells become NaN and are reported by the finiteness check
            try:
                float(cell)
            except ValueError:
                joint, channel = divmod(col - columns.start, channels)
                return (
                    f"row {row}, column {col + 1} (joint {joint}, channel {channel}): "
                    f"{cell!r} is not a number"
                )
    return "a cell is not a number"


def _read_keypoint_table(
    path: Path, *, first_column: int, num_joints: int, channels: int
) -> np.ndarray:
    """Read a headerless per-frame keypoint csv with the pandas C parser.

    Args:
        path: csv with one row per frame.
        first_column: 0-based column of the first value of joint 0.
        num_joints: joints ``V`` per row.
        channels: values ``C`` per joint.

    Returns:
        ``(T, V, C)`` float32 array, one entry per non-blank row.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        DataFormatError: naming the file (and row where it applies) for an empty file, too few
            columns, a non-numeric cell or a missing / NaN / infinite value.
    """
    _require_file(path)
    num_columns = _count_columns(path)
    if num_columns is None:
        raise DataFormatError(f"{path}: file is empty, expected one row per frame")
    needed = first_column + num_joints * channels
    if num_columns < needed:
        raise DataFormatError(
            f"{path}, row 1: {num_columns} columns, expected at least {needed} "
            f"({first_column} leading + {num_joints} joints x {channels} values)"
        )
    columns = range(first_column, needed)
    try:
        # Columns past ``needed`` are never parsed, so their content cannot break the read.
        table = pd.read_csv(
            path, header=None, usecols=columns, dtype=np.float32, encoding="utf-8-sig"
        )
    except UnicodeDecodeError as err:
        raise DataFormatError(f"{path}: not a UTF-8 text csv ({err})") from err
    except pd.errors.ParserError as err:
        raise DataFormatError(f"{path}: malformed csv ({err})") from err
    except ValueError as err:  # a cell the C parser could not convert to float
        detail = _locate_non_numeric(path, columns, channels)
        raise DataFormatError(f"{path}, {detail}") from err
    values = table.to_numpy(dtype=np.float32).reshape(-1, num_joints, channels)
    finite = np.isfinite(values)
    if not finite.all():
        row, joint, channel = np.unravel_index(np.argmin(finite), values.shape)
        raise DataFormatError(
            f"{path}, row {row + 1}: joint {joint}, channel {channel} is "
            f"{values[row, joint, channel]} (missing or non-finite value)"
        )
    return values


def _cut_clip(
    sequence: np.ndarray,
    start: int,
    end: int,
    *,
    sample_id: str,
    label_path: Path,
    row: int,
    sequence_path: Path,
    on_error: OnError,
) -> np.ndarray | None:
    """Rows ``start..end`` (inclusive) of ``sequence`` as a new array, or ``None`` if skipped.

    A clip that is empty or runs past the sequence is an error (``on_error="raise"``) or
    skipped with a warning (``"warn"``). A clip whose keypoints are all zero is always skipped
    with a warning: OpenPose writes zeros when it detects nobody, so such a clip carries no
    motion to learn from.
    """
    num_frames = sequence.shape[0]
    problem: str | None = None
    if end < start:
        problem = f"clip {sample_id} is empty (start {start}, inclusive end {end})"
    elif end >= num_frames:
        problem = (
            f"clip {sample_id} spans frames {start}..{end} but {sequence_path} has only "
            f"{num_frames} rows (frames 0..{num_frames - 1})"
        )
    if problem is not None:
        message = f"{label_path}, row {row}: {problem}"
        if on_error == "raise":
            raise DataFormatError(message)
        warnings.warn(f"skipping bad clip: {message}", stacklevel=3)
        return None
    # Copy so the clip does not keep the whole sequence array alive.
    clip = sequence[start : end + 1].copy()
    if not clip.any():
        warnings.warn(
            f"skipping clip {sample_id} ({label_path}, row {row}): all keypoints of "
            f"{sequence_path} rows {start}..{end} are zero (no person detected)",
            stacklevel=3,
        )
        return None
    return clip


def _cut_clips(
    sequence: np.ndarray,
    clips: list[tuple[int, int, int]],
    sample_ids: list[str],
    *,
    video_id: str,
    label_path: Path,
    sequence_path: Path,
    on_error: OnError,
    subject: int | None = None,
) -> list[ClipRecord]:
    """Cut every ``(label, start, inclusive end)`` clip of one sequence into a record.

    Clips that :func:`_cut_clip` skips are left out; the others keep their official
    ``sample_ids`` (so skipped clips leave gaps in the numbering, as the releases do).
    """
    records: list[ClipRecord] = []
    for k, ((label, start, end), sample_id) in enumerate(zip(clips, sample_ids, strict=True)):
        keypoint = _cut_clip(
            sequence,
            start,
            end,
            sample_id=sample_id,
            label_path=label_path,
            row=k + 1,
            sequence_path=sequence_path,
            on_error=on_error,
        )
        if keypoint is not None:
            records.append(
                ClipRecord(
                    sample_id=sample_id,
                    label=label,
                    keypoint=keypoint,
                    video_id=video_id,
                    start=start,
                    end=end,
                    source=str(sequence_path),
                    subject=subject,
                )
            )
    return records
