"""``mgr fuse``: the report (table, reliability plot) and the command line of late fusion."""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mgr.fusion.maths import _TIE, DEFAULT_GRID, METHODS, SCORES, metrics
from mgr.fusion.sets import FusionResult, fuse
from mgr.predictions import PredictionSet, load_predictions, save_predictions
from mgr.protocols import Protocol

__all__ = ["format_table", "fuse_main", "reliability_plot"]


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
