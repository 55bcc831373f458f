"""Clip-classification metrics beyond torchmetrics' own: MA-52's official ``F1_mean``.

MA-52 (and the MAC'24 / MAC'25 micro-action challenges) rank recognizers by
``F1_mean``, the mean of four F1 scores computed by the challenge baseline's
evaluation code (``AccMetric.lv_evaluation`` of the MAC baseline's mmaction2
fork; its published VSwin-S scores top-1 58.88, top-5 89.63, F1_mean 65.64 on
the test set):

* the predicted action is the arg-max of the 52 action scores; its body part is
  the official fine-to-coarse map of that action (:func:`mgr.classes.ma52_fine_to_coarse`),
* fine-grained (52 actions) micro-F1 and macro-F1, and coarse-grained (7 body
  parts) micro-F1 and macro-F1, each with scikit-learn's ``f1_score`` semantics:
  micro-F1 of single-label predictions is the accuracy; macro-F1 averages the
  per-class ``2 TP / (2 TP + FP + FN)`` over the classes that occur in the
  labels *or* the predictions (a class absent from both is left out, a class
  only predicted counts with F1 0),
* ``F1_mean`` is their plain mean.

:class:`F1Mean` keeps one fine confusion matrix (``K x K`` counts, summed across
processes), from which every part follows exactly: the coarse confusion matrix
is the fine one summed over the blocks of each body part. It also reports the
body-part top-1 of the challenge's submission file (``body_pred_1``: the body
part with the largest *summed* action probability, see
:func:`mgr.predictions.write_submission`), which can differ from the coarse
micro-F1 (the body part of the top action) when probability mass is spread.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

from mgr.classes import get_classes

__all__ = ["F1_MEAN_PARTS", "F1Mean", "f1_from_confusion", "is_ma52"]

F1_MEAN_PARTS: tuple[str, ...] = (
    "fine_micro_f1",
    "fine_macro_f1",
    "coarse_micro_f1",
    "coarse_macro_f1",
)
"""The four scores averaged into ``f1_mean``."""


def is_ma52(class_names: Sequence[str]) -> bool:
    """Whether a class list is MA-52's 52 actions in their official order (``F1Mean`` applies)."""
    return list(class_names) == list(get_classes("ma52").names)


def f1_from_confusion(cm: Tensor) -> tuple[Tensor, Tensor]:
    """Micro- and macro-F1 of single-label predictions from their confusion matrix.

    Args:
        cm: ``(K, K)`` counts, ``cm[true, predicted]``.

    Returns:
        ``(micro, macro)`` as float64 scalars. Macro averages over the classes with
        ``TP + FP + FN > 0`` (present in the labels or the predictions), as
        scikit-learn does; both are 0 for an empty matrix.
    """
    cm = cm.to(torch.float64)
    tp = cm.diagonal()
    fp = cm.sum(0) - tp
    fn = cm.sum(1) - tp
    total = cm.sum()
    micro = tp.sum() / total if total > 0 else total.new_zeros(())
    present = (tp + fp + fn) > 0
    if not bool(present.any()):
        return micro, micro.new_zeros(())
    f1 = 2 * tp[present] / (2 * tp[present] + fp[present] + fn[present])
    return micro, f1.mean()


class F1Mean(Metric):
    """MA-52's ``F1_mean`` and its four parts, synchronised across processes.

    Args:
        group_of: body-part (coarse) id of every class id, ``(K,)``; default: MA-52's
            official fine-to-coarse map (52 actions, 7 body parts).
        **kwargs: passed to :class:`torchmetrics.Metric` (``sync_on_compute`` ...).

    ``update(probs, target)``:
        probs: ``(N, K)`` class probabilities (or any scores whose per-row arg-max is
            the prediction; the body-part top-1 sums them per body part, so pass
            probabilities for it to mean the submission's ``body_pred_1``).
        target: ``(N,)`` class ids.

    ``compute()`` returns ``{"f1_mean", "fine_micro_f1", "fine_macro_f1",
    "coarse_micro_f1", "coarse_macro_f1", "body_top1"}`` (float scalars in ``[0, 1]``).

    Example:
        >>> metric = F1Mean()
        >>> metric.update(torch.eye(52)[[0, 5, 11]], torch.tensor([0, 6, 30]))
        >>> round(float(metric.compute()["coarse_micro_f1"]), 4)
        0.6667
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    confusion: Tensor
    body_correct: Tensor

    def __init__(self, group_of: Sequence[int] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if group_of is None:
            group_of = get_classes("ma52").group_of
        groups = torch.as_tensor(list(group_of), dtype=torch.long)
        if groups.ndim != 1 or len(groups) < 2 or bool((groups < 0).any()):
            raise ValueError(f"group_of must list a non-negative group id per class, got {groups}")
        self.num_classes = len(groups)
        self.num_groups = int(groups.max()) + 1
        self.register_buffer("group_of", groups, persistent=False)
        k = self.num_classes
        self.add_state("confusion", torch.zeros(k, k, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("body_correct", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    def update(self, probs: Tensor, target: Tensor) -> None:
        """Add a batch of predictions (see the class docstring)."""
        if probs.ndim != 2 or probs.shape[1] != self.num_classes:
            raise ValueError(
                f"F1Mean expects scores (N, {self.num_classes}), got {tuple(probs.shape)}"
            )
        target = target.long()
        if target.shape != probs.shape[:1]:
            raise ValueError(f"targets {tuple(target.shape)} for scores {tuple(probs.shape)}")
        if target.numel() and not 0 <= int(target.min()) <= int(target.max()) < self.num_classes:
            raise ValueError(f"targets must be class ids in 0..{self.num_classes - 1}")
        k = self.num_classes
        pred = probs.argmax(1)
        self.confusion += torch.bincount(target * k + pred, minlength=k * k).reshape(k, k)
        groups = self.group_of.to(probs.device)
        body = torch.zeros(len(probs), self.num_groups, dtype=probs.dtype, device=probs.device)
        body.index_add_(1, groups, probs)
        self.body_correct += (body.argmax(1) == groups[target]).sum()

    def compute(self) -> dict[str, Tensor]:
        """The six scores (see the class docstring)."""
        fine = self.confusion.double()
        # (K, G) membership: coarse[g, h] sums fine[i, j] over true i in part g, predicted j in h.
        member = torch.nn.functional.one_hot(self.group_of.to(fine.device), self.num_groups)
        member = member.double()
        coarse = member.T @ fine @ member
        fine_micro, fine_macro = f1_from_confusion(fine)
        coarse_micro, coarse_macro = f1_from_confusion(coarse)
        total = fine.sum()
        parts = {
            "fine_micro_f1": fine_micro,
            "fine_macro_f1": fine_macro,
            "coarse_micro_f1": coarse_micro,
            "coarse_macro_f1": coarse_macro,
        }
        out = {"f1_mean": torch.stack(list(parts.values())).mean(), **parts}
        out["body_top1"] = self.body_correct / total if total > 0 else total.new_zeros(())
        return {k: v.float() for k, v in out.items()}
