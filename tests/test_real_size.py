"""benchmarks/real_size.py: every paper config at its real size (issue 15, item 4).

The fast tests check the pure pieces (which release a config reads, the config rewrite
that may change only data roots, batch size, workers and where it runs, the FLOPs
counter against a closed form). The slow ones run the script's machinery end to end on
three configs with ``--small`` releases (same layouts and resolutions, fewer clips).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch import nn

REPO = Path(__file__).resolve().parents[1]


def _load_script():
    spec = importlib.util.spec_from_file_location("real_size", REPO / "benchmarks" / "real_size.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("real_size", module)
    spec.loader.exec_module(module)
    return module


rs = _load_script()


# ----------------------------------------------------------------------------- fast
def test_release_of_reads_class_and_source():
    dm = "mgr.datamodules."
    assert rs.release_of({"class_path": dm + "MA52DataModule"}) == "ma52"
    assert rs.release_of({"class_path": dm + "SMGDataModule", "init_args": {}}) == "smg"
    assert rs.release_of({"class_path": dm + "SMGOnlineDataModule"}) == "smg_untrimmed"
    assert rs.release_of({"class_path": dm + "IMiGUEDataModule"}) == "imigue_miga23"
    miga25 = {"class_path": dm + "IMiGUEDataModule", "init_args": {"source": "miga25"}}
    assert rs.release_of(miga25) == "imigue_miga25"
    with pytest.raises(ValueError, match="no SynthMG release"):
        rs.release_of({"class_path": dm + "UnlabeledDataModule"})


@pytest.mark.parametrize("path", rs.configs(None), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_rewrite_changes_only_allowed_keys(path, tmp_path):
    config = yaml.safe_load(path.read_text())
    roots = {rs.release_of(e): tmp_path / rs.release_of(e) for _, e in rs.datamodules(config)}
    new, changed = rs.rewrite_config(config, roots, batch_size=2)
    assert config == yaml.safe_load(path.read_text())  # the input is not touched
    # An independent walk of both trees finds exactly the reported keys, all allowed.
    diff = rs.config_diff(config, new)
    assert sorted(diff) == sorted(changed)
    for key in diff:
        assert any(re.fullmatch(allowed, key) for allowed in rs.ALLOWED), key
    assert new["trainer"]["accelerator"] == "cpu" and new["trainer"]["devices"] == 1
    assert new["data"]["init_args"]["batch_size"] == 2
    assert new["data"]["init_args"]["num_workers"] == 0
    # Every datamodule reads its release; precision stays as configured.
    for _, entry in rs.datamodules(new):
        assert Path(entry["init_args"]["root"]).parent == tmp_path
    assert new["trainer"].get("precision") == config["trainer"].get("precision")


def test_rewrite_runs_bf16_configs_in_fp32_without_native_bf16(tmp_path):
    config = yaml.safe_load((REPO / "experiments/imigue/fgsgl.yaml").read_text())
    assert config["trainer"]["precision"] == "bf16-mixed"
    roots = {"imigue_miga25": tmp_path}
    kept, changed = rs.rewrite_config(config, roots, 1, bf16=True)
    assert kept["trainer"]["precision"] == "bf16-mixed" and "trainer.precision" not in changed
    fp32, changed = rs.rewrite_config(config, roots, 1, bf16=False)
    assert fp32["trainer"]["precision"] == "32-true" and "trainer.precision" in changed
    # A config in fp32 is not touched either way.
    stcnn = yaml.safe_load((REPO / "experiments/imigue/stcnn.yaml").read_text())
    same, _ = rs.rewrite_config(stcnn, {"imigue_miga23": tmp_path}, 2, bf16=False)
    assert same["trainer"].get("precision") == stcnn["trainer"].get("precision")


def test_rewrite_points_depth_and_flow_at_their_folders(tmp_path):
    config = yaml.safe_load((REPO / "experiments/imigue/videoswin_depth.yaml").read_text())
    new, _ = rs.rewrite_config(config, {"imigue_miga25": tmp_path}, 2)
    depth = tmp_path.parent / f"{tmp_path.name}_depth"
    assert new["data"]["init_args"]["video"]["root"] == str(depth)


def test_config_diff_sees_nested_and_list_changes():
    a = {"x": {"y": [1, {"z": 2}]}, "w": 1}
    b = {"x": {"y": [1, {"z": 3}]}, "v": 1}
    assert sorted(rs.config_diff(a, b)) == ["v", "w", "x.y.1.z"]


class _ConvLinear(nn.Module):
    """Called like mgr's recognizers: ``model(batch)``."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv3d(3, 8, kernel_size=(3, 5, 5), stride=(1, 2, 2), padding=(1, 2, 2))
        self.fc = nn.Linear(8 * 4 * 8 * 8, 10)

    def forward(self, batch):
        return self.fc(self.conv(batch["video"]).flatten(1))


@pytest.mark.parametrize("device", ["meta", "cpu"])
def test_flop_counter_matches_closed_form(device):
    model = _ConvLinear()
    sample = {"video": torch.randn(1, 3, 4, 16, 16), "sample_id": ["a"]}
    flops = rs.count_flops(model.to(device), sample, device)
    # Conv: every output element is Cin * kT * kH * kW multiply-adds; output 8 x 4 x 8 x 8.
    conv = 2 * (3 * 3 * 5 * 5) * (8 * 4 * 8 * 8)
    linear = 2 * (8 * 4 * 8 * 8) * 10
    assert flops == conv + linear


def test_forward_flops_keeps_the_weights():
    model = _ConvLinear()
    before = model.conv.weight.detach().clone()
    gflops, on = rs._forward_flops(model, {"video": torch.randn(1, 3, 4, 16, 16)})
    assert on == "meta" and gflops > 0
    assert torch.equal(model.conv.weight, before)  # the meta pass ran on a copy


def test_table_has_one_row_per_config_and_marks_failures():
    ok = {
        "config": "smg/stcnn",
        "batch": 2,
        "precision": "32-true",
        "model": "STCNN",
        "fit": {
            "ok": True,
            "params": 2_000_000,
            "trainable": 1_000_000,
            "input": {"skeleton": [3, 32, 25]},
            "step_s_median": 3.0,
            "step_cpu_s_median": 0.5,
            "peak_rss_gib": 1.25,
            "loader_ms_per_sample": 9.0,
            "loader_cpu_ms_per_sample": 3.0,
            "gflops": 0.12,
        },
        "test": {"ok": True, "wall_s": 10.0, "peak_rss_gib": 1.0},
        "predict": {"ok": False, "wall_s": 10.0},
    }
    bad = {"config": "smg/fgsgl", "fit": {"ok": False}, "error": "Traceback\nValueError: boom"}
    lines = rs.table([ok, bad]).splitlines()
    assert len(lines) == 4
    cells = [c.strip() for c in lines[2].strip("|").split("|")]
    assert cells[:6] == ["smg/stcnn", "2.00M (1.00M)", "skeleton 3x32x25", "2", "32-true", "0.50"]
    assert cells[6:9] == ["1.2/1.0/-", "3.0", "0.12"] and cells[-2:] == ["ok 10 s", "FAILED"]
    assert "FAILED: ValueError: boom" in lines[3]


# ----------------------------------------------------------------------------- slow
SUBSET = ["smg/stcnn", "imigue/posec3d_joint", "ma52/videoswin_rgb"]


@pytest.fixture(scope="module")
def subset_run(tmp_path_factory):
    """The script on three configs, ``--small`` releases; its stored results.

    Writing the 1080p SMG release takes most of the time (~15 min on 2 busy cores);
    ``MGR_REAL_SIZE_DATA=/tmp/mgr_real_size/data`` reuses the releases of an earlier run.
    """
    work = tmp_path_factory.mktemp("real_size")
    if os.environ.get("MGR_REAL_SIZE_DATA"):
        (work / "data").symlink_to(Path(os.environ["MGR_REAL_SIZE_DATA"]).resolve())
    rc = rs.main(["--work", str(work), "--small", "--nice", "0", "--configs", *SUBSET])
    results = {}
    for stored in (work / "results").glob("*.json"):
        r = json.loads(stored.read_text())
        results[r["config"]] = r
    return rc, results, work


@pytest.mark.slow
def test_subset_every_stage_succeeds(subset_run):
    rc, results, _ = subset_run
    assert sorted(results) == sorted(SUBSET)
    for name, r in results.items():
        for stage in ("fit", "test", "predict"):
            assert r[stage]["ok"], (name, stage, r[stage].get("error"))
        assert "error" not in r, (name, r["error"])
        fit = r["fit"]
        assert len(fit["step_s"]) == 2  # 2 training steps
        assert Path(fit["checkpoint"]).is_file()
        assert fit["params"] > 0 and fit["gflops"] > 0 and fit["peak_rss_gib"] > 0
    assert rc == 0


@pytest.mark.slow
def test_subset_predictions_cover_every_sample_once(subset_run):
    _, results, work = subset_run
    for name, r in results.items():
        preds = work / "runs" / name.replace("/", "__") / "predictions"
        sets = sorted(preds.glob("*.npz"))
        assert sets, name
        with np.load(sets[0]) as npz:
            ids = [str(i) for i in npz["sample_id"]]
        assert len(ids) == len(set(ids)) == r["predict"]["samples"]
        # The generator's own count of the test split (predict_split), not the reader's.
        release = work / "data" / r["release"]
        counts = json.loads((release / "synthmg.json").read_text())["class_counts"]
        assert len(ids) == sum(counts["test"]), name


@pytest.mark.slow
def test_subset_inputs_are_real_size(subset_run):
    _, results, _ = subset_run
    # Video Swin at 224^2 from 1920x1080 MA-52 clips; PoseConv3D heatmaps, one per joint.
    swin = results["ma52/videoswin_rgb"]["fit"]["input"]
    assert next(iter(swin.values()))[-2:] == [224, 224]
    pose = results["imigue/posec3d_joint"]["fit"]["input"]
    config = yaml.safe_load((REPO / "experiments/imigue/posec3d_joint.yaml").read_text())
    assert next(iter(pose.values()))[0] == config["model"]["init_args"]["in_channels"]
