"""Checks of a run's devices and strategy before the Trainer starts, and its global batch.

:func:`check_trainer_setup` turns the mistakes Lightning only finds once processes are
running (or reports as a traceback) into one :class:`~mgr.errors.UserError` line that
says what to install or use instead: a GPU accelerator on a machine without one, more
GPUs than it has, FSDP or DeepSpeed without CUDA GPUs, DeepSpeed not installed, an
NCCL process group without CUDA. ``mgr fit|validate|test|predict`` call it on the parsed
``trainer`` options (:class:`mgr.cli.MgrCLI`).

:func:`global_batch_size` is the batch that one optimizer step sees,
``num_nodes * devices * batch_size * accumulate_grad_batches``; a config's learning rate
is for the global batch its header names (README, "Many GPUs and many machines").
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

import torch

from mgr.errors import UserError

__all__ = ["check_trainer_setup", "global_batch_size"]

_CPU_FALLBACK = "--trainer.strategy ddp --trainer.accelerator cpu"


def _strategy_class(strategy: Any) -> tuple[str, type | None, dict[str, Any]]:
    """``(name, class, init_args)`` of a parsed ``trainer.strategy`` (a name or class_path)."""
    from lightning.pytorch.strategies import Strategy, StrategyRegistry

    if isinstance(strategy, Strategy):
        return type(strategy).__name__, type(strategy), {}
    if isinstance(strategy, str):
        key = strategy.lower()  # as Lightning reads it
        if key == "auto":
            return strategy, None, {}
        if key not in StrategyRegistry:
            names = "auto, ddp, ddp_spawn, fsdp, deepspeed_stage_2, ..."
            if "." in key:  # a class path given as a plain string
                raise UserError(
                    f"trainer.strategy {strategy!r}: a strategy class goes in "
                    f"--trainer.strategy.class_path {strategy} (or class_path/init_args in "
                    f"YAML); plain strings are Lightning's names ({names})"
                )
            raise UserError(f"trainer.strategy {strategy!r} is not one of Lightning's ({names})")
        # dict lookup: the registry's own get() instantiates the strategy
        entry = StrategyRegistry[key]
        return strategy, entry["strategy"], dict(entry["init_params"])
    class_path = _get(strategy, "class_path")
    if not isinstance(class_path, str):
        return str(strategy), None, {}
    module, _, name = class_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return class_path, None, {}  # jsonargparse reports it
    init_args = _get(strategy, "init_args") or {}
    return name, cls, dict(vars(init_args)) if not isinstance(init_args, dict) else init_args


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _get(obj: Any, key: str) -> Any:
    return obj.get(key) if isinstance(obj, dict) else getattr(obj, key, None)


def _requested_gpus(devices: Any) -> int | None:
    """How many GPUs ``trainer.devices`` asks for (``None``: ``auto`` / all)."""
    if isinstance(devices, str):
        devices = devices.strip()
        if devices in ("auto", "-1"):
            return None
        if "," in devices:
            return max(int(d) for d in devices.split(",") if d.strip()) + 1
        devices = int(devices) if devices.isdigit() else None
    if isinstance(devices, (list, tuple)):
        return max(int(d) for d in devices) + 1 if devices else None
    if isinstance(devices, int) and devices > 0:
        return devices
    return None


def check_trainer_setup(trainer: Any) -> None:
    """Refuse a device/strategy combination that cannot run on this machine.

    Args:
        trainer: the parsed ``trainer`` options (a jsonargparse namespace or a dict
            with ``accelerator``, ``strategy``, ``devices``).

    Raises:
        UserError: one line naming the option and what to install or use instead.
    """
    from lightning.pytorch.strategies import DDPStrategy, DeepSpeedStrategy, FSDPStrategy

    accelerator = _get(trainer, "accelerator")
    accelerator = accelerator if isinstance(accelerator, str) else _get(accelerator, "class_path")
    accelerator = (accelerator or "auto").rsplit(".", 1)[-1].lower()
    cuda = torch.cuda.is_available()
    mps = torch.backends.mps.is_available()
    if accelerator in ("gpu", "cuda", "cudaaccelerator") and not (
        cuda or (accelerator == "gpu" and mps)
    ):
        raise UserError(
            f"trainer.accelerator {accelerator!r}, but torch finds no GPU on this machine "
            "(torch.cuda.is_available() is False): use --trainer.accelerator cpu, or install "
            "a CUDA build of torch on a machine with an NVIDIA GPU"
        )
    wants = _requested_gpus(_get(trainer, "devices"))
    count = torch.cuda.device_count()
    on_cuda = accelerator in ("gpu", "cuda", "cudaaccelerator") or (accelerator == "auto" and cuda)
    if on_cuda and cuda and wants is not None and wants > count:
        raise UserError(
            f"trainer.devices asks for {wants} GPUs, this machine has {count}: "
            f"use --trainer.devices {count} (or auto)"
        )

    name, cls, init_args = _strategy_class(_get(trainer, "strategy") or "auto")
    if cls is None:
        return
    needs_cuda = None
    if issubclass(cls, FSDPStrategy):
        needs_cuda = "FSDP (torch FullyShardedDataParallel)"
    elif issubclass(cls, DeepSpeedStrategy):
        needs_cuda = "DeepSpeed"
    if needs_cuda and not cuda:
        raise UserError(
            f"trainer.strategy {name!r}: {needs_cuda} runs on CUDA GPUs only and torch finds "
            f"none on this machine; use {_CPU_FALLBACK} here"
        )
    if needs_cuda and accelerator not in ("auto", "gpu", "cuda", "cudaaccelerator"):
        raise UserError(
            f"trainer.strategy {name!r}: {needs_cuda} runs on CUDA GPUs only, not with "
            f"accelerator {accelerator!r}: use --trainer.accelerator gpu, or {_CPU_FALLBACK}"
        )
    if issubclass(cls, DeepSpeedStrategy) and not _installed("deepspeed"):
        raise UserError(
            f"trainer.strategy {name!r} needs DeepSpeed: pip install deepspeed, or use the "
            "sharded strategy of torch: --trainer.strategy fsdp"
        )
    backend = init_args.get("process_group_backend")
    if issubclass(cls, DDPStrategy) and backend == "nccl":
        if not (cuda and torch.distributed.is_nccl_available()):
            raise UserError(
                "trainer.strategy process_group_backend 'nccl' needs CUDA GPUs and a torch "
                "built with NCCL: use process_group_backend gloo on this machine (or leave it "
                "unset: Lightning picks nccl on GPUs, gloo on CPUs)"
            )
        if accelerator == "cpu":
            raise UserError(
                "trainer.strategy process_group_backend 'nccl' with accelerator 'cpu': NCCL "
                "moves CUDA tensors only; use process_group_backend gloo (or leave it unset)"
            )


def global_batch_size(
    batch_size: int, devices: int, num_nodes: int = 1, accumulate_grad_batches: int = 1
) -> int:
    """Samples per optimizer step: ``num_nodes * devices * batch_size * accumulate_grad_batches``.

    Args:
        batch_size: the datamodule's batch size (per process).
        devices: processes per node.
        num_nodes: machines.
        accumulate_grad_batches: batches accumulated per optimizer step.
    """
    return num_nodes * devices * batch_size * accumulate_grad_batches
