"""SynthMG's body model: canonical joints, hand targets, subjects and arm kinematics.

Geometry is in body units (shoulder width = 1; x to the image right, y down, z
towards the camera); see :mod:`mgr.data.synthetic`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

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
