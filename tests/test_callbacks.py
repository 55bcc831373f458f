"""mgr.callbacks: last.ckpt is the latest state, written atomically; StepSeeding."""

from __future__ import annotations

import os
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.trainer.states import TrainerFn
from torch.utils.data import DataLoader, TensorDataset

from mgr.callbacks import AtomicCheckpoint, LatestCheckpoint, StepSeeding
from mgr.fileio import PARTIAL_SUFFIX

STEPS_PER_EPOCH = 4


class _Tiny(pl.LightningModule):
    """A linear model whose logged score is best at epoch 0 (then falls)."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(3, 1)

    def training_step(self, batch, batch_idx):
        (x,) = batch
        return self.layer(x).pow(2).mean()

    def validation_step(self, batch, batch_idx):
        self.log("score", -float(self.current_epoch))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self):
        return DataLoader(TensorDataset(torch.randn(STEPS_PER_EPOCH * 2, 3)), batch_size=2)

    def val_dataloader(self):
        return DataLoader(TensorDataset(torch.randn(2, 3)), batch_size=2)


def _trainer(root: Path, callbacks: list[Callback], max_epochs: int = 3) -> pl.Trainer:
    return pl.Trainer(
        accelerator="cpu",
        max_epochs=max_epochs,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=callbacks,
        default_root_dir=root,
    )


def _epoch_step(path: Path) -> tuple[int, int]:
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    return ckpt["epoch"], ckpt["global_step"]


def test_lightning_save_last_is_not_the_latest_state(tmp_path: Path) -> None:
    """The reference behaviour that LatestCheckpoint fixes (Lightning 2.x ``save_last``)."""
    best = ModelCheckpoint(tmp_path, "best", monitor="score", mode="max", save_last=True)
    _trainer(tmp_path, [best]).fit(_Tiny())
    assert _epoch_step(tmp_path / "best.ckpt") == (0, STEPS_PER_EPOCH)
    assert _epoch_step(tmp_path / "last.ckpt") == (0, STEPS_PER_EPOCH)  # stale after 3 epochs


def test_latest_checkpoint_holds_the_final_epoch_and_step(tmp_path: Path) -> None:
    best = AtomicCheckpoint(tmp_path, "best", monitor="score", mode="max")
    latest = LatestCheckpoint(tmp_path)
    trainer = _trainer(tmp_path, [best, latest])
    trainer.fit(_Tiny())
    assert _epoch_step(tmp_path / "best.ckpt") == (0, STEPS_PER_EPOCH)
    assert _epoch_step(tmp_path / "last.ckpt") == (2, 3 * STEPS_PER_EPOCH)
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["best.ckpt", "last.ckpt"]
    # ckpt_path="best" still means the monitored checkpoint (the first checkpoint callback).
    assert trainer.checkpoint_callback is best
    # Lightning resolves "last" to it, also with a killed writer's leftover next to it.
    (tmp_path / f".last.ckpt.ckpt{PARTIAL_SUFFIX}").write_bytes(b"truncated")
    trainer.state.fn = TrainerFn.FITTING
    found = trainer._checkpoint_connector._parse_ckpt_path(
        TrainerFn.FITTING, "last", model_provided=True, model_connected=True
    )
    assert Path(found) == tmp_path / "last.ckpt"


def test_latest_checkpoint_every_n_train_steps(tmp_path: Path) -> None:
    class Stop(Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if trainer.global_step == STEPS_PER_EPOCH + 3:  # inside epoch 1
                raise RuntimeError("crash")

    latest = LatestCheckpoint(tmp_path, every_n_train_steps=2)
    with pytest.raises(RuntimeError, match="crash"):
        _trainer(tmp_path, [latest, Stop()]).fit(_Tiny())
    assert _epoch_step(tmp_path / "last.ckpt") == (1, STEPS_PER_EPOCH + 2)
    # Uninterrupted, the run still ends with the end-of-epoch state (after validation).
    _trainer(tmp_path / "full", [LatestCheckpoint(tmp_path / "full", 2)]).fit(_Tiny())
    assert _epoch_step(tmp_path / "full" / "last.ckpt") == (2, 3 * STEPS_PER_EPOCH)
    with pytest.raises(ValueError, match="every_n_train_steps"):
        LatestCheckpoint(tmp_path, every_n_train_steps=0)


def _half_writer(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make Lightning's checkpoint writer die after writing half of the file."""
    import io

    import lightning.fabric.plugins.io.torch_io as torch_io

    def half(checkpoint, filepath):
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        data = buffer.getvalue()
        with open(filepath, "wb") as f:
            f.write(data[: len(data) // 2])
        raise OSError("killed mid-write")

    monkeypatch.setattr(torch_io, "_atomic_save", half)


@pytest.mark.parametrize("callback", [LatestCheckpoint, ModelCheckpoint])
def test_partial_write_never_replaces_a_good_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, callback: type
) -> None:
    cb = callback(tmp_path) if callback is LatestCheckpoint else callback(tmp_path, "last")
    trainer = _trainer(tmp_path, [cb], max_epochs=1)
    trainer.fit(_Tiny())
    good = (tmp_path / "last.ckpt").read_bytes()
    _half_writer(monkeypatch)
    with pytest.raises(OSError, match="mid-write"):
        cb._save_checkpoint(trainer, str(tmp_path / "last.ckpt"))
    if callback is ModelCheckpoint:  # Lightning's own save: the reference failure
        assert len((tmp_path / "last.ckpt").read_bytes()) == len(good) // 2
        return
    assert (tmp_path / "last.ckpt").read_bytes() == good
    assert _epoch_step(tmp_path / "last.ckpt") == (0, STEPS_PER_EPOCH)


def test_atomic_checkpoint_keeps_model_checkpoint_state_key(tmp_path: Path) -> None:
    kwargs = {"dirpath": tmp_path, "monitor": "val/top1", "mode": "max"}
    assert AtomicCheckpoint(**kwargs).state_key == ModelCheckpoint(**kwargs).state_key
    assert LatestCheckpoint(tmp_path).state_key != ModelCheckpoint(tmp_path).state_key


def test_step_seeding_resumes_with_the_checkpoint_seed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PL_GLOBAL_SEED", "5")
    cb = StepSeeding()
    cb.setup(None, None, "fit")  # type: ignore[arg-type]
    assert cb.seed == 5
    cb.load_state_dict({"seed": 7})
    assert cb.seed == 7 and os.environ["PL_GLOBAL_SEED"] == "7"

    class T:  # what on_train_batch_start reads of the trainer
        current_epoch, global_rank = 3, 0

    draws = []
    for _ in range(2):
        cb.on_train_batch_start(T(), None, None, batch_idx=4)  # type: ignore[arg-type]
        draws.append(torch.rand(3))
    torch.testing.assert_close(draws[0], draws[1], rtol=0, atol=0)
    cb.on_train_batch_start(T(), None, None, batch_idx=5)  # type: ignore[arg-type]
    assert not torch.equal(torch.rand(3), draws[0])
