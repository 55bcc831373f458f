"""Keypoint layouts of the micro-gesture datasets, described as data.

A :class:`SkeletonLayout` names the joints on the ``V`` axis of a keypoint array,
the undirected limbs (graph edges) between them, the left/right mirror pairs and
the centre joint used for centre normalisation. Layouts that keep only some
joints of a bigger one are built with :meth:`SkeletonLayout.subset`, which
*derives* their limbs and flip pairs from the parent, so the two can never
disagree.

Conventions used by every layout:

* ``limbs`` are stored canonically as ``(i, j)`` with ``i < j``, sorted. Use
  :meth:`SkeletonLayout.oriented_limbs` for ``(parent, child)`` bones pointing
  away from the centre.
* ``flip_pairs`` are ``(left, right)`` of the *person's* left and right side,
  not the image's. OpenPose (``LShoulder``), Kinect (``ShoulderLeft``) and COCO
  (``left_shoulder``) joint names already follow the person.
* Every layout below is a connected graph.

Layouts and choices that are ours, not the datasets':

* ``kinect_v2_25`` (SMG): the Kinect v2 SDK bone list (``HandTip`` hangs off
  ``Hand`` and ``Thumb`` off ``Wrist``). NTU/ST-GCN's ``ntu-rgb+d`` graph, used
  by the official SMG baseline, instead chains ``HandTip - Thumb - Hand``; the
  other 22 bones are the same. Centre ``SpineMid`` (index 1), as in NTU-style
  centre normalisation.
* ``openpose_body_25``: the 24 OpenPose rendering pairs. Centre ``Neck``: the
  iMiGUE subjects are seated and cropped near the waist, so the hips are often
  missing while the neck is the most reliably detected torso joint.
* ``openpose_137`` (MiGA'25 xlsx): BODY_25, face 70, left hand 21, right hand 21.
  The face uses the 63 OpenPose face rendering pairs (contours, closed eye and
  lip loops) plus 13 anchor edges of ours that join the contours into one graph
  and attach the pupils; three bridges join the blocks: body ``Nose`` - face nose
  tip, ``LWrist`` - left-hand wrist, ``RWrist`` - right-hand wrist. See
  ``_FACE_ANCHORS``.
* ``openpose_68``: the paper that uses a 68-point OpenPose subset does not list
  it; we fix it as BODY_25 + 19 face points + 12 points per hand (see
  ``OPENPOSE_68_FROM_137``).
* ``coco_17``: COCO has no neck or mid-hip; the centre is the nose, the one
  midline joint that is almost always detected in seated, upper-body footage.
  (PoseC3D does not centre at all; transforms may centre on a shoulder
  midpoint instead.)
* ``coco_wholebody_133`` (mmpose's RTMPose / RTMW / DWPose, ``mgr pose``): COCO 17,
  feet 6, face 68, left hand 21, right hand 21. mmpose names the face points
  ``face-0`` ... ``face-67``; we name them after their 300-W position (as the
  OpenPose face), so that the flip pairs are derived from the names
  (:func:`derive_flip_pairs`) instead of typed. Limbs: the COCO skeleton, the
  feet on their ankles, the OpenPose face contours and our anchors without the
  pupils, the hands, and bridges nose - face nose tip and wrist - hand root.
  Centre: the nose, as ``coco_17``. :func:`openpose_137_from_coco_wholebody`
  converts its keypoints to ``openpose_137``.
"""

from __future__ import annotations

import itertools
import operator
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "COCO_17",
    "COCO_WHOLEBODY_133",
    "IMIGUE_36_FROM_137",
    "IMIGUE_LIGHT_HAND_35",
    "IMIGUE_LIGHT_HAND_35_FROM_137",
    "IMIGUE_MIGA_22",
    "IMIGUE_MIGA_22_FROM_35",
    "KINECT_V2_25",
    "LAYOUTS",
    "MMGESTURE_36",
    "OPENPOSE_68",
    "OPENPOSE_68_FROM_137",
    "OPENPOSE_137",
    "OPENPOSE_BODY_25",
    "SkeletonLayout",
    "derive_flip_pairs",
    "get_layout",
    "openpose_137_from_coco_wholebody",
]

Edge = tuple[int, int]


def _canonical_edges(edges: Iterable[Sequence[int]]) -> tuple[Edge, ...]:
    """Return edges as sorted ``(min, max)`` pairs (duplicates are kept for validation)."""
    out = []
    for edge in edges:
        i, j = (operator.index(v) for v in edge)
        out.append((min(i, j), max(i, j)))
    return tuple(sorted(out))


@dataclass(frozen=True)
class SkeletonLayout:
    """A keypoint layout: joint names, limb graph, mirror pairs and centre joint.

    Attributes:
        name: registry name of the layout, e.g. ``"openpose_body_25"``.
        joints: joint names; the position in the tuple is the index on the ``V``
            axis of a keypoint array.
        limbs: undirected edges ``(i, j)``; stored canonically with ``i < j`` and
            sorted, whatever orientation they were given in.
        flip_pairs: ``(left, right)`` index pairs of the person's left and right
            side; joints not in a pair lie on the body's midline.
        center: index of the joint used for centre normalisation.
        parent: name of the layout this one was cut from, if any.
        parent_indices: for each joint, its index in the parent layout.
    """

    name: str
    joints: tuple[str, ...]
    limbs: tuple[Edge, ...]
    flip_pairs: tuple[Edge, ...]
    center: int
    parent: str | None = None
    parent_indices: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        # Accept lists from callers but store hashable, canonical tuples.
        object.__setattr__(self, "joints", tuple(str(j) for j in self.joints))
        object.__setattr__(self, "limbs", _canonical_edges(self.limbs))
        object.__setattr__(
            self,
            "flip_pairs",
            tuple((operator.index(a), operator.index(b)) for a, b in self.flip_pairs),
        )
        object.__setattr__(self, "center", operator.index(self.center))
        if self.parent_indices is not None:
            object.__setattr__(
                self, "parent_indices", tuple(operator.index(i) for i in self.parent_indices)
            )
        self._validate()

    def _validate(self) -> None:
        where = f"layout {self.name!r}"
        if not self.name:
            raise ValueError("a layout needs a non-empty name")
        num = len(self.joints)
        if num == 0:
            raise ValueError(f"{where} has no joints")
        if len(set(self.joints)) != num:
            dups = sorted({j for j in self.joints if self.joints.count(j) > 1})
            raise ValueError(f"{where} has duplicate joint names {dups}")
        for i, j in self.limbs:
            if i == j:
                raise ValueError(f"{where}: limb ({i}, {j}) is a self loop")
            if i < 0 or j >= num:
                raise ValueError(f"{where}: limb ({i}, {j}) out of range for {num} joints")
        if len(set(self.limbs)) != len(self.limbs):
            raise ValueError(f"{where} lists a limb twice")
        seen: set[int] = set()
        for left, right in self.flip_pairs:
            if left == right:
                raise ValueError(f"{where}: flip pair ({left}, {right}) maps a joint to itself")
            for k in (left, right):
                if not 0 <= k < num:
                    raise ValueError(
                        f"{where}: flip pair ({left}, {right}) out of range for {num} joints"
                    )
                if k in seen:
                    raise ValueError(f"{where}: joint {k} appears in more than one flip pair")
                seen.add(k)
        if not 0 <= self.center < num:
            raise ValueError(f"{where}: center {self.center} out of range for {num} joints")
        if (self.parent is None) != (self.parent_indices is None):
            raise ValueError(f"{where}: parent and parent_indices must be given together")
        if self.parent_indices is not None and len(self.parent_indices) != num:
            raise ValueError(f"{where}: {len(self.parent_indices)} parent_indices for {num} joints")

    @property
    def num_joints(self) -> int:
        """Number of joints ``V``."""
        return len(self.joints)

    def index(self, joint: str) -> int:
        """Return the index of a joint name.

        Args:
            joint: a name from :attr:`joints`.

        Returns:
            Its position on the ``V`` axis.

        Raises:
            KeyError: if the layout has no such joint; the message lists the names.
        """
        try:
            return self.joints.index(joint)
        except ValueError:
            raise KeyError(
                f"layout {self.name!r} has no joint {joint!r}; valid names: {list(self.joints)}"
            ) from None

    def flip_permutation(self) -> tuple[int, ...]:
        """Return the permutation that mirrors the person left/right.

        ``keypoint[..., p, :]`` swaps every left joint with its right partner and
        keeps midline joints in place (the coordinates themselves still need
        flipping by the caller).

        Returns:
            ``p`` with ``p[left] = right``, ``p[right] = left``, ``p[i] = i`` otherwise.
        """
        perm = list(range(self.num_joints))
        for left, right in self.flip_pairs:
            perm[left], perm[right] = right, left
        return tuple(perm)

    def adjacency(self) -> np.ndarray:
        """Return the symmetric 0/1 adjacency matrix of the limb graph.

        Returns:
            ``(V, V)`` float32 array, no self loops.
        """
        adj = np.zeros((self.num_joints, self.num_joints), dtype=np.float32)
        for i, j in self.limbs:
            adj[i, j] = adj[j, i] = 1.0
        return adj

    def _neighbours(self) -> list[list[int]]:
        nbrs: list[list[int]] = [[] for _ in range(self.num_joints)]
        for i, j in self.limbs:
            nbrs[i].append(j)
            nbrs[j].append(i)
        return nbrs

    def oriented_limbs(self) -> tuple[Edge, ...]:
        """Return the limbs as ``(parent, child)`` bones pointing away from the centre.

        The parent is the end with the smaller hop distance to :attr:`center`;
        ties (edges closing a cycle at equal depth) keep ``(min, max)``. On a tree
        every joint but the centre is the child of exactly one bone, which is
        what bone (joint-difference) features need.

        Returns:
            One ``(parent, child)`` pair per limb, in :attr:`limbs` order.
        """
        nbrs = self._neighbours()
        inf = self.num_joints + 1
        depth = [inf] * self.num_joints
        depth[self.center] = 0
        queue = [self.center]
        for u in queue:  # breadth-first: the list grows while we walk it
            for v in nbrs[u]:
                if depth[v] == inf:
                    depth[v] = depth[u] + 1
                    queue.append(v)
        return tuple((j, i) if depth[j] < depth[i] else (i, j) for i, j in self.limbs)

    def subset(
        self, indices: Sequence[int], name: str, center: int | None = None
    ) -> SkeletonLayout:
        """Keep some joints, deriving the subset's limbs and flip pairs.

        Two kept joints are linked iff the parent graph has a path between them
        whose inner joints were all dropped (graph contraction), so chains through
        dropped joints collapse into one limb. Flip pairs are the parent's pairs
        whose two ends are both kept.

        Args:
            indices: parent joint indices to keep, in the order of the new ``V`` axis.
            name: name of the new layout.
            center: parent index of the centre joint; required when the parent's
                centre is dropped, otherwise it defaults to the parent's centre.

        Returns:
            The subset layout, with :attr:`parent` set to this layout's name.

        Raises:
            ValueError: on out-of-range or duplicate indices, or a missing centre.
        """
        idx = [operator.index(i) for i in indices]
        if not idx:
            raise ValueError(f"subset {name!r} of {self.name!r} keeps no joints")
        bad = [i for i in idx if not 0 <= i < self.num_joints]
        if bad:
            raise ValueError(
                f"subset {name!r}: indices {bad} out of range for {self.name!r} "
                f"({self.num_joints} joints)"
            )
        if len(set(idx)) != len(idx):
            dups = sorted({i for i in idx if idx.count(i) > 1})
            raise ValueError(f"subset {name!r}: duplicate indices {dups}")
        new_of = {old: new for new, old in enumerate(idx)}

        if center is None:
            if self.center not in new_of:
                raise ValueError(
                    f"subset {name!r} drops the centre joint {self.center} "
                    f"({self.joints[self.center]!r}) of {self.name!r}; pass center="
                )
            center = self.center
        center = operator.index(center)
        if center not in new_of:
            raise ValueError(f"subset {name!r}: center {center} is not among the kept indices")

        # Contraction: from each kept joint, walk through dropped joints only.
        nbrs = self._neighbours()
        limbs: set[Edge] = set()
        for start in idx:
            seen = {start}
            stack = [start]
            while stack:
                u = stack.pop()
                for v in nbrs[u]:
                    if v in seen:
                        continue
                    seen.add(v)
                    if v in new_of:
                        a, b = new_of[start], new_of[v]
                        limbs.add((min(a, b), max(a, b)))
                    else:
                        stack.append(v)

        flips = tuple(
            (new_of[left], new_of[right])
            for left, right in self.flip_pairs
            if left in new_of and right in new_of
        )
        return SkeletonLayout(
            name=name,
            joints=tuple(self.joints[i] for i in idx),
            limbs=tuple(limbs),
            flip_pairs=flips,
            center=new_of[center],
            parent=self.name,
            parent_indices=tuple(idx),
        )


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

#: Every layout by name.
LAYOUTS: dict[str, SkeletonLayout] = {
    layout.name: layout
    for layout in (
        KINECT_V2_25,
        OPENPOSE_BODY_25,
        OPENPOSE_137,
        IMIGUE_LIGHT_HAND_35,
        IMIGUE_MIGA_22,
        MMGESTURE_36,
        OPENPOSE_68,
        COCO_17,
        COCO_WHOLEBODY_133,
    )
}


def get_layout(name: str) -> SkeletonLayout:
    """Return a registered layout by name.

    Args:
        name: one of the keys of :data:`LAYOUTS`.

    Returns:
        The layout.

    Raises:
        KeyError: if the name is unknown; the message lists the valid names.
    """
    try:
        return LAYOUTS[name]
    except KeyError:
        raise KeyError(
            f"unknown skeleton layout {name!r}; valid names: {sorted(LAYOUTS)}"
        ) from None
