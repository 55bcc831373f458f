"""Read and write PoseC3D / pyskl skeleton pickles (mmaction2 ``PoseDataset`` format).

This is the de-facto exchange format of skeleton action recognition. A file is a pickle of::

    {'split': {'train': [frame_dir, ...], 'val': [...], ...},
     'annotations': [
         {'frame_dir': '0187_0',             # sample name
          'label': 3,                        # 0-based class id
          'img_shape': (1080, 1920),         # (H, W) of the frames the keypoints refer to
          'original_shape': (1080, 1920),    # (H, W) of the source video
          'total_frames': 90,                # T
          'keypoint': float32 (M, T, V, 2),  # x, y in pixels; M persons
          'keypoint_score': float32 (M, T, V)},
         ...]}

mmaction2 also reads a bare list of annotation dicts (no ``split``); so does
:func:`read_posec3d_pickle`. Two variants found in the wild are accepted on reading:

* no ``keypoint_score``: every score is taken as 1;
* ``keypoint`` with 3 channels ``(x, y, score)`` in the last axis (and no ``keypoint_score``):
  the third channel becomes the score. A 3-D skeleton (x, y, z) would be read the same way,
  so 3-D pickles are not supported. A 3-channel ``keypoint`` together with a
  ``keypoint_score`` is ambiguous and rejected.

A missing ``original_shape`` defaults to ``img_shape``. Keys beyond the standard ones are kept
in :attr:`PoseAnnotation.extra` and written back unchanged.

Pickles run code when loaded: only read files from sources you trust.
"""

from __future__ import annotations

import operator
import pickle
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mgr.fileio import atomic_write

from .common import ClipRecord, DataFormatError, PathLike, _require_file

__all__ = [
    "PoseAnnotation",
    "annotations_to_records",
    "read_posec3d_pickle",
    "records_to_annotations",
    "write_posec3d_pickle",
]

_STANDARD_KEYS = frozenset(
    {
        "frame_dir",
        "label",
        "keypoint",
        "keypoint_score",
        "img_shape",
        "original_shape",
        "total_frames",
    }
)
_REQUIRED_KEYS = ("frame_dir", "label", "keypoint", "img_shape", "total_frames")

# ``<video>_<clip>`` sample names (iMiGUE "0187_0", MA-52 "0003_01_0001").
_CLIP_NAME_RE = re.compile(r"(.+)_\d+")


@dataclass(eq=False)  # eq on arrays is ambiguous; compare fields explicitly
class PoseAnnotation:
    """One sample of a PoseC3D pickle.

    Attributes:
        frame_dir: sample name (mmaction2's identifier of the sample).
        label: 0-based class id.
        keypoint: ``(M, T, V, 2)`` float32 x, y of ``M`` persons over ``T`` frames.
        keypoint_score: ``(M, T, V)`` float32 confidence of each keypoint.
        img_shape: ``(H, W)`` of the frames the keypoints refer to.
        original_shape: ``(H, W)`` of the source video.
        total_frames: number of frames ``T``.
        extra: any other keys of the annotation dict, kept for a faithful round trip.
    """

    frame_dir: str
    label: int
    keypoint: np.ndarray
    keypoint_score: np.ndarray
    img_shape: tuple[int, int]
    original_shape: tuple[int, int]
    total_frames: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def num_persons(self) -> int:
        """Number of persons ``M``."""
        return int(self.keypoint.shape[0])


# ----------------------------------------------------------------------------- validation


def _as_label(value: object) -> int | None:
    """``value`` as a python int if it is a non-negative integer (not a bool), else ``None``."""
    if isinstance(value, bool | np.bool_):
        return None
    try:
        label = operator.index(value)  # int and numpy integers, not floats
    except TypeError:
        return None
    return label if label >= 0 else None


def _as_shape(value: object) -> tuple[int, int] | None:
    """``value`` as an ``(H, W)`` tuple of positive ints, else ``None``."""
    try:
        h, w = value  # type: ignore[misc]
        shape = (operator.index(h), operator.index(w))
    except (TypeError, ValueError):
        return None
    return shape if shape[0] > 0 and shape[1] > 0 else None


def _annotation_from_dict(item: object, where: str) -> PoseAnnotation:
    """Validate one annotation dict; ``where`` names the file and annotation in messages."""
    if not isinstance(item, dict):
        raise DataFormatError(f"{where}: expected a dict, got {type(item).__name__}")
    missing = [key for key in _REQUIRED_KEYS if key not in item]
    if missing:
        raise DataFormatError(f"{where}: missing key(s) {missing}; keys present: {sorted(item)}")
    frame_dir = item["frame_dir"]
    if not isinstance(frame_dir, str):
        raise DataFormatError(f"{where}: frame_dir {frame_dir!r} is not a string")

    label = _as_label(item["label"])
    if label is None:
        raise DataFormatError(f"{where}: label {item['label']!r} is not an integer >= 0")

    try:
        keypoint = np.asarray(item["keypoint"], dtype=np.float32)
    except (TypeError, ValueError) as err:
        raise DataFormatError(f"{where}: keypoint is not a numeric array ({err})") from err
    if keypoint.ndim != 4 or keypoint.shape[-1] not in (2, 3):
        raise DataFormatError(
            f"{where}: keypoint has shape {keypoint.shape}, expected (M, T, V, 2) "
            "(or (M, T, V, 3) with the score as third channel)"
        )
    if keypoint.shape[-1] == 3:
        if "keypoint_score" in item:
            raise DataFormatError(
                f"{where}: keypoint has 3 channels and keypoint_score is also given; "
                "expected (M, T, V, 2) keypoints with a separate score (3-D skeletons "
                "are not supported)"
            )
        score = keypoint[..., 2].copy()
        keypoint = np.ascontiguousarray(keypoint[..., :2])
    elif "keypoint_score" in item:
        try:
            score = np.asarray(item["keypoint_score"], dtype=np.float32)
        except (TypeError, ValueError) as err:
            raise DataFormatError(
                f"{where}: keypoint_score is not a numeric array ({err})"
            ) from err
        if score.shape != keypoint.shape[:-1]:
            raise DataFormatError(
                f"{where}: keypoint_score has shape {score.shape}, expected "
                f"{keypoint.shape[:-1]} to match keypoint {keypoint.shape}"
            )
    else:
        score = np.ones(keypoint.shape[:-1], dtype=np.float32)

    total_frames = _as_label(item["total_frames"])
    if total_frames is None or total_frames == 0:
        raise DataFormatError(
            f"{where}: total_frames {item['total_frames']!r} is not a positive integer"
        )
    if total_frames != keypoint.shape[1]:
        raise DataFormatError(
            f"{where}: total_frames is {total_frames} but keypoint has "
            f"T = {keypoint.shape[1]} frames (shape {keypoint.shape})"
        )
    for name, array in (("keypoint", keypoint), ("keypoint_score", score)):
        finite = np.isfinite(array)
        if not finite.all():
            bad = tuple(int(i) for i in np.unravel_index(np.argmin(finite), array.shape))
            raise DataFormatError(f"{where}: {name}{list(bad)} is {array[bad]} (non-finite)")

    img_shape = _as_shape(item["img_shape"])
    if img_shape is None:
        raise DataFormatError(f"{where}: img_shape {item['img_shape']!r} is not (H, W) > 0")
    original_shape = _as_shape(item.get("original_shape", img_shape))
    if original_shape is None:
        raise DataFormatError(
            f"{where}: original_shape {item['original_shape']!r} is not (H, W) > 0"
        )
    return PoseAnnotation(
        frame_dir=frame_dir,
        label=label,
        keypoint=keypoint,
        keypoint_score=score,
        img_shape=img_shape,
        original_shape=original_shape,
        total_frames=total_frames,
        extra={k: v for k, v in item.items() if k not in _STANDARD_KEYS},
    )


# ----------------------------------------------------------------------------- read / write


def _raw_name(item: object) -> object:
    """The ``frame_dir`` of an annotation as stored, for messages."""
    return item.get("frame_dir") if isinstance(item, dict) else None


def read_posec3d_pickle(path: PathLike, *, split: str | None = None) -> list[PoseAnnotation]:
    """Read a PoseC3D / pyskl pickle (see the module docstring for the layout).

    Only open trusted files: ``pickle.load`` can run arbitrary code.

    Args:
        path: the ``.pkl`` file: a dict ``{'split': ..., 'annotations': [...]}`` or a bare list
            of annotation dicts.
        split: keep only the annotations whose ``frame_dir`` is listed in
            ``data['split'][split]``, in file order (as mmaction2's ``PoseDataset`` does);
            ``None`` keeps all.

    Returns:
        The annotations, validated, keypoints ``(M, T, V, 2)`` and scores ``(M, T, V)``
        as float32. Only the returned annotations are validated.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if ``split`` is not in the file (the message lists the splits it has).
        DataFormatError: naming the file, and for a bad annotation its index in the file's
            list and its ``frame_dir``: not a pickle, wrong top-level type, a missing key, a
            keypoint not ``(M, T, V, 2|3)``, a score shape mismatch, ``total_frames != T``,
            non-finite values, a label that is not an integer >= 0, or a split entry with no
            annotation.
    """
    path = Path(path)
    _require_file(path)
    try:
        with path.open("rb") as f:
            data = pickle.load(f)
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, IndexError) as err:
        raise DataFormatError(f"{path}: not a readable pickle ({err!r})") from err

    if isinstance(data, dict):
        if "annotations" not in data:
            raise DataFormatError(
                f"{path}: dict without an 'annotations' key (keys: {sorted(map(str, data))})"
            )
        items, splits = data["annotations"], data.get("split", {})
        if not isinstance(splits, dict):
            raise DataFormatError(f"{path}: 'split' is a {type(splits).__name__}, expected dict")
    elif isinstance(data, list):
        items, splits = data, None
    else:
        raise DataFormatError(
            f"{path}: expected a dict with 'annotations' or a list of annotation dicts, "
            f"got {type(data).__name__}"
        )
    if not isinstance(items, list | tuple):
        raise DataFormatError(f"{path}: 'annotations' is a {type(items).__name__}, expected list")

    def name_of(item: object) -> str | None:
        name = item.get("frame_dir") if isinstance(item, dict) else None
        return name if isinstance(name, str) else None  # a bad one is reported by validation

    indices = range(len(items))
    if split is not None:
        if splits is None:
            raise ValueError(
                f"{path} is a bare list of annotations with no splits; pass split=None"
            )
        if split not in splits:
            raise ValueError(
                f"{path} has no split {split!r}; available splits: {sorted(map(str, splits))}"
            )
        wanted = {str(name) for name in splits[split]}
        present = {name_of(item) for item in items}
        absent = sorted(str(name) for name in wanted - present)
        if absent:
            raise DataFormatError(
                f"{path}: split {split!r} lists {len(absent)} frame_dir(s) with no annotation, "
                f"e.g. {absent[:5]}"
            )
        indices = [i for i in indices if name_of(items[i]) in wanted]

    return [
        _annotation_from_dict(
            items[i], f"{path}, annotation {i} (frame_dir {_raw_name(items[i])!r})"
        )
        for i in indices
    ]


def _annotation_to_dict(annotation: PoseAnnotation, index: int) -> dict[str, Any]:
    """The plain dict written for one annotation (validated like on reading)."""
    clash = sorted(_STANDARD_KEYS & set(annotation.extra))
    if clash:
        raise ValueError(
            f"annotation {index} ({annotation.frame_dir!r}): extra repeats standard key(s) {clash}"
        )
    item = {
        "frame_dir": annotation.frame_dir,
        "label": annotation.label,
        "img_shape": annotation.img_shape,
        "original_shape": annotation.original_shape,
        "total_frames": annotation.total_frames,
        "keypoint": annotation.keypoint,
        "keypoint_score": annotation.keypoint_score,
    }
    # keypoint_score is always given here, so a 3-channel keypoint is rejected as well.
    checked = _annotation_from_dict(
        item, f"annotation {index} (frame_dir {annotation.frame_dir!r})"
    )
    return {
        "frame_dir": checked.frame_dir,
        "label": checked.label,
        "img_shape": checked.img_shape,
        "original_shape": checked.original_shape,
        "total_frames": checked.total_frames,
        "keypoint": checked.keypoint,
        "keypoint_score": checked.keypoint_score,
        **annotation.extra,
    }


def write_posec3d_pickle(
    path: PathLike,
    annotations: Sequence[PoseAnnotation],
    *,
    splits: dict[str, Sequence[str]] | None = None,
) -> None:
    """Write annotations as a PoseC3D / pyskl pickle that mmaction2 and pyskl read.

    Arrays are written as float32, ids as python ints and shapes as tuples, with
    ``pickle.HIGHEST_PROTOCOL``. The file is written to a temporary name first and then
    renamed, so a failed write never leaves a truncated pickle behind.

    Args:
        path: output ``.pkl`` file (its folder must exist).
        annotations: the samples; keypoints ``(M, T, V, 2)``, scores ``(M, T, V)``.
        splits: split name -> ``frame_dir`` list, stored under ``'split'``; default ``{}``.

    Raises:
        ValueError: if a split names a ``frame_dir`` that no annotation has, or an annotation
            is invalid (same checks as on reading; the message names the annotation).
    """
    path = Path(path)
    items = [_annotation_to_dict(a, i) for i, a in enumerate(annotations)]
    names = {a.frame_dir for a in annotations}
    split_lists: dict[str, list[str]] = {}
    for split_name, members in (splits or {}).items():
        members = [str(m) for m in members]
        unknown = sorted(set(members) - names)
        if unknown:
            raise ValueError(
                f"split {split_name!r} lists {len(unknown)} frame_dir(s) that no annotation "
                f"has, e.g. {unknown[:5]}"
            )
        split_lists[str(split_name)] = members
    with atomic_write(path) as f:
        pickle.dump(
            {"split": split_lists, "annotations": items}, f, protocol=pickle.HIGHEST_PROTOCOL
        )


# ----------------------------------------------------------------------------- ClipRecord bridge


def records_to_annotations(
    records: Sequence[ClipRecord],
    *,
    image_size: tuple[int, int],
    score_channel: int | None = 2,
) -> list[PoseAnnotation]:
    """Turn clip records into single-person (``M = 1``) PoseC3D annotations.

    Args:
        records: clips with ``(T, V, C)`` keypoints; channels 0 and 1 are x and y.
        image_size: ``(H, W)`` written as ``img_shape`` and ``original_shape``.
        score_channel: channel holding the confidence, or ``None`` to write scores of 1.

    Returns:
        One annotation per record: ``frame_dir = sample_id``, keypoint ``(1, T, V, 2)``,
        keypoint_score ``(1, T, V)``.

    Raises:
        ValueError: if a record has no keypoints, too few channels, or ``image_size`` is not
            two positive ints (the message names the sample).
    """
    shape = _as_shape(image_size)
    if shape is None:
        raise ValueError(f"image_size {image_size!r} is not (H, W) > 0")
    out = []
    for record in records:
        if record.keypoint is None:
            raise ValueError(f"sample {record.sample_id!r} has no keypoints (video-only record)")
        kp = np.asarray(record.keypoint, dtype=np.float32)
        needed = 2 if score_channel is None else max(2, score_channel + 1)
        if kp.ndim != 3 or kp.shape[-1] < needed:
            raise ValueError(
                f"sample {record.sample_id!r}: keypoint shape {kp.shape}, expected (T, V, C) "
                f"with C >= {needed}"
            )
        score = (
            np.ones(kp.shape[:2], dtype=np.float32)
            if score_channel is None
            else kp[:, :, score_channel]
        )
        out.append(
            PoseAnnotation(
                frame_dir=record.sample_id,
                label=int(record.label),
                keypoint=np.ascontiguousarray(kp[None, :, :, :2]),
                keypoint_score=np.ascontiguousarray(score[None]),
                img_shape=shape,
                original_shape=shape,
                total_frames=int(kp.shape[0]),
            )
        )
    return out


def annotations_to_records(
    annotations: Sequence[PoseAnnotation], *, source: str
) -> list[ClipRecord]:
    """Turn PoseC3D annotations into single-person clip records.

    Of several persons, the one with the highest mean ``keypoint_score`` over all frames and
    joints is kept (the first one on a tie); zero-padded person slots score 0, so they lose.
    An annotation with ``M = 0`` gives zeros.

    Args:
        annotations: the samples, keypoints ``(M, T, V, 2)``.
        source: the file they came from (``ClipRecord.source``).

    Returns:
        One record per annotation: ``sample_id = frame_dir``, keypoint ``(T, V, 3)`` float32
        ``(x, y, score)``, ``video_id`` = the part of ``frame_dir`` before its last ``_`` when
        it looks like ``<video>_<number>`` (else ``frame_dir``), ``start = 0``, ``end = T - 1``.
    """
    records = []
    for a in annotations:
        num_persons, num_frames, num_joints = a.keypoint.shape[:3]
        keypoint = np.zeros((num_frames, num_joints, 3), dtype=np.float32)
        if num_persons > 0:
            best = int(np.argmax(a.keypoint_score.reshape(num_persons, -1).mean(axis=1)))
            keypoint[..., :2] = a.keypoint[best]
            keypoint[..., 2] = a.keypoint_score[best]
        match = _CLIP_NAME_RE.fullmatch(a.frame_dir)
        records.append(
            ClipRecord(
                sample_id=a.frame_dir,
                label=int(a.label),
                keypoint=keypoint,
                video_id=match.group(1) if match else a.frame_dir,
                start=0,
                end=num_frames - 1,
                source=source,
            )
        )
    return records
