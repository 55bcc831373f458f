"""experiments/synth/ensemble.sh end to end, shortened (slow: several CLI runs)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_ensemble_script_runs_every_step(synth_imigue, tmp_path):
    env = {
        **os.environ,
        "MGR": f"{sys.executable} -m mgr",
        "ROOT": str(synth_imigue),
        "OUT": str(tmp_path / "ens"),
        "EPOCHS": "1",
        "ALPHA": "0.03125",
    }
    subprocess.run(
        ["bash", str(REPO / "experiments" / "synth" / "ensemble.sh")],
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    out = tmp_path / "ens"
    table = (out / "fusion.txt").read_text()
    assert "stcnn22" in table and "stcnn35" in table
    pseudo = json.loads((out / "pseudo_labels.json").read_text())
    # alpha = 1/K keeps every sample: max probability is at least 1/K.
    assert pseudo["alpha"] == 0.03125 and pseudo["split"] == "test" and pseudo["samples"]
    for name in ("stcnn22", "stcnn22_pseudo"):
        assert "test top1" in (out / f"test_{name}.txt").read_text()
