"""Readers for the MiGA challenge releases of iMiGUE: MiGA'23 arrays and the MiGA'25 xlsx.

**MiGA'23 processed arrays** (official ST-GCN baseline; VUT's PoseC3D solution)::

    <root>/train_data.npy    float32 (N, C=3, T=90, V=22, M=1), channels (x, y, score)
    <root>/train_label.pkl   pickle of (names: list[str], labels: list[int]), labels 0..31
    <root>/valid_data.npy, valid_label.pkl    (VUT names them val_data.npy, val_label.pkl)
    <root>/test_data.npy, test_label.pkl

Clips longer than ``T`` keep their last ``T`` frames; shorter ones are zero-padded at the end.
The 22 joints are the MiGA baseline's subset of ``_light_hand.csv`` (layout ``imigue_miga_22``
in :mod:`mgr.skeletons`).

**MiGA'25 raw release** (Kaggle, 3rd MiGA), same split folders as MiGA'23::

    <root>/imigue_skeleton_train/<vid>/<vid>_openpose.xlsx   # T rows x 411 columns, no header
    <root>/imigue_skeleton_train/<vid>/<vid>_label.csv       # "label,start,end", as MiGA'23
    <root>/imigue_skeleton_validate/<vid>/...
    <root>/imigue_skeleton_test/<vid>/...

An xlsx row holds the 137 OpenPose keypoints x ``(x, y, confidence)`` in the order BODY_25,
face 70, left hand 21, right hand 21 (layout ``openpose_137``). The RGB clips come as
``<vid>_<k>.mp4`` with list files ``"<vid>_<k>.mp4 <label>"`` (0-based; test labels all 0).

Loading pickles runs code from the file: only read label files from a trusted source.
"""

from __future__ import annotations

import operator
import pickle
import re
import warnings
from pathlib import Path
from typing import Literal

import numpy as np

from mgr.classes import get_classes

from .common import (
    ClipRecord,
    DataFormatError,
    OnError,
    PathLike,
    _check_on_error,
    _cut_clips,
    _require_dir,
    _require_file,
    _subdir_names,
    load_each,
)
from .imigue import IMIGUE_SPLIT_DIRS, _video_dirs, read_imigue_label_csv
from .ma52 import _read_list_lines
from .openpose_xlsx import OPENPOSE_NUM_JOINTS, read_openpose_xlsx, write_openpose_xlsx

__all__ = [
    "MIGA23_ARRAY_PREFIXES",
    "MIGA23_NUM_JOINTS",
    "OPENPOSE_NUM_JOINTS",
    "load_miga23_arrays",
    "load_miga25_split",
    "load_miga25_video",
    "read_clip_list",
    "read_openpose_xlsx",
    "write_openpose_xlsx",
]

Split = Literal["train", "val", "test"]

#: Split -> file-name prefixes tried in order: the official ``valid_*``, then VUT's ``val_*``.
MIGA23_ARRAY_PREFIXES: dict[str, tuple[str, ...]] = {
    "train": ("train",),
    "val": ("valid", "val"),
    "test": ("test",),
}

#: Joints ``V`` of the MiGA'23 arrays (layout ``imigue_miga_22``).
MIGA23_NUM_JOINTS = 22
_CHANNELS = 3  # (x, y, confidence) in both releases

_SAMPLE_NAME_RE = re.compile(r"(.+)_(\d+)")


# ----------------------------------------------------------------------------- MiGA'23 arrays


def _find_array_files(root: Path, split: str) -> tuple[Path, Path]:
    """``(data .npy, label .pkl)`` of a split, trying :data:`MIGA23_ARRAY_PREFIXES` in order."""
    tried = []
    for prefix in MIGA23_ARRAY_PREFIXES[split]:
        data_path = root / f"{prefix}_data.npy"
        if data_path.is_file():
            return data_path, root / f"{prefix}_label.pkl"
        tried.append(data_path.name)
    raise FileNotFoundError(f"MiGA'23 {split!r} arrays not found in {root}: tried {tried}")


def _read_label_pkl(path: Path) -> tuple[list, list]:
    """The ``(names, labels)`` lists of a MiGA'23 label pickle, unvalidated per entry."""
    _require_file(path)
    try:
        with path.open("rb") as f:
            content = pickle.load(f)
    # Unpickling fails with many exception types (UnpicklingError, EOFError, ImportError ...).
    except Exception as err:
        raise DataFormatError(
            f"{path}: not a readable pickle ({type(err).__name__}: {err})"
        ) from err
    if not isinstance(content, tuple | list) or len(content) != 2:
        raise DataFormatError(
            f"{path}: expected a pickled 2-tuple (names, labels), got {type(content).__name__}"
            + (f" of length {len(content)}" if isinstance(content, tuple | list) else "")
        )
    names, labels = content
    try:
        return list(names), list(labels)
    except TypeError as err:
        raise DataFormatError(f"{path}: names and labels must be sequences ({err})") from err


def _load_npy(path: Path, mmap: bool) -> np.ndarray:
    _require_file(path)
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, EOFError, OSError) as err:
        raise DataFormatError(f"{path}: not a readable .npy array ({err})") from err


def _check_array_shape(data: np.ndarray, path: Path) -> None:
    if data.ndim != 5:
        raise DataFormatError(
            f"{path}: array of shape {data.shape}, expected 5 dimensions (N, C=3, T, V=22, M=1)"
        )
    _, c, t, v, m = data.shape
    expected = {"C": (c, _CHANNELS), "V": (v, MIGA23_NUM_JOINTS), "M": (m, 1)}
    for axis, (got, want) in expected.items():
        if got != want:
            raise DataFormatError(
                f"{path}: array of shape {data.shape} has {axis}={got}, expected {axis}={want} "
                "(layout (N, C=3, T, V=22, M=1))"
            )
    if t == 0:
        raise DataFormatError(f"{path}: array of shape {data.shape} has no frames (T=0)")
    if not np.issubdtype(data.dtype, np.floating):
        raise DataFormatError(f"{path}: array dtype {data.dtype}, expected float32")


def _sample_problem(
    name: object, label: object, sample: np.ndarray, num_classes: int
) -> str | None:
    """What is wrong with one sample (``sample`` shaped ``(C, T, V, M)``), or ``None``."""
    if not isinstance(name, str) or _SAMPLE_NAME_RE.fullmatch(name) is None:
        return f"name {name!r} is not '<video id>_<clip index>'"
    try:
        value = operator.index(label)  # type: ignore[arg-type]
    except TypeError:
        return f"label {label!r} is not an integer"
    if not 0 <= value < num_classes:
        return f"label {value} is outside 0..{num_classes - 1}"
    finite = np.isfinite(sample)
    if not finite.all():
        channel, frame, joint, _ = np.unravel_index(np.argmin(finite), sample.shape)
        bad = sample[channel, frame, joint, 0]
        return f"frame {frame}, joint {joint}, channel {channel} is {bad} (non-finite value)"
    return None


def load_miga23_arrays(
    root: PathLike,
    split: Split,
    *,
    trim_padding: bool = True,
    mmap: bool = True,
    on_error: OnError = "raise",
) -> list[ClipRecord]:
    """Read one split of the MiGA'23 processed arrays into clip records.

    The records are already in the ``imigue_miga_22`` joint subset (a subset of
    ``imigue_light_hand_35``, the layout :func:`mgr.data.readers.imigue.load_imigue_split`
    returns); do not select that subset from them again.

    Args:
        root: folder holding ``{train,valid,test}_data.npy`` and ``*_label.pkl``.
        split: ``"train"``, ``"val"`` or ``"test"``. ``"val"`` reads ``valid_*`` (official
            name) or, if absent, ``val_*`` (VUT's name).
        trim_padding: drop the zero frames after the last frame with any non-zero value (the
            arrays pad at the end). All-zero frames earlier in a clip are missed detections
            and stay. ``False`` keeps all ``T`` frames.
        mmap: memory-map the ``.npy`` (each record still gets its own in-memory copy, so the
            full array is never loaded at once).
        on_error: for a bad sample (name not ``<vid>_<k>``, non-integer label or label outside
            0..31, non-finite value): ``"raise"`` a :class:`DataFormatError`, or ``"warn"``
            and skip it. File-level problems always raise.

    Returns:
        One :class:`ClipRecord` per kept sample, in array order: ``keypoint`` ``(T, 22, 3)``
        float32 ``(x, y, score)``, ``video_id`` from the name ``<vid>_<k>``, ``start`` 0 and
        ``end`` ``T - 1`` (the original frame numbers are not stored in the arrays),
        ``subject`` ``None``, ``source`` the ``.npy`` path. Samples whose values are all zero
        (OpenPose found nobody) are skipped with a warning.

    Raises:
        ValueError: for an unknown ``split`` or ``on_error``.
        FileNotFoundError: if the data or label file of the split is missing.
        DataFormatError: naming the file (and sample index and name where it applies), for an
            unreadable file, an array not shaped ``(N, 3, T, 22, 1)`` or not floating point, a
            label file that is not ``(names, labels)`` or whose lengths differ from ``N``, or
            a bad sample with ``on_error="raise"``.
    """
    _check_on_error(on_error)
    if split not in MIGA23_ARRAY_PREFIXES:
        raise ValueError(
            f"unknown MiGA'23 split {split!r}; expected one of {list(MIGA23_ARRAY_PREFIXES)}"
        )
    root = Path(root)
    _require_dir(root)
    data_path, label_path = _find_array_files(root, split)
    names, labels = _read_label_pkl(label_path)
    data = _load_npy(data_path, mmap)
    _check_array_shape(data, data_path)
    num = data.shape[0]
    if len(names) != num or len(labels) != num:
        raise DataFormatError(
            f"{label_path}: {len(names)} names and {len(labels)} labels for the {num} samples "
            f"of {data_path}"
        )
    num_classes = len(get_classes("imigue"))

    records: list[ClipRecord] = []
    for index, (name, label) in enumerate(zip(names, labels, strict=True)):
        sample = np.asarray(data[index])  # (C, T, V, M); reads this sample from the memory map
        problem = _sample_problem(name, label, sample, num_classes)
        if problem is not None:
            message = f"{data_path} / {label_path.name}, sample {index} ({name!r}): {problem}"
            if on_error == "raise":
                raise DataFormatError(message)
            warnings.warn(f"skipping bad sample: {message}", stacklevel=2)
            continue
        present = sample.any(axis=(0, 2, 3))  # (T,): frame has any non-zero value
        if not present.any():
            warnings.warn(
                f"skipping sample {index} ({name!r}) of {data_path}: all keypoints are zero "
                "(no person detected)",
                stacklevel=2,
            )
            continue
        length = int(np.flatnonzero(present)[-1]) + 1 if trim_padding else len(present)
        frames = sample[:, :length, :, 0].transpose(1, 2, 0)  # (T, V, C)
        records.append(
            ClipRecord(
                sample_id=name,
                label=operator.index(label),
                keypoint=np.array(frames, dtype=np.float32, order="C"),
                video_id=name.rsplit("_", 1)[0],
                start=0,
                end=length - 1,
                source=str(data_path),
            )
        )
    return records


def load_miga25_video(video_dir: PathLike, *, on_error: OnError = "raise") -> list[ClipRecord]:
    """Cut all clips of one MiGA'25 video folder ``<vid>/``.

    Args:
        video_dir: folder holding ``<vid>_openpose.xlsx`` and ``<vid>_label.csv``; its name is
            the video id.
        on_error: what to do with a clip that runs past the skeleton sequence: ``"raise"`` a
            :class:`DataFormatError`, or ``"warn"`` and skip it. Malformed files always raise.

    Returns:
        One :class:`ClipRecord` per kept clip, in label-file order: ``sample_id``
        ``f"{vid}_{k}"`` (``k`` = 0-based label row), ``label`` 0-based (raw 99 -> 31),
        ``keypoint`` ``(T, 137, 3)`` float32 in layout ``openpose_137`` with
        ``T = end - start + 1``, ``source`` the xlsx path, ``subject`` ``None``. Clips whose
        keypoints are all zero are skipped with a warning.

    Raises:
        FileNotFoundError: if the folder or one of its two files does not exist.
        DataFormatError: for a malformed file, or a clip out of range with
            ``on_error="raise"``.
    """
    _check_on_error(on_error)
    video_dir = Path(video_dir)
    _require_dir(video_dir)
    vid = video_dir.name
    label_path = video_dir / f"{vid}_label.csv"
    skeleton_path = video_dir / f"{vid}_openpose.xlsx"
    clips = read_imigue_label_csv(label_path)  # cheap: fail on a bad label file before the xlsx
    skeleton = read_openpose_xlsx(skeleton_path)
    return _cut_clips(
        skeleton,
        clips,
        [f"{vid}_{k}" for k in range(len(clips))],
        video_id=vid,
        label_path=label_path,
        sequence_path=skeleton_path,
        on_error=on_error,
    )


def load_miga25_split(
    root: PathLike, split: Split, *, on_error: OnError = "raise"
) -> list[ClipRecord]:
    """Cut all clips of one split folder of the MiGA'25 release.

    Args:
        root: folder holding the ``imigue_skeleton_*`` split folders.
        split: ``"train"``, ``"val"`` or ``"test"`` (folder names as MiGA'23, see
            :data:`mgr.data.readers.imigue.IMIGUE_SPLIT_DIRS`).
        on_error: policy for clips out of range, see :func:`load_miga25_video`.

    Returns:
        Clip records of the videos in ascending video-id order, clips in label-file order.

    Raises:
        ValueError: for an unknown ``split`` or ``on_error``.
        FileNotFoundError: if the split folder is missing (the message lists the folders under
            ``root``) or a video folder lacks one of its files.
        DataFormatError: see :func:`load_miga25_video`.
    """
    _check_on_error(on_error)
    if split not in IMIGUE_SPLIT_DIRS:
        raise ValueError(
            f"unknown MiGA'25 split {split!r}; expected one of {list(IMIGUE_SPLIT_DIRS)}"
        )
    root = Path(root)
    split_dir = root / IMIGUE_SPLIT_DIRS[split]
    if not split_dir.is_dir():
        where = f"folders under it: {_subdir_names(root)}" if root.is_dir() else "it does not exist"
        raise FileNotFoundError(
            f"MiGA'25 {split!r} split folder {split_dir} not found under root {root}; {where}"
        )
    return load_each(
        _video_dirs(split_dir).values(), lambda path: load_miga25_video(path, on_error=on_error)
    )


def read_clip_list(path: PathLike) -> list[tuple[str, int]]:
    """Read a MiGA'25 RGB clip list (``"<vid>_<k>.mp4 <label>"`` per line).

    Args:
        path: the list file; CRLF or LF line endings, blank lines ignored.

    Returns:
        ``(file name as written, 0-based label)`` per line, in file order; the sample id is
        the file name without ``.mp4``. Test lists carry a dummy label 0.

    Raises:
        FileNotFoundError: if the file does not exist.
        DataFormatError: naming the file and 1-based line, for a line without exactly two
            fields, a non-integer label or a label outside 0..31.
    """
    num_classes = len(get_classes("imigue"))
    return [
        (name, label) for _, name, label in _read_list_lines(Path(path), num_classes=num_classes)
    ]
