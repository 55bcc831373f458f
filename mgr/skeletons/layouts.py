"""The layouts of the datasets' keypoints: Kinect v2, OpenPose (BODY_25, 137), iMiGUE, COCO.

The choices that are ours, not the datasets', are listed in :mod:`mgr.skeletons`.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence

from .layout import Edge, SkeletonLayout

__all__ = [
    "COCO_17",
    "IMIGUE_36_FROM_137",
    "IMIGUE_LIGHT_HAND_35",
    "IMIGUE_LIGHT_HAND_35_FROM_137",
    "IMIGUE_MIGA_22",
    "IMIGUE_MIGA_22_FROM_35",
    "KINECT_V2_25",
    "MMGESTURE_36",
    "OPENPOSE_68",
    "OPENPOSE_68_FROM_137",
    "OPENPOSE_137",
    "OPENPOSE_BODY_25",
]


# ---------------------------------------------------------------------------
# Kinect v2 (SMG). Joint order = Kinect v2 JointType enum.
# ---------------------------------------------------------------------------
_KINECT_JOINTS = (
    "SpineBase", "SpineMid", "Neck", "Head",
    "ShoulderLeft", "ElbowLeft", "WristLeft", "HandLeft",
    "ShoulderRight", "ElbowRight", "WristRight", "HandRight",
    "HipLeft", "KneeLeft", "AnkleLeft", "FootLeft",
    "HipRight", "KneeRight", "AnkleRight", "FootRight",
    "SpineShoulder", "HandTipLeft", "ThumbLeft", "HandTipRight", "ThumbRight",
)  # fmt: skip
_KINECT_LIMBS = (
    (3, 2), (2, 20), (20, 1), (1, 0),  # head and spine
    (20, 4), (4, 5), (5, 6), (6, 7), (7, 21), (6, 22),  # left arm
    (20, 8), (8, 9), (9, 10), (10, 11), (11, 23), (10, 24),  # right arm
    (0, 12), (12, 13), (13, 14), (14, 15),  # left leg
    (0, 16), (16, 17), (17, 18), (18, 19),  # right leg
)  # fmt: skip
_KINECT_FLIPS = (
    (4, 8), (5, 9), (6, 10), (7, 11), (12, 16), (13, 17), (14, 18), (15, 19),
    (21, 23), (22, 24),
)  # fmt: skip

KINECT_V2_25 = SkeletonLayout(
    name="kinect_v2_25",
    joints=_KINECT_JOINTS,
    limbs=_KINECT_LIMBS,
    flip_pairs=_KINECT_FLIPS,
    center=1,  # SpineMid
)

# ---------------------------------------------------------------------------
# OpenPose BODY_25.
# ---------------------------------------------------------------------------
_BODY25_JOINTS = (
    "Nose", "Neck", "RShoulder", "RElbow", "RWrist", "LShoulder", "LElbow", "LWrist",
    "MidHip", "RHip", "RKnee", "RAnkle", "LHip", "LKnee", "LAnkle",
    "REye", "LEye", "REar", "LEar",
    "LBigToe", "LSmallToe", "LHeel", "RBigToe", "RSmallToe", "RHeel",
)  # fmt: skip
_BODY25_LIMBS = (
    (1, 8), (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7),
    (8, 9), (9, 10), (10, 11), (8, 12), (12, 13), (13, 14),
    (1, 0), (0, 15), (15, 17), (0, 16), (16, 18),
    (14, 19), (19, 20), (14, 21), (11, 22), (22, 23), (11, 24),
)  # fmt: skip
_BODY25_FLIPS = (
    (5, 2), (6, 3), (7, 4), (12, 9), (13, 10), (14, 11),
    (16, 15), (18, 17), (19, 22), (20, 23), (21, 24),
)  # fmt: skip
_BODY25_NECK = 1
_BODY25_RWRIST = 4
_BODY25_LWRIST = 7

OPENPOSE_BODY_25 = SkeletonLayout(
    name="openpose_body_25",
    joints=_BODY25_JOINTS,
    limbs=_BODY25_LIMBS,
    flip_pairs=_BODY25_FLIPS,
    center=_BODY25_NECK,
)

# ---------------------------------------------------------------------------
# OpenPose face (70 points, iBUG 300-W order + 2 pupils).
#
# Orientation: the 68 points follow the 300-W markup, annotated on the image of
# a frontal, unmirrored face, so point 0 and the 36-41 eye lie on the image
# left, which is the *person's right* (as OpenPose's RShoulder is on the image
# left of a frontal person). Pupil 68 belongs to the 36-41 eye (right), 69 to
# the 42-47 eye (left). The MiGA'25 winner's flip lists agree: face points 2, 4,
# 19 and 48 sit in the same list as RShoulder, REye and the right hand.
# ---------------------------------------------------------------------------
_FACE_NAMES = (
    *(f"FaceJawRight{8 - i}" for i in range(8)),  # 0-7, counted from the chin
    "FaceChin",  # 8
    *(f"FaceJawLeft{i}" for i in range(1, 9)),  # 9-16
    *(f"FaceBrowRight{k}" for k in range(1, 6)),  # 17-21, outer to inner
    *(f"FaceBrowLeft{k}" for k in range(5, 0, -1)),  # 22-26, inner to outer
    "FaceNoseBridge1", "FaceNoseBridge2", "FaceNoseBridge3", "FaceNoseTip",  # 27-30
    "FaceNostrilRight2", "FaceNostrilRight1", "FaceNoseBase",  # 31-33
    "FaceNostrilLeft1", "FaceNostrilLeft2",  # 34-35
    "FaceEyeRightOuter", "FaceEyeRightUpper1", "FaceEyeRightUpper2",  # 36-38
    "FaceEyeRightInner", "FaceEyeRightLower2", "FaceEyeRightLower1",  # 39-41
    "FaceEyeLeftInner", "FaceEyeLeftUpper2", "FaceEyeLeftUpper1",  # 42-44
    "FaceEyeLeftOuter", "FaceEyeLeftLower1", "FaceEyeLeftLower2",  # 45-47
    "FaceMouthRight", "FaceUpperLipRight2", "FaceUpperLipRight1", "FaceUpperLipTop",  # 48-51
    "FaceUpperLipLeft1", "FaceUpperLipLeft2", "FaceMouthLeft",  # 52-54
    "FaceLowerLipLeft2", "FaceLowerLipLeft1", "FaceLowerLipBottom",  # 55-57
    "FaceLowerLipRight1", "FaceLowerLipRight2",  # 58-59
    "FaceInnerMouthRight", "FaceInnerUpperLipRight", "FaceInnerUpperLipTop",  # 60-62
    "FaceInnerUpperLipLeft", "FaceInnerMouthLeft",  # 63-64
    "FaceInnerLowerLipLeft", "FaceInnerLowerLipBottom", "FaceInnerLowerLipRight",  # 65-67
    "FacePupilRight", "FacePupilLeft",  # 68-69
)  # fmt: skip


def _chain(points: Sequence[int], closed: bool = False) -> list[Edge]:
    edges = list(itertools.pairwise(points))
    if closed:
        edges.append((points[-1], points[0]))
    return edges


# The OpenPose face rendering pairs (63 edges).
_FACE_CONTOURS = (
    _chain(range(0, 17))  # jaw
    + _chain(range(17, 22))  # right brow
    + _chain(range(22, 27))  # left brow
    + _chain(range(27, 31))  # nose bridge
    + _chain(range(31, 36))  # nostrils
    + _chain(range(36, 42), closed=True)  # right eye
    + _chain(range(42, 48), closed=True)  # left eye
    + _chain(range(48, 60), closed=True)  # outer lip
    + _chain(range(60, 68), closed=True)  # inner lip
)
# Ours: the rendering pairs leave the face in ten pieces, which would cut them
# off from the body in a GCN. These edges join each piece to its anatomical
# neighbour; the set is mirror-symmetric.
_FACE_ANCHORS = (
    (21, 27), (22, 27),  # inner brow ends - nasal root
    (39, 27), (42, 27),  # inner eye corners - nasal root
    (30, 33),  # nose tip - nose base (nostril chain)
    (33, 51),  # nose base - upper lip top (philtrum)
    (48, 60), (54, 64),  # outer - inner mouth corners
    (8, 57),  # chin - lower lip bottom
    (68, 36), (68, 39), (69, 42), (69, 45),  # pupils - their eye corners
)  # fmt: skip
_FACE_FLIPS = (  # (person's left, person's right)
    *((16 - i, i) for i in range(8)),  # jaw
    *((26 - i, 17 + i) for i in range(5)),  # brows
    (35, 31), (34, 32),  # nostrils
    (45, 36), (44, 37), (43, 38), (42, 39), (47, 40), (46, 41),  # eyes
    (54, 48), (53, 49), (52, 50), (55, 59), (56, 58),  # outer lip
    (64, 60), (63, 61), (65, 67),  # inner lip
    (69, 68),  # pupils
)  # fmt: skip

# ---------------------------------------------------------------------------
# OpenPose hand (21 points): wrist, then 4 points per finger from base to tip.
# ---------------------------------------------------------------------------
_FINGERS = ("Thumb", "Index", "Middle", "Ring", "Pinky")
_HAND_PARTS = ("Wrist", *(f"{finger}{k}" for finger in _FINGERS for k in range(1, 5)))
_HAND_LIMBS = tuple(e for f in range(5) for e in _chain([0, *range(1 + 4 * f, 5 + 4 * f)]))

# ---------------------------------------------------------------------------
# OpenPose 137 = BODY_25 + face 70 + left hand 21 + right hand 21.
# ---------------------------------------------------------------------------
_FACE0, _LHAND0, _RHAND0 = 25, 95, 116


def _shift(edges: Iterable[Edge], offset: int) -> list[Edge]:
    return [(i + offset, j + offset) for i, j in edges]


OPENPOSE_137 = SkeletonLayout(
    name="openpose_137",
    joints=(
        _BODY25_JOINTS
        + _FACE_NAMES
        + tuple(f"LHand{p}" for p in _HAND_PARTS)
        + tuple(f"RHand{p}" for p in _HAND_PARTS)
    ),
    limbs=(
        *_BODY25_LIMBS,
        *_shift(_FACE_CONTOURS, _FACE0),
        *_shift(_FACE_ANCHORS, _FACE0),
        *_shift(_HAND_LIMBS, _LHAND0),
        *_shift(_HAND_LIMBS, _RHAND0),
        (0, _FACE0 + 30),  # body Nose - face nose tip
        (_BODY25_LWRIST, _LHAND0),
        (_BODY25_RWRIST, _RHAND0),
    ),
    flip_pairs=(
        *_BODY25_FLIPS,
        *_shift(_FACE_FLIPS, _FACE0),
        *((_LHAND0 + k, _RHAND0 + k) for k in range(21)),
    ),
    center=_BODY25_NECK,
)

# ---------------------------------------------------------------------------
# iMiGUE MiGA'23 `_light_hand.csv`: BODY_25, then RightFinger1..5 on RWrist and
# LeftFinger1..5 on LWrist. Which hand points "Finger1..5" are is not documented
# (probably fingertips), so each is linked straight to its wrist.
# ---------------------------------------------------------------------------
IMIGUE_LIGHT_HAND_35 = SkeletonLayout(
    name="imigue_light_hand_35",
    joints=(
        _BODY25_JOINTS
        + tuple(f"RightFinger{k}" for k in range(1, 6))
        + tuple(f"LeftFinger{k}" for k in range(1, 6))
    ),
    limbs=(
        *_BODY25_LIMBS,
        *((_BODY25_RWRIST, 25 + k) for k in range(5)),
        *((_BODY25_LWRIST, 30 + k) for k in range(5)),
    ),
    flip_pairs=(*_BODY25_FLIPS, *((30 + k, 25 + k) for k in range(5))),
    center=_BODY25_NECK,
)

#: The 22 joints of the official MiGA'23 baseline arrays, as indices into the 35.
IMIGUE_MIGA_22_FROM_35 = (0, 1, 2, 3, 4, 5, 6, 7, 15, 16, 17, 18, *range(25, 35))
IMIGUE_MIGA_22 = IMIGUE_LIGHT_HAND_35.subset(IMIGUE_MIGA_22_FROM_35, name="imigue_miga_22")

#: The MiGA'25 winner's (MM-Gesture) 36 joints, as indices into the 137.
IMIGUE_36_FROM_137 = (
    0, 1, 2, 3, 4, 5, 6, 7, 15, 16, 17, 18,  # body
    27, 29, 33, 37, 39, 44, 49, 52, 73, 76, 79, 82,  # face 2, 4, 8, 12, 14, 19, 24, 27, 48-57
    95, 99, 103, 107, 111, 115,  # left hand: wrist + fingertips
    116, 120, 124, 128, 132, 136,  # right hand: wrist + fingertips
)  # fmt: skip
MMGESTURE_36 = OPENPOSE_137.subset(IMIGUE_36_FROM_137, name="mmgesture_36")

# Our fixed choice of the "68-keypoint" subset (the paper using it gives no
# list): all 25 body joints; 19 face points (brows 17, 19, 21, 22, 24, 26, eye
# corners 36, 39, 42, 45, nose 27, 30, mouth 48, 51, 54, 57, jaw 4, 8, 12); per
# hand 12 points (wrist, thumb 1, 2, 4, and base + tip of the other fingers).
_FACE_19 = (4, 8, 12, 17, 19, 21, 22, 24, 26, 27, 30, 36, 39, 42, 45, 48, 51, 54, 57)
_HAND_12 = (0, 1, 2, 4, 5, 8, 9, 12, 13, 16, 17, 20)
#: The 68 joints of ``openpose_68``, as indices into the 137.
OPENPOSE_68_FROM_137 = (
    *range(25),
    *(_FACE0 + f for f in _FACE_19),
    *(_LHAND0 + h for h in _HAND_12),
    *(_RHAND0 + h for h in _HAND_12),
)
OPENPOSE_68 = OPENPOSE_137.subset(OPENPOSE_68_FROM_137, name="openpose_68")

# ---------------------------------------------------------------------------
# COCO 17 keypoints with the 19-link COCO/mmpose skeleton (pyskl's limb
# heatmaps use a 17-link variant with nose-shoulder links; not this one).
# ---------------------------------------------------------------------------
_COCO_JOINTS = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip
_COCO_LIMBS = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12),
    (5, 6), (5, 7), (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2),
    (1, 3), (2, 4), (3, 5), (4, 6),
)  # fmt: skip
COCO_17 = SkeletonLayout(
    name="coco_17",
    joints=_COCO_JOINTS,
    limbs=_COCO_LIMBS,
    flip_pairs=tuple((k, k + 1) for k in range(1, 17, 2)),
    center=0,  # nose, see the module docstring
)


#: ``imigue_light_hand_35`` from ``openpose_137``: BODY_25, then the right and left
#: fingertips (thumb, index, middle, ring, pinky). Which hand points the release's
#: ``RightFinger1..5`` / ``LeftFinger1..5`` are is not documented; fingertips are our
#: assumption (SynthMG draws them so), so treat recognizers trained on the MiGA'23
#: csv as approximate on converted keypoints.
IMIGUE_LIGHT_HAND_35_FROM_137 = (
    *range(25),
    *(_RHAND0 + 4 * k for k in range(1, 6)),
    *(_LHAND0 + 4 * k for k in range(1, 6)),
)
