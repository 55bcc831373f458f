"""Resume after SIGKILL vs the uninterrupted run: weights, validation metrics, epochs/steps.

For each variant, runs ``mgr fit`` three times as subprocesses on a tiny SynthMG
release (iMiGUE layout) with ``tests/conf/stcnn_imigue.yaml`` (3 epochs, dropout 0.3,
flips): once uninterrupted; once killed with SIGKILL after batch ``--kill-batch`` of
epoch 2 (a callback given on the command line sends it to its own process); once
resumed from that run's ``last.ckpt`` with ``--ckpt_path last``. Prints one row per
variant: where the resume started, the final epoch/step of both runs, max |Δweight|
between their final ``last.ckpt`` and the final validation metrics of both::

    python benchmarks/resume.py                 # workers 0 / random and workers 2 / sqrt
    python benchmarks/resume.py --variants ddp2-workers1-sqrt_balanced   # 2 gloo processes
    python benchmarks/resume.py --root data/synthmg_imigue --epochs 4
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "tests" / "conf" / "stcnn_imigue.yaml"
TINY = {"videos_per_subject": 1, "clips_per_video": 8, "clip_frames": (8, 16), "gap_frames": (1, 3)}
VARIANTS = {
    "workers0-random": ["--data.init_args.num_workers", "0"],
    "workers2-sqrt_balanced": [
        "--data.init_args.num_workers", "2", "--data.init_args.sampler", "sqrt_balanced",
    ],
    "ddp2-workers1-sqrt_balanced": [  # 2 CPU processes (gloo): not run by default
        "--trainer.strategy", "ddp", "--trainer.devices", "2",
        "--data.init_args.num_workers", "1", "--data.init_args.sampler", "sqrt_balanced",
    ],
}  # fmt: skip
DEFAULT = ["workers0-random", "workers2-sqrt_balanced"]

HELPERS = """
import json, os, signal
from lightning.pytorch.callbacks import Callback

class KillAt(Callback):
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.current_epoch == {epoch} and batch_idx == {batch}:
            os.kill(os.getpid(), signal.SIGKILL)

class DumpMetrics(Callback):
    def on_fit_end(self, trainer, pl_module):
        if not trainer.is_global_zero:
            return
        m = {{k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}}
        with open("metrics.json", "w") as f:
            json.dump(m, f)
"""


def mgr_fit(run: Path, args: list[str], helpers: Path) -> int:
    run.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(helpers), str(REPO), env.get("PYTHONPATH", "")])
    cmd = [sys.executable, "-m", "mgr", "fit", "--config", str(CONF), *args]
    cmd += ["--trainer.default_root_dir", str(run)]
    proc = subprocess.run(cmd, cwd=run, env=env, capture_output=True, text=True)
    if proc.returncode not in (0, -9):
        sys.exit(proc.stderr[-3000:])
    return proc.returncode


def _at(ckpt: dict) -> str:
    return f"e{ckpt['epoch']} s{ckpt['global_step']}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--root", default=None, help="an iMiGUE-layout release (default: a tiny one)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--kill-batch", type=int, default=1, help="batch of the kill epoch")
    p.add_argument("--variants", nargs="+", default=DEFAULT, choices=list(VARIANTS))
    a = p.parse_args()
    kill_epoch = a.epochs - 1
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        root = a.root
        if root is None:
            from mgr.data.synthetic import generate_synthmg

            root = generate_synthmg(
                tmp / "synth", layout="imigue", seed=1, subjects=(2, 1, 1), **TINY
            )
        helpers = tmp / "helpers"
        helpers.mkdir()
        (helpers / "resume_helpers.py").write_text(
            HELPERS.format(epoch=kill_epoch, batch=a.kill_batch)
        )
        common = [
            "--data.init_args.root", str(root), "--trainer.max_epochs", str(a.epochs),
            "--model.init_args.dropout", "0.3",
            "--model.init_args.scheduler.init_args.T_max", str(a.epochs),
            "--trainer.callbacks+=resume_helpers.DumpMetrics",
        ]  # fmt: skip
        print(
            f"{'variant':24} {'resumed from':>13} {'final (full)':>13} {'final (resumed)':>16} "
            f"{'max|dW|':>8} {'val/top1 full':>14} {'resumed':>8} "
            f"{'val/loss full':>14} {'resumed':>8}"
        )
        for name in a.variants:
            full, run = tmp / name / "full", tmp / name / "run"
            mgr_fit(full, [*common, *VARIANTS[name]], helpers)
            kill = ["--trainer.callbacks+=resume_helpers.KillAt"]
            assert mgr_fit(run, [*common, *VARIANTS[name], *kill], helpers) == -9
            ck = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
            start = _at(ck)
            mgr_fit(run, [*common, *VARIANTS[name], "--ckpt_path", "last"], helpers)
            x = torch.load(full / "checkpoints" / "last.ckpt", weights_only=False)
            y = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
            diff = max(
                (x["state_dict"][k].double() - y["state_dict"][k].double()).abs().max().item()
                for k in x["state_dict"]
            )
            mf = json.loads((full / "metrics.json").read_text())
            mr = json.loads((run / "metrics.json").read_text())
            print(
                f"{name:24} {start:>13} {_at(x):>13} {_at(y):>16} {diff:>8.2g} "
                f"{mf['val/top1']:>14.4f} {mr['val/top1']:>8.4f} "
                f"{mf['val/loss']:>14.4f} {mr['val/loss']:>8.4f}"
            )


if __name__ == "__main__":
    main()
