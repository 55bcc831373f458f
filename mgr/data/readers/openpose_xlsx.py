"""The MiGA'25 ``<vid>_openpose.xlsx`` skeleton file of iMiGUE: read and write.

One row per frame, no header, 411 columns: the 137 OpenPose keypoints (BODY_25,
face 70, left hand 21, right hand 21; layout ``openpose_137``) x ``(x, y,
confidence)``. The iMiGUE reader (:mod:`mgr.data.readers.imigue`, ``source="miga25"``)
and the MiGA'25 split reader (:mod:`mgr.data.readers.miga`) both read it, so it
lives apart from both.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .common import DataFormatError, PathLike, _require_file

__all__ = ["OPENPOSE_NUM_JOINTS", "read_openpose_xlsx", "write_openpose_xlsx"]

#: Keypoints per xlsx row of the MiGA'25 release (layout ``openpose_137``).
OPENPOSE_NUM_JOINTS = 137
_CHANNELS = 3  # (x, y, confidence)
_XLSX_COLUMNS = OPENPOSE_NUM_JOINTS * _CHANNELS  # 411


def _describe_bad_cell(table: pd.DataFrame, values: np.ndarray, path: Path) -> str:
    """Message for the first cell of ``values`` that is not a finite number."""
    row, col = np.unravel_index(np.argmin(np.isfinite(values)), values.shape)
    joint, channel = divmod(int(col), _CHANNELS)
    cell = table.iat[row, col]
    if isinstance(cell, str):
        what = f"{cell!r} is not a number"
    elif pd.isna(cell):
        what = "is empty or NaN"
    else:
        what = f"{cell!r} is not a finite number"
    return f"{path}, row {row + 1} (frame {row}), joint {joint}, channel {channel}: cell {what}"


def read_openpose_xlsx(path: PathLike) -> np.ndarray:
    """Read a MiGA'25 ``<vid>_openpose.xlsx`` skeleton file (first sheet).

    Parsing xlsx is slow (openpyxl, pure Python): expect seconds for a long video. Cache the
    result (e.g. as ``.npy``) when reading a release more than once.

    Args:
        path: the workbook; one row per frame, no header, 411 columns.

    Returns:
        ``(T, 137, 3)`` float32 array of ``(x, y, confidence)`` per keypoint (BODY_25, face 70,
        left hand 21, right hand 21) and frame; row ``t`` is frame ``t`` (0-based).

    Raises:
        FileNotFoundError: if the file does not exist.
        DataFormatError: naming the file, for an unreadable workbook, an empty sheet, a column
            count other than 411, or (naming the row, joint and channel) a non-numeric, empty
            or non-finite cell.
    """
    path = Path(path)
    _require_file(path)
    try:
        table = pd.read_excel(path, header=None, engine="openpyxl")
    # openpyxl and zipfile fail with many exception types on a corrupt workbook.
    except Exception as err:
        raise DataFormatError(f"{path}: not a readable xlsx ({type(err).__name__}: {err})") from err
    if table.empty:
        raise DataFormatError(f"{path}: the sheet is empty, expected one row per frame")
    if table.shape[1] != _XLSX_COLUMNS:
        raise DataFormatError(
            f"{path}: {table.shape[1]} columns, expected {_XLSX_COLUMNS} "
            f"({OPENPOSE_NUM_JOINTS} keypoints x (x, y, confidence))"
        )
    # Text cells become NaN here and are told apart from empty ones when reporting.
    values = table.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    if not np.isfinite(values).all():
        raise DataFormatError(_describe_bad_cell(table, values, path))
    return values.astype(np.float32).reshape(-1, OPENPOSE_NUM_JOINTS, _CHANNELS)


def write_openpose_xlsx(path: PathLike, frames: np.ndarray) -> None:
    """Write keypoints in the MiGA'25 ``<vid>_openpose.xlsx`` layout (inverse of the reader).

    Args:
        path: the ``.xlsx`` file to write (its folder must exist).
        frames: ``(T, 137, 3)`` finite ``(x, y, confidence)`` values, ``T >= 1``.

    Raises:
        ValueError: if ``frames`` has another shape, no frames or a non-finite value.
    """
    frames = np.asarray(frames)
    if frames.ndim != 3 or frames.shape[1:] != (OPENPOSE_NUM_JOINTS, _CHANNELS) or not len(frames):
        raise ValueError(
            f"frames must be shaped (T >= 1, {OPENPOSE_NUM_JOINTS}, {_CHANNELS}), "
            f"got {frames.shape}"
        )
    if not np.isfinite(frames).all():
        raise ValueError("frames must be finite")
    table = pd.DataFrame(frames.reshape(len(frames), _XLSX_COLUMNS).astype(np.float64))
    table.to_excel(path, header=False, index=False, engine="openpyxl")
