"""Fusion's maths: soft voting, temperature fitting, the scores, the weight search.

No files here: arrays of probabilities ``(N, K)`` in, numbers out (see :mod:`mgr.fusion`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torchmetrics import Metric
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassCalibrationError,
    MulticlassF1Score,
)

from mgr.metrics import F1Mean

__all__ = [
    "DEFAULT_GRID",
    "METHODS",
    "SCORES",
    "WeightSearch",
    "fit_temperature",
    "fuse_probs",
    "metrics",
    "search_weights",
]


DEFAULT_GRID: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
METHODS: tuple[str, ...] = ("mean", "weighted", "temperature")
#: Metrics that weights and methods can be selected by (higher is better); ``f1_mean``
#: (MA-52's official ranking metric, :class:`~mgr.metrics.F1Mean`) only on MA-52's classes.
SCORES: tuple[str, ...] = ("top1", "top5", "macro_f1", "f1_mean")
TAU_RANGE: tuple[float, float] = (0.05, 20.0)
_EPS = 1e-12  # floor of probabilities inside logs
_TIE = 1e-12  # score differences below this are ties


# --------------------------------------------------------------------------- core maths


def _softmax(logits: np.ndarray, tau: float = 1.0) -> np.ndarray:
    """Row-wise ``softmax(logits / tau)`` in float64, ``(N, K) -> (N, K)``."""
    z = np.asarray(logits, dtype=np.float64) / tau
    z = z - z.max(axis=1, keepdims=True)  # shift for stability; softmax is shift-invariant
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _per_model(value: Sequence[float] | float, n_models: int, what: str) -> list[float]:
    """Broadcast a scalar to one value per model, or check a sequence's length."""
    if isinstance(value, int | float):
        return [float(value)] * n_models
    values = [float(v) for v in value]
    if len(values) != n_models:
        raise ValueError(f"{len(values)} {what} for {n_models} models")
    return values


def _normalise(weights: Sequence[float]) -> tuple[float, ...]:
    """Check that weights are non-negative and not all zero; scale them to sum to 1."""
    w = np.asarray(weights, dtype=np.float64)
    if np.any(w < 0) or not np.any(w > 0):
        raise ValueError(f"weights must be non-negative and not all zero, got {list(weights)}")
    return tuple(float(x) for x in w / w.sum())


def fuse_probs(
    logits_list: Sequence[np.ndarray],
    weights: Sequence[float],
    temperatures: Sequence[float] | float = 1.0,
) -> np.ndarray:
    """Weighted average of temperature-scaled softmax probabilities.

    ``sum_m W_m softmax(z_m / tau_m) / sum_m W_m``; with every ``tau = 1`` this is the
    MM-Gesture weighted average of probabilities.

    Args:
        logits_list: ``M`` arrays of logits, each ``(N, K)``, rows aligned.
        weights: ``M`` non-negative weights, not all zero (normalised here).
        temperatures: one ``tau > 0`` for all models, or ``M`` of them.

    Returns:
        ``(N, K)`` float64 fused probabilities.
    """
    if not logits_list:
        raise ValueError("nothing to fuse: no logits given")
    shapes = {np.shape(z) for z in logits_list}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise ValueError(f"logits must all be (N, K) of one shape, got {sorted(shapes)}")
    w = _normalise(_per_model(weights, len(logits_list), "weights"))
    taus = _per_model(temperatures, len(logits_list), "temperatures")
    if min(taus) <= 0:
        raise ValueError(f"temperatures must be positive, got {taus}")
    return sum(wm * _softmax(z, t) for wm, z, t in zip(w, logits_list, taus, strict=True))


def fit_temperature(
    logits: np.ndarray, labels: np.ndarray, tau_range: tuple[float, float] = TAU_RANGE
) -> float:
    """Temperature that minimises the NLL of ``softmax(logits / tau)`` (temperature scaling).

    Optimises ``log tau`` (so tau stays positive) with L-BFGS; samples labelled ``-1``
    are ignored.

    Args:
        logits: ``(N, K)`` logits.
        labels: ``(N,)`` class ids, ``-1`` where unknown.
        tau_range: the result is clamped to this range: separable data drives the
            NLL optimum towards ``tau -> 0``, uninformative logits towards ``tau -> inf``.

    Returns:
        The fitted temperature; ``> 1`` means the model was overconfident.
    """
    labels = np.asarray(labels)
    known = labels >= 0
    if not known.any():
        raise ValueError("fit_temperature needs labelled samples, all labels are -1")
    z = torch.as_tensor(np.asarray(logits)[known], dtype=torch.float64)
    y = torch.as_tensor(labels[known], dtype=torch.long)
    log_tau = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_tau], lr=1.0, max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(z / log_tau.exp(), y)
        loss.backward()
        return loss

    opt.step(closure)
    return float(np.clip(math.exp(log_tau.item()), *tau_range))


# --------------------------------------------------------------------------- metrics


def _make_metric(name: str, num_classes: int, n_bins: int = 15) -> Metric:
    """A standalone torchmetrics metric by ``mgr`` name (no MetricCollection needed)."""
    if name == "top1":
        return MulticlassAccuracy(num_classes, top_k=1, average="micro")
    if name == "top5":
        return MulticlassAccuracy(num_classes, top_k=min(5, num_classes), average="micro")
    if name == "macro_f1":
        return MulticlassF1Score(num_classes, average="macro")
    if name == "ece":
        return MulticlassCalibrationError(num_classes, n_bins=n_bins, norm="l1")
    if name == "f1_mean":
        if num_classes != 52:
            raise ValueError(f"f1_mean is MA-52's metric (52 classes), not for {num_classes}")
        return _F1MeanScore()
    raise ValueError(f"unknown metric {name!r}; choose from {[*SCORES, 'ece']}")


class _F1MeanScore(F1Mean):
    """:class:`~mgr.metrics.F1Mean` reduced to its ``f1_mean`` scalar (a selection score)."""

    def compute(self) -> torch.Tensor:  # type: ignore[override]
        return super().compute()["f1_mean"]


def _evaluate(metric: Metric, probs: torch.Tensor, labels: torch.Tensor) -> float:
    """Value of a (reused) metric on one set of predictions."""
    metric.reset()
    metric.update(probs, labels)
    return float(metric.compute())


def _tensors(probs: np.ndarray, labels: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Probabilities ``(N, K)`` and labels ``(N,)`` as tensors, checking labels are known."""
    p = torch.as_tensor(np.asarray(probs), dtype=torch.float64)
    y = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    if p.ndim != 2 or y.shape != (p.shape[0],):
        raise ValueError(f"expected probs (N, K) and labels (N,), got {p.shape} and {y.shape}")
    if y.numel() == 0 or bool((y < 0).any()):
        raise ValueError("metrics need every sample labelled (labels >= 0)")
    return p, y


def metrics(
    probs: np.ndarray, labels: np.ndarray, n_bins: int = 15, ma52: bool = False
) -> dict[str, float]:
    """Classification and calibration metrics of probabilities.

    Args:
        probs: ``(N, K)`` class probabilities.
        labels: ``(N,)`` class ids (all known).
        n_bins: confidence bins of the expected calibration error.
        ma52: the classes are MA-52's: add its official ``f1_mean``, the four F1 scores
            it averages and the body-part top-1 (:class:`~mgr.metrics.F1Mean`).

    Returns:
        ``top1`` and ``top5`` accuracy (over samples; top-``min(5, K)``), ``macro_f1``
        (mean over the classes that occur in labels or predictions), ``nll`` (mean
        negative log-likelihood of the true class) and ``ece`` (15-bin, L1); with
        ``ma52`` also ``f1_mean``, ``fine_micro_f1``, ``fine_macro_f1``,
        ``coarse_micro_f1``, ``coarse_macro_f1`` and ``body_top1``.
    """
    p, y = _tensors(probs, labels)
    names = [n for n in SCORES if n != "f1_mean"]
    out = {name: _evaluate(_make_metric(name, p.shape[1], n_bins), p, y) for name in names}
    if ma52:
        f1 = F1Mean()
        f1.update(p, y)
        out.update({k: float(v) for k, v in f1.compute().items()})
    out["nll"] = float(-p[torch.arange(len(y)), y].clamp_min(_EPS).log().mean())
    out["ece"] = _evaluate(_make_metric("ece", p.shape[1], n_bins), p, y)
    return out


def _top1_standard_error(probs: np.ndarray, labels: np.ndarray) -> float:
    """Standard error ``sqrt(p (1 - p) / N)`` of the top-1 accuracy ``p`` on ``N`` samples."""
    p, y = _tensors(probs, labels)
    acc = _evaluate(_make_metric("top1", p.shape[1]), p, y)
    return math.sqrt(acc * (1.0 - acc) / len(y))


# --------------------------------------------------------------------------- weight search


@dataclass(frozen=True)
class WeightSearch:
    """Outcome of :func:`search_weights`.

    Attributes:
        weights: chosen weights (sum 1), one per model.
        score: their validation score.
        uniform_score: validation score of equal weights.
        kept_uniform: whether the overfitting guard kept the equal weights although the
            grid held better ones.
        min_gain: the margin the best grid weights had to beat ``uniform_score`` by.
        best_weights: the grid's best weights (``weights`` unless the guard kept uniform).
        best_score: their validation score.
    """

    weights: tuple[float, ...]
    score: float
    uniform_score: float
    kept_uniform: bool
    min_gain: float
    best_weights: tuple[float, ...]
    best_score: float


def _weight_grid(n_models: int, grid: Sequence[float]) -> list[tuple[float, ...]]:
    """Every normalised, distinct weight vector with entries from ``grid`` (none all zero)."""
    if any(g < 0 for g in grid) or not any(g > 0 for g in grid):
        raise ValueError(f"grid values must be non-negative with one positive, got {list(grid)}")
    seen: dict[tuple[float, ...], tuple[float, ...]] = {}
    for combo in itertools.product(sorted(set(grid)), repeat=n_models):
        if any(c > 0 for c in combo):
            w = _normalise(combo)
            # (1, 1) and (0.5, 0.5) are the same vote: dedupe on rounded values.
            seen.setdefault(tuple(round(x, 9) for x in w), w)
    return list(seen.values())


def search_weights(
    val_logits_list: Sequence[np.ndarray],
    val_labels: np.ndarray,
    temperatures: Sequence[float] | float = 1.0,
    metric: str = "top1",
    grid: Sequence[float] = DEFAULT_GRID,
    min_gain: float | None = None,
    fixed_weights: Sequence[float] | None = None,
) -> WeightSearch:
    """Grid-search fusion weights on validation predictions, with an overfitting guard.

    Tries every weight vector with entries from ``grid`` (normalised, deduplicated)
    and keeps the best by ``metric``; ties go to the vector closest to uniform.
    Guard: the uniform weights are kept unless the best beats them by more than
    ``min_gain``, since a small validation set cannot tell smaller gains from noise.

    Args:
        val_logits_list: ``M`` validation logit arrays, each ``(N, K)``, rows aligned.
        val_labels: ``(N,)`` validation labels (all known).
        temperatures: ``tau`` for all models or one per model.
        metric: one of :data:`SCORES` (higher is better).
        grid: candidate weight values per model.
        min_gain: the guard's margin; default one standard error of the uniform
            fusion's top-1 accuracy, ``sqrt(p (1 - p) / N)``. ``0`` disables the guard.
        fixed_weights: use these weights instead of searching (no guard).

    Returns:
        The chosen weights and their scores, see :class:`WeightSearch`.
    """
    if metric not in SCORES:
        raise ValueError(f"unknown selection metric {metric!r}; choose from {SCORES}")
    n_models = len(val_logits_list)
    taus = _per_model(temperatures, n_models, "temperatures")
    # (M, N, K): each model's scaled probabilities, so a candidate costs one weighted sum.
    stack = torch.as_tensor(
        np.stack([_softmax(z, t) for z, t in zip(val_logits_list, taus, strict=True)])
    )
    labels = torch.as_tensor(np.asarray(val_labels), dtype=torch.long)
    _tensors(stack[0], labels)  # shape and label checks
    scorer = _make_metric(metric, stack.shape[-1])

    def score(w: tuple[float, ...]) -> float:
        return _evaluate(scorer, torch.tensordot(torch.tensor(w).double(), stack, 1), labels)

    uniform = _normalise([1.0] * n_models)
    uniform_score = score(uniform)
    if min_gain is None:
        min_gain = _top1_standard_error(
            torch.tensordot(torch.tensor(uniform).double(), stack, 1), labels
        )
    if fixed_weights is not None:
        w = _normalise(_per_model(fixed_weights, n_models, "weights"))
        s = score(w)
        return WeightSearch(w, s, uniform_score, False, min_gain, w, s)

    best, best_score, best_dist = uniform, uniform_score, 0.0
    for w in _weight_grid(n_models, grid):
        s = score(w)
        dist = float(np.abs(np.subtract(w, uniform)).sum())
        if s > best_score + _TIE or (abs(s - best_score) <= _TIE and dist < best_dist):
            best, best_score, best_dist = w, s, dist
    if best_score - uniform_score > min_gain + _TIE:
        return WeightSearch(best, best_score, uniform_score, False, min_gain, best, best_score)
    kept = best != uniform and best_score > uniform_score + _TIE
    return WeightSearch(uniform, uniform_score, uniform_score, kept, min_gain, best, best_score)
