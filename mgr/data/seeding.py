"""Training-data randomness derived from ``(seed, epoch, position)``: resumable, worker-independent.

A training run that is killed and resumed from an end-of-epoch checkpoint must
draw the same clips, frames, flips and crops as the run that never stopped.
Drawing them from the process-wide RNGs cannot do that: a resumed process has
not consumed the RNG draws of the epochs it skipped, persistent DataLoader
workers keep an RNG stream across epochs that a new process cannot rebuild,
and which worker loads which sample depends on ``num_workers``. So here every
random choice of a training sample is a function of where it stands:

* the *order* of an epoch comes from a sampler seeded by ``(seed, epoch)``
  (:class:`~mgr.data.samplers.SqrtBalancedSampler`, the datamodules' shuffling
  sampler), with ``set_epoch`` called by Lightning every epoch;
* :class:`SeededSampler` pairs each drawn index with a per-sample seed derived
  from ``(seed, epoch)`` and its position in the epoch;
* :class:`SeededDataset` seeds torch, numpy and ``random`` with that seed
  right before loading the sample (and restores the previous RNG states after),
  so the dataset's own draws (temporal sampling, flips, crops) depend on nothing else.

The result is the same for any ``num_workers``, persistent workers or not.
The model's randomness (dropout, drop-path) is handled on the Lightning side
by :class:`mgr.callbacks.StepSeeding`, which reseeds the global RNGs at every
training step from ``(seed, epoch, batch index)``.

Plain PyTorch (no Lightning), so datasets and loops outside Lightning can use it.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler, Sampler

__all__ = [
    "DistributedSeededSampler",
    "SeededDataset",
    "SeededSampler",
    "derive_seed",
    "fork_rngs",
    "loader_generator",
    "seed_rngs",
]

_MASK64 = (1 << 64) - 1
_LOADER_STREAM = 0x4C4F4144  # "LOAD": keeps the loader generator's seed apart from the samplers'


def derive_seed(*keys: int) -> int:
    """A seed in ``[0, 2**63)`` mixed from integer keys (numpy's ``SeedSequence``).

    Nearby keys (``(s, 1)``, ``(s, 2)``, ``(s + 1, 1)``) give unrelated seeds, unlike ``s + k``.
    """
    words = np.random.SeedSequence([k & _MASK64 for k in keys]).generate_state(2, np.uint64)
    return int(words[0]) >> 1


def seed_rngs(seed: int) -> None:
    """Seed torch (CPU and every CUDA device), numpy's global RNG and ``random``."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 (the global RNG user code draws from)
    random.seed(seed)


def loader_generator(seed: int) -> torch.Generator:
    """A ``DataLoader(generator=...)`` of the loader's own, seeded from ``seed``.

    A loader without one draws its workers' base seed from the global torch RNG
    each time an iterator is created, i.e. from a stream a resumed run cannot rebuild.
    """
    return torch.Generator().manual_seed(derive_seed(seed, _LOADER_STREAM))


@contextlib.contextmanager
def fork_rngs() -> Iterator[None]:
    """Restore torch's CPU, numpy's global and ``random``'s RNG states when the block ends."""
    np_state, py_state = np.random.get_state(), random.getstate()  # noqa: NPY002
    with torch.random.fork_rng(devices=[]):
        try:
            yield
        finally:
            np.random.set_state(np_state)  # noqa: NPY002
            random.setstate(py_state)


class SeededSampler(Sampler[tuple[int, int]]):
    """Pairs each index of an epoch-seeded sampler with a per-sample seed.

    Yields ``(index, sample_seed)`` where ``sample_seed`` is drawn from a generator
    seeded by ``derive_seed(seed, epoch)``, one per position of the epoch's draw;
    :class:`SeededDataset` turns the pair back into the sample. The wrapped
    sampler must itself be a function of the epoch (``set_epoch``) or fixed.

    Lightning calls :meth:`set_epoch` before every training epoch (and forwards it
    through its ``DistributedSamplerWrapper`` under DDP, where the pairs are
    sharded like plain indices). A plain loop that never calls it still gets a
    new draw per epoch: an iteration that was not preceded by ``set_epoch``
    advances the epoch by one.

    Args:
        sampler: the index sampler (or a fixed index sequence).
        seed: base seed of the per-sample seeds.
        epoch: first epoch (a resumed run starts at the epoch it resumes).
    """

    def __init__(self, sampler: Sampler[int] | Sequence[int], seed: int, epoch: int = 0) -> None:
        self.sampler = sampler
        self.seed = int(seed)
        self.epoch = 0
        self._iterated = False
        self.set_epoch(epoch)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch's draw (forwarded to the wrapped sampler)."""
        self.epoch = int(epoch)
        self._epoch_set = True
        if callable(getattr(self.sampler, "set_epoch", None)):
            self.sampler.set_epoch(self.epoch)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        if self._iterated and not self._epoch_set:
            self.set_epoch(self.epoch + 1)
        self._iterated, self._epoch_set = True, False
        indices = [int(i) for i in self.sampler]
        generator = torch.Generator().manual_seed(derive_seed(self.seed, self.epoch))
        seeds = torch.randint(2**62, (len(indices),), generator=generator).tolist()
        return iter(zip(indices, seeds, strict=True))

    def __len__(self) -> int:
        return len(self.sampler)


class DistributedSeededSampler(DistributedSampler):
    """One rank's share of a :class:`SeededSampler`'s draw: positions ``rank, rank + W, ...``.

    The draw is padded by wrapping around to a multiple of the world size ``W``
    (as ``DistributedSampler`` pads), so every rank takes the same number of
    steps. Being a ``DistributedSampler``, Lightning uses it as is instead of
    wrapping the sampler in its ``DistributedSamplerWrapper``, whose own
    shuffle follows an epoch counter that Lightning sets only after a resumed
    run's workers have drawn their first batches.

    Args:
        sampler: the seeded sampler (the same draw on every rank).
        num_replicas: world size ``W``.
        rank: this process's global rank.
    """

    def __init__(self, sampler: SeededSampler, num_replicas: int, rank: int) -> None:
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} outside 0..{num_replicas - 1}")
        # No DistributedSampler.__init__: it wants a dataset and process group; the
        # sharding here needs neither.
        self.sampler, self.num_replicas, self.rank = sampler, int(num_replicas), int(rank)
        self.shuffle, self.drop_last, self.seed = False, False, sampler.seed
        self.num_samples = -(-len(sampler) // self.num_replicas)
        self.total_size = self.num_samples * self.num_replicas
        self.epoch = sampler.epoch

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch's draw (forwarded to the wrapped sampler)."""
        self.epoch = int(epoch)
        self.sampler.set_epoch(epoch)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        pairs = list(self.sampler)
        if pairs:  # pad by wrapping around, as DistributedSampler does
            pairs = (pairs * -(-self.total_size // len(pairs)))[: self.total_size]
        return iter(pairs[self.rank :: self.num_replicas])

    def __len__(self) -> int:
        return self.num_samples


class SeededDataset(Dataset):
    """A map-style dataset whose items are loaded under a given seed.

    ``dataset[(index, seed)]`` seeds torch, numpy and ``random`` with ``seed``,
    loads ``dataset[index]`` and restores the RNG states it found, so the
    item's random choices depend on ``seed`` only (and the caller's RNG streams
    are untouched, also with ``num_workers=0``). A plain ``int`` key loads the
    item with the current RNG state, as the wrapped dataset would.

    Args:
        dataset: the dataset (its random choices must come from torch, numpy or
            ``random``; mgr's clip datasets draw from torch).
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: int | tuple[int, int]) -> Any:
        if not isinstance(key, tuple):
            return self.dataset[key]
        index, seed = key
        with fork_rngs():
            seed_rngs(seed)
            return self.dataset[index]

    def __getattr__(self, name: str) -> Any:
        # Forward public attributes (records, failed, ...); never dunders, which
        # would bypass the seeding (``__getitems__``) or recurse while unpickling.
        if name.startswith("__") or name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)
