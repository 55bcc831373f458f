"""PoseConv3D pseudo-heatmaps of joints and limbs (vectorised; on any device).

These reproduce mmaction2's ``GeneratePoseTarget`` (with ``scaling=1``) to
float32 rounding. Every joint is a Gaussian of standard deviation ``sigma``
pixels (pixel centres at integer coordinates) drawn inside a window of
``±3 sigma`` around it; every limb is a Gaussian "tube" around the segment
between two joints, drawn inside the bounding box of its endpoints grown by
``3 sigma``. A joint or limb is scaled by its confidence, and persons are
merged by their maximum. The window bounds follow the reference exactly,
quirks included: ``int()`` truncates toward zero (so a joint less than
``3 sigma + 1`` pixels left of the image still draws into its first column,
where ``floor`` would not), the end gets ``+ 1``, and both are clipped to the
image. Joints and limbs whose confidence is below ``eps`` are not drawn, nor
are non-finite coordinates.

The reference loops over frames, channels and persons in Python; here a whole
clip (or batch) is computed at once, on the device of the keypoints, so that a
GPU can generate a batch's heatmaps itself. A joint's Gaussian is the outer
product of two 1-D Gaussians cut to its window (the confidence folded into
one of them). On a CPU it is computed in numpy (a DataLoader worker's hot
loop, where torch's per-operation overhead was half the time) and written as
a small patch into memory that numpy allocates zeroed on demand, as the
reference's ``np.zeros`` does, so that only the memory under the patches is
touched: what bounds the time there is zeroing memory, not the arithmetic
(the returned tensor shares numpy's memory). On a GPU the
outer products are written densely over the whole image. A limb's distance
field is not separable: it is evaluated with the reference's own float32
formula (whose rounding matters at the 1e-5 level for long limbs) on a crop
around each limb, for groups of channels whose crops have similar sizes, few
enough at a time to keep the temporaries in cache; limbs too are written into
memory zeroed on demand.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

__all__ = ["batch_joint_heatmaps", "batch_limb_heatmaps", "joint_heatmaps", "limb_heatmaps"]

# Crop pixels per group of limb channels: few enough for the temporaries to
# stay in a CPU core's cache, enough on a GPU for kernel launches not to matter.
_CPU_CHUNK_ELEMENTS = 2**16
_GPU_CHUNK_ELEMENTS = 2**22
# torch's CPU exp takes a ~70x slower path for arguments whose result is not
# a normal float32 (below about -87.3), so exponents are clamped to this and
# results at or below exp(_MIN_EXPONENT) are set to exactly 0 afterwards.
_MIN_EXPONENT = -87.0
_TINY = 1.7e-38  # just above exp(_MIN_EXPONENT) = 1.6458e-38


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
            of ``M`` persons in ``T`` frames (a tensor, or anything
            ``torch.as_tensor`` takes, such as a numpy array).
        score: ``(M, T, V)`` confidences that scale the Gaussians, or ``None``
            to draw every joint with peak 1 (mmaction2's ``use_score=False``).
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
            limb is scaled by the smaller confidence of its two joints.
        size: ``(H, W)`` of the heatmaps.
        limbs: ``L`` pairs ``(start, end)`` of joint indices. The order within
            a pair matters only when the endpoints are less than a pixel
            apart: the limb is then drawn as the joint ``start``.
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
    n = b * v * t
    if m == 0 or n == 0:
        return keypoint.new_zeros(b, v, t, height, width)
    # Persons first, then x and y, then channels in output order (B, V, T)
    # flattened to N innermost: torch's elementwise loops are slow over short
    # innermost dimensions, such as the 2 axes or the pixels of a window.
    centre = keypoint.permute(1, 4, 0, 3, 2).reshape(m, 2, n)
    value = value.permute(1, 0, 3, 2).reshape(m, n)
    # A confidence of 0 or less draws nothing visible (persons merge by max
    # over zeros); NaN confidences fail the tests too.
    drawn = value >= eps if eps > 0 else (value >= eps) & (value > 0)
    if keypoint.device.type == "cpu":
        out = _scatter_joints(centre, value, drawn, size, sigma)
    else:
        out = _dense_joints(centre, value, drawn, size, sigma)
    return out.view(b, v, t, height, width)


def _scatter_joints(
    centre: Tensor, value: Tensor, drawn: Tensor, size: tuple[int, int], sigma: float
) -> Tensor:
    """Joint heatmaps drawn as small patches into lazily zeroed memory (the CPU path).

    Only the patches are computed and written, so only the memory under them
    is ever touched, as in the reference: on a CPU, the operating system's
    zeroing of a fresh output costs more than all the arithmetic. The arrays
    are small (a few thousand joints), so the work is written in numpy, whose
    per-operation overhead is a fraction of torch's: this is a DataLoader
    worker's hot loop. float32 throughout, the same arithmetic as the dense
    torch path (:func:`_dense_joints`, which a test compares).

    Args:
        centre: ``(M, 2, N)`` joints ``(x, y)`` of ``N`` channels of ``M`` persons.
        value: ``(M, N)`` confidences.
        drawn: ``(M, N)`` which joints to draw.
        size: ``(H, W)`` of the heatmaps.
        sigma: standard deviation of the Gaussians in pixels.

    Returns:
        ``(N * H * W,)`` float32 heatmaps.
    """
    centre, value, drawn = centre.numpy(), value.numpy(), drawn.numpy()
    m, n = drawn.shape
    height, width = size
    span = _span(sigma, size)
    kx, ky = min(span, width), min(span, height)
    # The reference's window (see _window), float32 as there; NaN compares False.
    radius = np.float32(3 * sigma)
    length = np.array([[width], [height]], np.float32)
    with np.errstate(invalid="ignore"):
        first = np.maximum(np.trunc(centre - radius), 0, dtype=np.float32)
        stop = np.minimum(np.trunc(centre + radius) + 1, length, dtype=np.float32)
        drawn = drawn & (stop > first).all(1)
    # A joint's patch is a ky x kx block of pixels over its window, shifted
    # back into the image where the window meets the right or bottom edge;
    # the block's pixels outside the window are 0 (as in the reference, and
    # harmless in the max over persons).
    start = np.minimum(first, np.array([[width - kx], [height - ky]], np.float32))
    start[~np.isfinite(start)] = 0
    pixel = start[:, :, None] + np.arange(span, dtype=np.float32)[:, None]  # (M, 2, K, N)
    inside = (pixel >= first[:, :, None]) & (pixel < stop[:, :, None])
    exponent = np.square(pixel - centre[:, :, None]) * np.float32(-0.5 / sigma**2)
    with np.errstate(invalid="ignore", under="ignore"):
        profile = np.exp(np.maximum(exponent, _MIN_EXPONENT, dtype=np.float32))
    profile[~inside] = 0
    # The 2-D Gaussian is the outer product of the 1-D ones, the confidence
    # folded into y: (M, N, ky, kx) in memory order.
    gx = profile[:, 0, :kx].transpose(0, 2, 1)  # (M, N, kx)
    gy = (profile[:, 1, :ky] * value[:, None]).transpose(0, 2, 1)  # (M, N, ky)
    patch = gy[..., :, None] * gx[..., None, :]

    # Where each block starts; a joint not drawn goes to a dummy block past
    # the heatmaps, so it touches none of their memory.
    dummy = n * height * width
    corner = start.astype(np.int64)
    corner = corner[:, 1] * width + corner[:, 0] + np.arange(0, dummy, height * width)
    corner[~drawn] = dummy
    offset = (np.arange(0, ky * width, width)[:, None] + np.arange(kx)).reshape(-1)
    index = (corner[:, :, None] + offset).reshape(m, -1)  # (M, N * ky * kx)
    out = np.zeros(dummy + ky * width, np.float32)  # calloc: zeroed on demand
    patch = patch.reshape(m, -1)
    out[index[0]] = patch[0]  # within a person, every pixel is written at most once
    for p in range(1, m):  # max, not sum, over persons
        out[index[p]] = np.maximum(out[index[p]], patch[p])
    return torch.from_numpy(out[:dummy])


def _dense_joints(
    centre: Tensor, value: Tensor, drawn: Tensor, size: tuple[int, int], sigma: float
) -> Tensor:
    """Joint heatmaps as dense outer products of 1-D Gaussians (the GPU path).

    Every pixel of the output is written once per person, with no zeros
    first and no scatter: on a GPU this is bound by memory bandwidth.

    Args:
        centre: ``(M, 2, N)`` joints ``(x, y)`` of ``N`` channels of ``M`` persons.
        value: ``(M, N)`` confidences.
        drawn: ``(M, N)`` which joints to draw.
        size: ``(H, W)`` of the heatmaps.
        sigma: standard deviation of the Gaussians in pixels.

    Returns:
        ``(N * H * W,)`` float32 heatmaps, the same numbers as :func:`_scatter_joints`.
    """
    m, n = drawn.shape
    height, width = size
    profiles = []
    for axis, length in enumerate((width, height)):  # x, then y
        mu = centre[:, axis, :, None]  # (M, N, 1)
        first, stop = _window(mu, mu, length, sigma)
        pixel = _pixels(length, centre.device)
        inside = (pixel >= first) & (pixel < stop) & drawn[..., None]
        profiles.append(torch.where(inside, _profile(pixel, mu, sigma), 0.0))  # (M, N, length)
    gx, gy = profiles
    gy.mul_(torch.where(drawn, value, 0.0)[..., None])  # no NaN confidences
    out = torch.empty(n, height, width, device=centre.device)
    torch.mul(gy[0, :, :, None], gx[0, :, None, :], out=out)
    for p in range(1, m):  # max, not sum, over persons (and over the zeros)
        torch.maximum(out, gy[p, :, :, None] * gx[p, :, None, :], out=out)
    return out.view(-1)


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
    limbs = [(int(i), int(j)) for i, j in limbs]
    if any(not (0 <= k < v) for limb in limbs for k in limb):
        raise ValueError(f"limb indices must lie in [0, {v}), got {limbs}")
    n = b * len(limbs) * t
    if m == 0 or n == 0:
        return keypoint.new_zeros(b, len(limbs), t, height, width)
    index = torch.tensor(limbs, dtype=torch.long, device=keypoint.device).reshape(-1, 2)
    # Persons first, then channels in output order (B, L, T), flattened to N.
    start, end = (keypoint[:, :, :, i].permute(1, 0, 3, 2, 4).reshape(m, n, 2) for i in index.T)
    start_value, end_value = (value[..., i].permute(1, 0, 3, 2).reshape(m, n) for i in index.T)
    terms = _limb_terms(start, end, start_value, end_value, size, sigma, eps)

    # Each channel is computed on a crop that covers its windows (of all
    # persons); channels with crops of similar size are processed together.
    out = _lazy_zeros(n * height * width, keypoint.device)
    for channels, (h, w) in _crop_groups(terms.first, terms.stop, _budget(keypoint.device)):
        y0 = terms.first[channels, 0].clamp(max=height - h).long()  # keeps the crop inside
        x0 = terms.first[channels, 1].clamp(max=width - w).long()
        rows = y0[:, None] + torch.arange(h, device=y0.device)  # (k, h)
        cols = x0[:, None] + torch.arange(w, device=x0.device)  # (k, w)
        exponent = None
        for p in range(m):  # exp is monotonic: the max over persons can come first
            e = _limb_exponent(terms, p, channels, rows, cols, sigma)
            exponent = e if exponent is None else torch.maximum(exponent, e, out=exponent)
        pixel = (channels[:, None] * height + rows)[:, :, None] * width + cols[:, None, :]
        # scatter_ rather than out[pixel] = ...: several times faster on CPU.
        out.scatter_(0, pixel.flatten(), _exp_or_zero(exponent).flatten())
    return out.view(b, len(limbs), t, height, width)


def _prepare(keypoint: Tensor, score: Tensor | None, sigma: float) -> tuple[Tensor, Tensor]:
    """Check shapes and cast to float32 on the keypoints' device.

    Args:
        keypoint: ``(B, M, T, V, 2)`` coordinates.
        score: ``(B, M, T, V)`` confidences or ``None``.
        sigma: standard deviation of the Gaussians.

    Returns:
        ``(B, M, T, V, 2)`` keypoints and ``(B, M, T, V)`` confidences, float32.
    """
    keypoint = torch.as_tensor(keypoint)
    if keypoint.ndim != 5 or keypoint.shape[-1] != 2:
        raise ValueError(f"keypoint must be (B, M, T, V, 2), got {tuple(keypoint.shape)}")
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    # float32 like the reference, so that window bounds and distances round alike.
    keypoint = keypoint.float()
    if score is None:
        return keypoint, keypoint.new_ones(keypoint.shape[:-1])
    score = torch.as_tensor(score, dtype=torch.float32, device=keypoint.device)
    if score.shape != keypoint.shape[:-1]:
        raise ValueError(
            f"score must have shape {tuple(keypoint.shape[:-1])} to match keypoint, "
            f"got {tuple(score.shape)}"
        )
    return keypoint, score


def _pixels(length: int, device: torch.device) -> Tensor:
    """``(length,)`` float32 pixel-centre coordinates ``0, 1, ..., length - 1``."""
    return torch.arange(length, device=device, dtype=torch.float32)


def _window(low: Tensor, high: Tensor, length: int | Tensor, sigma: float) -> tuple[Tensor, Tensor]:
    """The reference's window along an image axis: pixels ``first <= i < stop``.

    Args:
        low: ``(...)`` smallest coordinate to cover.
        high: ``(...)`` largest coordinate to cover.
        length: number of pixels along the axis (a tensor that broadcasts
            with ``low`` for several axes).
        sigma: the window reaches ``3 sigma`` beyond ``low`` and ``high``.

    Returns:
        ``(...)`` float32 ``first = max(int(low - 3 sigma), 0)`` and
        ``stop = min(int(high + 3 sigma) + 1, length)``; empty if ``stop <= first``.
    """
    # float32 minus a Python float stays float32, as in numpy >= 2; trunc is int().
    radius = 3 * sigma
    first = torch.trunc(low - radius).clamp_(min=0)
    stop = torch.trunc(high + radius).add_(1).clamp_(max=length)
    return first, stop


def _inside(first: Tensor, stop: Tensor, length: int) -> Tensor:
    """``(..., length)`` bool: which pixels lie in ``[first, stop)`` (each ``(...)``)."""
    pixel = _pixels(length, first.device)
    return (pixel >= first[..., None]) & (pixel < stop[..., None])


def _span(sigma: float, size: tuple[int, int]) -> int:
    """Most pixels in a joint's window along an axis, ``floor(6 sigma) + 2``.

    Give or take the float32 rounding of the window's bounds (well below a
    pixel for coordinates of the image's magnitude), capped by the image.
    """
    return min(math.floor(6 * sigma + (max(size) + 4) * 2**-20) + 2, max(size))


def _profile(pixel: Tensor, centre: Tensor, sigma: float) -> Tensor:
    """``exp(-(pixel - centre)^2 / (2 sigma^2))``, broadcast (clamped for tiny sigma)."""
    exponent = (pixel - centre).square_().mul_(-0.5 / sigma**2)
    return exponent.clamp_(min=_MIN_EXPONENT).exp_()


def _lazy_zeros(numel: int, device: torch.device) -> Tensor:
    """``(numel,)`` float32 zeros whose memory, on a CPU, is only touched when written.

    ``torch.zeros`` writes every page of a fresh block; numpy's ``zeros`` is
    ``calloc``, which takes a large block straight from the operating system,
    already zero, page by page as it is first written (mmaction2's reference
    allocates its heatmaps the same way).
    """
    if device.type == "cpu":
        return torch.from_numpy(np.zeros(numel, np.float32))
    return torch.zeros(numel, device=device)


class _LimbTerms(NamedTuple):
    """What :func:`_limb_exponent` needs of ``N`` limb channels of ``M`` persons."""

    along_x: Tensor  # (M, N, 3, W) (x - a_x)^2, (x - b_x)^2, x (+inf outside the window)
    along_y: Tensor  # (M, N, 3, H) the same for y
    limb: Tensor  # (M, N, 6) a_x, a_y, b_x - a_x, b_y - a_y, |b - a|^2, log(value)
    first: Tensor  # (N, 2) first (y, x) pixel of any person's window; (H, W) if none
    stop: Tensor  # (N, 2) stop (y, x) of any person's window; (0, 0) if none


def _limb_terms(
    start: Tensor,
    end: Tensor,
    start_value: Tensor,
    end_value: Tensor,
    size: tuple[int, int],
    sigma: float,
    eps: float,
) -> _LimbTerms:
    """Per-limb and per-row/column parts of the limbs' distance fields.

    Args:
        start: ``(M, N, 2)`` start joints ``(x, y)`` of ``N`` limb channels.
        end: ``(M, N, 2)`` end joints.
        start_value: ``(M, N)`` confidences of the start joints.
        end_value: ``(M, N)`` confidences of the end joints.
        size: ``(H, W)`` of the heatmaps.
        sigma: standard deviation of the Gaussian profile in pixels.
        eps: limbs with a confidence below this are not drawn.

    Returns:
        The terms.
    """
    height, width = size
    value = torch.minimum(start_value, end_value)
    drawn = (value >= eps) & start.isfinite().all(-1) & end.isfinite().all(-1)
    start = torch.where(drawn[..., None], start, 0.0)
    end = torch.where(drawn[..., None], end, 0.0)
    # Endpoints less than a pixel apart (the reference's float32 test): a joint
    # at the start with the start's confidence, i.e. the limb from a to a.
    delta = end - start
    d2_ab = delta[..., 0].square() + delta[..., 1].square()
    point = d2_ab < 1
    end = torch.where(point[..., None], start, end)
    delta = torch.where(point[..., None], 0.0, delta)
    d2_ab = torch.where(point, 1.0, d2_ab)  # any positive value: a to a projects onto a
    value = torch.where(point, start_value, value)

    # The window is the bounding box of the endpoints, grown by 3 sigma.
    low, high = torch.minimum(start, end), torch.maximum(start, end)
    first_x, stop_x = _window(low[..., 0], high[..., 0], width, sigma)
    first_y, stop_y = _window(low[..., 1], high[..., 1], height, sigma)
    drawn &= (stop_x > first_x) & (stop_y > first_y)
    first = torch.stack([first_y, first_x], -1).where(drawn[..., None], torch.inf)
    stop = torch.stack([stop_y, stop_x], -1).where(drawn[..., None], 0.0)
    first = first.amin(0).minimum(first.new_tensor([height, width]))  # union over persons
    stop = stop.amax(0)

    def along(pixel: Tensor, a: Tensor, b: Tensor, inside: Tensor) -> Tensor:
        # A pixel coordinate of +inf puts the pixel at infinite distance: exp(-inf) = 0.
        coordinate = torch.where(inside, pixel, torch.inf)
        return torch.stack([(pixel - a).square(), (pixel - b).square(), coordinate], -2)

    x, y = _pixels(width, start.device), _pixels(height, start.device)
    log_value = torch.where(drawn, value.log(), -torch.inf)
    return _LimbTerms(
        along_x=along(x, start[..., :1], end[..., :1], _inside(first_x, stop_x, width)),
        along_y=along(y, start[..., 1:], end[..., 1:], _inside(first_y, stop_y, height)),
        limb=torch.stack(
            [start[..., 0], start[..., 1], delta[..., 0], delta[..., 1], d2_ab, log_value], -1
        ),
        first=first,
        stop=stop,
    )


def _limb_exponent(
    terms: _LimbTerms, person: int, channels: Tensor, rows: Tensor, cols: Tensor, sigma: float
) -> Tensor:
    """``log(value) - d2 / (2 sigma^2)`` of one person's limbs, ``d2`` to the segment.

    The squared distances follow the reference's float32 formula operation by
    operation: its rounding (``coeff`` loses digits to cancellation) reaches
    the 1e-5 level for long limbs, which an exact or differently arranged
    formula would not share.

    Args:
        terms: the limbs' terms from :func:`_limb_terms`.
        person: which person.
        channels: ``(k,)`` which channels.
        rows: ``(k, h)`` which image rows, per channel.
        cols: ``(k, w)`` which image columns, per channel.
        sigma: standard deviation of the Gaussian profile in pixels.

    Returns:
        ``(k, h, w)`` exponents, ``-inf`` outside each limb's window.
    """
    k, h, w = rows.shape[0], rows.shape[1], cols.shape[1]
    along_x = terms.along_x[person, channels].gather(-1, cols[:, None].expand(k, 3, w))
    along_y = terms.along_y[person, channels].gather(-1, rows[:, None].expand(k, 3, h))
    d2_start_x, d2_end_x, x = along_x[:, :, None, :].unbind(1)  # (k, 1, w) each
    d2_start_y, d2_end_y, y = along_y[:, :, :, None].unbind(1)  # (k, h, 1) each
    a_x, a_y, delta_x, delta_y, d2_ab, log_value = terms.limb[
        person, channels, :, None, None
    ].unbind(1)

    # Projection parameter of the pixel on the segment; (u / 2) / d == u / (2 d) exactly.
    coeff = (d2_start_y + d2_start_x).sub_(d2_end_y + d2_end_x).add_(d2_ab).div_(2 * d2_ab)
    # coeff <= 0 projects onto a itself: d2_start, bit for bit. coeff >= 1
    # projects onto a + (b - a), within an ulp of b (the reference takes d2_end).
    coeff.clamp_(0, 1)
    dx = torch.mul(coeff, delta_x).add_(a_x)
    dx = torch.sub(x, dx, out=dx).square_()
    dy = coeff.mul_(delta_y).add_(a_y)
    dy = torch.sub(y, dy, out=dy).square_()
    return torch.add(log_value, dx.add_(dy), alpha=-0.5 / sigma**2)


def _exp_or_zero(exponent: Tensor) -> Tensor:
    """``exp(exponent)``, exactly 0 for exponents below ``_MIN_EXPONENT``.

    Args:
        exponent: ``(...)`` exponents (may be ``-inf``); overwritten.

    Returns:
        ``(...)`` the result, in the memory of ``exponent``.
    """
    values = exponent.clamp_(min=_MIN_EXPONENT).exp_()
    return torch.nn.functional.threshold_(values, _TINY, 0.0)


def _budget(device: torch.device) -> int:
    """Elements per temporary of a chunked loop on ``device``."""
    return _CPU_CHUNK_ELEMENTS if device.type == "cpu" else _GPU_CHUNK_ELEMENTS


def _crop_groups(first: Tensor, stop: Tensor, budget: int) -> list[tuple[Tensor, tuple[int, int]]]:
    """Group the channels with something to draw by the size of their crops.

    Args:
        first: ``(N, 2)`` first pixel ``(y, x)`` of each channel's crop.
        stop: ``(N, 2)`` stop ``(y, x)`` of each channel's crop; empty if
            there is nothing to draw.
        budget: about this many crop pixels per group (one crop may be larger).

    Returns:
        ``(channels, (h, w))`` per group: ``(k,)`` channel indices and a crop
        size that holds each of their crops.
    """
    extent = (stop - first).clamp_(min=0).long()
    channels = (extent > 0).all(-1).nonzero()[:, 0]
    if len(channels) == 0:
        return []
    extent = extent[channels]
    # By height, then width (both < 2**16), so that a group's crops are alike.
    order = torch.argsort(extent[:, 0] * 2**16 + extent[:, 1])
    channels, extent = channels[order], extent[order]
    # Cut where the running total of crop areas crosses a multiple of the budget.
    group = extent.prod(-1).cumsum(0).sub_(1).div_(budget, rounding_mode="floor")
    group, counts = torch.unique_consecutive(group, return_inverse=True, return_counts=True)[1:]
    crop = extent.new_zeros(len(counts), 2)
    crop.scatter_reduce_(0, group[:, None].expand(-1, 2), extent, "amax")
    sizes = torch.cat([counts[:, None], crop], -1).tolist()  # one transfer from the device
    chunks = channels.split([k for k, _, _ in sizes])
    return [(chunk, (h, w)) for chunk, (_, h, w) in zip(chunks, sizes, strict=True)]
