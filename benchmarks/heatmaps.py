"""Speed of PoseConv3D heatmaps: the reference loop vs mgr's vectorised torch.

Times, per sample (M=1 person), the reference of the tests -- a faithful
numpy transcription of mmaction2's ``GeneratePoseTarget`` loop over frames,
channels and persons, one small window patch at a time, on float32 arrays
allocated with ``np.zeros`` as mmaction2 does, not slowed down in any way --
and ``mgr.data.transforms.heatmaps`` on the CPU with 1 and 2 torch threads,
for joints and limbs, and prints medians of interleaved repeats with the
speed-ups, plus the largest difference from the reference. Keypoints are
uniformly random inside the image (long, criss-crossing limbs: the worst case
for mgr's limb crops), except the last row, a compact body drifting slowly.
If CUDA is available the batched forms are timed there too.

Memory weighs on the numbers as much as the code. Both the reference and mgr
write into fresh zeroed memory (numpy's ``calloc``), which the operating
system zeroes when it is first written; mgr's joints spend most of their time
there. Two floors are printed: ``zeros``, ``torch.zeros`` of the output's
size (what a dense output costs before any arithmetic), and ``touch``,
``np.zeros`` of it plus one write into each 4 KiB page that holds a drawn
pixel (what writing only the patches into fresh memory costs; the reference
pays it too). The speed-up of the joints is bounded by ``ref / touch``. And the
2-thread column is only meaningful on an otherwise idle machine: OpenMP
threads that share a core with another process wait on each other.

    python benchmarks/heatmaps.py [--repeats 7] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import torch

from mgr.data.transforms.heatmaps import (
    batch_joint_heatmaps,
    batch_limb_heatmaps,
    joint_heatmaps,
    limb_heatmaps,
)
from mgr.skeletons import COCO_17, MMGESTURE_36, OPENPOSE_68

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests package
from tests.data.transforms.test_heatmaps import reference_heatmaps

# (name, frames, layout, (H, W), compact pose)
CASES = [
    ("T=48 V=17 56x56", 48, COCO_17, (56, 56), False),
    ("T=48 V=36 56x56", 48, MMGESTURE_36, (56, 56), False),
    ("T=48 V=68 56x56", 48, OPENPOSE_68, (56, 56), False),
    ("10 clips T=480 V=17 64x64", 480, COCO_17, (64, 64), False),
    ("T=48 V=17 56x56 compact", 48, COCO_17, (56, 56), True),
]


def sample(t: int, v: int, size: tuple[int, int], compact: bool, seed: int = 0):
    """``(1, T, V, 2)`` keypoints inside the image and ``(1, T, V)`` scores in [0.2, 1]."""
    rng = np.random.default_rng(seed)
    height, width = size
    if compact:  # a 20 px body drifting by up to 8 px over the clip
        body = rng.uniform(0, 20, (v, 2))
        drift = np.cumsum(rng.normal(0, 8 / np.sqrt(t), (t, 1, 2)), axis=0)
        kp = np.clip(body + drift + [width / 2 - 10, height / 2 - 10], 0, min(size) - 1)[None]
    else:
        kp = rng.uniform(0, [width - 1, height - 1], (1, t, v, 2))
    score = rng.uniform(0.2, 1.0, (1, t, v))
    return kp.astype(np.float32), score.astype(np.float32)


def median_ms(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median wall time of each function in ms, repeats interleaved (noisy shared CPUs)."""
    for fn in fns.values():  # warm-up: thread pools, allocator caches
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            begin = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - begin) * 1e3)
    return {name: statistics.median(ts) for name, ts in times.items()}


def touch_floor(expected: np.ndarray) -> Callable[[], object]:
    """Fresh zeroed memory of the output's size, one write per 4 KiB page with a drawn pixel."""
    flat = np.ascontiguousarray(expected).reshape(-1)  # mgr's (C, T, H, W) order
    pages = np.unique(np.flatnonzero(flat) // 1024) * 1024

    def touch():
        buffer = np.zeros(flat.size, np.float32)
        buffer[pages] = 1.0
        return buffer

    return touch


def with_threads(n: int, fn: Callable[[], object]) -> Callable[[], object]:
    def run():
        torch.set_num_threads(n)
        return fn()

    return run


def cuda_ms(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        begin = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append((time.perf_counter() - begin) * 1e3)
    return statistics.median(times)


def time_case(name, t, layout, size, compact, repeats: int) -> tuple[float, float] | None:
    """Print the CPU rows of one case; return CUDA ms per sample (joints, limbs) if any."""
    kp, score = sample(t, layout.num_joints, size, compact)
    kp_t, score_t = torch.from_numpy(kp), torch.from_numpy(score)
    limbs = list(layout.limbs)
    for kind, ours, ref in (
        ("joints", partial(joint_heatmaps, kp_t, score_t, size), None),
        ("limbs", partial(limb_heatmaps, kp_t, score_t, size, limbs), limbs),
    ):
        reference = partial(reference_heatmaps, kp, score, size, limbs=ref)
        expected = reference()
        diff = float(np.abs(ours().numpy() - expected).max())
        # The floor for any dense output: allocating and zeroing it (page faults included).
        zeros = with_threads(1, partial(torch.zeros, expected.shape))
        fns = {"ref": reference, "1t": with_threads(1, ours), "2t": with_threads(2, ours)}
        ms = median_ms({**fns, "zeros": zeros, "touch": touch_floor(expected)}, repeats)
        print(
            f"{name:<27} {kind:<6} {ms['ref']:8.1f} {ms['1t']:8.2f} {ms['2t']:8.2f}"
            f" {ms['ref'] / ms['1t']:6.1f} {ms['ref'] / ms['2t']:6.1f} {ms['zeros']:8.2f}"
            f" {ms['touch']:8.2f} {diff:9.1e}"
        )
    if not torch.cuda.is_available():
        return None
    batch = 16
    kp_b = kp_t.cuda()[None].expand(batch, -1, -1, -1, -1).contiguous()
    score_b = score_t.cuda()[None].expand(batch, -1, -1, -1).contiguous()
    joints = cuda_ms(partial(batch_joint_heatmaps, kp_b, score_b, size), repeats)
    limbs_ms = cuda_ms(partial(batch_limb_heatmaps, kp_b, score_b, size, limbs), repeats)
    return joints / batch, limbs_ms / batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="skip the 10-clip case")
    args = parser.parse_args()
    cuda = torch.cuda.is_available()
    print(f"torch {torch.__version__}, numpy {np.__version__}, CUDA available: {cuda}")
    print("ms per sample (median); x = speed-up over the reference; 1t/2t = torch threads;")
    print("zeros = torch.zeros of the output's size (the floor for a dense output);")
    print("touch = np.zeros of it + a write per 4 KiB page with a drawn pixel (the floor")
    print("for writing only the patches into fresh memory, which the reference pays too)")
    header = (
        f"{'case':<27} {'kind':<6} {'ref ms':>8} {'mgr 1t':>8} {'mgr 2t':>8}"
        f" {'x 1t':>6} {'x 2t':>6} {'zeros ms':>8} {'touch ms':>8} {'max|diff|':>9}"
    )
    print(header)
    print("-" * len(header))
    cuda_rows = []
    for name, t, layout, size, compact in CASES:
        if args.quick and t > 48:
            continue
        gpu = time_case(name, t, layout, size, compact, args.repeats)
        if gpu is not None:
            cuda_rows.append((name, *gpu))
    if cuda_rows:
        print(f"\nCUDA ({torch.cuda.get_device_name()}), batch of 16, ms per sample:")
        for name, joints, limbs in cuda_rows:
            print(f"{name:<27} joints {joints:7.3f}   limbs {limbs:7.3f}")
    torch.set_num_threads(1)


if __name__ == "__main__":
    main()
