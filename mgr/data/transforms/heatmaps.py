"""PoseConv3D pseudo-heatmaps of joints and limbs (vectorised, device-agnostic torch).

These reproduce mmaction2's ``GeneratePoseTarget`` (with ``scaling=1``) to
float32 rounding. Every joint is a Gaussian of standard deviation ``sigma``
pixels (pixel centres at integer coordinates) drawn inside a window of
``±3 sigma`` around it; every limb is a Gaussian "tube" around the segment
between two joints, drawn inside the bounding box of its endpoints grown by
``3 sigma``. A joint or limb is scaled by its confidence, and persons are
merged by their maximum. The window bounds follow the reference exactly,
quirks included: ``int()`` truncates toward zero (so a window that would start
at a negative coordinate starts later than ``floor`` would put it), the end
gets ``+ 1``, and both are clipped to the image. Joints and limbs whose
confidence is below ``eps`` are not drawn, nor are non-finite coordinates.

The reference loops over frames, channels and persons in Python; here a whole
clip (or batch) is computed at once, on the device of the keypoints, so that a
GPU can generate a batch's heatmaps itself. A joint's Gaussian is the outer
product of two 1-D profiles, each already cut to its window, so it costs one
multiplication per pixel. A limb's distance field is not separable; it is
evaluated with the reference's own float32 formula (whose rounding matters at
the 1e-5 level for long limbs), on whole frames, in chunks of channels that
keep the temporaries in cache.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import NamedTuple

import torch
from torch import Tensor

__all__ = ["batch_joint_heatmaps", "batch_limb_heatmaps", "joint_heatmaps", "limb_heatmaps"]

# Elements per temporary in the chunked loops: small enough to stay in a CPU
# core's cache, large enough on a GPU for kernel launches not to dominate.
_CPU_CHUNK_ELEMENTS = 2**16
_GPU_CHUNK_ELEMENTS = 2**24
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
    # Persons first, then channels in output order (B, V, T), flattened to N.
    centre = keypoint.permute(1, 0, 3, 2, 4).reshape(m, -1, 2)
    value = value.permute(1, 0, 3, 2).reshape(m, -1)
    value = torch.where(value >= eps, value, 0.0)  # NaN confidences fail the test too
    gx = _gaussian_profile(centre[..., 0], width, sigma)  # (M, N, W)
    gy = _gaussian_profile(centre[..., 1], height, sigma) * value[..., None]  # (M, N, H)

    if m == 0:
        return keypoint.new_zeros(b, v, t, height, width)
    # The 2-D Gaussian is the outer product of the two 1-D profiles.
    out = torch.mul(gy[0, :, :, None], gx[0, :, None, :])
    step = _chunk_size(height * width, keypoint.device)
    for sl in _slices(b * v * t, step) if m > 1 else ():
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
    limbs = [(int(i), int(j)) for i, j in limbs]
    if any(not (0 <= k < v) for limb in limbs for k in limb):
        raise ValueError(f"limb indices must lie in [0, {v}), got {limbs}")
    n = b * len(limbs) * t
    index = torch.tensor(limbs, dtype=torch.long, device=keypoint.device).reshape(-1, 2)
    # Persons first, then channels in output order (B, L, T), flattened to N.
    start, end = (keypoint[:, :, :, i].permute(1, 0, 3, 2, 4).reshape(m, n, 2) for i in index.T)
    start_value, end_value = (value[..., i].permute(1, 0, 3, 2).reshape(m, n) for i in index.T)
    terms = _limb_terms(start, end, start_value, end_value, size, sigma, eps)

    out = torch.zeros(n, height, width, device=keypoint.device)
    step = _chunk_size(height * width, keypoint.device)
    for sl, rows, cols in _crops(terms.first, terms.stop, step):
        exponent = _limb_exponent(terms, 0, sl, rows, cols, sigma)
        for p in range(1, m):  # exp is monotonic: the max over persons can come first
            torch.maximum(exponent, _limb_exponent(terms, p, sl, rows, cols, sigma), out=exponent)
        _exp_or_zero(exponent, out=out[sl, rows, cols])
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


def _window(low: Tensor, high: Tensor, length: int, sigma: float) -> tuple[Tensor, Tensor]:
    """The reference's window along an image axis: pixels ``first <= i < stop``.

    Args:
        low: ``(...)`` smallest coordinate to cover.
        high: ``(...)`` largest coordinate to cover.
        length: number of pixels along the axis.
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


def _gaussian_profile(centre: Tensor, length: int, sigma: float) -> Tensor:
    """1-D Gaussian along an image axis, zero outside its ``±3 sigma`` window.

    Args:
        centre: ``(...)`` centres.
        length: number of pixels along the axis.
        sigma: standard deviation in pixels.

    Returns:
        ``(..., length)`` float32 profiles, peak 1.
    """
    exponent = (_pixels(length, centre.device) - centre[..., None]).square() / (-2 * sigma**2)
    profile = exponent.clamp_(min=_MIN_EXPONENT).exp_()  # only far outside the window
    return torch.where(_inside(*_window(centre, centre, length, sigma), length), profile, 0.0)


class _LimbTerms(NamedTuple):
    """What :func:`_limb_exponent` needs of ``N`` limbs of ``M`` persons.

    The tensors broadcast to ``(M, N, H, W)``.
    """

    start_x: Tensor  # (M, N, 1, 1) a_x
    start_y: Tensor  # (M, N, 1, 1) a_y
    delta_x: Tensor  # (M, N, 1, 1) b_x - a_x, zero for a point
    delta_y: Tensor  # (M, N, 1, 1) b_y - a_y, zero for a point
    d2_ab: Tensor  # (M, N, 1, 1) |b - a|^2, one for a point
    d2_start_x: Tensor  # (M, N, 1, W) (x - a_x)^2
    d2_start_y: Tensor  # (M, N, H, 1) (y - a_y)^2
    d2_end_x: Tensor  # (M, N, 1, W) (x - b_x)^2
    d2_end_y: Tensor  # (M, N, H, 1) (y - b_y)^2
    log_value_x: Tensor  # (M, N, 1, W) 0 inside the window, -inf outside
    log_value_y: Tensor  # (M, N, H, 1) log(value) inside the window, -inf outside
    first: Tensor  # (M, N, 2) window start (y, x); (H, W) if nothing is drawn
    stop: Tensor  # (M, N, 2) window stop (y, x); (0, 0) if nothing is drawn
    x: Tensor  # (W,) pixel columns
    y: Tensor  # (H, 1) pixel rows


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
    in_x = _inside(first_x, stop_x, width)
    in_y = _inside(first_y, stop_y, height) & drawn[..., None]
    log_value = torch.where(in_y, value.log()[..., None], -torch.inf)  # (M, N, H)
    # Empty windows for what is not drawn, so that _crops skips them.
    first = torch.stack([first_y, first_x], -1)
    first = torch.where(drawn[..., None], first, first.new_tensor([height, width]))
    stop = torch.where(drawn[..., None], torch.stack([stop_y, stop_x], -1), 0.0)

    x, y = _pixels(width, start.device), _pixels(height, start.device)
    a_x, a_y = start[..., 0, None], start[..., 1, None]
    b_x, b_y = end[..., 0, None], end[..., 1, None]
    return _LimbTerms(
        start_x=a_x[..., None],
        start_y=a_y[..., None],
        delta_x=delta[..., 0, None, None],
        delta_y=delta[..., 1, None, None],
        d2_ab=d2_ab[..., None, None],
        d2_start_x=(x - a_x).square()[..., None, :],
        d2_start_y=(y - a_y).square()[..., :, None],
        d2_end_x=(x - b_x).square()[..., None, :],
        d2_end_y=(y - b_y).square()[..., :, None],
        log_value_x=torch.where(in_x, 0.0, -torch.inf)[..., None, :],
        log_value_y=log_value[..., :, None],
        first=first,
        stop=stop,
        x=x,
        y=y[:, None],
    )


def _limb_exponent(
    terms: _LimbTerms, person: int, sl: slice, rows: slice, cols: slice, sigma: float
) -> Tensor:
    """``log(value) - d2 / (2 sigma^2)`` of one person's limbs, ``d2`` to the segment.

    The squared distances follow the reference's float32 formula operation by
    operation: its rounding (``coeff`` loses digits to cancellation) reaches
    the 1e-5 level for long limbs, which an exact or differently arranged
    formula would not share.

    Args:
        terms: the limbs' terms from :func:`_limb_terms`.
        person: which person.
        sl: which channels (``n`` of them).
        rows: which rows of the image (``h`` of them).
        cols: which columns of the image (``w`` of them).
        sigma: standard deviation of the Gaussian profile in pixels.

    Returns:
        ``(n, h, w)`` exponents, ``-inf`` outside each limb's window.
    """

    def row(t: Tensor) -> Tensor:  # (M, N, H, 1) -> (n, h, 1)
        return t[person, sl, rows]

    def col(t: Tensor) -> Tensor:  # (M, N, 1, W) -> (n, 1, w)
        return t[person, sl, :, cols]

    def per_limb(t: Tensor) -> Tensor:  # (M, N, 1, 1) -> (n, 1, 1)
        return t[person, sl]

    d2_start = row(terms.d2_start_y) + col(terms.d2_start_x)
    d2_end = row(terms.d2_end_y) + col(terms.d2_end_x)
    # Projection parameter of the pixel on the segment; (u / 2) / d == u / (2 d) exactly.
    d2_ab = per_limb(terms.d2_ab)
    coeff = d2_start.sub_(d2_end).add_(d2_ab).div_(2 * d2_ab)
    # coeff <= 0 projects onto a itself: d2_start, bit for bit. coeff >= 1
    # projects onto a + (b - a), within an ulp of b (the reference takes d2_end).
    coeff.clamp_(0, 1)
    dx = torch.mul(coeff, per_limb(terms.delta_x)).add_(per_limb(terms.start_x))
    dx = torch.sub(terms.x[cols], dx, out=dx).square_()
    dy = coeff.mul_(per_limb(terms.delta_y)).add_(per_limb(terms.start_y))
    dy = torch.sub(terms.y[rows], dy, out=dy).square_()
    d2 = dx.add_(dy)
    exponent = row(terms.log_value_y) + col(terms.log_value_x)
    return exponent.add_(d2, alpha=-0.5 / sigma**2)


def _exp_or_zero(exponent: Tensor, out: Tensor) -> Tensor:
    """``exp(exponent)`` that is exactly 0 for exponents below ``_MIN_EXPONENT``.

    Args:
        exponent: ``(...)`` exponents (may be ``-inf``); clamped in place.
        out: ``(...)`` float32 output.

    Returns:
        ``out``.
    """
    torch.exp(exponent.clamp_(min=_MIN_EXPONENT), out=out)
    return torch.nn.functional.threshold_(out, _TINY, 0.0)


def _chunk_size(per_item: int, device: torch.device) -> int:
    """How many items of ``per_item`` elements make one chunk on ``device``."""
    budget = _CPU_CHUNK_ELEMENTS if device.type == "cpu" else _GPU_CHUNK_ELEMENTS
    return max(1, budget // max(per_item, 1))


def _slices(n: int, step: int) -> Iterator[slice]:
    """Consecutive slices of ``step`` items covering ``range(n)``."""
    for i in range(0, n, step):
        yield slice(i, min(i + step, n))


def _crops(first: Tensor, stop: Tensor, step: int) -> Iterator[tuple[slice, slice, slice]]:
    """Chunks of channels, each with the rectangle of the image its windows cover.

    Consecutive channels are one limb in consecutive frames, so their windows
    are close and the rectangle is usually much smaller than the image.

    Args:
        first: ``(M, N, 2)`` window starts ``(y, x)``.
        stop: ``(M, N, 2)`` window stops ``(y, x)``.
        step: channels per chunk.

    Yields:
        ``(channels, rows, cols)`` slices; chunks with nothing to draw are left out.
    """
    n = first.shape[1]
    if n == 0 or first.shape[0] == 0:
        return
    pad = -n % step  # padding windows are empty: they start at inf and stop at 0
    first = torch.nn.functional.pad(first, (0, 0, 0, pad), value=torch.inf)
    stop = torch.nn.functional.pad(stop, (0, 0, 0, pad), value=0)
    first = first.unflatten(1, (-1, step)).amin(dim=(0, 2))
    stop = stop.unflatten(1, (-1, step)).amax(dim=(0, 2))
    bounds = torch.cat([first, stop], -1).int().tolist()  # one transfer for all chunks
    for sl, (y0, x0, y1, x1) in zip(_slices(n, step), bounds, strict=True):
        if y1 > y0 and x1 > x0:
            yield sl, slice(y0, y1), slice(x0, x1)
