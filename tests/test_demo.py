"""The demo config learns SynthMG (slow: the full `make demo` training run, minutes on CPU)."""

from pathlib import Path

import pytest

from mgr.cli import MgrCLI
from mgr.data.synthetic import generate_synthmg

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_demo_config_reaches_90_percent_top1(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the config writes runs/ relative to the working directory
    monkeypatch.setattr("sys.argv", ["mgr"])
    root = generate_synthmg(tmp_path / "synthmg_imigue", layout="imigue", seed=0)
    conf = str(REPO / "experiments" / "synth" / "stcnn.yaml")
    fit = MgrCLI(args=["fit", "--config", conf, "--data.init_args.root", str(root)])
    ckpt = fit.trainer.checkpoint_callback.best_model_path
    assert Path(ckpt).is_file()
    test = MgrCLI(
        args=["test", "--config", conf, "--data.init_args.root", str(root), "--ckpt_path", ckpt]
    )
    top1 = float(test.trainer.callback_metrics["test/top1"])
    assert top1 >= 0.90, f"demo reached test top-1 {top1:.3f}"
    assert (Path(test.trainer.log_dir) / "confusion_matrix.png").is_file()
