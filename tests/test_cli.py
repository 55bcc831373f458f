import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mgr.cli import MgrCLI, main

REPO = Path(__file__).resolve().parents[1]
CONFS = sorted((REPO / "tests" / "conf").glob("*.yaml"))
EXPERIMENTS = sorted((REPO / "experiments").rglob("*.yaml"))


@pytest.fixture(autouse=True)
def _plain_argv(monkeypatch):
    """LightningCLI warns when it gets ``args`` while sys.argv holds pytest's own options."""
    monkeypatch.setattr("sys.argv", ["mgr"])


def _root_for(conf: Path, request: pytest.FixtureRequest) -> list[str]:
    """The tiny SynthMG release a config reads (releases with videos only where needed)."""
    data = yaml.safe_load(conf.read_text())["data"]
    video = "video" in data["init_args"].get("modalities", [])
    name = data["class_path"].rsplit(".", 1)[1]
    fixture = {
        ("SMGDataModule", False): "synth_smg",
        ("SMGDataModule", True): "synth_smg_rgb",
        ("IMiGUEDataModule", False): "synth_imigue",
        ("IMiGUEDataModule", True): "synth_imigue_rgb",
        ("MA52DataModule", True): "synth_ma52",
        ("SMGOnlineDataModule", False): "synth_smg",
    }[name, video or name == "MA52DataModule"]
    return ["--data.init_args.root", str(request.getfixturevalue(fixture))]


@pytest.mark.parametrize("conf", CONFS, ids=[c.stem for c in CONFS])
@pytest.mark.parametrize("command", ["fit", "test", "predict"])
def test_tiny_configs_run(conf, command, request, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cli = MgrCLI(
        args=[
            command,
            "--config",
            str(conf),
            *_root_for(conf, request),
            "--trainer.fast_dev_run",
            "true",
        ]
    )
    assert cli.trainer.state.finished
    if command == "predict":
        preds = cli.trainer.predict_loop.predictions
        assert preds
        if "probs" in preds[0]:  # a recognizer: class probabilities per sample
            assert preds[0]["probs"].shape[1] == cli.datamodule.num_classes
        else:  # the detector: (start, end, class) per sequence
            assert {"segments", "scores", "labels", "video_id"} <= set(preds[0][0])


@pytest.mark.parametrize("conf", EXPERIMENTS, ids=[str(c.relative_to(REPO)) for c in EXPERIMENTS])
def test_experiment_configs_parse(conf, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        MgrCLI(
            args=[
                "fit",
                "--config",
                str(conf),
                "--data.init_args.root",
                str(tmp_path),
                "--print_config",
            ]
        )
    assert exit_info.value.code == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"]["class_path"].startswith("mgr.models.")
    assert printed["data"]["init_args"]["root"] == str(tmp_path)


def test_print_config_shows_every_knob(tmp_path, capsys):
    conf = REPO / "experiments" / "synth" / "stcnn.yaml"
    with pytest.raises(SystemExit):
        MgrCLI(args=["fit", "--config", str(conf), "--print_config"])
    printed = yaml.safe_load(capsys.readouterr().out)
    model, data = printed["model"]["init_args"], printed["data"]["init_args"]
    for knob in (
        "channels",
        "temporal_strides",
        "spatial_kernel",
        "temporal_kernel",
        "readout",
        "dropout",
        "label_smoothing",
        "test_average",
        "optimizer",
        "scheduler",
    ):
        assert knob in model, knob
    for knob in (
        "root",
        "clip_len",
        "keypoints",
        "center_mode",
        "scale",
        "flip_prob",
        "test_clips",
        "test_flip",
        "split_scheme",
        "on_bad_sample",
        "modalities",
        "sampler",
        "batch_size",
    ):
        assert knob in data, knob


def test_synth_subcommand(tmp_path, capsys):
    assert (
        main(
            [
                "synth",
                "--layout",
                "smg",
                "--out",
                str(tmp_path),
                "--seed",
                "3",
                "--subjects",
                "1",
                "1",
                "1",
                "--clips-per-video",
                "2",
            ]
        )
        == 0
    )
    assert "SynthMG (smg layout, seed 3)" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "Sample0001",
        "Sample0002",
        "Sample0003",
        "fgtext.csv",
        "synthmg.json",
    ]


def test_python_dash_m_mgr():
    out = subprocess.run(
        [sys.executable, "-m", "mgr", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "mgr {fit,validate,test,predict}" in out and "mgr synth" in out


@pytest.mark.parametrize("kind", ["random", "text", "zip"])
def test_ckpt_path_that_is_not_a_checkpoint_is_one_line(kind, synth_imigue, tmp_path, capsys):
    bad = tmp_path / "model.ckpt"
    if kind == "random":
        bad.write_bytes(bytes(range(7, 256)) * 20)
    elif kind == "text":
        bad.write_text("epoch: 3\n")
    else:
        import zipfile

        with zipfile.ZipFile(bad, "w") as archive:
            archive.writestr("a.txt", "hi")
    conf = REPO / "tests" / "conf" / "stcnn_imigue.yaml"
    argv = ["test", "--config", str(conf), "--data.init_args.root", str(synth_imigue)]
    assert main([*argv, "--ckpt_path", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"mgr: error: {bad} ") and err.count("\n") == 1
    assert "weights_only=False" not in err and "WeightsUnpickler" not in err


def test_mgr_test_summary_states_the_protocol_and_the_literature(
    synth_imigue, synth_ma52, tmp_path, monkeypatch, caplog
):
    """Every metric `mgr test` prints comes with its protocol (dataset, scheme, split)."""
    import logging

    monkeypatch.chdir(tmp_path)
    caplog.set_level(logging.INFO)
    stcnn = REPO / "tests" / "conf" / "stcnn_imigue.yaml"
    MgrCLI(args=["test", "--config", str(stcnn), "--data.init_args.root", str(synth_imigue)])
    text = caplog.text
    assert "protocol            SynthMG in the iMiGUE layout (not the real data)" in text
    assert "literature" in text
    caplog.clear()
    ma52 = REPO / "tests" / "conf" / "r2plus1d_ma52.yaml"
    MgrCLI(args=["test", "--config", str(ma52), "--data.init_args.root", str(synth_ma52)])
    summary = caplog.text[caplog.text.index("mgr test summary") :]
    assert "protocol            SynthMG in the MA-52 layout" in summary
    for key in ("f1_mean", "fine_micro_f1", "coarse_macro_f1", "body_top1"):
        assert f"test {key}" in summary, key
    # The MA-52 baseline is listed, but a SynthMG run is never its "same protocol".
    assert "58.88" in summary and "same protocol" not in summary


def test_fgsgl_text_dim_read_from_the_text_encoder_under_the_cli(
    synth_imigue_rgb, tmp_path, monkeypatch
):
    """text_dim: null in a config: LightningCLI records null as the hparam, the model
    must still size its projections from the text encoder (real-size FG-SGL configs)."""
    monkeypatch.chdir(tmp_path)
    conf = REPO / "tests" / "conf" / "fgsgl_imigue.yaml"
    args = ["fit", "--config", str(conf), "--data.init_args.root", str(synth_imigue_rgb)]
    cli = MgrCLI(
        args=[*args, "--model.init_args.text_dim", "null", "--trainer.fast_dev_run", "true"]
    )
    assert cli.trainer.state.finished
    assert cli.model.hparams.text_dim == 384  # the packaged MiniLM's embedding size
    assert cli.model.proj_high[1].out_features == 384
