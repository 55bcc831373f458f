"""Fusing prediction sets (:mod:`mgr.predictions`): align them, choose on val, apply to test."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from mgr.fusion.maths import (
    _TIE,
    DEFAULT_GRID,
    METHODS,
    SCORES,
    _normalise,
    _per_model,
    _top1_standard_error,
    fit_temperature,
    fuse_probs,
    metrics,
    search_weights,
)
from mgr.metrics import is_ma52
from mgr.predictions import PredictionSet, SplitPredictions

__all__ = ["FusionResult", "FusionRow", "fuse"]


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
