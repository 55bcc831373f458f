"""SynthMG's gesture table (one :class:`GestureSpec` per class), class histograms and FG-Text.

The table is our own invention, loosely following each class name; it is not an
annotation of the real datasets. :func:`synth_attributes` gives each clip's
FG-Text attributes from what the generator really did.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..fgtext import FGAttributes

__all__ = ["GESTURES", "GestureSpec"]


Part = Literal["hand", "hands", "head", "shoulders", "torso", "legs", "random"]
Pattern = Literal[
    "hold",
    "rub",
    "scratch",
    "tap",
    "circle",
    "pull",
    "sweep",
    "nod",
    "down",
    "up",
    "tilt",
    "press",
    "shrug",
    "alternate",
    "breath",
    "sway",
    "straighten",
    "shake",
    "cross",
    "illustrate",
    "turn",
    "rise",
    "curl",
    "spread",
    "close",
    "stretch",
    "retract",
    "tiptoe",
]
Fingers = Literal["open", "up", "closed", "fidget"]


@dataclass(frozen=True)
class GestureSpec:
    """How one class moves.

    Attributes:
        part: what moves: the (dominant) ``hand``, both ``hands``, ``head``,
            ``shoulders``, ``torso``, ``legs``, or ``random`` (non-MG).
        pattern: the motion performed during the action phase.
        target: key of the hand target table (hand gestures only).
        fingers: finger configuration while at the target.
        hidden: the hands go out of the camera's view (confidence 0).
    """

    part: Part
    pattern: Pattern
    target: str | None = None
    fingers: Fingers = "open"
    hidden: bool = False


# One entry per class, in the dataset's 0-based label order (mgr.classes).
GESTURES: dict[str, tuple[GestureSpec, ...]] = {
    "imigue": (
        GestureSpec("head", "down"),  # 0 turtle neck
        GestureSpec("shoulders", "breath"),  # 1 bulging face, deep breath
        GestureSpec("hand", "hold", "hat"),  # 2 touching hat
        GestureSpec("hand", "scratch", "head_side"),  # 3 touching or scratching head
        GestureSpec("hand", "scratch", "forehead"),  # 4 ... forehead
        GestureSpec("hands", "hold", "face"),  # 5 covering face
        GestureSpec("hand", "rub", "eye"),  # 6 rubbing eyes
        GestureSpec("hand", "tap", "eye"),  # 7 touching or scratching facial parts
        GestureSpec("hand", "hold", "ear"),  # 8 touching ears
        GestureSpec("hand", "tap", "mouth", "closed"),  # 9 biting nails
        GestureSpec("hand", "hold", "jaw"),  # 10 touching jaw
        GestureSpec("hand", "scratch", "neck"),  # 11 touching or scratching neck
        GestureSpec("hand", "circle", "hair"),  # 12 playing or adjusting hair
        GestureSpec("hands", "pull", "collar"),  # 13 buckle button, pulling collar
        GestureSpec("hand", "hold", "notch"),  # 14 suprasternal notch
        GestureSpec("hand", "scratch", "back", hidden=True),  # 15 scratching back
        GestureSpec("hands", "hold", "other_elbow"),  # 16 folding arms
        GestureSpec("hand", "sweep", "other_forearm"),  # 17 dusting off clothes
        GestureSpec("hands", "hold", "behind", hidden=True),  # 18 arms behind body
        GestureSpec("torso", "sway"),  # 19 moving torso
        GestureSpec("torso", "straighten"),  # 20 sitting straightly
        GestureSpec("hand", "scratch", "other_arm"),  # 21 scratching or touching arms
        GestureSpec("hands", "rub", "front"),  # 22 rubbing or holding hands
        GestureSpec("hands", "hold", "front", "closed"),  # 23 crossing fingers
        GestureSpec("hands", "hold", "chest_front", "up"),  # 24 minaret gesture
        GestureSpec("hand", "circle", "lap", "fidget"),  # 25 playing with objects
        GestureSpec("hands", "hold", "side_low"),  # 26 hold back arms
        GestureSpec("head", "up"),  # 27 head up
        GestureSpec("head", "press"),  # 28 pressing lips
        GestureSpec("hands", "hold", "hip"),  # 29 arms akimbo
        GestureSpec("shoulders", "alternate"),  # 30 shaking shoulders
        GestureSpec("random", "illustrate"),  # 31 non-MG: illustrative body language
    ),
    "smg": (
        GestureSpec("head", "down"),  # 0 turtling neck and shoulder
        GestureSpec("hand", "rub", "eye"),  # 1 rubbing eyes and forehead
        GestureSpec("hands", "hold", "other_elbow"),  # 2 folding arms
        GestureSpec("hand", "hold", "notch"),  # 3 suprasternal notch
        GestureSpec("legs", "shake"),  # 4 moving legs
        GestureSpec("hand", "scratch", "neck"),  # 5 touching or scratching neck
        GestureSpec("hands", "hold", "behind", hidden=True),  # 6 folding arms behind body
        GestureSpec("hands", "rub", "front"),  # 7 rubbing hands, crossing fingers
        GestureSpec("hands", "hold", "hip"),  # 8 arms akimbo
        GestureSpec("legs", "cross"),  # 9 crossing legs
        GestureSpec("hand", "scratch", "other_arm"),  # 10 scratching some part of body
        GestureSpec("hand", "tap", "cheek"),  # 11 facial parts other than eyes
        GestureSpec("hand", "circle", "hair"),  # 12 playing or adjusting hair
        GestureSpec("hand", "hold", "other_arm"),  # 13 holding arms
        GestureSpec("hands", "pull", "collar"),  # 14 pulling shirt collar
        GestureSpec("hand", "circle", "lap", "fidget"),  # 15 playing with objects
        GestureSpec("random", "illustrate"),  # 16 non-MG: illustrative gestures
    ),
    "ma52": (
        GestureSpec("torso", "shake"),  # 0 shaking body
        GestureSpec("torso", "straighten"),  # 1 sitting straightly
        GestureSpec("shoulders", "shrug"),  # 2 shrugging
        GestureSpec("torso", "turn"),  # 3 turning around
        GestureSpec("torso", "rise"),  # 4 rising up
        GestureSpec("head", "down"),  # 5 bowing head
        GestureSpec("head", "up"),  # 6 head up
        GestureSpec("head", "tilt"),  # 7 tilting head
        GestureSpec("head", "turn"),  # 8 turning head
        GestureSpec("head", "nod"),  # 9 nodding
        GestureSpec("head", "shake"),  # 10 shaking head
        GestureSpec("hand", "scratch", "other_arm"),  # 11 scratching arms
        GestureSpec("hand", "circle", "lap", "fidget"),  # 12 playing objects
        GestureSpec("hands", "hold", "front"),  # 13 putting hands together
        GestureSpec("hands", "rub", "front"),  # 14 rubbing hands
        GestureSpec("hand", "tap", "chest"),  # 15 pointing oneself
        GestureSpec("hand", "hold", "lap", "closed"),  # 16 clenching fist
        GestureSpec("hands", "hold", "reach"),  # 17 stretching arms
        GestureSpec("hands", "hold", "side_low"),  # 18 retracting arms
        GestureSpec("hand", "rub", "wave"),  # 19 waving
        GestureSpec("hands", "hold", "wide"),  # 20 spreading hands
        GestureSpec("hands", "hold", "chest_front", "up"),  # 21 hands touching fingers
        GestureSpec("hand", "hold", "lap", "fidget"),  # 22 other finger movements
        GestureSpec("random", "illustrate"),  # 23 illustrative gestures
        GestureSpec("legs", "shake"),  # 24 shaking legs
        GestureSpec("legs", "curl"),  # 25 curling legs
        GestureSpec("legs", "spread"),  # 26 spread legs
        GestureSpec("legs", "close"),  # 27 closing legs
        GestureSpec("legs", "cross"),  # 28 crossing legs
        GestureSpec("legs", "stretch"),  # 29 stretching feet
        GestureSpec("legs", "retract"),  # 30 retracting feet
        GestureSpec("legs", "tiptoe"),  # 31 tiptoe
        GestureSpec("hand", "scratch", "neck"),  # 32 scratching or touching neck
        GestureSpec("hand", "scratch", "chest"),  # 33 ... chest
        GestureSpec("hand", "scratch", "back", hidden=True),  # 34 ... back
        GestureSpec("hand", "scratch", "shoulder"),  # 35 ... shoulder
        GestureSpec("hands", "hold", "hip"),  # 36 arms akimbo
        GestureSpec("hands", "hold", "other_elbow"),  # 37 crossing arms
        GestureSpec("hand", "circle", "hair"),  # 38 playing or tidying hair
        GestureSpec("hand", "scratch", "hindbrain"),  # 39 ... hindbrain
        GestureSpec("hand", "scratch", "forehead"),  # 40 ... forehead
        GestureSpec("hand", "scratch", "cheek"),  # 41 ... face
        GestureSpec("hand", "rub", "eye"),  # 42 rubbing eyes
        GestureSpec("hand", "tap", "nose"),  # 43 touching nose
        GestureSpec("hand", "hold", "ear"),  # 44 touching ears
        GestureSpec("hands", "hold", "face"),  # 45 covering face
        GestureSpec("hand", "hold", "mouth"),  # 46 covering mouth
        GestureSpec("hand", "pull", "glasses"),  # 47 pushing glasses
        GestureSpec("hand", "tap", "knee"),  # 48 patting legs
        GestureSpec("hand", "hold", "knee"),  # 49 touching legs
        GestureSpec("hand", "scratch", "knee"),  # 50 scratching legs
        GestureSpec("hand", "scratch", "shin"),  # 51 scratching feet
    ),
}

# Class frequencies follow the real training histograms (datasets.md: iMiGUE
# MiGA'23 train_label.pkl; SMG official test_label.pkl, the only published SMG
# histogram), floored so that every class occurs in every split.
_HISTOGRAMS: dict[str, tuple[int, ...]] = {
    "imigue": (
        10,
        418,
        39,
        207,
        80,
        23,
        64,
        858,
        87,
        3,
        302,
        154,
        97,
        41,
        28,
        27,
        322,
        83,
        2,
        942,
        170,
        373,
        657,
        700,
        11,
        287,
        87,
        60,
        1237,
        6,
        2272,
        4023,
    ),
    "smg": (13, 3, 15, 2, 49, 1, 3, 191, 243, 34, 8, 30, 4, 5, 2, 2, 9),
    # MA-52's per-class counts are not in our sources; the paper calls it long-tailed.
    # An invented geometric tail over a fixed class order (ours, not the real one).
    "ma52": tuple(
        round(900 * 0.92**r) + 5 for r in np.random.default_rng(52).permutation(52).tolist()
    ),
}


# FG-Text of SynthMG clips: what the generator really did (receivers use the person's
# own left/right; "{s}" = the moving hand's side, "{o}" = the other side).
_RECEIVERS: dict[str, str] = {
    "eye": "{s} eye",
    "forehead": "forehead",
    "head_side": "{s} side of the head",
    "hat": "hat",
    "hair": "hair above the {s} ear",
    "cheek": "{s} cheek",
    "ear": "{s} ear",
    "mouth": "mouth",
    "jaw": "jaw",
    "face": "face",
    "neck": "neck",
    "notch": "suprasternal notch",
    "collar": "shirt collar",
    "chest": "chest",
    "other_arm": "{o} upper arm",
    "other_elbow": "{o} elbow",
    "other_forearm": "{o} forearm",
    "back": "back",
    "behind": "back",
    "hip": "{s} hip",
    "front": "other hand",
    "lap": "lap",
    "chest_front": "other fingertips",
    "side_low": "{s} side of the body",
    "knee": "{s} knee",
    "shin": "{s} shin",
    "hindbrain": "back of the head",
    "glasses": "glasses",
    "nose": "nose",
    "shoulder": "{o} shoulder",
    "wave": "none",
    "wide": "none",
    "reach": "none",
}
# Both hands act on the two sides at once.
_RECEIVERS_BOTH: dict[str, str] = {
    "other_elbow": "opposite elbows",
    "hip": "hips",
    "side_low": "sides of the body",
}
_DIRECTIONS: dict[str, str] = {
    **dict.fromkeys(
        (
            "eye forehead head_side hat hair cheek ear mouth jaw face neck notch collar "
            "glasses nose hindbrain wave shoulder"
        ).split(),
        "upward",
    ),
    **dict.fromkeys(
        "chest other_arm other_elbow other_forearm front chest_front".split(), "inward"
    ),
    **dict.fromkeys(("back", "behind"), "backward"),
    **dict.fromkeys("lap knee shin side_low hip".split(), "downward"),
    "wide": "outward",
    "reach": "forward",
}
_MOTIONS: dict[str, str] = {
    "hold": "holding",
    "rub": "rubbing",
    "scratch": "scratching",
    "tap": "tapping",
    "circle": "circling",
    "pull": "pulling",
    "sweep": "sweeping",
}
# (part, pattern) -> attributes of the body (non-hand) gestures; "{t}" = turn side.
_BODY_ATTRIBUTES: dict[tuple[str, str], tuple[str, str, str, str]] = {
    ("head", "down"): ("head", "shoulders", "downward", "sinking"),
    ("head", "up"): ("head", "none", "upward", "raising"),
    ("head", "press"): ("lips", "none", "inward", "pressing"),
    ("head", "nod"): ("head", "none", "up and down", "nodding"),
    ("head", "tilt"): ("head", "none", "sideways", "tilting"),
    ("head", "turn"): ("head", "none", "to the {t}", "turning"),
    ("head", "shake"): ("head", "none", "left and right", "shaking"),
    ("shoulders", "alternate"): ("shoulders", "none", "up and down", "shaking"),
    ("shoulders", "breath"): ("shoulders", "none", "upward", "breathing"),
    ("shoulders", "shrug"): ("shoulders", "none", "upward", "shrugging"),
    ("torso", "sway"): ("upper body", "none", "sideways", "swaying"),
    ("torso", "straighten"): ("upper body", "none", "upward", "straightening"),
    ("torso", "shake"): ("whole body", "none", "sideways", "shaking"),
    ("torso", "rise"): ("whole body", "none", "upward", "rising"),
    ("torso", "turn"): ("upper body", "none", "to the {t}", "turning"),
    ("legs", "shake"): ("legs", "none", "sideways", "shaking"),
    ("legs", "cross"): ("right leg", "left knee", "upward", "crossing"),
    ("legs", "curl"): ("legs", "chair", "backward", "curling"),
    ("legs", "spread"): ("legs", "none", "outward", "spreading"),
    ("legs", "close"): ("legs", "other leg", "inward", "closing"),
    ("legs", "stretch"): ("feet", "none", "forward", "stretching"),
    ("legs", "retract"): ("feet", "chair", "backward", "retracting"),
    ("legs", "tiptoe"): ("heels", "none", "upward", "tiptoeing"),
}


def synth_attributes(spec: GestureSpec, dominant: str, info: dict | None = None) -> FGAttributes:
    """The true FG-Text attributes of a SynthMG clip.

    Args:
        spec: the clip's gesture.
        dominant: the subject's dominant hand, ``"r"`` or ``"l"`` (the hand of
            one-handed gestures).
        info: the clip's random choices, as :func:`render_clip` fills them.

    Returns:
        Initiator, receiver, direction and motion type, naming the person's own
        left and right.
    """
    info = info or {}
    side = "right" if dominant == "r" else "left"
    other = "left" if dominant == "r" else "right"
    if spec.part in ("hand", "hands"):
        both = spec.part == "hands"
        target = spec.target or "front"
        receiver = _RECEIVERS_BOTH.get(target) if both else None
        receiver = receiver or _RECEIVERS[target].format(s=side, o=other)
        motion = _MOTIONS[spec.pattern]
        if spec.fingers == "fidget":
            motion = "fidgeting"
        elif target == "wave":
            motion = "waving"
        initiator = "both hands" if both else f"{side} hand"
        return FGAttributes(initiator, receiver, _DIRECTIONS[target], motion)
    if spec.part == "random":  # non-MG: illustrative gestures with one or both hands
        hands = "both hands" if info.get("hands", 1) == 2 else f"{side} hand"
        return FGAttributes(hands, "none", "outward", "gesturing")
    turn = "left" if info.get("turn", 1.0) > 0 else "right"  # +yaw moves the nose to +x
    row = _BODY_ATTRIBUTES[(spec.part, spec.pattern)]
    return FGAttributes(*(v.format(t=turn) for v in row))
