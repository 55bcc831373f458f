"""Pose transforms on one clip's keypoints ``(T, V, C)`` (numpy, for Dataset workers)."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

__all__ = ["flip_skeleton", "normalize_skeleton", "uniform_sample_indices", "valid_mask"]


def uniform_sample_indices(
    num_frames: int,
    clip_len: int,
    *,
    num_clips: int = 1,
    test_mode: bool = False,
    rng: np.random.Generator | None = None,
    seed: int = 255,
) -> np.ndarray:
    """Frame indices that cover a clip uniformly (PoseC3D's ``UniformSampleFrames``).

    The clip is cut into ``clip_len`` equal segments and one frame is taken from
    each: at a random offset in training, and with a fixed seed at test time so
    that evaluation is deterministic. Shorter clips are looped; clips between
    ``clip_len`` and ``2 * clip_len`` frames skip a random subset of frames.
    This follows the published algorithm of mmaction2 / pyskl
    (``_get_train_clips`` / ``_get_test_clips``).

    Random numbers: at test time they come from numpy's legacy
    ``np.random.RandomState(seed)``, the generator mmaction2 seeds with
    ``np.random.seed(255)`` before its clip loop, so every test view (all
    ``num_clips`` of them, drawn in order from one seeding) takes exactly the
    frames mmaction2 / pyskl evaluate their published checkpoints on; unlike
    mmaction2, numpy's global generator is left untouched. In training they come
    from ``rng``, a ``np.random.Generator`` (the datamodules seed one per sample
    from torch, so ``seed_everything`` and worker seeding apply); the
    distribution is mmaction2's, the random stream is not (it need not be).

    Args:
        num_frames: number of frames ``T`` of the clip (> 0).
        clip_len: number of frames to sample.
        num_clips: number of clips (test-time views) to sample.
        test_mode: use the deterministic test-time rule.
        rng: random generator for training (a fresh one if ``None``); ignored in
            test mode.
        seed: seed of the test-time ``RandomState`` (mmaction2 uses 255).

    Returns:
        ``(num_clips * clip_len,)`` int64 indices in ``[0, num_frames)``.
    """
    if num_frames <= 0:
        raise ValueError(f"cannot sample from a clip with {num_frames} frames")
    if clip_len <= 0 or num_clips <= 0:
        raise ValueError(f"clip_len and num_clips must be positive, got {clip_len}, {num_clips}")
    if test_mode:  # deterministic: computed once per (T, clip_len, num_clips, seed)
        return _test_indices(int(num_frames), int(clip_len), int(num_clips), int(seed)).copy()
    return _sample(num_frames, clip_len, num_clips, rng)


@functools.lru_cache(maxsize=4096)
def _test_indices(num_frames: int, clip_len: int, num_clips: int, seed: int) -> np.ndarray:
    # Seeding a RandomState costs more than the sampling itself: evaluation reuses these.
    return _sample(num_frames, clip_len, num_clips, None, seed)


def _sample(
    num_frames: int,
    clip_len: int,
    num_clips: int,
    rng: np.random.Generator | None,
    test_seed: int | None = None,
) -> np.ndarray:
    """``UniformSampleFrames``: training with ``rng``, or the test rule with ``test_seed``."""
    test_mode = test_seed is not None
    gen: np.random.Generator | np.random.RandomState
    if test_mode:
        gen = np.random.RandomState(test_seed)
        randint = gen.randint  # randint(high) draws from [0, high), elementwise for arrays
    else:
        gen = rng if rng is not None else np.random.default_rng()
        randint = gen.integers
    out = []
    for i in range(num_clips):
        if num_frames < clip_len:
            if test_mode:
                start = i if num_frames < num_clips else i * num_frames // num_clips
            else:
                start = int(randint(num_frames))
            inds = np.arange(start, start + clip_len)
        elif num_frames < 2 * clip_len:
            # Keep every frame but skip (num_frames - clip_len) randomly chosen gaps.
            skip = gen.choice(clip_len + 1, num_frames - clip_len, replace=False)
            offset = np.zeros(clip_len + 1, dtype=np.int64)
            offset[skip] = 1
            inds = np.arange(clip_len) + np.cumsum(offset)[:-1]
        else:
            bounds = np.arange(clip_len + 1) * num_frames // clip_len
            inds = bounds[:-1] + randint(np.diff(bounds))
        out.append(inds)
    return np.concatenate(out).astype(np.int64) % num_frames


def valid_mask(keypoint: np.ndarray, score_channel: int | None) -> np.ndarray:
    """Which joints were detected.

    Args:
        keypoint: ``(T, V, C)`` keypoints.
        score_channel: index of the confidence channel, or ``None`` if there is none.

    Returns:
        ``(T, V)`` bool: confidence > 0 where a confidence exists, else any
        coordinate non-zero (pose estimators write missing joints as zeros).
    """
    if score_channel is not None:
        return keypoint[..., score_channel] > 0
    return np.any(keypoint != 0, axis=-1)


def normalize_skeleton(
    keypoint: np.ndarray,
    center: int,
    *,
    score_channel: int | None = None,
    scale_joints: tuple[int, int] | None = None,
    center_mode: str = "clip",
) -> np.ndarray:
    """Centre normalisation (and optional scale normalisation) of one clip.

    The centre joint's coordinates are subtracted, which removes where the
    subject sits in the image (the CMPL paper's "Center Normalization").
    ``center_mode="frame"`` subtracts each frame's own centre (frames where the
    centre joint is missing use the clip's mean centre): the body becomes
    pinned at the centre joint, which also removes any motion *of* the centre
    (torso sway, sitting up). ``center_mode="clip"`` subtracts the clip's mean
    centre, which keeps that motion. With ``scale_joints`` the coordinates are also divided by the
    median distance between two joints (e.g. the shoulders), which removes the
    subject's size and distance to the camera. Missing joints are set to 0 in
    every channel afterwards, so they do not turn into large outliers.

    Args:
        keypoint: ``(T, V, C)`` keypoints; coordinate channels first, then an
            optional confidence channel at ``score_channel``.
        center: index of the centre joint.
        score_channel: index of the confidence channel, or ``None``.
        scale_joints: pair of joint indices whose distance sets the scale, or
            ``None`` for no scale normalisation. Falls back to the clip's
            bounding-box size when the pair is never detected together.
        center_mode: ``"clip"`` (one centre per clip) or ``"frame"`` (per frame).

    Returns:
        ``(T, V, C)`` float32 normalised keypoints (a new array).
    """
    if center_mode not in ("clip", "frame"):
        raise ValueError(f"center_mode must be 'clip' or 'frame', got {center_mode!r}")
    kp = np.array(keypoint, dtype=np.float32, copy=True)
    n_coord = kp.shape[-1] if score_channel is None else score_channel
    valid = valid_mask(kp, score_channel)
    if not valid.any():
        return np.zeros_like(kp)
    coords = kp[..., :n_coord]
    c_valid = valid[:, center]
    if c_valid.any():
        fallback = coords[c_valid, center].mean(0)
    else:
        fallback = coords[valid].mean(0)
    if center_mode == "frame":
        centre = np.where(c_valid[:, None], coords[:, center], fallback)
        coords -= centre[:, None, :]
    else:
        coords -= fallback
    if scale_joints is not None:
        a, b = scale_joints
        both = valid[:, a] & valid[:, b]
        scale = 0.0
        if both.any():
            scale = float(np.median(np.linalg.norm(coords[both, a] - coords[both, b], axis=-1)))
        if scale <= 1e-6:
            pts = coords[valid]
            scale = float((pts.max(0) - pts.min(0)).max())
        if scale > 1e-6:
            coords /= scale
    kp[..., :n_coord] = coords
    kp[~valid] = 0.0
    return kp


def flip_skeleton(keypoint: np.ndarray, flip_permutation: Sequence[int]) -> np.ndarray:
    """Mirror a centre-normalised clip horizontally.

    Negates x (channel 0) and swaps left/right joints, so that a right-hand
    gesture becomes the same gesture made with the left hand.

    Args:
        keypoint: ``(T, V, C)`` centre-normalised keypoints (x is channel 0).
        flip_permutation: ``(V,)`` joint permutation swapping left and right.

    Returns:
        ``(T, V, C)`` flipped keypoints (a new array).
    """
    out = keypoint[:, list(flip_permutation)].copy()
    out[..., 0] *= -1
    return out
