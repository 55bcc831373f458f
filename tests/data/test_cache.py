"""The ``mgr prepare`` cache: exact round trip, signature checks, CLI."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from mgr.cli import main
from mgr.data.cache import (
    VideoCacheOptions,
    cache_signature_matches,
    find_prepared_clip,
    prepared_clip_path,
    read_cache,
    write_cache,
    write_video_cache,
)
from mgr.data.datasets import VideoOptions
from mgr.data.readers.common import ClipRecord, DataFormatError
from mgr.datamodules import IMiGUEDataModule


def _record(i: int, frames: int, kp: bool = True) -> ClipRecord:
    rng = np.random.default_rng(i)
    return ClipRecord(
        sample_id=f"{i:04d}_0",
        label=i % 5,
        keypoint=rng.normal(size=(frames, 4, 3)).astype(np.float32) if kp else None,
        video_id=f"{i:04d}",
        start=3 * i,
        end=3 * i + frames - 1,
        source=f"/raw/{i}.csv",
        subject=i if i % 2 else None,
        video=f"/raw/{i}.mp4" if i % 3 else None,
        video_start=i,
        video_end=None if i % 2 else i + 9,
        coarse_label=None,
    )


def _assert_same(a: ClipRecord, b: ClipRecord) -> None:
    for field in ClipRecord.__dataclass_fields__:
        x, y = getattr(a, field), getattr(b, field)
        if isinstance(x, np.ndarray):
            np.testing.assert_array_equal(x, y)
            assert y.dtype == np.float32
        else:
            assert x == y, field


def test_round_trip_is_exact(tmp_path: Path) -> None:
    records = {"train": [_record(i, 5 + i) for i in range(6)], "val": [_record(9, 3)]}
    write_cache(tmp_path, records, {"dataset": "x"})
    for split, recs in records.items():
        got = read_cache(tmp_path, split)
        assert len(got) == len(recs)
        for a, b in zip(recs, got, strict=True):
            _assert_same(a, b)


def test_video_only_records(tmp_path: Path) -> None:
    recs = [_record(i, 4, kp=False) for i in range(3)]
    write_cache(tmp_path, {"test": recs}, {"dataset": "ma52"})
    got = read_cache(tmp_path, "test")
    assert [r.keypoint for r in got] == [None] * 3
    assert [r.video for r in got] == [r.video for r in recs]


def test_signature_must_match(tmp_path: Path) -> None:
    write_cache(tmp_path, {"train": [_record(1, 4)]}, {"split_scheme": "miga"})
    assert cache_signature_matches(tmp_path, {"split_scheme": "miga"}, "train")
    assert not cache_signature_matches(tmp_path, {"split_scheme": "subjects"}, "train")
    assert not cache_signature_matches(tmp_path, {"split_scheme": "miga"}, "val")
    # A cache of other options replaces the old split list rather than mixing them.
    write_cache(tmp_path, {"val": [_record(2, 4)]}, {"split_scheme": "subjects"})
    assert not cache_signature_matches(tmp_path, {"split_scheme": "subjects"}, "train")


def test_mixed_or_corrupt_input_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="some clips have keypoints"):
        write_cache(tmp_path, {"train": [_record(1, 4), _record(2, 4, kp=False)]}, {})
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(DataFormatError, match=r"bad\.npz"):
        read_cache(tmp_path, "bad")
    with pytest.raises(FileNotFoundError, match="nope"):
        read_cache(tmp_path, "nope")


def test_datamodule_reads_its_cache(synth_imigue: Path, tmp_path: Path) -> None:
    raw = IMiGUEDataModule(synth_imigue)
    raw.write_cache(tmp_path / "cache")
    cached = IMiGUEDataModule(synth_imigue, cache_dir=tmp_path / "cache")
    for split in ("train", "val", "test"):
        a, b = raw.load_records(split), cached._load_raw(split)
        assert len(a) == len(b) > 0
        for x, y in zip(a, b, strict=True):
            _assert_same(x, y)
    # The cache is used, not the raw files: a record edited in the cache shows up.
    recs = cached._load_raw("train")
    recs[0].label = (recs[0].label + 1) % 32
    write_cache(tmp_path / "cache", {"train": recs}, cached.cache_signature())
    assert cached._load_raw("train")[0].label == recs[0].label
    # Other reader options (skip bad clips) do not match the cache: the raw files are parsed.
    other = IMiGUEDataModule(synth_imigue, cache_dir=tmp_path / "cache", on_bad_sample="skip")
    assert other._load_raw("train")[0].label == raw.load_records("train")[0].label


def test_prepare_cli(synth_smg: Path, synth_imigue: Path, tmp_path: Path) -> None:
    assert main(["prepare", "--dataset", "imigue", "--root", str(synth_imigue), "--out",
                 str(tmp_path / "npz"), "--splits", "train"]) == 0  # fmt: skip
    assert (tmp_path / "npz" / "train.npz").is_file()
    assert not (tmp_path / "npz" / "val.npz").exists()
    assert main(["prepare", "--dataset", "imigue", "--root", str(synth_imigue), "--out",
                 str(tmp_path / "pkl"), "--format", "posec3d"]) == 0  # fmt: skip
    with open(tmp_path / "pkl" / "imigue_val.pkl", "rb") as f:
        data = pickle.load(f)
    val = IMiGUEDataModule(synth_imigue).load_records("val")
    assert data["split"]["val"] == [r.sample_id for r in val]
    ann = data["annotations"][0]
    np.testing.assert_array_equal(ann["keypoint"][0], val[0].keypoint[..., :2])
    np.testing.assert_array_equal(ann["keypoint_score"][0], val[0].keypoint[..., 2])
    assert tuple(ann["img_shape"]) == (1080, 1920)
    # World coordinates are not pixels: no PoseC3D export.
    with pytest.raises(SystemExit):
        main(["prepare", "--dataset", "smg", "--root", str(synth_smg), "--out",
              str(tmp_path / "x"), "--format", "posec3d"])  # fmt: skip


def test_killed_prepare_lists_only_complete_splits(tmp_path: Path, monkeypatch) -> None:
    """An interrupted rewrite with other options never serves a split under the old ones."""
    a, b = {"dataset": "x", "coords": "world"}, {"dataset": "x", "coords": "pixel"}
    write_cache(tmp_path, {"train": [_record(i, 4) for i in range(3)], "val": [_record(7, 3)]}, a)
    new = {"train": [_record(i, 6) for i in range(10, 14)], "val": [_record(20, 5)]}
    real, calls = np.savez, []

    def killed_on_second_split(f, **arrays):
        calls.append(1)
        if len(calls) == 2:
            f.write(b"PK\x03\x04 half")
            raise OSError("killed mid-write")
        real(f, **arrays)

    with monkeypatch.context() as m:
        m.setattr(np, "savez", killed_on_second_split)
        with pytest.raises(OSError, match="mid-write"):
            write_cache(tmp_path, new, b)
    # train.npz now holds the new run's records: the old signature must not claim it,
    # nor the old (complete) val.npz; the new run's finished split is valid.
    assert not cache_signature_matches(tmp_path, a, "train")
    assert not cache_signature_matches(tmp_path, a, "val")
    assert cache_signature_matches(tmp_path, b, "train")
    assert not cache_signature_matches(tmp_path, b, "val")
    for x, y in zip(new["train"], read_cache(tmp_path, "train"), strict=True):
        _assert_same(x, y)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    write_cache(tmp_path, new, b)  # the rerun
    assert cache_signature_matches(tmp_path, b, "val")
    _assert_same(new["val"][0], read_cache(tmp_path, "val")[0])


# ---------------------------------------------------------------------- prepared clips (--video)


def _video_batch(root: Path, cache: Path | None, **video) -> dict:
    dm = IMiGUEDataModule(
        root,
        modalities=["video"],
        video=VideoOptions(size=32, **video),
        clip_len=6,
        batch_size=64,
        cache_dir=cache,
    )
    dm.setup("validate")
    return dm, next(iter(dm.val_dataloader()))


@pytest.mark.parametrize("fmt", ["mp4", "npy"])
def test_prepare_video_is_read_in_place_of_the_raw_clips(
    synth_imigue_rgb: Path, tmp_path: Path, fmt: str
) -> None:
    cache = tmp_path / "cache"
    argv = ["prepare", "--dataset", "imigue", "--root", str(synth_imigue_rgb), "--out",
            str(cache), "--splits", "val", "--video", "--video-short-side", "40",
            "--video-format", fmt]  # fmt: skip
    assert main(argv) == 0
    files = sorted((cache / "video").glob(f"*.{fmt}"))
    dm_raw, raw = _video_batch(synth_imigue_rgb, None)
    assert len(files) == len(dm_raw.records["val"])
    assert not list((cache / "video").glob(".*tmp*"))  # atomic writes leave nothing behind
    dm, cached = _video_batch(synth_imigue_rgb, cache)
    assert all(Path(r.video).parent == cache / "video" for r in dm.records["val"])
    assert raw["sample_id"] == cached["sample_id"]
    # Same frames and crops, resampled twice (48 -> 40 short side, then -> 32): the clips'
    # pixels stay within a few grey levels (a wrong frame or crop differs by far more).
    diff = (raw["video"].float() - cached["video"].float()).abs()
    assert diff.mean() < 3.0 and diff.max() <= 64, (diff.mean(), diff.max())
    # Resumable: a second run writes nothing.
    mtimes = [f.stat().st_mtime_ns for f in files]
    assert main(argv) == 0
    assert [f.stat().st_mtime_ns for f in files] == mtimes


def test_prepared_clips_are_invalidated(synth_imigue_rgb: Path, tmp_path: Path) -> None:
    dm = IMiGUEDataModule(synth_imigue_rgb, modalities=["video"], clip_len=6)
    records = dm._get_records("val")
    cache = tmp_path / "cache"
    assert write_video_cache(cache, records, VideoCacheOptions(short_side=40)) == (len(records), 0)
    rec = records[0]
    first = prepared_clip_path(cache, rec, VideoCacheOptions(short_side=40))
    assert find_prepared_clip(cache, rec) == first
    # Other options: the old files go, new names come.
    assert write_video_cache(cache, records[:1], VideoCacheOptions(short_side=24)) == (1, 0)
    assert not first.exists()
    assert find_prepared_clip(cache, records[1]) is None  # not prepared: raw fallback
    # A rewritten source video no longer matches its prepared copy.
    src = Path(rec.video)
    times = (src.stat().st_atime_ns, src.stat().st_mtime_ns)
    os.utime(src, ns=(times[0], times[1] + 10**9))
    try:
        assert find_prepared_clip(cache, rec) is None
    finally:
        os.utime(src, ns=times)  # the fixture is shared
    with pytest.raises(ValueError, match="format"):
        VideoCacheOptions(format="avi")  # type: ignore[arg-type]
