"""The Lightning hooks of a Recognizer (steps, evaluation outputs, setup, checkpoints).

:class:`~mgr.models.base.Recognizer` inherits them; its module holds the template
(networks, losses, metrics, the forward pass).
"""

from __future__ import annotations

import csv
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import LightningModule
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor, nn

from mgr.errors import UserError
from mgr.metrics import F1_MEAN_PARTS
from mgr.protocols import Protocol, literature_line

from .checkpoints import (
    check_checkpoint_model,
)
from .losses import (
    logit_adjusted,
)

__all__ = ["RecognizerHooks", "warmup_cosine"]

log = logging.getLogger(__name__)


class RecognizerHooks(LightningModule):
    """The Lightning hooks of :class:`~mgr.models.base.Recognizer`: steps, evaluation, setup.

    Training, validation, test and predict steps, the test outputs (confusion
    matrix, summary), the setup checks against the datamodule, the checkpoint
    hooks and the optimizers. Not used alone: :class:`~mgr.models.base.Recognizer`
    builds the networks, losses and metrics these hooks use.
    """

    # ------------------------------------------------------------------ steps
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        """One optimisation step on a batch; logs ``train/loss`` (and ``train/semantic_loss``).

        Training batches have no view axis, so features and logits come from
        :meth:`forward_features` and :meth:`forward_head` directly: the
        semantic loss needs the features.
        """
        if self._counts_missing:
            raise RuntimeError(_NO_COUNTS)
        self._check_input_keys(batch)
        labels = batch["label"]
        features = self.forward_features(batch)
        logits = self.forward_head(features)
        tau = self.hparams.logit_adjust_tau
        if tau > 0:
            logits = logit_adjusted(logits, self.log_prior, tau)
        loss = self.criterion(logits, labels)
        if self.semantic_loss is not None:
            semantic = self.semantic_loss(features, labels)
            self.log("train/semantic_loss", semantic, batch_size=len(labels))
            loss = loss + self.hparams.semantic_loss_weight * semantic
        self.log("train/loss", loss, prog_bar=True, batch_size=len(labels))
        return loss

    # Evaluation under DDP: the eval loaders shard each split without repeats
    # (mgr.datamodules.base.eval_shard_sampler), so processes may run different numbers
    # of batches. The steps therefore only update metric states; every synchronisation
    # (torchmetrics' compute, Trainer.log_dir) happens in the epoch-end hooks, which run
    # on every process.
    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """Update the validation loss and metrics (logged at the end of the epoch)."""
        self.update_eval_metrics("val", self(batch), batch["label"])

    def update_val_loss(self, logits: Tensor, labels: Tensor) -> None:
        """Add a batch to ``val/loss``, the split's mean cross-entropy.

        Args:
            logits: ``(B, K)``.
            labels: ``(B,)``.
        """
        self.val_loss.update(nn.functional.cross_entropy(logits.float(), labels, reduction="none"))

    def on_validation_epoch_start(self) -> None:
        """Start the epoch's metrics from empty states."""
        self.val_metrics.reset()
        self.val_loss.reset()
        if self.val_f1_mean is not None:
            self.val_f1_mean.reset()

    def on_validation_epoch_end(self) -> None:
        """Log ``val/loss`` and the validation metrics, synchronised over processes."""
        self.val_metrics.compute()  # on every process: each compute() is a collective
        self.val_loss.compute()
        # Logged as Metric objects: Lightning reads their (cached) values and resets them.
        self.log_dict(self.val_metrics, prog_bar=True)
        self.log("val/loss", self.val_loss)
        self._log_f1_mean("val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """Update test metrics and the confusion matrix."""
        self.update_eval_metrics("test", self(batch), batch["label"])

    def on_test_epoch_start(self) -> None:
        """Start the epoch's metrics from empty states."""
        self.test_metrics.reset()
        self.test_confusion.reset()
        if self.test_f1_mean is not None:
            self.test_f1_mean.reset()

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
        """Log the test metrics; write the confusion matrix (PNG, CSV) and per-class accuracy.

        Files go to the trainer's ``log_dir`` (or ``default_root_dir``):
        ``per_class_accuracy.csv`` (``label,name,support,accuracy``),
        ``confusion_matrix.csv`` (counts, row = true class) and ``confusion_matrix.png``
        (row-normalised).

        Under several processes the metrics and the confusion matrix are
        synchronised on every process, then process 0 alone writes the files and
        prints the summary.
        """
        # Collectives first, on every process: metric syncs and log_dir (a broadcast).
        metrics = {k: float(v) for k, v in self.test_metrics.compute().items()}
        self.log_dict(self.test_metrics)
        metrics.update(self._log_f1_mean("test"))
        cm = self.test_confusion.compute().cpu()
        self.test_confusion.reset()
        out_dir = Path(self.trainer.log_dir or self.trainer.default_root_dir)
        if self.trainer.is_global_zero and cm.sum() > 0:
            self._write_test_outputs(cm, metrics, out_dir)
        self.trainer.strategy.barrier("mgr_test_outputs")  # files exist when any process returns

    def _write_test_outputs(self, cm: Tensor, metrics: dict[str, float], out_dir: Path) -> None:
        """Per-class CSV, confusion-matrix PNG and the printed summary (process 0)."""
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
        with open(out_dir / "confusion_matrix.csv", "w", newline="") as f:
            w = csv.writer(f)  # raw counts: row = true class, column = predicted class
            w.writerow(["label", *range(len(names))])
            w.writerows([i, *row] for i, row in enumerate(cm.long().tolist()))
        png = out_dir / "confusion_matrix.png"
        _plot_confusion(cm, names, png)
        ckpt = getattr(self.trainer, "ckpt_path", None)
        lines = ["", "mgr test summary"]
        protocol = self._protocol("test")
        if protocol is not None:
            lines.append(f"  protocol            {protocol.describe()}")
        keys = (
            "top1",
            "top5",
            "macro_f1",
            "mean_class_acc",
            "f1_mean",
            *F1_MEAN_PARTS,
            "body_top1",
        )
        for key in keys:
            if f"test/{key}" in metrics:
                lines.append(f"  test {key:<15s} {metrics[f'test/{key}']:.4f}")
        lines += [
            f"  samples             {int(cm.sum())}",
            f"  checkpoint          {ckpt or '(weights in memory)'}",
            f"  confusion matrix    {png} (counts: confusion_matrix.csv)",
            f"  per-class accuracy  {out_dir / 'per_class_accuracy.csv'}",
        ]
        literature = literature_line(protocol) if protocol is not None else None
        if literature:
            lines.append(f"  literature          {literature}")
        rank_zero_info("\n".join(lines))

    def _protocol(self, split: str) -> Protocol | None:
        dm = getattr(self.trainer, "datamodule", None)
        return dm.protocol(split) if callable(getattr(dm, "protocol", None)) else None

    # ------------------------------------------------------------------ setup
    def setup(self, stage: str) -> None:
        """Check that the datamodule supplies what this model reads; take its class histogram.

        At ``fit``, ``class_counts`` not given as an argument are read from the
        datamodule's ``class_histogram("train")`` (when it has one) and the
        losses are rebuilt with them.
        """
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if dm is not None:
            self._check_datamodule(dm)
            if getattr(dm, "dataset", None) == "ma52" and self.hparams.num_classes == 52:
                self.enable_f1_mean()
        if self._trainer is not None and self.trainer.strategy.root_device.type == "mps":
            self.val_loss.set_dtype(torch.float32)  # MPS has no float64
        if stage == "fit":
            self._setup_class_counts(dm)
            resuming = self._trainer is not None and self.trainer.ckpt_path is not None
            if self.hparams.get("init_from") and not resuming:
                self.init_weights_from(
                    self.hparams.init_from, reset_head=self.hparams.get("init_reset_head")
                )

    def _check_datamodule(self, dm: Any) -> None:
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

    def _setup_class_counts(self, dm: Any) -> None:
        # Explicit counts > the attached datamodule's > counts already loaded.
        if self.hparams.class_counts is not None:
            self.set_class_counts(self.hparams.class_counts)
        elif callable(getattr(dm, "class_histogram", None)):
            self.set_class_counts(dm.class_histogram("train"))
        if self._counts_missing:
            raise ValueError(_NO_COUNTS)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Drop the start-from paths (``pretrained``, ``init_from``) from the saved settings.

        The checkpoint holds the trained weights, so ``load_from_checkpoint`` must
        not read (or need) the files training started from. The class is recorded
        (``mgr_class``) so that :func:`mgr.features.load_recognizer` can rebuild a
        checkpoint saved outside ``mgr fit``.
        """
        checkpoint["mgr_class"] = f"{type(self).__module__}.{type(self).__qualname__}"
        hparams = checkpoint.get("hyper_parameters")
        if isinstance(hparams, dict):
            for key in ("pretrained", "init_from"):
                if hparams.get(key) is not None:
                    hparams[key] = None

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Refuse a checkpoint of another model or other classes, before any size mismatch.

        Raises:
            UserError: naming the checkpoint's class or classes and this model's.
        """
        check_checkpoint_model(checkpoint, self)
        hp = checkpoint.get("hyper_parameters", {})
        theirs, ours = hp.get("num_classes"), self.hparams.num_classes
        if theirs is not None and theirs != ours:
            raise UserError(
                f"checkpoint was trained with num_classes={theirs}, this model "
                f"has num_classes={ours}: use a checkpoint trained on this dataset's classes"
            )
        their_names, our_names = hp.get("class_names"), self.hparams.get("class_names")
        if their_names and our_names and list(their_names) != list(our_names):
            diff = [
                i for i, (a, b) in enumerate(zip(their_names, our_names, strict=True)) if a != b
            ]
            raise UserError(
                f"checkpoint class names differ from this model's at ids {diff[:5]} "
                f"(e.g. {their_names[diff[0]]!r} vs {our_names[diff[0]]!r})"
            )

    def optimizer_param_groups(self) -> list[Tensor] | list[dict[str, Any]]:
        """What the optimizer factory receives: the trainable parameters, or param groups.

        Override to give groups their own settings (e.g. ``weight_decay``); a
        group's ``lr_scale`` multiplies the optimizer's learning rate (layer-wise
        learning-rate decay, :class:`mgr.models.VideoViT`).
        """
        return [p for p in self.parameters() if p.requires_grad]

    def configure_optimizers(self) -> Any:
        """Optimizer over trainable parameters; per-epoch scheduler or per-step warm-up cosine."""
        optimizer = self.optimizer_factory(self.optimizer_param_groups())
        for group in optimizer.param_groups:  # before the scheduler records its base lrs
            group["lr"] = group["lr"] * group.get("lr_scale", 1.0)
        warmup = self.hparams.get("warmup_ratio")
        if warmup is not None:
            total = max(1, int(self.trainer.estimated_stepping_batches))
            steps = int(warmup * total)
            schedule = torch.optim.lr_scheduler.LambdaLR(
                optimizer, lambda step: warmup_cosine(step, total, steps)
            )
            return {
                "optimizer": optimizer,
                "lr_scheduler": {"scheduler": schedule, "interval": "step"},
            }
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer)
        config = {"scheduler": scheduler, "interval": "epoch"}
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            config["monitor"] = "val/loss"
        return {"optimizer": optimizer, "lr_scheduler": config}


def warmup_cosine(step: int, total: int, warmup: int) -> float:
    """Learning-rate factor: linear warm-up over ``warmup`` steps, then cosine to 0 at ``total``."""
    if step < warmup:
        return (step + 1) / (warmup + 1)
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


_NO_COUNTS = (
    "class_weights='sqrt' and logit_adjust_tau > 0 need the training class histogram: "
    "pass class_counts=[...] or fit with a datamodule that has class_histogram()"
)


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
