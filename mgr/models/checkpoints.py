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

Every checkpoint file mgr opens goes through :func:`read_checkpoint` (weights
of ``pretrained`` / ``init_from``, ``mgr extract-features``, ``mgr detect``) or
:func:`check_lightning_checkpoint` (files Lightning itself reads: ``--ckpt_path``,
``load_from_checkpoint``). A file that is not a checkpoint (empty, text, another
zip, random bytes, a TorchScript or safetensors file) is a one-line
:class:`~mgr.errors.UserError` naming it. Files are unpickled with PyTorch's
weights-only unpickler: mmengine / mmcv training metadata that it refuses
(numpy scalars, ``HistoryBuffer``) is read as inert :class:`Opaque` stand-ins
without running any of its code, so mmaction2 and pyskl checkpoints load
without trusting them. Anything else a file pickles (a whole ``nn.Module``,
arbitrary objects) is refused unless the user trusts the file
(``trust_checkpoint=True``; ``--weights_only false`` for Lightning's loads).
"""

from __future__ import annotations

import logging
import pickle
import re
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from mgr.errors import UserError

__all__ = [
    "DEFAULT_PREFIX_MAP",
    "LoadReport",
    "Opaque",
    "check_checkpoint_model",
    "check_lightning_checkpoint",
    "checkpoint_class_mismatch",
    "checkpoint_state_dict",
    "load_mmaction_checkpoint",
    "read_checkpoint",
]

log = logging.getLogger(__name__)

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
        skipped_head: checkpoint head keys left out (the classifier was reset).
        dropped: checkpoint keys ignored as non-weights (``data_preprocessor.*``).
        head: what happened to the classifier and why, in words (e.g. ``"reset:
            the checkpoint's classifier has 400 classes, this model 32"``).
    """

    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    skipped_head: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    head: str = ""

    def __str__(self) -> str:
        lines = [f"loaded {len(self.loaded)} tensors"]
        if self.head:
            lines.append(f"classifier {self.head}")
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
    reset_head: bool | None = None,
    head_keys: Sequence[str] = ("fc_cls",),
    strict: bool = True,
    trust: bool = False,
) -> LoadReport:
    """Load an mmaction2 or pyskl recognizer checkpoint into ``module``.

    The file is read by :func:`read_checkpoint` (weights-only; mmengine/mmcv
    metadata is read inert). The weights are taken from ``["state_dict"]`` when present (the
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
        reset_head: what to do with the classifier keys (those with a
            ``head_keys`` component). ``None`` (auto): keep the checkpoint's
            classifier when its class count is the module's, else leave the
            module's head at its initialisation (e.g. a 60-class NTU model
            fine-tuned on 32 micro-gesture classes); :attr:`LoadReport.head`
            says which and why. ``True``: always reset; ``False``: always keep
            (a class-count mismatch is then an error).
        head_keys: dotted name components that mark a checkpoint key as part of
            the classifier (mmaction2/pyskl ``I3DHead``: ``fc_cls``).
        strict: raise if any mapped module key is missing or any checkpoint key
            is unexpected. With ``strict=False`` they are only reported.
        trust: the file is trusted: unpickle it fully (see :func:`read_checkpoint`).

    Returns:
        A :class:`LoadReport`.

    Raises:
        UserError: the file is not a checkpoint (see :func:`read_checkpoint`).
        ValueError: a head's class count differs from the module's (with
            ``reset_head=False``), another tensor's shape differs, or (``strict``)
            keys are missing or unexpected.
    """
    state = _read_state_dict(path_or_state, trust=trust)
    mapping = dict(DEFAULT_PREFIX_MAP if prefix_map is None else prefix_map)
    # Longest source prefix first, so specific entries beat general ones.
    sources = sorted(mapping, key=len, reverse=True)
    target = module.state_dict()
    report = LoadReport()
    if reset_head is None:
        reason = _head_mismatch(state, mapping, sources, target, head_keys)
        reset_head = reason is not None
        report.head = f"reset: {reason}" if reset_head else "kept: the checkpoint's classes fit"
    else:
        report.head = "reset (reset_head=True)" if reset_head else "kept (reset_head=False)"
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


def _read_state_dict(
    path_or_state: str | Path | Mapping[str, Any], *, trust: bool = False
) -> Mapping[str, Tensor]:
    """The state dict inside a checkpoint file or object."""
    if isinstance(path_or_state, str | Path):
        return checkpoint_state_dict(read_checkpoint(path_or_state, trust=trust), path_or_state)
    return checkpoint_state_dict(path_or_state, "the given checkpoint")


def _head_mismatch(
    state: Mapping[str, Tensor],
    mapping: Mapping[str, str],
    sources: Sequence[str],
    target: Mapping[str, Tensor],
    head_keys: Sequence[str],
) -> str | None:
    """Why the checkpoint's classifier cannot be kept, or ``None`` when its classes fit."""
    found = False
    for key, value in state.items():
        key = key.removeprefix("module.")
        if not _is_head(key, head_keys) or key.startswith(_DROPPED_PREFIXES):
            continue
        src = next((p for p in sources if key.startswith(p)), None)
        new_key = None if src is None else mapping[src] + key[len(src) :]
        if new_key is None or new_key not in target:
            continue
        found = True
        ours = target[new_key]
        if value.ndim >= 1 and ours.ndim >= 1 and value.shape[0] != ours.shape[0]:
            theirs, mine = value.shape[0], ours.shape[0]
            return f"the checkpoint's classifier has {theirs} classes, this model {mine}"
    return None if found else "the checkpoint has no classifier"


def _is_head(key: str, head_keys: Sequence[str]) -> bool:
    """Whether ``key`` has one of ``head_keys`` as a dotted component (or component run)."""
    dotted = f".{key.strip('.')}."
    return any(f".{h.strip('.')}." in dotted for h in head_keys)


# ---------------------------------------------------------------- reading checkpoint files

#: Top-level modules whose pickled objects are training metadata next to the weights
#: (mmengine's ``message_hub`` and ``meta``: numpy scalars and arrays, ``HistoryBuffer``,
#: configs). They are read as :class:`Opaque` stand-ins; their code never runs.
_METADATA_MODULES = frozenset({"numpy", "mmengine", "mmcv", "mmaction", "mmdet", "mmpose", "pyskl"})
#: ``HistoryBuffer`` pickles its statistics methods as ``getattr(HistoryBuffer, name)``.
_METADATA_GLOBALS = frozenset({"builtins.getattr", "__builtin__.getattr"})
_UNSUPPORTED = re.compile(r"Unsupported global: GLOBAL (\S+)")


class Opaque:
    """An object of a checkpoint's training metadata, read without running its code.

    mmengine and mmcv checkpoints pickle their training log next to the weights
    (numpy scalars, ``HistoryBuffer``), which PyTorch's weights-only unpickler
    refuses. :func:`read_checkpoint` lets it build one subclass of this class per
    such global instead: the constructor arguments and state are kept as plain
    data (:attr:`args`, :attr:`state`) and nothing of numpy / mmengine is called.
    """

    #: dotted name of the global this stand-in replaces.
    qualname: ClassVar[str] = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> Opaque:
        """Keep the constructor arguments as data."""
        obj = super().__new__(cls)
        obj.args, obj.state = args, None
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __repr__(self) -> str:
        return f"<{self.qualname} (not unpickled)>"


def _is_metadata(name: str) -> bool:
    return name in _METADATA_GLOBALS or name.split(".")[0] in _METADATA_MODULES


def _stand_ins(names: Sequence[str]) -> list[tuple[type, str]]:
    """``safe_globals`` entries mapping each name to its own :class:`Opaque` subclass."""
    return [(type(n.rsplit(".", 1)[-1], (Opaque,), {"qualname": n}), n) for n in names]


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    line = text[0] if text else type(err).__name__
    return line if len(line) <= 160 else line[:157] + "..."


def _unpickler_reason(err: BaseException) -> str:
    """The one line of PyTorch's weights-only error that says what it refused."""
    lines = [line.strip() for line in str(err).splitlines()]
    for i, line in enumerate(lines):
        if line.startswith("WeightsUnpickler error:"):
            rest = line.removeprefix("WeightsUnpickler error:").strip()
            reason = rest or next((x for x in lines[i + 1 :] if x), "")
            return reason if len(reason) <= 160 else reason[:157] + "..."
    return _first_line(err)


def _sniff(path: Path) -> str:
    """``"zip"`` or ``"pickle"`` (torch.save's two formats); anything else is a UserError."""
    if not path.exists():
        raise UserError(f"checkpoint {path} does not exist")
    if not path.is_file():
        raise UserError(f"checkpoint {path} is a directory, not a checkpoint file")
    with path.open("rb") as f:
        head = f.read(512)
    if not head:
        raise UserError(f"{path} is empty (0 bytes), not a checkpoint")
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError) as err:
            raise UserError(f"{path} is a damaged zip archive ({_first_line(err)})") from err
        if not any(n.endswith("/data.pkl") or n == "data.pkl" for n in names):
            shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
            raise UserError(
                f"{path} is a zip archive of {len(names)} file(s) ({shown}) but not a PyTorch "
                "checkpoint (torch.save writes <name>/data.pkl)"
            )
        if any(n.endswith("/constants.pkl") for n in names):
            raise UserError(
                f"{path} is a TorchScript model (torch.jit.save), not a checkpoint of weights"
            )
        return "zip"
    if head.startswith(b"PK\x03\x04"):
        raise UserError(
            f"{path} is a truncated or damaged zip archive (torch.save's format): "
            "not a readable checkpoint; copy or download it again"
        )
    if head[:1] == b"\x80":  # a pickle (protocol >= 2): torch.save's legacy format
        return "pickle"
    if len(head) > 10 and head[8:10] == b'{"':
        raise UserError(
            f"{path} is a safetensors file, not a torch.save checkpoint; convert it with "
            "torch.save(safetensors.torch.load_file(path), 'weights.pth')"
        )
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and all(c.isprintable() or c in "\r\n\t" for c in text):
        first = text.strip().splitlines()[0][:60] if text.strip() else ""
        raise UserError(f"{path} is a text file (first line {first!r}), not a PyTorch checkpoint")
    raise UserError(
        f"{path} is not a PyTorch checkpoint: neither torch.save's zip format nor a pickle "
        f"(it starts with bytes {head[:8].hex(' ')})"
    )


def _load(path: Path, *, trust: bool, mmap: bool, switch: str) -> tuple[Any, list[str]]:
    """Unpickle a checkpoint file; returns it and the metadata globals read as :class:`Opaque`."""
    kind = _sniff(path)
    if trust:
        log.warning("%s: unpickling a trusted file fully (trust_checkpoint)", path)
        try:
            return torch.load(path, map_location="cpu", weights_only=False), []
        except Exception as err:  # any failure of a file that is no checkpoint
            raise UserError(f"{path}: not a readable checkpoint ({_first_line(err)})") from err
    names: list[str] = []
    if kind == "zip":
        try:
            names = sorted(torch.serialization.get_unsafe_globals_in_checkpoint(path))
        except Exception as err:  # a damaged pickle inside a valid zip
            raise UserError(f"{path}: not a readable checkpoint ({_first_line(err)})") from err
    for _ in range(64):  # the legacy format is scanned by loading: one global per try
        _refuse_unless_metadata(path, names, switch)
        try:
            with torch.serialization.safe_globals(_stand_ins(names)):
                ckpt = torch.load(
                    path, map_location="cpu", weights_only=True, mmap=mmap and kind == "zip"
                )
            return ckpt, names
        except pickle.UnpicklingError as err:
            found = _UNSUPPORTED.search(str(err))
            if found is None or found[1] in names:
                raise UserError(
                    f"{path}: not a readable PyTorch checkpoint (the weights-only unpickler "
                    f"refuses it: {_unpickler_reason(err)})"
                ) from err
            names.append(found[1])
        except Exception as err:  # EOFError, RuntimeError, KeyError ...: truncated or garbage
            raise UserError(
                f"{path}: not a readable PyTorch checkpoint (truncated or damaged: "
                f"{_first_line(err)})"
            ) from err
    raise UserError(f"{path}: pickles too many kinds of objects to be a checkpoint")


def _refuse_unless_metadata(path: Path, names: Sequence[str], switch: str) -> None:
    refused = [n for n in names if not _is_metadata(n)]
    if not refused:
        return
    shown = ", ".join(refused[:4]) + (", ..." if len(refused) > 4 else "")
    what = (
        "a whole pickled model, not a state dict"
        if any(n.startswith("torch.nn.modules.") for n in refused)
        else "Python objects beyond tensors and training metadata"
    )
    raise UserError(
        f"{path} pickles {shown}: {what}, so it is not loaded as a Lightning / mmaction2 / "
        f"torchvision checkpoint; if you trust the file, {switch} (unpickling runs code "
        "from the file)"
    )


def read_checkpoint(path: str | Path, *, trust: bool = False) -> Any:
    """Read a checkpoint file safely, or fail with one line naming the file.

    Args:
        path: a ``torch.save`` file: a Lightning ``.ckpt``, an mmaction2 / pyskl
            ``.pth`` or a torchvision state dict.
        trust: unpickle the file fully (``weights_only=False``): only for files you
            trust, e.g. a whole pickled ``nn.Module``. Unpickling runs code from the file.

    Returns:
        The unpickled object (tensors on the CPU). Training metadata of
        mmengine / mmcv checkpoints comes back as :class:`Opaque` stand-ins.

    Raises:
        UserError: naming the file, when it is missing, empty, a text file, a zip
            archive of something else, a TorchScript or safetensors file, damaged,
            or pickles objects other than tensors and training metadata (unless
            ``trust``).
    """
    return _load(Path(path), trust=trust, mmap=False, switch="set trust_checkpoint=True")[0]


def check_lightning_checkpoint(
    path: str | Path, *, trust: bool = False, switch: str = "pass --weights_only false"
) -> dict[str, Any]:
    """Check a file that Lightning will read itself (``--ckpt_path``, ``load_from_checkpoint``).

    Lightning unpickles with PyTorch's weights-only unpickler and lets its long
    error through; this check fails first with one line. The tensors are
    memory-mapped, so the check reads little of a large file.

    Args:
        path: the ``.ckpt`` file.
        trust: the file is trusted (Lightning's ``weights_only=False``): only its
            format is checked.
        switch: how the user trusts a file, for the error message.

    Returns:
        The checkpoint (memory-mapped tensors).

    Raises:
        UserError: naming the file, when it is not a checkpoint (see
            :func:`read_checkpoint`), not a Lightning one (no ``state_dict``), or
            needs a full unpickling that was not allowed.
    """
    path = Path(path)
    ckpt, names = _load(path, trust=trust, mmap=True, switch=switch)
    lightning = isinstance(ckpt, Mapping) and "state_dict" in ckpt
    if lightning and "meta" in ckpt and "pytorch-lightning_version" not in ckpt:
        lightning = False  # mmengine / mmcv: {"meta", "state_dict", "message_hub", ...}
    if not lightning:
        keys = list(ckpt)[:5] if isinstance(ckpt, Mapping) else type(ckpt).__name__
        raise UserError(
            f"{path} is not a Lightning checkpoint (it holds {keys}); pretrained mmaction2 / "
            "torchvision weights are loaded by the models' pretrained option"
        )
    if names:
        shown = ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")
        raise UserError(
            f"{path} pickles {shown}, which Lightning's weights-only load refuses; "
            f"if you trust the file, {switch}"
        )
    return ckpt


def checkpoint_model_class(checkpoint: Mapping[str, Any]) -> str | None:
    """The dotted class a Lightning checkpoint records, or ``None``.

    ``mgr fit`` records ``_class_path`` in the settings; :meth:`Recognizer.on_save_checkpoint`
    records ``mgr_class`` for checkpoints saved outside it.
    """
    hparams = checkpoint.get("hyper_parameters") or {}
    recorded = hparams.get("_class_path") if isinstance(hparams, Mapping) else None
    return recorded or checkpoint.get("mgr_class")


def check_checkpoint_model(checkpoint: Mapping[str, Any], model: nn.Module) -> None:
    """Refuse a checkpoint of another model class, before its weights fail to fit.

    A checkpoint that records no class, or one whose class cannot be imported,
    passes (the weights are compared next). Subclasses and parents both fit:
    a new head on a recognizer may start from the recognizer's checkpoint.

    Args:
        checkpoint: a Lightning checkpoint dict.
        model: the module about to load it.

    Raises:
        UserError: naming both classes.
    """
    problem = checkpoint_class_mismatch(checkpoint, type(model))
    if problem is not None:
        raise UserError(problem)


def checkpoint_class_mismatch(checkpoint: Mapping[str, Any], model_class: type) -> str | None:
    """Why a checkpoint does not fit ``model_class`` (see :func:`check_checkpoint_model`).

    Returns:
        The one-line reason, or ``None`` if the classes fit (or cannot be told).
    """
    import importlib

    recorded = checkpoint_model_class(checkpoint)
    if not isinstance(recorded, str) or "." not in recorded:
        return None
    module, _, name = recorded.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None
    if isinstance(cls, type) and (issubclass(model_class, cls) or issubclass(cls, model_class)):
        return None
    ours = f"{model_class.__module__}.{model_class.__qualname__}"
    return (
        f"checkpoint of {recorded}, but the model is {ours}: use a checkpoint of "
        f"{model_class.__qualname__}, or the config {name} was trained with"
    )


def checkpoint_state_dict(ckpt: Any, path: str | Path) -> dict[str, Tensor]:
    """The weights of a loaded checkpoint.

    They are ``ckpt["state_dict"]``, else the mapping itself, or a trusted whole
    module's ``state_dict()``.

    Raises:
        UserError: naming ``path``, if there is no state dict of tensors.
    """
    if isinstance(ckpt, nn.Module):  # a whole pickled model (trusted file)
        return ckpt.state_dict()
    if not isinstance(ckpt, Mapping):
        raise UserError(f"{path} holds a {type(ckpt).__name__}, not a checkpoint dict")
    state = ckpt.get("state_dict", ckpt)
    if not isinstance(state, Mapping):
        raise UserError(f"{path}: 'state_dict' is a {type(state).__name__}, not a dict")
    bad = [k for k, v in state.items() if not torch.is_tensor(v)]
    if bad:
        raise UserError(f"{path} is not a checkpoint of weights: entries {bad[:5]} are not tensors")
    return dict(state)
