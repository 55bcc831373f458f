"""COCO-WholeBody 133 (mmpose's RTMPose, RTMW, DWPose) and its conversion to ``openpose_137``."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from .layout import Edge, SkeletonLayout
from .layouts import (
    _COCO_JOINTS,
    _COCO_LIMBS,
    _FACE0,
    _FACE_ANCHORS,
    _FACE_CONTOURS,
    _FACE_NAMES,
    _HAND_LIMBS,
    _LHAND0,
    _RHAND0,
    OPENPOSE_137,
    _shift,
)

__all__ = ["COCO_WHOLEBODY_133", "derive_flip_pairs", "openpose_137_from_coco_wholebody"]


# ---------------------------------------------------------------------------
# COCO-WholeBody 133 (mmpose's coco_wholebody meta: RTMPose, RTMW, DWPose).
# ---------------------------------------------------------------------------
def derive_flip_pairs(joints: Sequence[str]) -> tuple[Edge, ...]:
    """Left/right pairs read from snake_case joint names.

    A joint whose name has a ``left`` word (``left_wrist``, ``face_eye_left_outer``)
    pairs with the joint of the same name with ``right`` in its place; names
    without either word lie on the midline.

    Args:
        joints: the layout's joint names, ``_``-separated words.

    Returns:
        ``(left, right)`` index pairs, in the order of the left joints.

    Raises:
        ValueError: if a sided joint has no partner.
    """
    index = {name: i for i, name in enumerate(joints)}
    pairs = []
    for i, name in enumerate(joints):
        words = name.split("_")
        if "left" not in words and "right" not in words:
            continue
        other = "_".join({"left": "right", "right": "left"}.get(w, w) for w in words)
        if other not in index:
            raise ValueError(f"joint {name!r} has no mirror joint {other!r}")
        if "left" in words:
            pairs.append((i, index[other]))
    return tuple(pairs)


def _snake(name: str) -> str:
    """``FaceJawRight8`` -> ``face_jaw_right_8``: one word per capital or digit run."""
    return re.sub(r"(?<=[a-z])(?=\d)|(?<=.)(?=[A-Z])", "_", name).lower()


_WB_FEET = tuple(f"{s}_{p}" for s in ("left", "right") for p in ("big_toe", "small_toe", "heel"))
_WB_HAND_PARTS = (
    "hand_root",
    *(f"{finger}{k}" for finger in ("thumb", "forefinger", "middle_finger", "ring_finger",
                                     "pinky_finger") for k in range(1, 5)),
)  # fmt: skip
_WB_FACE0, _WB_LHAND0, _WB_RHAND0 = 23, 91, 112
_WB_PUPIL_ANCHORS = {(68, 36), (68, 39), (69, 42), (69, 45)}

COCO_WHOLEBODY_133_JOINTS = (
    _COCO_JOINTS
    + _WB_FEET
    + tuple(_snake(n) for n in _FACE_NAMES[:68])
    + tuple(f"left_{p}" for p in _WB_HAND_PARTS)
    + tuple(f"right_{p}" for p in _WB_HAND_PARTS)
)
COCO_WHOLEBODY_133 = SkeletonLayout(
    name="coco_wholebody_133",
    joints=COCO_WHOLEBODY_133_JOINTS,
    limbs=(
        *_COCO_LIMBS,
        *((15, k) for k in (17, 18, 19)),  # left foot on the left ankle
        *((16, k) for k in (20, 21, 22)),
        *_shift(_FACE_CONTOURS, _WB_FACE0),
        *_shift((e for e in _FACE_ANCHORS if e not in _WB_PUPIL_ANCHORS), _WB_FACE0),
        *_shift(_HAND_LIMBS, _WB_LHAND0),
        *_shift(_HAND_LIMBS, _WB_RHAND0),
        (0, _WB_FACE0 + 30),  # nose - face nose tip
        (9, _WB_LHAND0),  # left wrist - left hand root
        (10, _WB_RHAND0),
    ),
    flip_pairs=derive_flip_pairs(COCO_WHOLEBODY_133_JOINTS),
    center=0,  # nose, as coco_17
)

# BODY_25 joints copied from a COCO-WholeBody joint, by name.
_BODY25_FROM_WB = {
    "Nose": "nose", "REye": "right_eye", "LEye": "left_eye", "REar": "right_ear",
    "LEar": "left_ear", "RShoulder": "right_shoulder", "LShoulder": "left_shoulder",
    "RElbow": "right_elbow", "LElbow": "left_elbow", "RWrist": "right_wrist",
    "LWrist": "left_wrist", "RHip": "right_hip", "LHip": "left_hip", "RKnee": "right_knee",
    "LKnee": "left_knee", "RAnkle": "right_ankle", "LAnkle": "left_ankle",
    "LBigToe": "left_big_toe", "LSmallToe": "left_small_toe", "LHeel": "left_heel",
    "RBigToe": "right_big_toe", "RSmallToe": "right_small_toe", "RHeel": "right_heel",
}  # fmt: skip
_BODY25_MIDPOINTS = {
    "Neck": ("left_shoulder", "right_shoulder"),
    "MidHip": ("left_hip", "right_hip"),
}
_PUPILS = {68: range(36, 42), 69: range(42, 48)}  # OpenPose face pupil <- its eye contour


def _wholebody_copies() -> tuple[np.ndarray, np.ndarray]:
    """``(openpose_137 index, coco_wholebody_133 index)`` of every copied point."""
    op, wb = OPENPOSE_137, COCO_WHOLEBODY_133
    pairs = [(op.index(a), wb.index(b)) for a, b in _BODY25_FROM_WB.items()]
    pairs += [(_FACE0 + k, _WB_FACE0 + k) for k in range(68)]  # same 300-W order
    pairs += [(_LHAND0 + k, _WB_LHAND0 + k) for k in range(21)]  # same 21-point order
    pairs += [(_RHAND0 + k, _WB_RHAND0 + k) for k in range(21)]
    dst, src = zip(*pairs, strict=True)
    return np.asarray(dst), np.asarray(src)


def openpose_137_from_coco_wholebody(keypoint: np.ndarray, min_score: float = 0.0) -> np.ndarray:
    """Convert COCO-WholeBody keypoints to the ``openpose_137`` layout (MiGA'25).

    * BODY_25: the 17 COCO joints and the 6 foot points by name (big toe, small toe
      and heel are the same anatomical points in both); ``Neck`` and ``MidHip``,
      which COCO lacks, are the midpoints of the shoulders and of the hips.
    * Face: COCO-WholeBody's 68 face points are the 300-W markup in OpenPose's
      order; OpenPose's two pupils (68, 69) are the centres of the six contour
      points of their eye (36-41, 42-47).
    * Hands: the same 21 points in the same order (wrist, then thumb, index,
      middle, ring, pinky from base to tip).

    A derived point (neck, mid-hip, pupils) exists only where all its source
    points do, and gets the smallest of their scores. Points scored below
    ``min_score`` are first set to ``(0, 0, 0)``, OpenPose's "not detected".

    Args:
        keypoint: ``(..., 133, 3)`` ``(x, y, score)``.
        min_score: scores below this count as not detected.

    Returns:
        ``(..., 137, 3)`` float32 ``(x, y, score)``; points not detected are zeros.

    Raises:
        ValueError: if the last two axes are not ``(133, 3)``.
    """
    kp = np.asarray(keypoint, dtype=np.float32)
    if kp.ndim < 2 or kp.shape[-2:] != (133, 3):
        raise ValueError(f"keypoint must be (..., 133, 3) COCO-WholeBody, got {kp.shape}")
    kp = np.where((kp[..., 2:] >= min_score) & (kp[..., 2:] > 0), kp, 0.0).astype(np.float32)
    out = np.zeros((*kp.shape[:-2], 137, 3), dtype=np.float32)
    dst, src = _wholebody_copies()
    out[..., dst, :] = kp[..., src, :]

    def mean_of(dst_index: int, sources: Sequence[int]) -> None:
        points = kp[..., list(sources), :]
        present = (points[..., 2] > 0).all(-1, keepdims=True)
        value = np.concatenate([points[..., :2].mean(-2), points[..., 2].min(-1)[..., None]], -1)
        out[..., dst_index, :] = np.where(present, value, 0.0)

    wb = COCO_WHOLEBODY_133
    for name, (a, b) in _BODY25_MIDPOINTS.items():
        mean_of(OPENPOSE_137.index(name), (wb.index(a), wb.index(b)))
    for pupil, contour in _PUPILS.items():
        mean_of(_FACE0 + pupil, [_WB_FACE0 + k for k in contour])
    return out
