"""The SynthMG configs learn SynthMG (slow: full training runs, minutes on CPU)."""

from pathlib import Path

import pytest

from mgr.cli import MgrCLI
from mgr.data.synthetic import generate_synthmg

REPO = Path(__file__).resolve().parents[1]


def _fit_and_test(conf: str, root: Path) -> tuple[float, Path]:
    fit = MgrCLI(args=["fit", "--config", conf, "--data.init_args.root", str(root)])
    ckpt = fit.trainer.checkpoint_callback.best_model_path
    assert Path(ckpt).is_file()
    test = MgrCLI(
        args=["test", "--config", conf, "--data.init_args.root", str(root), "--ckpt_path", ckpt]
    )
    return float(test.trainer.callback_metrics["test/top1"]), Path(test.trainer.log_dir)


@pytest.mark.slow
@pytest.mark.parametrize("config", ["stcnn.yaml", "posec3d_joint.yaml"])
def test_synth_config_reaches_90_percent_top1(config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the configs write runs/ relative to the working directory
    monkeypatch.setattr("sys.argv", ["mgr"])
    root = generate_synthmg(tmp_path / "synthmg_imigue", layout="imigue", seed=0)
    top1, log_dir = _fit_and_test(str(REPO / "experiments" / "synth" / config), root)
    assert top1 >= 0.90, f"{config} reached test top-1 {top1:.3f}"
    assert (log_dir / "confusion_matrix.png").is_file()
