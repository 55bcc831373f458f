"""PoseC3D's whole data pipeline per sample: mgr vs mmaction2 1.2, from one PoseC3D pickle.

Writes a PoseC3D pickle of single-person COCO-17 clips (1080p pixel keypoints of a body
that drifts and moves its limbs, scores in [0.3, 1] with 5 % of joints at score 0 and
real coordinates, 40-150 frames), then times per sample, interleaved, on one thread:

* mmaction2 train: ``UniformSampleFrames(48) -> PoseDecode -> PoseCompact(hw_ratio=1,
  allow_imgpad) -> Resize(-1, 64) -> RandomResizedCrop(0.56-1) -> Resize(56, 56) ->
  Flip(0.5, COCO left/right) -> GeneratePoseTarget(sigma 0.6, joints) ->
  FormatShape(NCTHW_Heatmap)`` (PoseC3D's SlowOnly config);
* mmaction2 test: ``UniformSampleFrames(48, test_mode) -> PoseDecode -> PoseCompact ->
  Resize(-1, 64) -> CenterCrop(64) -> GeneratePoseTarget -> FormatShape``;
* mgr: :class:`mgr.data.datasets.HeatmapClipDataset` items with the same settings, and with
  ``heatmap.on_device`` (the worker's share: sampling and keypoint transforms; the volume
  is rendered on the device, see ``benchmarks/heatmaps.py`` for its cost).

Test-time volumes must be identical (max |diff| printed; sampling is deterministic and
index-identical to mmaction2's). Times are process CPU ms per sample (medians), wall too.

    python benchmarks/posec3d_pipeline.py [--samples 24] [--repeats 3]

Run it where mmaction2 is installed (see the README's performance section).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import pickle
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import torch

from mgr.data.datasets import HeatmapClipDataset, HeatmapOptions, SkeletonTransformConfig
from mgr.data.readers.posec3d import (
    PoseAnnotation,
    annotations_to_records,
    read_posec3d_pickle,
    write_posec3d_pickle,
)
from mgr.skeletons import COCO_17

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mmaction_compat import import_mmaction

IMG = (1080, 1920)
LEFT = [1, 3, 5, 7, 9, 11, 13, 15]
RIGHT = [2, 4, 6, 8, 10, 12, 14, 16]


def annotations(n: int, seed: int = 0) -> list[PoseAnnotation]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        t = int(rng.integers(40, 151))
        body = rng.uniform([-120, -300], [120, 300], (17, 2))
        drift = np.cumsum(rng.normal(0, 3, (t, 1, 2)), axis=0)
        wiggle = rng.normal(0, 6, (t, 17, 2))
        centre = rng.uniform([600, 400], [1300, 700])
        kp = (centre + body + drift + wiggle).astype(np.float32)[None]
        score = rng.uniform(0.3, 1.0, (1, t, 17)).astype(np.float32)
        score[rng.random((1, t, 17)) < 0.05] = 0.0  # undetected, coordinates kept
        out.append(
            PoseAnnotation(
                frame_dir=f"clip_{i}",
                label=i % 5,
                keypoint=kp,
                keypoint_score=score,
                img_shape=IMG,
                original_shape=IMG,
                total_frames=t,
            )
        )
    return out


def mm_pipelines(mm) -> dict[str, list]:
    train = [
        mm.UniformSampleFrames(clip_len=48),
        mm.PoseDecode(),
        mm.PoseCompact(hw_ratio=1.0, allow_imgpad=True),
        mm.Resize(scale=(-1, 64)),
        mm.RandomResizedCrop(area_range=(0.56, 1.0)),
        mm.Resize(scale=(56, 56), keep_ratio=False),
        mm.Flip(flip_ratio=0.5, left_kp=LEFT, right_kp=RIGHT),
        mm.GeneratePoseTarget(sigma=0.6, use_score=True, with_kp=True, with_limb=False),
        mm.FormatShape(input_format="NCTHW_Heatmap"),
    ]
    test = [
        mm.UniformSampleFrames(clip_len=48, num_clips=1, test_mode=True),
        mm.PoseDecode(),
        mm.PoseCompact(hw_ratio=1.0, allow_imgpad=True),
        mm.Resize(scale=(-1, 64)),
        mm.CenterCrop(crop_size=64),
        mm.GeneratePoseTarget(sigma=0.6, use_score=True, with_kp=True, with_limb=False),
        mm.FormatShape(input_format="NCTHW_Heatmap"),
    ]
    return {"train": train, "test": test}


def run_mm(steps: list, ann: dict) -> np.ndarray:
    results = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in ann.items()}
    results["start_index"] = 0
    results["modality"] = "Pose"
    for step in steps:
        results = step.transform(results)
    return results["imgs"]


def mgr_dataset(records, train: bool, on_device: bool) -> HeatmapClipDataset:
    config = SkeletonTransformConfig(
        clip_len=48, joints=None, flip_permutation=tuple(COCO_17.flip_permutation()),
        score_channel=2, flip_prob=0.5 if train else 0.0, normalize=False,
    )  # fmt: skip
    options = HeatmapOptions(
        kind="joint", size=56, test_size=64, sigma=0.6, use_score=True,
        area_range=(0.56, 1.0), compact_padding=0.25, img_shape=IMG, on_device=on_device,
    )  # fmt: skip
    return HeatmapClipDataset(records, config, options, COCO_17.limbs, train=train)


def _pipeline(name: str, mm, records, raw) -> Callable[[int], object]:
    """The function that makes sample ``i`` for pipeline ``name`` ("mgr train on_device", ...)."""
    lib, mode, *rest = name.split()
    train = mode == "train"
    if lib == "mm":
        steps = mm_pipelines(mm)[mode]
        return lambda i: run_mm(steps, raw[i])
    dataset = mgr_dataset(records, train, on_device=bool(rest))
    return lambda i: dataset[i]


def _load(path: Path) -> tuple[list, list]:
    with path.open("rb") as f:
        raw = pickle.load(f)["annotations"]  # what mmaction2's PoseDataset reads
    return annotations_to_records(read_posec3d_pickle(path), source=str(path)), raw


def _worker(name: str, path: str, conn) -> None:
    """One pipeline in a process of its own, as in a DataLoader worker.

    Per request (a repeat number) it makes every sample once, in order, one after another
    as a worker does, and returns the times. Earlier versions interleaved single samples of
    all pipelines in one process: mmaction2's churn of 10-20 MiB arrays then changed mgr's
    allocator state (glibc's adaptive mmap threshold) and every switch left the next
    pipeline cold caches, which made mgr's ~1 ms sample 2-3x slower than in a worker.
    """
    torch.set_num_threads(1)
    try:
        import cv2

        cv2.setNumThreads(1)
    except ImportError:
        pass
    records, raw = _load(Path(path))
    fn = _pipeline(name, import_mmaction() if name.startswith("mm") else None, records, raw)
    fn(0)  # warm-up
    while (rep := conn.recv()) is not None:
        times = []
        for i in range(len(raw)):
            np.random.seed(rep * 1000 + i)  # noqa: NPY002 (mmaction2's own generator)
            torch.manual_seed(rep * 1000 + i)
            c, w = time.process_time(), time.perf_counter()
            fn(i)
            times.append(((time.process_time() - c) * 1e3, (time.perf_counter() - w) * 1e3))
        conn.send(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    mm = import_mmaction()
    if mm is None:
        sys.exit("mmaction2 is not installed here (see the README's performance section)")
    names = [f"{lib} {mode}{extra}" for mode in ("train", "test")
             for lib, extra in (("mm", ""), ("mgr", ""), ("mgr", " on_device"))]  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "posec3d.pkl"
        write_posec3d_pickle(path, annotations(args.samples))
        records, raw = _load(path)
        # Identity at test time.
        test, steps = mgr_dataset(records, False, False), mm_pipelines(mm)["test"]
        diffs = []
        for i in range(args.samples):
            ours = test[i]["heatmap"].numpy()  # (K, T, H, W)
            theirs = run_mm(steps, raw[i])[0]  # (1, K, T, H, W) -> (K, T, H, W)
            assert ours.shape == theirs.shape, (ours.shape, theirs.shape)
            diffs.append(float(np.abs(ours - theirs).max()))
        ctx = multiprocessing.get_context("spawn")
        conns, procs = {}, []
        for name in names:
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker, args=(name, str(path), child), daemon=True)
            proc.start()
            conns[name] = parent
            procs.append(proc)
        cpu = {k: [] for k in names}
        wall = {k: [] for k in names}
        for rep in range(args.repeats):
            order = list(names)
            np.random.default_rng(rep).shuffle(order)
            for name in order:  # one at a time: the processes never overlap
                conns[name].send(rep)
                for c, w in conns[name].recv():
                    cpu[name].append(c)
                    wall[name].append(w)
        for name in names:
            conns[name].send(None)
        for proc in procs:
            proc.join()
    print(f"{args.samples} samples (COCO-17, 40-150 frames, 48 sampled), {args.repeats} repeats,")
    print(f"one thread, each pipeline in its own process, repeats interleaved; load average "
          f"{os.getloadavg()[0]:.1f} at the end")  # fmt: skip
    print(f"test-time volumes, max |mgr - mmaction2| over all samples: {max(diffs):.2e}")
    print(f"{'pipeline':<22}{'CPU ms':>9}{'wall ms':>9}{'mm / this':>11}")
    for name in names:
        mode = name.split()[1]
        c, w = statistics.median(cpu[name]), statistics.median(wall[name])
        ref = statistics.median(cpu[f"mm {mode}"])
        print(f"{name:<22}{c:>9.2f}{w:>9.2f}{ref / c:>10.1f}x")


if __name__ == "__main__":
    main()
