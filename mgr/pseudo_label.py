"""Cross-modal pseudo-labelling (CMPL, MiGA'26 §3.3).

Fused test-split probabilities of several models are thresholded: samples
whose maximum probability reaches ``alpha`` (the paper's 0.65) keep their
predicted class as a pseudo-label. The labels go to a JSON file that every
DataModule accepts as ``extra_labels``; training then runs on
``train ∪ val ∪ test(pseudo)`` from scratch with an otherwise unchanged config.

The file records the class list, the threshold, the source predictions and
the split the samples come from; a DataModule refuses a file made for another
class list. The file's format (:class:`PseudoLabels`, :func:`load_pseudo_labels`)
lives in :mod:`mgr.data.readers.pseudo_labels`; both names stay importable here.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import numpy as np

# The file format is read by the datamodules, so it lives with the readers.
from mgr.data.readers.pseudo_labels import PseudoLabels, load_pseudo_labels
from mgr.predictions import SplitPredictions, load_predictions

__all__ = ["PseudoLabels", "load_pseudo_labels", "pseudo_label_main", "select_pseudo_labels"]


def select_pseudo_labels(
    preds: SplitPredictions, alpha: float = 0.65, per_class_cap: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Choose confident samples.

    Args:
        preds: (fused) predictions of the unlabelled split.
        alpha: keep samples whose maximum probability is at least ``alpha``.
        per_class_cap: keep at most this many (the most confident) per class, so
            that head classes do not swamp the augmented set; ``None``: no cap.

    Returns:
        ``(index, label)``: indices into ``preds`` of the kept samples and their
        pseudo-labels, ordered by decreasing confidence.
    """
    if not 0.0 < alpha <= 1.0:
        raise ValueError(f"alpha must be in (0, 1], got {alpha}")
    conf = preds.probs.max(1)
    label = preds.probs.argmax(1)
    order = np.argsort(-conf, kind="stable")
    keep = order[conf[order] >= alpha]
    if per_class_cap is not None:
        seen: dict[int, int] = {}
        capped = []
        for i in keep:
            c = int(label[i])
            if seen.get(c, 0) < per_class_cap:
                seen[c] = seen.get(c, 0) + 1
                capped.append(i)
        keep = np.array(capped, dtype=np.int64)
    return keep, label[keep]


def pseudo_label_main(argv: Sequence[str]) -> int:
    """``mgr pseudo-label``: threshold fused predictions into a pseudo-label file."""
    p = argparse.ArgumentParser(
        prog="mgr pseudo-label",
        description="Keep confident (fused) predictions of an unlabelled split as pseudo-labels; "
        "train again with --data.init_args.extra_labels OUT.",
    )
    p.add_argument("--preds", required=True, help="prediction set (folder or one of its .npz)")
    p.add_argument("--split", default="test", help="split to pseudo-label")
    p.add_argument("--alpha", type=float, default=0.65, help="confidence threshold (paper: 0.65)")
    p.add_argument("--per-class-cap", type=int, default=None, help="at most N samples per class")
    p.add_argument("--out", required=True, help="output JSON file")
    a = p.parse_args(argv)
    pset = load_predictions(a.preds)
    preds = pset[a.split]
    index, label = select_pseudo_labels(preds, a.alpha, a.per_class_cap)
    ids = preds.sample_id[index].tolist()
    conf = preds.probs.max(1)[index]
    pl = PseudoLabels(
        split=a.split,
        labels=dict(zip(ids, label.tolist(), strict=True)),
        confidence=dict(zip(ids, conf.tolist(), strict=True)),
        class_names=pset.class_names,
        meta={
            "alpha": a.alpha,
            "per_class_cap": a.per_class_cap,
            "source": str(pset.path),
            "source_producer": pset.meta.get("producer"),
        },
    )
    out = pl.save(a.out)
    n = len(preds.sample_id)
    print(
        f"{len(ids)} of {n} {a.split} samples ({len(ids) / max(n, 1):.1%}) have max probability "
        f">= {a.alpha}; written to {out}"
    )
    counts = pl.class_counts()
    print("added per class: " + ", ".join(f"{i}:{c}" for i, c in enumerate(counts) if c))
    if preds.has_labels and len(ids):
        acc = float(np.mean(preds.label[index] == label))
        print(f"pseudo-label accuracy (ground truth known for this split): {acc:.4f}")
    return 0
