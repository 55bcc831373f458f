"""Data loading speed on SynthMG: raw parsing vs the ``mgr prepare`` cache, and clips/s.

Part 1 times reading every split of a release (medians of interleaved repeats):
the raw csv (MiGA'23 iMiGUE layout), the raw xlsx (MiGA'25 layout, the same
keypoints written as 137-keypoint ``_openpose.xlsx``) and the npz cache, and
prints the ratio raw / cached.

Part 2 times a training epoch's loader (clips/s, after one warm-up batch) for
skeleton-only and RGB (8 frames, 224x224, saliency crop) samples, with 0 and 2
DataLoader workers. Decoding dominates RGB; the skeleton loader is limited by
Python per-sample overhead.

    python benchmarks/data_loading.py [--repeats 3] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from mgr.data.datasets import VideoOptions
from mgr.data.readers.imigue import IMIGUE_SPLIT_DIRS
from mgr.data.readers.miga import write_openpose_xlsx
from mgr.data.synthetic import generate_synthmg
from mgr.datamodules import IMiGUEDataModule


def _median_time(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _to_miga25(src: Path, dst: Path) -> None:
    """Rewrite a MiGA'23 SynthMG release as MiGA'25 xlsx (body 25 + hands at their slots)."""
    for split_dir in IMIGUE_SPLIT_DIRS.values():
        for video in sorted((src / split_dir).iterdir()):
            out = dst / split_dir / video.name
            out.mkdir(parents=True, exist_ok=True)
            rows = np.loadtxt(video / f"{video.name}_light_hand.csv", delimiter=",")
            kp = rows[:, 1:].reshape(len(rows), 35, 3)
            frames = np.zeros((len(rows), 137, 3), np.float32)
            frames[:, :25] = kp[:, :25]
            # light_hand fingers 1..5 (right, then left) -> OpenPose fingertips 4, 8, ..., 20.
            frames[:, 116 + np.arange(4, 21, 4)] = kp[:, 25:30]
            frames[:, 95 + np.arange(4, 21, 4)] = kp[:, 30:35]
            write_openpose_xlsx(out / f"{video.name}_openpose.xlsx", frames)
            label = (video / f"{video.name}_label.csv").read_text()
            (out / f"{video.name}_label.csv").write_text(label)


def _loader_rate(dm: IMiGUEDataModule) -> float:
    dm.setup("fit")
    loader = dm.train_dataloader()
    it = iter(loader)
    next(it)  # warm-up: worker start-up and first decode
    n, t0 = 0, time.perf_counter()
    for batch in it:
        n += len(batch["label"])
    return n / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="a smaller release")
    args = parser.parse_args()
    subjects = (3, 1, 1) if args.quick else (8, 2, 2)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        raw = generate_synthmg(
            tmp / "imigue", layout="imigue", seed=0, subjects=subjects, video=True
        )
        print(f"SynthMG iMiGUE release with RGB: {time.perf_counter() - t0:.1f} s to generate")
        _to_miga25(raw, tmp / "miga25")
        csv_dm = IMiGUEDataModule(raw)
        xlsx_dm = IMiGUEDataModule(tmp / "miga25", source="miga25")
        csv_dm.write_cache(tmp / "cache_csv")
        xlsx_dm.write_cache(tmp / "cache_xlsx")
        n_clips = sum(len(csv_dm.load_records(s)) for s in ("train", "val", "test"))
        frames = sum(r.num_frames for s in ("train", "val", "test") for r in csv_dm.load_records(s))

        def read_all(**kw: object) -> Callable[[], object]:
            return lambda: [IMiGUEDataModule(**kw)._load_raw(s) for s in ("train", "val", "test")]

        cases = {
            "raw csv (MiGA'23)": read_all(root=raw),
            "cache of csv": read_all(root=raw, cache_dir=tmp / "cache_csv"),
            "raw xlsx (MiGA'25)": read_all(root=tmp / "miga25", source="miga25"),
            "cache of xlsx": read_all(
                root=tmp / "miga25", source="miga25", cache_dir=tmp / "cache_xlsx"
            ),
        }
        times = {k: _median_time(fn, args.repeats) for k, fn in cases.items()}
        print(
            f"\nReading all splits ({n_clips} clips, {frames} clip frames), median of "
            f"{args.repeats}:"
        )
        print(f"{'source':<22}{'seconds':>10}{'ratio to its cache':>22}")
        pairs = {"raw csv (MiGA'23)": "cache of csv", "raw xlsx (MiGA'25)": "cache of xlsx"}
        for k, t in times.items():
            ratio = f"{t / times[pairs[k]]:.1f}x" if k in pairs else ""
            print(f"{k:<22}{t:>10.3f}{ratio:>22}")

        print("\nTraining loader throughput (clips/s, batch 8, clip_len 8):")
        print(f"{'inputs':<34}{'workers':>8}{'raw':>10}{'cached':>10}")
        video = VideoOptions(size=224, crop="saliency")
        for name, kw in (
            ("skeleton", {"modalities": ["skeleton"]}),
            ("RGB 8x224x224 (saliency crop)", {"modalities": ["video"], "video": video}),
        ):
            for workers in (0, 2):
                rates = []
                for cache in (None, tmp / "cache_csv"):
                    dm = IMiGUEDataModule(
                        raw, batch_size=8, clip_len=8, num_workers=workers, cache_dir=cache, **kw
                    )
                    rates.append(_loader_rate(dm))
                print(f"{name:<34}{workers:>8}{rates[0]:>10.0f}{rates[1]:>10.0f}")


if __name__ == "__main__":
    main()
