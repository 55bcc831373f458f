"""SynthMG: procedural micro-gestures written in the real on-disk layouts.

SynthMG lets every part of mgr run with no licence and no download. A small
articulated upper body (head, arms, five-finger hands, legs) is animated by a
table of gesture specifications, one per class of the target dataset, and the
result is written exactly as the dataset owners release their files, so the
same readers serve synthetic and real data:

* ``layout="imigue"``: the MiGA'23 iMiGUE raw layout
  ``imigue_skeleton_{train,validate,test}/<vid>/<vid>_light_hand.csv`` (frame
  index + 35 OpenPose joints x (x, y, c) in pixels) and ``<vid>_label.csv``
  (``gid,start,end``, gid 1..31 or 99, 0-based inclusive frames).
  With ``source="miga25"`` the skeleton is the MiGA'25 ``<vid>_openpose.xlsx``
  (137 OpenPose keypoints: BODY_25, face 70, left and right hand 21) instead.
* ``layout="smg"``: the SMG raw layout ``SampleXXXX/SampleXXXX_skeleton.csv``
  (25 Kinect-v2 joints x 11 values: world xyz in metres, orientation, pixel
  xy, depth xy), ``_finelabels.csv`` (``label,start,end``, label 1..17, end
  exclusive as the official classification code reads it) and ``_data.csv``.

What makes the gestures *micro*:

* classes differ by small, local motions: the right hand to the eye vs the
  forehead (about 0.1 shoulder widths, ~20 px apart), rubbing vs tapping at the
  same place, shaking shoulders vs a deep breath;
* several classes share the same mean pose and differ only in how they move
  (rub / tap / hold at one target; torso sway, shoulder shaking, lip pressing
  on a neutral body), so a model of the clip's mean pose cannot separate them;
* nuisance variation on top: per-subject body size, proportions, position and
  handedness, slow global sway, idle hand drift, keypoint jitter, OpenPose-style
  missing joints (zeros with confidence 0) and low confidences, variable clip
  lengths, a long-tailed class distribution following the real training
  histograms, and the non-micro-gesture class (large illustrative gestures).

Subjects are disjoint across splits (cross-subject), every video belongs to
one subject, and everything is deterministic from ``seed``. ``difficulty`` in
``[0, 1]`` trades the amplitude of the distinguishing motion against noise.

Geometry is kept in *body units* (shoulder width = 1; x to the image right,
y down, z towards the camera) and projected to each layout at write time. The
gesture table is our own invention, loosely following each class name; it is
not an annotation of the real datasets.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from .fgtext import FGAttributes, write_fgtext_csv
from .readers.miga import write_openpose_xlsx
from .readers.video import write_video
from .synthetic_render import FigureStyle, render_background, render_figure

__all__ = [
    "GESTURES",
    "GestureSpec",
    "SynthMGConfig",
    "generate_synthmg",
    "render_clip",
]

Layout = Literal["imigue", "smg", "ma52"]

# ----------------------------------------------------------------------------
# The body model
# ----------------------------------------------------------------------------

# Canonical joints (body units, x right in the image, y down, z to the camera).
# "r_" is the person's right, which a camera facing the person sees on the left.
_TEMPLATE: dict[str, tuple[float, float, float]] = {
    "neck": (0.0, 0.0, 0.0),
    "head": (0.0, -0.55, 0.0),  # centre of the head, rotation pivot of the face
    "nose": (0.0, -0.52, 0.22),
    "r_eye": (-0.09, -0.6, 0.18),
    "l_eye": (0.09, -0.6, 0.18),
    "r_ear": (-0.2, -0.56, 0.0),
    "l_ear": (0.2, -0.56, 0.0),
    "r_shoulder": (-0.5, 0.03, 0.0),
    "l_shoulder": (0.5, 0.03, 0.0),
    "spine_mid": (0.0, 0.6, -0.02),
    "mid_hip": (0.0, 1.2, -0.05),
    "r_hip": (-0.24, 1.2, -0.05),
    "l_hip": (0.24, 1.2, -0.05),
    "r_knee": (-0.28, 1.3, 0.75),
    "l_knee": (0.28, 1.3, 0.75),
    "r_ankle": (-0.3, 2.05, 0.7),
    "l_ankle": (0.3, 2.05, 0.7),
    "r_bigtoe": (-0.33, 2.12, 0.9),
    "l_bigtoe": (0.33, 2.12, 0.9),
    "r_smalltoe": (-0.4, 2.12, 0.85),
    "l_smalltoe": (0.4, 2.12, 0.85),
    "r_heel": (-0.3, 2.12, 0.62),
    "l_heel": (0.3, 2.12, 0.62),
}
# Arms are solved by two-link inverse kinematics from the wrist position.
_REST_WRIST = {"r": np.array([-0.3, 0.92, 0.45]), "l": np.array([0.3, 0.92, 0.45])}
_UPPER_ARM, _FOREARM = 0.55, 0.5
_FINGER_SPREAD = np.deg2rad([-34.0, -14.0, 0.0, 14.0, 30.0])  # thumb .. little finger
_FINGER_LEN = np.array([0.13, 0.18, 0.19, 0.17, 0.14])

# Size of the distinguishing motion at difficulty 0.5, in body units (~12 px for a
# 200 px shoulder width): the "few pixels" that separate micro-gesture classes.
_BASE_AMPLITUDE = 0.06

# Named targets for the right hand, relative to an anchor joint (the left hand
# mirrors x). Neighbouring targets are ~0.08-0.15 body units apart (~15-30 px).
_TARGETS: dict[str, tuple[str, tuple[float, float, float]]] = {
    "eye": ("r_eye", (0.0, 0.0, 0.1)),
    "forehead": ("head", (-0.04, -0.2, 0.25)),
    "head_side": ("head", (-0.2, -0.2, 0.05)),
    "hat": ("head", (-0.05, -0.38, 0.05)),
    "hair": ("r_ear", (-0.04, -0.12, -0.05)),
    "cheek": ("nose", (-0.13, 0.03, -0.02)),
    "ear": ("r_ear", (-0.03, 0.0, 0.02)),
    "mouth": ("nose", (0.0, 0.12, 0.05)),
    "jaw": ("nose", (-0.02, 0.24, -0.02)),
    "face": ("nose", (-0.05, -0.02, 0.12)),
    "neck": ("neck", (-0.07, -0.14, 0.15)),
    "notch": ("neck", (0.0, 0.05, 0.18)),
    "collar": ("neck", (-0.14, 0.06, 0.18)),
    "chest": ("neck", (0.0, 0.3, 0.25)),
    "other_arm": ("l_shoulder", (0.02, 0.3, 0.15)),
    "other_elbow": ("l_shoulder", (0.05, 0.55, 0.3)),
    "other_forearm": ("l_shoulder", (-0.2, 0.75, 0.4)),
    "back": ("l_shoulder", (-0.2, 0.1, -0.3)),
    "behind": ("mid_hip", (-0.15, -0.2, -0.45)),
    "hip": ("r_hip", (-0.1, -0.05, 0.05)),
    "front": ("neck", (-0.02, 0.85, 0.5)),
    "lap": ("neck", (-0.15, 0.7, 0.5)),
    "chest_front": ("neck", (-0.03, 0.45, 0.45)),
    "side_low": ("r_shoulder", (-0.1, 0.95, 0.05)),
    # MA-52 (whole body, seated): more targets on the legs and around the body.
    "knee": ("r_knee", (0.0, -0.08, 0.05)),
    "shin": ("r_ankle", (0.0, -0.35, 0.05)),
    "hindbrain": ("head", (-0.12, -0.05, -0.25)),
    "glasses": ("nose", (-0.02, -0.1, 0.08)),
    "nose": ("nose", (-0.02, 0.02, 0.08)),
    "shoulder": ("l_shoulder", (0.0, -0.02, 0.12)),
    "wave": ("r_shoulder", (-0.35, -0.55, 0.2)),
    "wide": ("r_shoulder", (-0.55, 0.55, 0.35)),
    "reach": ("r_shoulder", (0.05, 0.2, 0.95)),
}

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


@dataclass
class SynthMGConfig:
    """Parameters of a SynthMG release.

    Args:
        layout: on-disk layout to write, ``"imigue"`` or ``"smg"``.
        seed: seed of every random choice.
        subjects: number of (train, val, test) subjects; disjoint sets. ``None``:
            (30, 6, 10) for iMiGUE; (30, 5, 5) for SMG, which numbers subjects
            1..40 in order so that the MiGA subject split (1-30 / 31-35 / 36-40)
            applies unchanged.
        videos_per_subject: long sequences per subject (SMG: always 1).
        clips_per_video: mean number of annotated clips per video.
        clip_frames: (min, max) clip length in frames.
        gap_frames: (min, max) unannotated frames between clips.
        difficulty: 0 (easy) .. 1 (hard): scales the distinguishing motion
            down (``1.5 - difficulty``) and the noise up (``0.5 + difficulty``).
        tail_floor: minimum class share of the long-tailed distribution.
        left_handed: fraction of subjects who gesture with the left hand.
        missing_rate: probability that a joint is missing in a frame.
        video: also render RGB videos of the figure (see below). MA-52 is a
            video-only release, so ``layout="ma52"`` always renders them.
        video_size: ``(H, W)`` of the rendered videos (even numbers: the mp4
            encoder needs them). The skeleton keeps its own pixel space
            (``image_size``); the video is the same frame scaled to this size.
            The real releases: iMiGUE 720x1280, SMG 1080x1920 (Kinect v2 colour).
        fps: frame rate written into the videos.
        untrimmed_video: iMiGUE layout: also write each whole rendered sequence as
            ``imigue_rgb_untrimmed/<vid>.mp4`` (not part of the MiGA release, which
            ships clips only): the unlabelled footage between clips, for
            self-supervised pretraining (:class:`mgr.datamodules.UnlabeledDataModule`).
        image_size: ``(H, W)`` of the pixel space the keypoints are written in (and
            that the figure is framed in). iMiGUE's MiGA'25 code uses 720x1280; SMG's
            Kinect colour camera is fixed at 1080x1920 (the only size allowed there).
        source: iMiGUE skeleton format: ``"miga23"`` (``_light_hand.csv``, 35 joints)
            or ``"miga25"`` (``_openpose.xlsx``, 137 keypoints; face and the 21 points
            of each hand are derived from the body model).

    RGB videos (``video=True``) follow each release's RGB layout: iMiGUE as
    MiGA'25 per-clip files ``imigue_rgb_{train,validate,test}/<vid>_<k>.mp4`` with
    clip lists ``iMiGUE_{train,val,test}_clips_list.txt`` (``"<vid>_<k>.mp4
    <label>"``); SMG as one long ``smg_rgb/SampleXXXX/SampleXXXX_color.mp4`` per
    subject; MA-52 as ``videos_{train,val,test}/SSSS_BB_NNNN.mp4`` (test:
    ``testNNNN.mp4``) with ``label_name.txt`` and CRLF ``*_list_videos.txt``.
    Unlike the real MA-52 release, SynthMG's test list carries the true labels
    (the real one has dummy zeros), so test metrics are meaningful.
    """

    layout: Layout = "imigue"
    seed: int = 0
    subjects: tuple[int, int, int] | None = None
    videos_per_subject: int = 2
    clips_per_video: int = 24
    clip_frames: tuple[int, int] = (20, 48)
    gap_frames: tuple[int, int] = (2, 8)
    difficulty: float = 0.5
    tail_floor: float = 0.01
    left_handed: float = 0.15
    missing_rate: float = 0.02
    video: bool = False
    video_size: tuple[int, int] = (180, 320)
    fps: float = 30.0
    untrimmed_video: bool = False
    image_size: tuple[int, int] = (1080, 1920)
    source: Literal["miga23", "miga25"] = "miga23"

    def __post_init__(self) -> None:
        if self.layout not in GESTURES:
            raise ValueError(f"layout must be one of {sorted(GESTURES)}, got {self.layout!r}")
        if not 0.0 <= self.difficulty <= 1.0:
            raise ValueError(f"difficulty must be in [0, 1], got {self.difficulty}")
        if self.subjects is None:
            self.subjects = {"imigue": (30, 6, 10), "smg": (30, 5, 5), "ma52": (30, 0, 10)}[
                self.layout
            ]
        # MA-52's validation set shares the training participants (datasets.md §3.2).
        shared_val = self.layout == "ma52"
        needed = (1, 0, 1) if shared_val else (1, 1, 1)
        if len(self.subjects) != 3 or any(
            n < m for n, m in zip(self.subjects, needed, strict=True)
        ):
            raise ValueError(
                f"subjects must give (train, val, test) counts >= {needed}, got {self.subjects}"
            )
        if any(v % 2 for v in self.video_size):
            raise ValueError(f"video_size must be even, got {self.video_size}")
        if len(self.image_size) != 2 or min(self.image_size) < 64:
            raise ValueError(f"image_size must be (H, W) >= 64 px, got {self.image_size}")
        if self.layout == "smg" and tuple(self.image_size) != (1080, 1920):
            raise ValueError(
                f"SMG keypoints are Kinect v2 colour pixels (1080x1920), got {self.image_size}"
            )
        if self.source not in ("miga23", "miga25"):
            raise ValueError(f"source must be 'miga23' or 'miga25', got {self.source!r}")
        if self.source == "miga25" and self.layout != "imigue":
            raise ValueError("source='miga25' (the OpenPose-137 xlsx) is an iMiGUE layout")
        if self.layout == "ma52":
            self.video = True
        if self.untrimmed_video and (self.layout != "imigue" or not self.video):
            raise ValueError(
                "untrimmed_video writes the iMiGUE layout's whole sequences: it needs "
                "layout='imigue' and video=True (SMG's RGB is untrimmed already)"
            )
        lo, hi = self.clip_frames
        if not 4 <= lo <= hi:
            raise ValueError(f"clip_frames must satisfy 4 <= min <= max, got {self.clip_frames}")
        self.subjects = tuple(self.subjects)  # type: ignore[assignment]
        self.clip_frames = tuple(self.clip_frames)  # type: ignore[assignment]
        self.gap_frames = tuple(self.gap_frames)  # type: ignore[assignment]
        self.video_size = tuple(self.video_size)  # type: ignore[assignment]
        self.image_size = tuple(self.image_size)  # type: ignore[assignment]


@dataclass
class _Subject:
    sid: int
    scale: float  # pixels per body unit
    origin: np.ndarray  # neck position in pixels (x, y)
    proportions: dict[str, float]
    dominant: Literal["r", "l"]
    style: float  # personal amplitude multiplier
    conf_level: float  # typical detector confidence
    rng: np.random.Generator = field(repr=False)


def _ease(u: np.ndarray) -> np.ndarray:
    """Smooth 0->1 ramp (cosine), clipped to [0, 1]."""
    return 0.5 - 0.5 * np.cos(np.pi * np.clip(u, 0.0, 1.0))


def _envelope(n: int, rng: np.random.Generator) -> np.ndarray:
    """Approach / action / return envelope of a clip, ``(n,)`` in [0, 1]."""
    t = np.arange(n) / max(n - 1, 1)
    a = rng.uniform(0.12, 0.25)  # end of approach
    b = 1.0 - rng.uniform(0.12, 0.25)  # start of return
    return _ease(t / a) * _ease((1.0 - t) / (1.0 - b))


def _smooth_noise(n: int, dims: int, rng: np.random.Generator, cutoff: float) -> np.ndarray:
    """Band-limited noise ``(n, dims)`` with unit std: white noise low-passed in time."""
    k = max(int(1.0 / cutoff), 1)
    x = rng.standard_normal((n + 2 * k, dims))
    kernel = np.hanning(2 * k + 1)
    kernel /= kernel.sum()
    y = np.stack([np.convolve(x[:, d], kernel, mode="same") for d in range(dims)], 1)[k:-k]
    # Divide by the filter's noise gain, not by the window's own spread: a window
    # shorter than the filter barely varies, and rescaling it would blow it up.
    return y / np.sqrt(np.square(kernel).sum())


def _rot(axis: str, angle: np.ndarray) -> np.ndarray:
    """Rotation matrices ``(n, 3, 3)`` about a coordinate axis."""
    c, s = np.cos(angle), np.sin(angle)
    o, z = np.ones_like(angle), np.zeros_like(angle)
    if axis == "x":
        m = [[o, z, z], [z, c, -s], [z, s, c]]
    elif axis == "y":
        m = [[c, z, s], [z, o, z], [-s, z, c]]
    else:
        m = [[c, -s, z], [s, c, z], [z, z, o]]
    return np.moveaxis(np.array(m), (0, 1), (-2, -1))


def _solve_elbow(
    shoulder: np.ndarray, wrist: np.ndarray, side: str
) -> tuple[np.ndarray, np.ndarray]:
    """Two-link inverse kinematics.

    Args:
        shoulder: ``(n, 3)`` shoulder positions.
        wrist: ``(n, 3)`` desired wrist positions.
        side: ``"r"`` or ``"l"``; the elbow bends outwards and down.

    Returns:
        ``(elbow, wrist)``, each ``(n, 3)``; the wrist is pulled in when out of reach.
    """
    d = wrist - shoulder
    dist = np.linalg.norm(d, axis=-1, keepdims=True)
    reach = _UPPER_ARM + _FOREARM - 1e-3
    dist_c = np.clip(dist, 0.1, reach)
    u = d / np.maximum(dist, 1e-6)
    wrist = shoulder + u * dist_c
    # Law of cosines: distance along u to the elbow's foot point, and the bend radius.
    along = (_UPPER_ARM**2 - _FOREARM**2 + dist_c**2) / (2 * dist_c)
    radius = np.sqrt(np.maximum(_UPPER_ARM**2 - along**2, 0.0))
    pole = np.array([-0.8 if side == "r" else 0.8, 0.6, -0.2])
    perp = pole - np.sum(pole * u, -1, keepdims=True) * u
    perp /= np.maximum(np.linalg.norm(perp, axis=-1, keepdims=True), 1e-6)
    return shoulder + u * along + perp * radius, wrist


def _mirror(v: Sequence[float] | np.ndarray) -> np.ndarray:
    out = np.array(v, dtype=float)
    out[..., 0] *= -1
    return out


class _Clip:
    """Per-frame joint positions of one clip, in body units."""

    def __init__(self, n: int, subject: _Subject) -> None:
        self.n = n
        self.subject = subject
        p = subject.proportions
        # Head joints scale about the neck (the origin): head size varies per person.
        self.pos = {
            k: np.tile(np.array(v) * (p["head"] if k in _HEAD_JOINTS else 1.0), (n, 1))
            for k, v in _TEMPLATE.items()
        }
        self.wrist = {s: np.tile(_REST_WRIST[s], (n, 1)) for s in "rl"}
        self.hand_dir = {s: None for s in "rl"}  # (n, 3) finger direction override
        self.spread = {s: np.ones(n) for s in "rl"}
        self.hidden = {s: np.zeros(n, bool) for s in "rl"}
        self.fidget = {s: np.zeros(n) for s in "rl"}
        self.info: dict[str, float] = {}  # random choices FG-Text needs (turn directions)


_HEAD_JOINTS = ("head", "nose", "r_eye", "l_eye", "r_ear", "l_ear")
_UPPER = ("neck", *_HEAD_JOINTS, "r_shoulder", "l_shoulder")


def _target(clip: _Clip, name: str, side: str) -> np.ndarray:
    anchor, off = _TARGETS[name]
    if side == "l":
        anchor = anchor.replace("r_", "#").replace("l_", "r_").replace("#", "l_")
        off = _mirror(off)
    return clip.pos[anchor] + np.asarray(off)


def _pattern_offset(pattern: str, n: int, amp: float, rng: np.random.Generator) -> np.ndarray:
    """Displacement ``(n, 3)`` of an effector performing ``pattern`` around its target."""
    t = np.arange(n, dtype=float)
    ph = rng.uniform(0, 2 * np.pi)
    out = np.zeros((n, 3))
    if pattern == "rub":  # slow horizontal back-and-forth
        out[:, 0] = amp * np.sin(2 * np.pi * t / rng.uniform(9, 13) + ph)
    elif pattern == "scratch":  # fast, small vertical strokes
        out[:, 1] = 0.7 * amp * np.sin(2 * np.pi * t / rng.uniform(4, 6) + ph)
    elif pattern == "circle":
        w = 2 * np.pi * t / rng.uniform(10, 14) + ph
        out[:, 0], out[:, 1] = amp * np.cos(w), amp * np.sin(w)
    elif pattern == "tap":  # repeated touch-and-release: one-sided pulses down and out
        pulse = 0.5 - 0.5 * np.cos(2 * np.pi * t / rng.uniform(8, 11) + ph)
        out[:, 1] = 1.3 * amp * pulse
        out[:, 0] = -0.6 * amp * pulse
        out[:, 2] = 1.0 * amp * pulse
    elif pattern == "pull":  # collar pulled down and out, twice
        out[:, 1] = 1.2 * amp * (0.5 - 0.5 * np.cos(2 * np.pi * t / rng.uniform(12, 16)))
        out[:, 2] = 0.8 * out[:, 1]
    elif pattern == "sweep":  # brushing along the forearm
        out[:, 0] = 2.5 * amp * np.sin(2 * np.pi * t / rng.uniform(8, 12) + ph)
        out[:, 1] = 0.6 * out[:, 0]
    return out


def _hand_gesture(
    clip: _Clip, spec: GestureSpec, env: np.ndarray, amp: float, rng: np.random.Generator
) -> None:
    sides = ["r", "l"] if spec.part == "hands" else [clip.subject.dominant]
    off = _pattern_offset(spec.pattern, clip.n, amp, rng)
    for i, side in enumerate(sides):
        tgt = _target(clip, spec.target or "front", side)
        tgt = tgt + rng.normal(0, 0.012, 3)  # where exactly a person touches varies a little
        o = off if side == "r" else _mirror(off)
        if spec.part == "hands" and spec.pattern == "rub" and i == 1:
            o = -o  # hands rub against each other
        goal = tgt + o * env[:, None]
        clip.wrist[side] = clip.wrist[side] * (1 - env[:, None]) + goal * env[:, None]
        if spec.fingers == "up":
            clip.hand_dir[side] = np.tile([0.0, -1.0, 0.15], (clip.n, 1))
        elif spec.fingers == "closed":
            clip.spread[side] = 1.0 - 0.75 * env
        elif spec.fingers == "fidget":
            clip.fidget[side] = env * np.sin(2 * np.pi * np.arange(clip.n) / rng.uniform(5, 7))
        if spec.hidden:
            clip.hidden[side] = env > 0.6


def _head_gesture(
    clip: _Clip, spec: GestureSpec, env: np.ndarray, amp: float, rng: np.random.Generator
) -> None:
    n = clip.n
    t = np.arange(n, dtype=float)
    k = amp / _BASE_AMPLITUDE  # head angles in radians at the default amplitude
    pitch = np.zeros(n)
    roll = np.zeros(n)
    yaw = np.zeros(n)
    shift = np.zeros((n, 3))
    if spec.pattern == "down":  # turtle: head sinks, shoulders rise
        pitch = 0.09 * k * env
        shift[:, 1] = 1.6 * amp * env
        for s in ("r_shoulder", "l_shoulder"):
            clip.pos[s][:, 1] -= 1.2 * amp * env
    elif spec.pattern == "up":
        pitch = -0.18 * k * env
    elif spec.pattern == "press":  # lips pressed: small fast chin tremor
        pitch = 0.16 * k * env * np.sin(2 * np.pi * t / rng.uniform(4, 6))
    elif spec.pattern == "nod":
        pitch = 0.3 * k * env * np.sin(2 * np.pi * t / rng.uniform(10, 14))
    elif spec.pattern == "tilt":
        roll = 0.3 * k * env
    elif spec.pattern == "turn":  # look to one side and hold
        clip.info["turn"] = float(rng.choice([-1.0, 1.0]))
        yaw = 0.35 * k * env * clip.info["turn"]
    elif spec.pattern == "shake":  # shake the head: yaw oscillation
        yaw = 0.3 * k * env * np.sin(2 * np.pi * t / rng.uniform(8, 12))
    _move_head(clip, pitch, roll, shift, yaw)


def _move_head(
    clip: _Clip,
    pitch: np.ndarray,
    roll: np.ndarray,
    shift: np.ndarray,
    yaw: np.ndarray | None = None,
) -> None:
    pivot = clip.pos["neck"] + np.array([0.0, -0.35, 0.0])
    rot = _rot("x", -pitch) @ _rot("z", roll)
    if yaw is not None:
        rot = _rot("y", yaw) @ rot
    for k in _HEAD_JOINTS:
        rel = clip.pos[k] - pivot
        clip.pos[k] = pivot + np.einsum("nij,nj->ni", rot, rel) + shift


def _body_gesture(
    clip: _Clip, spec: GestureSpec, env: np.ndarray, amp: float, rng: np.random.Generator
) -> None:
    n = clip.n
    t = np.arange(n, dtype=float)
    if spec.part == "shoulders":
        if spec.pattern == "alternate":  # shoulders shake in anti-phase
            w = env * 1.1 * amp * np.sin(2 * np.pi * t / rng.uniform(6, 9))
            clip.pos["r_shoulder"][:, 1] += w
            clip.pos["l_shoulder"][:, 1] -= w
        elif spec.pattern == "breath":  # one slow inhale: shoulders rise and widen
            b = env * np.sin(np.pi * np.clip(t / max(n - 1, 1), 0, 1))
            for s, sign in (("r_shoulder", -1), ("l_shoulder", 1)):
                clip.pos[s][:, 1] -= 1.3 * amp * b
                clip.pos[s][:, 0] += sign * 0.6 * amp * b
        elif spec.pattern == "shrug":
            for s in ("r_shoulder", "l_shoulder"):
                clip.pos[s][:, 1] -= 1.5 * amp * env
    elif spec.part == "torso":
        shift = np.zeros((n, 3))
        if spec.pattern == "sway":  # slow lateral rocking of the upper body
            shift[:, 0] = 2.5 * amp * env * np.sin(2 * np.pi * t / rng.uniform(14, 20))
        elif spec.pattern == "straighten":
            shift[:, 1] = -1.5 * amp * env
            shift[:, 2] = 0.8 * amp * env
        elif spec.pattern == "shake":  # fast whole-body shaking
            shift[:, 0] = 1.5 * amp * env * np.sin(2 * np.pi * t / rng.uniform(4, 6))
        elif spec.pattern == "rise":  # half rising from the chair
            shift[:, 1] = -4.0 * amp * env
            shift[:, 2] = 1.5 * amp * env
        elif spec.pattern == "turn":  # turn the upper body about the vertical axis
            clip.info["turn"] = float(rng.choice([-1.0, 1.0]))
            rot = _rot("y", 0.25 * (amp / _BASE_AMPLITUDE) * env * clip.info["turn"])
            for k in _UPPER:
                clip.pos[k] = np.einsum("nij,nj->ni", rot, clip.pos[k])
            for s in "rl":
                clip.wrist[s] = np.einsum("nij,nj->ni", rot, clip.wrist[s])
        for k in _UPPER:
            clip.pos[k] = clip.pos[k] + shift
        for s in "rl":
            clip.wrist[s] = clip.wrist[s] + 0.5 * shift
    elif spec.part == "legs":
        if spec.pattern == "shake":  # knee bouncing
            w = env * 1.2 * amp * np.sin(2 * np.pi * t / rng.uniform(4, 6))
            for k in ("knee", "ankle", "bigtoe", "smalltoe", "heel"):
                clip.pos["r_" + k][:, 0] += w * (1.0 if k == "knee" else 0.3)
                clip.pos["l_" + k][:, 0] -= w * (1.0 if k == "knee" else 0.3)
        elif spec.pattern == "cross":  # right leg crosses over the left knee
            d = np.array([0.5, -0.55, 0.1]) * env[:, None]
            for k in ("ankle", "bigtoe", "smalltoe", "heel"):
                clip.pos["r_" + k] = clip.pos["r_" + k] + d
            clip.pos["r_knee"] = clip.pos["r_knee"] + 0.4 * d
        else:  # MA-52 lower-limb actions: both legs move together
            _legs(clip, spec.pattern, env, amp)


_FEET = ("ankle", "bigtoe", "smalltoe", "heel")


def _legs(clip: _Clip, pattern: str, env: np.ndarray, amp: float) -> None:
    """Knee and foot displacements of the MA-52 lower-limb classes."""
    e = env[:, None] * amp / _BASE_AMPLITUDE
    for side, sign in (("r", -1.0), ("l", 1.0)):
        knee = np.zeros(3)
        feet = {k: np.zeros(3) for k in _FEET}
        if pattern == "curl":  # feet pulled back under the chair
            feet = {k: np.array([0.0, -0.1, -0.35]) for k in _FEET}
        elif pattern == "spread":
            knee = np.array([sign * 0.25, 0.0, 0.0])
            feet = {k: np.array([sign * 0.3, 0.0, 0.0]) for k in _FEET}
        elif pattern == "close":
            knee = np.array([-sign * 0.15, 0.0, 0.0])
            feet = {k: np.array([-sign * 0.15, 0.0, 0.0]) for k in _FEET}
        elif pattern == "stretch":  # legs stretched out forwards
            feet = {k: np.array([0.0, -0.25, 0.45]) for k in _FEET}
        elif pattern == "retract":
            feet = {k: np.array([0.0, 0.0, -0.2]) for k in _FEET}
        elif pattern == "tiptoe":  # heels rise, toes stay
            feet = {"ankle": np.array([0, -0.12, 0]), "heel": np.array([0, -0.15, 0])}
            knee = np.array([0.0, -0.08, 0.0])
        clip.pos[f"{side}_knee"] = clip.pos[f"{side}_knee"] + e * knee
        for k, d in feet.items():
            clip.pos[f"{side}_{k}"] = clip.pos[f"{side}_{k}"] + e * d


def _illustrate(clip: _Clip, env: np.ndarray, rng: np.random.Generator) -> None:
    """Non-MG: large, free illustrative gestures with one or both hands."""
    sides = ["r", "l"] if rng.random() < 0.5 else [clip.subject.dominant]
    clip.info["hands"] = len(sides)
    for side in sides:
        centre = _mirror([-0.3, 0.45, 0.5]) if side == "l" else np.array([-0.3, 0.45, 0.5])
        path = centre + 0.3 * _smooth_noise(clip.n, 3, rng, cutoff=0.12) * np.array([1, 1, 0.3])
        clip.wrist[side] = clip.wrist[side] * (1 - env[:, None]) + path * env[:, None]
    if rng.random() < 0.5:
        _move_head(
            clip,
            0.15 * env * np.sin(np.arange(clip.n) / 3.0),
            np.zeros(clip.n),
            np.zeros((clip.n, 3)),
        )


def _finish(clip: _Clip, rng: np.random.Generator, noise: float) -> dict[str, np.ndarray]:
    """Solve the arms, place the fingers and add the body's idle motion."""
    n, subj = clip.n, clip.subject
    pos = dict(clip.pos)
    # Idle hand drift (people are never still) before solving the arms.
    for s in "rl":
        clip.wrist[s] = clip.wrist[s] + 0.02 * noise * _smooth_noise(n, 3, rng, 0.08)
    for s in "rl":
        arm = subj.proportions["arm"]
        sh = pos[f"{s}_shoulder"]
        elbow, wrist = _solve_elbow(sh / arm, clip.wrist[s] / arm, s)
        pos[f"{s}_elbow"], pos[f"{s}_wrist"] = elbow * arm, wrist * arm
        fore = pos[f"{s}_wrist"] - pos[f"{s}_elbow"]
        fore /= np.maximum(np.linalg.norm(fore, axis=-1, keepdims=True), 1e-6)
        d = clip.hand_dir[s] if clip.hand_dir[s] is not None else fore
        d = d / np.linalg.norm(d, axis=-1, keepdims=True)
        ang = np.arctan2(d[:, 1], d[:, 0])
        sign = 1.0 if s == "r" else -1.0
        for f in range(5):
            a = ang + sign * _FINGER_SPREAD[f] * clip.spread[s] + 0.5 * clip.fidget[s] * (f - 2) / 2
            tip = np.stack([np.cos(a), np.sin(a), 0.3 * d[:, 2]], -1) * _FINGER_LEN[f]
            pos[f"{s}_finger{f + 1}"] = pos[f"{s}_wrist"] + tip * subj.proportions["hand"]
        pos[f"{s}_handtip"] = pos[f"{s}_finger3"]
        pos[f"{s}_hand"] = pos[f"{s}_wrist"] + 0.45 * (pos[f"{s}_finger3"] - pos[f"{s}_wrist"])
        pos[f"{s}_thumb"] = pos[f"{s}_finger1"]
    pos["spine_shoulder"] = pos["neck"] + np.array([0.0, 0.08, -0.02])
    # Global sway: slow translation and a small in-plane rotation about the hips.
    sway = 0.03 * noise * _smooth_noise(n, 3, rng, 0.03)
    roll = 0.02 * noise * _smooth_noise(n, 1, rng, 0.03)[:, 0]
    rot = _rot("z", roll)
    hip = pos["mid_hip"].copy()
    for k, v in pos.items():
        w = 0.3 if k.split("_")[-1] in ("knee", "ankle", "bigtoe", "smalltoe", "heel") else 1.0
        pos[k] = hip + np.einsum("nij,nj->ni", rot, v - hip) + w * sway
    return pos


def render_clip(
    spec: GestureSpec,
    n: int,
    subject: _Subject,
    amplitude: float,
    noise: float,
    info: dict | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Animate one clip.

    Args:
        spec: the gesture to perform.
        n: number of frames.
        subject: who performs it.
        amplitude: size of the distinguishing motion, in body units.
        noise: multiplier of the nuisance motion.
        info: filled with the clip's random choices that its FG-Text needs
            (``"turn"``: ±1 turn direction, ``"hands"``: hands used by non-MG).

    Returns:
        ``(positions, hidden)``: joint name -> ``(n, 3)`` body-unit positions, and
        side (``"r"``/``"l"``) -> ``(n,)`` bool mask of frames where that hand is
        out of view.
    """
    rng = subject.rng
    clip = _Clip(n, subject)
    env = _envelope(n, rng) if spec.part != "random" else _envelope(n, rng) ** 0.5
    amp = amplitude * subject.style
    if spec.part in ("hand", "hands"):
        _hand_gesture(clip, spec, env, amp, rng)
    elif spec.part == "head":
        _head_gesture(clip, spec, env, amp, rng)
    elif spec.part == "random":
        _illustrate(clip, env, rng)
    else:
        _body_gesture(clip, spec, env, amp, rng)
    if info is not None:
        info.update(clip.info)
    return _finish(clip, rng, noise), clip.hidden


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


def _idle(n: int, subject: _Subject, noise: float) -> tuple[dict[str, np.ndarray], dict]:
    """Unannotated frames between clips: the resting body."""
    return render_clip(GestureSpec("torso", "hold"), n, subject, 0.0, noise)


# ----------------------------------------------------------------------------
# Layouts
# ----------------------------------------------------------------------------

_BODY25 = (
    "nose",
    "neck",
    "r_shoulder",
    "r_elbow",
    "r_wrist",
    "l_shoulder",
    "l_elbow",
    "l_wrist",
    "mid_hip",
    "r_hip",
    "r_knee",
    "r_ankle",
    "l_hip",
    "l_knee",
    "l_ankle",
    "r_eye",
    "l_eye",
    "r_ear",
    "l_ear",
    "l_bigtoe",
    "l_smalltoe",
    "l_heel",
    "r_bigtoe",
    "r_smalltoe",
    "r_heel",
)
# MiGA'23 light_hand order: BODY_25, RightFinger1..5 (on RWrist), LeftFinger1..5.
_LIGHT_HAND_35 = (
    *_BODY25,
    *(f"r_finger{i}" for i in range(1, 6)),
    *(f"l_finger{i}" for i in range(1, 6)),
)
# Kinect v2 JointType order (datasets.md §1.3).
_KINECT_25 = (
    "mid_hip",
    "spine_mid",
    "neck",
    "head",
    "l_shoulder",
    "l_elbow",
    "l_wrist",
    "l_hand",
    "r_shoulder",
    "r_elbow",
    "r_wrist",
    "r_hand",
    "l_hip",
    "l_knee",
    "l_ankle",
    "l_bigtoe",
    "r_hip",
    "r_knee",
    "r_ankle",
    "r_bigtoe",
    "spine_shoulder",
    "l_handtip",
    "l_thumb",
    "r_handtip",
    "r_thumb",
)
_LEGS = {
    "r_knee",
    "r_ankle",
    "l_knee",
    "l_ankle",
    "l_bigtoe",
    "l_smalltoe",
    "l_heel",
    "r_bigtoe",
    "r_smalltoe",
    "r_heel",
    "mid_hip",
    "r_hip",
    "l_hip",
}


def _to_openpose(
    names: Sequence[str],
    pos: dict[str, np.ndarray],
    hidden: dict[str, np.ndarray],
    subj: _Subject,
    noise: float,
    missing: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Project body-unit joints to OpenPose-style detections: ``(n, V, 3)`` pixel x, y, conf."""
    xyz = np.stack([pos[k] for k in names], 1)
    n, v = xyz.shape[:2]
    px = subj.origin + subj.scale * xyz[..., :2]
    px = px + rng.normal(0, 0.012 * noise * subj.scale, px.shape)  # detector jitter
    conf = np.clip(rng.normal(subj.conf_level, 0.12, (n, v)), 0.05, 0.99)
    is_hand = np.array([_hand_point(k) is not None for k in names])
    conf[:, is_hand] *= 0.75  # hand keypoints are less certain
    drop = rng.random((n, v)) < missing
    # The lower body is mostly hidden by the desk in iMiGUE's press-conference videos.
    legs = np.array([k in _LEGS for k in names])
    drop[:, legs] |= rng.random((n, int(legs.sum()))) < 0.7
    for s in "rl":
        side = np.array([k == f"{s}_wrist" or _hand_point(k) == s for k in names])
        drop[np.ix_(hidden[s], side)] = True
    # Whole-hand dropouts: OpenPose often loses a hand for a few frames.
    for s in "rl":
        fingers = np.array([_hand_point(k) == s for k in names])
        lost = rng.random(n) < 0.04 * (0.5 + noise)
        drop[np.ix_(lost, fingers)] = True
    out = np.concatenate([px, conf[..., None]], -1)
    out[drop] = 0.0
    return out.astype(np.float32)


def _hand_point(name: str) -> str | None:
    """The side (``"r"``/``"l"``) of a finger or OpenPose hand keypoint name, else ``None``."""
    side, _, part = name.partition("_")
    return side if part.startswith(("finger", "hand21_")) else None


def _to_imigue(
    pos: dict[str, np.ndarray],
    hidden: dict[str, np.ndarray],
    subj: _Subject,
    noise: float,
    missing: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Project to the 35-joint light_hand layout: ``(n, 35, 3)`` pixel x, y, confidence."""
    return _to_openpose(_LIGHT_HAND_35, pos, hidden, subj, noise, missing, rng)


# OpenPose's 70-point face (the 68 dlib points + 2 pupils) on a canonical frontal face:
# x in units of the inter-ocular distance from the eye midpoint towards the image right
# (the person's left), y downwards. Ours: a plausible average face, not a measured one.
def _face_template() -> np.ndarray:
    a = np.linspace(np.pi, 0.0, 17)
    jaw = np.stack([-1.05 * np.cos(a), 0.15 + 1.45 * np.sin(a) ** 1.2], -1)  # 0..16
    arch = -0.4 - 0.1 * np.sin(np.linspace(0, np.pi, 5))
    brow = np.stack([np.linspace(-0.95, -0.2, 5), arch], -1)
    brows = np.concatenate([brow, brow[::-1] * (-1.0, 1.0)])  # 17..26, mirror images
    bridge = np.stack([np.zeros(4), np.linspace(0.05, 0.6, 4)], -1)  # 27..30
    nostrils = np.stack([np.linspace(-0.25, 0.25, 5), [0.7, 0.74, 0.76, 0.74, 0.7]], -1)
    b = np.linspace(0, 2 * np.pi, 7)[:-1]
    eye = np.stack([-0.2 * np.cos(b), -0.07 * np.sin(b)], -1)
    eyes = np.concatenate([eye - np.array([0.5, 0.0]), eye + np.array([0.5, 0.0])])  # 36..47
    c = np.linspace(0, 2 * np.pi, 13)[:-1]
    outer = np.stack([-0.42 * np.cos(c), 1.05 - 0.13 * np.sin(c)], -1)  # 48..59
    d = np.linspace(0, 2 * np.pi, 9)[:-1]
    inner = np.stack([-0.3 * np.cos(d), 1.05 - 0.05 * np.sin(d)], -1)  # 60..67
    pupils = np.array([[-0.5, 0.0], [0.5, 0.0]])  # 68, 69
    return np.concatenate([jaw, brows, bridge, nostrils, eyes, outer, inner, pupils])


_FACE_70 = _face_template()
# Fractions of the wrist -> fingertip segment of the four OpenPose points per finger.
_FINGER_POINTS = (0.3, 0.55, 0.78, 1.0)


def _openpose137_names() -> tuple[str, ...]:
    hand = lambda s: (  # noqa: E731
        f"{s}_hand21_wrist",
        *(f"{s}_hand21_{f}_{k}" for f in range(1, 6) for k in range(4)),
    )
    return (*_BODY25, *(f"face_{i}" for i in range(70)), *hand("l"), *hand("r"))


def _add_openpose137_points(pos: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``pos`` plus the 70 face and 2 x 20 finger points of OpenPose's 137-keypoint model."""
    pos = dict(pos)
    mid = 0.5 * (pos["r_eye"] + pos["l_eye"])
    ex = pos["l_eye"] - pos["r_eye"]  # inter-ocular axis; its length is the face's unit
    ey = np.stack([-ex[:, 1], ex[:, 0], np.zeros(len(ex))], -1)  # in-plane perpendicular
    for i, (x, y) in enumerate(_FACE_70):
        pos[f"face_{i}"] = mid + x * ex + y * ey
    for s in "rl":
        pos[f"{s}_hand21_wrist"] = pos[f"{s}_wrist"]  # the hand model's own wrist point
        for f in range(1, 6):
            seg = pos[f"{s}_finger{f}"] - pos[f"{s}_wrist"]
            for k, frac in enumerate(_FINGER_POINTS):
                pos[f"{s}_hand21_{f}_{k}"] = pos[f"{s}_wrist"] + frac * seg
    return pos


_OPENPOSE_137 = _openpose137_names()


def _to_openpose137(
    pos: dict[str, np.ndarray],
    hidden: dict[str, np.ndarray],
    subj: _Subject,
    noise: float,
    missing: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Project to MiGA'25's OpenPose-137 layout: ``(n, 137, 3)`` pixel x, y, confidence."""
    full = _add_openpose137_points(pos)
    return _to_openpose(_OPENPOSE_137, full, hidden, subj, noise, missing, rng)


_KINECT_FOCAL = 1060.0  # colour-camera focal length in pixels (1920x1080 frames)


def _smg_metres(subj: _Subject) -> float:
    """Metres per body unit (~0.38 m shoulder width for an average subject)."""
    return 0.38 * subj.scale / 200.0


def _smg_world(xyz: np.ndarray, subj: _Subject) -> np.ndarray:
    """Body units ``(..., 3)`` -> Kinect camera space ``(..., 3)`` in metres."""
    metres = _smg_metres(subj)
    depth0 = 2.3 + (subj.origin[0] - 960.0) / 2000.0
    return np.stack(
        [
            xyz[..., 0] * metres + (subj.origin[0] - 960) / 1500.0,
            -xyz[..., 1] * metres + 0.35,
            depth0 - xyz[..., 2] * metres,
        ],
        -1,
    )


def _smg_pixels(world: np.ndarray) -> np.ndarray:
    """Camera space ``(..., 3)`` -> colour-image pixels ``(..., 2)`` (pinhole projection)."""
    f = _KINECT_FOCAL
    return np.stack(
        [960.0 + f * world[..., 0] / world[..., 2], 540.0 - f * world[..., 1] / world[..., 2]], -1
    )


def _to_smg(
    pos: dict[str, np.ndarray],
    hidden: dict[str, np.ndarray],
    subj: _Subject,
    noise: float,
    missing: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Project to the Kinect-v2 SMG row layout: ``(n, 25, 11)``."""
    xyz = np.stack([pos[k] for k in _KINECT_25], 1)
    n, v = xyz.shape[:2]
    world = _smg_world(xyz, subj)
    world = world + rng.normal(0, 0.012 * noise * _smg_metres(subj), world.shape)
    pix = _smg_pixels(world)
    depth_px = np.stack(
        [
            256.0 + 366.0 * world[..., 0] / world[..., 2],
            212.0 - 366.0 * world[..., 1] / world[..., 2],
        ],
        -1,
    )
    quat = np.zeros((n, v, 4))
    quat[..., 0] = 1.0
    out = np.concatenate([world, quat, pix, depth_px], -1)
    # Kinect keeps tracking hidden joints ("inferred"): it does not emit zeros,
    # it guesses, so occluded hands get a large jitter instead of vanishing.
    for s in "rl":
        side = np.array(
            [
                k.startswith(s + "_") and k.split("_")[1] in ("wrist", "hand", "handtip", "thumb")
                for k in _KINECT_25
            ]
        )
        idx = np.ix_(hidden[s], side)
        out[..., :3][idx] += rng.normal(0, 0.05, out[..., :3][idx].shape)
    drop = rng.random((n, v)) < missing * 0.25  # lost tracking: rare on Kinect
    out[drop] = 0.0
    return out.astype(np.float32)


# ----------------------------------------------------------------------------
# The release writer
# ----------------------------------------------------------------------------


def _class_probs(layout: str, floor: float) -> np.ndarray:
    h = np.asarray(_HISTOGRAMS[layout], dtype=float)
    p = h / h.sum()
    p = np.maximum(p, floor)
    return p / p.sum()


def _make_subject(sid: int, rng: np.random.Generator, cfg: SynthMGConfig) -> _Subject:
    # Framing drawn in full-HD pixels, then scaled to the keypoints' pixel space.
    fy, fx = cfg.image_size[0] / 1080, cfg.image_size[1] / 1920
    return _Subject(
        sid=sid,
        scale=float(rng.uniform(150, 260)) * fy,
        origin=np.array([rng.uniform(780, 1140) * fx, rng.uniform(380, 520) * fy]),
        proportions={
            "arm": float(rng.uniform(0.92, 1.08)),
            "head": float(rng.uniform(0.9, 1.1)),
            "hand": float(rng.uniform(0.85, 1.15)),
        },
        dominant="l" if rng.random() < cfg.left_handed else "r",
        style=float(rng.uniform(0.8, 1.25)),
        conf_level=float(rng.uniform(0.55, 0.9)),
        rng=np.random.default_rng(rng.integers(2**63)),
    )


def _write_csv(path: Path, rows: np.ndarray, line: str) -> None:
    """Write a headerless numeric csv, one ``line % row`` per row."""
    with open(path, "w", newline="\n") as f:
        f.write("\n".join(line % tuple(r) for r in rows.tolist()))
        f.write("\n")


def _render_sequence(
    subj: _Subject, labels: np.ndarray, cfg: SynthMGConfig, specs: Sequence[GestureSpec]
) -> tuple[np.ndarray | None, list[tuple[int, int, int]], tuple[dict, dict], list[FGAttributes]]:
    """Animate one long sequence with the given clip labels in order.

    Returns:
        ``(frames, clips, (positions, hidden), attributes)``: per-frame joints in
        the layout's row format (``None`` for the video-only MA-52 layout),
        ``(label, start, end)`` with 0-based inclusive frames, the body-unit joint
        positions and hidden-hand masks of every frame (what the RGB renderer
        draws), and the true FG-Text attributes of every clip.
    """
    rng = subj.rng
    noise = 0.5 + cfg.difficulty
    amplitude = _BASE_AMPLITUDE * (1.5 - cfg.difficulty)
    project = {"imigue": _to_imigue, "smg": _to_smg}.get(cfg.layout)
    if cfg.source == "miga25":
        project = _to_openpose137
    parts: list[tuple[dict, dict]] = []
    chunks, clips, t = [], [], 0
    attributes: list[FGAttributes] = []

    def add(pos: dict, hidden: dict) -> None:
        parts.append((pos, hidden))
        if project is not None:
            chunks.append(project(pos, hidden, subj, noise, cfg.missing_rate, rng))

    for label in labels:
        gap = int(rng.integers(cfg.gap_frames[0], cfg.gap_frames[1] + 1))
        if gap:
            add(*_idle(gap, subj, noise))
            t += gap
        n = int(rng.integers(cfg.clip_frames[0], cfg.clip_frames[1] + 1))
        info: dict = {}
        add(*render_clip(specs[label], n, subj, amplitude, noise, info))
        clips.append((int(label), t, t + n - 1))
        attributes.append(synth_attributes(specs[label], subj.dominant, info))
        t += n
    tail = int(rng.integers(cfg.gap_frames[0], cfg.gap_frames[1] + 1)) + 1
    add(*_idle(tail, subj, noise))
    positions = {k: np.concatenate([p[k] for p, _ in parts]) for k in parts[0][0]}
    hidden = {s: np.concatenate([h[s] for _, h in parts]) for s in "rl"}
    frames = np.concatenate(chunks, 0) if chunks else None
    return frames, clips, (positions, hidden), attributes


def _render_rgb(
    subj: _Subject, motion: tuple[dict, dict], cfg: SynthMGConfig, seed: int
) -> np.ndarray:
    """RGB frames ``(T, H, W, 3)`` uint8 of one sequence.

    Drawn from a random stream of its own, so that turning videos on does not
    change the skeleton files.
    """
    rng = np.random.default_rng([cfg.seed, seed, 0x51D])
    project = None
    scale = subj.scale
    if cfg.layout == "smg":  # draw where the Kinect's perspective projection puts the joints
        project = lambda xyz: _smg_pixels(_smg_world(xyz, subj))  # noqa: E731
        depth = _smg_world(np.zeros(3), subj)[2]
        scale = _KINECT_FOCAL * _smg_metres(subj) / depth  # pixels per body unit at the neck
    style = FigureStyle.random(
        rng,
        origin=tuple(subj.origin),
        scale=scale,
        image_size=cfg.image_size,
        desk=cfg.layout == "imigue",
    )
    background = render_background(rng, cfg.video_size)
    return render_figure(*motion, style, background, rng, project=project)


def generate_synthmg(out: str | Path, config: SynthMGConfig | None = None, **kwargs) -> Path:
    """Write a SynthMG release to ``out``.

    Args:
        out: output folder (created; existing files of the same names are overwritten).
        config: generator parameters; keyword arguments override its fields.
        **kwargs: fields of :class:`SynthMGConfig`.

    Returns:
        The output folder. It also holds ``synthmg.json``: the config, the video ->
        subject -> split map and the class counts per split (not part of the real
        layouts; readers ignore it).
    """
    cfg = SynthMGConfig(**{**(asdict(config) if config else {}), **kwargs})
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(cfg.seed)
    specs = GESTURES[cfg.layout]
    probs = _class_probs(cfg.layout, cfg.tail_floor)
    writer = _WRITERS[cfg.layout](out, cfg)
    meta: dict = {"config": asdict(cfg), "videos": {}, "class_counts": {}}
    fgtext: dict[str, FGAttributes] = {}
    counts = {split: np.zeros(len(specs), dtype=int) for split in _SPLITS}
    sid = vid = 0
    for split, n_subj in zip(_SPLITS, cfg.subjects, strict=True):
        for _ in range(n_subj):
            sid += 1
            subj = _make_subject(sid, rng, cfg)
            n_videos = 1 if cfg.layout == "smg" else cfg.videos_per_subject
            for _ in range(n_videos):
                vid += 1
                n_clips = max(1, int(rng.poisson(cfg.clips_per_video)))
                labels = rng.choice(len(specs), size=n_clips, p=probs)
                frames, clips, motion, attrs = _render_sequence(subj, labels, cfg, specs)
                rgb = _render_rgb(subj, motion, cfg, vid) if cfg.video else None
                written = writer.write(split, sid, vid, frames, clips, rgb)
                for (name, clip_split, label, sample), a in zip(written, attrs, strict=True):
                    meta["videos"][name] = {"subject": sid, "split": clip_split}
                    counts[clip_split][label] += 1
                    fgtext[sample] = a
    writer.close()
    write_fgtext_csv(out / "fgtext.csv", fgtext)
    meta["class_counts"] = {split: c.tolist() for split, c in counts.items()}
    (out / "synthmg.json").write_text(json.dumps(meta, indent=1))
    return out


_SPLITS = ("train", "val", "test")
_IMIGUE_DIRS = {
    "train": "imigue_skeleton_train",
    "val": "imigue_skeleton_validate",
    "test": "imigue_skeleton_test",
}
_IMIGUE_RGB_DIRS = {
    "train": "imigue_rgb_train",
    "val": "imigue_rgb_validate",
    "test": "imigue_rgb_test",
}


class _Writer:
    """Writes the sequences of one layout.

    ``write`` yields ``(name, split, label, sample_id)`` per clip for the meta file
    and the FG-Text annotations (``sample_id`` as the release's reader names it).
    """

    def __init__(self, out: Path, cfg: SynthMGConfig) -> None:
        self.out, self.cfg = out, cfg

    def write(
        self,
        split: str,
        sid: int,
        vid: int,
        frames: np.ndarray | None,
        clips: list[tuple[int, int, int]],
        rgb: np.ndarray | None,
    ) -> Iterator[tuple[str, str, int, str]]:
        raise NotImplementedError

    def close(self) -> None:
        """Write files that list every clip."""


class _IMiGUEWriter(_Writer):
    def __init__(self, out: Path, cfg: SynthMGConfig) -> None:
        super().__init__(out, cfg)
        self.lists: dict[str, list[str]] = {s: [] for s in _SPLITS}

    def write(
        self,
        split: str,
        sid: int,
        vid: int,
        frames: np.ndarray | None,
        clips: list[tuple[int, int, int]],
        rgb: np.ndarray | None,
    ) -> Iterator[tuple[str, str, int, str]]:
        from mgr.classes import imigue_label_to_raw

        name = f"{vid:04d}"
        folder = self.out / _IMIGUE_DIRS[split] / name
        folder.mkdir(parents=True, exist_ok=True)
        if self.cfg.source == "miga25":
            # The reader takes the xlsx cells as written: round as OpenPose's json does.
            write_openpose_xlsx(folder / f"{name}_openpose.xlsx", _round_openpose(frames))
        else:
            rows = np.concatenate(
                [np.arange(len(frames))[:, None], frames.reshape(len(frames), -1)], 1
            )
            _write_csv(folder / f"{name}_light_hand.csv", rows, "%d" + ",%.1f,%.1f,%.3f" * 35)
        _write_label_csv(
            folder / f"{name}_label.csv", [(imigue_label_to_raw(c), s, e) for c, s, e in clips]
        )
        if rgb is not None:
            rgb_dir = self.out / _IMIGUE_RGB_DIRS[split]
            rgb_dir.mkdir(parents=True, exist_ok=True)
            for k, (c, s, e) in enumerate(clips):
                write_video(
                    rgb_dir / f"{name}_{k}.mp4", rgb[s : e + 1], fps=self.cfg.fps, preset="veryfast"
                )
                self.lists[split].append(f"{name}_{k}.mp4 {c}")
            if self.cfg.untrimmed_video:
                folder = self.out / "imigue_rgb_untrimmed"
                folder.mkdir(exist_ok=True)
                write_video(folder / f"{name}.mp4", rgb, fps=self.cfg.fps, preset="veryfast")
        for k, (c, _, _) in enumerate(clips):
            yield name, split, c, f"{name}_{k}"

    def close(self) -> None:
        if self.cfg.video:
            for split, lines in self.lists.items():
                path = self.out / f"iMiGUE_{split}_clips_list.txt"
                path.write_text("".join(f"{line}\n" for line in lines))


class _SMGWriter(_Writer):
    def write(
        self,
        split: str,
        sid: int,
        vid: int,
        frames: np.ndarray | None,
        clips: list[tuple[int, int, int]],
        rgb: np.ndarray | None,
    ) -> Iterator[tuple[str, str, int, str]]:
        from mgr.classes import smg_label_to_raw

        name = f"Sample{sid:04d}"
        folder = self.out / name
        folder.mkdir(parents=True, exist_ok=True)
        _write_csv(
            folder / f"{name}_skeleton.csv",
            frames.reshape(len(frames), -1),
            ",".join(["%.5g"] * 275),
        )
        # SMG finelabels: end exclusive (the official gendata slices [start, end)).
        _write_label_csv(
            folder / f"{name}_finelabels.csv",
            [(smg_label_to_raw(c), s, e + 1) for c, s, e in clips],
        )
        (folder / f"{name}_data.csv").write_text(f"{len(frames)},{int(self.cfg.fps)},4500\n")
        if rgb is not None:
            rgb_dir = self.out / "smg_rgb" / name
            rgb_dir.mkdir(parents=True, exist_ok=True)
            write_video(rgb_dir / f"{name}_color.mp4", rgb, fps=self.cfg.fps, preset="veryfast")
        for k, (c, _, _) in enumerate(clips):
            yield name, split, c, f"{name}{k}"


class _MA52Writer(_Writer):
    #: share of a training participant's clips that go to the validation list
    #: (real MA-52: 5,586 val / 16,836 train+val).
    VAL_SHARE = 1 / 3

    def __init__(self, out: Path, cfg: SynthMGConfig) -> None:
        from mgr.classes import MA52

        super().__init__(out, cfg)
        self.lists: dict[str, list[str]] = {s: [] for s in _SPLITS}
        self.index: dict[int, int] = {}
        self.rng = np.random.default_rng([cfg.seed, 0x52])
        (out / "label_name.txt").write_text(
            "".join(f"{i}\t{n}\n" for i, n in enumerate(MA52.names))
        )

    def write(
        self,
        split: str,
        sid: int,
        vid: int,
        frames: np.ndarray | None,
        clips: list[tuple[int, int, int]],
        rgb: np.ndarray | None,
    ) -> Iterator[tuple[str, str, int, str]]:
        from mgr.classes import ma52_fine_to_coarse

        for c, s, e in clips:
            clip_split = split
            if split == "train" and self.rng.random() < self.VAL_SHARE:
                clip_split = "val"
            if clip_split == "test":
                name = f"test{len(self.lists['test']):04d}"
            else:
                k = self.index[sid] = self.index.get(sid, 0) + 1
                name = f"{sid:04d}_{ma52_fine_to_coarse(c):02d}_{k:04d}"
            folder = self.out / f"videos_{clip_split}"
            folder.mkdir(parents=True, exist_ok=True)
            write_video(folder / f"{name}.mp4", rgb[s : e + 1], fps=self.cfg.fps, preset="veryfast")
            self.lists[clip_split].append(f"{name}.mp4 {c}")
            yield name, clip_split, c, name

    def close(self) -> None:
        for split, lines in self.lists.items():
            # The real list files have Windows line endings.
            path = self.out / f"{split}_list_videos.txt"
            path.write_bytes("".join(f"{line}\r\n" for line in lines).encode())


_WRITERS: dict[str, type[_Writer]] = {
    "imigue": _IMiGUEWriter,
    "smg": _SMGWriter,
    "ma52": _MA52Writer,
}


def _round_openpose(frames: np.ndarray) -> np.ndarray:
    """``(T, V, 3)`` keypoints rounded to 0.1 px and confidences to 1e-3 (float64)."""
    out = frames.astype(np.float64)
    out[..., :2] = out[..., :2].round(1)
    out[..., 2] = out[..., 2].round(3)
    return out


def _write_label_csv(path: Path, rows: Sequence[tuple[int, int, int]]) -> None:
    path.write_text("".join(f"{a},{b},{c}\n" for a, b, c in rows))
