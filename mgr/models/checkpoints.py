"""Load mmaction2 / pyskl checkpoints into mgr modules, without OpenMMLab.

mmaction2 (mmengine) and pyskl (mmcv) recognizers name their weights
``backbone.*`` and ``cls_head.fc_cls.{weight,bias}``. mgr's
:class:`~mgr.models.backbones.resnet3d_slowonly.ResNet3dSlowOnly` uses the same
names below ``backbone.``, and a :class:`~mgr.models.base.Recognizer`'s default
head is ``nn.Sequential(dropout, nn.Linear)``, so the key map is two prefixes::

    backbone.          -> backbone.
    cls_head.fc_cls.   -> head.1.

The same function therefore serves both ecosystems; other layouts (e.g. a
two-pathway model) pass their own ``prefix_map``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["DEFAULT_PREFIX_MAP", "LoadReport", "load_mmaction_checkpoint"]

#: checkpoint prefix -> module prefix, for a module with ``backbone`` and
#: ``head = nn.Sequential(dropout, nn.Linear)`` (the Recognizer default).
DEFAULT_PREFIX_MAP: dict[str, str] = {"backbone.": "backbone.", "cls_head.fc_cls.": "head.1."}

# Entries that are not model weights: mmengine's ``data_preprocessor`` (for
# heatmaps it has no tensors; for RGB its mean/std are config, not learnt).
_DROPPED_PREFIXES = ("data_preprocessor.",)


@dataclass
class LoadReport:
    """What :func:`load_mmaction_checkpoint` did.

    Attributes:
        loaded: module keys that received a checkpoint tensor.
        missing: module keys under the mapped prefixes that the checkpoint lacks.
        unexpected: checkpoint keys (original names) with no place in the module.
        skipped_head: checkpoint head keys left out because ``reset_head=True``.
        dropped: checkpoint keys ignored as non-weights (``data_preprocessor.*``).
    """

    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    skipped_head: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"loaded {len(self.loaded)} tensors"]
        for name in ("missing", "unexpected", "skipped_head", "dropped"):
            keys = getattr(self, name)
            if keys:
                lines.append(f"{name} ({len(keys)}): {', '.join(keys)}")
        return "\n".join(lines)


def load_mmaction_checkpoint(
    module: nn.Module,
    path_or_state: str | Path | Mapping[str, Any],
    *,
    prefix_map: Mapping[str, str] | None = None,
    reset_head: bool = False,
    head_keys: Sequence[str] = ("fc_cls",),
    strict: bool = True,
) -> LoadReport:
    """Load an mmaction2 or pyskl recognizer checkpoint into ``module``.

    The file is read with ``torch.load(..., weights_only=False)`` because
    mmengine/mmcv checkpoints pickle non-tensor metadata: **load trusted files
    only**. The weights are taken from ``["state_dict"]`` when present (the
    mmengine/mmcv wrapper ``{"meta", "state_dict", ...}``), else the mapping
    itself is the state dict. A leading ``module.`` (DataParallel) is stripped,
    ``data_preprocessor.*`` entries are dropped, then each key is renamed by
    the longest matching source prefix of ``prefix_map``.

    Only module keys under the target prefixes of ``prefix_map`` are checked
    for completeness; the rest of the module (e.g. a Recognizer's
    ``class_counts`` buffer) is left as it is. BN ``num_batches_tracked`` is
    never reported missing (old checkpoints lack it; torch fills it in).

    Args:
        module: the module to load into (e.g. a Recognizer with ``backbone`` and
            ``head`` submodules, or any module matching ``prefix_map``).
        path_or_state: a checkpoint file, or an already loaded checkpoint or
            state dict.
        prefix_map: checkpoint key prefix -> module key prefix. Checkpoint keys
            matching no prefix are unexpected. Default :data:`DEFAULT_PREFIX_MAP`.
        reset_head: skip the classifier keys (those with a ``head_keys``
            component) and leave the module's head at its initialisation, e.g.
            to fine-tune a 60-class NTU model on 32 micro-gesture classes.
        head_keys: dotted name components that mark a checkpoint key as part of
            the classifier (mmaction2/pyskl ``I3DHead``: ``fc_cls``).
        strict: raise if any mapped module key is missing or any checkpoint key
            is unexpected. With ``strict=False`` they are only reported.

    Returns:
        A :class:`LoadReport`.

    Raises:
        ValueError: a head's class count differs from the module's (unless
            ``reset_head``), another tensor's shape differs, or (``strict``)
            keys are missing or unexpected.
    """
    state = _read_state_dict(path_or_state)
    mapping = dict(DEFAULT_PREFIX_MAP if prefix_map is None else prefix_map)
    # Longest source prefix first, so specific entries beat general ones.
    sources = sorted(mapping, key=len, reverse=True)
    target = module.state_dict()
    report = LoadReport()
    new_state: dict[str, Tensor] = {}

    for key, value in state.items():
        key = key.removeprefix("module.")
        if key.startswith(_DROPPED_PREFIXES):
            report.dropped.append(key)
            continue
        is_head = _is_head(key, head_keys)
        if is_head and reset_head:
            report.skipped_head.append(key)
            continue
        src = next((p for p in sources if key.startswith(p)), None)
        new_key = None if src is None else mapping[src] + key[len(src) :]
        if new_key is None or new_key not in target:
            report.unexpected.append(key)
            continue
        ours = target[new_key]
        if tuple(value.shape) != tuple(ours.shape):
            if is_head and value.ndim >= 1 and ours.ndim >= 1 and value.shape[0] != ours.shape[0]:
                raise ValueError(
                    f"checkpoint head {key!r} has {value.shape[0]} classes but the module's "
                    f"{new_key!r} has {ours.shape[0]}; pass reset_head=True to load only "
                    "the backbone and keep the module's freshly initialised head"
                )
            raise ValueError(
                f"shape mismatch for checkpoint key {key!r} -> {new_key!r}: "
                f"checkpoint {tuple(value.shape)}, module {tuple(ours.shape)}"
            )
        new_state[new_key] = value
        report.loaded.append(new_key)

    # A reset head's targets are expected to stay unloaded.
    exempt = {mapping[p] for p in mapping if reset_head and _is_head(p, head_keys)}
    covered = tuple(mapping.values())
    report.missing = [
        k
        for k in target
        if k.startswith(covered)
        and k not in new_state
        and not k.startswith(tuple(exempt))
        and not k.endswith("num_batches_tracked")
    ]
    if strict and (report.missing or report.unexpected):
        raise ValueError(
            "checkpoint does not match the module (pass strict=False to load anyway):\n"
            f"missing keys: {report.missing}\nunexpected keys: {report.unexpected}"
        )
    # Our checks are complete; strict=False here only tolerates the unmapped rest.
    module.load_state_dict(new_state, strict=False)
    return report


def _read_state_dict(path_or_state: str | Path | Mapping[str, Any]) -> Mapping[str, Tensor]:
    """The state dict inside a checkpoint file or object."""
    if isinstance(path_or_state, str | Path):
        # mmengine checkpoints pickle ``meta`` objects, which weights_only refuses.
        ckpt = torch.load(path_or_state, map_location="cpu", weights_only=False)
    else:
        ckpt = path_or_state
    if not isinstance(ckpt, Mapping):
        raise TypeError(f"expected a checkpoint dict, got {type(ckpt).__name__}")
    state = ckpt.get("state_dict", ckpt)
    bad = [k for k, v in state.items() if not torch.is_tensor(v)]
    if bad:
        raise TypeError(f"state dict entries are not tensors: {bad[:5]}")
    return state


def _is_head(key: str, head_keys: Sequence[str]) -> bool:
    """Whether ``key`` has one of ``head_keys`` as a dotted component (or component run)."""
    dotted = f".{key.strip('.')}."
    return any(f".{h.strip('.')}." in dotted for h in head_keys)
