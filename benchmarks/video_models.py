"""Training cost of the RGB recognizers (swin3d_t, R(2+1)D-18) against the RGB loader.

For each model and clip shape ``(T, S x S)`` (batch 1) it reports, on CPU with 1
and 2 intra-op threads, the median over ``--repeats`` of one training step's
forward + backward (loss = cross-entropy of the logits, gradients zeroed
between steps; no optimizer step) in ms per clip, and the peak memory of that
step:

* CPU: the growth of the process's maximum resident set size
  (``resource.getrusage(RUSAGE_SELF).ru_maxrss``) over the first forward +
  backward, measured in a fresh subprocess per model and shape after the model
  is built. So it is the step's activations, gradients and allocator
  overhead on top of the weights, not counting memory the allocator reused.
* CUDA (``--device cuda``): ``torch.cuda.max_memory_allocated`` during the step
  minus the allocation before it (tensors only, no allocator cache).

It then times the training loader on a tiny SynthMG iMiGUE release with RGB
(``IMiGUEDataModule``, batch 1, ``clip_len=T``, centre crop to ``S``, no
workers; clips/s after one warm-up batch) and prints compute / loading per
clip: above 1, the model (not decoding) limits training on this machine.

    python benchmarks/video_models.py [--quick] [--repeats 5] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from mgr.data.datasets import VideoOptions
from mgr.data.synthetic import generate_synthmg
from mgr.datamodules import IMiGUEDataModule
from mgr.models.video import R2Plus1D, VideoSwin

MODELS = ("swin3d_t", "r2plus1d_18")
SHAPES = ((8, 112), (16, 224))
NUM_CLASSES = 32  # iMiGUE


def _build(name: str) -> torch.nn.Module:
    if name == "swin3d_t":
        return VideoSwin(num_classes=NUM_CLASSES, variant="t")
    return R2Plus1D(num_classes=NUM_CLASSES, depth=18)


def _max_rss_bytes() -> int:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024  # Linux reports KiB


def _measure(name: str, t: int, s: int, repeats: int, device: str, threads: tuple[int, ...]):
    """Median step ms per thread count and peak step memory (bytes), in this process."""
    torch.manual_seed(0)
    model = _build(name).to(device).train()
    x = torch.randn(1, 3, t, s, s, device=device)
    y = torch.zeros(1, dtype=torch.long, device=device)

    def step() -> None:
        model.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(
            model.forward_head(model.forward_features({"video": x})), y
        )
        loss.backward()
        if device == "cuda":
            torch.cuda.synchronize()

    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        step()
        peak = torch.cuda.max_memory_allocated() - base
    else:
        base = _max_rss_bytes()
        step()
        peak = _max_rss_bytes() - base
    times = {}
    for n in threads:
        torch.set_num_threads(n)
        step()  # warm-up at this thread count
        runs = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            step()
            runs.append(time.perf_counter() - t0)
        times[n] = 1000 * statistics.median(runs)
    return times, peak


def _child(queue: mp.Queue, *args) -> None:
    queue.put(_measure(*args))


def _measure_fresh(*args):
    """Run :func:`_measure` in a new process, so max RSS starts from this model alone."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(queue, *args))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def _loader_ms_per_clip(root: Path, t: int, s: int) -> float:
    dm = IMiGUEDataModule(
        root,
        batch_size=1,
        clip_len=t,
        modalities=["video"],
        video=VideoOptions(size=s, crop="center"),
    )
    dm.setup("fit")
    n, elapsed = 0, 0.0
    for _epoch in range(2):  # the tiny release has ~16 training clips
        it = iter(dm.train_dataloader())
        next(it)  # warm-up: first decode
        t0 = time.perf_counter()
        for batch in it:
            n += len(batch["label"])
        elapsed += time.perf_counter() - t0
    return 1000 * elapsed / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only the (8, 112x112) shape")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    args = parser.parse_args()
    shapes = SHAPES[:1] if args.quick else SHAPES
    threads = (1, 2) if args.device == "cpu" else (torch.get_num_threads(),)
    mem_kind = "max RSS growth" if args.device == "cpu" else "CUDA max allocated"

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        root = generate_synthmg(
            Path(tmp) / "imigue",
            layout="imigue",
            seed=0,
            subjects=(2, 1, 1),
            videos_per_subject=1,
            clips_per_video=8,
            video=True,
        )
        print(f"SynthMG iMiGUE release with RGB: {time.perf_counter() - t0:.1f} s to generate")
        loading = {(t, s): _loader_ms_per_clip(root, t, s) for t, s in shapes}

    print(
        f"\nTraining step (forward + backward, batch 1) on {args.device}, "
        f"median of {args.repeats}; memory = {mem_kind} over one step"
    )
    thread_cols = "".join(f"{f'ms/clip {n}t':>13}" for n in threads)
    ratio_cols = "".join(f"{f'ratio {n}t':>10}" for n in threads)
    print(f"{'model':<13}{'T x S^2':>11}{thread_cols}{'peak MiB':>10}{'load ms':>9}{ratio_cols}")
    for name in MODELS:
        for t, s in shapes:
            times, peak = _measure_fresh(name, t, s, args.repeats, args.device, threads)
            load = loading[(t, s)]
            cells = "".join(f"{times[n]:>13.0f}" for n in threads)
            ratios = "".join(f"{times[n] / load:>10.1f}" for n in threads)
            print(f"{name:<13}{f'{t} x {s}^2':>11}{cells}{peak / 2**20:>10.0f}{load:>9.1f}{ratios}")
    print("\nratio = compute ms per clip / loading ms per clip (loader: 0 workers, centre crop)")


if __name__ == "__main__":
    main()
