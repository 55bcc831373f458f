"""Predictions as data: the files ``mgr predict`` writes and fusion / pseudo-labelling read.

A *prediction set* is a folder holding one model's (or one fusion's) scores:

.. code-block:: text

    <dir>/meta.json      class_names, dataset, what produced it (model config or fusion recipe)
    <dir>/<split>.npz    sample_id (N,) str, logits (N, K) float32, probs (N, K) float32,
                         label (N,) int64 (-1 where unknown)

Splits are written one ``mgr predict`` run at a time (``--data.init_args.predict_split
val`` then ``test``); ``meta.json`` keeps the union. Fused sets store
``log(probs)`` as their logits, so every reader can treat them alike.

Every file is written atomically (:mod:`mgr.fileio`) and ``meta.json`` lists a
split only once its file is complete: a run killed mid-write leaves the set as
it was, or without that split, never with a truncated or mismatched file.

Submission files of the challenges are written from a split's predictions:
iMiGUE ``Submission.csv`` (``sample_name,label``, 0-based, zipped as
``Submission.zip``), SMG clip predictions (same two columns), MA-52
``prediction.csv`` (``vid,action_pred_1..5,body_pred_1..5`` and the MAC'24
``id,pred_label_1,pred_label_2``), formats in ``datasets.md`` §2.4 and §3.2.
"""

from __future__ import annotations

import csv
import datetime
import io
import json
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.utilities import rank_zero_info

from mgr.classes import ma52_fine_to_coarse
from mgr.errors import UserError
from mgr.fileio import atomic_write, write_json, write_text

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
    splits = dict(old.get("splits", {}))
    if split in splits:
        # meta.json is the set's marker: forget the split before its file changes, so a
        # run killed below leaves the split absent, never listed with the wrong file.
        del splits[split]
        write_json(meta_path, {**old, "splits": splits}, indent=1, default=str)
    with atomic_write(file) as f:
        np.savez(
            f,
            sample_id=preds.sample_id.astype(str),
            logits=preds.logits.astype(np.float32),
            probs=preds.probs.astype(np.float32),
            label=preds.label.astype(np.int64),
        )
    splits[split] = {
        "file": file.name,
        "num_samples": len(preds.sample_id),
        "written": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    if protocol is not None:
        splits[split]["protocol"] = dict(protocol)
    new = {**old, **(meta or {}), "class_names": list(class_names), "splits": splits}
    write_json(meta_path, new, indent=1, default=str)
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

    Under several processes (DDP) each process predicts a disjoint shard of the split
    (:func:`mgr.datamodules.base.eval_shard_sampler`); the shards are gathered on every
    process with ``torch.distributed.all_gather_object``, put back in the dataset's
    order (the loaders' batch indices) and written once, by process 0, so the files are
    the same as those of a single-process run.

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
        """Gather the epoch's predictions of every process; process 0 writes them."""
        if self.out_dir is None:
            return
        if predictions and not (isinstance(predictions[0], dict) and "probs" in predictions[0]):
            raise UserError(
                f"prediction_writer.out_dir: {type(pl_module).__name__} does not predict "
                "class scores per sample; drop --prediction_writer.out_dir"
            )
        local = _local_predictions(predictions, batch_indices)
        if trainer.world_size > 1:  # every process joins the gather, even with no predictions
            shards: list[Any] = [None] * trainer.world_size
            torch.distributed.all_gather_object(shards, local)
        else:
            shards = [local]
        if trainer.is_global_zero:
            self._write(trainer, pl_module, _merge_shards(shards))
        trainer.strategy.barrier("mgr_prediction_writer")  # written when any process returns

    def _write(
        self, trainer: Trainer, pl_module: LightningModule, rows: dict[str, np.ndarray]
    ) -> None:
        if not len(rows["sample_id"]):
            return
        dm = trainer.datamodule
        split = getattr(dm, "predict_split", "predict")
        class_names = pl_module.hparams.get("class_names") or [
            str(i) for i in range(rows["logits"].shape[1])
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
        preds = SplitPredictions(rows["sample_id"], rows["logits"], rows["probs"], rows["label"])
        protocol = dm.protocol(split).as_dict() if callable(getattr(dm, "protocol", None)) else None
        file = save_predictions(self.out_dir, split, preds, class_names, meta, protocol=protocol)
        msg = f"predictions ({len(preds.sample_id)} samples, split {split!r}) written to {file}"
        dataset = meta["dataset"]
        if self.submission and dataset in ("imigue", "smg", "ma52"):
            sub = write_submission(self.out_dir, split, preds, dataset)
            msg += f"; submission file {sub}"
        rank_zero_info(msg)


def _local_predictions(
    predictions: Sequence[dict[str, Any]], batch_indices: Sequence[Any]
) -> dict[str, np.ndarray]:
    """One process's predictions as arrays, with each row's dataset index.

    Args:
        predictions: the outputs of ``Recognizer.predict_step``, one per batch.
        batch_indices: Lightning's batch indices: per dataloader, per batch, the
            dataset indices (empty when Lightning could not track them).

    Returns:
        ``sample_id (N,)``, ``logits (N, K)``, ``probs (N, K)``, ``label (N,)`` (``-1``
        where unknown) and ``index (N,)`` (``-1`` where unknown).
    """
    ids = [str(s) for p in predictions for s in p["sample_id"]]
    n = len(ids)
    if not predictions:
        empty = np.zeros((0, 0), np.float32)
        return {
            "sample_id": np.array([], dtype=str),
            "logits": empty,
            "probs": empty,
            "label": np.zeros(0, np.int64),
            "index": np.zeros(0, np.int64),
        }
    batches = batch_indices
    if batches and batches[0] and isinstance(batches[0][0], list):  # one list per dataloader
        batches = batches[0]
    index = [int(i) for b in batches for i in b]
    return {
        "sample_id": np.array(ids),
        "logits": torch.cat([p["logits"] for p in predictions]).float().cpu().numpy(),
        "probs": torch.cat([p["probs"] for p in predictions]).float().cpu().numpy(),
        "label": (
            torch.cat([p["label"] for p in predictions]).cpu().numpy().astype(np.int64)
            if "label" in predictions[0]
            else np.full(n, -1, np.int64)
        ),
        "index": np.array(index, np.int64) if len(index) == n else np.full(n, -1, np.int64),
    }


def _merge_shards(shards: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Concatenate the processes' predictions in the dataset's order.

    Rows are ordered by dataset index (the one-process order); when the indices are
    unknown, one process's rows keep their order and several processes' are sorted by
    sample id. A sample predicted twice is kept once.
    """
    shards = [s for s in shards if len(s["sample_id"])]
    if not shards:
        return _local_predictions([], [])
    rows = {k: np.concatenate([s[k] for s in shards]) for k in shards[0]}
    if (rows["index"] >= 0).all():
        order = np.argsort(rows["index"], kind="stable")
        key = rows["index"][order]
    elif len(shards) == 1:
        order = np.arange(len(rows["sample_id"]))
        key = rows["sample_id"]
    else:
        order = np.argsort(rows["sample_id"], kind="stable")
        key = rows["sample_id"][order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = key[1:] != key[:-1]
    return {k: v[order[first]] for k, v in rows.items()}


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
    if dataset not in _SUBMISSION_FILES:
        raise ValueError(f"no submission format for dataset {dataset!r}")
    # Old files go first and new ones appear whole (mgr.fileio): after a crash the
    # folder holds complete files of this run or nothing, never a stale mix.
    for name in _SUBMISSION_FILES[dataset]:
        (out / name).unlink(missing_ok=True)
    if dataset in ("imigue", "smg"):
        # MiGA: one "<sample_name>,<0-based label>" line per clip, no header.
        text = _csv_text(zip(ids, top1.tolist(), strict=True))
        csv_path = write_text(out / "Submission.csv", text)
        if dataset == "smg":
            return csv_path
        return _write_zip(out / "Submission.zip", {"Submission.csv": text})
    top5 = np.argsort(-preds.probs, axis=1)[:, :5]
    # Body-part scores: sum of the action probabilities of each part.
    coarse = np.array([ma52_fine_to_coarse(c) for c in range(preds.probs.shape[1])])
    body = np.stack([preds.probs[:, coarse == b].sum(1) for b in range(coarse.max() + 1)], 1)
    body5 = np.argsort(-body, axis=1)[:, :5]
    header = [
        "vid",
        *[f"action_pred_{i}" for i in range(1, 6)],
        *[f"body_pred_{i}" for i in range(1, 6)],
    ]
    rows = [[vid, *top5[i].tolist(), *body5[i].tolist()] for i, vid in enumerate(ids)]
    text = _csv_text([header, *rows])
    write_text(out / "prediction.csv", text)
    top1_rows = [[vid, int(coarse[top1[i]]), int(top1[i])] for i, vid in enumerate(ids)]
    write_text(
        out / "prediction_top1.csv", _csv_text([["id", "pred_label_1", "pred_label_2"], *top1_rows])
    )
    return _write_zip(out / "submission.zip", {"prediction.csv": text})


#: files write_submission writes per dataset (removed first on a rewrite).
_SUBMISSION_FILES = {
    "imigue": ("Submission.zip", "Submission.csv"),
    "smg": ("Submission.csv",),
    "ma52": ("submission.zip", "prediction.csv", "prediction_top1.csv"),
}


def _csv_text(rows: Iterable[Sequence[Any]]) -> str:
    buffer = io.StringIO(newline="")
    csv.writer(buffer).writerows(rows)
    return buffer.getvalue()


def _write_zip(path: Path, members: dict[str, str]) -> Path:
    with atomic_write(path) as f, zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED) as z:
        for name, text in members.items():
            z.writestr(name, text)
    return path
