"""Anchor-free temporal detection functions (ActionFormer recipe), plain torch, no Lightning.

The network in :mod:`mgr.models.backbones.temporal` predicts, for every pyramid
*point*, class logits and the distances from the point to the start and end of
the instance around it. This module turns annotations into per-point targets,
scores predictions and turns them back into segments (reference notes:
``reference-algorithms.md`` §4.2).

Units: all times are in the input feature grid (feature index ``t`` of the
level-0 sequence; the point ``i`` of level ``l`` sits at ``t = i * 2**l``). Map
annotation frames to that grid before calling :func:`assign_targets` (for clip
features with window ``W`` and stride ``S``: ``t = (frame - W / 2) / S``) and map
decoded segments back the same way.

Points are ``(N, 4)`` rows ``[t, range_min, range_max, stride]``, levels
concatenated in order, so that one tensor carries all per-point constants
(positions, regression ranges, strides) used by assignment and decoding.

Documented choices:

* :func:`sigmoid_focal_loss` is summed over points and classes and divided by
  a normaliser, by default the number of positive points (at least 1).
  ActionFormer divides by an EMA of that count (momentum 0.9); pass it as
  ``normalizer`` to reproduce.
* :func:`soft_nms` is Gaussian soft-NMS per class (``w = exp(-iou^2 / sigma)``,
  ActionFormer's method 2: ``sigma`` is *not* ``2 sigma^2``); ``iou_threshold``
  is used only by the ``"linear"`` and ``"hard"`` methods, as in ActionFormer's
  C++ kernel. Candidates starting below ``min_score`` are dropped, candidates decayed
  below it are removed. Because every selected score is final and at least as
  large as any later one, the loop stops after ``max_detections`` selections
  with the same result as sorting everything and truncating.
* :func:`postprocess` takes the top ``pre_nms_topk`` (point, class) scores over
  all levels together (ActionFormer: per level).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor

__all__ = [
    "DEFAULT_REGRESSION_RANGES",
    "assign_targets",
    "batched_nms_1d",
    "decode",
    "detection_loss",
    "diou_loss_1d",
    "encode",
    "make_points",
    "postprocess",
    "segment_iou",
    "sigmoid_focal_loss",
    "soft_nms",
]

#: ActionFormer's per-level regression ranges (in input-grid units) for a 6-level pyramid.
DEFAULT_REGRESSION_RANGES: tuple[tuple[float, float], ...] = (
    (0.0, 4.0),
    (4.0, 8.0),
    (8.0, 16.0),
    (16.0, 32.0),
    (32.0, 64.0),
    (64.0, 10000.0),
)


def make_points(
    lengths: Sequence[int],
    strides: Sequence[int],
    regression_ranges: Sequence[tuple[float, float]] = DEFAULT_REGRESSION_RANGES,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Pyramid points with their regression ranges and strides.

    Args:
        lengths: ``T_l`` of each level (e.g. ``TemporalDetectionNet(...)["lengths"]``).
        strides: stride of each level (``2**l``).
        regression_ranges: ``(min, max)`` of the largest start/end distance a level
            may regress, one per level (at least as many as levels).
        device: device of the result.
        dtype: dtype of the result.

    Returns:
        ``(N, 4)`` rows ``[t, range_min, range_max, stride]``, ``N = sum(lengths)``,
        levels in order, ``t = i * stride``.
    """
    if len(lengths) != len(strides):
        raise ValueError(f"{len(lengths)} lengths but {len(strides)} strides")
    if len(regression_ranges) < len(lengths):
        raise ValueError(f"{len(regression_ranges)} regression ranges for {len(lengths)} levels")
    rows = []
    for length, stride, (lo, hi) in zip(lengths, strides, regression_ranges, strict=False):
        t = torch.arange(length, device=device, dtype=dtype) * stride
        const = torch.tensor([lo, hi, stride], device=device, dtype=dtype).expand(length, 3)
        rows.append(torch.cat([t[:, None], const], dim=1))
    return torch.cat(rows, dim=0)


def encode(points: Tensor, segments: Tensor) -> Tensor:
    """Distances from each point to the start and end of its segment, in stride units.

    Args:
        points: ``(N, 4)`` from :func:`make_points`.
        segments: ``(..., N, 2)`` ``[start, end]`` per point.

    Returns:
        ``(..., N, 2)`` ``[(t - start) / stride, (end - t) / stride]``.
    """
    t, stride = points[:, 0], points[:, 3]
    return torch.stack([(t - segments[..., 0]) / stride, (segments[..., 1] - t) / stride], dim=-1)


def decode(points: Tensor, offsets: Tensor) -> Tensor:
    """Segments from per-point distances (inverse of :func:`encode`).

    Args:
        points: ``(N, 4)`` from :func:`make_points`.
        offsets: ``(..., N, 2)`` distances to start/end in stride units.

    Returns:
        ``(..., N, 2)`` ``[t - left * stride, t + right * stride]``.
    """
    t, stride = points[:, 0], points[:, 3]
    return torch.stack([t - offsets[..., 0] * stride, t + offsets[..., 1] * stride], dim=-1)


def assign_targets(
    points: Tensor,
    gt_segments: Tensor,
    gt_labels: Tensor,
    num_classes: int,
    center_sample_radius: float = 1.5,
) -> tuple[Tensor, Tensor]:
    """ActionFormer label assignment for one sequence.

    A point is a positive of a ground truth when it lies strictly inside both the
    segment and the centre region ``centre +- radius * stride`` (centre sampling),
    and the larger of its two distances to the boundaries is within its level's
    regression range (inclusive). A point positive for several ground truths
    takes the shortest one (ties: all of the tied classes are set).

    Args:
        points: ``(N, 4)`` from :func:`make_points` (carries the regression ranges).
        gt_segments: ``(M, 2)`` ``[start, end]`` in input-grid units.
        gt_labels: ``(M,)`` int class ids in ``[0, num_classes)``.
        num_classes: ``K``.
        center_sample_radius: centre-sampling radius in strides (``<= 0``: whole segment).

    Returns:
        ``cls_targets``: ``(N, K)`` float one-hot (all zeros for negatives);
        ``reg_targets``: ``(N, 2)`` distances to start/end in stride units (zeros for
        negatives).
    """
    n, m = points.shape[0], gt_segments.shape[0]
    dtype = points.dtype
    if m == 0:
        return points.new_zeros(n, num_classes), points.new_zeros(n, 2)
    gt = gt_segments.to(dtype)
    t, lo, hi, stride = (points[:, i, None] for i in range(4))  # each (N, 1)
    left, right = t - gt[None, :, 0], gt[None, :, 1] - t  # (N, M)
    if center_sample_radius > 0:
        centre = 0.5 * (gt[:, 0] + gt[:, 1])[None]
        c_left = t - torch.maximum(centre - center_sample_radius * stride, gt[None, :, 0])
        c_right = torch.minimum(centre + center_sample_radius * stride, gt[None, :, 1]) - t
        inside = torch.minimum(c_left, c_right) > 0
    else:
        inside = torch.minimum(left, right) > 0
    reach = torch.maximum(left, right)
    ok = inside & (reach >= lo) & (reach <= hi)
    lengths = (gt[:, 1] - gt[:, 0])[None].expand(n, m).masked_fill(~ok, float("inf"))
    min_len, min_idx = lengths.min(dim=1)
    chosen = ok & (lengths <= min_len[:, None] + 1e-3)  # (N, M): ties kept
    one_hot = F.one_hot(gt_labels.long(), num_classes).to(dtype)
    cls_targets = (chosen.to(dtype) @ one_hot).clamp_(max=1.0)
    pos = chosen.any(dim=1, keepdim=True)
    reg = torch.stack([left, right], dim=-1).gather(1, min_idx[:, None, None].expand(n, 1, 2))
    reg_targets = torch.where(pos, reg[:, 0] / stride, torch.zeros_like(reg[:, 0]))
    return cls_targets, reg_targets


def sigmoid_focal_loss(
    logits: Tensor,
    targets: Tensor,
    alpha: float = 0.25,
    gamma: float = 2.0,
    valid: Tensor | None = None,
    normalizer: Tensor | float | None = None,
) -> Tensor:
    """Sigmoid focal loss, summed and divided by a normaliser (the number of positives).

    ``FL = alpha_t * (1 - p_t)**gamma * BCE(logits, targets)`` per element
    (``alpha < 0`` disables ``alpha_t``), as ``torchvision.ops.sigmoid_focal_loss``.

    Args:
        logits: ``(..., K)`` class logits.
        targets: ``(..., K)`` targets in ``[0, 1]`` (one-hot, optionally smoothed).
        alpha: positive/negative balance.
        gamma: focusing exponent.
        valid: optional ``(...)`` bool mask of points to count.
        normalizer: divisor; default = number of (valid) points with any target > 0,
            at least 1.

    Returns:
        Scalar loss.
    """
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = loss * (alpha * targets + (1 - alpha) * (1 - targets))
    if valid is not None:
        loss = loss * valid[..., None].to(loss.dtype)
    if normalizer is None:
        pos = targets.sum(-1) > 0
        if valid is not None:
            pos = pos & valid
        normalizer = pos.sum().clamp(min=1)
    return loss.sum() / normalizer


def diou_loss_1d(
    pred_offsets: Tensor,
    target_offsets: Tensor,
    reduction: Literal["none", "sum", "mean"] = "sum",
    eps: float = 1e-8,
) -> Tensor:
    """1-D Distance-IoU loss between segments given as distances from a shared point.

    ``1 - IoU + (centre distance / enclosing length)**2``. Both segments contain
    the point, so the intersection is ``min(l) + min(r)``.

    Args:
        pred_offsets: ``(N, 2)`` non-negative ``[left, right]`` distances.
        target_offsets: ``(N, 2)`` non-negative ``[left, right]`` distances.
        reduction: ``"none"`` -> ``(N,)``, ``"sum"`` or ``"mean"`` -> scalar.
        eps: guard for empty unions / enclosures.

    Returns:
        The loss.
    """
    lp, rp = pred_offsets[..., 0], pred_offsets[..., 1]
    lg, rg = target_offsets[..., 0], target_offsets[..., 1]
    inter = torch.minimum(lp, lg) + torch.minimum(rp, rg)
    union = lp + rp + lg + rg - inter
    iou = inter / union.clamp(min=eps)
    enclose = torch.maximum(lp, lg) + torch.maximum(rp, rg)
    centre_dist = 0.5 * ((rp - lp) - (rg - lg))
    loss = 1.0 - iou + (centre_dist / enclose.clamp(min=eps)) ** 2
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        return loss.mean()
    if reduction == "none":
        return loss
    raise ValueError(f"unknown reduction {reduction!r}")


def detection_loss(
    cls_logits: Tensor,
    offsets: Tensor,
    valid: Tensor,
    cls_targets: Tensor,
    reg_targets: Tensor,
    normalizer: Tensor | float | None = None,
    reg_weight: float = 1.0,
    label_smoothing: float = 0.0,
) -> dict[str, Tensor]:
    """Focal + DIoU loss of a batch (ActionFormer's objective), no host sync.

    Args:
        cls_logits: ``(B, N, K)``.
        offsets: ``(B, N, 2)`` predicted distances (stride units).
        valid: ``(B, N)`` bool, True at non-padded points.
        cls_targets: ``(B, N, K)`` from :func:`assign_targets` (stacked).
        reg_targets: ``(B, N, 2)`` from :func:`assign_targets` (stacked).
        normalizer: divisor of both terms (default: number of positive points,
            at least 1; ActionFormer: an EMA of it).
        reg_weight: weight of the regression term.
        label_smoothing: ``eps``; class targets become ``t * (1 - eps) + eps / (K + 1)``.

    Returns:
        ``loss``, ``cls_loss``, ``reg_loss`` (scalars) and ``num_pos`` (count, tensor).
    """
    pos = (cls_targets.sum(-1) > 0) & valid
    num_pos = pos.sum()
    norm = num_pos.clamp(min=1) if normalizer is None else normalizer
    targets = cls_targets
    if label_smoothing > 0:
        targets = targets * (1 - label_smoothing) + label_smoothing / (targets.shape[-1] + 1)
    cls = sigmoid_focal_loss(cls_logits, targets, valid=valid, normalizer=norm)
    # Negatives get a dummy target so the unused terms stay finite (no NaN gradients).
    safe = torch.where(pos[..., None], reg_targets, torch.ones_like(reg_targets))
    reg = (diou_loss_1d(offsets, safe, reduction="none") * pos).sum() / norm
    return {"loss": cls + reg_weight * reg, "cls_loss": cls, "reg_loss": reg, "num_pos": num_pos}


def segment_iou(a: Tensor, b: Tensor, eps: float = 1e-8) -> Tensor:
    """Pairwise temporal IoU.

    Args:
        a: ``(N, 2)`` ``[start, end]``.
        b: ``(M, 2)`` ``[start, end]``.
        eps: guard for zero unions.

    Returns:
        ``(N, M)`` IoU.
    """
    inter = (
        torch.minimum(a[:, None, 1], b[None, :, 1]) - torch.maximum(a[:, None, 0], b[None, :, 0])
    ).clamp(min=0)
    union = (a[:, 1] - a[:, 0])[:, None] + (b[:, 1] - b[:, 0])[None] - inter
    return inter / union.clamp(min=eps)


def soft_nms(
    segments: Tensor,
    scores: Tensor,
    labels: Tensor,
    sigma: float = 0.5,
    iou_threshold: float = 0.1,
    min_score: float = 0.001,
    max_detections: int = 100,
    method: Literal["gaussian", "linear", "hard"] = "gaussian",
) -> tuple[Tensor, Tensor, Tensor]:
    """Per-class soft-NMS on 1-D segments (sync-free loop over selections).

    Repeatedly select the highest remaining score, then decay the scores of the
    remaining segments *of the same class* by ``w(iou)``: Gaussian
    ``exp(-iou**2 / sigma)``, linear ``1 - iou`` if ``iou > iou_threshold``, hard
    ``0`` if ``iou > iou_threshold``. Scores below ``min_score`` are removed.

    Args:
        segments: ``(N, 2)`` ``[start, end]``.
        scores: ``(N,)``.
        labels: ``(N,)`` class ids.
        sigma: Gaussian decay parameter.
        iou_threshold: overlap threshold of the linear and hard methods.
        min_score: scores below this are dropped.
        max_detections: maximum number of kept segments.
        method: ``"gaussian"`` (ActionFormer default), ``"linear"`` or ``"hard"``.

    Returns:
        ``segments (M, 2)``, decayed ``scores (M,)``, ``labels (M,)``, by descending score.
    """
    if method not in ("gaussian", "linear", "hard"):
        raise ValueError(f"unknown soft-NMS method {method!r}")
    steps = min(segments.shape[0], max_detections)
    neg_inf = torch.tensor(float("-inf"), device=scores.device, dtype=scores.dtype)
    alive = scores >= min_score
    work = torch.where(alive, scores, neg_inf)
    sel_idx = torch.zeros(steps, dtype=torch.long, device=scores.device)
    sel_score = torch.full((steps,), float("-inf"), dtype=scores.dtype, device=scores.device)
    for i in range(steps):
        j = work.argmax()
        sel_idx[i] = j
        sel_score[i] = work[j]
        iou = segment_iou(segments[j][None], segments)[0] * (labels == labels[j])
        if method == "gaussian":
            w = torch.exp(-(iou * iou) / sigma)
        elif method == "linear":
            w = torch.where(iou > iou_threshold, 1.0 - iou, torch.ones_like(iou))
        else:
            w = (iou <= iou_threshold).to(iou.dtype)
        work = work * w
        alive = alive & (work >= min_score)
        alive[j] = False
        work = torch.where(alive, work, neg_inf)
    keep = sel_score >= min_score
    idx = sel_idx[keep]
    return segments[idx], sel_score[keep], labels[idx]


def batched_nms_1d(
    segments: Tensor,
    scores: Tensor,
    labels: Tensor,
    iou_threshold: float = 0.5,
    min_score: float = 0.0,
    max_detections: int = 100,
) -> tuple[Tensor, Tensor, Tensor]:
    """Per-class hard NMS via ``torchvision.ops.batched_nms`` on segments as unit-height boxes.

    A segment ``[s, e]`` becomes the box ``[s, 0, e, 1]``, whose box IoU equals the
    temporal IoU. Segments with IoU ``> iou_threshold`` to a higher-scored one of
    the same class are discarded.

    Args:
        segments: ``(N, 2)`` ``[start, end]``.
        scores: ``(N,)``.
        labels: ``(N,)`` class ids.
        iou_threshold: suppression threshold.
        min_score: scores below this are dropped first.
        max_detections: maximum number of kept segments.

    Returns:
        ``segments (M, 2)``, ``scores (M,)``, ``labels (M,)`` by descending score.
    """
    keep = scores >= min_score
    segments, scores, labels = segments[keep], scores[keep], labels[keep]
    zeros = torch.zeros_like(segments[:, 0])
    boxes = torch.stack([segments[:, 0], zeros, segments[:, 1], zeros + 1], dim=1)
    idx = torchvision.ops.batched_nms(boxes, scores, labels, iou_threshold)[:max_detections]
    return segments[idx], scores[idx], labels[idx]


@torch.no_grad()
def postprocess(
    points: Tensor,
    cls_logits: Tensor,
    offsets: Tensor,
    valid: Tensor | None = None,
    pre_nms_thresh: float = 0.001,
    pre_nms_topk: int = 5000,
    min_duration: float = 0.05,
    nms: Literal["soft", "hard"] = "soft",
    iou_threshold: float = 0.1,
    sigma: float = 0.5,
    min_score: float = 0.001,
    max_detections: int = 100,
) -> tuple[Tensor, Tensor, Tensor]:
    """Detections of one sequence: score threshold -> top-k -> decode -> NMS.

    Args:
        points: ``(N, 4)`` from :func:`make_points`.
        cls_logits: ``(N, K)`` logits of one sequence.
        offsets: ``(N, 2)`` distances of one sequence (stride units).
        valid: optional ``(N,)`` bool mask of non-padded points.
        pre_nms_thresh: minimum sigmoid score of a (point, class) candidate.
        pre_nms_topk: maximum candidates entering NMS.
        min_duration: minimum segment length (input-grid units).
        nms: ``"soft"`` (:func:`soft_nms`, Gaussian) or ``"hard"`` (:func:`batched_nms_1d`).
        iou_threshold: NMS threshold (hard NMS; unused by Gaussian soft-NMS).
        sigma: Gaussian soft-NMS parameter.
        min_score: minimum score after NMS.
        max_detections: maximum number of detections.

    Returns:
        ``segments (M, 2)`` in input-grid units, ``scores (M,)``, ``labels (M,)``.
    """
    k = cls_logits.shape[-1]
    offsets = offsets.to(torch.promote_types(offsets.dtype, torch.float32))  # bf16 -> fp32 times
    probs = torch.sigmoid(cls_logits.to(offsets.dtype))
    if valid is not None:
        probs = probs.masked_fill(~valid[:, None], 0.0)
    flat = probs.flatten()
    cand = torch.nonzero(flat > pre_nms_thresh).squeeze(1)
    top_scores, order = flat[cand].topk(min(pre_nms_topk, cand.numel()))
    cand = cand[order]
    pt, labels = cand // k, cand % k
    segments = decode(points[pt], offsets[pt])
    long_enough = (segments[:, 1] - segments[:, 0]) > min_duration
    segments, top_scores, labels = (
        segments[long_enough],
        top_scores[long_enough],
        labels[long_enough],
    )
    if nms == "soft":
        return soft_nms(
            segments, top_scores, labels, sigma, iou_threshold, min_score, max_detections
        )
    if nms == "hard":
        return batched_nms_1d(
            segments, top_scores, labels, iou_threshold, min_score, max_detections
        )
    raise ValueError(f"nms must be 'soft' or 'hard', got {nms!r}")
