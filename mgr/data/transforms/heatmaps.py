"""PoseConv3D pseudo-heatmaps of joints and limbs (vectorised, device-agnostic torch).

These reproduce mmaction2's ``GeneratePoseTarget`` (with ``scaling=1``) to
float32 rounding: every joint is a Gaussian of standard deviation ``sigma``
(in pixels, pixel centres at integer coordinates) drawn inside a window of
``±3 sigma`` around it, every limb a Gaussian "tube" around the segment
between two joints drawn inside the bounding box of its endpoints grown by
``3 sigma``; a joint or limb is scaled by its confidence and several persons
are merged by their maximum. The window bounds follow the reference exactly,
including its quirks: ``int()`` truncates toward zero (so a window that starts
at a negative coordinate starts later than ``floor`` would), the end gets
``+ 1``, and both are clipped to the image. Joints or limbs whose confidence
is below ``eps`` are not drawn, and neither are non-finite coordinates.

The reference loops over frames, channels and persons in Python; here the
whole clip (or batch) is computed at once. A joint's Gaussian is the outer
product of two 1-D profiles, one per image axis, each already cut to the
window, so the heatmap costs one multiplication per pixel. A limb's squared
distance is not separable, but it splits into the squared distance across
the segment's line plus the squared overshoot past its ends, both of which
are sums of a per-row and a per-column term; this is evaluated in chunks of
channels so that the temporaries stay small. Everything runs on the device
of the keypoints, so a GPU can generate a batch's heatmaps itself.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import NamedTuple

import torch
from torch import Tensor

__all__ = ["batch_joint_heatmaps", "batch_limb_heatmaps", "joint_heatmaps", "limb_heatmaps"]

# Elements per temporary in the chunked loops: small enough to stay in a CPU
# core's cache, large enough on a GPU for kernel launches not to dominate.
_CPU_CHUNK_ELEMENTS = 2**16
_CUDA_CHUNK_ELEMENTS = 2**25


def joint_heatmaps(
    keypoint: Tensor,
    score: Tensor | None,
    size: tuple[int, int],
    sigma: float = 0.6,
    eps: float = 1e-4,
) -> Tensor:
    """Heatmaps of the joints of one clip (PoseConv3D's keypoint input).

    Args:
        keypoint: ``(M, T, V, 2)`` pixel coordinates ``(x, y)`` of ``V`` joints
            of ``M`` persons in ``T`` frames (anything ``torch.as_tensor``
            accepts, e.g. a numpy array).
        score: ``(M, T, V)`` confidences that scale the Gaussians, or ``None``
            to draw every joint with peak 1 (``use_score=False``).
        size: ``(H, W)`` of the heatmaps.
        sigma: standard deviation of the Gaussians in pixels.
        eps: joints with a confidence below this are not drawn.

    Returns:
        ``(V, T, H, W)`` float32 heatmaps on the device of ``keypoint``.
    """
    keypoint = torch.as_tensor(keypoint)
    score = None if score is None else torch.as_tensor(score)[None]
    return batch_joint_heatmaps(keypoint[None], score, size, sigma, eps)[0]


def limb_heatmaps(
    keypoint: Tensor,
    score: Tensor | None,
    size: tuple[int, int],
    limbs: Sequence[tuple[int, int]],
    sigma: float = 0.6,
    eps: float = 1e-4,
) -> Tensor:
    """Heatmaps of the limbs of one clip (PoseConv3D's limb input).

    Args:
        keypoint: ``(M, T, V, 2)`` pixel coordinates ``(x, y)`` of ``V`` joints
            of ``M`` persons in ``T`` frames.
        score: ``(M, T, V)`` joint confidences, or ``None`` for all ones. A
            limb is weighted by the smaller confidence of its two joints.
        size: ``(H, W)`` of the heatmaps.
        limbs: ``L`` pairs ``(start, end)`` of joint indices. The order only
            matters when the endpoints are less than a pixel apart: the limb
            is then drawn as a joint at ``start`` with ``start``'s confidence.
        sigma: standard deviation of the Gaussian profile across a limb, in pixels.
        eps: limbs with a confidence below this are not drawn.

    Returns:
        ``(L, T, H, W)`` float32 heatmaps on the device of ``keypoint``.
    """
    keypoint = torch.as_tensor(keypoint)
    score = None if score is None else torch.as_tensor(score)[None]
    return batch_limb_heatmaps(keypoint[None], score, size, limbs, sigma, eps)[0]


def batch_joint_heatmaps(
    keypoint: Tensor,
    score: Tensor | None,
    size: tuple[int, int],
    sigma: float = 0.6,
    eps: float = 1e-4,
) -> Tensor:
    """Heatmaps of the joints of a batch of clips; see :func:`joint_heatmaps`.

    Args:
        keypoint: ``(B, M, T, V, 2)`` pixel coordinates ``(x, y)``.
        score: ``(B, M, T, V)`` confidences, or ``None`` for all ones.
        size: ``(H, W)`` of the heatmaps.
        sigma: standard deviation of the Gaussians in pixels.
        eps: joints with a confidence below this are not drawn.

    Returns:
        ``(B, V, T, H, W)`` float32 heatmaps on the device of ``keypoint``.
    """
    keypoint, value = _prepare(keypoint, score, sigma)
    b, m, t, v, _ = keypoint.shape
    height, width = size
    # Channel-major (M, B, V, T) order so the products land in output order.
    centre = keypoint.permute(1, 0, 3, 2, 4).reshape(m, -1, 2)
    value = value.permute(1, 0, 3, 2).reshape(m, -1)
    value = torch.where(value >= eps, value, 0.0)  # also zeroes NaN confidences
    gx = _gaussian_profile(centre[..., 0], width, sigma)
    gy = _gaussian_profile(centre[..., 1], height, sigma) * value[..., None]
    out = torch.empty(b * v * t, height, width, device=keypoint.device)
    for sl in _chunks(b * v * t, height * width, keypoint.device):
        # The 2-D Gaussian is the outer product of the two 1-D profiles.
        torch.mul(gy[0, sl, :, None], gx[0, sl, None, :], out=out[sl])
        for p in range(1, m):  # max, not sum, over persons
            torch.maximum(out[sl], gy[p, sl, :, None] * gx[p, sl, None, :], out=out[sl])
    return out.view(b, v, t, height, width)


def batch_limb_heatmaps(
    keypoint: Tensor,
    score: Tensor | None,
    size: tuple[int, int],
    limbs: Sequence[tuple[int, int]],
    sigma: float = 0.6,
    eps: float = 1e-4,
) -> Tensor:
    """Heatmaps of the limbs of a batch of clips; see :func:`limb_heatmaps`.

    Args:
        keypoint: ``(B, M, T, V, 2)`` pixel coordinates ``(x, y)``.
        score: ``(B, M, T, V)`` joint confidences, or ``None`` for all ones.
        size: ``(H, W)`` of the heatmaps.
        limbs: ``L`` pairs ``(start, end)`` of joint indices.
        sigma: standard deviation of the Gaussian profile across a limb, in pixels.
        eps: limbs with a confidence below this are not drawn.

    Returns:
        ``(B, L, T, H, W)`` float32 heatmaps on the device of ``keypoint``.
    """
    keypoint, value = _prepare(keypoint, score, sigma)
    b, m, t, v, _ = keypoint.shape
    height, width = size
    index = torch.as_tensor(limbs, dtype=torch.long, device=keypoint.device).reshape(-1, 2)
    if index.numel() and (index.min() < 0 or index.max() >= v):
        raise ValueError(f"limb indices must lie in [0, {v}), got {list(limbs)}")
    n = b * len(index) * t
    # (M, B, L, T) channel order, flattened to (M, N), so results land in output order.
    start = keypoint[:, :, :, index[:, 0]].permute(1, 0, 3, 2, 4).reshape(m, n, 2)
    end = keypoint[:, :, :, index[:, 1]].permute(1, 0, 3, 2, 4).reshape(m, n, 2)
    start_value = value[..., index[:, 0]].permute(1, 0, 3, 2).reshape(m, n)
    end_value = value[..., index[:, 1]].permute(1, 0, 3, 2).reshape(m, n)

    terms = _limb_terms(start, end, start_value, end_value, (height, width), sigma, eps)
    zero = terms.length.new_zeros(())
    out = torch.empty(n, height, width, device=keypoint.device)
    for sl in _chunks(n, height * width, keypoint.device):
        exponent = None
        for p in range(m):
            along = terms.along_y[p, sl, :, None] + terms.along_x[p, sl, None, :]
            along -= along.clamp(zero, terms.length[p, sl, None, None])  # overshoot past a or b
            across = terms.across_y[p, sl, :, None] + terms.across_x[p, sl, None, :]
            # log(value) - d2 / (2 sigma^2), d2 = across^2 + overshoot^2 (Pythagoras).
            person = torch.addcmul(terms.log_value[p, sl, None, None], across, across, value=-1)
            person.addcmul_(along, along, value=-1)
            # exp is monotonic, so the max over persons can be taken before it.
            exponent = person if exponent is None else torch.maximum(exponent, person, out=exponent)
        torch.exp(exponent, out=out[sl])
    return out.view(b, len(index), t, height, width)


def _prepare(keypoint: Tensor, score: Tensor | None, sigma: float) -> tuple[Tensor, Tensor]:
    """Check shapes and cast to float32 on one device.

    Args:
        keypoint: ``(B, M, T, V, 2)`` coordinates.
        score: ``(B, M, T, V)`` confidences or ``None``.
        sigma: standard deviation of the Gaussians.

    Returns:
        ``(B, M, T, V, 2)`` float32 keypoints and ``(B, M, T, V)`` float32 confidences.
    """
    keypoint = torch.as_tensor(keypoint)
    if keypoint.ndim != 5 or keypoint.shape[-1] != 2:
        raise ValueError(f"keypoint must be (B, M, T, V, 2), got {tuple(keypoint.shape)}")
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    # float32 throughout, like the reference, so the window bounds round alike.
    keypoint = keypoint.float()
    if score is None:
        return keypoint, keypoint.new_ones(keypoint.shape[:-1])
    score = torch.as_tensor(score, dtype=torch.float32, device=keypoint.device)
    if score.shape != keypoint.shape[:-1]:
        raise ValueError(
            f"score must be {tuple(keypoint.shape[:-1])} to match keypoint, "
            f"got {tuple(score.shape)}"
        )
    return keypoint, score


def _window(low: Tensor, high: Tensor, length: int, sigma: float) -> Tensor:
    """Which pixels of an image axis lie in the reference's window.

    Args:
        low: ``(...)`` smallest coordinate to cover.
        high: ``(...)`` largest coordinate to cover.
        length: number of pixels along the axis.
        sigma: the window reaches ``3 sigma`` beyond ``low`` and ``high``.

    Returns:
        ``(..., length)`` bool, ``int(low - 3 sigma) <= i < int(high + 3 sigma) + 1``.
    """
    # float32 minus a Python float stays float32, as in numpy >= 2; trunc is int().
    radius = 3 * sigma
    pixel = torch.arange(length, device=low.device, dtype=torch.float32)
    first = torch.trunc(low - radius)[..., None]
    stop = torch.trunc(high + radius)[..., None] + 1
    return (pixel >= first) & (pixel < stop)  # clipping to [0, length) is implicit


def _gaussian_profile(centre: Tensor, length: int, sigma: float) -> Tensor:
    """1-D Gaussian along an image axis, zero outside its ``±3 sigma`` window.

    Args:
        centre: ``(...)`` centre of the Gaussian.
        length: number of pixels along the axis.
        sigma: standard deviation in pixels.

    Returns:
        ``(..., length)`` float32 profile.
    """
    pixel = torch.arange(length, device=centre.device, dtype=torch.float32)
    profile = torch.exp((pixel - centre[..., None]).square() * (-0.5 / sigma**2))
    return torch.where(_window(centre, centre, length, sigma), profile, 0.0)


class _LimbTerms(NamedTuple):
    """Per-row and per-column terms of ``N`` limbs' distance fields (see :func:`_limb_terms`)."""

    along_x: Tensor  # (M, N, W)
    along_y: Tensor  # (M, N, H)
    length: Tensor  # (M, N)
    across_x: Tensor  # (M, N, W), +inf outside the window
    across_y: Tensor  # (M, N, H), +inf outside the window
    log_value: Tensor  # (M, N), -inf for limbs that are not drawn


def _limb_terms(
    start: Tensor,
    end: Tensor,
    start_value: Tensor,
    end_value: Tensor,
    size: tuple[int, int],
    sigma: float,
    eps: float,
) -> _LimbTerms:
    """Split each limb's distance field into per-row and per-column terms.

    For a pixel ``p`` and a limb from ``a`` to ``b`` with unit direction ``u``
    and unit normal ``n``, both ``along = (p - a) . u`` and ``across = (p - a) . n``
    are a column term plus a row term, and the squared distance from ``p`` to
    the segment is ``across^2 + (along - clamp(along, 0, |b - a|))^2``, which
    equals the reference's three cases (nearest to ``a``, to ``b``, or to the
    line between them). All terms are divided by ``sigma sqrt(2)``, so that the
    Gaussian's exponent is minus that sum.

    Args:
        start: ``(M, N, 2)`` start joints of ``N`` limb channels.
        end: ``(M, N, 2)`` end joints.
        start_value: ``(M, N)`` confidences of the start joints.
        end_value: ``(M, N)`` confidences of the end joints.
        size: ``(H, W)`` of the heatmaps.
        sigma: standard deviation of the Gaussian profile in pixels.
        eps: limbs with a confidence below this are not drawn.

    Returns:
        The terms, scaled by ``1 / (sigma sqrt(2))``.
    """
    height, width = size
    value = torch.minimum(start_value, end_value)
    drawn = (value >= eps) & start.isfinite().all(-1) & end.isfinite().all(-1)
    start = torch.where(drawn[..., None], start, 0.0)
    end = torch.where(drawn[..., None], end, 0.0)
    # Endpoints less than a pixel apart (same float32 test as the reference):
    # draw a joint at the start with the start's confidence, i.e. a limb of
    # length 0 (any unit direction then gives across^2 + along^2 = |p - a|^2).
    delta = end - start
    point = delta[..., 0].square() + delta[..., 1].square() < 1
    end = torch.where(point[..., None], start, end)
    value = torch.where(point, start_value, value)
    log_value = torch.where(drawn, value.log(), -math.inf)
    length = torch.where(point, 0.0, delta.norm(dim=-1))
    unit = torch.where(point[..., None], delta.new_tensor([1.0, 0.0]), delta / length[..., None])

    scale = 1 / (sigma * math.sqrt(2))
    dx = torch.arange(width, device=start.device, dtype=torch.float32) - start[..., :1]
    dy = torch.arange(height, device=start.device, dtype=torch.float32) - start[..., 1:]
    unit = unit * scale
    # The window is the endpoints' bounding box grown by 3 sigma. across = +inf
    # outside it gives exp(-inf) = 0 (and inf + inf stays inf, never NaN).
    low, high = torch.minimum(start, end), torch.maximum(start, end)
    in_x = _window(low[..., 0], high[..., 0], width, sigma)
    in_y = _window(low[..., 1], high[..., 1], height, sigma)
    return _LimbTerms(
        along_x=dx * unit[..., :1],
        along_y=dy * unit[..., 1:],
        length=length * scale,
        across_x=torch.where(in_x, dx * -unit[..., 1:], math.inf),
        across_y=torch.where(in_y, dy * unit[..., :1], math.inf),
        log_value=log_value,
    )


def _chunks(n: int, per_item: int, device: torch.device) -> Iterator[slice]:
    """Slices that split ``n`` items of ``per_item`` elements into cache-sized chunks.

    Args:
        n: number of items (heatmap channels).
        per_item: elements per item (``H * W``).
        device: where the work runs; GPUs take much larger chunks.

    Yields:
        Consecutive slices covering ``range(n)``.
    """
    budget = _CUDA_CHUNK_ELEMENTS if device.type == "cuda" else _CPU_CHUNK_ELEMENTS
    step = max(1, budget // max(per_item, 1))
    for i in range(0, n, step):
        yield slice(i, min(i + step, n))
