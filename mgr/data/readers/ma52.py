"""Reader for the MA-52 (Micro-Action-52) release: mmaction2 video list files.

Layout of the release::

    <root>/label_name.txt              # "<id><TAB><name>" per line, ids 0..51
    <root>/train_list_videos.txt       # "<file> <label>" per line, space-separated, CRLF endings
    <root>/val_list_videos.txt
    <root>/test_list_videos.txt        # "testNNNN.mp4 0": the release's test labels are a dummy 0
    <root>/videos_train/<file>         # one .mp4 per clip
    <root>/videos_val/<file>
    <root>/videos_test/<file>

Train and val files are named ``SSSS_BB_NNNN.mp4``: 4-digit participant id, 2-digit body-part
(coarse) id equal to :func:`mgr.classes.ma52_fine_to_coarse` of the label, 4-digit index.
Test files are anonymised (``testNNNN.mp4``). Train and val share their participants, so the
split is not cross-subject.

MA-52 is a video-only release: records carry ``keypoint=None`` and the clip's ``video`` path.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Literal

from mgr.classes import get_classes, ma52_fine_to_coarse

from .common import ClipRecord, DataFormatError, OnError, PathLike, _check_on_error, _require_file

__all__ = [
    "MA52_SPLITS",
    "load_ma52_split",
    "read_label_names",
    "read_video_list",
]

Split = Literal["train", "val", "test"]

#: Split names; the list file is ``f"{split}_list_videos.txt"``, the clips ``f"videos_{split}/"``.
MA52_SPLITS: tuple[str, ...] = ("train", "val", "test")

# Train/val clip names: participant, coarse body-part id, index.
_TRAINVAL_NAME_RE = re.compile(r"(\d{4})_(\d{2})_(\d{4})\.mp4")


def _read_lines(path: Path) -> list[tuple[int, str]]:
    """``(1-based line number, text)`` of the non-blank lines, without line endings."""
    _require_file(path)
    try:
        # Universal newlines turn the release's CRLF into LF; utf-8-sig drops a byte-order mark.
        with path.open(encoding="utf-8-sig") as f:
            lines = f.read().splitlines()
    except UnicodeDecodeError as err:
        raise DataFormatError(f"{path}: not a UTF-8 text file ({err})") from err
    return [(n, line) for n, line in enumerate(lines, start=1) if line.strip()]


def _read_list_lines(path: Path, *, num_classes: int | None = None) -> list[tuple[int, str, int]]:
    """Parse a ``"<file> <label>"`` list (mmaction2 ``VideoDataset`` format).

    Shared with the MiGA'25 RGB clip lists, which use the same format.

    Args:
        path: the list file.
        num_classes: if given, labels must lie in ``0..num_classes - 1``.

    Returns:
        ``(line number, file, label)`` per non-blank line, in file order.
    """
    entries: list[tuple[int, str, int]] = []
    for n, line in _read_lines(path):
        fields = line.split()
        if len(fields) != 2:
            raise DataFormatError(
                f"{path}, line {n}: expected '<file> <label>' (2 fields), got {len(fields)} "
                f"in {line!r}"
            )
        name, token = fields
        try:
            label = int(token)
        except ValueError:
            raise DataFormatError(
                f"{path}, line {n}: label {token!r} of {name} is not an integer"
            ) from None
        if num_classes is not None and not 0 <= label < num_classes:
            raise DataFormatError(
                f"{path}, line {n}: label {label} of {name} is outside 0..{num_classes - 1}"
            )
        entries.append((n, name, label))
    return entries


def read_video_list(path: PathLike, *, num_classes: int | None = None) -> list[tuple[str, int]]:
    """Read an mmaction2 video list file (``"<file> <label>"`` per line).

    Args:
        path: the list file; CRLF or LF line endings, blank lines ignored.
        num_classes: if given, check that every label lies in ``0..num_classes - 1``.

    Returns:
        ``(file name as written, label)`` per line, in file order.

    Raises:
        FileNotFoundError: if the file does not exist.
        DataFormatError: naming the file and 1-based line, for a line without exactly two
            fields, a non-integer label or (with ``num_classes``) a label out of range.
    """
    return [
        (name, label) for _, name, label in _read_list_lines(Path(path), num_classes=num_classes)
    ]


def read_label_names(path: PathLike) -> list[str]:
    """Read ``label_name.txt`` (``"<id><TAB><name>"`` per line).

    Args:
        path: the file; CRLF or LF line endings, blank lines ignored.

    Returns:
        The class names; position = class id.

    Raises:
        FileNotFoundError: if the file does not exist.
        DataFormatError: naming the file and 1-based line, for a line without a tab, a
            non-integer id, ids not ``0, 1, 2, ...`` in order, or an empty name.
    """
    path = Path(path)
    names: list[str] = []
    for n, line in _read_lines(path):
        if "\t" not in line:
            raise DataFormatError(f"{path}, line {n}: expected '<id><TAB><name>', got {line!r}")
        token, name = line.split("\t", 1)
        try:
            class_id = int(token)
        except ValueError:
            raise DataFormatError(
                f"{path}, line {n}: class id {token!r} is not an integer"
            ) from None
        if class_id != len(names):
            raise DataFormatError(
                f"{path}, line {n}: class id {class_id} out of order, expected {len(names)} "
                "(ids must be 0..N-1 in order)"
            )
        name = name.strip()
        if not name:
            raise DataFormatError(f"{path}, line {n}: class {class_id} has an empty name")
        names.append(name)
    return names


def _check_class_names(path: Path) -> None:
    """Fail unless ``label_name.txt`` lists exactly :data:`mgr.classes.MA52`'s names."""
    names = read_label_names(path)
    expected = get_classes("ma52").names
    for class_id, (got, want) in enumerate(zip(names, expected, strict=False)):
        if got != want:
            raise DataFormatError(
                f"{path}: class {class_id} is named {got!r}, expected {want!r} "
                "(mgr.classes.MA52 must match the release's label ids)"
            )
    if len(names) != len(expected):
        raise DataFormatError(f"{path}: {len(names)} classes, expected {len(expected)}")


def load_ma52_split(
    root: PathLike,
    split: Split,
    *,
    check_files: bool = True,
    on_error: OnError = "raise",
    check_body_part: bool = True,
) -> list[ClipRecord]:
    """Read one split of MA-52 into video-only clip records.

    Args:
        root: release folder holding ``label_name.txt``, the list files and ``videos_*/``.
        split: ``"train"``, ``"val"`` or ``"test"``.
        check_files: check that every listed clip exists under ``videos_<split>/``.
        on_error: for a listed clip whose video is missing: ``"raise"`` a
            :class:`FileNotFoundError`, or ``"warn"`` and skip it. Malformed files always raise.
        check_body_part: for train/val, check that every file name matches
            ``SSSS_BB_NNNN.mp4`` and that ``BB`` equals ``ma52_fine_to_coarse(label)``.

    Returns:
        One :class:`ClipRecord` per kept line, in list-file order: ``sample_id`` = file name
        without extension, ``label`` = the file's label (for test the release writes a dummy
        0, kept as is, so test ``label``/``coarse_label`` carry no information),
        ``keypoint=None``, ``video_id=sample_id``, ``start=0``, ``end=-1`` (the frame count
        is unknown until the video is probed, so ``num_frames`` is 0), ``source`` = the list
        file, ``subject`` = the participant id ``SSSS`` as int (``None`` for test or a name
        not in the train/val pattern), ``video`` = absolute path of the clip (symlinks kept),
        ``video_end=None`` (whole file) and ``coarse_label = ma52_fine_to_coarse(label)``.

    Raises:
        ValueError: for an unknown ``split`` or ``on_error``.
        FileNotFoundError: if ``root``, ``label_name.txt``, the list file or (with
            ``check_files``) the ``videos_<split>`` folder is missing, or a clip's video is
            missing with ``on_error="raise"`` (naming the list file, line and path).
        DataFormatError: naming the file and line, for class names that differ from
            ``mgr.classes.get_classes("ma52")``, a malformed line, a label outside 0..51,
            a duplicate file name, or (with ``check_body_part``) a train/val name that does
            not match ``SSSS_BB_NNNN.mp4`` or whose ``BB`` disagrees with the label.
    """
    _check_on_error(on_error)
    if split not in MA52_SPLITS:
        raise ValueError(f"unknown MA-52 split {split!r}; expected one of {list(MA52_SPLITS)}")
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"MA-52 root folder {root} does not exist")
    _check_class_names(root / "label_name.txt")
    list_path = root / f"{split}_list_videos.txt"
    num_classes = len(get_classes("ma52"))
    entries = _read_list_lines(list_path, num_classes=num_classes)
    video_dir = (root / f"videos_{split}").absolute()
    if check_files and not video_dir.is_dir():
        raise FileNotFoundError(f"MA-52 {split!r} video folder {video_dir} not found")

    records: list[ClipRecord] = []
    first_line: dict[str, int] = {}
    for n, name, label in entries:
        if name in first_line:
            raise DataFormatError(
                f"{list_path}, line {n}: {name} is listed again (first on line {first_line[name]})"
            )
        first_line[name] = n
        coarse = ma52_fine_to_coarse(label)
        subject: int | None = None
        if split != "test":
            match = _TRAINVAL_NAME_RE.fullmatch(name)
            if check_body_part:
                if match is None:
                    raise DataFormatError(
                        f"{list_path}, line {n}: file name {name!r} does not match "
                        "SSSS_BB_NNNN.mp4 (participant, body part, index)"
                    )
                if int(match.group(2)) != coarse:
                    raise DataFormatError(
                        f"{list_path}, line {n}: body-part field {match.group(2)!r} of {name} "
                        f"disagrees with label {label}, whose body part is {coarse:02d}"
                    )
            if match is not None:
                subject = int(match.group(1))
        video = video_dir / name
        if check_files and not video.is_file():
            message = f"{list_path}, line {n}: video {video} not found"
            if on_error == "raise":
                raise FileNotFoundError(message)
            warnings.warn(f"skipping clip: {message}", stacklevel=2)
            continue
        sample_id = Path(name).stem
        records.append(
            ClipRecord(
                sample_id=sample_id,
                label=label,
                keypoint=None,
                video_id=sample_id,
                start=0,
                end=-1,
                source=str(list_path),
                subject=subject,
                video=str(video),
                video_start=0,
                video_end=None,
                coarse_label=coarse,
            )
        )
    return records
