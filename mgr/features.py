"""Recognizer features over sliding windows of long sequences (input of the online detector).

``mgr extract-features`` runs a trained :class:`~mgr.models.base.Recognizer`'s
``forward_features`` over windows of ``window`` frames every ``stride`` frames of
each untrimmed sequence and stores one feature sequence per video::

    DIR/<video>.npz    features (N, D) float32, centers (N,) int64, num_frames () int64,
                       meta_key (): digest of the meta the file was computed with
    DIR/meta.json      ckpt, ckpt_sha256, recognizer_class, window, stride, dim,
                       source (release reader), transform (window -> batch)

Windows start at ``0, stride, 2*stride, ...`` while they fit (one window, shorter,
when the video is shorter than ``window``); ``centers[i] = start_i + window // 2``.

The window's batch is built with the transforms the recognizer was trained with:
the evaluation :class:`~mgr.data.datasets.SkeletonTransformConfig` of the
recognizer's training datamodule (keypoint subset, centre/scale normalisation
over the window as if it were a clip, uniform sampling to ``clip_len`` frames),
with one view (``test_clips``/``test_flip`` are ignored: one feature per window).
That datamodule comes from the training config (``--data``, by default the
``config.yaml`` that ``mgr fit`` saved next to the checkpoint's folder).
A video recognizer plugs in by another :class:`WindowTransform` (a callable
``(sequence, starts, window) -> batch`` with a JSON ``describe()``). The sequence
sources and window transforms are in :mod:`mgr.data.windows`.

Caching: a video whose npz exists and was written with the same meta is skipped,
so an interrupted run resumes; a changed checkpoint, window, stride or transform
recomputes every video. Files are written atomically (:mod:`mgr.fileio`), and
each npz carries the digest of the ``meta.json`` it was computed with, which
:func:`read_features` checks: after an interrupted re-extraction with other
settings, the files not yet recomputed are refused, not read as current.

The files are read by :mod:`mgr.data.readers.features` and feature steps map to
frames by :mod:`mgr.data.transforms.steps`: both are below the datamodules and the
detector that need them (this module builds on those); their names stay importable here.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import warnings
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

# The feature-file format, the step <-> frame mapping and the window transforms live
# in the data layer (the online datamodules, the detector, mgr detect/recognize use
# them); their names stay importable here.
from mgr.data.readers.features import (
    META_FILE,
    meta_key,
    read_feature_meta,
    read_features,
    stored_meta_key,
)
from mgr.data.transforms.steps import (
    frames_to_steps,
    step_boundaries,
    steps_to_frames,
    window_starts,
)
from mgr.data.windows import (
    ClipWindows,
    HeatmapWindows,
    SequenceSource,
    SkeletonWindows,
    WindowTransform,
    window_transform_of,
)
from mgr.errors import UserError
from mgr.fileio import atomic_write, write_json

if TYPE_CHECKING:
    from mgr.data.readers.common import SequenceRecord
    from mgr.models.base import Recognizer

__all__ = [
    "ClipWindows",
    "HeatmapWindows",
    "SequenceSource",
    "SkeletonWindows",
    "WindowTransform",
    "extract_features",
    "extract_features_main",
    "extract_sequence_features",
    "frames_to_steps",
    "load_recognizer",
    "read_feature_meta",
    "read_features",
    "step_boundaries",
    "steps_to_frames",
    "window_starts",
    "window_transform_of",
]

log = logging.getLogger(__name__)

_META_VERSION = 1


# ---------------------------------------------------------------------- recognizers
def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _import(path: str) -> Any:
    module, _, name = path.rpartition(".")
    if not module:
        raise ValueError(f"{path!r} is not a dotted class path (e.g. 'mgr.models.STCNN')")
    import importlib

    return getattr(importlib.import_module(module), name)


def load_recognizer(
    path: str | Path,
    recognizer_class: str | type | None = None,
    map_location: str = "cpu",
    trust: bool = False,
) -> Recognizer:
    """Load a trained Recognizer from a Lightning checkpoint, in eval mode.

    The class is the one the checkpoint records (``_class_path`` of ``mgr fit``,
    or ``mgr_class`` written by :meth:`Recognizer.on_save_checkpoint`), else
    ``recognizer_class``.

    Args:
        path: the ``.ckpt`` file.
        recognizer_class: class or dotted path, for checkpoints that do not
            record theirs.
        map_location: device of the loaded weights.
        trust: the file is trusted: unpickle it fully (``weights_only=False``;
            :func:`~mgr.models.checkpoints.check_lightning_checkpoint`).

    Raises:
        UserError: naming the file, if it is missing or not a Lightning checkpoint.
        ValueError: naming the file, if its class cannot be told.
        TypeError: naming the file and class, for a checkpoint of a model that is
            not a Recognizer (e.g. an OnlineDetector).
    """
    import mgr.models  # noqa: F401  (registers the classes _class_path may name)
    from mgr.models.base import Recognizer
    from mgr.models.checkpoints import check_lightning_checkpoint

    path = Path(path)
    ckpt = check_lightning_checkpoint(path, trust=trust, switch="pass --trust-checkpoint")
    hparams = ckpt.get("hyper_parameters") or {}
    cls: Any = hparams.get("_class_path") or ckpt.get("mgr_class") or recognizer_class
    if cls is None:
        raise ValueError(
            f"{path}: the checkpoint does not record its model class (saved outside "
            "`mgr fit` by an older mgr?); pass recognizer_class (--recognizer-class "
            "mgr.models.STCNN)"
        )
    if isinstance(cls, str):
        cls = _import(cls)
    if not (isinstance(cls, type) and issubclass(cls, Recognizer)):
        name = getattr(cls, "__qualname__", str(cls))
        raise TypeError(
            f"{path}: a checkpoint of {name}, which is not a Recognizer "
            "(mgr.models.base.Recognizer with forward_features); extract-features needs a "
            "trained recognizer such as mgr.models.STCNN"
        )
    try:
        model = cls.load_from_checkpoint(path, map_location=map_location, weights_only=not trust)
    except UserError as err:  # another model or other classes
        raise UserError(f"{path}: {err}") from err
    except Exception as err:
        raise ValueError(f"{path}: could not load as {cls.__qualname__}: {err}") from err
    return model.eval()


def datamodule_from_config(path: str | Path, root: str | Path | None = None) -> Any:
    """The (clip) datamodule of a training config.

    Args:
        path: a LightningCLI YAML (its ``data:`` section is used) or a YAML with
            just ``class_path`` / ``init_args``.
        root: replaces ``init_args.root``.

    Raises:
        FileNotFoundError: if the file is missing.
        ValueError: naming the file, if it has no datamodule section.
    """
    import yaml
    from jsonargparse import ArgumentParser
    from lightning.pytorch import LightningDataModule

    import mgr.datamodules  # noqa: F401

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"datamodule config {path} does not exist")
    config = yaml.safe_load(path.read_text()) or {}
    section = config.get("data", config) if isinstance(config, dict) else None
    if not isinstance(section, dict) or "class_path" not in section:
        raise ValueError(f"{path}: no datamodule (a `data:` section with class_path/init_args)")
    section = {
        "class_path": section["class_path"],
        "init_args": dict(section.get("init_args") or {}),
    }
    if root is not None:
        section["init_args"]["root"] = str(root)
    parser = ArgumentParser(exit_on_error=False)
    parser.add_subclass_arguments(LightningDataModule, "data", fail_untyped=False)
    cfg = parser.parse_object({"data": section})
    return parser.instantiate(cfg).data


# ---------------------------------------------------------------------- extraction
@torch.inference_mode()
def extract_sequence_features(
    model: Recognizer,
    seq: SequenceRecord,
    transform: WindowTransform,
    window: int,
    stride: int,
    batch_size: int = 64,
) -> tuple[np.ndarray, np.ndarray]:
    """``forward_features`` of every window of one sequence.

    Args:
        model: the recognizer (eval mode).
        seq: the raw sequence (``keypoint (T, V, C)``).
        transform: windows -> batch.
        window: frames per window.
        stride: frames between window starts.
        batch_size: windows per forward pass.

    Returns:
        ``features (N, D)`` float32 and ``centers (N,)`` int64 (frame of each window centre).
    """
    starts = window_starts(seq.num_frames, window, stride)
    device = next(model.parameters()).device
    out = []
    for i in range(0, len(starts), batch_size):
        batch = transform(seq, starts[i : i + batch_size], window)
        batch = {k: v.to(device) for k, v in batch.items()}
        out.append(model.forward_features(batch).float().cpu())
    features = torch.cat(out).numpy().astype(np.float32)
    return features, starts + window // 2


def extract_features(
    ckpt: str | Path,
    out: str | Path,
    *,
    source: SequenceSource,
    transform: WindowTransform,
    window: int = 16,
    stride: int = 4,
    videos: Sequence[str] | None = None,
    batch_size: int = 64,
    device: str = "cpu",
    recognizer_class: str | type | None = None,
    progress: bool = True,
    trust: bool = False,
) -> dict[str, str]:
    """Write ``out/<video>.npz`` for every sequence of ``source`` (cached, resumable).

    Args:
        ckpt: the Recognizer checkpoint.
        out: the features folder (created).
        source: the long sequences.
        transform: windows -> the recognizer's batch (e.g. :class:`SkeletonWindows`).
        window: frames per window.
        stride: frames between window starts.
        videos: only these video ids (default: all under ``source.root``).
        batch_size: windows per forward pass.
        device: torch device of the recognizer.
        recognizer_class: for checkpoints that do not record their class.
        progress: show a tqdm progress bar.
        trust: the checkpoint is trusted (see :func:`load_recognizer`).

    Returns:
        Video id -> ``"computed"`` or ``"cached"``.

    Raises:
        FileNotFoundError: for a missing checkpoint or requested video.
        TypeError: if the checkpoint is not a Recognizer's, or the recognizer
            reads batch keys the transform does not build.
    """
    from tqdm.auto import tqdm

    ckpt = Path(ckpt).resolve()
    model = load_recognizer(ckpt, recognizer_class, trust=trust).to(device)
    missing_keys = [k for k in model.input_keys if k not in transform.keys]
    if missing_keys:
        raise TypeError(
            f"{ckpt}: {type(model).__name__} reads {list(model.input_keys)}, but the window "
            f"transform builds {list(transform.keys)} (video recognizers need a video "
            "WindowTransform)"
        )
    found = source.find()
    if videos is not None:
        unknown = [v for v in videos if v not in found]
        if unknown:
            raise FileNotFoundError(f"videos {unknown} not found under {source.root}")
        found = {v: found[v] for v in videos}
    meta = {
        "version": _META_VERSION,
        "ckpt": str(ckpt),
        "ckpt_sha256": _file_sha256(ckpt),
        "recognizer_class": f"{type(model).__module__}.{type(model).__qualname__}",
        "window": int(window),
        "stride": int(stride),
        "dim": int(getattr(model, "feature_dim", 0)) or None,
        "source": asdict(source),
        "transform": transform.describe(),
    }
    meta = json.loads(json.dumps(meta))  # the form it has once read back
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    old = None
    if (out / META_FILE).is_file():
        old = json.loads((out / META_FILE).read_text())
    if old is not None and old != meta:
        changed = sorted(k for k in meta if old.get(k) != meta[k])
        log.warning("%s: meta changed (%s): recomputing every video", out, ", ".join(changed))
    key = meta_key(meta)
    write_json(out / META_FILE, meta, indent=1)
    status: dict[str, str] = {}
    bar = tqdm(found.items(), desc="extract-features", unit="video", disable=not progress)
    for vid, folder in bar:
        path = out / f"{vid}.npz"
        if path.is_file() and stored_meta_key(path) == key:
            status[vid] = "cached"
            continue
        seq = source.load(folder)
        features, centers = extract_sequence_features(
            model, seq, transform, window, stride, batch_size=batch_size
        )
        if meta["dim"] is None:  # a recognizer without feature_dim: learn it from the output
            meta["dim"] = int(features.shape[1])
            key = meta_key(meta)
            write_json(out / META_FILE, meta, indent=1)
        elif features.shape[1] != meta["dim"]:
            raise ValueError(
                f"{ckpt}: forward_features gave {features.shape[1]} features per window on "
                f"{vid} but feature_dim is {meta['dim']}"
            )
        with atomic_write(path) as f:
            np.savez(
                f,
                features=features,
                centers=centers,
                num_frames=np.int64(seq.num_frames),
                meta_key=np.str_(key),
            )
        status[vid] = "computed"
    return status


# ---------------------------------------------------------------------- command line
def _default_config(ckpt: Path) -> Path | None:
    """The ``config.yaml`` LightningCLI saved next to the checkpoint's run folder, if any."""
    for folder in (ckpt.parent, ckpt.parent.parent):
        if (folder / "config.yaml").is_file():
            return folder / "config.yaml"
    return None


def extract_features_main(argv: Sequence[str]) -> int:
    """Entry point of ``mgr extract-features``."""
    p = argparse.ArgumentParser(
        prog="mgr extract-features",
        description="Run a trained recognizer's forward_features over sliding windows of every "
        "untrimmed sequence of a release; write DIR/<video>.npz (features (N, D), centers (N,)) "
        "and DIR/meta.json. Cached and resumable.",
    )
    p.add_argument("--ckpt", required=True, help="Recognizer checkpoint (mgr fit)")
    p.add_argument(
        "--data",
        default=None,
        help="the recognizer's training config (LightningCLI YAML with a `data:` section, or a "
        "bare class_path/init_args YAML): gives the release reader and the transforms. "
        "Default: the config.yaml mgr fit saved next to the checkpoint's folder",
    )
    p.add_argument(
        "--dataset",
        choices=["smg", "imigue"],
        default=None,
        help="instead of --data: this dataset's default datamodule (default transforms; "
        "only right if the recognizer was trained with them)",
    )
    p.add_argument("--root", default=None, help="release folder (overrides the config's root)")
    p.add_argument("--window", type=int, default=16, help="frames per window")
    p.add_argument("--stride", type=int, default=4, help="frames between window starts")
    p.add_argument("--out", required=True, help="features folder")
    p.add_argument("--videos", nargs="+", default=None, help="only these video ids")
    p.add_argument("--batch-size", type=int, default=64, help="windows per forward pass")
    p.add_argument("--device", default="cpu")
    p.add_argument("--recognizer-class", default=None, help="e.g. mgr.models.STCNN")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument(
        "--trust-checkpoint",
        action="store_true",
        help="unpickle --ckpt fully (runs code it holds: only for files you trust)",
    )
    a = p.parse_args(argv)
    ckpt = Path(a.ckpt)
    if a.data is not None and a.dataset is not None:
        p.error("give --data or --dataset, not both")
    if a.dataset is not None:
        if a.root is None:
            p.error("--dataset needs --root")
        from mgr.datamodules import IMiGUEDataModule, SMGDataModule

        dm = {"smg": SMGDataModule, "imigue": IMiGUEDataModule}[a.dataset](a.root)
        warnings.warn(
            f"--dataset {a.dataset}: using {type(dm).__name__}'s default transforms; pass the "
            "recognizer's training config with --data if it was trained with others",
            stacklevel=1,
        )
    else:
        config = Path(a.data) if a.data is not None else _default_config(ckpt)
        if config is None:
            p.error(
                f"no --data given and no config.yaml next to {ckpt}: pass the recognizer's "
                "training config (--data CONFIG.yaml) or --dataset with --root"
            )
        dm = datamodule_from_config(config, root=a.root)
    if getattr(dm, "layout", None) is None:
        p.error(f"{type(dm).__name__} has no skeletons and no long sequences (MA-52)")
    transform = window_transform_of(dm)  # skeleton, heatmap or the datamodule's clip pipeline
    status = extract_features(
        ckpt,
        a.out,
        source=SequenceSource.of_datamodule(dm),
        transform=transform,
        window=a.window,
        stride=a.stride,
        videos=a.videos,
        batch_size=a.batch_size,
        device=a.device,
        recognizer_class=a.recognizer_class,
        progress=not a.no_progress,
        trust=a.trust_checkpoint,
    )
    computed = sum(v == "computed" for v in status.values())
    print(
        f"features of {len(status)} videos in {a.out} "
        f"({computed} computed, {len(status) - computed} cached)"
    )
    return 0
