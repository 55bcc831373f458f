"""An exact mean over a whole split under several processes (``val/loss``)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

__all__ = ["SampleMean"]


class SampleMean(Metric):
    """Mean of per-sample values, as a float64 sum and an integer count.

    Under DDP both states are summed over processes (``dist_reduce_fx="sum"``), so the
    mean is over all samples of the split. Lightning's ``self.log(..., sync_dist=True)``
    instead averages the per-process means, which is wrong when processes hold different
    numbers of samples (as exact evaluation shards do). Unlike ``torchmetrics.MeanMetric``,
    whose inputs are cast to ``Metric.dtype`` (float32 again after every ``.to(device)``),
    values are added in the state's dtype: float64, or float32 after ``set_dtype`` on
    devices without float64 (MPS).
    """

    is_differentiable = False
    higher_is_better = None
    full_state_update = False

    total: Tensor
    count: Tensor

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("total", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    def update(self, values: Tensor) -> None:
        """Add samples.

        Args:
            values: ``(N,)`` (or any shape) one value per sample.
        """
        values = values.detach()
        self.total += values.to(self.total.dtype).sum()
        self.count += values.numel()

    def compute(self) -> Tensor:
        """The mean over every sample added (0 when none was)."""
        return self.total / self.count.clamp_min(1)
