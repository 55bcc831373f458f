"""Load torchvision, mmaction2 and mgr video checkpoints into the RGB-family recognizers.

The recognizers of :mod:`mgr.models.video` hold a torchvision network without
its classifier as ``backbone`` and the Recognizer head
``head = nn.Sequential(dropout, nn.Linear)``, so the key maps are:

torchvision (``swin3d_{t,s,b}``, ``r2plus1d_18``, R(2+1)D-34 in torchvision layout;
plain state dicts with unprefixed keys)::

    X                    -> backbone.X
    head.*  (swin3d)     -> head.1.*
    fc.*    (R(2+1)D)    -> head.1.*

mmaction2 Video Swin (``Recognizer3D`` with ``SwinTransformer3D`` + ``I3DHead``;
``reference-algorithms.md`` §3), first renamed to torchvision's names by
:func:`mmaction_swin_key`, then loaded as above::

    backbone.patch_embed.X               -> patch_embed.X
    backbone.layers.i.blocks.j.X         -> features.{2i}.j.X   (mlp.fc1 -> mlp.0, mlp.fc2 -> mlp.3)
    backbone.layers.i.downsample.X       -> features.{2i+1}.X
    backbone.norm3.X (backbone.norm.X)   -> norm.X
    cls_head.fc_cls.X                    -> head.X

mgr (a Lightning checkpoint or state dict of the same recognizer class, e.g. a
model trained on MA-52 to fine-tune on iMiGUE)::

    backbone.X -> backbone.X,  head.1.X -> head.1.X   (other entries ignored)

In every format:

* a 3-channel first layer (``patch_embed.proj.weight``, ``stem.0.weight``) loads
  into a model with ``in_channels != 3`` through
  :func:`~mgr.models.backbones.video.adapt_input_channels`;
* ``relative_position_index`` buffers the checkpoint lacks are kept from the
  module (they are a function of the window size, not learnt);
* the classifier is kept when its class count is the module's and skipped
  otherwise (the module keeps its freshly initialised head);
  ``reset_head=True`` always skips it, ``reset_head=False`` always loads it (a
  class-count mismatch is then a ``ValueError`` naming both counts).

The renamed state dict goes through
:func:`mgr.models.checkpoints.load_mmaction_checkpoint`, which checks shapes and
completeness and returns its :class:`~mgr.models.checkpoints.LoadReport`
(keys there are the torchvision names of the checkpoint tensors).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from .backbones.video import adapt_input_channels
from .checkpoints import (
    LoadReport,
    checkpoint_state_dict,
    load_mmaction_checkpoint,
    read_checkpoint,
)

__all__ = [
    "load_mgr_video_checkpoint",
    "load_mmaction_swin_checkpoint",
    "load_torchvision_video_checkpoint",
    "mmaction_swin_key",
]

log = logging.getLogger(__name__)

#: first-layer weights that take the input channels (torchvision names).
_FIRST_LAYER_KEYS = ("patch_embed.proj.weight", "stem.0.weight")

_TORCHVISION_PREFIX_MAP = {"": "backbone.", "head.": "head.1.", "fc.": "head.1."}
_MGR_PREFIX_MAP = {"backbone.": "backbone.", "head.": "head."}

_MM_BLOCK = re.compile(r"backbone\.layers\.(\d+)\.blocks\.(\d+)\.(.+)")
_MM_DOWNSAMPLE = re.compile(r"backbone\.layers\.(\d+)\.downsample\.(.+)")
_MM_MLP = {"mlp.fc1.": "mlp.0.", "mlp.fc2.": "mlp.3."}


def mmaction_swin_key(key: str) -> str | None:
    """Rename one mmaction2 Video Swin checkpoint key to torchvision's swin3d name.

    Args:
        key: an mmaction2 recognizer key, e.g. ``backbone.layers.1.blocks.0.mlp.fc1.weight``
            (a leading ``module.`` is ignored).

    Returns:
        The torchvision key (``features.2.0.mlp.0.weight``), or ``None`` for a key
        outside the map (e.g. ``data_preprocessor.*``).
    """
    key = key.removeprefix("module.")
    if key.startswith("backbone.patch_embed."):
        return key.removeprefix("backbone.")
    if m := _MM_BLOCK.fullmatch(key):
        i, j, rest = int(m[1]), m[2], m[3]
        for src, dst in _MM_MLP.items():
            if rest.startswith(src):
                rest = dst + rest.removeprefix(src)
        return f"features.{2 * i}.{j}.{rest}"
    if m := _MM_DOWNSAMPLE.fullmatch(key):
        return f"features.{2 * int(m[1]) + 1}.{m[2]}"
    # mmaction2 names the final norm norm3; the original Video-Swin repo names it norm.
    for src in ("backbone.norm3.", "backbone.norm."):
        if key.startswith(src):
            return "norm." + key.removeprefix(src)
    if key.startswith("cls_head.fc_cls."):
        return "head." + key.removeprefix("cls_head.fc_cls.")
    return None


def load_torchvision_video_checkpoint(
    module: nn.Module,
    path_or_state: str | Path | Mapping[str, Any],
    *,
    reset_head: bool | None = None,
    strict: bool = True,
    trust: bool = False,
) -> LoadReport:
    """Load a torchvision swin3d / R(2+1)D state dict into a video recognizer.

    Files are read by :func:`~mgr.models.checkpoints.read_checkpoint` (torchvision
    files are plain state dicts).

    Args:
        module: a :class:`~mgr.models.video.VideoSwin` or
            :class:`~mgr.models.video.R2Plus1D` (any module with a torchvision-named
            ``backbone`` and ``head = Sequential(dropout, Linear)``).
        path_or_state: a ``.pth`` file or a loaded state dict (``{"state_dict": ...}``
            wrappers are unwrapped).
        reset_head: ``True``: skip the checkpoint classifier (``head.*`` / ``fc.*``)
            and keep the module's head, e.g. Kinetics-400 weights for 32
            micro-gesture classes; ``False``: load it; ``None`` (auto): load it when
            its class count is the module's, else skip it (see
            :func:`~mgr.models.checkpoints.load_mmaction_checkpoint`).
        strict: raise on missing or unexpected keys (else only report them).
        trust: unpickle the file fully (trusted files only; see
            :func:`~mgr.models.checkpoints.read_checkpoint`).

    Returns:
        A :class:`~mgr.models.checkpoints.LoadReport`.

    Raises:
        ValueError: the head's class count differs (unless ``reset_head``), a
            tensor's shape differs, or (``strict``) keys are missing/unexpected.
    """
    state = _read_state_dict(path_or_state, trust=trust)
    state = {k.removeprefix("module."): v for k, v in state.items()}
    return _load(module, state, "", _TORCHVISION_PREFIX_MAP, ("head", "fc"), reset_head, strict)


def load_mmaction_swin_checkpoint(
    module: nn.Module,
    path_or_state: str | Path | Mapping[str, Any],
    *,
    reset_head: bool | None = None,
    strict: bool = True,
    trust: bool = False,
) -> LoadReport:
    """Load an mmaction2 (or original Video-Swin repo) Video Swin checkpoint into ``VideoSwin``.

    Keys are renamed by :func:`mmaction_swin_key` (keys outside the map keep
    their name and are reported unexpected, ``data_preprocessor.*`` is dropped),
    then loaded as a torchvision state dict. The file is read by
    :func:`~mgr.models.checkpoints.read_checkpoint`: weights-only, with
    mmengine's pickled training metadata read as inert stand-ins.

    Args:
        module: a :class:`~mgr.models.video.VideoSwin`.
        path_or_state: a checkpoint file or a loaded checkpoint / state dict.
        reset_head: skip ``cls_head.fc_cls.*`` and keep the module's head
            (``None``: auto, by class count).
        strict: raise on missing or unexpected keys.
        trust: unpickle the file fully (trusted files only).

    Returns:
        A :class:`~mgr.models.checkpoints.LoadReport` (torchvision key names).
    """
    state = _read_state_dict(path_or_state, trust=trust)
    renamed: dict[str, Tensor] = {}
    for key, value in state.items():
        new = mmaction_swin_key(key)
        renamed[key.removeprefix("module.") if new is None else new] = value
    return _load(module, renamed, "", _TORCHVISION_PREFIX_MAP, ("head", "fc"), reset_head, strict)


def load_mgr_video_checkpoint(
    module: nn.Module,
    path_or_state: str | Path | Mapping[str, Any],
    *,
    reset_head: bool | None = None,
    strict: bool = True,
    trust: bool = False,
) -> LoadReport:
    """Load the network of an mgr checkpoint (same recognizer class) into ``module``.

    Only ``backbone.*`` and ``head.*`` are taken; the rest (``class_counts``, ...)
    belongs to the old training run. Read by
    :func:`~mgr.models.checkpoints.read_checkpoint` (weights-only).

    Args:
        module: a :class:`~mgr.models.video.VideoSwin` or :class:`~mgr.models.video.R2Plus1D`.
        path_or_state: a Lightning ``.ckpt``, or a loaded checkpoint / state dict.
        reset_head: skip ``head.*`` and keep the module's head (e.g. MA-52 -> iMiGUE;
            ``None``: auto, by class count).
        strict: raise on missing or unexpected keys.
        trust: unpickle the file fully (trusted files only).

    Returns:
        A :class:`~mgr.models.checkpoints.LoadReport`.
    """
    state = _read_state_dict(path_or_state, trust=trust)
    state = {
        k: v
        for k, v in ((k.removeprefix("module."), v) for k, v in state.items())
        if k.startswith(("backbone.", "head."))
    }
    return _load(module, state, "backbone.", _MGR_PREFIX_MAP, ("head",), reset_head, strict)


def _load(
    module: nn.Module,
    state: dict[str, Tensor],
    backbone_prefix: str,
    prefix_map: Mapping[str, str],
    head_keys: tuple[str, ...],
    reset_head: bool | None,
    strict: bool,
) -> LoadReport:
    """Adapt the first layer, fill index buffers, then load with the mmaction2 loader.

    ``backbone_prefix`` is what the checkpoint puts before a backbone key
    (``""`` for torchvision names, ``"backbone."`` for mgr).
    """
    ours = module.state_dict()
    state = dict(state)
    for name in _FIRST_LAYER_KEYS:
        src, dst = backbone_prefix + name, "backbone." + name
        if src in state and dst in ours:
            theirs, want = state[src].shape, ours[dst].shape
            if theirs[1] == 3 and want[1] != 3 and theirs[2:] == want[2:]:
                state[src] = adapt_input_channels(state[src], want[1])
                log.info("adapted %s from 3 to %d input channels", src, want[1])
    for dst in ours:
        if dst.startswith("backbone.") and dst.endswith("relative_position_index"):
            src = backbone_prefix + dst.removeprefix("backbone.")
            state.setdefault(src, ours[dst])
    return load_mmaction_checkpoint(
        module,
        state,
        prefix_map=prefix_map,
        reset_head=reset_head,
        head_keys=head_keys,
        strict=strict,
    )


def _read_state_dict(
    path_or_state: str | Path | Mapping[str, Any], *, trust: bool
) -> dict[str, Tensor]:
    """The tensors of a checkpoint file or object (``["state_dict"]`` when wrapped)."""
    if isinstance(path_or_state, str | Path):
        return checkpoint_state_dict(read_checkpoint(path_or_state, trust=trust), path_or_state)
    return checkpoint_state_dict(path_or_state, "the given checkpoint")
