"""The Recognizer template: a LightningModule every mgr model derives from.

A subclass builds its network in :meth:`Recognizer.configure_models` and
implements :meth:`Recognizer.forward_features` (batch -> ``(B, D)``); the
default :meth:`Recognizer.forward_head` is dropout + a linear classifier. To
put a new head on any recognizer, override ``forward_head`` (and
``configure_models`` to build it). The template owns the losses, the metrics,
the optimizer/scheduler plumbing, test-time view averaging and prediction
output.

``configure_models`` is plural on purpose: Lightning's own
``LightningModule.configure_model`` hook is called by the Trainer at every
``fit``/``test`` (for sharded initialisation), and building the network there
would re-initialise a loaded model.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
from lightning.pytorch import LightningModule
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor, nn
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
)

from mgr.batch import MODALITY_NDIM

__all__ = ["Recognizer"]

log = logging.getLogger(__name__)


def _default_optimizer(params: Any) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=1e-3, weight_decay=1e-4)


class Recognizer(LightningModule):
    """Base class of every micro-gesture recognizer.

    Args:
        num_classes: number of classes ``K`` (linked from the datamodule by the CLI).
        class_names: class names, stored in checkpoints so that a checkpoint
            with other classes is refused with a clear error.
        optimizer: optimizer factory ``params -> Optimizer`` (a Lightning
            ``OptimizerCallable``; configs pick any ``torch.optim`` class).
        scheduler: learning-rate scheduler factory ``optimizer -> LRScheduler``
            (stepped once per epoch), or ``None``.
        dropout: dropout before the classifier.
        label_smoothing: label smoothing of the cross-entropy loss.
        test_average: how test-time views (clips, flips) are combined:
            mean of probabilities (``"prob"``) or of logits (``"logit"``).
    """

    #: batch keys this recognizer reads (see :mod:`mgr.batch`).
    input_keys: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        num_classes: int,
        class_names: Sequence[str] | None = None,
        optimizer: OptimizerCallable = _default_optimizer,
        scheduler: LRSchedulerCallable | None = None,
        dropout: float = 0.0,
        label_smoothing: float = 0.0,
        test_average: Literal["prob", "logit"] = "prob",
    ) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"{len(class_names)} class names given for num_classes={num_classes}")
        if test_average not in ("prob", "logit"):
            raise ValueError(f"test_average must be 'prob' or 'logit', got {test_average!r}")
        self.save_hyperparameters(ignore=["optimizer", "scheduler"])
        if class_names is not None:
            self.hparams["class_names"] = list(class_names)
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.configure_models()
        self.configure_losses()
        self.configure_metrics()

    # ------------------------------------------------------------------ template
    def configure_models(self) -> None:
        """Build the network. Subclasses build the backbone, then call ``super()``.

        The default builds the classifier head ``self.head`` on top of
        ``self.feature_dim``, which the subclass must set first.
        """
        dim = getattr(self, "feature_dim", None)
        if dim is None:
            raise NotImplementedError(
                f"{type(self).__name__}.configure_models must set self.feature_dim "
                "before calling super().configure_models()"
            )
        self.head = nn.Sequential(
            nn.Dropout(self.hparams.dropout) if self.hparams.dropout > 0 else nn.Identity(),
            nn.Linear(dim, self.hparams.num_classes),
        )

    def configure_losses(self) -> None:
        """Build the training criterion ``self.criterion(logits, labels)``."""
        self.criterion: nn.Module = nn.CrossEntropyLoss(
            label_smoothing=self.hparams.label_smoothing
        )

    def configure_metrics(self) -> None:
        """Build the torchmetrics collections for validation and test."""
        k = self.hparams.num_classes
        metrics = MetricCollection(
            {
                "top1": MulticlassAccuracy(k, top_k=1, average="micro"),
                "top5": MulticlassAccuracy(k, top_k=min(5, k), average="micro"),
                "macro_f1": MulticlassF1Score(k, average="macro"),
                "mean_class_acc": MulticlassAccuracy(k, average="macro"),
            },
            # Compute groups merge metrics whose states are equal after the first
            # update: top-1 and top-5 then share state for the rest of the epoch
            # whenever the first batch is classified perfectly.
            compute_groups=False,
        )
        self.val_metrics = metrics.clone(prefix="val/")
        self.test_metrics = metrics.clone(prefix="test/")
        self.test_confusion = MulticlassConfusionMatrix(k)

    def forward_features(self, batch: dict[str, Any]) -> Tensor:
        """Encode the inputs of a batch.

        Args:
            batch: a batch dict holding at least :attr:`input_keys`
                (modality tensors without a view axis).

        Returns:
            ``(B, D)`` features.
        """
        raise NotImplementedError

    def forward_head(self, features: Tensor) -> Tensor:
        """Classify features.

        Args:
            features: ``(B, D)``.

        Returns:
            ``(B, K)`` logits.
        """
        return self.head(features)

    # ------------------------------------------------------------------ forward
    def forward(self, batch: dict[str, Any]) -> Tensor:
        """Logits of a batch, averaging test-time views when the batch has them.

        Args:
            batch: a batch dict. A modality tensor with one more dimension than
                :data:`mgr.batch.MODALITY_NDIM` carries ``N`` views per sample:
                ``(B, N, ...)``.

        Returns:
            ``(B, K)`` logits; with views, the log of the averaged probabilities
            (``test_average="prob"``) or the averaged logits.
        """
        missing = [k for k in self.input_keys if k not in batch]
        if missing:
            raise KeyError(
                f"{type(self).__name__} needs batch keys {missing}, the batch has {sorted(batch)}"
            )
        views = self._num_views(batch)
        if views is None:
            return self.forward_head(self.forward_features(batch))
        folded = dict(batch)
        for key in self.input_keys:
            x = batch[key]
            if torch.is_tensor(x) and key in MODALITY_NDIM:
                folded[key] = x.flatten(0, 1)
        logits = self.forward_head(self.forward_features(folded))
        logits = logits.reshape(-1, views, logits.shape[-1])
        if self.hparams.test_average == "logit":
            return logits.mean(1)
        return logits.softmax(-1).mean(1).clamp_min(1e-12).log()

    def _num_views(self, batch: dict[str, Any]) -> int | None:
        views = set()
        for key in self.input_keys:
            x = batch[key]
            if key in MODALITY_NDIM and torch.is_tensor(x):
                extra = x.ndim - MODALITY_NDIM[key]
                if extra not in (0, 1):
                    raise ValueError(
                        f"batch[{key!r}] has shape {tuple(x.shape)}; expected "
                        f"{MODALITY_NDIM[key]} dims (or one more for views)"
                    )
                views.add(x.shape[1] if extra else None)
        if len(views) > 1:
            raise ValueError(f"inputs disagree on the number of test-time views: {views}")
        return views.pop() if views else None

    # ------------------------------------------------------------------ steps
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        """One optimisation step on a batch; logs ``train/loss``."""
        logits = self(batch)
        loss = self.criterion(logits, batch["label"])
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["label"]))
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """Update validation loss and metrics."""
        logits = self(batch)
        labels = batch["label"]
        self.log(
            "val/loss",
            nn.functional.cross_entropy(logits, labels),
            batch_size=len(labels),
            sync_dist=True,
        )
        self.val_metrics.update(logits, labels)
        self.log_dict(self.val_metrics, batch_size=len(labels), prog_bar=True)

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """Update test metrics and the confusion matrix."""
        logits = self(batch)
        labels = batch["label"]
        self.test_metrics.update(logits, labels)
        self.test_confusion.update(logits, labels)
        self.log_dict(self.test_metrics, batch_size=len(labels))

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        """Predictions of one batch.

        Returns:
            ``{"sample_id": list[str], "logits": (B, K), "probs": (B, K),
            "label": (B,)}`` (labels as given by the datamodule, ``-1`` if unknown).
        """
        logits = self(batch)
        out = {
            "sample_id": list(batch.get("sample_id", [])),
            "logits": logits.float(),
            "probs": logits.float().softmax(-1),
        }
        if "label" in batch:
            out["label"] = batch["label"]
        return out

    def on_test_epoch_end(self) -> None:
        """Write the confusion matrix (PNG) and per-class accuracy (CSV); print a summary."""
        cm = self.test_confusion.compute().cpu()
        self.test_confusion.reset()
        if not self.trainer.is_global_zero or cm.sum() == 0:
            return
        out_dir = Path(self.trainer.log_dir or self.trainer.default_root_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        names = self.hparams.get("class_names") or [str(i) for i in range(len(cm))]
        support = cm.sum(1)
        per_class = cm.diag() / support.clamp_min(1)
        with open(out_dir / "per_class_accuracy.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["label", "name", "support", "accuracy"])
            for i, name in enumerate(names):
                acc = f"{per_class[i]:.4f}" if support[i] > 0 else ""
                w.writerow([i, name, int(support[i]), acc])
        png = out_dir / "confusion_matrix.png"
        _plot_confusion(cm, names, png)
        metrics = {
            k: float(v) for k, v in self.trainer.callback_metrics.items() if k.startswith("test/")
        }
        ckpt = getattr(self.trainer, "ckpt_path", None)
        lines = ["", "mgr test summary"]
        for key in ("top1", "top5", "macro_f1", "mean_class_acc"):
            if f"test/{key}" in metrics:
                lines.append(f"  test {key:<15s} {metrics[f'test/{key}']:.4f}")
        lines += [
            f"  samples             {int(cm.sum())}",
            f"  checkpoint          {ckpt or '(weights in memory)'}",
            f"  confusion matrix    {png}",
            f"  per-class accuracy  {out_dir / 'per_class_accuracy.csv'}",
        ]
        rank_zero_info("\n".join(lines))

    # ------------------------------------------------------------------ setup
    def setup(self, stage: str) -> None:
        """Check that the datamodule supplies what this model reads."""
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if dm is None:
            return
        supplies = getattr(dm, "supplies", None)
        if supplies is not None:
            missing = [k for k in self.input_keys if k not in supplies]
            if missing:
                raise ValueError(
                    f"{type(self).__name__} reads batch keys {list(self.input_keys)} but "
                    f"{type(dm).__name__} supplies {list(supplies)}: missing {missing}"
                )
        n = getattr(dm, "num_classes", None)
        if n is not None and n != self.hparams.num_classes:
            raise ValueError(
                f"{type(dm).__name__} has {n} classes but the model was built "
                f"for num_classes={self.hparams.num_classes}"
            )

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Refuse a checkpoint trained on other classes, before any size-mismatch error."""
        hp = checkpoint.get("hyper_parameters", {})
        theirs, ours = hp.get("num_classes"), self.hparams.num_classes
        if theirs is not None and theirs != ours:
            raise ValueError(
                f"checkpoint was trained with num_classes={theirs}, this model "
                f"has num_classes={ours}"
            )
        their_names, our_names = hp.get("class_names"), self.hparams.get("class_names")
        if their_names and our_names and list(their_names) != list(our_names):
            diff = [
                i for i, (a, b) in enumerate(zip(their_names, our_names, strict=True)) if a != b
            ]
            raise ValueError(
                f"checkpoint class names differ from this model's at ids {diff[:5]} "
                f"(e.g. {their_names[diff[0]]!r} vs {our_names[diff[0]]!r})"
            )

    def configure_optimizers(self) -> Any:
        """Optimizer (and per-epoch scheduler) from the configured factories."""
        optimizer = self.optimizer_factory(self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer)
        config = {"scheduler": scheduler, "interval": "epoch"}
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            config["monitor"] = "val/loss"
        return {"optimizer": optimizer, "lr_scheduler": config}


def _plot_confusion(cm: Tensor, names: Sequence[str], path: Path) -> None:
    """Row-normalised confusion matrix as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = len(names)
    norm = (cm / cm.sum(1, keepdim=True).clamp_min(1)).numpy()
    size = max(4.0, 0.28 * k + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    labels = [f"{i} {n[:24]}" for i, n in enumerate(names)]
    ax.set_xticks(range(k), range(k), fontsize=6)
    ax.set_yticks(range(k), labels, fontsize=6)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("confusion matrix (row-normalised)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
