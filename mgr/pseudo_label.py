"""Cross-modal pseudo-labelling (CMPL, MiGA'26 §3.3).

Fused test-split probabilities of several models are thresholded: samples
whose maximum probability reaches ``alpha`` (the paper's 0.65) keep their
predicted class as a pseudo-label. The labels go to a JSON file that every
DataModule accepts as ``extra_labels``; training then runs on
``train ∪ val ∪ test(pseudo)`` from scratch with an otherwise unchanged config.

The file records the class list, the threshold, the source predictions and
the split the samples come from; a DataModule refuses a file made for another
class list.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mgr.fileio import write_json
from mgr.predictions import SplitPredictions, load_predictions

__all__ = ["PseudoLabels", "load_pseudo_labels", "pseudo_label_main", "select_pseudo_labels"]


@dataclass
class PseudoLabels:
    """Pseudo-labels of one split.

    Attributes:
        split: split the samples come from (e.g. ``"test"``).
        labels: sample id -> 0-based class.
        confidence: sample id -> the probability that selected it.
        class_names: class list the labels index.
        meta: provenance: threshold, caps, source predictions.
    """

    split: str
    labels: dict[str, int]
    confidence: dict[str, float]
    class_names: list[str]
    meta: dict[str, Any]

    def save(self, path: str | Path) -> Path:
        """Write the JSON file."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        doc = {
            "format": "mgr-pseudo-labels/1",
            "split": self.split,
            "class_names": self.class_names,
            **self.meta,
            "samples": [
                {"sample_id": s, "label": c, "confidence": round(self.confidence[s], 6)}
                for s, c in self.labels.items()
            ],
        }
        return write_json(path, doc, indent=1)  # atomic: never a truncated label file

    def class_counts(self) -> np.ndarray:
        """``(K,)`` number of pseudo-labelled samples per class."""
        return np.bincount(
            np.fromiter(self.labels.values(), dtype=np.int64, count=len(self.labels)),
            minlength=len(self.class_names),
        )


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


def load_pseudo_labels(path: str | Path, class_names: Sequence[str] | None = None) -> PseudoLabels:
    """Read a pseudo-label file.

    Args:
        path: JSON file written by :meth:`PseudoLabels.save` / ``mgr pseudo-label``.
        class_names: the caller's class list; a file made for another one is an error.

    Returns:
        The pseudo-labels.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pseudo-label file {path} does not exist")
    data = json.loads(path.read_text())
    if data.get("format") != "mgr-pseudo-labels/1":
        raise ValueError(f"{path} is not an mgr pseudo-label file (format {data.get('format')!r})")
    names = list(data["class_names"])
    if class_names is not None and names != list(class_names):
        raise ValueError(
            f"{path} was made for {len(names)} classes ({names[:3]}...) but the datamodule has "
            f"{len(class_names)} ({list(class_names)[:3]}...): the labels index another class list"
        )
    k = len(names)
    labels, conf = {}, {}
    for row in data["samples"]:
        c = int(row["label"])
        if not 0 <= c < k:
            raise ValueError(
                f"{path}: sample {row['sample_id']!r} has label {c} outside 0..{k - 1}"
            )
        labels[str(row["sample_id"])] = c
        conf[str(row["sample_id"])] = float(row.get("confidence", 1.0))
    meta = {
        key: v
        for key, v in data.items()
        if key not in ("format", "split", "class_names", "samples")
    }
    return PseudoLabels(data["split"], labels, conf, names, meta)


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
