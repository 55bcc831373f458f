"""Readers for the outputs of pose estimators run on the user's own videos.

Two formats, each read into one person's ``(T, V, 3)`` float32 ``(x, y, score)`` array in a
layout of :mod:`mgr.skeletons`, ready for :func:`keypoints_to_record`:

* OpenPose ``--write_json``: one ``<video>_<frame:012d>_keypoints.json`` file per frame
  (:func:`read_openpose_json`).
* mmpose / RTMPose ``MMPoseInferencer(..., pred_out_dir=...)``: one JSON file per video
  (:func:`read_mmpose_json`).

In both, row ``t`` of the result is frame number ``t`` of the video: frames the files skip
are zeros (score 0), as are frames where nobody was detected. Of several people in a frame,
one is kept by a per-frame rule (``person=``):

* ``"confident"``: the highest mean confidence; for OpenPose over the BODY_25 joints with
  ``c > 0`` (the detected ones), for mmpose over all ``K`` keypoint scores (mmpose scores
  every keypoint). A person with no detected joint scores 0.
* ``"largest"``: the largest bounding-box area. OpenPose: the box around the detected
  (``c > 0``) BODY_25 joints. mmpose: the instance's ``bbox`` when present, else the box
  around its keypoints with score > 0.

Ties go to the person listed first. The choice is made independently in every frame, so a
different person may win in a later frame.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from mgr.skeletons import SkeletonLayout, get_layout

from .common import ClipRecord, DataFormatError, PathLike, _require_dir, _require_file

__all__ = [
    "OPENPOSE_PARTS",
    "keypoints_to_record",
    "read_mmpose_json",
    "read_openpose_json",
]

PersonRule = Literal["confident", "largest"]

#: OpenPose JSON keys in ``openpose_137`` order: (key, first index, number of points).
OPENPOSE_PARTS: tuple[tuple[str, int, int], ...] = (
    ("pose_keypoints_2d", 0, 25),
    ("face_keypoints_2d", 25, 70),
    ("hand_left_keypoints_2d", 95, 21),
    ("hand_right_keypoints_2d", 116, 21),
)
_OPENPOSE_V = 137
_BODY_V = 25
_OPENPOSE_NAME_RE = re.compile(r"(?:(?P<video>.*)_)?(?P<frame>\d+)_keypoints\.json")
_OPENPOSE_GLOB = "*_keypoints.json"


def _check_person_rule(person: str) -> None:
    if person not in ("confident", "largest"):
        raise ValueError(f"person must be 'confident' or 'largest', got {person!r}")


def _box_area(xy: np.ndarray) -> float:
    """Area of the axis-aligned box around ``(N, 2)`` points (0 for no points)."""
    if len(xy) == 0:
        return 0.0
    extent = xy.max(axis=0) - xy.min(axis=0)
    return float(extent[0] * extent[1])


def _pick(values: Sequence[float]) -> int:
    """Index of the largest value, the first one on a tie."""
    return int(np.argmax(np.asarray(values, dtype=np.float64)))


def _missing_frames_warning(missing: list[int], total: int, where: str) -> None:
    if missing:
        shown = ", ".join(map(str, missing[:10])) + (", ..." if len(missing) > 10 else "")
        warnings.warn(
            f"{where}: {len(missing)} of {total} frame numbers have no data ({shown}); "
            "they are filled with zeros (score 0)",
            stacklevel=3,
        )


# ----------------------------------------------------------------------------- OpenPose


def _openpose_indices(layout: SkeletonLayout) -> np.ndarray:
    """Indices into the 137 OpenPose points of each joint of ``layout``."""
    indices = np.arange(layout.num_joints)
    current = layout
    # Walk up the subset chain, composing the index maps, until an OpenPose layout.
    while current.name not in ("openpose_137", "openpose_body_25"):
        if current.parent is None or current.parent_indices is None:
            raise ValueError(
                f"layout {layout.name!r} is not openpose_137, openpose_body_25 or a subset of them"
            )
        indices = np.asarray(current.parent_indices)[indices]
        current = get_layout(current.parent)
    # BODY_25 indices are the first 25 of the 137, so they need no mapping.
    return indices


def _parse_openpose_frame(path: Path) -> list[np.ndarray]:
    """All people of one OpenPose JSON file, each ``(137, 3)`` float32; absent parts are 0."""
    try:
        with path.open(encoding="utf-8") as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataFormatError(f"{path}: invalid JSON ({err})") from err
    if not isinstance(data, dict) or not isinstance(data.get("people"), list):
        raise DataFormatError(f"{path}: expected an object with a 'people' list")
    people = []
    for p, entry in enumerate(data["people"]):
        if not isinstance(entry, dict):
            raise DataFormatError(f"{path}, person {p}: expected an object")
        points = np.zeros((_OPENPOSE_V, 3), dtype=np.float32)
        for key, first, count in OPENPOSE_PARTS:
            values = entry.get(key)
            # OpenPose writes [] for a part it was not asked to detect.
            if values is None or (isinstance(values, list) and not values):
                continue
            where = f"{path}, person {p}: {key}"
            try:
                array = np.asarray(values, dtype=np.float32)
            except (TypeError, ValueError) as err:
                raise DataFormatError(f"{where} is not a flat list of numbers ({err})") from err
            if array.ndim != 1 or array.size != 3 * count:
                raise DataFormatError(
                    f"{where} has {array.size} values, expected {3 * count} "
                    f"({count} points x (x, y, c))"
                )
            if not np.isfinite(array).all():
                raise DataFormatError(f"{where} holds a non-finite value")
            points[first : first + count] = array.reshape(count, 3)
        people.append(points)
    return people


def _choose_openpose_person(people: list[np.ndarray], person: PersonRule) -> np.ndarray:
    """The chosen ``(137, 3)`` person by the rule of the module docstring."""
    scores = []
    for points in people:
        body = points[:_BODY_V]
        seen = body[body[:, 2] > 0]
        if person == "confident":
            scores.append(float(seen[:, 2].mean()) if len(seen) else 0.0)
        else:
            scores.append(_box_area(seen[:, :2]))
    return people[_pick(scores)]


def _openpose_files(
    folder_or_files: PathLike | Sequence[PathLike], video: str | None
) -> tuple[str, dict[int, Path]]:
    """Select the files of one video: ``(description for messages, frame number -> file)``."""
    if isinstance(folder_or_files, str | Path) or hasattr(folder_or_files, "__fspath__"):
        folder = Path(folder_or_files)  # type: ignore[arg-type]
        _require_dir(folder)
        files = sorted(folder.glob(_OPENPOSE_GLOB))
        where = str(folder)
    else:
        files = [Path(f) for f in folder_or_files]  # type: ignore[union-attr]
        for file in files:
            _require_file(file)
        where = f"the {len(files)} given files"
    pattern = _OPENPOSE_GLOB if video is None else f"{video}_<frame>_keypoints.json"
    if not files:
        raise FileNotFoundError(f"{where}: no OpenPose JSON files matching {pattern!r}")

    by_video: dict[str, dict[int, Path]] = {}
    for file in files:
        match = _OPENPOSE_NAME_RE.fullmatch(file.name)
        if match is None:
            raise DataFormatError(
                f"{file}: not an OpenPose --write_json name '<video>_<frame>_keypoints.json'"
            )
        frames = by_video.setdefault(match["video"] or "", {})
        number = int(match["frame"])
        if number in frames:
            raise DataFormatError(
                f"{file}: frame number {number} also given by {frames[number].name}"
            )
        frames[number] = file

    if video is None:
        if len(by_video) > 1:
            raise ValueError(
                f"{where} holds the frames of several videos {sorted(by_video)}; "
                "choose one with video="
            )
        return where, next(iter(by_video.values()))
    if video not in by_video:
        raise FileNotFoundError(
            f"{where}: no OpenPose JSON files matching {pattern!r}; videos present: "
            f"{sorted(by_video)}"
        )
    return where, by_video[video]


def read_openpose_json(
    folder_or_files: PathLike | Sequence[PathLike],
    *,
    layout: str = "openpose_137",
    person: PersonRule = "confident",
    video: str | None = None,
) -> np.ndarray:
    """Read the per-frame JSON files OpenPose writes with ``--write_json``.

    Files are named ``<video>_<frame:012d>_keypoints.json``; the frame number is the integer
    before ``_keypoints.json`` and the files are ordered by it (numerically). Row ``t`` of the
    result is frame number ``t``: frame numbers with no file (including any before the first
    file) are filled with zeros, score 0, and a warning says how many. Each file holds
    ``{"people": [{"pose_keypoints_2d": [x, y, c] * 25, "face_keypoints_2d": [...] * 70,
    "hand_left_keypoints_2d": [...] * 21, "hand_right_keypoints_2d": [...] * 21, ...}]}``;
    the four lists are concatenated in that order into the 137 points of ``openpose_137``
    (BODY_25 0-24, face 25-94, left hand 95-115, right hand 116-136). A part that is
    absent or ``[]`` (not detected by OpenPose) is zeros with score 0. Other keys (the 3-D
    variants, ``person_id``) are ignored. One person per frame is kept by ``person``
    (see the module docstring); frames with nobody are zeros.

    Args:
        folder_or_files: the ``--write_json`` folder, or a list of its JSON files.
        layout: ``"openpose_137"``, ``"openpose_body_25"`` or a subset layout of them
            (e.g. ``"mmgesture_36"``, ``"openpose_68"``).
        person: ``"confident"`` or ``"largest"``.
        video: the ``<video>`` prefix to read when the folder holds several videos.

    Returns:
        ``(T, V, 3)`` float32 ``(x, y, confidence)`` in ``layout``'s joint order, with
        ``T`` = the largest frame number + 1.

    Raises:
        FileNotFoundError: if the folder or a given file does not exist, or no file matches
            (the message names the folder and the pattern).
        ValueError: for an unknown or non-OpenPose layout, a bad ``person``, or several video
            prefixes with ``video=None`` (the message lists them).
        DataFormatError: naming the file (and person index and key): invalid JSON, no
            ``people`` list, a list of the wrong length (``"pose_keypoints_2d has 74 values,
            expected 75"``), a non-number, a file name without a frame number, or a frame
            number given twice.
    """
    _check_person_rule(person)
    indices = _openpose_indices(get_layout(layout))
    where, frames = _openpose_files(folder_or_files, video)

    num_frames = max(frames) + 1
    _missing_frames_warning(
        [t for t in range(num_frames) if t not in frames], num_frames, f"OpenPose JSON in {where}"
    )
    out = np.zeros((num_frames, len(indices), 3), dtype=np.float32)
    for t, file in frames.items():
        people = _parse_openpose_frame(file)
        if people:
            out[t] = _choose_openpose_person(people, person)[indices]
    return out


# ----------------------------------------------------------------------------- mmpose


def _parse_mmpose_instance(
    instance: object, layout: SkeletonLayout, where: str
) -> tuple[np.ndarray, float | None]:
    """One instance as ``(K, 3)`` float32 ``(x, y, score)`` and its bbox area (or ``None``)."""
    if not isinstance(instance, dict):
        raise DataFormatError(f"{where}: expected an object, got {type(instance).__name__}")
    for key in ("keypoints", "keypoint_scores"):
        if key not in instance:
            raise DataFormatError(f"{where}: missing key {key!r}")
    num_joints = layout.num_joints
    try:
        xy = np.asarray(instance["keypoints"], dtype=np.float32)
        score = np.asarray(instance["keypoint_scores"], dtype=np.float32)
    except (TypeError, ValueError) as err:
        raise DataFormatError(
            f"{where}: keypoints / keypoint_scores are not numbers ({err})"
        ) from err
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise DataFormatError(f"{where}: keypoints has shape {xy.shape}, expected (K, 2) [x, y]")
    if xy.shape[0] != num_joints:
        raise DataFormatError(
            f"{where}: K = {xy.shape[0]} keypoints, but layout {layout.name!r} has "
            f"{num_joints} joints"
        )
    if score.shape != (num_joints,):
        raise DataFormatError(
            f"{where}: keypoint_scores has shape {score.shape}, expected ({num_joints},)"
        )
    if not (np.isfinite(xy).all() and np.isfinite(score).all()):
        raise DataFormatError(f"{where}: keypoints / keypoint_scores hold a non-finite value")

    area = None
    bbox = instance.get("bbox")
    if bbox is not None:
        try:
            box = np.asarray(bbox, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError) as err:
            raise DataFormatError(f"{where}: bbox {bbox!r} is not numbers ({err})") from err
        # mmpose writes [[x1, y1, x2, y2]]; a flat [x1, y1, x2, y2] is accepted too.
        if box.size != 4 or not np.isfinite(box).all():
            raise DataFormatError(f"{where}: bbox {bbox!r} is not [[x1, y1, x2, y2]]")
        area = float(abs(box[2] - box[0]) * abs(box[3] - box[1]))
    return np.concatenate([xy, score[:, None]], axis=1), area


def read_mmpose_json(
    path: PathLike,
    *,
    layout: str = "coco_17",
    person: PersonRule = "confident",
) -> np.ndarray:
    """Read a prediction file of mmpose's ``MMPoseInferencer(..., pred_out_dir=...)``.

    A video gives a JSON list of frames ``{"frame_id": int, "instances": [{"keypoints":
    [[x, y], ...] (K), "keypoint_scores": [s] * K, "bbox": [[x1, y1, x2, y2]],
    "bbox_score": float}, ...]}``; row ``t`` of the result is ``frame_id`` ``t`` (missing
    ids are zeros with score 0, with a warning). An image gives a list of instances
    directly, read as one frame (``[]``: one frame with nobody). One person per frame is kept
    by ``person`` (see the module docstring); frames with nobody are zeros. mmpose's COCO
    body order is the ``coco_17`` layout.

    Args:
        path: the ``.json`` prediction file.
        layout: the layout of the ``K`` keypoints; ``K`` must equal its number of joints.
        person: ``"confident"`` or ``"largest"``.

    Returns:
        ``(T, V, 3)`` float32 ``(x, y, score)``.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: for an unknown layout or a bad ``person``.
        DataFormatError: naming the file and frame (and instance): invalid JSON, a frame
            without ``frame_id`` / ``instances``, a duplicate or negative ``frame_id``,
            ``K`` different from the layout's joint count, keypoints not ``(K, 2)``, a score
            count mismatch or a malformed ``bbox``.
    """
    _check_person_rule(person)
    skeleton = get_layout(layout)
    num_joints = skeleton.num_joints
    path = Path(path)
    _require_file(path)
    try:
        with path.open(encoding="utf-8") as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataFormatError(f"{path}: invalid JSON ({err})") from err
    if not isinstance(data, list):
        raise DataFormatError(f"{path}: expected a JSON list, got {type(data).__name__}")

    frames: dict[int, list[Any]] = {}
    if not data or not (isinstance(data[0], dict) and "frame_id" in data[0]):
        frames[0] = data  # the single-image form: a list of instances
    else:
        for k, frame in enumerate(data):
            if not isinstance(frame, dict) or "frame_id" not in frame or "instances" not in frame:
                raise DataFormatError(
                    f"{path}, entry {k}: expected {{'frame_id': int, 'instances': [...]}}"
                )
            frame_id = frame["frame_id"]
            if isinstance(frame_id, bool) or not isinstance(frame_id, int) or frame_id < 0:
                raise DataFormatError(
                    f"{path}, entry {k}: frame_id {frame_id!r} is not an int >= 0"
                )
            if frame_id in frames:
                raise DataFormatError(f"{path}, entry {k}: frame_id {frame_id} appears twice")
            if not isinstance(frame["instances"], list):
                raise DataFormatError(f"{path}, frame {frame_id}: 'instances' is not a list")
            frames[frame_id] = frame["instances"]

    num_frames = max(frames) + 1
    _missing_frames_warning(
        [t for t in range(num_frames) if t not in frames], num_frames, str(path)
    )
    out = np.zeros((num_frames, num_joints, 3), dtype=np.float32)
    for t, instances in frames.items():
        parsed = [
            _parse_mmpose_instance(inst, skeleton, f"{path}, frame {t}, instance {i}")
            for i, inst in enumerate(instances)
        ]
        if not parsed:
            continue
        if person == "confident":
            values = [float(kp[:, 2].mean()) for kp, _ in parsed]
        else:
            values = [
                area if area is not None else _box_area(kp[kp[:, 2] > 0, :2]) for kp, area in parsed
            ]
        out[t] = parsed[_pick(values)][0]
    return out


# ----------------------------------------------------------------------------- ClipRecord


def keypoints_to_record(
    keypoint: np.ndarray,
    *,
    sample_id: str,
    label: int,
    video_id: str | None = None,
    source: str,
) -> ClipRecord:
    """Wrap one person's keypoints as a :class:`ClipRecord` covering all its frames.

    Args:
        keypoint: ``(T, V, 3)`` ``(x, y, score)``, e.g. from :func:`read_openpose_json`.
        sample_id: name of the clip.
        label: 0-based class id (any placeholder, e.g. 0, for unlabelled videos).
        video_id: id of the video; defaults to ``sample_id``.
        source: the file or folder the keypoints came from.

    Returns:
        A record with float32 keypoints, ``start = 0`` and ``end = T - 1``.

    Raises:
        ValueError: if ``keypoint`` is not ``(T, V, 3)`` with ``T >= 1``.
    """
    array = np.asarray(keypoint, dtype=np.float32)
    if array.ndim != 3 or array.shape[2] != 3 or array.shape[0] == 0:
        raise ValueError(
            f"sample {sample_id!r}: keypoint has shape {array.shape}, expected (T, V, 3), T >= 1"
        )
    return ClipRecord(
        sample_id=sample_id,
        label=int(label),
        keypoint=array,
        video_id=sample_id if video_id is None else video_id,
        start=0,
        end=array.shape[0] - 1,
        source=source,
    )
