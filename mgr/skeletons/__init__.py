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

Modules: :mod:`.layout` (the :class:`SkeletonLayout` type), :mod:`.layouts` (the
datasets' layouts), :mod:`.wholebody` (COCO-WholeBody and its conversion); the
registry (:data:`LAYOUTS`, :func:`get_layout`) is here, and every name is
importable from ``mgr.skeletons``.
"""

from __future__ import annotations

from .layout import SkeletonLayout
from .layouts import (
    COCO_17,
    IMIGUE_36_FROM_137,
    IMIGUE_LIGHT_HAND_35,
    IMIGUE_LIGHT_HAND_35_FROM_137,
    IMIGUE_MIGA_22,
    IMIGUE_MIGA_22_FROM_35,
    KINECT_V2_25,
    MMGESTURE_36,
    OPENPOSE_68,
    OPENPOSE_68_FROM_137,
    OPENPOSE_137,
    OPENPOSE_BODY_25,
)
from .wholebody import COCO_WHOLEBODY_133, derive_flip_pairs, openpose_137_from_coco_wholebody

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
