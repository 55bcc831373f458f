"""Per-step warm-up + cosine schedule of every Recognizer (``warmup_ratio``)."""

import math

import pytest
import torch
from lightning.pytorch import Callback, Trainer

from mgr.datamodules import SMGDataModule
from mgr.models import STCNN
from mgr.models.base import warmup_cosine

SUBJECTS = {"train_subjects": [1, 2], "val_subjects": [3], "test_subjects": [4]}


def _model(**kwargs) -> STCNN:
    return STCNN(
        num_classes=17, in_channels=3, num_joints=25, channels=[4], temporal_strides=[1],
        readout="mean", optimizer=lambda p: torch.optim.SGD(p, lr=0.5), **kwargs,
    )  # fmt: skip


def test_learning_rate_follows_warmup_then_cosine(synth_smg):
    lrs = []

    class Record(Callback):
        def on_train_batch_start(self, trainer, *args):
            lrs.append(trainer.optimizers[0].param_groups[0]["lr"])

    dm = SMGDataModule(synth_smg, clip_len=8, batch_size=2, **SUBJECTS)
    trainer = Trainer(
        max_epochs=2, limit_val_batches=0, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, callbacks=[Record()],
    )  # fmt: skip
    trainer.fit(_model(warmup_ratio=0.25), datamodule=dm)
    total = len(lrs)
    warm = int(0.25 * total)
    assert warm >= 1
    # The published schedule written out: linear ramp to the base rate, then half a cosine.
    want = []
    for t in range(total):
        if t < warm:
            want.append(0.5 * (t + 1) / (warm + 1))
        else:
            want.append(0.5 * 0.5 * (1 + math.cos(math.pi * (t - warm) / (total - warm))))
    assert lrs == pytest.approx(want, rel=1e-6)
    assert max(lrs) == pytest.approx(0.5, rel=0.2)


def test_warmup_cosine_closed_form():
    assert warmup_cosine(0, 10, 0) == pytest.approx(1.0)
    assert warmup_cosine(5, 10, 0) == pytest.approx(0.5)
    assert warmup_cosine(10, 10, 0) == pytest.approx(0.0)


def test_warmup_and_scheduler_are_exclusive():
    with pytest.raises(ValueError, match="drop the scheduler"):
        _model(warmup_ratio=0.1, scheduler=lambda o: torch.optim.lr_scheduler.StepLR(o, 1))
    with pytest.raises(ValueError, match="warmup_ratio"):
        _model(warmup_ratio=1.0)
