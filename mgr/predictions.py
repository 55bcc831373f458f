"""Predictions as data: the files ``mgr predict`` writes and fusion / pseudo-labelling read.

A *prediction set* is a folder holding one model's (or one fusion's) scores:

.. code-block:: text

    <dir>/meta.json      class_names, dataset, what produced it (model config or fusion recipe)
    <dir>/<split>.npz    sample_id (N,) str, logits (N, K) float32, probs (N, K) float32,
                         label (N,) int64 (-1 where unknown)

Splits are written one ``mgr predict`` run at a time (``--data.init_args.predict_split
val`` then ``test``); ``meta.json`` keeps the union. Fused sets store
``log(probs)`` as their logits, so every reader can treat them alike.

Submission files of the challenges are written from a split's predictions:
iMiGUE ``Submission.csv`` (``sample_name,label``, 0-based, zipped as
``Submission.zip``), SMG clip predictions (same two columns), MA-52
``prediction.csv`` (``vid,action_pred_1..5,body_pred_1..5`` and the MAC'24
``id,pred_label_1,pred_label_2``), formats in ``datasets.md`` §2.4 and §3.2.
"""

from __future__ import annotations

import csv
import datetime
import json
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.utilities import rank_zero_info

from mgr.classes import ma52_fine_to_coarse

__all__ = [
    "PredictionSet",
    "PredictionWriter",
    "SplitPredictions",
    "load_predictions",
    "save_predictions",
    "write_submission",
]


@dataclass
class SplitPredictions:
    """One split's predictions.

    Attributes:
        sample_id: ``(N,)`` sample names.
        logits: ``(N, K)`` float32 scores before softmax.
        probs: ``(N, K)`` float32 probabilities.
        label: ``(N,)`` int64 ground truth, ``-1`` where unknown.
    """

    sample_id: np.ndarray
    logits: np.ndarray
    probs: np.ndarray
    label: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.sample_id)
        if (
            self.logits.shape[0] != n
            or self.probs.shape != self.logits.shape
            or len(self.label) != n
        ):
            raise ValueError(
                f"inconsistent prediction arrays: {n} ids, logits {self.logits.shape}, "
                f"probs {self.probs.shape}, labels {self.label.shape}"
            )
        if len(set(self.sample_id.tolist())) != n:
            raise ValueError("duplicate sample ids in predictions")

    @property
    def has_labels(self) -> bool:
        """Whether every sample has a ground-truth label."""
        return bool(len(self.label)) and bool(np.all(self.label >= 0))

    def align(self, sample_ids: Sequence[str]) -> SplitPredictions:
        """The same predictions reordered to ``sample_ids`` (all must be present)."""
        index = {s: i for i, s in enumerate(self.sample_id.tolist())}
        missing = [s for s in sample_ids if s not in index]
        if missing:
            raise KeyError(f"{len(missing)} samples have no prediction, e.g. {missing[:3]}")
        order = np.array([index[s] for s in sample_ids], dtype=np.int64)
        return SplitPredictions(
            self.sample_id[order], self.logits[order], self.probs[order], self.label[order]
        )


@dataclass
class PredictionSet:
    """A folder of predictions (see the module docstring).

    Attributes:
        path: the folder.
        class_names: class names, index = label.
        splits: split name -> predictions.
        meta: everything else of ``meta.json`` (dataset, producer, ...).
    """

    path: Path
    class_names: list[str]
    splits: dict[str, SplitPredictions] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """Short name: the folder's name."""
        return self.path.name

    def __getitem__(self, split: str) -> SplitPredictions:
        if split not in self.splits:
            raise KeyError(
                f"{self.path} has no {split!r} predictions (has {sorted(self.splits)}); "
                f"run `mgr predict ... --data.init_args.predict_split {split}`"
            )
        return self.splits[split]


def save_predictions(
    path: str | Path,
    split: str,
    preds: SplitPredictions,
    class_names: Sequence[str],
    meta: dict[str, Any] | None = None,
    protocol: dict[str, Any] | None = None,
) -> Path:
    """Write one split of a prediction set (creating or updating ``meta.json``).

    Args:
        path: prediction-set folder.
        split: split name, e.g. ``"val"`` or ``"test"``.
        preds: the predictions.
        class_names: class names of the ``K`` columns.
        meta: extra metadata to record (merged into ``meta.json``).
        protocol: the split's evaluation protocol (:meth:`mgr.protocols.Protocol.as_dict`),
            kept in ``meta.json`` under ``splits[split]`` so that fusion can print it.

    Returns:
        The ``.npz`` file written.
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    if preds.logits.shape[1] != len(class_names):
        raise ValueError(f"{preds.logits.shape[1]} score columns but {len(class_names)} classes")
    meta_path = path / "meta.json"
    old = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    if old.get("class_names") and list(old["class_names"]) != list(class_names):
        raise ValueError(f"{meta_path} holds predictions for other classes; use another folder")
    file = path / f"{split}.npz"
    np.savez(
        file,
        sample_id=preds.sample_id.astype(str),
        logits=preds.logits.astype(np.float32),
        probs=preds.probs.astype(np.float32),
        label=preds.label.astype(np.int64),
    )
    splits = dict(old.get("splits", {}))
    splits[split] = {
        "file": file.name,
        "num_samples": len(preds.sample_id),
        "written": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    if protocol is not None:
        splits[split]["protocol"] = dict(protocol)
    new = {**old, **(meta or {}), "class_names": list(class_names), "splits": splits}
    meta_path.write_text(json.dumps(new, indent=1, default=str))
    return file


def load_predictions(path: str | Path) -> PredictionSet:
    """Read a prediction set.

    Args:
        path: the folder, or one of its ``<split>.npz`` files.

    Returns:
        The prediction set with every split listed in ``meta.json``.
    """
    path = Path(path)
    if path.suffix == ".npz":
        path = path.parent
    meta_path = path / "meta.json"
    if not meta_path.is_file():
        raise FileNotFoundError(f"{path} is not a prediction set: {meta_path} is missing")
    meta = json.loads(meta_path.read_text())
    splits = {}
    for split, info in meta.get("splits", {}).items():
        f = path / info["file"]
        if not f.is_file():
            raise FileNotFoundError(f"{meta_path} lists {f}, which is missing")
        with np.load(f, allow_pickle=False) as z:
            splits[split] = SplitPredictions(z["sample_id"], z["logits"], z["probs"], z["label"])
        if splits[split].logits.shape[1] != len(meta["class_names"]):
            raise ValueError(
                f"{f} has {splits[split].logits.shape[1]} columns but {meta_path} "
                f"lists {len(meta['class_names'])} classes"
            )
    rest = {k: v for k, v in meta.items() if k not in ("class_names",)}
    return PredictionSet(path, list(meta["class_names"]), splits, rest)


class PredictionWriter(BasePredictionWriter):
    """Write ``mgr predict`` outputs as a prediction set, plus the challenge submission file.

    Args:
        out_dir: prediction-set folder; ``None`` writes nothing (the default outside
            ``mgr predict``'s configs).
        submission: also write the split's submission file (see :func:`write_submission`).
    """

    def __init__(self, out_dir: str | None = None, submission: bool = True) -> None:
        super().__init__(write_interval="epoch")
        self.out_dir = out_dir
        self.submission = submission

    def write_on_epoch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        predictions: Sequence[Any],
        batch_indices: Sequence[Any],
    ) -> None:
        """Gather the epoch's predictions and write them (rank 0 only)."""
        if self.out_dir is None or not predictions:
            return
        if trainer.world_size > 1:
            raise NotImplementedError(
                "writing predictions from several processes is not "
                "supported yet: predict on one device"
            )
        dm = trainer.datamodule
        split = getattr(dm, "predict_split", "predict")
        ids = [s for p in predictions for s in p["sample_id"]]
        logits = torch.cat([p["logits"] for p in predictions]).cpu().numpy()
        probs = torch.cat([p["probs"] for p in predictions]).cpu().numpy()
        labels = (
            torch.cat([p["label"] for p in predictions]).cpu().numpy()
            if "label" in predictions[0]
            else np.full(len(ids), -1)
        )
        class_names = pl_module.hparams.get("class_names") or [
            str(i) for i in range(logits.shape[1])
        ]
        meta = {
            "dataset": getattr(dm, "dataset", None),
            "producer": {
                "kind": "model",
                "class": type(pl_module).__qualname__,
                "module": type(pl_module).__module__,
                "hparams": dict(pl_module.hparams),
                "ckpt_path": trainer.ckpt_path,
                "datamodule": type(dm).__qualname__ if dm is not None else None,
            },
        }
        preds = SplitPredictions(np.array(ids), logits, probs, labels)
        protocol = dm.protocol(split).as_dict() if callable(getattr(dm, "protocol", None)) else None
        file = save_predictions(self.out_dir, split, preds, class_names, meta, protocol=protocol)
        msg = f"predictions ({len(ids)} samples, split {split!r}) written to {file}"
        dataset = meta["dataset"]
        if self.submission and dataset in ("imigue", "smg", "ma52"):
            sub = write_submission(self.out_dir, split, preds, dataset)
            msg += f"; submission file {sub}"
        rank_zero_info(msg)


def write_submission(
    out_dir: str | Path, split: str, preds: SplitPredictions, dataset: str
) -> Path:
    """Write a challenge submission file for one split.

    Args:
        out_dir: folder to write into.
        split: split name (part of the file name).
        preds: the split's predictions.
        dataset: ``"imigue"`` (MiGA ``Submission.csv`` ``sample_name,label``, zipped),
            ``"smg"`` (the same two columns), or ``"ma52"`` (``prediction.csv`` with
            top-5 action and body-part predictions, and the MAC'24 top-1 variant).

    Returns:
        The file written (the zip for iMiGUE and MA-52).
    """
    out = Path(out_dir) / f"submission_{split}"
    out.mkdir(parents=True, exist_ok=True)
    top1 = preds.probs.argmax(1)
    ids = preds.sample_id.tolist()
    if dataset in ("imigue", "smg"):
        # MiGA: one "<sample_name>,<0-based label>" line per clip, no header.
        csv_path = out / "Submission.csv"
        with open(csv_path, "w", newline="") as f:
            csv.writer(f).writerows(zip(ids, top1.tolist(), strict=True))
        if dataset == "smg":
            return csv_path
        zip_path = out / "Submission.zip"
        with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as z:
            z.write(csv_path, "Submission.csv")
        return zip_path
    if dataset == "ma52":
        top5 = np.argsort(-preds.probs, axis=1)[:, :5]
        # Body-part scores: sum of the action probabilities of each part.
        coarse = np.array([ma52_fine_to_coarse(c) for c in range(preds.probs.shape[1])])
        body = np.stack([preds.probs[:, coarse == b].sum(1) for b in range(coarse.max() + 1)], 1)
        body5 = np.argsort(-body, axis=1)[:, :5]
        with open(out / "prediction.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(
                [
                    "vid",
                    *[f"action_pred_{i}" for i in range(1, 6)],
                    *[f"body_pred_{i}" for i in range(1, 6)],
                ]
            )
            for i, vid in enumerate(ids):
                w.writerow([vid, *top5[i].tolist(), *body5[i].tolist()])
        with open(out / "prediction_top1.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["id", "pred_label_1", "pred_label_2"])
            for i, vid in enumerate(ids):
                w.writerow([vid, int(coarse[top1[i]]), int(top1[i])])
        zip_path = out / "submission.zip"
        with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as z:
            z.write(out / "prediction.csv", "prediction.csv")
        return zip_path
    raise ValueError(f"no submission format for dataset {dataset!r}")
