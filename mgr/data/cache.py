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

``mgr prepare --video`` also stores every clip's frames once, small (short side 256 by
default) and quick to read, under ``video/`` (:func:`write_video_cache`): re-encoded
H.264 with a keyframe on every frame (a sampled frame costs one small intra decode) or raw
uint8 arrays. Datamodules whose ``cache_dir`` holds them read them in place of the raw
videos (:func:`find_prepared_clip`), clip by clip, and read the raw file for any clip not
prepared. A prepared clip differs from the raw path's output only by resampling twice
(to the short side, then the crop to the model size): a few grey levels, see
``benchmarks/video_loading.py``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from mgr.fileio import atomic_write, write_json

from .readers.common import ClipRecord, DataFormatError, PathLike

__all__ = [
    "CACHE_VERSION",
    "VideoCacheOptions",
    "cache_signature_matches",
    "find_prepared_clip",
    "prepared_clip_path",
    "read_cache",
    "read_video_cache_options",
    "write_cache",
    "write_video_cache",
]

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


# ---------------------------------------------------------------------- prepared clips
@dataclass(frozen=True)
class VideoCacheOptions:
    """How ``mgr prepare --video`` stores each clip (``<cache>/video/``).

    Attributes:
        short_side: frames are resized (bilinear, antialiased, aspect kept) so that
            their short side has this many pixels; 256 serves the configs' 224 crops
            (centre, random-resized). Saliency crops of a small person box need more:
            use about ``2 * size / box_fraction`` (e.g. 512) to keep the box's pixels.
        format: ``"mp4"``: H.264 re-encoded with a keyframe every ``gop`` frames;
            ``"npy"``: raw uint8 ``(T, H, W, 3)`` arrays, memory-mapped (no decoding,
            about 20x the bytes).
        gop: keyframe interval of ``"mp4"`` (1: every frame is a keyframe, so a
            sampled frame costs the decode of one frame).
        crf: libx264 quality of ``"mp4"`` (18: visually lossless).
    """

    short_side: int = 256
    format: Literal["mp4", "npy"] = "mp4"
    gop: int = 1
    crf: int = 18

    def __post_init__(self) -> None:
        if self.format not in ("mp4", "npy"):
            raise ValueError(f"video cache format must be 'mp4' or 'npy', got {self.format!r}")
        if self.short_side < 2 or self.gop < 1:
            raise ValueError(f"need short_side >= 2 and gop >= 1, got {self}")


VIDEO_CACHE_DIR = "video"
_VIDEO_META = "options.json"


def prepared_clip_path(cache: PathLike, rec: ClipRecord, options: VideoCacheOptions) -> Path:
    """Where the prepared copy of ``rec``'s video range lives (whether or not it exists).

    The name carries a hash of the options, the source file (path, size, mtime) and the
    clip's frame range, so a change of any of them points elsewhere: a stale copy is never
    read, and preparing again only writes what is missing.
    """
    if rec.video is None:
        raise ValueError(f"clip {rec.sample_id} has no video to prepare")
    src = Path(rec.video)
    stat = src.stat()
    key = json.dumps(
        [asdict(options), str(src.resolve()), stat.st_size, stat.st_mtime_ns,
         rec.video_start, rec.video_end]
    )  # fmt: skip
    digest = hashlib.sha1(key.encode()).hexdigest()[:12]
    return Path(cache) / VIDEO_CACHE_DIR / f"{rec.sample_id}-{digest}.{options.format}"


def read_video_cache_options(cache: PathLike) -> VideoCacheOptions | None:
    """The options a cache's prepared clips were written with (``None``: no prepared clips)."""
    meta = Path(cache) / VIDEO_CACHE_DIR / _VIDEO_META
    if not meta.is_file():
        return None
    return VideoCacheOptions(**json.loads(meta.read_text()))


def find_prepared_clip(cache: PathLike, rec: ClipRecord) -> Path | None:
    """The prepared copy of ``rec``'s clip in ``cache``, or ``None`` (read the raw file)."""
    options = read_video_cache_options(cache)
    if options is None or rec.video is None or not Path(rec.video).is_file():
        return None
    path = prepared_clip_path(cache, rec, options)
    return path if path.is_file() else None


def prepare_clip(rec: ClipRecord, out: Path, options: VideoCacheOptions) -> None:
    """Write one clip's frames (its video range) at ``options.short_side``, atomically."""
    import torch

    from .readers.video import decode_frames, probe_video, write_video
    from .transforms.video import resize

    src = Path(rec.video)
    end = rec.video_end if rec.video_end is not None else probe_video(src).num_frames - 1
    indices = list(range(rec.video_start, end + 1))
    chunks = []
    for lo in range(0, len(indices), 64):  # bounded memory on long clips
        frames = torch.from_numpy(decode_frames(src, indices[lo : lo + 64])).permute(0, 3, 1, 2)
        small = resize(frames, options.short_side)
        if options.format == "mp4":  # yuv420p needs even sides
            small = small[..., : small.shape[-2] // 2 * 2, : small.shape[-1] // 2 * 2]
        chunks.append(small.permute(0, 2, 3, 1).contiguous().numpy())
    clip = np.concatenate(chunks)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp{out.suffix}")
    try:
        if options.format == "npy":
            np.save(tmp, clip)
        else:
            fps = probe_video(src).fps or 30.0
            write_video(tmp, clip, fps=fps, crf=options.crf, gop=options.gop)
        tmp.replace(out)  # a reader never sees a half-written file
    finally:
        tmp.unlink(missing_ok=True)


def write_video_cache(
    cache: PathLike,
    records: Sequence[ClipRecord],
    options: VideoCacheOptions,
    *,
    progress: bool = False,
) -> tuple[int, int]:
    """Prepare every clip's video once (``mgr prepare --video``); resumable.

    Clips already prepared with the same options and source are skipped; a change of
    options starts a new set of files (the old ones are deleted).

    Args:
        cache: the cache folder (``cache_dir`` of the datamodules).
        records: clips with their ``video`` attached.
        options: size and format.
        progress: show a progress bar.

    Returns:
        ``(written, skipped)`` clip counts.
    """
    folder = Path(cache) / VIDEO_CACHE_DIR
    folder.mkdir(parents=True, exist_ok=True)
    old = read_video_cache_options(cache)
    if old is not None and old != options:  # other options: every stored clip is stale
        for stale in folder.glob(f"*.{old.format}"):
            stale.unlink()
    meta = folder / _VIDEO_META
    tmp_meta = folder / f".{_VIDEO_META}.tmp"
    tmp_meta.write_text(json.dumps(asdict(options)))
    tmp_meta.replace(meta)
    from tqdm.auto import tqdm

    written = skipped = 0
    for rec in tqdm(records, desc="prepare --video", unit="clip", disable=not progress):
        out = prepared_clip_path(cache, rec, options)
        if out.is_file():
            skipped += 1
            continue
        prepare_clip(rec, out, options)
        written += 1
    return written, skipped
