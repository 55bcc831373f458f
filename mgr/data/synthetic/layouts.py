"""SynthMG joints projected to each release's keypoints.

OpenPose 35 / 137 points in pixels (iMiGUE), Kinect v2 world and pixel coordinates (SMG).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .body import _Subject

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
