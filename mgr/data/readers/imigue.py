"""Reader for the raw iMiGUE skeleton release distributed for MiGA (IJCAI 2023).

Layout of the release (one folder per video, ``<vid>`` = 4-digit zero-padded video id)::

    <root>/imigue_skeleton_train/<vid>/<vid>_light_hand.csv
    <root>/imigue_skeleton_train/<vid>/<vid>_label.csv
    <root>/imigue_skeleton_validate/<vid>/...
    <root>/imigue_skeleton_test/<vid>/...

``<vid>_light_hand.csv`` has one row per frame and no header. Column 0 (a frame index) is
skipped; then come 35 joints x ``(x, y, confidence)``: the 25 OpenPose BODY_25 joints in
BODY_25 order, 5 right-hand points and 5 left-hand points. Any further columns are ignored.

``<vid>_label.csv`` has one row per clip and no header: ``gestureID,startFrame,endFrame``,
with ``gestureID`` in 1..31 or 99 (non-micro-gesture) and 0-based, **inclusive** frames.
Clip ``k`` (0-based row of the label csv) is named ``f"{vid}_{k}"``, as in the official
MiGA baseline and submission files.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

import numpy as np

from mgr.classes import imigue_label_from_raw

from .common import (
    ClipRecord,
    DataFormatError,
    OnError,
    PathLike,
    SequenceRecord,
    _check_on_error,
    _cut_clips,
    _read_clip_rows,
    _read_keypoint_table,
    _require_dir,
    _subdir_names,
    load_each,
)
from .openpose_xlsx import read_openpose_xlsx

__all__ = [
    "IMIGUE_NUM_JOINTS",
    "IMIGUE_SPLIT_DIRS",
    "MIGA_TEST_VIDEOS",
    "MIGA_TRAIN_VIDEOS",
    "MIGA_VAL_VIDEOS",
    "find_imigue_videos",
    "load_imigue_sequence",
    "load_imigue_split",
    "load_imigue_video",
    "read_imigue_label_csv",
    "read_light_hand_csv",
]


#: Split name -> folder name of the MiGA'23 release.
IMIGUE_SPLIT_DIRS: dict[str, str] = {
    "train": "imigue_skeleton_train",
    "val": "imigue_skeleton_validate",
    "test": "imigue_skeleton_test",
}

#: Joints per frame of ``*_light_hand.csv``: 25 BODY_25 + 5 right-hand + 5 left-hand points.
IMIGUE_NUM_JOINTS = 35
_CHANNELS = ("x", "y", "confidence")

# Video folders are the numeric video ids; anything else (``__MACOSX``, ``.DS_Store``) is not.
_VIDEO_DIR_RE = re.compile(r"\d+")

# MiGA'23 video-id split lists. Validation: the 10 videos of the official baseline's
# Submission.csv (777 clips); train: the other 241 videos of its train_label.pkl (12,893 clips;
# mikecheninoulu/SMG); test: the 104 videos of the 4,562 test clip ids (VUT-HFUT/MiGA2023_Track1
# ensemble/test_id.txt). MiGA'25 reuses the same validation videos.
# fmt: off
MIGA_TRAIN_VIDEOS: tuple[str, ...] = (
    "0012", "0013", "0014", "0015", "0016", "0017", "0018", "0019", "0022", "0023", "0025",
    "0026", "0027", "0028", "0029", "0030", "0031", "0032", "0035", "0036", "0037", "0038",
    "0039", "0040", "0043", "0045", "0046", "0047", "0048", "0049", "0050", "0051", "0052",
    "0053", "0055", "0056", "0057", "0058", "0059", "0060", "0061", "0062", "0063", "0064",
    "0065", "0066", "0068", "0073", "0075", "0076", "0082", "0083", "0084", "0086", "0087",
    "0089", "0091", "0093", "0094", "0095", "0096", "0097", "0099", "0100", "0101", "0102",
    "0103", "0104", "0107", "0108", "0113", "0115", "0117", "0119", "0120", "0121", "0122",
    "0124", "0131", "0132", "0134", "0136", "0137", "0140", "0141", "0143", "0145", "0147",
    "0149", "0151", "0152", "0153", "0157", "0158", "0159", "0160", "0162", "0164", "0165",
    "0170", "0171", "0172", "0173", "0174", "0175", "0176", "0178", "0179", "0180", "0181",
    "0183", "0184", "0185", "0186", "0187", "0188", "0191", "0193", "0195", "0197", "0199",
    "0214", "0216", "0222", "0223", "0225", "0230", "0231", "0232", "0233", "0234", "0236",
    "0239", "0240", "0246", "0247", "0248", "0249", "0250", "0251", "0252", "0253", "0254",
    "0256", "0257", "0258", "0259", "0260", "0261", "0263", "0264", "0266", "0267", "0268",
    "0269", "0270", "0272", "0273", "0275", "0276", "0277", "0279", "0282", "0283", "0289",
    "0290", "0291", "0293", "0294", "0296", "0297", "0298", "0299", "0300", "0301", "0302",
    "0304", "0305", "0306", "0308", "0310", "0311", "0312", "0313", "0314", "0315", "0316",
    "0317", "0323", "0324", "0325", "0328", "0330", "0331", "0332", "0333", "0334", "0335",
    "0336", "0337", "0338", "0339", "0340", "0341", "0342", "0343", "0344", "0350", "0357",
    "0358", "0359", "0360", "0363", "0365", "0366", "0367", "0369", "0374", "0376", "0377",
    "0379", "0381", "0382", "0386", "0392", "0394", "0397", "0399", "0400", "0401", "0402",
    "0403", "0404", "0405", "0407", "0408", "0419", "0420", "0430", "0433", "0435",
)

MIGA_VAL_VIDEOS: tuple[str, ...] = (
    "0001", "0002", "0003", "0004", "0006", "0007", "0008", "0009", "0010", "0011",
)

MIGA_TEST_VIDEOS: tuple[str, ...] = (
    "0054", "0067", "0069", "0070", "0071", "0072", "0074", "0077", "0079", "0085", "0098",
    "0105", "0106", "0109", "0110", "0111", "0112", "0114", "0116", "0118", "0125", "0126",
    "0133", "0135", "0138", "0144", "0148", "0154", "0156", "0161", "0163", "0166", "0167",
    "0168", "0169", "0196", "0198", "0200", "0201", "0205", "0208", "0212", "0213", "0220",
    "0235", "0237", "0238", "0241", "0242", "0243", "0244", "0262", "0274", "0280", "0292",
    "0303", "0318", "0320", "0322", "0327", "0329", "0346", "0349", "0355", "0368", "0371",
    "0375", "0378", "0380", "0385", "0396", "0406", "0410", "0411", "0413", "0414", "0415",
    "0416", "0417", "0421", "0423", "0424", "0425", "0428", "0429", "0431", "0436", "0437",
    "0438", "0439", "0440", "0441", "0442", "0443", "0444", "0445", "0446", "0447", "0448",
    "0449", "0450", "0451", "0452", "0453",
)
# fmt: on


def read_light_hand_csv(path: PathLike) -> np.ndarray:
    """Read a ``<vid>_light_hand.csv`` skeleton file.

    Args:
        path: the csv file (one row per frame, no header, at least 106 columns).

    Returns:
        ``(T, 35, 3)`` float32 array of ``(x, y, confidence)`` per joint and frame; row ``t``
        is frame ``t`` (0-based). Column 0 and columns past 106 are ignored.

    Raises:
        FileNotFoundError: if the file does not exist.
        DataFormatError: naming the file and row, for an empty file, fewer than 106 columns,
            a non-numeric cell or a NaN / infinite / missing value.
    """
    return _read_keypoint_table(
        Path(path), first_column=1, num_joints=IMIGUE_NUM_JOINTS, channels=len(_CHANNELS)
    )


def read_imigue_label_csv(path: PathLike) -> list[tuple[int, int, int]]:
    """Read a ``<vid>_label.csv`` clip file.

    Args:
        path: the csv file (``gestureID,startFrame,endFrame`` rows, no header). An empty file
            (a video without clips) is valid.

    Returns:
        ``(label, start, end)`` per clip in file order: ``label`` 0-based (raw 1..31 -> 0..30,
        99 -> 31), ``start``/``end`` 0-based inclusive frames.

    Raises:
        FileNotFoundError: if the file does not exist.
        DataFormatError: naming the file and 1-based row, for a wrong column count, a
            non-integer cell, an unknown gesture id, ``start < 0`` or ``end < start``.
    """
    return _read_clip_rows(Path(path), imigue_label_from_raw)


def load_imigue_video(video_dir: PathLike, *, on_error: OnError = "raise") -> list[ClipRecord]:
    """Cut all clips of one video folder ``<vid>/``.

    Args:
        video_dir: folder holding ``<vid>_light_hand.csv`` and ``<vid>_label.csv``; its name
            is the video id.
        on_error: what to do with a clip that runs past the skeleton sequence: ``"raise"`` a
            :class:`DataFormatError`, or ``"warn"`` and skip it. Malformed files always raise.

    Returns:
        One :class:`ClipRecord` per kept clip, in label-file order, with ``sample_id``
        ``f"{vid}_{k}"`` (``k`` = 0-based label row, so ids stay stable when clips are
        skipped), ``keypoint`` ``(T, 35, 3)`` float32 ``(x, y, confidence)`` with
        ``T = end - start + 1``, ``source`` the skeleton csv path and ``subject`` ``None``.
        Clips whose keypoints are all zero are skipped with a warning.

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
    skeleton_path = video_dir / f"{vid}_light_hand.csv"
    clips = read_imigue_label_csv(label_path)
    skeleton = read_light_hand_csv(skeleton_path)
    return _cut_clips(
        skeleton,
        clips,
        [f"{vid}_{k}" for k in range(len(clips))],
        video_id=vid,
        label_path=label_path,
        sequence_path=skeleton_path,
        on_error=on_error,
    )


def load_imigue_sequence(
    video_dir: PathLike, *, source: Literal["miga23", "miga25"] = "miga23"
) -> SequenceRecord:
    """One whole video with every ``<vid>_label.csv`` instance (online recognition).

    The MiGA releases are already per-video long sequences: the skeleton file holds
    every frame of the video and the label file the clips' frames in it, so the
    untrimmed video is the skeleton file as a whole.

    Args:
        video_dir: the ``<vid>`` folder.
        source: ``"miga23"`` (``<vid>_light_hand.csv``, 35 joints) or ``"miga25"``
            (``<vid>_openpose.xlsx``, 137 OpenPose keypoints).

    Returns:
        A :class:`SequenceRecord` with ``keypoint (T, V, 3)`` ``(x, y, confidence)``
        in the source's parent layout, ``segments (G, 2)`` inclusive 0-based frames and
        0-based ``labels (G,)`` (raw 99 -> 31), in label-file order.

    Raises:
        FileNotFoundError: for a missing folder or file.
        DataFormatError: naming file and row, for a malformed file or an instance past
            the end of the skeleton.
    """
    if source not in ("miga23", "miga25"):
        raise ValueError(f"source must be 'miga23' or 'miga25', got {source!r}")
    video_dir = Path(video_dir)
    _require_dir(video_dir)
    vid = video_dir.name
    label_path = video_dir / f"{vid}_label.csv"
    rows = read_imigue_label_csv(label_path)  # cheap: fail on a bad label file first
    if source == "miga25":
        skeleton_path = video_dir / f"{vid}_openpose.xlsx"
        skeleton = read_openpose_xlsx(skeleton_path)
    else:
        skeleton_path = video_dir / f"{vid}_light_hand.csv"
        skeleton = read_light_hand_csv(skeleton_path)
    segments = np.array([(s, e) for _, s, e in rows], dtype=np.int64).reshape(-1, 2)
    for k, (start, end) in enumerate(segments.tolist(), start=1):
        if end >= len(skeleton):
            raise DataFormatError(
                f"{label_path}, row {k}: instance frames {start}..{end} do not fit "
                f"{skeleton_path} ({len(skeleton)} rows)"
            )
    return SequenceRecord(
        video_id=vid,
        keypoint=skeleton,
        segments=segments,
        labels=np.array([label for label, _, _ in rows], dtype=np.int64),
        source=str(skeleton_path),
    )


def _video_dirs(split_dir: Path) -> dict[str, Path]:
    """Video id -> folder for the numeric folders directly under ``split_dir``, sorted."""
    return {
        p.name: p
        for p in sorted(split_dir.iterdir())
        if p.is_dir() and _VIDEO_DIR_RE.fullmatch(p.name)
    }


def load_imigue_split(
    root: PathLike,
    split: str,
    *,
    video_ids: Iterable[str] | None = None,
    on_error: OnError = "raise",
) -> list[ClipRecord]:
    """Cut all clips of one split folder of the release.

    Args:
        root: folder holding the ``imigue_skeleton_*`` split folders.
        split: ``"train"``, ``"val"`` or ``"test"`` (see :data:`IMIGUE_SPLIT_DIRS`).
        video_ids: if given, only these 4-digit video ids (e.g. :data:`MIGA_VAL_VIDEOS`);
            all must exist in the split folder.
        on_error: policy for clips out of range, see :func:`load_imigue_video`.

    Returns:
        Clip records of the videos in ascending video-id order, clips in label-file order.

    Raises:
        ValueError: for an unknown ``split`` or a single string passed as ``video_ids``.
        FileNotFoundError: if the split folder (the message lists the folders under ``root``)
            or a requested video does not exist.
        DataFormatError: see :func:`load_imigue_video`.
    """
    _check_on_error(on_error)
    if split not in IMIGUE_SPLIT_DIRS:
        raise ValueError(
            f"unknown iMiGUE split {split!r}; expected one of {list(IMIGUE_SPLIT_DIRS)}"
        )
    root = Path(root)
    split_dir = root / IMIGUE_SPLIT_DIRS[split]
    if not split_dir.is_dir():
        where = f"folders under it: {_subdir_names(root)}" if root.is_dir() else "it does not exist"
        raise FileNotFoundError(
            f"iMiGUE {split!r} split folder {split_dir} not found under root {root}; {where}"
        )
    videos = _video_dirs(split_dir)
    if video_ids is not None:
        if isinstance(video_ids, str):  # iterating a str would silently yield single digits
            raise ValueError(f"video_ids must be a collection of ids, got the string {video_ids!r}")
        wanted = set(video_ids)
        missing = sorted(wanted - videos.keys())
        if missing:
            raise FileNotFoundError(f"video ids not found in {split_dir}: {missing}")
        videos = {vid: path for vid, path in videos.items() if vid in wanted}
    return load_each(videos.values(), lambda path: load_imigue_video(path, on_error=on_error))


def find_imigue_videos(root: PathLike) -> dict[str, Path]:
    """Map every video id of the release to its folder, across the three split folders.

    Use it to split by video-id lists (e.g. :data:`MIGA_VAL_VIDEOS`) rather than by folder.
    Missing split folders are fine (e.g. the test phase not downloaded yet). A video found in
    several split folders is kept from the first one in train, val, test order, with a warning.

    Args:
        root: folder holding the ``imigue_skeleton_*`` split folders.

    Returns:
        Video id -> video folder, sorted by video id.

    Raises:
        FileNotFoundError: if none of the split folders exists under ``root``.
    """
    root = Path(root)
    split_dirs = [root / name for name in IMIGUE_SPLIT_DIRS.values() if (root / name).is_dir()]
    if not split_dirs:
        where = f"folders under it: {_subdir_names(root)}" if root.is_dir() else "it does not exist"
        raise FileNotFoundError(
            f"no iMiGUE split folder ({', '.join(IMIGUE_SPLIT_DIRS.values())}) under {root}; "
            f"{where}"
        )
    found: dict[str, Path] = {}
    duplicates: list[str] = []
    for split_dir in split_dirs:
        for vid, path in _video_dirs(split_dir).items():
            if vid in found:
                duplicates.append(f"{vid} ({path}, keeping {found[vid]})")
            else:
                found[vid] = path
    if duplicates:
        warnings.warn(
            f"videos present in several split folders under {root}: {'; '.join(duplicates)}",
            stacklevel=2,
        )
    return dict(sorted(found.items()))
