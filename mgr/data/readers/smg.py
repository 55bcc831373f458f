"""Reader for the raw SMG skeleton release (Kinect v2, one folder per subject).

Layout of the release (``SampleXXXX`` = ``"Sample%04d" % subject_id``, subjects 1..40)::

    <root>/Sample0001/Sample0001_skeleton.csv     # one row per frame, no header, 275 columns
    <root>/Sample0001/Sample0001_finelabels.csv   # one row per clip: "label,start,end"
    <root>/Sample0001/Sample0001_data.csv         # one row: "numFrames,fps,maxDepth"

MiGA distributes the same folders under split folders (``smg_skeleton_train/``,
``smg_skeleton_validate/``, ``smg_skeleton_test/``); :func:`find_smg_samples` accepts both.

A skeleton row holds the 25 Kinect-v2 joints (JointType order) x 11 floats; joint ``j`` starts
at column ``11 * j``: ``[0:3]`` world x, y, z in metres, ``[3:7]`` orientation quaternion,
``[7:9]`` colour-image pixel x, y, ``[9:11]`` unused by the official code. Labels are 1..17
(17 = non-micro-gesture) and frames are 0-based row indices. Whether ``end`` is inclusive is
not documented: the official classification code slices rows ``[start, end)``, which is the
default here (``end_inclusive=False``).
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

import numpy as np

from mgr.classes import smg_label_from_raw

from .common import (
    ClipRecord,
    DataFormatError,
    OnError,
    PathLike,
    SequenceRecord,
    _check_on_error,
    _cut_clips,
    _parse_int,
    _read_clip_rows,
    _read_keypoint_table,
    _read_text_rows,
    _require_dir,
    _subdir_names,
    load_each,
)

__all__ = [
    "SMG_NUM_JOINTS",
    "SMG_SPLITS",
    "SMG_VALUES_PER_JOINT",
    "find_smg_samples",
    "load_smg_sequence",
    "load_smg_split",
    "load_smg_subject",
    "read_smg_data_csv",
    "read_smg_finelabels",
    "read_smg_skeleton_csv",
]

Coords = Literal["world", "pixel"]

#: Kinect-v2 joints per frame.
SMG_NUM_JOINTS = 25
#: Floats per joint in ``*_skeleton.csv``.
SMG_VALUES_PER_JOINT = 11

# Per-joint value ranges returned for each ``coords`` choice.
_COORD_CHANNELS: dict[str, slice] = {"world": slice(0, 3), "pixel": slice(7, 9)}

_SAMPLE_DIR_RE = re.compile(r"Sample(\d{4})")

#: Subject ids per split. ``"official"``: subjects 1-35 train, 36-40 test (the official code
#: has no separate validation set and validates on the test subjects, so ``val`` equals
#: ``test`` there). ``"miga"``: the MiGA challenge split, 1-30 train, 31-35 val, 36-40 test.
SMG_SPLITS: dict[str, dict[str, range]] = {
    "official": {"train": range(1, 36), "val": range(36, 41), "test": range(36, 41)},
    "miga": {"train": range(1, 31), "val": range(31, 36), "test": range(36, 41)},
}


def read_smg_skeleton_csv(path: PathLike) -> np.ndarray:
    """Read a ``SampleXXXX_skeleton.csv`` file.

    Args:
        path: the csv file (one row per frame, no header, at least 275 columns; further
            columns are ignored).

    Returns:
        ``(T, 25, 11)`` float32 array; row ``t`` is frame ``t`` (0-based), the last axis the
        11 per-joint values in file order (see the module docstring).

    Raises:
        FileNotFoundError: if the file does not exist.
        DataFormatError: naming the file and row, for an empty file, fewer than 275 columns,
            a non-numeric cell or a NaN / infinite / missing value.
    """
    return _read_keypoint_table(
        Path(path), first_column=0, num_joints=SMG_NUM_JOINTS, channels=SMG_VALUES_PER_JOINT
    )


def read_smg_finelabels(path: PathLike) -> list[tuple[int, int, int]]:
    """Read a ``SampleXXXX_finelabels.csv`` file.

    Args:
        path: the csv file (``label,start,end`` integer rows, no header).

    Returns:
        ``(label, start, end)`` per clip in file order: ``label`` 0-based (raw 1..17 ->
        0..16), ``start``/``end`` the frame indices as written (see ``end_inclusive`` of
        :func:`load_smg_subject`).

    Raises:
        FileNotFoundError: if the file does not exist.
        DataFormatError: naming the file and 1-based row, for a wrong column count, a
            non-integer cell, an unknown label id, ``start < 0`` or ``end < start``.
    """
    return _read_clip_rows(Path(path), smg_label_from_raw)


def read_smg_data_csv(path: PathLike) -> tuple[int, float, int]:
    """Read a ``SampleXXXX_data.csv`` file.

    Args:
        path: the csv file (a single row ``numFrames,fps,maxDepth``).

    Returns:
        ``(num_frames, fps, max_depth)``.

    Raises:
        FileNotFoundError: if the file does not exist.
        DataFormatError: naming the file, unless it has exactly one non-blank row of three
            numbers (integers for ``numFrames`` and ``maxDepth``).
    """
    path = Path(path)
    rows = _read_text_rows(path)
    if len(rows) != 1:
        raise DataFormatError(f"{path}: expected 1 row (numFrames,fps,maxDepth), got {len(rows)}")
    cells = rows[0]
    if len(cells) != 3:
        raise DataFormatError(
            f"{path}, row 1: expected 3 columns (numFrames,fps,maxDepth), got {len(cells)}"
        )
    num_frames = _parse_int(cells[0], path=path, row=1, name="numFrames")
    max_depth = _parse_int(cells[2], path=path, row=1, name="maxDepth")
    try:
        fps = float(cells[1])
    except ValueError:
        fps = math.nan
    if not math.isfinite(fps):
        raise DataFormatError(f"{path}, row 1: fps {cells[1]!r} is not a finite number")
    return num_frames, fps, max_depth


def find_smg_samples(root: PathLike) -> dict[int, Path]:
    """Find the ``SampleXXXX`` skeleton folders directly under ``root`` or one level below it.

    The second level covers the MiGA layout (``root/smg_skeleton_train/Sample0001``, ...).
    Folders without a ``SampleXXXX_skeleton.csv`` (e.g. the RGB release's
    ``smg_rgb/Sample0001/`` holding only ``Sample0001_color.mp4``) are not skeleton folders.

    Args:
        root: release folder.

    Returns:
        Subject id -> sample folder, sorted by subject id (empty if none is found).

    Raises:
        FileNotFoundError: if ``root`` does not exist.
        DataFormatError: if a subject's folder appears twice (naming both paths).
    """
    root = Path(root)
    _require_dir(root)
    candidates = [p for p in sorted(root.iterdir()) if p.is_dir()]
    nested = [
        p
        for parent in candidates
        if not _SAMPLE_DIR_RE.fullmatch(parent.name)
        for p in sorted(parent.iterdir())
        if p.is_dir()
    ]
    found: dict[int, Path] = {}
    for path in candidates + nested:
        match = _SAMPLE_DIR_RE.fullmatch(path.name)
        if match is None or not (path / f"{path.name}_skeleton.csv").is_file():
            continue
        subject = int(match.group(1))
        if subject in found:
            raise DataFormatError(
                f"SMG subject {subject} found twice under {root}: {found[subject]} and {path}"
            )
        found[subject] = path
    return dict(sorted(found.items()))


def load_smg_subject(
    sample_dir: PathLike,
    *,
    coords: Coords = "world",
    end_inclusive: bool = False,
    on_error: OnError = "raise",
) -> list[ClipRecord]:
    """Cut all clips of one subject folder ``SampleXXXX/``.

    ``SampleXXXX_data.csv`` is optional: when present, its ``numFrames`` is compared with the
    number of skeleton rows and a mismatch only warns (naming both numbers), because clips are
    cut from, and bounds-checked against, the skeleton rows themselves.

    Args:
        sample_dir: the ``SampleXXXX`` folder; its name gives the subject id.
        coords: ``"world"`` for ``(x, y, z)`` Kinect world coordinates in metres, ``"pixel"``
            for ``(x, y)`` colour-image pixel coordinates.
        end_inclusive: whether the finelabels ``end`` frame belongs to the clip. ``False``
            (default) follows the official classification code, which takes rows
            ``[start, end)``; the release itself does not say.
        on_error: what to do with a clip that is empty or runs past the skeleton sequence:
            ``"raise"`` a :class:`DataFormatError`, or ``"warn"`` and skip it. Malformed files
            always raise.

    Returns:
        One :class:`ClipRecord` per kept clip, in finelabels order, with ``sample_id``
        ``"Sample%04d" % subject + str(k)`` (official naming, no separator; ``k`` = 0-based
        finelabels row), ``keypoint`` ``(T, 25, 3)`` (world) or ``(T, 25, 2)`` (pixel)
        float32, ``end`` always stored inclusive (``end - 1`` of the file when exclusive),
        ``video_id`` the folder name and ``subject`` the subject id. Clips whose selected
        coordinates are all zero are skipped with a warning.

    Raises:
        ValueError: for a bad ``coords``/``on_error`` or a folder not named ``SampleXXXX``.
        FileNotFoundError: if the folder, its skeleton or its finelabels file does not exist.
        DataFormatError: for a malformed file, or a bad clip with ``on_error="raise"``.
    """
    _check_on_error(on_error)
    if coords not in _COORD_CHANNELS:
        raise ValueError(f"coords must be one of {list(_COORD_CHANNELS)}, got {coords!r}")
    sample_dir = Path(sample_dir)
    match = _SAMPLE_DIR_RE.fullmatch(sample_dir.name)
    if match is None:
        raise ValueError(f"{sample_dir}: not an SMG sample folder (expected e.g. 'Sample0001')")
    _require_dir(sample_dir)
    subject = int(match.group(1))
    name = f"Sample{subject:04d}"
    label_path = sample_dir / f"{name}_finelabels.csv"
    skeleton_path = sample_dir / f"{name}_skeleton.csv"
    data_path = sample_dir / f"{name}_data.csv"

    clips = read_smg_finelabels(label_path)
    skeleton = read_smg_skeleton_csv(skeleton_path)
    if data_path.is_file():
        num_frames, _, _ = read_smg_data_csv(data_path)
        if num_frames != skeleton.shape[0]:
            warnings.warn(
                f"{data_path}: numFrames is {num_frames} but {skeleton_path} has "
                f"{skeleton.shape[0]} rows; clips are cut from the skeleton rows",
                stacklevel=2,
            )
    sequence = skeleton[:, :, _COORD_CHANNELS[coords]]

    # Records store the inclusive end frame whatever the file's convention.
    shift = 0 if end_inclusive else 1
    return _cut_clips(
        sequence,
        [(label, start, end - shift) for label, start, end in clips],
        [f"{name}{k}" for k in range(len(clips))],
        video_id=name,
        label_path=label_path,
        sequence_path=skeleton_path,
        on_error=on_error,
        subject=subject,
    )


def load_smg_split(
    root: PathLike,
    subjects: Iterable[int],
    *,
    coords: Coords = "world",
    end_inclusive: bool = False,
    on_error: OnError = "raise",
) -> list[ClipRecord]:
    """Cut all clips of the given subjects, e.g. ``SMG_SPLITS["miga"]["train"]``.

    Args:
        root: release folder (``SampleXXXX`` folders directly under it or one level below).
        subjects: subject ids to load.
        coords: see :func:`load_smg_subject`.
        end_inclusive: see :func:`load_smg_subject`.
        on_error: see :func:`load_smg_subject`.

    Returns:
        Clip records of the subjects in ascending subject order, clips in finelabels order.

    Raises:
        FileNotFoundError: if ``root`` or a requested subject's folder does not exist (the
            message names the missing subjects and the folders found).
        DataFormatError: see :func:`find_smg_samples` and :func:`load_smg_subject`.
    """
    root = Path(root)
    samples = find_smg_samples(root)
    wanted = sorted(set(subjects))
    missing = [s for s in wanted if s not in samples]
    if missing:
        if samples:
            found = f"found subjects {list(samples)}"
        else:
            found = f"no SampleXXXX folder found; folders under it: {_subdir_names(root)}"
        raise FileNotFoundError(
            f"SMG subjects {missing} have no Sample folder under {root} (or one level below); "
            f"{found}"
        )
    return load_each(
        [samples[subject] for subject in wanted],
        lambda folder: load_smg_subject(
            folder, coords=coords, end_inclusive=end_inclusive, on_error=on_error
        ),
    )


def load_smg_sequence(
    sample_dir: PathLike, *, coords: Coords = "world", end_inclusive: bool = False
) -> SequenceRecord:
    """One subject's whole sequence with every finelabels instance (online recognition).

    Args:
        sample_dir: the ``SampleXXXX`` folder.
        coords: see :func:`load_smg_subject`.
        end_inclusive: see :func:`load_smg_subject`; segments are stored inclusive.

    Returns:
        A :class:`SequenceRecord` with ``keypoint (T, 25, C)``.

    Raises:
        FileNotFoundError: for a missing folder or file.
        DataFormatError: naming file and row, for a malformed file or an instance past
            the end of the skeleton.
    """
    if coords not in _COORD_CHANNELS:
        raise ValueError(f"coords must be one of {list(_COORD_CHANNELS)}, got {coords!r}")
    sample_dir = Path(sample_dir)
    match = _SAMPLE_DIR_RE.fullmatch(sample_dir.name)
    if match is None:
        raise ValueError(f"{sample_dir}: not an SMG sample folder (expected e.g. 'Sample0001')")
    subject = int(match.group(1))
    name = f"Sample{subject:04d}"
    label_path = sample_dir / f"{name}_finelabels.csv"
    skeleton_path = sample_dir / f"{name}_skeleton.csv"
    rows = read_smg_finelabels(label_path)
    skeleton = read_smg_skeleton_csv(skeleton_path)
    shift = 0 if end_inclusive else 1
    segments = np.array([(s, e - shift) for _, s, e in rows], dtype=np.int64).reshape(-1, 2)
    for k, (start, end) in enumerate(segments.tolist(), start=1):
        if end >= len(skeleton) or end < start:
            raise DataFormatError(
                f"{label_path}, row {k}: instance frames {start}..{end} do not fit "
                f"{skeleton_path} ({len(skeleton)} rows)"
            )
    return SequenceRecord(
        video_id=name,
        keypoint=np.ascontiguousarray(skeleton[:, :, _COORD_CHANNELS[coords]]),
        segments=segments,
        labels=np.array([label for label, _, _ in rows], dtype=np.int64),
        source=str(skeleton_path),
        subject=subject,
    )
