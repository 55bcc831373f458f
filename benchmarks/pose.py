"""Per-frame cost of ``mgr pose`` on CPU with the tiny test models (tests/pose_models.py).

The tiny models compute almost nothing, so the numbers are mgr's own overhead around
the networks: decoding the video twice, the detector's letterbox, tracking, the
person crop (bilinear resampling) and SimCC decoding, and onnxruntime's call cost.
A real model adds its own inference time on top (see the README for the published
costs of RTMW / DWPose and the YOLOX / RTMDet detectors).

    PYTHONPATH=. python benchmarks/pose.py [--frames 60] [--repeats 3]

Prints one row per frame size: medians over ``--repeats`` interleaved runs.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from mgr.data.pose_estimation.models import PersonDetector, WholeBodyPoseModel
from mgr.data.pose_estimation.run import PoseSettings, estimate_video_pose, iter_frames
from mgr.data.readers.video import write_video
from tests.pose_models import export_detector, export_template_pose


def _video(path: Path, size: tuple[int, int], frames: int) -> Path:
    rng = np.random.default_rng(0)
    h, w = size
    base = rng.integers(0, 256, (h // 8 + 1, w // 8 + 1, 3), dtype=np.uint8)
    img = base.repeat(8, 0).repeat(8, 1)[:h, :w]
    video = np.stack([np.roll(img, t, axis=1) for t in range(frames)])
    write_video(path, video, fps=30.0, preset="veryfast")
    return path


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--frames", type=int, default=60)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="onnxruntime and torch threads")
    a = p.parse_args()
    import torch

    torch.set_num_threads(a.threads)
    sizes = [(180, 320), (720, 1280)]
    tmp = Path(tempfile.mkdtemp())
    setups = {}
    for h, w in sizes:
        box = [w * 0.35, h * 0.1, w * 0.65, h * 0.95]  # one person, centre of the frame
        det = export_detector(tmp / f"det_{h}.onnx", np.array([box]), (h, w), [0.9])
        setups[(h, w)] = (
            _video(tmp / f"video_{h}.mp4", (h, w), a.frames),
            PersonDetector(det, threads=a.threads),
            WholeBodyPoseModel(export_template_pose(tmp / "pose.onnx"), threads=a.threads),
            np.array([box]),
        )
    times: dict[tuple[int, int], dict[str, list[float]]] = {
        s: {"decode": [], "det": [], "pose": [], "total": []} for s in sizes
    }
    for _ in range(a.repeats):
        for size in sizes:  # interleaved: the machine's noise hits every size alike
            video, det, pose, box = setups[size]
            t0 = time.perf_counter()
            frames = np.concatenate(list(iter_frames(video, 8)))
            t1 = time.perf_counter()
            for i in range(0, len(frames), 8):
                det(frames[i : i + 8])
            t2 = time.perf_counter()
            for i in range(len(frames)):
                pose(frames[i : i + 1], [0], box)
            t3 = time.perf_counter()
            estimate_video_pose(video, det, pose, PoseSettings(), batch_size=8, progress=False)
            t4 = time.perf_counter()
            n = len(frames)
            times[size]["decode"].append((t1 - t0) / n)
            times[size]["det"].append((t2 - t1) / n)
            times[size]["pose"].append((t3 - t2) / n)
            times[size]["total"].append((t4 - t3) / n)
    print(f"mgr pose, tiny ONNX models, CPU, {a.threads} thread(s), {a.frames} frames, "
          f"median of {a.repeats}")  # fmt: skip
    print("| frame size | decode (1 pass) | detector (batch 8) | pose (1 person) | "
          "end to end (2 passes) |")  # fmt: skip
    print("| --- | --- | --- | --- | --- |")
    for (h, w), t in times.items():
        ms = {k: 1000 * statistics.median(v) for k, v in t.items()}
        print(
            f"| {w}x{h} | {ms['decode']:.2f} ms | {ms['det']:.2f} ms | {ms['pose']:.2f} ms | "
            f"{ms['total']:.2f} ms/frame |"
        )


if __name__ == "__main__":
    main()
