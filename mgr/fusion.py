"""Late fusion of prediction sets: weighted and temperature-scaled soft voting.

Given the ``val`` and ``test`` predictions of several models (prediction sets, see
:mod:`mgr.predictions`), fusion averages their class probabilities::

    P = sum_m W_m softmax(z_m / tau_m) / sum_m W_m

* ``mean``: equal weights, ``tau = 1``.
* ``weighted``: weights grid-searched on val, ``tau = 1`` (MM-Gesture §3.5).
* ``temperature``: one global ``tau`` (2.5, the value the CMPL paper grid-searched,
  §3.4) or a per-model ``tau`` fitted by NLL on val, then weights grid-searched on val.
  Softening the overconfident models stops one of them from vetoing the others.

Everything is chosen on a small validation set (iMiGUE has 777 clips), where a grid
search easily finds weights that only fit noise. The **overfitting guard** therefore
keeps the uniform weights (and, between methods, plain ``mean``) unless the
alternative beats it on val by more than ``min_gain``; by default one standard error
of the uniform top-1 accuracy, ``sqrt(p (1 - p) / N)``, the smallest difference that
``N`` validation samples can resolve.

``mgr fuse --preds DIR [DIR ...] --out DIR`` runs :func:`fuse_main`.
"""

from __future__ import annotations

import argparse
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torchmetrics import Metric
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassCalibrationError,
    MulticlassF1Score,
)

from mgr.metrics import F1Mean, is_ma52
from mgr.predictions import PredictionSet, SplitPredictions, load_predictions, save_predictions
from mgr.protocols import Protocol

__all__ = [
    "DEFAULT_GRID",
    "METHODS",
    "SCORES",
    "FusionResult",
    "FusionRow",
    "WeightSearch",
    "fit_temperature",
    "format_table",
    "fuse",
    "fuse_main",
    "fuse_probs",
    "metrics",
    "reliability_plot",
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


# --------------------------------------------------------------------------- fusing sets


@dataclass
class FusionRow:
    """One line of the fusion table: an input model or a fusion method.

    Attributes:
        name: the prediction set's name, or the method (``mean``, ``weighted``, ...).
        kind: ``"model"`` or ``"fusion"``.
        tau: temperature per input model (``(1.0,)`` for a model row).
        weights: fusion weights per input model; ``None`` for a model row.
        val: validation metrics (see :func:`metrics`).
        test: test metrics, ``None`` where the test split has no labels.
        kept_uniform: whether the guard kept uniform weights (fusion rows).
        val_probs: ``(N_val, K)`` probabilities.
        test_probs: ``(N_test, K)`` probabilities, ``None`` without a test split.
    """

    name: str
    kind: Literal["model", "fusion"]
    tau: tuple[float, ...]
    weights: tuple[float, ...] | None
    val: dict[str, float]
    test: dict[str, float] | None
    kept_uniform: bool | None = None
    val_probs: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)), repr=False)
    test_probs: np.ndarray | None = field(default=None, repr=False)


@dataclass
class FusionResult:
    """Outcome of :func:`fuse`.

    Attributes:
        names: input set names (unique), in input order.
        paths: input set folders.
        class_names: the shared class list.
        metric: the selection metric.
        min_gain: the guard's margin used to choose between methods.
        chosen: name of the chosen method.
        rows: one row per input model, then one per method.
        val: the chosen method's fused validation predictions (logits = log probs).
        test: the same for the test split, ``None`` without one.
        val_split: validation split name.
        test_split: test split name, ``None`` when not fused.
    """

    names: list[str]
    paths: list[Path]
    class_names: list[str]
    metric: str
    min_gain: float
    chosen: str
    rows: list[FusionRow]
    val: SplitPredictions
    test: SplitPredictions | None
    val_split: str
    test_split: str | None

    @property
    def chosen_row(self) -> FusionRow:
        """The row of the chosen method."""
        return next(r for r in self.rows if r.kind == "fusion" and r.name == self.chosen)


def _unique_names(sets: Sequence[PredictionSet]) -> list[str]:
    """Set names, qualified by their parent folder where two folders share a name."""
    names = [s.name for s in sets]
    names = [
        f"{s.path.parent.name}/{n}" if names.count(n) > 1 else n
        for s, n in zip(sets, names, strict=True)
    ]
    return [f"{n}#{i}" if names.count(n) > 1 else n for i, n in enumerate(names)]


def _aligned_split(
    sets: Sequence[PredictionSet], names: Sequence[str], split: str
) -> list[SplitPredictions]:
    """One split of every set, reordered to the first set's sample ids.

    Raises:
        KeyError: a set lacks the split.
        ValueError: the sets hold different samples, or disagree on a label.
    """
    splits = [s[split] for s in sets]  # KeyError naming the set and split if missing
    ref = splits[0]
    ref_ids = set(ref.sample_id.tolist())
    aligned = [ref]
    for name, sp in zip(names[1:], splits[1:], strict=True):
        ids = set(sp.sample_id.tolist())
        if ids != ref_ids:
            raise ValueError(
                f"{split!r}: {names[0]!r} and {name!r} hold different samples "
                f"({len(ref_ids - ids)} only in the first, {len(ids - ref_ids)} only in the second)"
            )
        sp = sp.align(ref.sample_id.tolist())
        both = (sp.label >= 0) & (ref.label >= 0)
        if np.any(sp.label[both] != ref.label[both]):
            raise ValueError(f"{split!r}: {names[0]!r} and {name!r} disagree on labels")
        aligned.append(sp)
    return aligned


def _labels(splits: Sequence[SplitPredictions]) -> np.ndarray:
    """Labels known to any set (the sets agree where both know one); ``-1`` elsewhere."""
    return np.max(np.stack([s.label for s in splits]), axis=0)


def _fused_split(ref: SplitPredictions, probs: np.ndarray, labels: np.ndarray) -> SplitPredictions:
    """Fused predictions in the prediction-set format: logits are log probabilities."""
    probs32 = probs.astype(np.float32)
    logits = np.log(np.clip(probs32, np.finfo(np.float32).tiny, None))
    return SplitPredictions(ref.sample_id.copy(), logits, probs32, labels.astype(np.int64))


def _make_row(
    name: str,
    val: Sequence[SplitPredictions],
    test: Sequence[SplitPredictions] | None,
    val_y: np.ndarray,
    test_y: np.ndarray | None,
    taus: Sequence[float],
    weights: tuple[float, ...] | None,
    kept_uniform: bool | None,
    ma52: bool = False,
) -> FusionRow:
    """Evaluate one model (``weights=None``) or one fusion of aligned splits.

    Args:
        name: row name.
        val: the aligned validation splits of the row's models.
        test: the aligned test splits, ``None`` without a test split.
        val_y: ``(N_val,)`` validation labels.
        test_y: ``(N_test,)`` test labels, ``None`` where unlabelled (no test metrics).
        taus: temperature per model.
        weights: fusion weights; ``None`` for a single model.
        kept_uniform: the guard's verdict (fusion rows).
        ma52: add MA-52's ``f1_mean`` and its parts (see :func:`metrics`).
    """
    w = weights if weights is not None else (1.0,)
    val_probs = fuse_probs([s.logits for s in val], w, taus)
    test_probs = fuse_probs([s.logits for s in test], w, taus) if test is not None else None
    test_metrics = (
        metrics(test_probs, test_y, ma52=ma52)
        if test_probs is not None and test_y is not None
        else None
    )
    kind: Literal["model", "fusion"] = "model" if weights is None else "fusion"
    return FusionRow(
        name,
        kind,
        tuple(taus),
        weights,
        metrics(val_probs, val_y, ma52=ma52),
        test_metrics,
        kept_uniform,
        val_probs,
        test_probs,
    )


def fuse(
    sets: Sequence[PredictionSet],
    val_split: str = "val",
    test_split: str | None = "test",
    metric: str = "top1",
    temperature: float | Literal["fit"] = 2.5,
    grid: Sequence[float] = DEFAULT_GRID,
    min_gain: float | None = None,
    fixed_weights: Sequence[float] | None = None,
    methods: Sequence[str] = METHODS,
) -> FusionResult:
    """Fuse prediction sets, choosing weights, temperatures and method on validation.

    Methods: ``mean`` (equal weights, ``tau = 1``), ``weighted`` (weights searched on
    val, ``tau = 1``) and ``temperature`` (``softmax(z / tau)`` with one global
    ``tau``, or ``"fit"``: a per-model ``tau`` fitted by NLL on val; weights searched on
    val). The chosen method is the best on val, but ``mean`` (or the first method when
    ``mean`` is not run) stays chosen unless beaten by more than ``min_gain``.

    Args:
        sets: prediction sets of the same classes, each with both splits.
        val_split: labelled split that weights, temperatures and method are chosen on.
        test_split: split to fuse and report (metrics only where it is labelled);
            ``None`` skips it.
        metric: selection metric, one of :data:`SCORES`.
        temperature: global ``tau`` of the ``temperature`` method, or ``"fit"``.
        grid: weight values per model searched by ``weighted`` and ``temperature``.
        min_gain: the guard's margin; default one standard error of the top-1 of
            ``mean`` on val (per method: of its uniform weights).
        fixed_weights: use these weights instead of searching.
        methods: methods to run, among :data:`METHODS`.

    Returns:
        Table rows and the chosen method's fused splits, see :class:`FusionResult`.
    """
    if not sets:
        raise ValueError("nothing to fuse: no prediction sets given")
    unknown = set(methods) - set(METHODS)
    if unknown or not methods:
        raise ValueError(f"unknown fusion methods {sorted(unknown)}; choose from {METHODS}")
    if metric not in SCORES:
        raise ValueError(f"unknown selection metric {metric!r}; choose from {SCORES}")
    names = _unique_names(sets)
    for name, s in zip(names[1:], sets[1:], strict=True):
        if s.class_names != sets[0].class_names:
            raise ValueError(f"{names[0]!r} and {name!r} predict different class lists")
    ma52 = is_ma52(sets[0].class_names)
    if metric == "f1_mean" and not ma52:
        raise ValueError("metric 'f1_mean' is MA-52's: these prediction sets have other classes")

    val = _aligned_split(sets, names, val_split)
    val_y = _labels(val)
    if not np.all(val_y >= 0):
        raise ValueError(f"{val_split!r} must be labelled to choose fusion weights")
    test = _aligned_split(sets, names, test_split) if test_split is not None else None
    test_y = _labels(test) if test is not None else None
    test_labelled = test_y is not None and len(test_y) > 0 and bool(np.all(test_y >= 0))

    def row(
        name: str,
        members: Sequence[int],
        taus: Sequence[float],
        weights: tuple[float, ...] | None,
        kept: bool | None = None,
    ) -> FusionRow:
        return _make_row(
            name,
            [val[i] for i in members],
            [test[i] for i in members] if test is not None else None,
            val_y,
            test_y if test_labelled else None,
            taus,
            weights,
            kept,
            ma52,
        )

    rows = [row(name, [i], (1.0,), None) for i, name in enumerate(names)]
    n = len(sets)
    if temperature == "fit" and "temperature" in methods:
        fit_taus = [fit_temperature(s.logits, val_y) for s in val]
    else:
        fit_taus = _per_model(2.5 if temperature == "fit" else float(temperature), n, "tau")
    for method in methods:
        taus = fit_taus if method == "temperature" else [1.0] * n
        if method == "mean":
            rows.append(row("mean", range(n), taus, _normalise([1.0] * n)))
            continue
        found = search_weights(
            [s.logits for s in val], val_y, taus, metric, grid, min_gain, fixed_weights
        )
        rows.append(row(method, range(n), taus, found.weights, found.kept_uniform))

    fusions = [r for r in rows if r.kind == "fusion"]
    base = next((r for r in fusions if r.name == "mean"), fusions[0])
    if min_gain is None:
        min_gain = _top1_standard_error(base.val_probs, val_y)
    best = base
    for r in fusions:  # first best wins ties: simpler methods come first
        if r.val[metric] > best.val[metric] + _TIE:
            best = r
    chosen = best if best.val[metric] - base.val[metric] > min_gain + _TIE else base

    fused_val = _fused_split(val[0], chosen.val_probs, val_y)
    fused_test = None
    if test is not None and chosen.test_probs is not None and test_y is not None:
        fused_test = _fused_split(test[0], chosen.test_probs, test_y)
    return FusionResult(
        names=names,
        paths=[s.path for s in sets],
        class_names=list(sets[0].class_names),
        metric=metric,
        min_gain=float(min_gain),
        chosen=chosen.name,
        rows=rows,
        val=fused_val,
        test=fused_test,
        val_split=val_split,
        test_split=test_split,
    )


# --------------------------------------------------------------------------- reporting


def _fmt_values(values: Sequence[float] | None, compact: bool = False) -> str:
    """``0.50/0.25/0.25`` (``compact``: one number when all are equal); ``-`` for ``None``."""
    if values is None:
        return "-"
    if compact and len(set(values)) == 1:
        return f"{values[0]:g}"
    return "/".join(f"{v:.2f}" for v in values)


def format_table(result: FusionResult) -> str:
    """Plain-text table of every model and fusion method; ``*`` marks the chosen method.

    Accuracies and F1 are percentages; ``-`` where a split has no labels. ``tau`` and
    ``weights`` list one value per input model (in the order of the model rows);
    ``(guard: uniform)`` flags a weight search whose better grid point the guard refused.
    """
    cols: tuple[str, ...] = ("top1", "top5", "macro_f1")
    if "f1_mean" in result.rows[0].val:
        cols += ("f1_mean",)
    header = ["  name", *(f"val {c}" for c in cols), *(f"test {c}" for c in cols), "tau", "weights"]
    lines = []
    for r in result.rows:
        mark = "*" if r.kind == "fusion" and r.name == result.chosen else " "
        val = [f"{100 * r.val[c]:.2f}" for c in cols]
        test = [f"{100 * r.test[c]:.2f}" if r.test else "-" for c in cols]
        tau = _fmt_values(r.tau, compact=True)
        weights = _fmt_values(r.weights) + (" (guard: uniform)" if r.kept_uniform else "")
        lines.append([f"{mark} {r.name}", *val, *test, tau, weights])
    widths = [max(len(x[i]) for x in [header, *lines]) for i in range(len(header))]

    def fmt(cells: Sequence[str]) -> str:
        left = {0, len(cells) - 1}  # names and weights left-aligned, numbers right-aligned
        return "  ".join(
            c.ljust(w) if i in left else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    rule = "-" * len(fmt(header))
    n_models = len(result.names)
    fusions = [r for r in result.rows if r.kind == "fusion"]
    best = max(fusions, key=lambda r: r.val[result.metric])
    gain = best.val[result.metric] - result.chosen_row.val[result.metric]
    guard = (
        f" (guard: {best.name} is only {100 * gain:.2f} points better on val, "
        f"within min_gain {100 * result.min_gain:.2f})"
        if gain > _TIE
        else ""
    )
    return "\n".join(
        [
            f"late fusion of {n_models} prediction sets; selected on {result.val_split!r} by "
            f"{result.metric}, min_gain {result.min_gain:.4f}",
            fmt(header),
            rule,
            *(fmt(x) for x in lines[:n_models]),
            rule,
            *(fmt(x) for x in lines[n_models:]),
            f"chosen: {result.chosen}{guard}",
        ]
    )


def reliability_plot(
    probs: Mapping[str, np.ndarray] | np.ndarray,
    labels: np.ndarray,
    path: str | Path,
    n_bins: int = 15,
    title: str | None = None,
) -> Path:
    """Reliability diagram: per-bin accuracy against mean confidence, ECE in the legend.

    Args:
        probs: ``(N, K)`` probabilities, or a mapping of curve names (models, fused
            result) to ``(N, K)`` probabilities of the same samples.
        labels: ``(N,)`` class ids (all known).
        path: PNG file to write.
        n_bins: equal-width confidence bins over ``[0, 1]``.
        title: plot title.

    Returns:
        ``path``.
    """
    from matplotlib.figure import Figure  # Agg canvas, no pyplot/global backend

    curves = probs if isinstance(probs, Mapping) else {"model": probs}
    labels = np.asarray(labels)
    fig = Figure(figsize=(5, 5))
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
    for name, p in curves.items():
        p = np.asarray(p, dtype=np.float64)
        conf, correct = p.max(1), p.argmax(1) == labels
        bins = np.minimum((conf * n_bins).astype(int), n_bins - 1)
        used = np.unique(bins)
        x = [conf[bins == b].mean() for b in used]
        y = [correct[bins == b].mean() for b in used]
        ece = metrics(p, labels, n_bins)["ece"]
        ax.plot(x, y, "o-", ms=4, label=f"{name} (ECE {ece:.3f})")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence", ylabel="accuracy", title=title)
    ax.legend(loc="upper left", fontsize="small")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path


# --------------------------------------------------------------------------- command line


def _temperature_arg(text: str) -> float | str:
    if text == "fit":
        return "fit"
    try:
        tau = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'fit', got {text!r}") from None
    if tau <= 0:
        raise argparse.ArgumentTypeError(f"temperature must be positive, got {tau}")
    return tau


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mgr fuse",
        description="Late fusion of prediction sets (written by `mgr predict`): equal-weight "
        "mean, grid-searched weights, and temperature-scaled soft voting, chosen on the "
        "validation split with an overfitting guard.",
    )
    p.add_argument(
        "--preds",
        nargs="+",
        required=True,
        metavar="DIR_OR_NPZ",
        help="prediction-set folders (or one of their .npz files)",
    )
    p.add_argument("--val-split", default="val", help="labelled split to choose on")
    p.add_argument("--test-split", default="test", help="split to fuse and report; 'none' skips")
    p.add_argument("--metric", choices=SCORES, default="top1", help="selection metric")
    p.add_argument(
        "--temperature",
        type=_temperature_arg,
        default=2.5,
        metavar="{FLOAT,fit}",
        help="global tau of temperature-scaled voting, or 'fit' per model by NLL "
        "on val (default 2.5)",
    )
    p.add_argument(
        "--grid",
        type=float,
        nargs="+",
        default=list(DEFAULT_GRID),
        help="weight values searched per model",
    )
    p.add_argument(
        "--weights",
        type=float,
        nargs="+",
        default=None,
        help="fixed weights per model instead of a search",
    )
    p.add_argument(
        "--min-gain",
        type=float,
        default=None,
        help="margin the searched weights/method must beat the uniform mean by on "
        "val (default: one standard error of its top-1)",
    )
    p.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    p.add_argument("--out", required=True, help="output prediction-set folder")
    return p


def split_protocol(sets: Sequence[PredictionSet], split: str) -> Protocol | None:
    """The protocol the sets' ``split`` predictions were made under, if they agree.

    Returns:
        ``None`` when a set does not record one (written before mgr did) or they disagree.
    """
    found = set()
    for s in sets:
        info = s.meta.get("splits", {}).get(split, {})
        found.add(Protocol.from_dict(info["protocol"]) if "protocol" in info else None)
    return found.pop() if len(found) == 1 else None


def format_protocols(sets: Sequence[PredictionSet], splits: Sequence[str | None]) -> str:
    """``protocol (val): ...`` lines for the table's header."""
    lines = []
    for split in (s for s in splits if s is not None):
        protocol = split_protocol(sets, split)
        text = (
            protocol.describe()
            if protocol
            else ("unknown (a prediction set does not record it, or the sets disagree)")
        )
        lines.append(f"protocol ({split}): {text}")
    return "\n".join(lines)


def _fusion_meta(result: FusionResult, sets: Sequence[PredictionSet]) -> dict[str, Any]:
    """``meta.json`` content of the fused set: the recipe that produced it."""
    row = result.chosen_row
    datasets = {s.meta.get("dataset") for s in sets}
    return {
        "dataset": datasets.pop() if len(datasets) == 1 else None,
        "producer": {
            "kind": "fusion",
            "inputs": [str(p.resolve()) for p in result.paths],
            "names": result.names,
            "method": result.chosen,
            "tau": list(row.tau),
            "weights": list(row.weights or ()),
            "metric": result.metric,
            "min_gain": result.min_gain,
            "kept_uniform": row.kept_uniform,
            "val_split": result.val_split,
            "test_split": result.test_split,
            "val_metrics": row.val,
            "test_metrics": row.test,
        },
    }


def fuse_main(argv: Sequence[str]) -> int:
    """``mgr fuse``: fuse prediction sets, print the table, write the fused set and plot.

    Writes ``OUT/meta.json``, ``OUT/<val>.npz``, ``OUT/<test>.npz`` and
    ``OUT/reliability.png`` (on the test split where labelled, else on val).
    """
    a = _parser().parse_args(list(argv))
    out = Path(a.out)
    sets = [load_predictions(p) for p in a.preds]
    if any(out.resolve() == s.path.resolve() for s in sets):
        raise SystemExit(f"mgr fuse: --out {out} is one of the inputs; choose a new folder")
    test_split = None if a.test_split.lower() == "none" else a.test_split
    result = fuse(
        sets,
        a.val_split,
        test_split,
        a.metric,
        a.temperature,
        a.grid,
        a.min_gain,
        a.weights,
        a.methods,
    )
    print(format_protocols(sets, (result.val_split, result.test_split)))
    print(format_table(result))

    meta = _fusion_meta(result, sets)
    for split, preds in ((result.val_split, result.val), (result.test_split, result.test)):
        if split is None or preds is None:
            continue
        protocol = split_protocol(sets, split)
        save_predictions(
            out, split, preds, result.class_names, meta,
            protocol=protocol.as_dict() if protocol else None,
        )  # fmt: skip

    on_test = result.test is not None and result.chosen_row.test is not None
    split = result.test_split if on_test else result.val_split
    labels = result.test.label if on_test else result.val.label
    curves = {
        r.name: (r.test_probs if on_test else r.val_probs) for r in result.rows if r.kind == "model"
    }
    curves[f"fused ({result.chosen})"] = result.test.probs if on_test else result.val.probs
    plot = reliability_plot(
        curves, labels, out / "reliability.png", title=f"reliability on {split!r}"
    )
    print(f"fused predictions written to {out}; reliability diagram {plot}")
    return 0
