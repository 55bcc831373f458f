"""A fast on-disk cache of parsed clip records (``mgr prepare``).

Parsing a raw release (thousands of csv or xlsx files) takes far longer than
an epoch needs, so ``mgr prepare`` converts it once into one ``<split>.npz``
per split plus ``cache.json``:

* ``keypoint``: all clips' keypoints concatenated on the frame axis,
  ``(sum T, V, C)`` float32, with ``offsets (N + 1,)`` int64 delimiting clip ``i``
  as rows ``offsets[i]:offsets[i + 1]``;
* ``records``: one JSON string holding every other :class:`ClipRecord` field
  (sample id, label, video id, frames, source, subject, video path and range,
  coarse label);
* ``cache.json``: the format version, the dataset and the reader options that
  produced the records (:attr:`signature`) and the splits it holds. A DataModule
  uses a cache only if its own signature matches, so a cache of the MiGA split
  is never read as the subject split.

Files are written atomically (:mod:`mgr.fileio`) and ``cache.json`` lists a split
only once its file is complete: an interrupted ``mgr prepare`` leaves a cache whose
listed splits are all valid; the rest are parsed from the release again.

Loading is one ``np.load`` per split (no pickle, so caches are safe to share).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mgr.fileio import atomic_write, write_json

from .readers.common import ClipRecord, DataFormatError, PathLike

__all__ = ["CACHE_VERSION", "cache_signature_matches", "read_cache", "write_cache"]

CACHE_VERSION = 1
_META = "cache.json"
_FIELDS = (
    "sample_id",
    "label",
    "video_id",
    "start",
    "end",
    "source",
    "subject",
    "video",
    "video_start",
    "video_end",
    "coarse_label",
)


def write_cache(
    out: PathLike, records: Mapping[str, Sequence[ClipRecord]], signature: Mapping[str, Any]
) -> Path:
    """Write records of one or more splits.

    Args:
        out: cache folder (created).
        records: split -> its clips. Every clip of a split must have keypoints of
            the same ``(V, C)``, or none at all (video-only releases).
        signature: what produced the records (dataset, reader options); JSON-able.

    Returns:
        The cache folder.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    signature = json.loads(json.dumps(dict(signature)))  # the form it has once read back
    meta_path = out / _META
    existing = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    kept: list[str] = []
    if existing.get("version") == CACHE_VERSION and existing.get("signature") == signature:
        kept = [s for s in existing.get("splits", []) if s not in records]
    # cache.json is the marker: it stops listing the splits about to change before their
    # files do, and lists each again once its file is whole, so a run killed half-way
    # leaves every listed split valid (a stale split of another signature is never read).
    _write_meta(meta_path, signature, kept)
    for split, recs in records.items():
        with_kp = [r for r in recs if r.keypoint is not None]
        if with_kp and len(with_kp) != len(recs):
            raise ValueError(f"split {split!r}: some clips have keypoints and some do not")
        shapes = {r.keypoint.shape[1:] for r in with_kp}
        if len(shapes) > 1:
            raise ValueError(f"split {split!r}: clips have different (V, C) shapes {shapes}")
        lengths = [r.keypoint.shape[0] if r.keypoint is not None else 0 for r in recs]
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        if with_kp:
            keypoint = np.concatenate([r.keypoint for r in recs]).astype(np.float32)
        else:
            keypoint = np.zeros((0, 0, 0), np.float32)
        meta = [{f: getattr(r, f) for f in _FIELDS} for r in recs]
        with atomic_write(out / f"{split}.npz") as f:
            np.savez(f, keypoint=keypoint, offsets=offsets, records=np.array(json.dumps(meta)))
        kept.append(split)
        _write_meta(meta_path, signature, kept)
    return out


def _write_meta(path: Path, signature: dict[str, Any], splits: Sequence[str]) -> None:
    write_json(
        path, {"version": CACHE_VERSION, "signature": signature, "splits": sorted(splits)}, indent=1
    )


def cache_signature_matches(cache: PathLike, signature: Mapping[str, Any], split: str) -> bool:
    """Whether ``cache`` holds ``split`` produced with exactly ``signature``."""
    meta_path = Path(cache) / _META
    if not meta_path.is_file() or not (Path(cache) / f"{split}.npz").is_file():
        return False
    meta = json.loads(meta_path.read_text())
    return (
        meta.get("version") == CACHE_VERSION
        and meta.get("signature") == json.loads(json.dumps(dict(signature)))
        and split in meta.get("splits", [])
    )


def read_cache(cache: PathLike, split: str) -> list[ClipRecord]:
    """Records of one split.

    Raises:
        FileNotFoundError: if the split's file is missing.
        DataFormatError: naming the file, if it is not a cache of this version.
    """
    path = Path(cache) / f"{split}.npz"
    if not path.is_file():
        raise FileNotFoundError(f"no cached split {split!r}: {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as data:
            keypoint, offsets = data["keypoint"], data["offsets"]
            meta = json.loads(str(data["records"]))
    except (KeyError, ValueError, OSError) as err:
        raise DataFormatError(f"{path}: not an mgr cache file ({err})") from err
    if len(offsets) != len(meta) + 1:
        raise DataFormatError(f"{path}: {len(meta)} records but {len(offsets) - 1} offsets")
    records = []
    for i, fields in enumerate(meta):
        lo, hi = int(offsets[i]), int(offsets[i + 1])
        kp = keypoint[lo:hi] if keypoint.size else None
        records.append(ClipRecord(keypoint=kp, **fields))
    return records
