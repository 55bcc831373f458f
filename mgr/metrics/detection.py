"""Detection metrics for untrimmed (online) micro-gesture recognition.

Two torchmetrics metrics score the ``(label, start, end)`` segments that an online
detector predicts in untrimmed videos against the annotated gestures:

* :class:`OnlineF1`: the SMG / MiGA "online recognition" F1 of the official SMG start
  kit (``THDutils.py::tester_SMG``): a ground-truth (GT) segment is recognised when a
  prediction of the same label overlaps it with :func:`temporal_iou` ``> 0.3``; counts
  are pooled over all videos (micro-average).
* :class:`TemporalMAP`: the ActivityNet / THUMOS temporal-detection mAP (the protocol of
  ActionFormer's and mmaction2's ``compute_average_precision_detection``), averaged over
  tIoU thresholds ``0.3:0.7:0.1``, with :func:`segment_iou`.

Both take one dict per video::

    preds = [{"segments": (P, 2) start/end, "labels": (P,), "scores": (P,)}, ...]
    targets = [{"segments": (G, 2) start/end, "labels": (G,)}, ...]

Segments are ``[start, end]`` in frames (or seconds), ``start <= end``.

IoU definitions. The start kit computes, on raw frame indices and without ``+1``::

    alpha = (min(e_p, e_g) - max(s_p, s_g)) / (max(e_p, e_g) - min(s_p, s_g))

i.e. intersection over the *hull* of the two segments. ActivityNet computes
``inter / union`` with ``inter = max(0, min(e) - max(s))`` and
``union = (e_p - s_p) + (e_g - s_g) - inter``. For overlapping (or touching) segments
the union is one interval, which *is* the hull, so the two agree; for disjoint segments
the start kit's numerator is negative (``-gap / hull``) while ActivityNet gives 0 -- both
fail every non-negative threshold. :func:`temporal_iou` clamps the intersection at 0, so
mathematically ``temporal_iou == segment_iou`` everywhere; in floating point they agree
exactly on integer frame indices and up to rounding on real-valued times (the hull is
``max - min``, the union ``len_a + len_b - inter``). Each metric uses its own protocol's
formula so that thresholds compare bit-for-bit like the reference code. Zero-length
segments have IoU 0 with everything (including themselves: 0 / 0 is defined as 0, where
the start kit produces NaN, which also never passes ``> 0.3``). Because there is no
``+1``, a segment covering frames ``s..e`` inclusive counts as length ``e - s``: a
one-frame prediction ``[5, 5]`` never hits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

__all__ = [
    "DEFAULT_TIOU_THRESHOLDS",
    "OnlineF1",
    "TemporalMAP",
    "interpolated_average_precision",
    "segment_iou",
    "temporal_iou",
]

DEFAULT_TIOU_THRESHOLDS: tuple[float, ...] = (0.3, 0.4, 0.5, 0.6, 0.7)
"""tIoU thresholds of :class:`TemporalMAP` (THUMOS-style ``0.3:0.7:0.1``)."""


def _float_pair(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    a, b = torch.as_tensor(a), torch.as_tensor(b)
    dtype = torch.promote_types(a.dtype, b.dtype)
    if not dtype.is_floating_point:
        dtype = torch.float64  # frame indices: exact
    return a.to(dtype).reshape(-1, 2), b.to(dtype).reshape(-1, 2)


def temporal_iou(a: Tensor, b: Tensor) -> Tensor:
    """Pairwise temporal IoU of the SMG start kit (intersection over hull, no ``+1``).

    ``iou[i, j] = max(0, min(e_i, e_j) - max(s_i, s_j)) / (max(e_i, e_j) - min(s_i, s_j))``.
    Disjoint segments give 0 (the start kit's unclamped value is negative there);
    a zero denominator (two zero-length segments at the same point) gives 0, not NaN.
    For overlapping segments this equals :func:`segment_iou` (see the module docstring).

    Args:
        a: ``(N, 2)`` segments ``[start, end]``.
        b: ``(M, 2)`` segments ``[start, end]``.

    Returns:
        ``(N, M)`` IoU in ``[0, 1]``; float64 for integer inputs, else the promoted
        floating dtype of the inputs.
    """
    a, b = _float_pair(a, b)
    sa, ea = a[:, 0, None], a[:, 1, None]
    sb, eb = b[None, :, 0], b[None, :, 1]
    inter = (torch.minimum(ea, eb) - torch.maximum(sa, sb)).clamp(min=0)
    hull = torch.maximum(ea, eb) - torch.minimum(sa, sb)
    pos = hull > 0
    return torch.where(pos, inter / torch.where(pos, hull, torch.ones_like(hull)), 0.0)


def segment_iou(a: Tensor, b: Tensor) -> Tensor:
    """Pairwise ActivityNet temporal IoU ``inter / union`` (continuous time).

    ``inter = max(0, min(e_i, e_j) - max(s_i, s_j))`` and
    ``union = (e_i - s_i) + (e_j - s_j) - inter``; a zero union gives 0, not NaN.

    Args:
        a: ``(N, 2)`` segments ``[start, end]``.
        b: ``(M, 2)`` segments ``[start, end]``.

    Returns:
        ``(N, M)`` IoU in ``[0, 1]``; float64 for integer inputs, else the promoted
        floating dtype of the inputs.
    """
    a, b = _float_pair(a, b)
    sa, ea = a[:, 0, None], a[:, 1, None]
    sb, eb = b[None, :, 0], b[None, :, 1]
    inter = (torch.minimum(ea, eb) - torch.maximum(sa, sb)).clamp(min=0)
    union = (ea - sa) + (eb - sb) - inter
    pos = union > 0
    return torch.where(pos, inter / torch.where(pos, union, torch.ones_like(union)), 0.0)


def interpolated_average_precision(precision: Tensor, recall: Tensor) -> Tensor:
    """ActivityNet's ``interpolated_prec_rec`` (VOC-2011 AP), vectorised over columns.

    Pads ``precision`` with 0 and ``recall`` with 0 / 1 at both ends, replaces precision
    by its monotone envelope (``p[i] = max(p[i:])``) and sums
    ``(r[i] - r[i - 1]) * p[i]`` over the recall steps.

    Args:
        precision: ``(N,)`` or ``(N, T)`` precision after each of ``N`` ranked
            detections (``T`` independent curves, e.g. one per tIoU threshold).
        recall: same shape as ``precision``, non-decreasing along dim 0.

    Returns:
        ``()`` or ``(T,)`` average precision.
    """
    squeeze = precision.ndim == 1
    p = precision.reshape(precision.shape[0], -1)
    r = recall.reshape(recall.shape[0], -1)
    zeros = p.new_zeros(1, p.shape[1])
    mprec = torch.cat([zeros, p, zeros])
    mrec = torch.cat([zeros, r, torch.ones_like(zeros)])
    mprec = mprec.flip(0).cummax(0).values.flip(0)
    ap = ((mrec[1:] - mrec[:-1]) * mprec[1:]).sum(0)
    return ap[0] if squeeze else ap


def _video(
    item: Mapping[str, Any], scores: bool, where: str
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Validate one video dict -> CPU ``(N, 2)`` float64 segments, int64 labels, scores."""
    try:
        seg = torch.as_tensor(item["segments"]).detach().cpu()
        lab = torch.as_tensor(item["labels"]).detach().cpu()
    except KeyError as err:
        raise ValueError(f"{where}: missing key {err} (need 'segments' and 'labels')") from None
    if seg.numel() == 0:
        seg = seg.reshape(0, 2)
    if seg.ndim != 2 or seg.shape[1] != 2:
        raise ValueError(f"{where}: 'segments' must have shape (N, 2), got {tuple(seg.shape)}")
    lab = lab.reshape(-1)
    if lab.numel() != seg.shape[0]:
        raise ValueError(f"{where}: {seg.shape[0]} segments but {lab.numel()} labels")
    if lab.is_floating_point() and not torch.equal(lab, lab.round()):
        raise ValueError(f"{where}: 'labels' must be integer class ids")
    seg = seg.to(torch.float64)
    if bool((seg[:, 1] < seg[:, 0]).any()):
        raise ValueError(f"{where}: a segment ends before it starts (need start <= end)")
    sc = None
    if scores and "scores" in item:
        sc = torch.as_tensor(item["scores"]).detach().cpu().to(torch.float64).reshape(-1)
        if sc.numel() != seg.shape[0]:
            raise ValueError(f"{where}: {seg.shape[0]} segments but {sc.numel()} scores")
    return seg, lab.to(torch.int64), sc


def _check_lengths(preds: Sequence[Any], targets: Sequence[Any]) -> None:
    if len(preds) != len(targets):
        raise ValueError(f"got {len(preds)} prediction dicts but {len(targets)} target dicts")


class OnlineF1(Metric):
    """SMG online-recognition F1, pooled over videos (micro-average).

    A GT segment ``(label, s, e)`` is a *hit* when a prediction with the same label has
    :func:`temporal_iou` strictly greater than ``iou_threshold``. Over all videos seen::

        recall = hits / num_gts,  precision = hits / num_preds,  f1 = 2 P R / (P + R)

    Matching, per video:

    * ``one_to_one=True`` (default): greedy one-to-one. GTs are visited in the order
      given; each takes the unmatched same-label prediction with IoU ``> iou_threshold``
      that has the highest score (ties -> the earlier prediction in the given order;
      without ``"scores"`` the given order decides) and that prediction is removed. Greedy
      in GT order is not an optimal assignment: an earlier GT can take the prediction a
      later GT needed.
    * ``one_to_one=False``: the start kit exactly. For each GT, the first prediction in
      the given order with the same label and IoU ``> iou_threshold`` counts; predictions
      are never removed (the kit's ``numpy.delete`` results are discarded), so one
      prediction can hit several GTs and ``precision`` can exceed 1.

    Empty cases: ``precision = 0`` when there are no predictions, ``recall = 0`` when
    there are no GTs, ``f1 = 0`` when ``precision + recall = 0``; never NaN. The start kit
    instead adds ``1e-7`` to the F1 denominator (a difference below ``1e-6`` otherwise).

    Matching runs on CPU in float64 inside :meth:`update`; only three integer counters
    are kept (``dist_reduce_fx="sum"``), so the metric is cheap to sync under DDP.

    Args:
        iou_threshold: a match needs IoU strictly greater than this (start kit: 0.3).
        one_to_one: greedy one-to-one matching by score (``True``) or the start kit's
            matching, which lets a prediction hit several GTs (``False``).
        **kwargs: forwarded to :class:`torchmetrics.Metric`.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    hits: Tensor
    num_preds: Tensor
    num_gts: Tensor

    def __init__(self, iou_threshold: float = 0.3, one_to_one: bool = True, **kwargs: Any):
        super().__init__(**kwargs)
        if not 0.0 <= iou_threshold < 1.0:
            raise ValueError(f"iou_threshold must be in [0, 1), got {iou_threshold}")
        self.iou_threshold = float(iou_threshold)
        self.one_to_one = bool(one_to_one)
        for name in ("hits", "num_preds", "num_gts"):
            self.add_state(name, torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    @property
    def rule(self) -> str:
        """The matching rule in words, printed next to every F1.

        Scores under other rules or thresholds are not comparable.
        """
        match = (
            "one-to-one greedy matching by score"
            if self.one_to_one
            else "start-kit matching (one prediction may hit several instances)"
        )
        return f"same label and tIoU > {self.iou_threshold:g} (intersection over hull), {match}"

    def _video_hits(self, pred: Mapping[str, Any], target: Mapping[str, Any], i: int) -> int:
        p_seg, p_lab, p_sc = _video(pred, scores=True, where=f"preds[{i}]")
        g_seg, g_lab, _ = _video(target, scores=False, where=f"targets[{i}]")
        if p_seg.shape[0] == 0 or g_seg.shape[0] == 0:
            return 0
        iou = temporal_iou(g_seg, p_seg)  # (G, P)
        valid = (g_lab[:, None] == p_lab[None, :]) & (iou > self.iou_threshold)
        if not self.one_to_one:
            return int(valid.any(dim=1).sum())
        if p_sc is not None:
            order = torch.argsort(p_sc, descending=True, stable=True)
            valid = valid[:, order]
        valid_np = valid.numpy()
        free = np.ones(valid_np.shape[1], dtype=bool)
        hits = 0
        for row in valid_np:
            cand = row & free
            j = int(cand.argmax())  # first True = highest score among candidates
            if cand[j]:
                free[j] = False
                hits += 1
        return hits

    def update(
        self, preds: Sequence[Mapping[str, Tensor]], targets: Sequence[Mapping[str, Tensor]]
    ) -> None:
        """Match the predictions of a batch of videos and add to the pooled counts.

        Args:
            preds: one dict per video: ``"segments"`` ``(P, 2)`` ``[start, end]`` frames,
                ``"labels"`` ``(P,)`` class ids, optional ``"scores"`` ``(P,)`` (used only
                by ``one_to_one=True`` to rank predictions).
            targets: one dict per video, same order: ``"segments"`` ``(G, 2)``,
                ``"labels"`` ``(G,)``.
        """
        _check_lengths(preds, targets)
        hits = n_pred = n_gt = 0
        for i, (pred, target) in enumerate(zip(preds, targets, strict=True)):
            hits += self._video_hits(pred, target, i)
            n_pred += int(torch.as_tensor(pred["labels"]).numel())
            n_gt += int(torch.as_tensor(target["labels"]).numel())
        self.hits += hits
        self.num_preds += n_pred
        self.num_gts += n_gt

    def compute(self) -> dict[str, Tensor]:
        """Pooled scores.

        Returns:
            ``f1``, ``precision``, ``recall`` (float scalars) and ``hits``,
            ``num_preds``, ``num_gts`` (int64 scalars).
        """
        hits = self.hits.double()
        n_pred, n_gt = self.num_preds.double(), self.num_gts.double()
        precision = torch.where(n_pred > 0, hits / n_pred.clamp(min=1), 0.0)
        recall = torch.where(n_gt > 0, hits / n_gt.clamp(min=1), 0.0)
        denom = precision + recall
        f1 = torch.where(denom > 0, 2 * precision * recall / torch.where(denom > 0, denom, 1), 0)
        dtype = self.dtype
        return {
            "f1": f1.to(dtype),
            "precision": precision.to(dtype),
            "recall": recall.to(dtype),
            "hits": self.hits.clone(),
            "num_preds": self.num_preds.clone(),
            "num_gts": self.num_gts.clone(),
        }


def _threshold_key(t: float) -> str:
    return f"mAP@{round(float(t), 6):g}"


class TemporalMAP(Metric):
    """ActivityNet-style temporal detection mAP, averaged over tIoU thresholds.

    Per class ``c`` and threshold ``t`` (ActionFormer / mmaction2
    ``compute_average_precision_detection``): all predictions of class ``c`` (all videos)
    are ranked by score, descending (a stable sort: ties keep the order of ``update``
    calls and, within a video, the given order). Walking down the ranking, a prediction
    is a true positive when, among the not-yet-matched GTs of class ``c`` *in its own
    video*, the one with the highest :func:`segment_iou` has IoU ``>= t`` (ties -> the
    earlier GT); that GT is then locked for threshold ``t``. Otherwise it is a false
    positive. ``AP_c(t)`` is the interpolated AP (:func:`interpolated_average_precision`)
    of the cumulative precision ``TP / (TP + FP)`` and recall ``TP / #GT_c``.

    ``mAP@t`` is the mean of ``AP_c(t)`` over the classes that have at least one GT
    (predictions of classes without GTs are ignored, as in ActivityNet; a class with GTs
    but no predictions has AP 0). ``mAP`` is the mean over thresholds. With no GT at all
    every value is 0 (never NaN).

    Note the thresholds are inclusive (``>=``, ActivityNet), unlike :class:`OnlineF1`'s
    strict ``>`` of the SMG start kit.

    States and DDP: the TP/FP outcome of a prediction depends only on the higher-scoring
    predictions *of the same video and class*, so :meth:`update` does the per-video
    matching (CPU, float64 IoU) and stores, per prediction, its score, label and one
    hit flag per threshold; the GT labels are stored to count GTs per class. These are
    1-D list states (``dist_reduce_fx="cat"``); :meth:`compute` only ranks and
    accumulates. Matching therefore never crosses videos and no process-unique video id
    is needed. All list states are kept in the metric's float dtype (so that a process
    without data, which torchmetrics pads with an empty ``self.dtype`` tensor, gathers
    with the same dtype); scores are rounded to that dtype *before* matching, so ranking
    in :meth:`update` and :meth:`compute` agree. Labels must be below ``2**24``
    (exact in float32).

    Args:
        iou_thresholds: tIoU thresholds, each in ``(0, 1]``.
        **kwargs: forwarded to :class:`torchmetrics.Metric`.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    pred_scores: list[Tensor]
    pred_labels: list[Tensor]
    pred_hits: list[Tensor]
    gt_labels: list[Tensor]

    def __init__(
        self, iou_thresholds: Sequence[float] = DEFAULT_TIOU_THRESHOLDS, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        thr = [float(t) for t in iou_thresholds]
        if not thr or any(not 0.0 < t <= 1.0 for t in thr):
            raise ValueError(f"iou_thresholds must be non-empty values in (0, 1], got {thr}")
        keys = [_threshold_key(t) for t in thr]
        if len(set(keys)) != len(keys):
            raise ValueError(f"duplicate iou_thresholds: {thr}")
        self.iou_thresholds = tuple(thr)
        for name in ("pred_scores", "pred_labels", "pred_hits", "gt_labels"):
            self.add_state(name, [], dist_reduce_fx="cat")

    def _match_video(
        self, p_seg: Tensor, p_lab: Tensor, p_sc: Tensor, g_seg: Tensor, g_lab: Tensor
    ) -> np.ndarray:
        """Per-prediction hit flags ``(P, T)`` of one video (ActivityNet greedy)."""
        thr = np.asarray(self.iou_thresholds)
        n_thr = thr.shape[0]
        hits = np.zeros((p_seg.shape[0], n_thr), dtype=bool)
        if p_seg.shape[0] == 0 or g_seg.shape[0] == 0:
            return hits
        rows = np.arange(n_thr)
        p_lab_np, g_lab_np, p_sc_np = p_lab.numpy(), g_lab.numpy(), p_sc.numpy()
        for c in np.unique(p_lab_np):
            g_idx = np.flatnonzero(g_lab_np == c)
            if g_idx.size == 0:
                continue
            p_idx = np.flatnonzero(p_lab_np == c)
            p_idx = p_idx[np.argsort(-p_sc_np[p_idx], kind="stable")]
            iou = segment_iou(p_seg[p_idx], g_seg[g_idx]).numpy()  # (Pc, Gc)
            locked = np.zeros((n_thr, g_idx.size), dtype=bool)
            for k in np.flatnonzero(iou.max(axis=1) >= thr.min()):
                cand = (iou[k][None, :] >= thr[:, None]) & ~locked  # (T, Gc)
                best = np.where(cand, iou[k][None, :], -1.0).argmax(axis=1)  # first max
                ok = cand[rows, best]
                locked[rows[ok], best[ok]] = True
                hits[p_idx[k], ok] = True
        return hits

    def update(
        self, preds: Sequence[Mapping[str, Tensor]], targets: Sequence[Mapping[str, Tensor]]
    ) -> None:
        """Match the predictions of a batch of videos and store per-prediction outcomes.

        Args:
            preds: one dict per video: ``"segments"`` ``(P, 2)`` ``[start, end]``,
                ``"labels"`` ``(P,)`` class ids, ``"scores"`` ``(P,)`` confidences.
            targets: one dict per video, same order: ``"segments"`` ``(G, 2)``,
                ``"labels"`` ``(G,)``.
        """
        _check_lengths(preds, targets)
        dtype, device = self.dtype, self.device
        scores, labels, hits, gts = [], [], [], []
        for i, (pred, target) in enumerate(zip(preds, targets, strict=True)):
            p_seg, p_lab, p_sc = _video(pred, scores=True, where=f"preds[{i}]")
            g_seg, g_lab, _ = _video(target, scores=False, where=f"targets[{i}]")
            if p_sc is None:
                raise ValueError(f"preds[{i}]: TemporalMAP needs 'scores'")
            p_sc = p_sc.to(dtype).to(torch.float64)  # rank exactly as compute() will
            for lab, name in ((p_lab, "preds"), (g_lab, "targets")):
                if not torch.equal(lab.to(dtype).to(torch.int64), lab):
                    raise ValueError(f"{name}[{i}]: labels not exactly representable in {dtype}")
            hits.append(torch.from_numpy(self._match_video(p_seg, p_lab, p_sc, g_seg, g_lab)))
            scores.append(p_sc)
            labels.append(p_lab)
            gts.append(g_lab)
        if not scores:
            return
        self.pred_scores.append(torch.cat(scores).to(device=device, dtype=dtype))
        self.pred_labels.append(torch.cat(labels).to(device=device, dtype=dtype))
        self.pred_hits.append(torch.cat(hits).reshape(-1).to(device=device, dtype=dtype))
        self.gt_labels.append(torch.cat(gts).to(device=device, dtype=dtype))

    def compute(self) -> dict[str, Tensor]:
        """Rank, accumulate and average.

        Returns:
            ``mAP`` (mean over thresholds) and ``mAP@<t>`` for each threshold, e.g.
            ``mAP@0.3`` ... ``mAP@0.7``; float scalars.
        """
        n_thr = len(self.iou_thresholds)

        def cat(state: list[Tensor] | Tensor) -> Tensor:
            if isinstance(state, list) and not state:
                return torch.zeros(0, dtype=torch.float64)
            return dim_zero_cat(state).detach().cpu().to(torch.float64)

        scores, labels = cat(self.pred_scores), cat(self.pred_labels).long()
        hits = cat(self.pred_hits).reshape(-1, n_thr)
        gt_labels = cat(self.gt_labels).long()
        classes, n_pos = torch.unique(gt_labels, return_counts=True)
        ap = torch.zeros(classes.numel(), n_thr, dtype=torch.float64)
        for ci, (c, npos) in enumerate(zip(classes.tolist(), n_pos.tolist(), strict=True)):
            mask = labels == c
            if not bool(mask.any()):
                continue
            order = torch.argsort(scores[mask], descending=True, stable=True)
            h = hits[mask][order]  # (Pc, T)
            tp = h.cumsum(0)
            fp = (1.0 - h).cumsum(0)
            ap[ci] = interpolated_average_precision(tp / (tp + fp), tp / npos)
        per_thr = ap.mean(0) if classes.numel() else torch.zeros(n_thr, dtype=torch.float64)
        out = {"mAP": per_thr.mean()}
        out.update({_threshold_key(t): per_thr[k] for k, t in enumerate(self.iou_thresholds)})
        return {k: v.to(device=self.device, dtype=self.dtype) for k, v in out.items()}
