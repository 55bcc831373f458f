"""mgr.distributed: strategies that cannot run here fail at start in one line; FG-SGL's sharding."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import torch
import yaml
from lightning.pytorch import Trainer
from lightning.pytorch.strategies import FSDPStrategy
from torch.distributed.fsdp import ShardingStrategy

import mgr.distributed
from mgr.cli import MgrCLI, main
from mgr.distributed import check_trainer_setup, global_batch_size
from mgr.errors import UserError

REPO = Path(__file__).resolve().parents[1]
FGSGL_PAPER = [REPO / "experiments" / ds / "fgsgl.yaml" for ds in ("imigue", "smg")]
TINY = REPO / "tests" / "conf" / "stcnn_imigue.yaml"


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


@pytest.fixture
def two_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.distributed, "is_nccl_available", lambda: True)


@pytest.fixture(autouse=True)
def _plain_argv(monkeypatch):
    monkeypatch.setattr("sys.argv", ["mgr"])


def trainer(**kwargs):
    return {"accelerator": "auto", "strategy": "auto", "devices": "auto", **kwargs}


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"accelerator": "gpu"}, "use --trainer.accelerator cpu"),
        ({"accelerator": "cuda", "devices": 2}, "no GPU"),
        ({"strategy": "fsdp"}, "--trainer.strategy ddp --trainer.accelerator cpu"),
        ({"strategy": "fsdp", "accelerator": "cpu"}, "CUDA GPUs only"),
        ({"strategy": "deepspeed_stage_2"}, "CUDA GPUs only"),
        (
            {"strategy": {"class_path": "lightning.pytorch.strategies.FSDPStrategy"}},
            "FSDP (torch FullyShardedDataParallel) runs on CUDA GPUs only",
        ),
        (
            {
                "strategy": {
                    "class_path": "lightning.pytorch.strategies.DDPStrategy",
                    "init_args": {"process_group_backend": "nccl"},
                },
                "devices": 2,
            },
            "use process_group_backend gloo",
        ),
        ({"strategy": "dpp"}, "not one of Lightning's"),
        ({"strategy": "lightning.pytorch.strategies.DDPStrategy"}, "--trainer.strategy.class_path"),
    ],
)
def test_what_cannot_run_without_a_gpu_is_one_clear_line(no_gpu, options, expected):
    with pytest.raises(UserError) as err:
        check_trainer_setup(trainer(**options))
    message = str(err.value)
    assert expected in message and "\n" not in message


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"strategy": "ddp", "accelerator": "cpu", "devices": 2},
        {"strategy": "ddp_spawn", "devices": "2"},
        {"strategy": {"class_path": "lightning.pytorch.strategies.DDPStrategy"}, "devices": 2},
    ],
)
def test_cpu_setups_that_run_pass(no_gpu, options):
    check_trainer_setup(trainer(**options))


def test_gpu_machine_checks(two_gpus, monkeypatch):
    # Sharded strategies pass on GPUs (DeepSpeed only when installed).
    check_trainer_setup(trainer(strategy="fsdp", devices=2))
    check_trainer_setup(trainer(strategy="ddp", accelerator="gpu", devices=[0, 1]))
    with pytest.raises(UserError, match="asks for 4 GPUs, this machine has 2"):
        check_trainer_setup(trainer(accelerator="gpu", devices=4))
    with pytest.raises(UserError, match="asks for 3 GPUs"):
        check_trainer_setup(trainer(devices="0,2"))
    with pytest.raises(UserError, match="not with accelerator 'cpu'"):
        check_trainer_setup(trainer(strategy="deepspeed", accelerator="cpu"))
    nccl_on_cpu = {
        "class_path": "lightning.pytorch.strategies.DDPStrategy",
        "init_args": {"process_group_backend": "nccl"},
    }
    with pytest.raises(UserError, match="NCCL moves CUDA tensors only"):
        check_trainer_setup(trainer(strategy=nccl_on_cpu, accelerator="cpu"))
    monkeypatch.setattr(mgr.distributed, "_installed", lambda name: name != "deepspeed")
    with pytest.raises(UserError, match="pip install deepspeed"):
        check_trainer_setup(trainer(strategy="deepspeed_stage_2", devices=2))
    monkeypatch.setattr(mgr.distributed, "_installed", lambda name: True)
    check_trainer_setup(trainer(strategy="deepspeed_stage_2", devices=2))


def test_cli_refuses_before_the_trainer_starts(no_gpu, tmp_path, capsys, monkeypatch):
    @functools.wraps(Trainer.__init__)  # the same signature for the CLI's parser
    def started(*args, **kwargs):
        raise AssertionError("the Trainer was built")

    monkeypatch.setattr(Trainer, "__init__", started)
    monkeypatch.chdir(tmp_path)
    args = ["fit", "--config", str(TINY), "--data.init_args.root", str(tmp_path)]
    assert main([*args, "--trainer.strategy", "fsdp"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mgr: error: trainer.strategy 'fsdp'") and err.count("\n") == 1
    assert main([*args, "--trainer.accelerator", "gpu"]) == 2
    assert "use --trainer.accelerator cpu" in capsys.readouterr().err


def _printed_trainer(args: list[str], capsys) -> dict:
    with pytest.raises(SystemExit):
        MgrCLI(args=[*args, "--print_config"])
    return yaml.safe_load(capsys.readouterr().out)["trainer"]


def test_fgsgl_paper_configs_shard_like_zero2(tmp_path, capsys, no_gpu):
    for conf in FGSGL_PAPER:
        args = ["fit", "--config", str(conf), "--data.init_args.root", str(tmp_path)]
        options = _printed_trainer(args, capsys)
        strategy = options["strategy"]
        assert strategy["class_path"] == "lightning.pytorch.strategies.FSDPStrategy"
        built = FSDPStrategy(**strategy["init_args"])
        # ZeRO-2: gradients and optimizer states sharded, parameters whole in a step;
        # LoRA's frozen and trained weights in one FSDP unit need use_orig_params.
        assert built.sharding_strategy == ShardingStrategy.SHARD_GRAD_OP
        assert built.kwargs["use_orig_params"] is True
        assert options["sync_batchnorm"] is False
        # On this CPU machine: the one-line refusal, naming the CPU alternative.
        with pytest.raises(UserError, match=r"FSDP .* use --trainer\.strategy ddp"):
            check_trainer_setup(options)
    # ... which replaces the YAML's strategy class and runs here.
    options = _printed_trainer([*args, "--trainer.strategy", "ddp"], capsys)
    assert options["strategy"] == "ddp"
    check_trainer_setup({**options, "accelerator": "cpu"})


def test_global_batch_size():
    # FG-SGL's paper setting: 2 GPUs x batch 8 x 4 accumulated steps.
    assert global_batch_size(8, devices=2, num_nodes=1, accumulate_grad_batches=4) == 64
    assert global_batch_size(6, devices=8, num_nodes=2) == 96


def test_mgr_fit_states_the_global_batch(synth_imigue, tmp_path, monkeypatch):
    said = []
    monkeypatch.setattr("mgr.cli.rank_zero_info", said.append)
    monkeypatch.chdir(tmp_path)
    MgrCLI(
        args=[
            "fit",
            "--config",
            str(TINY),
            "--data.init_args.root",
            str(synth_imigue),
            "--trainer.fast_dev_run",
            "true",
            "--trainer.accumulate_grad_batches",
            "3",
        ]
    )
    assert said == [
        "global batch 12 = 1 node(s) x 1 device(s) x batch_size 4 x accumulate_grad_batches 3"
    ]
