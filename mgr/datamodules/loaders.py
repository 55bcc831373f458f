"""Samplers, DataLoaders and collation of the clip datamodules.

The training sampler (random, class-balanced, repeated, resumable), evaluation
shards over processes, the collate function of the batch contract
(:mod:`mgr.batch`) and the device-side finishing of a batch.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, Sampler

from mgr.callbacks import seeded_train_sampler
from mgr.data.datasets import (
    flip_heatmaps,
    render_heatmaps,
)
from mgr.data.samplers import (
    EvalShardSampler,
    ShuffleSampler,
    SqrtBalancedSampler,
    repeat_indices,
    repetition_factors,
)
from mgr.data.seeding import SeededDataset, loader_generator
from mgr.data.transforms.video import finish_video_batch
from mgr.errors import UserError

from .records import Split

__all__ = ["DataLoaderHooks", "collate", "eval_shard_sampler"]


log = logging.getLogger(__name__)


class DataLoaderHooks(LightningDataModule):
    """The samplers, DataLoaders and device-side batch step of a clip datamodule.

    Part of :class:`~mgr.datamodules.base.MicroGestureDataModule`, which builds the
    datasets (``self.datasets``) these loaders serve.
    """

    def on_after_batch_transfer(self, batch: dict[str, Any], dataloader_idx: int) -> dict:
        """Finish the batch on the device: float video, and heatmaps with ``heatmap.on_device``.

        Loaders ship ``video`` as uint8 with a per-sample recipe; its normalisation
        (or Taylor video) and flips run here (:func:`finish_video_batch`).
        """
        batch = finish_video_batch(batch)
        if self.heatmap is None or "pose_keypoint" not in batch:
            return batch
        kp, score = batch.pop("pose_keypoint"), batch.pop("pose_score")  # (B, N, M, T, V, 2)
        size = tuple(batch.pop("heatmap_size")[0].tolist())
        flip = bool(batch.pop("heatmap_flip")[0])
        b, n = kp.shape[:2]
        heatmap = render_heatmaps(
            kp.flatten(0, 1), score.flatten(0, 1), size, self.heatmap, self.layout.limbs
        ).unflatten(0, (b, n))
        if flip:
            mirrored = flip_heatmaps(
                heatmap, self.layout.flip_permutation(), self.heatmap.kind, self.layout.limbs
            )
            heatmap = torch.cat([heatmap, mirrored], dim=1)
        batch["heatmap"] = heatmap[:, 0] if heatmap.shape[1] == 1 else heatmap
        return batch

    # ---------------------------------------------------------------- loaders
    def train_sampler(self) -> Sampler[int]:
        """The training sampler: shuffling, rare-class repetition and/or class balancing.

        Every sampler here draws its epoch from ``(seed, epoch)`` (``set_epoch``,
        called by Lightning each epoch), never from the global RNG, so a resumed
        run draws what the uninterrupted run drew; the seed is ``seed_everything``'s
        (``PL_GLOBAL_SEED``), identical on all DDP ranks, which each take their share
        of the one draw (:class:`~mgr.data.seeding.DistributedSeededSampler`).

        Returns:
            An index sampler with ``set_epoch``.
        """
        labels = [r.label for r in self.datasets["train"].records]
        seed = _global_seed()
        indices = None
        if self.repeat_alpha is not None:
            factors = repetition_factors(labels, self.num_classes, alpha=self.repeat_alpha)
            indices = repeat_indices(labels, factors)
            log.info("rare-class repetition: %d -> %d training clips", len(labels), len(indices))
        if self.sampler == "sqrt_balanced":
            drawn = [labels[i] for i in indices] if indices is not None else labels
            balanced = SqrtBalancedSampler(drawn, self.num_classes, seed=seed)
            return balanced if indices is None else _Subset(balanced, indices)
        return ShuffleSampler(indices if indices is not None else range(len(labels)), seed=seed)

    def _loader(self, split: Split, shuffle: bool) -> DataLoader:
        if split not in self.datasets:
            self.setup({"train": "fit", "val": "validate", "test": "test"}[split])
        sampler = eval_shard_sampler(self, self.datasets[split], self.batch_size, split)
        return DataLoader(
            self.datasets[split],
            batch_size=self.batch_size,
            shuffle=shuffle and sampler is None,
            sampler=sampler,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
            collate_fn=collate,
        )

    def train_dataloader(self) -> DataLoader:
        """Shuffled (or balanced) training clips, reproducible across resumes.

        The loader yields ``(index, seed)`` pairs (:class:`~mgr.data.seeding.SeededSampler`)
        into a :class:`~mgr.data.seeding.SeededDataset`: each clip's random choices
        (frames, flip, crop) depend only on ``(seed, epoch, position in the epoch)``,
        whatever ``num_workers`` is. A resumed run starts at the epoch it resumes
        (Lightning calls ``set_epoch`` only after the first batches are requested).
        """
        if "train" not in self.datasets:
            self.setup("fit")
        seed = _global_seed()
        sampler = seeded_train_sampler(self.train_sampler(), seed, self.trainer)
        return DataLoader(
            SeededDataset(self.datasets["train"]),
            batch_size=self.batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
            collate_fn=collate,
            generator=loader_generator(seed),
        )

    def val_dataloader(self) -> DataLoader:
        """Validation clips, deterministic."""
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        """Test clips, deterministic."""
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        """Clips of :attr:`predict_split`, deterministic."""
        if self.predict_split not in self.datasets:
            self.setup("predict")
        return self._loader(self.predict_split, shuffle=False)


def eval_shard_sampler(
    datamodule: LightningDataModule, dataset: Any, batch_size: int, split: str
) -> EvalShardSampler | None:
    """The sampler of an evaluation loader: exact shards under several processes.

    Under a distributed strategy (DDP, FSDP, DeepSpeed: the trainer has
    ``distributed_sampler_kwargs``) each process gets an :class:`EvalShardSampler`
    shard, so that validation, test and prediction see every sample exactly once
    (Lightning's own ``DistributedSampler`` repeats samples to even out the shards);
    Lightning leaves a ``DistributedSampler`` in a loader as it is. The metrics
    are synchronised at the end of the epoch (:class:`~mgr.models.base.Recognizer`),
    and prediction sets are gathered by :class:`~mgr.predictions.PredictionWriter`.

    Args:
        datamodule: the datamodule asking (its attached trainer, if any, decides).
        dataset: the split's dataset.
        batch_size: the loader's batch size.
        split: split name, for the error message.

    Returns:
        The sampler, or ``None`` in a single process (the loader's plain order).

    Raises:
        UserError: if the split has fewer samples than there are processes.
    """
    trainer = getattr(datamodule, "trainer", None)
    kwargs = trainer.distributed_sampler_kwargs if trainer is not None else None
    if not kwargs or kwargs.get("num_replicas", 1) <= 1:
        return None
    try:
        return EvalShardSampler(dataset, batch_size, kwargs["num_replicas"], kwargs["rank"])
    except ValueError as err:
        raise UserError(f"{type(datamodule).__name__} split {split!r}: {err}") from None


class _Subset(Sampler[int]):
    """Maps the draws of a sampler over a repeated index list back to dataset indices."""

    def __init__(self, sampler: SqrtBalancedSampler, indices: Sequence[int]) -> None:
        self.sampler, self.indices = sampler, list(indices)

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def __iter__(self) -> Iterator[int]:
        return (self.indices[i] for i in self.sampler)

    def __len__(self) -> int:
        return len(self.sampler)


def collate(samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Stack sample dicts into a batch dict (strings become lists).

    Args:
        samples: dicts of the batch contract without the batch axis.

    Returns:
        A batch dict: tensors stacked on a new first axis, ints as an int64
        tensor, everything else as a list.
    """
    batch: dict[str, Any] = {}
    for key in samples[0]:
        values = [s[key] for s in samples]
        if torch.is_tensor(values[0]):
            batch[key] = torch.stack(values)
        elif isinstance(values[0], int):
            batch[key] = torch.tensor(values, dtype=torch.long)
        else:
            batch[key] = values
    return batch


def _global_seed() -> int:
    """``seed_everything``'s seed (``PL_GLOBAL_SEED``; 0 when the run is not seeded)."""
    return int(os.environ.get("PL_GLOBAL_SEED", 0))
