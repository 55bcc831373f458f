"""Long-tail samplers and rare-class repetition (plain PyTorch).

Two ways to show rare classes more often during training:

* :class:`SqrtBalancedSampler` draws indices with replacement, sample ``i`` with probability
  proportional to ``1 / (N_c + 1) ** power`` (:func:`class_balanced_weights`), ``c`` its class
  and ``N_c`` the class size. With ``power=0.5`` (square-root smoothing) class ``c`` is drawn
  with total probability ``~ sqrt(N_c)``: flatter than the data, but not uniform.
* :func:`repetition_factors` + :func:`repeat_indices` repeat the annotations of rare classes
  a fixed number of times (eq. (1) of the MiGA'25 online-recognition paper); wrap the dataset
  in ``torch.utils.data.Subset(dataset, repeat_indices(labels, factors))``.

For evaluation under several processes, :class:`EvalShardSampler` splits a split into
per-process shards without the duplicates of ``DistributedSampler``.

:class:`ShuffleSampler` is plain shuffling (of ``range(N)`` or repeated indices). Every
sampler here draws an epoch from ``(seed, epoch)`` only (``set_epoch``), so a resumed run
draws what the uninterrupted run drew (:mod:`mgr.data.seeding`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DistributedSampler, Sampler

from .seeding import derive_seed

__all__ = [
    "EvalShardSampler",
    "ShuffleSampler",
    "SqrtBalancedSampler",
    "class_balanced_weights",
    "repeat_indices",
    "repetition_factors",
]

Labels = Sequence[int] | np.ndarray


def _as_labels(labels: Labels, num_classes: int) -> np.ndarray:
    """``labels`` as a 1-D int64 array, checked to lie in ``0..num_classes - 1``."""
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {arr.shape}")
    if arr.size and (arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"labels must be integers, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    bad = arr[(arr < 0) | (arr >= num_classes)]
    if bad.size:
        raise ValueError(
            f"labels {sorted(set(bad.tolist()))} outside 0..{num_classes - 1} "
            f"(num_classes={num_classes})"
        )
    return arr


def class_balanced_weights(labels: Labels, num_classes: int, *, power: float = 0.5) -> np.ndarray:
    """Per-sample weights ``1 / (N_c + 1) ** power`` for class-balanced sampling.

    Args:
        labels: ``(N,)`` 0-based class ids.
        num_classes: number of classes ``K``; labels must lie in ``0..K-1``.
        power: smoothing exponent: 0 keeps the data distribution, 0.5 is square-root
            smoothing (weights ``1 / sqrt(N_c + 1)``), 1 is (almost) class-uniform.

    Returns:
        ``(N,)`` float64 weights, not normalised.

    Raises:
        ValueError: for labels that are not 1-D integers in range, or a non-finite ``power``.
    """
    if not math.isfinite(power):
        raise ValueError(f"power must be finite, got {power}")
    arr = _as_labels(labels, num_classes)
    counts = np.bincount(arr, minlength=num_classes).astype(np.float64)
    return 1.0 / (counts[arr] + 1.0) ** power


class SqrtBalancedSampler(Sampler[int]):
    """Draw dataset indices with replacement, with probability ``∝ 1 / (N_c + 1) ** power``.

    The draws of an epoch depend only on ``seed`` and the epoch set by :meth:`set_epoch`, so
    they are reproducible and differ between epochs. Lightning calls ``set_epoch`` on the
    loader's sampler each epoch; a plain PyTorch loop must call it itself (otherwise every
    epoch draws the same indices). Under DDP with ``use_distributed_sampler=True``, Lightning
    wraps this sampler in its ``DistributedSamplerWrapper``, which forwards ``set_epoch`` and
    gives each rank a shard of the same draw, so a plain sampler is fine there: use the same
    ``seed`` on every rank.

    Args:
        labels: ``(N,)`` 0-based class id of every dataset index.
        num_classes: number of classes ``K``.
        num_samples: indices drawn per epoch; default ``N``.
        power: smoothing exponent of :func:`class_balanced_weights` (0.5: square root).
        seed: base seed of the draws.

    Raises:
        ValueError: for empty or invalid labels, or ``num_samples < 1``.
    """

    def __init__(
        self,
        labels: Labels,
        num_classes: int,
        *,
        num_samples: int | None = None,
        power: float = 0.5,
        seed: int = 0,
    ) -> None:
        weights = class_balanced_weights(labels, num_classes, power=power)
        if not len(weights):
            raise ValueError("labels is empty: nothing to sample")
        self.num_samples = len(weights) if num_samples is None else int(num_samples)
        if self.num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        self.weights = torch.from_numpy(weights)
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the draw of ``epoch`` (call before iterating)."""
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        draws = torch.multinomial(self.weights, self.num_samples, True, generator=generator)
        return iter(draws.tolist())

    def __len__(self) -> int:
        return self.num_samples


class ShuffleSampler(Sampler[int]):
    """A fixed list of dataset indices (repeats allowed), permuted by ``(seed, epoch)``.

    Like ``RandomSampler`` without replacement, but the permutation of an epoch
    depends only on ``seed`` and the epoch set by :meth:`set_epoch`, never on the
    global RNG, so a run resumed at epoch ``e`` draws what the uninterrupted run
    drew (see :mod:`mgr.data.seeding`).

    Args:
        indices: the dataset indices of one epoch, e.g. ``range(N)`` or
            :func:`repeat_indices`.
        seed: base seed of the permutations.
    """

    def __init__(self, indices: Sequence[int] | np.ndarray, seed: int = 0) -> None:
        self.indices = torch.as_tensor(np.asarray(indices), dtype=torch.long)
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the permutation of ``epoch`` (call before iterating)."""
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(derive_seed(self.seed, self.epoch))
        order = torch.randperm(len(self.indices), generator=generator)
        return iter(self.indices[order].tolist())

    def __len__(self) -> int:
        return len(self.indices)


def repetition_factors(labels: Labels, num_classes: int, *, alpha: float) -> np.ndarray:
    """Repetitions ``R_c`` of each class's annotations, eq. (1) of the online-recognition paper.

    ``R_c = ceil(log2(alpha / Z_c)) + 1`` if ``0 < Z_c < alpha``, else 1, where ``Z_c`` is
    the *number* of training instances of class ``c`` (a count, not a frequency) and
    ``alpha`` the minimum-instance threshold; a class with no instances has nothing to
    repeat and gets 1. The paper (HFUT-VUT, MiGA'25 online recognition on SMG) does not
    state the value of ``alpha`` it used, so it has no default here.

    Args:
        labels: ``(N,)`` 0-based class ids of the training annotations.
        num_classes: number of classes ``K``.
        alpha: minimum-instance threshold (> 0), in instances.

    Returns:
        ``(K,)`` int64 factors ``>= 1``.

    Raises:
        ValueError: for invalid labels or ``alpha`` not a positive finite number.
    """
    if not (math.isfinite(alpha) and alpha > 0):
        raise ValueError(f"alpha must be a positive finite number, got {alpha}")
    counts = np.bincount(_as_labels(labels, num_classes), minlength=num_classes)
    factors = np.ones(num_classes, dtype=np.int64)
    for c, z in enumerate(counts.tolist()):
        if 0 < z < alpha:
            # ceil(log2(alpha / z)) is the least k with z * 2**k >= alpha; computing it
            # exactly avoids float rounding when alpha / z is a power of two.
            k = 0
            while z * 2**k < alpha:
                k += 1
            factors[c] = k + 1
    return factors


def repeat_indices(labels: Labels, factors: Sequence[int] | np.ndarray) -> np.ndarray:
    """Dataset indices with each sample of class ``c`` repeated ``factors[c]`` times.

    Args:
        labels: ``(N,)`` 0-based class ids.
        factors: ``(K,)`` non-negative repetitions per class, e.g. from
            :func:`repetition_factors`.

    Returns:
        int64 indices in ascending order, copies of an index adjacent
        (``[0, 0, 1, 2, 2, 2, ...]``); length ``sum_i factors[labels[i]]``.

    Raises:
        ValueError: for invalid labels or factors that are not non-negative integers.
    """
    reps = np.asarray(factors)
    if reps.ndim != 1 or not len(reps):
        raise ValueError(f"factors must be a non-empty 1-D array, got shape {reps.shape}")
    if reps.dtype == np.bool_ or not np.issubdtype(reps.dtype, np.integer) or (reps < 0).any():
        raise ValueError(f"factors must be non-negative integers, got {reps.tolist()}")
    arr = _as_labels(labels, len(reps))
    return np.repeat(np.arange(len(arr), dtype=np.int64), reps[arr])


class EvalShardSampler(DistributedSampler):
    """Every index of a dataset exactly once across ``num_replicas`` processes, batch by batch.

    ``torch.utils.data.DistributedSampler`` pads the index list with repeats until it
    divides by the number of processes, so evaluating with it counts some samples twice.
    This sampler pads nothing: the processes' shards are disjoint and their union is
    ``range(len(dataset))``; shards may differ in length, which is fine at evaluation
    when the metrics are synchronised once, at the end of the epoch.

    Shards are made of whole batches of the one-process order: the batches
    ``[0, b), [b, 2b), ...`` of ``batch_size = b`` (the last one maybe partial) go to the
    processes in turn, batch ``j`` to rank ``j % num_replicas``. A loader with the same
    ``batch_size`` therefore sees on some process exactly the batches it would see on
    one process, so every sample's outputs are computed in the same batch as on one
    process (batch-size-dependent kernels give bit-identical logits). When there are
    fewer batches than processes, single samples are dealt out instead (``i`` to rank
    ``i % num_replicas``), so that every process still gets at least one.

    It subclasses ``DistributedSampler`` so that Lightning keeps it as it is instead of
    putting its padding sampler in its place.

    Args:
        dataset: the dataset (only its length is used).
        batch_size: batch size of the loader that will batch this sampler's indices.
        num_replicas: number of processes (``None``: the process group's world size).
        rank: this process's rank (``None``: its rank in the process group).

    Raises:
        ValueError: if the dataset has fewer samples than there are processes (some
            process would get nothing to evaluate and miss the synchronisation).
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int,
        num_replicas: int | None = None,
        rank: int | None = None,
    ) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=False)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        n, world = len(dataset), self.num_replicas
        if n < world:
            raise ValueError(
                f"{n} samples cannot be shared by {world} processes without repeating "
                f"some: evaluate with at most {n} processes"
            )
        self.batch_size = batch_size
        batches = [range(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]
        if len(batches) >= world:
            self.indices = [i for batch in batches[self.rank :: world] for i in batch]
        else:
            self.indices = list(range(self.rank, n, world))
        # DistributedSampler's bookkeeping, without padding.
        self.num_samples = len(self.indices)
        self.total_size = n

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return self.num_samples
