"""Resume after a crash reproduces the run: same weights and validation metrics.

The default-suite tests crash a fit in-process (an exception in epoch 2 of 3) and
resume it from ``last.ckpt`` in the same process, whose global RNG streams are by
then far from a fresh process's: the hard case for reproducibility. The slow tests
do what a user's crash does: ``mgr fit`` in a subprocess, killed with SIGKILL during
epoch 2, resumed with ``--ckpt_path last``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import Callback

from mgr.callbacks import LatestCheckpoint, StepSeeding
from mgr.datamodules import IMiGUEDataModule
from mgr.models import STCNN

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "tests" / "conf" / "stcnn_imigue.yaml"
EPOCHS, CRASH_EPOCH, CRASH_BATCH = 3, 2, 1


class _Crash(Callback):
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.current_epoch == CRASH_EPOCH and batch_idx == CRASH_BATCH:
            raise RuntimeError("crash")


def _fit(
    root: Path,
    release: Path,
    dm_kwargs: dict,
    *,
    crash: bool = False,
    resume: bool = False,
    step_seeding: bool = True,
) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    pl.seed_everything(0, workers=True)  # as mgr fit does with seed_everything: 0
    dm = IMiGUEDataModule(release, clip_len=8, batch_size=4, flip_prob=0.5, **dm_kwargs)
    model = STCNN(
        dm.num_classes, num_joints=dm.num_joints, channels=[8, 16], temporal_strides=[1, 2],
        dropout=0.3,
    )  # fmt: skip
    callbacks: list[Callback] = [LatestCheckpoint(root)]
    callbacks += [StepSeeding()] if step_seeding else []
    callbacks += [_Crash()] if crash else []
    trainer = pl.Trainer(
        accelerator="cpu", max_epochs=EPOCHS, logger=False, enable_progress_bar=False,
        enable_model_summary=False, callbacks=callbacks, default_root_dir=root,
    )  # fmt: skip
    try:
        trainer.fit(model, dm, ckpt_path="last" if resume else None)
    except RuntimeError as err:
        assert crash and "crash" in str(err)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
    return {k: v.clone() for k, v in model.state_dict().items()}, metrics


def _max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a)


@pytest.mark.filterwarnings("ignore:The dirpath has changed")
def test_resume_in_process_reproduces_the_run(synth_imigue: Path, tmp_path: Path, one_thread):
    # sqrt-balanced draws over rare-class repetition: both sampler wrappers resume.
    dm_kwargs = {"sampler": "sqrt_balanced", "repeat_alpha": 3.0}
    full, full_metrics = _fit(tmp_path / "full", synth_imigue, dm_kwargs)
    _fit(tmp_path / "run", synth_imigue, dm_kwargs, crash=True)
    last = torch.load(tmp_path / "run" / "last.ckpt", weights_only=False)
    assert last["epoch"] == CRASH_EPOCH - 1  # the crash came before epoch 2 was saved
    resumed, resumed_metrics = _fit(tmp_path / "run", synth_imigue, dm_kwargs, resume=True)
    assert _max_diff(full, resumed) <= 1e-6
    assert set(full_metrics) >= {"val/top1", "val/loss"}
    assert resumed_metrics == pytest.approx(full_metrics, rel=0, abs=1e-6)
    assert torch.load(tmp_path / "run" / "last.ckpt", weights_only=False)["epoch"] == EPOCHS - 1

    # The comparison can fail: resuming the same checkpoint without StepSeeding
    # draws other dropout masks and ends elsewhere.
    (tmp_path / "plain").mkdir()
    torch.save(last, tmp_path / "plain" / "last.ckpt")  # the epoch-1 state of the crashed run
    plain, _ = _fit(tmp_path / "plain", synth_imigue, dm_kwargs, resume=True, step_seeding=False)
    assert _max_diff(full, plain) > 1e-4


def test_data_draws_do_not_depend_on_workers(synth_imigue: Path) -> None:
    """Each clip's frames and flip come from (seed, epoch, position), not from a worker."""

    def epoch(num_workers: int, e: int) -> list[torch.Tensor]:
        dm = IMiGUEDataModule(synth_imigue, clip_len=8, batch_size=4, flip_prob=0.5,
                              num_workers=num_workers)  # fmt: skip
        loader = dm.train_dataloader()
        loader.sampler.set_epoch(e)
        return [b["skeleton"] for b in loader]

    torch.manual_seed(123)  # the global stream must not matter
    zero = epoch(0, 1)
    torch.manual_seed(456)
    two = epoch(2, 1)
    assert len(zero) == len(two)
    for a, b in zip(zero, two, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.equal(torch.cat(zero), torch.cat(epoch(0, 2)))


# ---------------------------------------------------------------------- real SIGKILL
_HELPERS = '''
import json, os, signal
from lightning.pytorch.callbacks import Callback

class KillAt(Callback):
    """SIGKILL this process after batch {batch} of epoch {epoch}: no handler, no cleanup."""
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.current_epoch == {epoch} and batch_idx == {batch}:
            os.kill(os.getpid(), signal.SIGKILL)

class DumpMetrics(Callback):
    """Write the last validation's metrics and the final epoch/step to metrics.json."""
    def on_fit_end(self, trainer, pl_module):
        m = {{k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}}
        m["epoch"], m["global_step"] = trainer.current_epoch, trainer.global_step
        with open("metrics.json", "w") as f:
            json.dump(m, f)
'''


def _mgr_fit(run: Path, release: Path, extra: list[str], helpers: Path) -> int:
    run.mkdir(exist_ok=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(helpers), str(REPO), env.get("PYTHONPATH", "")])
    args = [
        sys.executable, "-m", "mgr", "fit", "--config", str(CONF),
        "--data.init_args.root", str(release), "--trainer.max_epochs", str(EPOCHS),
        "--trainer.default_root_dir", str(run), "--model.init_args.dropout", "0.3",
        "--model.init_args.scheduler.init_args.T_max", str(EPOCHS), *extra,
    ]  # fmt: skip
    proc = subprocess.run(args, cwd=run, env=env, capture_output=True, text=True, timeout=900)
    if proc.returncode not in (0, -9):
        raise AssertionError(proc.stderr[-3000:])
    return proc.returncode


@pytest.mark.slow
@pytest.mark.parametrize(
    "data",
    [
        ["--data.init_args.num_workers", "0"],
        ["--data.init_args.num_workers", "2", "--data.init_args.sampler", "sqrt_balanced"],
    ],
    ids=["workers0-random", "workers2-sqrt_balanced"],
)
def test_sigkill_and_resume_reproduces_mgr_fit(synth_imigue: Path, tmp_path: Path, data):
    helpers = tmp_path / "helpers"
    helpers.mkdir()
    (helpers / "resume_helpers.py").write_text(
        _HELPERS.format(epoch=CRASH_EPOCH, batch=CRASH_BATCH)
    )
    dump = ["--trainer.callbacks+=resume_helpers.DumpMetrics"]
    assert _mgr_fit(tmp_path / "full", synth_imigue, [*data, *dump], helpers) == 0
    run = tmp_path / "run"
    killed = _mgr_fit(
        run, synth_imigue, [*data, "--trainer.callbacks+=resume_helpers.KillAt"], helpers
    )
    assert killed == -9  # SIGKILL: nothing after the kill ran
    assert not (run / "metrics.json").exists()
    last = run / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=False)["epoch"] == CRASH_EPOCH - 1
    assert _mgr_fit(run, synth_imigue, [*data, *dump, "--ckpt_path", "last"], helpers) == 0

    a = torch.load(tmp_path / "full" / "checkpoints" / "last.ckpt", weights_only=False)
    b = torch.load(last, weights_only=False)
    assert (a["epoch"], a["global_step"]) == (b["epoch"], b["global_step"])
    assert _max_diff(a["state_dict"], b["state_dict"]) <= 1e-6
    full_metrics = json.loads((tmp_path / "full" / "metrics.json").read_text())
    resumed_metrics = json.loads((run / "metrics.json").read_text())
    assert {"val/top1", "val/loss", "epoch", "global_step"} <= set(full_metrics)
    assert resumed_metrics == pytest.approx(full_metrics, rel=0, abs=1e-6)
