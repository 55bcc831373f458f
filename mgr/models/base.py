"""The Recognizer template: a LightningModule every mgr model derives from.

A subclass builds its network in :meth:`Recognizer.configure_models` and
implements :meth:`Recognizer.forward_features` (batch -> ``(B, D)``); the
default :meth:`Recognizer.forward_head` is dropout + a linear classifier. To
put a new head on any recognizer, override ``forward_head`` (and
``configure_models`` to build it). The template owns the losses, the metrics,
the optimizer/scheduler plumbing, test-time view averaging and prediction
output.

The training loss is selectable on every recognizer (:mod:`mgr.models.losses`):
cross-entropy or softmax focal loss, square-root smoothed class weights,
logit adjustment and the orthogonal semantic embedding loss of CMPL (§3.2).
The ones that need the training class histogram read it from
``class_counts`` or, when that is not given, from the datamodule's
``class_histogram("train")`` at ``setup("fit")``; the histogram is kept in the
``class_counts`` buffer, so checkpoints rebuild the same criterion.

``configure_models`` is plural on purpose: Lightning's own
``LightningModule.configure_model`` hook is called by the Trainer at every
``fit``/``test`` (for sharded initialisation), and building the network there
would re-initialise a loaded model.
"""

from __future__ import annotations

import csv
import logging
import math
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
from mgr.data.transforms.video import finish_video_batch
from mgr.errors import UserError
from mgr.metrics import F1_MEAN_PARTS, F1Mean, SampleMean, is_ma52
from mgr.protocols import Protocol, literature_line

from .checkpoints import (
    LoadReport,
    check_checkpoint_model,
    checkpoint_state_dict,
    read_checkpoint,
)
from .losses import (
    OrthogonalSemanticLoss,
    SoftmaxFocalLoss,
    class_log_prior,
    logit_adjusted,
    sqrt_smoothed_weights,
)

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
        label_smoothing: label smoothing of the training loss (cross-entropy
            or focal).
        test_average: how test-time views (clips, flips) are combined:
            mean of probabilities (``"prob"``) or of logits (``"logit"``).
        loss: training classification loss: cross-entropy (``"ce"``) or the
            softmax focal loss (``"focal"``, :class:`~mgr.models.losses.SoftmaxFocalLoss`).
        focal_gamma: focusing parameter of the focal loss.
        class_weights: per-class loss weights: ``"none"``, or ``"sqrt"``, the
            square-root smoothed weights ``1 / sqrt(N_c + 1)`` of the training
            histogram, normalised to a sample-weighted mean of one
            (:func:`~mgr.models.losses.sqrt_smoothed_weights`). Weighted
            losses, ``"ce"`` included, average over the batch size, not over the
            sum of the weights.
        logit_adjust_tau: temperature of the logit-adjusted training loss
            (``logits + tau * log prior``, Menon et al. 2021); ``0`` turns it off.
            Only the training loss is adjusted: evaluation uses the raw logits.
        semantic_loss_weight: weight of the orthogonal semantic embedding loss
            on the features (:class:`~mgr.models.losses.OrthogonalSemanticLoss`);
            ``0`` turns it off. Needs a feature dimension ``>= num_classes``.
        semantic_seed: seed of the fixed orthonormal class anchors.
        class_counts: training samples per class ``(K,)``. ``None``: taken from
            the datamodule's ``class_histogram("train")`` at ``setup("fit")``.
            Needed by ``class_weights="sqrt"`` and ``logit_adjust_tau > 0``.
        init_from: an mgr checkpoint (``.ckpt`` of ``mgr fit``) or a state dict
            file of this recognizer to start from: transfer learning, e.g.
            pretrain on MA-52 and fine-tune on iMiGUE (MM-Gesture). Loaded when
            a fit starts from scratch (not when it resumes from ``ckpt_path``, and
            not when this checkpoint is reloaded for testing); the class
            histogram buffer is not taken over. In a notebook call
            :meth:`init_weights_from` directly.
        init_reset_head: what to do with the classifier of ``init_from`` (the
            rule of every ``pretrained_reset_head`` too): ``None`` (auto) keeps
            the checkpoint's classifier when its classes are this model's (same
            count and, where both store them, same names) and otherwise keeps
            this recognizer's freshly initialised one; the log says which and
            why. ``True`` always resets it, ``False`` always keeps it (other
            classes are then an error).
        warmup_ratio: instead of ``scheduler``, a per-step schedule: linear
            warm-up over this share of the training steps, then cosine decay to
            zero (FG-SGL: 0.03). Transformers trained from scratch need it: without
            warm-up the SynthMG Video Swin collapsed to the majority class.
            ``None``: off.
        trust_checkpoint: the ``pretrained`` / ``init_from`` files are trusted:
            unpickle them fully, running code they hold (PyTorch's
            ``weights_only=False``). Off, they are read with the weights-only
            unpickler (:func:`~mgr.models.checkpoints.read_checkpoint`), which
            is enough for Lightning, mmaction2, pyskl and torchvision checkpoints.

    The validation loss ``val/loss`` is always plain, unweighted
    cross-entropy without smoothing, so it is comparable across loss settings.
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
        loss: Literal["ce", "focal"] = "ce",
        focal_gamma: float = 2.0,
        class_weights: Literal["none", "sqrt"] = "none",
        logit_adjust_tau: float = 0.0,
        semantic_loss_weight: float = 0.0,
        semantic_seed: int = 0,
        class_counts: list[int] | None = None,
        init_from: str | None = None,
        init_reset_head: bool | None = None,
        warmup_ratio: float | None = None,
        trust_checkpoint: bool = False,
    ) -> None:
        super().__init__()
        if warmup_ratio is not None and not 0.0 <= warmup_ratio < 1.0:
            raise ValueError(f"warmup_ratio must be in [0, 1), got {warmup_ratio}")
        if warmup_ratio is not None and scheduler is not None:
            raise ValueError("warmup_ratio is a schedule of its own: drop the scheduler")
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"{len(class_names)} class names given for num_classes={num_classes}")
        if test_average not in ("prob", "logit"):
            raise ValueError(f"test_average must be 'prob' or 'logit', got {test_average!r}")
        if loss not in ("ce", "focal"):
            raise ValueError(f"loss must be 'ce' or 'focal', got {loss!r}")
        if class_weights not in ("none", "sqrt"):
            raise ValueError(f"class_weights must be 'none' or 'sqrt', got {class_weights!r}")
        for name, value in (
            ("focal_gamma", focal_gamma),
            ("logit_adjust_tau", logit_adjust_tau),
            ("semantic_loss_weight", semantic_loss_weight),
        ):
            if value < 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
        if class_counts is not None:
            class_counts = _check_counts(class_counts, num_classes)
        self.save_hyperparameters(ignore=["optimizer", "scheduler"])
        if class_names is not None:
            self.hparams["class_names"] = list(class_names)
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        # All zeros = not known yet. Persistent, so checkpoints carry the histogram
        # the criterion was built from; the loss modules themselves are derived state.
        counts = torch.zeros(num_classes, dtype=torch.long)
        if class_counts is not None:
            counts = torch.tensor(class_counts, dtype=torch.long)
        self.register_buffer("class_counts", counts)
        self.register_buffer("log_prior", None, persistent=False)
        self.semantic_loss: nn.Module | None = None
        self._counts_missing = False
        self.register_load_state_dict_post_hook(_rebuild_losses_after_load)
        self.configure_models()
        self.configure_losses()
        self.configure_metrics()

    #: state-dict prefixes of the classifier (skipped by ``init_reset_head``).
    head_prefixes: ClassVar[tuple[str, ...]] = ("head.",)

    def init_weights_from(self, path: str | Path, *, reset_head: bool | None = None) -> list[str]:
        """Load the weights of another run of this recognizer (transfer learning).

        Args:
            path: a Lightning checkpoint (weights under ``"state_dict"``) or a
                plain state dict saved with ``torch.save``.
            reset_head: ``True``: skip the classifier (:attr:`head_prefixes`) and
                keep this module's initialisation; ``False``: load it; ``None``
                (auto): load it when the checkpoint's classes are this model's
                (count and, where stored, names), else skip it. The decision is logged.

        Returns:
            The loaded keys.

        Raises:
            UserError: naming the file, if it is not a checkpoint.
            ValueError: naming the file, if the classifier's class count differs
                (with ``reset_head=False``), another tensor's shape differs, or
                keys are missing or unexpected.
        """
        ckpt = read_checkpoint(path, trust=bool(self.hparams.get("trust_checkpoint")))
        state = checkpoint_state_dict(ckpt, path)
        own = self.state_dict()
        decision = "reset (init_reset_head=True)" if reset_head else "kept (init_reset_head=False)"
        if reset_head is None:
            reason = self._names_differ(ckpt) or self._head_shapes_differ(state, own)
            reset_head = reason is not None
            decision = f"reset: {reason}" if reset_head else self._kept(ckpt)
        # Dataset-specific buffers stay ours: the histogram belongs to the new data.
        skip = ("class_counts", "log_prior", "semantic_loss.")
        if reset_head:
            skip += self.head_prefixes
        loaded = {}
        for key, value in state.items():
            if key.startswith(skip):
                continue
            if key not in own:
                raise ValueError(f"{path}: unexpected key {key!r} for {type(self).__name__}")
            if own[key].shape != value.shape:
                if key.startswith(self.head_prefixes):
                    raise ValueError(
                        f"{path}: classifier {key!r} has shape {tuple(value.shape)}, this "
                        f"model's {tuple(own[key].shape)} ({self.hparams.num_classes} "
                        "classes); set init_reset_head=True to fine-tune on other classes"
                    )
                raise ValueError(
                    f"{path}: {key!r} has shape {tuple(value.shape)}, expected "
                    f"{tuple(own[key].shape)} (a different architecture or input)"
                )
            loaded[key] = value
        missing = [
            k
            for k in own
            if k not in loaded and not k.startswith(skip) and not k.endswith("num_batches_tracked")
        ]
        if missing:
            raise ValueError(f"{path}: missing keys for {type(self).__name__}: {missing[:10]}")
        self.load_state_dict(loaded, strict=False)
        rank_zero_info(
            f"{type(self).__name__}: {len(loaded)} tensors from {path}; classifier {decision}"
        )
        return sorted(loaded)

    def load_pretrained(
        self,
        path: str | Path,
        loader: Any,
        reset_head: bool | None,
        **kwargs: Any,
    ) -> LoadReport:
        """Load start weights from another library's checkpoint, by the head rule.

        The checkpoint's classifier is kept when its classes are this model's
        (class count and, where both store them, class names) and reset
        otherwise; ``reset_head`` forces either. What happened is logged.

        Args:
            path: the checkpoint file.
            loader: a key-mapping loader such as
                :func:`~mgr.models.checkpoints.load_mmaction_checkpoint`, called as
                ``loader(self, state_dict, reset_head=..., **kwargs)``.
            reset_head: ``None`` (auto), ``True`` (reset) or ``False`` (keep).
            **kwargs: passed to ``loader``.

        Returns:
            The loader's report (:attr:`~mgr.models.checkpoints.LoadReport.head`
            says what happened to the classifier).
        """
        ckpt = read_checkpoint(path, trust=bool(self.hparams.get("trust_checkpoint")))
        state = checkpoint_state_dict(ckpt, path)
        reason = self._names_differ(ckpt) if reset_head is None else None
        report = loader(self, state, reset_head=True if reason else reset_head, **kwargs)
        if reason:
            report.head = f"reset: {reason}"
        elif report.head.startswith("kept:"):
            report.head = self._kept(ckpt)
        rank_zero_info(f"{type(self).__name__} weights from {path}: {report}")
        return report

    def _names_differ(self, ckpt: Any) -> str | None:
        """Why the checkpoint's stored class names rule out its classifier, or ``None``."""
        theirs, ours = _stored_class_names(ckpt), self.hparams.get("class_names")
        if not theirs or not ours or len(theirs) != len(ours) or list(theirs) == list(ours):
            return None  # unknown, or the class counts decide
        i = next(i for i, (a, b) in enumerate(zip(theirs, ours, strict=True)) if a != b)
        return (
            f"the checkpoint's {len(theirs)} classes have other names "
            f"(id {i}: {theirs[i]!r}, this model {ours[i]!r})"
        )

    def _head_shapes_differ(self, state: dict[str, Tensor], own: dict[str, Tensor]) -> str | None:
        """Why the checkpoint's classifier does not fit this model, or ``None``."""
        heads = [k for k in state if k.startswith(self.head_prefixes) and k in own]
        if not heads:
            return "the checkpoint has no classifier"
        for key in heads:
            if state[key].ndim >= 1 and state[key].shape[0] != own[key].shape[0]:
                return (
                    f"the checkpoint's classifier has {state[key].shape[0]} classes, "
                    f"this model {own[key].shape[0]}"
                )
        return None

    def _kept(self, ckpt: Any) -> str:
        names = "same names" if _stored_class_names(ckpt) else "names not stored"
        return f"kept: the checkpoint has this model's {self.hparams.num_classes} classes ({names})"

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
        """Build the training losses from the hyperparameters and ``class_counts``.

        Sets ``self.criterion(logits (B, K), labels (B,))``, ``self.log_prior``
        (``(K,)`` buffer for logit adjustment, or ``None``) and
        ``self.semantic_loss(features (B, D), labels (B,))`` (or ``None``).
        Called again whenever ``class_counts`` changes (``setup("fit")``,
        loading a state dict). The loss modules' buffers are not saved: they
        are rebuilt from the hyperparameters and ``class_counts``, so a
        checkpoint loads whatever loss the new model is configured with.
        """
        hp = self.hparams
        device = self.class_counts.device
        counts = self.class_counts if bool(self.class_counts.any()) else None
        needs_counts = hp.class_weights != "none" or hp.logit_adjust_tau > 0
        # Checked by training_step: a weighted criterion must not silently train unweighted.
        self._counts_missing = needs_counts and counts is None
        weight = None
        if hp.class_weights == "sqrt" and counts is not None:
            weight = sqrt_smoothed_weights(counts)
        if hp.loss == "ce" and weight is None:
            criterion: nn.Module = nn.CrossEntropyLoss(label_smoothing=hp.label_smoothing)
        else:
            # Weighted CE is the focal loss with gamma=0, so that "ce" and "focal"
            # share the per-batch-size mean (torch's weighted CE divides by sum w_y).
            gamma = hp.focal_gamma if hp.loss == "focal" else 0.0
            criterion = SoftmaxFocalLoss(gamma, weight=weight, label_smoothing=hp.label_smoothing)
        self.criterion = _derived(criterion).to(device)
        log_prior = None
        if hp.logit_adjust_tau > 0 and counts is not None:
            log_prior = class_log_prior(counts)
        self.register_buffer("log_prior", log_prior, persistent=False)
        self.semantic_loss = None
        if hp.semantic_loss_weight > 0:
            sem = OrthogonalSemanticLoss(hp.num_classes, self.feature_dim, seed=hp.semantic_seed)
            self.semantic_loss = _derived(sem).to(device)

    def set_class_counts(self, counts: Tensor | Sequence[int]) -> None:
        """Set the training class histogram and rebuild the losses.

        Args:
            counts: ``(K,)`` training samples per class.
        """
        counts = _check_counts(counts, self.hparams.num_classes)
        self.class_counts.copy_(torch.tensor(counts, dtype=torch.long))
        self.configure_losses()

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
        # val/loss as a sum and a count (float64), summed over processes: the exact mean
        # over the split, where a mean of per-process means would weigh shards wrongly.
        self.val_loss = SampleMean()
        # MA-52's official ranking metric (F1_mean, its four parts, body-part top-1) when the
        # classes are MA-52's 52 actions (by name: the fine->coarse map needs their order).
        self.val_f1_mean: F1Mean | None = None
        self.test_f1_mean: F1Mean | None = None
        if is_ma52(self.hparams.get("class_names") or []):
            self.enable_f1_mean()

    def enable_f1_mean(self) -> None:
        """Log MA-52's ``F1_mean`` and its parts (``val/f1_mean``, ``test/coarse_macro_f1`` ...).

        Called by :meth:`configure_metrics` when ``class_names`` are MA-52's and by
        :meth:`setup` when the datamodule is MA-52's; ``val/f1_mean`` is then a valid
        ``ModelCheckpoint(monitor=...)``.
        """
        if self.val_f1_mean is None:
            self.val_f1_mean, self.test_f1_mean = F1Mean(), F1Mean()

    def update_eval_metrics(self, stage: str, logits: Tensor, labels: Tensor) -> None:
        """Add a batch to the ``val`` or ``test`` metrics (no synchronisation here).

        Args:
            stage: ``"val"`` or ``"test"``.
            logits: ``(B, K)``.
            labels: ``(B,)``.
        """
        if stage == "val":
            self.update_val_loss(logits, labels)
            self.val_metrics.update(logits, labels)
        else:
            self.test_metrics.update(logits, labels)
            self.test_confusion.update(logits, labels)
        f1_mean = self.val_f1_mean if stage == "val" else self.test_f1_mean
        if f1_mean is not None:
            f1_mean.update(logits.float().softmax(-1), labels)

    def _log_f1_mean(self, stage: str) -> dict[str, float]:
        # compute() is a collective (sum of confusion counts over processes): every process
        # calls it; the values are then global, logged without a second reduction.
        metric = self.val_f1_mean if stage == "val" else self.test_f1_mean
        if metric is None:
            return {}
        values = {f"{stage}/{k}": float(v) for k, v in metric.compute().items()}
        metric.reset()
        self.log_dict(values, prog_bar=False, sync_dist=False, rank_zero_only=False)
        return values

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
        self._check_input_keys(batch)
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

    def _check_input_keys(self, batch: dict[str, Any]) -> None:
        missing = [k for k in self.input_keys if k not in batch]
        if missing:
            raise KeyError(
                f"{type(self).__name__} needs batch keys {missing}, the batch has {sorted(batch)}"
            )
        # A loader's uint8 video that bypassed the datamodule's on_after_batch_transfer
        # (a collated batch fed to the model by hand) is finished here, in place.
        finish_video_batch(batch)

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


def _stored_class_names(ckpt: Any) -> list[str] | None:
    """The class names a checkpoint records, or ``None``.

    mgr / Lightning store them in ``hyper_parameters.class_names``, mmengine in
    ``meta.dataset_meta.classes``, mmcv 1 (pyskl) in ``meta.CLASSES``.
    """
    if not isinstance(ckpt, dict):
        return None
    hparams, meta = ckpt.get("hyper_parameters"), ckpt.get("meta")
    candidates = []
    if isinstance(hparams, dict):
        candidates.append(hparams.get("class_names"))
    if isinstance(meta, dict):
        dataset_meta = meta.get("dataset_meta")
        if isinstance(dataset_meta, dict):
            candidates.append(dataset_meta.get("classes"))
        candidates.append(meta.get("CLASSES"))
    for names in candidates:
        if isinstance(names, list | tuple) and names and all(isinstance(n, str) for n in names):
            return list(names)
    return None


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


def _check_counts(counts: Tensor | Sequence[int], num_classes: int) -> list[int]:
    """Validate a ``(K,)`` class histogram; return it as a list of ints."""
    values = torch.as_tensor(counts).tolist()
    if not isinstance(values, list) or len(values) != num_classes:
        raise ValueError(f"class_counts must have num_classes={num_classes} entries, got {counts}")
    if any(int(v) != v or v < 0 for v in values) or sum(values) == 0:
        raise ValueError(f"class_counts must be non-negative integers, not all zero: {values}")
    return [int(v) for v in values]


def _derived(module: nn.Module) -> nn.Module:
    """Make a loss module's buffers non-persistent: they are rebuilt, never loaded."""
    for sub in module.modules():
        for name, buf in list(sub.named_buffers(recurse=False)):
            sub.register_buffer(name, buf, persistent=False)
    return module


def _rebuild_losses_after_load(module: Recognizer, incompatible_keys: Any) -> None:
    """Rebuild the losses from the loaded ``class_counts``.

    A state dict without ``class_counts`` (converted from another library, or
    older than the buffer) still loads strictly: the counts stay as they were.
    """
    missing = incompatible_keys.missing_keys
    for key in [k for k in missing if k == "class_counts" or k.endswith(".class_counts")]:
        missing.remove(key)
    module.configure_losses()


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
