"""Pseudo-label files of ``mgr pseudo-label`` (:mod:`mgr.pseudo_label`), read by the datamodules.

A JSON file (``format: mgr-pseudo-labels/1``): the split the samples come from,
the class list the labels index, provenance (threshold, caps, source
predictions) and one ``{sample_id, label, confidence}`` per sample. Every
DataModule accepts one as ``extra_labels`` and refuses a file made for another
class list.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mgr.fileio import write_json

__all__ = ["PseudoLabels", "load_pseudo_labels"]


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
