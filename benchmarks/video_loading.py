"""RGB clip loading: mgr (each backend, raw and prepared) vs mmaction2 vs the decode floor.

Writes its own clips (720p and 1080p; short GOP 12 and long GOP 250, x264 defaults with
B-frames; 90 frames of textured, moving, slightly noisy content), then times, per clip,
interleaved in one run (every pipeline on the same clips and frames before the next row).
Each pipeline runs in a process of its own, as in a DataLoader worker (its own decoders,
frame indices and memory allocator), and the processes take turns, never overlapping:

* ``floor``: a bare PyAV decode of exactly the frames the sampler needs: from the keyframe
  before each wanted frame up to it, no colour conversion, no resize (one thread);
* ``mgr pyav`` / ``mgr torchcodec``: :class:`mgr.data.datasets.ClipDataset` items
  (decode, crop, resize to 224 in uint8; normalisation and flip are left to the device);
* ``mm pyav`` / ``mm decord``: mmaction2 1.2's ``PyAVInit/DecordInit -> (frames) ->
  PyAVDecode/DecordDecode -> Resize -> CenterCrop`` (test) or ``Resize(-1, 256) ->
  RandomResizedCrop -> Resize(224) -> Flip`` (train) ``-> FormatShape``, when mmaction2 is
  installed (the ``openmmlab`` extra; decord when installed);
* ``mgr cache mp4`` / ``mgr cache npy``: ClipDataset reading clips prepared by
  ``mgr prepare --video`` (short side 256; all-intra H.264, or uint8 arrays).

Every pipeline gets the same frame indices: mgr's ``uniform_sample_indices`` (test mode is
index-identical to mmaction2's ``UniformSampleFrames``; training indices are drawn once per
clip and repeat and handed to every pipeline). Sampling is 8, 16 or 32 frames, test
(short side 224 + centre crop 224) or train (random-resized crop to 224 + flip). One thread
per process (torch, FFmpeg, decord). The time is the process's CPU time per clip (user +
system, all threads): on a shared machine it is far steadier than wall time, and with one
thread it is what the clip costs a DataLoader worker; wall medians are printed too.

Ratios: ``mm/mgr`` is the best mmaction2 pipeline's time over mgr's best backend (>= 1:
mgr faster); ``mgr/floor`` is mgr's best backend over the decode floor; ``cache x`` is the
best mmaction2 pipeline on raw video over mgr on its prepared cache.

    python benchmarks/video_loading.py [--clips 2] [--repeats 3] [--quick] [--workdir DIR]

mmaction2 cannot live in mgr's environment (its pins); run this in a venv that has it
(see the README's performance section), with ``PYTHONPATH`` pointing at mgr.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import av
import numpy as np
import torch

from mgr.data.cache import VideoCacheOptions, prepared_clip_path, write_video_cache
from mgr.data.datasets import ClipDataset, SkeletonTransformConfig, VideoOptions
from mgr.data.readers import video as video_module
from mgr.data.readers.common import ClipRecord
from mgr.data.readers.video import torchcodec_available, write_video
from mgr.data.transforms.pose import uniform_sample_indices

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mmaction_compat import import_mmaction

NUM_FRAMES, FPS, SIZE = 90, 30.0, 224
RESOLUTIONS = {"720p": (720, 1280), "1080p": (1080, 1920)}
GOPS = {"gop12": 12, "gop250": 250}


# ---------------------------------------------------------------------- clips
def synth_clip(height: int, width: int, seed: int) -> np.ndarray:
    """``(90, H, W, 3)`` uint8: a textured, slowly panning background, moving blobs, noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = (
        np.stack([xx / width, yy / height, 0.5 + 0.5 * np.sin(xx / 37.0) * np.cos(yy / 23.0)], -1)
        * 200
    )
    texture = rng.normal(0, 12, (height, width + 3 * NUM_FRAMES, 3)).astype(np.float32)
    out = np.empty((NUM_FRAMES, height, width, 3), np.uint8)
    radius2 = (0.08 * height) ** 2
    for t in range(NUM_FRAMES):
        frame = base + texture[:, 3 * t : 3 * t + width]
        for k in range(5):
            cx = width * (0.2 + 0.15 * k) + 40 * np.sin(t / 7 + k)
            cy = height * 0.5 + 60 * np.cos(t / 9 + k)
            frame[(xx - cx) ** 2 + (yy - cy) ** 2 < radius2] = (255 - 40 * k, 40 * k, 128)
        frame += rng.normal(0, 3, frame.shape).astype(np.float32)
        out[t] = np.clip(frame, 0, 255)
    return out


def write_clips(workdir: Path, clips: int, resolutions: dict) -> dict[tuple[str, str], list[Path]]:
    """The benchmark's videos (kept in ``workdir`` between runs)."""
    found: dict[tuple[str, str], list[Path]] = {}
    for res, (h, w) in resolutions.items():
        for c in range(clips):
            frames = None
            for gop_name, gop in GOPS.items():
                path = workdir / f"{res}_{gop_name}_{c}.mp4"
                if not path.is_file():
                    frames = synth_clip(h, w, seed=c) if frames is None else frames
                    tmp = path.with_name(f".tmp_{path.name}")
                    write_video(tmp, frames, FPS, crf=23, gop=gop)
                    tmp.replace(path)
                found.setdefault((res, gop_name), []).append(path)
    return found


def record(path: Path) -> ClipRecord:
    return ClipRecord(
        sample_id=path.stem, label=0, keypoint=None, video_id=path.stem, start=0,
        end=NUM_FRAMES - 1,
        source=str(path), video=str(path), video_start=0, video_end=NUM_FRAMES - 1,
    )  # fmt: skip


# ---------------------------------------------------------------------- pipelines
@dataclass
class Case:
    """One clip's work: its file(s), frames and mode."""

    path: Path
    indices: np.ndarray  # (L,) frame indices
    train: bool
    seed: int  # torch seed that makes mgr's dataset draw exactly `indices`
    cached: dict[str, Path]  # format -> prepared clip


def train_indices(seed: int, clip_len: int) -> np.ndarray:
    """The indices ClipDataset draws in training after ``torch.manual_seed(seed)``."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(int(torch.randint(2**62, ())))
    return uniform_sample_indices(NUM_FRAMES, clip_len, rng=rng)


class FloorDecoder:
    """Bare decode of the needed frames: keyframe before each wanted frame up to it."""

    def __init__(self) -> None:
        self.index: dict[Path, object] = {}

    def __call__(self, case: Case) -> int:
        with av.open(str(case.path)) as container:
            stream = container.streams.video[0]
            stream.thread_type, stream.thread_count = "AUTO", 1
            if case.path not in self.index:  # mgr caches its index per worker too
                self.index[case.path] = video_module._build_index(container, stream)
            index = self.index[case.path]
            rank = {int(p): i for i, p in enumerate(index.pts)}
            frames, pos, count = None, -1, 0
            for w in sorted(set(case.indices.tolist())):
                key = int(index.keyframes[np.searchsorted(index.keyframes, w, side="right") - 1])
                if frames is None or key > pos + 1:
                    container.seek(int(index.pts[key]), stream=stream, backward=True)
                    frames = container.decode(stream)
                for frame in frames:
                    pos, count = rank[frame.pts], count + 1
                    if pos >= w:
                        break
        return count


def mgr_pipeline(backend: str, cached: str | None = None) -> Callable[[Case], np.ndarray]:
    options = {}
    for train in (False, True):
        options[train] = VideoOptions(
            size=SIZE, crop="center", backend=backend, decode_threads=1,
            train_scale=(0.08, 1.0) if train else (1.0, 1.0),
        )  # fmt: skip

    def run(case: Case) -> np.ndarray:
        path = case.cached[cached] if cached else case.path
        rec = record(case.path)
        if cached:
            rec = ClipRecord(**{**rec.__dict__, "video": str(path), "video_end": None})
        config = SkeletonTransformConfig(
            clip_len=len(case.indices), normalize=False, flip_permutation=(),
            flip_prob=0.5 if case.train else 0.0,
        )  # fmt: skip
        data = ClipDataset(
            [rec], config, case.train, modalities=("video",), video=options[case.train],
            pixel_channels=None,
        )  # fmt: skip
        torch.manual_seed(case.seed)
        return data[0]["video"].numpy()  # (C, T, H, W) uint8

    return run


def old_mgr_pipeline(uint8_resize: bool) -> Callable[[Case], np.ndarray]:
    """mgr before this benchmark existed (test mode): for the ablation rows.

    ``read_frames`` (one seek, then every frame to the last wanted one, FFmpeg's default
    threads), the centre square resized through float32, normalised in the worker
    (``uint8_resize``: the same decode, the uint8 resize, normalisation left to the device).
    """
    import torch.nn.functional as F

    from mgr.data.readers.video import read_frames
    from mgr.data.transforms.video import normalize

    def run(case: Case) -> np.ndarray:
        frames = torch.from_numpy(read_frames(case.path, case.indices.tolist())).permute(0, 3, 1, 2)
        h, w = frames.shape[-2:]
        side = min(h, w)
        square = frames[..., (h - side) // 2 : (h + side) // 2, (w - side) // 2 : (w + side) // 2]
        if uint8_resize:
            return F.interpolate(square, size=(SIZE, SIZE), mode="bilinear", antialias=True)
        out = F.interpolate(square.float(), size=(SIZE, SIZE), mode="bilinear", antialias=True)
        return normalize(out.round_().clamp_(0, 255).to(torch.uint8)).numpy()

    return run


def mm_pipeline(mm, decoder: str) -> Callable[[Case], np.ndarray]:
    if decoder == "pyav":
        init, decode = mm.PyAVInit(), mm.PyAVDecode()
    else:
        init, decode = mm.DecordInit(num_threads=1), mm.DecordDecode()
    test_tail = [mm.Resize(scale=(-1, SIZE)), mm.CenterCrop(crop_size=SIZE)]
    train_tail = [
        mm.Resize(scale=(-1, 256)),
        mm.RandomResizedCrop(),
        mm.Resize(scale=(SIZE, SIZE), keep_ratio=False),
        mm.Flip(flip_ratio=0.5),
    ]
    fmt = mm.FormatShape(input_format="NCTHW")

    def run(case: Case) -> np.ndarray:
        results = init.transform({"filename": str(case.path), "start_index": 0, "modality": "RGB"})
        results.update(frame_inds=case.indices.copy(), clip_len=len(case.indices), num_clips=1)
        results = decode.transform(results)
        for step in train_tail if case.train else test_tail:
            results = step.transform(results)
        return fmt.transform(results)["imgs"]  # (1, C, T, H, W) uint8

    return run


# ---------------------------------------------------------------------- timing
def timed(fn: Callable[[Case], object], case: Case) -> tuple[float, float, object]:
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn(case)
    return (time.process_time() - cpu) * 1e3, (time.perf_counter() - wall) * 1e3, out


def make_pipeline(name: str) -> Callable[[Case], object]:
    """The pipeline called ``name`` in the table."""
    if name == "floor":
        return FloorDecoder()
    if name.startswith("mm "):
        return mm_pipeline(import_mmaction(), name.split()[1])
    if name.startswith("old"):
        return old_mgr_pipeline(uint8_resize=name == "old+u8")
    if name.startswith("mgr cache"):
        return mgr_pipeline("pyav", cached=name.split()[-1])
    return mgr_pipeline(name.split()[1])


def _worker(name: str, conn) -> None:
    """One pipeline in its own process: times every case it is sent, in order."""
    torch.set_num_threads(1)
    try:  # mmaction2 resizes with OpenCV, which would otherwise use every core
        import cv2

        cv2.setNumThreads(1)
    except ImportError:
        pass
    fn = make_pipeline(name)
    while (msg := conn.recv()) is not None:
        cases, keep = msg
        results = []
        for case in cases:
            c_ms, w_ms, out = timed(fn, case)
            results.append((c_ms, w_ms, out if keep else None))
        conn.send(results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=2, help="clips per resolution and GOP")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="720p, 8 frames only")
    parser.add_argument("--workdir", default=None, help="keep the clips here between runs")
    parser.add_argument(
        "--ablation", action="store_true", help="also time mgr's old path, step by step (test)"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    try:  # mmaction2 resizes with OpenCV, which would otherwise use every core
        import cv2

        cv2.setNumThreads(1)
    except ImportError:
        pass
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="mgr_video_loading_"))
    workdir.mkdir(parents=True, exist_ok=True)
    resolutions = {"720p": RESOLUTIONS["720p"]} if args.quick else RESOLUTIONS
    lengths = (8,) if args.quick else (8, 16, 32)
    t0 = time.perf_counter()
    clips = write_clips(workdir, args.clips, resolutions)
    print(f"clips in {workdir} ({time.perf_counter() - t0:.0f} s to write)")
    # Prepared clips (mgr prepare --video), both formats.
    cache_dirs = {fmt: workdir / f"cache_{fmt}" for fmt in ("mp4", "npy")}
    prepared: dict[Path, dict[str, Path]] = {}
    for fmt, cache in cache_dirs.items():
        options = VideoCacheOptions(format=fmt)
        records = [record(p) for paths in clips.values() for p in paths]
        write_video_cache(cache, records, options)
        for rec in records:
            prepared.setdefault(Path(rec.video), {})[fmt] = prepared_clip_path(cache, rec, options)
    sizes = {
        fmt: sum(p[fmt].stat().st_size for p in prepared.values()) / len(prepared) / 2**20
        for fmt in cache_dirs
    }

    names = ["floor", "mgr pyav"]
    if torchcodec_available():
        names.append("mgr torchcodec")
    if import_mmaction() is not None:
        names.append("mm pyav")
        try:
            import decord  # noqa: F401

            names.append("mm decord")
        except ImportError:
            pass
    if args.ablation:
        names += ["old mgr", "old+u8"]
    names += ["mgr cache mp4", "mgr cache npy"]

    rows = [
        (res, gop, length, train)
        for res in resolutions
        for gop in GOPS
        for length in lengths
        for train in ((False,) if args.ablation else (False, True))
    ]
    cpu: dict[tuple, dict[str, list[float]]] = {r: {k: [] for k in names} for r in rows}
    wall: dict[tuple, dict[str, list[float]]] = {r: {k: [] for k in names} for r in rows}
    same_frames: dict[tuple, list[float]] = {r: [] for r in rows}
    # Every pipeline in a process of its own, as in a DataLoader worker (its decoders,
    # indices and allocator to itself); the processes take turns, never overlapping.
    ctx = multiprocessing.get_context("spawn")
    conns, procs = {}, []
    warm = Case(clips[rows[0][:2]][0], np.arange(8), False, 0, prepared[clips[rows[0][:2]][0]])
    for name in names:
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_worker, args=(name, child), daemon=True)
        proc.start()
        parent.send(([warm], False))  # imports, thread pools, page cache
        conns[name] = parent
        procs.append(proc)
    for name in names:
        conns[name].recv()
    t0 = time.perf_counter()
    for repeat in range(args.repeats):
        for row in rows:
            res, gop, length, train = row
            cases = []
            for c, path in enumerate(clips[(res, gop)]):
                seed = 1000 * repeat + c
                if train:
                    indices = train_indices(seed, length)
                else:
                    indices = uniform_sample_indices(NUM_FRAMES, length, test_mode=True)
                cases.append(Case(path, indices, train, seed, prepared[path]))
            order = list(names)
            np.random.default_rng(1000 * repeat + len(cpu) + rows.index(row)).shuffle(order)
            outs = {}
            for name in order:  # no pipeline always goes first
                keep = not train and name in ("mgr pyav", "mm pyav")
                conns[name].send((cases, keep))
                results = conns[name].recv()
                for c_ms, w_ms, _ in results:
                    cpu[row][name].append(c_ms)
                    wall[row][name].append(w_ms)
                outs[name] = [out for _, _, out in results]
            if "mm pyav" in outs and outs["mm pyav"][0] is not None:  # outputs agree closely
                for a, b in zip(outs["mgr pyav"], outs["mm pyav"], strict=True):
                    diff = a.astype(np.float32) - b[0].astype(np.float32)
                    same_frames[row].append(float(np.abs(diff).mean()))
    for name in names:
        conns[name].send(None)
    for proc in procs:
        proc.join()
    elapsed = time.perf_counter() - t0
    report(rows, names, cpu, wall, same_frames, sizes, elapsed, args)


def report(rows, pipelines, cpu, wall, same_frames, sizes, elapsed, args) -> None:
    med = {r: {k: statistics.median(v) for k, v in cpu[r].items()} for r in rows}
    wmed = {r: {k: statistics.median(v) for k, v in wall[r].items()} for r in rows}
    names = [n for n in pipelines if n != "floor"]
    mm_names = [n for n in names if n.startswith("mm ")]
    mgr_raw = [n for n in names if n.startswith("mgr ") and "cache" not in n]
    names = [n for n in names if not n.startswith("old")] + [
        n for n in names if n.startswith("old")
    ]
    print(
        f"\ntorch {torch.__version__}, PyAV {av.__version__}, torchcodec "
        f"{'yes' if torchcodec_available() else 'no'}, mmaction2 {'yes' if mm_names else 'no'}; "
        f"{args.clips} clips x {args.repeats} repeats per row, {elapsed:.0f} s, load average "
        f"{os.getloadavg()[0]:.1f} at the end"
    )
    print("CPU ms per clip (median); 90-frame clips, one thread; test = short side 224 +")
    print("centre crop, train = random-resized crop 224 + flip; cache = mgr prepare --video")
    print(f"(short side 256; mp4 all-intra {sizes['mp4']:.2f} MiB/clip, npy {sizes['npy']:.1f})")
    head = f"{'res':<6}{'GOP':<7}{'T':>3} {'mode':<6}{'floor':>7}"
    head += "".join(f"{n:>{max(len(n), 7) + 1}}" for n in names)
    head += f"{'mm/mgr':>8}{'mgr/floor':>10}{'cache x':>8}{'|Δ| mm':>8}"
    print(head)
    print("-" * len(head))
    worst = {"mm/mgr": np.inf, "mgr/floor": 0.0, "cache x": np.inf}
    for row in rows:
        res, gop, length, train = row
        m = med[row]
        line = f"{res:<6}{gop:<7}{length:>3} {'train' if train else 'test':<6}{m['floor']:>7.1f}"
        line += "".join(f"{m[n]:>{max(len(n), 7) + 1}.1f}" for n in names)
        best_mgr = min(m[n] for n in mgr_raw)
        best_cache = min(m["mgr cache mp4"], m["mgr cache npy"])
        vs_floor = best_mgr / m["floor"]
        worst["mgr/floor"] = max(worst["mgr/floor"], vs_floor)
        if mm_names:
            best_mm = min(m[n] for n in mm_names)
            worst["mm/mgr"] = min(worst["mm/mgr"], best_mm / best_mgr)
            worst["cache x"] = min(worst["cache x"], best_mm / best_cache)
            line += f"{best_mm / best_mgr:>8.2f}{vs_floor:>10.2f}{best_mm / best_cache:>8.1f}"
        else:
            line += f"{'':>8}{vs_floor:>10.2f}{'':>8}"
        diffs = same_frames[row]
        line += f"{statistics.median(diffs):>8.2f}" if diffs else f"{'':>8}"
        print(line)
    print(f"\nworst rows: {', '.join(f'{k} {v:.2f}' for k, v in worst.items() if np.isfinite(v))}")
    print("|Δ| mm: mean |mgr - mmaction2| of the test-mode uint8 clips (grey levels): the same")
    print("frames through other resize kernels (a frame off by one differs by far more).")
    # Noise: spread of the repeats of one pipeline on the same clip.
    spread = [
        (max(v) - min(v)) / statistics.median(v)
        for r in rows
        for v in cpu[r].values()
        if len(v) > 1 and statistics.median(v) > 0
    ]
    if spread:
        print(
            f"noise: (max - min) / median over the {args.clips * args.repeats} timings of a "
            f"cell: median {statistics.median(spread):.0%}, 90th percentile "
            f"{np.percentile(spread, 90):.0%}"
        )
    print("\nwall ms per clip (median), same runs:")
    for row in rows:
        res, gop, length, train = row
        line = f"{res:<6}{gop:<7}{length:>3} {'train' if train else 'test':<6}"
        line += f"{wmed[row]['floor']:>7.1f}"
        line += "".join(f"{wmed[row][n]:>{max(len(n), 7) + 1}.1f}" for n in names)
        print(line)
    batch = 8 * 3 * 16 * SIZE * SIZE
    print(
        f"\nbytes per batch (8 x 3 x 16 x {SIZE}^2, Video Swin-T): uint8 {batch / 2**20:.1f} MiB "
        f"through the worker queue and the host-to-device copy (float32 was "
        f"{4 * batch / 2**20:.1f} MiB); the float copy exists only on the device"
    )


if __name__ == "__main__":
    main()
