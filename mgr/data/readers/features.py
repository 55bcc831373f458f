"""Feature folders written by ``mgr extract-features``: one recognizer feature per window.

Layout (written by :func:`mgr.features.extract_features`)::

    DIR/<video>.npz    features (N, D) float32, centers (N,) int64, num_frames () int64,
                       meta_key (): digest of the meta the file was computed with
    DIR/meta.json      ckpt, ckpt_sha256, recognizer_class, window, stride, dim,
                       source (release reader), transform (window -> batch)

Each npz carries the digest (:func:`meta_key`) of the ``meta.json`` it was computed
with, which :func:`read_features` checks: after an interrupted re-extraction with
other settings, the files not yet recomputed are refused, not read as current.
The online datamodules read these files, the extraction command writes them, so
the format lives here with the other readers.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["META_FILE", "meta_key", "read_feature_meta", "read_features", "stored_meta_key"]

#: the folder's settings file.
META_FILE = "meta.json"


def meta_key(meta: dict[str, Any]) -> str:
    """Digest of a folder's meta (16 hex digits), stored in each npz it produced."""
    return hashlib.sha256(json.dumps(meta, sort_keys=True).encode()).hexdigest()[:16]


def read_feature_meta(directory: str | Path) -> dict[str, Any]:
    """The ``meta.json`` of a features folder.

    Raises:
        FileNotFoundError: naming the folder, with the command that writes it.
    """
    path = Path(directory) / META_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} does not exist: {directory} is not a features folder "
            "(write one with `mgr extract-features --ckpt REC.ckpt --out DIR`)"
        )
    return json.loads(path.read_text())


def stored_meta_key(path: Path) -> str | None:
    """The ``meta_key`` of an npz, or ``None`` if it is missing or unreadable."""
    try:
        with np.load(path) as f:
            return str(f["meta_key"])
    except Exception:  # a half-written or foreign file is recomputed
        return None


def read_features(
    directory: str | Path, video_id: str, meta: dict[str, Any] | None = None
) -> tuple[np.ndarray, np.ndarray, int]:
    """One video's ``features (N, D)``, ``centers (N,)`` and frame count.

    The file must have been computed with the folder's ``meta.json`` (its
    ``meta_key``): a folder whose re-extraction with other settings was
    interrupted holds files of both, and the old ones are refused.

    Args:
        directory: the features folder.
        video_id: the video.
        meta: the folder's ``meta.json`` if already read (:func:`read_feature_meta`).

    Raises:
        FileNotFoundError: naming the missing file.
        ValueError: naming the file, for missing keys, inconsistent shapes, or
            features computed with other settings than ``meta.json``'s.
    """
    path = Path(directory) / f"{video_id}.npz"
    if not path.is_file():
        raise FileNotFoundError(
            f"no features for video {video_id!r}: {path} does not exist "
            "(run `mgr extract-features` on this release)"
        )
    meta = read_feature_meta(directory) if meta is None else meta
    with np.load(path) as f:
        missing = {"features", "centers", "num_frames", "meta_key"} - set(f.files)
        if missing:
            raise ValueError(f"{path}: missing arrays {sorted(missing)}")
        features, centers = f["features"].astype(np.float32), f["centers"].astype(np.int64)
        num_frames, key = int(f["num_frames"]), str(f["meta_key"])
    if key != meta_key(meta):
        raise ValueError(
            f"{path}: computed with other settings than {Path(directory) / META_FILE} "
            "(an interrupted `mgr extract-features` run?); run it again with the same --out"
        )
    if features.ndim != 2 or centers.shape != (len(features),) or len(features) == 0:
        raise ValueError(
            f"{path}: expected features (N, D) and centers (N,), got "
            f"{features.shape} and {centers.shape}"
        )
    return features, centers, num_frames
