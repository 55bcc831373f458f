"""Long-tail losses: smoothed class weights, softmax focal loss, logit adjustment, semantic anchors.

Plain PyTorch (no Lightning), after the CMPL paper (MiGA'26 §3.2) and Menon et
al., "Long-tail learning via logit adjustment" (ICLR 2021):

- :func:`sqrt_smoothed_weights`: ``w_c = 1 / sqrt(N_c + 1)``, a gentler
  re-weighting than inverse frequency, whose huge tail weights make gradients
  explode on a >2000:1 imbalance.
- :class:`SoftmaxFocalLoss`: multi-class focal loss with optional class weights
  and label smoothing (torchvision only ships the sigmoid/binary variant).
- :func:`logit_adjusted` / :func:`class_log_prior`: the logit-adjusted loss,
  ``CE(logits + tau * log prior, y)``.
- :class:`OrthogonalSemanticLoss`: MSE between features and fixed orthonormal
  class anchors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "OrthogonalSemanticLoss",
    "SoftmaxFocalLoss",
    "class_log_prior",
    "logit_adjusted",
    "sqrt_smoothed_weights",
]

Reduction = Literal["mean", "sum", "none"]


def _as_counts(counts: Tensor | Sequence[int]) -> Tensor:
    """Validate a class histogram; return it as a float64 ``(K,)`` tensor."""
    counts = torch.as_tensor(counts).detach().to(torch.float64)
    if counts.ndim != 1 or counts.numel() == 0:
        raise ValueError(f"class counts must be a non-empty (K,) vector, got {tuple(counts.shape)}")
    if (counts < 0).any():
        raise ValueError(f"class counts must be non-negative, got {counts.tolist()}")
    if counts.sum() <= 0:
        raise ValueError("class counts are all zero: the training histogram is empty")
    return counts


def sqrt_smoothed_weights(counts: Tensor | Sequence[int], normalize: bool = True) -> Tensor:
    """Square-root smoothed class weights ``w_c = 1 / sqrt(N_c + 1)`` (CMPL §3.2).

    The paper does not say how the weights are scaled. With ``normalize`` they
    are rescaled so that their mean over the *training samples* is one,
    ``sum_c N_c w_c / sum_c N_c = 1``: the weighted loss then has, in
    expectation over the training distribution, the same scale as the
    unweighted loss, so learning rates tuned for plain cross-entropy still
    apply. (Normalising the plain mean over classes instead would shrink the
    loss by roughly the head classes' weight on a long-tailed set.)

    Args:
        counts: ``(K,)`` number of training samples per class ``N_c``.
        normalize: rescale to a sample-weighted mean of one.

    Returns:
        ``(K,)`` weights, in the default float dtype, on ``counts``' device.
    """
    device = counts.device if isinstance(counts, Tensor) else None
    n = _as_counts(counts)
    w = (n + 1).rsqrt()
    if normalize:
        w = w * n.sum() / (n * w).sum()
    return w.to(device=device, dtype=torch.get_default_dtype())


def class_log_prior(counts: Tensor | Sequence[int]) -> Tensor:
    """Log of the empirical class prior ``log(N_c / sum N)``.

    Classes absent from the training set are counted once, so that the
    adjusted logits stay finite (a ``-inf`` logit makes a label-smoothed loss
    infinite).

    Args:
        counts: ``(K,)`` number of training samples per class.

    Returns:
        ``(K,)`` log prior, in the default float dtype, on ``counts``' device.
    """
    device = counts.device if isinstance(counts, Tensor) else None
    n = _as_counts(counts).clamp_min(1)
    return (n / n.sum()).log().to(device=device, dtype=torch.get_default_dtype())


def logit_adjusted(logits: Tensor, log_prior: Tensor, tau: float) -> Tensor:
    """Logits shifted by the scaled log prior: ``logits + tau * log_prior``.

    Training on ``CE(logit_adjusted(logits), y)`` (the logit-adjusted loss of
    Menon et al., 2021) makes head classes pay a margin, so that the *raw*
    logits, used unchanged at test time, estimate the class-balanced posterior.
    Apply it to the training loss only.

    Args:
        logits: ``(B, K)``.
        log_prior: ``(K,)`` log class prior, e.g. from :func:`class_log_prior`.
        tau: temperature of the adjustment (Menon et al. use 1).

    Returns:
        ``(B, K)`` adjusted logits.
    """
    return logits + tau * log_prior.to(logits.dtype)


class SoftmaxFocalLoss(nn.Module):
    """Multi-class focal loss ``(1 - p_y)^gamma * CE`` (Lin et al., 2017), with class weights.

    Per sample, ``loss = (1 - p_y)^gamma * ce`` where ``p_y`` is the softmax
    probability of the target class and ``ce`` is
    ``F.cross_entropy(logits, y, weight, label_smoothing, reduction="none")``.
    ``p_y`` is taken without weights and without smoothing, so the modulating
    factor only measures how well the sample is classified. With
    ``gamma=0`` and no weights this is ``F.cross_entropy``.

    The ``"mean"`` reduction divides by the batch size ``B``, not by the sum of
    the targets' weights as ``F.cross_entropy(weight=...)`` does: class weights
    stay absolute per-sample multipliers, whereas normalising by the batch's
    weights would cancel them on a batch of a single class and make each
    sample's gradient depend on the other classes in its batch. With weights
    from :func:`sqrt_smoothed_weights` the two agree in expectation.

    Args:
        gamma: focusing parameter ``gamma >= 0`` (paper default 2).
        weight: ``(K,)`` class weights, or ``None``. Kept in a buffer, so it
            follows ``.to(device)`` and is saved in the module's state dict.
        label_smoothing: label smoothing of the cross-entropy term, in ``[0, 1)``.
        reduction: ``"mean"`` (over the batch), ``"sum"`` or ``"none"``.
    """

    weight: Tensor | None

    def __init__(
        self,
        gamma: float = 2.0,
        weight: Tensor | None = None,
        label_smoothing: float = 0.0,
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__()
        if gamma < 0:
            raise ValueError(f"gamma must be >= 0, got {gamma}")
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
        if weight is not None and weight.ndim != 1:
            raise ValueError(f"weight must be (K,), got shape {tuple(weight.shape)}")
        self.gamma = gamma
        self.label_smoothing = label_smoothing
        self.reduction = reduction
        self.register_buffer("weight", None if weight is None else weight.detach().clone())

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        """Focal loss of a batch.

        Args:
            logits: ``(B, K)`` unnormalised scores.
            target: ``(B,)`` class indices.

        Returns:
            A scalar, or ``(B,)`` per-sample losses with ``reduction="none"``.
        """
        weight = None if self.weight is None else self.weight.to(logits.dtype)
        loss = F.cross_entropy(
            logits, target, weight=weight, reduction="none", label_smoothing=self.label_smoothing
        )
        if self.gamma > 0:
            # 1 - p_y = -expm1(log p_y): accurate for well-classified samples, where
            # 1 - exp(log p_y) cancels in float32. The floor keeps the gradient of
            # x^gamma finite at x = 0 when gamma < 1 (inf * 0 would be NaN).
            log_pt = -F.cross_entropy(logits, target, reduction="none")
            one_minus_pt = (-torch.expm1(log_pt)).clamp_min(torch.finfo(log_pt.dtype).tiny)
            loss = one_minus_pt.pow(self.gamma) * loss
        if self.reduction == "mean":
            return loss.mean()
        if self.reduction == "sum":
            return loss.sum()
        return loss

    def extra_repr(self) -> str:
        """Hyperparameters shown by ``print(module)``."""
        return (
            f"gamma={self.gamma}, weighted={self.weight is not None}, "
            f"label_smoothing={self.label_smoothing}, reduction={self.reduction!r}"
        )


class OrthogonalSemanticLoss(nn.Module):
    """MSE between features and fixed orthonormal class anchors (CMPL §3.2, Eq. 1).

    ``loss = mean_{b, i} (f_{b,i} - M_{y_b, i})^2``. The anchors ``M (K, d)``
    are the transposed ``Q`` of the QR decomposition of a seeded ``(d, K)``
    standard Gaussian matrix, with the signs fixed so that ``R`` has a
    positive diagonal (the decomposition is then unique, so the anchors do not
    depend on the LAPACK build). Rows are orthonormal: ``M M^T = I_K``. The
    anchors are a buffer, not a parameter: they are never trained.

    Args:
        num_classes: number of classes ``K``.
        dim: feature dimension ``d``; ``K`` orthonormal rows need ``d >= K``.
        seed: seed of the random matrix; the same seed gives the same anchors.
    """

    anchors: Tensor

    def __init__(self, num_classes: int, dim: int, seed: int = 0) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if dim < num_classes:
            raise ValueError(
                f"{num_classes} orthonormal class anchors need a feature dimension "
                f"d >= num_classes, got d={dim} < {num_classes}"
            )
        self.num_classes = num_classes
        self.dim = dim
        self.seed = seed
        g = torch.Generator().manual_seed(seed)
        a = torch.randn(dim, num_classes, generator=g, dtype=torch.float64)
        q, r = torch.linalg.qr(a)  # q: (d, K), orthonormal columns
        q = q * torch.sign(torch.diagonal(r))
        self.register_buffer("anchors", q.T.contiguous().to(torch.get_default_dtype()))

    def forward(self, features: Tensor, target: Tensor) -> Tensor:
        """Semantic alignment loss of a batch.

        Args:
            features: ``(B, d)`` features before the classifier.
            target: ``(B,)`` class indices.

        Returns:
            Scalar mean squared error over the batch and the feature dimensions.
        """
        if features.ndim != 2 or features.shape[1] != self.dim:
            raise ValueError(f"expected features (B, {self.dim}), got {tuple(features.shape)}")
        return F.mse_loss(features, self.anchors.to(features.dtype)[target])

    def extra_repr(self) -> str:
        """Hyperparameters shown by ``print(module)``."""
        return f"num_classes={self.num_classes}, dim={self.dim}, seed={self.seed}"
