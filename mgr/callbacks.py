"""Lightning callbacks for runs that survive a crash: atomic checkpoints, the latest state, seeding.

* :class:`AtomicCheckpoint`: Lightning's ``ModelCheckpoint`` whose files are
  written to a temporary name and renamed (:mod:`mgr.fileio`). Lightning
  writes the target path in place, so a process killed mid-write leaves a
  truncated ``best.ckpt`` / ``last.ckpt`` that a resume would try to load.
* :class:`LatestCheckpoint`: ``last.ckpt``, the state at the end of every
  training epoch (optionally also every N optimizer steps), separate from the
  best checkpoint; ``mgr fit ... --ckpt_path last`` resumes from it. A
  ``ModelCheckpoint(monitor=..., save_last=True)`` is not that: it refreshes
  ``last.ckpt`` only when the monitored checkpoint is saved, so after a run
  whose best epoch was the first, ``last.ckpt`` still holds the first epoch.
* :class:`StepSeeding`: reseeds torch, numpy and ``random`` at every training
  step from ``(seed, epoch, batch index, rank)``, so the model's own randomness
  (dropout, drop-path) does not depend on how many draws the process made
  before: a resumed run draws what the uninterrupted run drew. ``mgr``'s
  command line adds it to every run; the training data's randomness is seeded
  the same way by the datamodules (:mod:`mgr.data.seeding`).
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any
from weakref import proxy

import lightning.pytorch as pl
from lightning.fabric.utilities.cloud_io import _is_local_file_protocol
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from torch.utils.data import Sampler

from mgr.data.seeding import DistributedSeededSampler, SeededSampler, derive_seed, seed_rngs
from mgr.fileio import partial_path, replace_atomic

__all__ = [
    "AtomicCheckpoint",
    "LatestCheckpoint",
    "StepSeeding",
    "next_train_epoch",
    "seeded_train_sampler",
]

log = logging.getLogger(__name__)


def _commit(tmp: Path, path: Path) -> None:
    """Move a finished checkpoint (a file, or a sharded strategy's folder) onto ``path``."""
    if not tmp.is_dir():
        replace_atomic(tmp, path)
        return
    # A folder cannot replace a non-empty folder in one rename: swap through a side name.
    # A kill between the two renames leaves no ``path`` (a resume then finds nothing,
    # rather than half a checkpoint) and the old state under the side name.
    old = partial_path(path, token="old")
    if path.exists():
        if old.is_dir():
            shutil.rmtree(old)
        os.replace(path, old)
    os.replace(tmp, path)
    if old.is_dir():
        shutil.rmtree(old)


class AtomicCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` that never leaves a half-written checkpoint file.

    Same arguments and behaviour as :class:`lightning.pytorch.callbacks.ModelCheckpoint`;
    every file is first written as ``.<name>.ckpt.partial`` in the checkpoint folder,
    flushed to disk, then renamed onto its name (:func:`os.replace`, atomic on a
    local file system). Remote paths (``s3://``, ...) are written as Lightning does:
    object stores publish an object only once it is complete.
    """

    @property
    def state_key(self) -> str:
        """``ModelCheckpoint``'s key, so resuming a plain ModelCheckpoint's run keeps its state."""
        return "ModelCheckpoint" + repr(
            {
                "monitor": self.monitor,
                "mode": self.mode,
                "every_n_train_steps": self._every_n_train_steps,
                "every_n_epochs": self._every_n_epochs,
                "train_time_interval": self._train_time_interval,
            }
        )

    def _save_checkpoint(self, trainer: pl.Trainer, filepath: str) -> None:
        if not _is_local_file_protocol(filepath):
            super()._save_checkpoint(trainer, filepath)
            return
        # One name for every rank (sharded strategies write from all of them).
        tmp = partial_path(filepath, token="ckpt")
        if trainer.is_global_zero and tmp.is_dir():  # left by a killed run
            shutil.rmtree(tmp)
        trainer.strategy.barrier("mgr.AtomicCheckpoint.clean")
        trainer.save_checkpoint(tmp, self.save_weights_only)  # ends with a barrier
        if trainer.is_global_zero:
            _commit(tmp, Path(filepath))
        trainer.strategy.barrier("mgr.AtomicCheckpoint.commit")
        self._last_global_step_saved = trainer.global_step
        self._last_checkpoint_saved = filepath
        if trainer.is_global_zero:
            for logger in trainer.loggers:
                logger.after_save_checkpoint(proxy(self))


class LatestCheckpoint(AtomicCheckpoint):
    """``last.ckpt``: the latest training state, every epoch, written atomically.

    Saved at the end of every training epoch, after that epoch's validation and
    whether or not the monitored metric improved, so ``--ckpt_path last``
    resumes where the run stopped, not at its best epoch. Lightning's
    ``ckpt_path="last"`` finds it (it looks for ``last*.ckpt`` in the folders of
    the checkpoint callbacks), so give it the ``dirpath`` of the best checkpoint.

    Resuming from an end-of-epoch ``last.ckpt`` reproduces the uninterrupted run
    (with :class:`StepSeeding` and mgr's datamodules). A checkpoint taken every
    ``every_n_train_steps`` inside an epoch saves hours of a long epoch, but a
    resume from it restarts that epoch's data order from its beginning
    (Lightning's loaders are not resumable mid-epoch), so it is close, not exact.

    Args:
        dirpath: checkpoint folder (default: Lightning's ``<log dir>/checkpoints``).
        every_n_train_steps: also save every N optimizer steps inside an epoch
            (``None``: only at epoch ends). The last step of an epoch is left to
            the end-of-epoch save, which follows validation.
        save_weights_only: drop optimizer, scheduler and loop states (not resumable).
        verbose: log every save.
    """

    def __init__(
        self,
        dirpath: str | Path | None = None,
        every_n_train_steps: int | None = None,
        save_weights_only: bool = False,
        verbose: bool = False,
    ) -> None:
        if every_n_train_steps is not None and every_n_train_steps < 1:
            raise ValueError(f"every_n_train_steps must be >= 1 or None, got {every_n_train_steps}")
        super().__init__(
            dirpath=dirpath,
            filename=self.CHECKPOINT_NAME_LAST,
            monitor=None,
            save_top_k=1,
            save_last=False,
            every_n_epochs=1,
            save_on_train_epoch_end=True,
            enable_version_counter=False,
            auto_insert_metric_name=False,
            save_weights_only=save_weights_only,
            verbose=verbose,
        )
        self.every_n_train_steps = every_n_train_steps

    @property
    def state_key(self) -> str:
        """One per trainer, apart from the best checkpoint's."""
        return type(self).__qualname__

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        """Save every ``every_n_train_steps`` optimizer steps (not on an epoch's last batch)."""
        n = self.every_n_train_steps
        if not n or trainer.global_step % n or self._should_skip_saving_checkpoint(trainer):
            return
        if trainer.fit_loop.epoch_loop.batch_progress.is_last_batch:
            return  # on_train_epoch_end saves the state after validation
        self._save_topk_checkpoint(trainer, self._monitor_candidates(trainer))


class StepSeeding(Callback):
    """Reseed the global RNGs at every training step from ``(seed, epoch, batch index, rank)``.

    Without it, a step's dropout masks depend on every draw the process made
    before (model init, earlier epochs, iterator creation), which a resumed
    process cannot replay. With it they depend on the step's place in the run
    only; the reseed costs microseconds. The seed is ``seed_everything``'s
    (``PL_GLOBAL_SEED``) and is stored in the checkpoint: a run resumed under
    another seed (e.g. ``seed_everything: true``, which draws a new one) goes on
    with the checkpoint's seed, and says so. Unseeded runs are left alone.

    Exactness has limits outside mgr's control: GPU kernels with atomic adds are
    not bit-reproducible unless ``trainer.deterministic`` is set.
    """

    def __init__(self) -> None:
        self.seed: int | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Take the run's seed (before a checkpoint's is restored)."""
        if self.seed is None and os.environ.get("PL_GLOBAL_SEED"):
            self.seed = int(os.environ["PL_GLOBAL_SEED"])

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        """Seed torch (CPU, CUDA), numpy and ``random`` for this step."""
        if self.seed is not None:
            seed_rngs(derive_seed(self.seed, trainer.current_epoch, batch_idx, trainer.global_rank))

    def state_dict(self) -> dict[str, Any]:
        """The seed, so that a resume goes on with it."""
        return {"seed": self.seed}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Go on with the checkpoint's seed (also for the datamodule's samplers)."""
        seed = state_dict.get("seed")
        if seed is None or seed == self.seed:
            return
        log.warning(
            "resuming with the checkpoint's seed %d (this run was seeded with %s) so that "
            "the resumed epochs draw what the interrupted run would have drawn",
            seed,
            self.seed,
        )
        self.seed = int(seed)
        os.environ["PL_GLOBAL_SEED"] = str(seed)  # read by the datamodules' samplers


def next_train_epoch(trainer: pl.Trainer | None) -> int:
    """The training epoch ``trainer`` is about to run (0 without a trainer).

    When a datamodule builds its training loader on resume from an end-of-epoch
    checkpoint, this is already the next epoch, while ``trainer.current_epoch``
    still shows the finished one; Lightning calls the sampler's ``set_epoch``
    only after the loader's first batches were requested (workers prefetch them).
    """
    fit_loop = getattr(trainer, "fit_loop", None)
    return int(fit_loop.epoch_progress.current.processed) if fit_loop is not None else 0


def seeded_train_sampler(
    sampler: Sampler[int], seed: int, trainer: pl.Trainer | None
) -> SeededSampler | DistributedSeededSampler:
    """A training sampler whose draws resume exactly (see :mod:`mgr.data.seeding`).

    Args:
        sampler: the epoch-seeded index sampler (shuffling, class balancing).
        seed: the run's seed.
        trainer: the trainer the loader is for (``None`` outside one).

    Returns:
        A :class:`~mgr.data.seeding.SeededSampler` set to the epoch the trainer is
        about to run, sharded by rank when the trainer runs several processes.
    """
    seeded = SeededSampler(sampler, seed, epoch=next_train_epoch(trainer))
    world = int(getattr(trainer, "world_size", 1) or 1)
    if world > 1:
        return DistributedSeededSampler(seeded, world, int(trainer.global_rank))
    return seeded
