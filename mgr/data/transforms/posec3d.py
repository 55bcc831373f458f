"""PoseConv3D's keypoint pipeline, before heatmap rendering (numpy, per sample).

The mmaction2 / pyskl pipeline (``reference-algorithms.md`` §1.3–1.5), written
plainly: ``PoseCompact`` (crop to the skeletons' box, padded, square),
resize of the short side, ``RandomResizedCrop`` + resize to the training size
or a centre crop at test, horizontal flip with a left/right joint swap. Every
function takes keypoints ``(M, T, V, 2)`` in pixels, where exact zeros mark
missing joints (they stay zero), and an image shape ``(H, W)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "center_crop",
    "crop_keypoints",
    "flip_keypoints",
    "limb_flip_permutation",
    "pose_compact",
    "random_resized_crop_box",
    "resize_keypoints",
    "short_side_shape",
]

Shape = tuple[int, int]


def pose_compact(
    keypoint: np.ndarray,
    img_shape: Shape,
    *,
    padding: float = 0.25,
    threshold: int = 10,
    hw_ratio: tuple[float, float] | None = (1.0, 1.0),
    allow_imgpad: bool = True,
) -> tuple[np.ndarray, Shape]:
    """Crop to the box of all detected joints of all persons and frames (``PoseCompact``).

    As mmaction2 / pyskl: the box spans every non-zero ``x`` and every non-zero
    ``y`` (each coordinate on its own), whatever the joints' scores, so a joint
    with score 0 but real coordinates counts (only drawing skips it). Drop such
    joints beforehand (zero them) to keep a stray undetected joint from widening
    the box; see :attr:`mgr.data.datasets.HeatmapOptions.compact_unscored`.

    Args:
        keypoint: ``(M, T, V, 2)`` pixel coordinates; zeros are missing joints.
        img_shape: ``(H, W)`` of the frames.
        padding: the box is enlarged by this fraction on each side.
        threshold: boxes narrower or lower than this (pixels) are left alone.
        hw_ratio: ``(h, w)`` ratio the box is widened to (``(1, 1)``: square).
        allow_imgpad: let the box extend past the image (else clip it).

    Returns:
        ``(keypoint, new_img_shape)``: shifted keypoints (zero coordinates stay
        zero) and the box's ``(H, W)``.
    """
    kp = np.nan_to_num(np.asarray(keypoint, dtype=np.float32).copy())
    kp_x, kp_y = kp[..., 0], kp[..., 1]  # views: shifted in place below
    has_x, has_y = kp_x != 0, kp_y != 0
    if not has_x.any() or not has_y.any():
        return kp, tuple(img_shape)
    min_x, max_x = kp_x[has_x].min(), kp_x[has_x].max()
    min_y, max_y = kp_y[has_y].min(), kp_y[has_y].max()
    if max_x - min_x < threshold or max_y - min_y < threshold:
        return kp, tuple(img_shape)
    cx, cy = (max_x + min_x) / 2, (max_y + min_y) / 2
    half_w = (max_x - min_x) / 2 * (1 + padding)
    half_h = (max_y - min_y) / 2 * (1 + padding)
    if hw_ratio is not None:
        half_h = max(hw_ratio[0] * half_w, half_h)
        half_w = max(1 / hw_ratio[1] * half_h, half_w)
    min_x, max_x, min_y, max_y = cx - half_w, cx + half_w, cy - half_h, cy + half_h
    if not allow_imgpad:
        h, w = img_shape
        min_x, min_y = int(max(0, min_x)), int(max(0, min_y))
        max_x, max_y = int(min(w, max_x)), int(min(h, max_y))
    else:
        min_x, min_y, max_x, max_y = int(min_x), int(min_y), int(max_x), int(max_y)
    kp_x[has_x] -= min_x
    kp_y[has_y] -= min_y
    return kp, (max_y - min_y, max_x - min_x)


def short_side_shape(img_shape: Shape, short_side: int) -> Shape:
    """Shape after resizing the short side to ``short_side`` (mmcv ``rescale_size``).

    Returns:
        ``(H, W)`` rounded to the nearest pixel.
    """
    h, w = img_shape
    scale = short_side / min(h, w)
    return int(h * scale + 0.5), int(w * scale + 0.5)


def resize_keypoints(keypoint: np.ndarray, img_shape: Shape, new_shape: Shape) -> np.ndarray:
    """Scale keypoints from ``img_shape`` to ``new_shape`` (zeros stay zero).

    Returns:
        ``(M, T, V, 2)`` scaled keypoints.
    """
    (h, w), (nh, nw) = img_shape, new_shape
    return (keypoint * np.array([nw / w, nh / h], dtype=np.float32)).astype(np.float32)


def random_resized_crop_box(
    img_shape: Shape,
    rng: np.random.Generator,
    area_range: tuple[float, float] = (0.56, 1.0),
    aspect_ratio_range: tuple[float, float] = (3 / 4, 4 / 3),
    max_attempts: int = 10,
) -> tuple[int, int, int, int]:
    """A random crop box as mmaction2's ``RandomResizedCrop`` draws it.

    Up to ``max_attempts`` (log-uniform aspect ratio, uniform area fraction)
    candidates; the first that fits wins, else a centred square.

    Returns:
        ``(left, top, right, bottom)`` in pixels.
    """
    h, w = img_shape
    area = h * w
    lo, hi = aspect_ratio_range
    ratios = np.exp(rng.uniform(np.log(lo), np.log(hi), size=max_attempts))
    areas = rng.uniform(*area_range, size=max_attempts) * area
    crop_w = np.round(np.sqrt(areas * ratios)).astype(np.int64)
    crop_h = np.round(np.sqrt(areas / ratios)).astype(np.int64)
    for cw, ch in zip(crop_w, crop_h, strict=True):
        if ch <= h and cw <= w:
            left = int(rng.integers(0, w - cw + 1))
            top = int(rng.integers(0, h - ch + 1))
            return left, top, left + int(cw), top + int(ch)
    side = min(h, w)
    left, top = (w - side) // 2, (h - side) // 2
    return left, top, left + side, top + side


def crop_keypoints(
    keypoint: np.ndarray, box: tuple[int, int, int, int]
) -> tuple[np.ndarray, Shape]:
    """Shift keypoints into a crop box (no clipping: off-crop joints draw nothing).

    Missing joints (exact zeros) stay zero so that they keep meaning "missing".

    Returns:
        ``(keypoint, (H, W))`` of the crop.
    """
    left, top, right, bottom = box
    kp = keypoint.copy()
    present = np.any(kp != 0, axis=-1)
    kp[..., 0][present] -= left
    kp[..., 1][present] -= top
    return kp, (bottom - top, right - left)


def center_crop(keypoint: np.ndarray, img_shape: Shape, size: int) -> tuple[np.ndarray, Shape]:
    """Centre crop of ``size x size`` (mmaction2 ``CenterCrop``).

    Returns:
        ``(keypoint, (size, size))``.
    """
    h, w = img_shape
    left, top = (w - size) // 2, (h - size) // 2
    kp, _ = crop_keypoints(keypoint, (left, top, left + size, top + size))
    return kp, (size, size)


def flip_keypoints(
    keypoint: np.ndarray, score: np.ndarray | None, img_width: int, flip_permutation: Sequence[int]
) -> tuple[np.ndarray, np.ndarray | None]:
    """Horizontal flip with left/right joint swap (mmaction2 ``Flip`` for keypoints).

    ``x -> W - x`` for detected joints (mmaction2's rule; the heatmap-level flip
    used for test-time ``double`` views reverses pixels, ``W - 1 - x``).

    Args:
        keypoint: ``(M, T, V, 2)``.
        score: ``(M, T, V)`` or ``None``.
        img_width: ``W``.
        flip_permutation: ``(V,)`` left/right joint permutation.

    Returns:
        Flipped ``(keypoint, score)``.
    """
    kp = keypoint.copy()
    x = kp[..., 0]
    present = x != 0
    x[present] = img_width - x[present]
    perm = list(flip_permutation)
    kp = kp[:, :, perm]
    return kp, (score[:, :, perm] if score is not None else None)


def limb_flip_permutation(limbs: Sequence[tuple[int, int]], joint_flip: Sequence[int]) -> list[int]:
    """Channel permutation that mirrors limb heatmaps.

    Args:
        limbs: ``(L,)`` joint pairs.
        joint_flip: ``(V,)`` left/right joint permutation.

    Returns:
        ``(L,)``: limb ``i`` maps to the limb joining the mirrored joints.
    """
    index = {frozenset(e): i for i, e in enumerate(limbs)}
    out = []
    for a, b in limbs:
        mirrored = frozenset((joint_flip[a], joint_flip[b]))
        if mirrored not in index:
            raise ValueError(f"limb {(a, b)} has no mirror image in the limb list")
        out.append(index[mirrored])
    return out
