"""SynthMG's motion: a clip of one gesture (or idle frames) as joint trajectories in body units."""

from __future__ import annotations

import numpy as np

from .body import (
    _BASE_AMPLITUDE,
    _FINGER_LEN,
    _FINGER_SPREAD,
    _HEAD_JOINTS,
    _TARGETS,
    _UPPER,
    _Clip,
    _envelope,
    _mirror,
    _rot,
    _smooth_noise,
    _solve_elbow,
    _Subject,
)
from .gestures import GestureSpec

__all__ = ["render_clip"]


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


def _idle(n: int, subject: _Subject, noise: float) -> tuple[dict[str, np.ndarray], dict]:
    """Unannotated frames between clips: the resting body."""
    return render_clip(GestureSpec("torso", "hold"), n, subject, 0.0, noise)
