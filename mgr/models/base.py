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

The Lightning hooks (steps, test outputs, setup checks, checkpoint hooks,
optimizers) are inherited from :class:`~mgr.models.hooks.RecognizerHooks`; this
module is the template (settings, networks, losses, metrics, forward pass).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
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
from mgr.metrics import F1Mean, SampleMean, is_ma52

from .checkpoints import (
    LoadReport,
    checkpoint_state_dict,
    read_checkpoint,
)
from .hooks import _NO_COUNTS, RecognizerHooks, warmup_cosine  # noqa: F401  (re-exported)
from .losses import (
    OrthogonalSemanticLoss,
    SoftmaxFocalLoss,
    class_log_prior,
    sqrt_smoothed_weights,
)

__all__ = ["Recognizer", "warmup_cosine"]

log = logging.getLogger(__name__)


def _default_optimizer(params: Any) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=1e-3, weight_decay=1e-4)


class Recognizer(RecognizerHooks):
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
