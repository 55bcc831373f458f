"""Video decoding and encoding with PyAV (torchvision no longer decodes video).

Frames are addressed by their 0-based position in decoding order, which is what a full
sequential decode (:func:`read_video`) yields; every reader here returns exactly those frames.
Arrays are ``uint8`` RGB with shape ``(N, H, W, 3)``.

Random access (:func:`read_frames`) decodes sequentially from the start when the wanted frames
are near the start, and otherwise seeks to the keyframe before the first wanted frame and
decodes forward from there, mapping each frame's timestamp back to its index. It stops as
soon as the last wanted frame is decoded, so sampling a short clip out of a long video costs
about one group of pictures plus the clip.

The training path (:func:`decode_frames`) goes further and decodes only the groups of
pictures that hold a wanted frame: from the keyframe before each wanted frame up to it,
skipping every group in between (the *decode floor* of ``benchmarks/video_loading.py``). It
has two backends: PyAV (bundled FFmpeg; a keyframe index from demuxing, cached per process)
and ``torchcodec`` (the system's FFmpeg libraries, exact seek mode; decoders kept open per
process). Both return the frames :func:`read_video` returns, and both leave every error
report to :func:`read_frames`, which they fall back to.
"""

from __future__ import annotations

import functools
import math
import os
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import av
import av.error
import numpy as np
import torch
from torch import Tensor

from mgr.data.transforms.pose import uniform_sample_indices

from .common import DataFormatError, PathLike, _require_file

__all__ = [
    "SEEK_THRESHOLD",
    "VideoBackend",
    "VideoDecodeError",
    "VideoInfo",
    "decode_frames",
    "decode_frames_each",
    "probe_video",
    "read_frames",
    "read_video",
    "resolve_backend",
    "sample_frames",
    "torchcodec_available",
    "write_video",
]

VideoBackend = Literal["auto", "pyav", "torchcodec"]

#: :func:`read_frames` seeks when its first wanted frame is at least this many frames in;
#: closer to the start a plain decode is as cheap as a seek plus one group of pictures.
SEEK_THRESHOLD = 16


class VideoDecodeError(DataFormatError):
    """A video file cannot be read: not a video, no video stream, no frames, truncated or corrupt.

    The message always names the file and, where it applies, the frame index.
    """


@dataclass(frozen=True)
class VideoInfo:
    """What a video's header says about its first video stream.

    Attributes:
        path: the file.
        num_frames: number of frames ``T`` (see :func:`probe_video` for how it is counted).
        fps: average frame rate (frames per second); ``0.0`` if the file does not give one.
        height: frame height ``H`` in pixels.
        width: frame width ``W`` in pixels.
    """

    path: str
    num_frames: int
    fps: float
    height: int
    width: int


def _open(path: Path) -> av.container.InputContainer:
    """Open ``path`` for reading, turning FFmpeg's errors into :class:`VideoDecodeError`."""
    _require_file(path)
    try:
        return av.open(str(path))
    except av.error.FFmpegError as err:
        raise VideoDecodeError(f"{path}: not a readable video file ({err})") from err


def _video_stream(container: av.container.InputContainer, path: Path) -> av.VideoStream:
    if not container.streams.video:
        raise VideoDecodeError(f"{path}: the file has no video stream")
    stream = container.streams.video[0]
    # Frame threading only changes how fast frames come out, never which or in what order.
    stream.thread_type = "AUTO"
    return stream


def _frame_rate(stream: av.VideoStream) -> Fraction | None:
    rate = stream.average_rate or stream.guessed_rate
    return Fraction(rate) if rate else None


def _count_frames(
    container: av.container.InputContainer, stream: av.VideoStream, path: Path
) -> int:
    """Frames of ``stream``: the header's count, else the number of demuxed packets."""
    if stream.frames > 0:
        return int(stream.frames)
    # Containers such as Matroska/WebM do not store a frame count. One packet holds one frame
    # for every video codec we meet; demuxing reads the file but decodes nothing, so it is
    # cheap. Flush packets (no data) carry no frame.
    try:
        return sum(1 for packet in container.demux(stream) if packet.size > 0)
    except av.error.FFmpegError as err:
        raise VideoDecodeError(f"{path}: corrupt file, demuxing failed ({err})") from err


def probe_video(path: PathLike) -> VideoInfo:
    """Read a video's frame count, frame rate and size without decoding it.

    The frame count is the stream header's (``stream.frames``, e.g. MP4's sample table) when
    the container stores one; otherwise (Matroska, WebM, ...) the packets of the video
    stream are counted by demuxing the whole file, still without decoding. Either way it is
    what the container claims: a file cut short after its header was written (an MP4 with
    the index at the front) can claim more frames than decode, which :func:`read_frames`
    reports when it reaches the missing frame.

    Args:
        path: the video file.

    Returns:
        The first video stream's :class:`VideoInfo`.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        VideoDecodeError: naming the file, if it is not a video, has no video stream or
            has zero frames.
    """
    path = Path(path)
    with _open(path) as container:
        stream = _video_stream(container, path)
        rate = _frame_rate(stream)
        height, width = stream.codec_context.height, stream.codec_context.width
        num_frames = _count_frames(container, stream, path)
    if num_frames <= 0:
        raise VideoDecodeError(f"{path}: the video stream has zero frames")
    return VideoInfo(
        path=str(path),
        num_frames=num_frames,
        fps=float(rate) if rate is not None else 0.0,
        height=int(height),
        width=int(width),
    )


def _decode(
    container: av.container.InputContainer,
    stream: av.VideoStream,
    path: Path,
    first: int,
    keep_pts: set[int] | None = None,
) -> Iterator[av.VideoFrame]:
    """Decoded frames of ``stream``; FFmpeg errors name the file and the frame reached.

    ``first`` is the index of the first frame this decode should yield (for messages only).
    With ``keep_pts``, packets of other frames are decoded with ``skip_frame = NONREF``:
    the decoder drops them if no other frame refers to them (x264's default non-reference
    B-frames) and decodes them as usual otherwise, so every frame in ``keep_pts`` and every
    frame they depend on comes out exactly as in a full decode; only unwanted, unreferenced
    frames are missing from the output.
    """
    count = first
    codec = stream.codec_context
    try:
        for packet in container.demux(stream):
            if keep_pts is not None:
                keep = packet.pts is None or packet.is_keyframe or packet.pts in keep_pts
                codec.skip_frame = "DEFAULT" if keep else "NONREF"
            for frame in packet.decode():
                count += 1
                yield frame
    except av.error.FFmpegError as err:
        raise VideoDecodeError(
            f"{path}: corrupt or truncated video, decoding failed near frame {count} ({err})"
        ) from err


#: ``(top, left, height, width)`` of a region of a frame, in pixels.
Box = tuple[int, int, int, int]
_SWS_THREADS = [True]  # whether this PyAV's reformat takes ``threads`` (older ones do not)


def check_box(box: Sequence[int], height: int, width: int, path: PathLike) -> Box:
    """``box`` as ints, if it is a non-empty region inside a ``height x width`` frame.

    Raises:
        ValueError: naming ``path``, if the region is empty or reaches outside the frame.
    """
    top, left, h, w = (int(v) for v in box)
    if h <= 0 or w <= 0 or top < 0 or left < 0 or top + h > height or left + w > width:
        raise ValueError(
            f"{path}: crop box (top={top}, left={left}, height={h}, width={w}) is not inside "
            f"the {height}x{width} (HxW) frame"
        )
    return top, left, h, w


def _to_rgb(frame: av.VideoFrame, threads: int) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB of ``frame``, converted by swscale with ``threads`` threads."""
    if _SWS_THREADS[0]:
        try:
            return frame.to_ndarray(format="rgb24", threads=threads)
        except TypeError:  # an older PyAV: swscale's own default
            _SWS_THREADS[0] = False
    return frame.to_ndarray(format="rgb24")


def _to_rgb_box(frame: av.VideoFrame, threads: int, box: Box | None) -> np.ndarray:
    """``(h, w, 3)`` uint8 RGB of ``frame`` inside ``box``, converting only that region.

    For 4:2:0 frames (what H.264 and HEVC videos almost always hold) the planes are cut to
    the smallest even-aligned region holding the box (one chroma sample covers 2x2 pixels)
    and only that is converted: swscale's unscaled YUV->RGB is per pixel, so the result is
    bit-identical to converting the whole frame and cropping (tested), at the cost of the
    box's area (the centred square of a 16:9 frame is 56 % of it). Other formats are
    converted whole and cropped.
    """
    full = (0, 0, frame.height, frame.width)
    if box is None or tuple(box) == full:
        return _to_rgb(frame, threads)
    top, left, height, width = box
    t0, l0 = top - top % 2, left - left % 2
    h0 = height + top - t0 + (height + top - t0) % 2
    w0 = width + left - l0 + (width + left - l0) % 2
    if frame.format.name in ("yuv420p", "yuvj420p") and t0 + h0 <= full[2] and l0 + w0 <= full[3]:
        try:
            planes = []
            for k, plane in enumerate(frame.planes):
                step = 1 if k == 0 else 2
                rows = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)
                cut = rows[t0 // step : (t0 + h0) // step, l0 // step : (l0 + w0) // step]
                planes.append(cut.ravel())
            region = av.VideoFrame.from_numpy_buffer(
                np.concatenate(planes).reshape(h0 * 3 // 2, w0), format=frame.format.name
            )
            # The conversion matrix and range come from these tags (BT.709, full range).
            region.colorspace, region.color_range = frame.colorspace, frame.color_range
            rgb = _to_rgb(region, threads)
            return rgb[top - t0 : top - t0 + height, left - l0 : left - l0 + width]
        except (AttributeError, TypeError, ValueError):  # an older PyAV: convert it whole
            pass
    return _to_rgb(frame, threads)[top : top + height, left : left + width]


def _collect_sequential(
    container: av.container.InputContainer,
    stream: av.VideoStream,
    path: Path,
    wanted: set[int],
    out: dict[int, np.ndarray],
) -> int:
    """Decode from the start, keeping frames whose position is in ``wanted``.

    Returns:
        The number of frames decoded (it stops at ``max(wanted)``).
    """
    last = max(wanted)
    decoded = 0
    for index, frame in enumerate(_decode(container, stream, path, 0)):
        decoded = index + 1
        if index in wanted:
            out[index] = frame.to_ndarray(format="rgb24")
        if index >= last:
            break
    return decoded


def _collect_seek(
    container: av.container.InputContainer,
    stream: av.VideoStream,
    path: Path,
    wanted: set[int],
    out: dict[int, np.ndarray],
    rate: Fraction,
) -> int | None:
    """Seek to the keyframe before ``min(wanted)`` and decode forward to ``max(wanted)``.

    A frame's index is ``round((pts - start_pts) * time_base * fps)``, which equals its
    position in a full decode for constant-frame-rate streams.

    Returns:
        One past the index of the last frame decoded (``0``: none decoded), or ``None``
        (having stored nothing) when timestamps cannot place the frames (no pts, or the seek
        landed after the first wanted frame), so that the caller falls back to a sequential
        decode.
    """
    time_base = stream.time_base
    if time_base is None:
        return None
    start_pts = stream.start_time or 0
    first, last = min(wanted), max(wanted)
    # Aim at the wanted frame's own timestamp; backward=True then lands on the keyframe at or
    # before it, from which every later frame decodes correctly.
    target = start_pts + math.floor(Fraction(first) / rate / time_base)
    try:
        container.seek(target, stream=stream, backward=True, any_frame=False)
    except av.error.FFmpegError:
        return None
    found: dict[int, np.ndarray] = {}
    decoded: int | None = None
    for frame in _decode(container, stream, path, first):
        if frame.pts is None:
            return None
        index = round((frame.pts - start_pts) * time_base * rate)
        if decoded is None and index > first:
            return None  # the seek overshot: this container's index cannot be trusted
        decoded = index + 1
        if index in wanted:
            found[index] = frame.to_ndarray(format="rgb24")
        if index >= last:
            break
    out.update(found)
    return 0 if decoded is None else decoded


def _check_indices(indices: Sequence[int], num_frames: int, path: Path) -> list[int]:
    checked = []
    for index in indices:
        value = int(index)
        if value != index:
            raise ValueError(f"{path}: frame indices must be integers, got {index!r}")
        if value < 0 or (num_frames > 0 and value >= num_frames):
            raise VideoDecodeError(
                f"{path}: frame index {value} is out of range; the video has "
                f"{num_frames} frames (0..{num_frames - 1})"
            )
        checked.append(value)
    return checked


def read_frames(
    path: PathLike, indices: Sequence[int], *, seek_threshold: int = SEEK_THRESHOLD
) -> np.ndarray:
    """Decode the frames at the given 0-based indices, frame-accurately.

    Indices may be unsorted and repeated; the result follows their order. When the first
    wanted frame is fewer than ``seek_threshold`` frames in, the file is decoded from the
    start; otherwise it seeks to the keyframe before the first wanted frame and decodes
    forward, computing each frame's index from its timestamp. Both stop at the last wanted
    frame and return the same frames as :func:`read_video`. If the timestamps cannot place
    the frames (no pts, no frame rate, or a seek that lands too late) the file is decoded
    from the start instead. Timestamps map to indices exactly for constant-frame-rate
    files (what cameras and encoders write for these datasets); for a variable-frame-rate
    file pass a huge ``seek_threshold`` to always count frames from the start.

    Args:
        path: the video file.
        indices: ``(N,)`` frame indices in ``[0, num_frames)``.
        seek_threshold: first wanted index from which to seek; ``0`` always seeks, a huge
            value never does.

    Returns:
        ``(N, H, W, 3)`` uint8 RGB frames.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        VideoDecodeError: naming the file, for an unreadable file, an index out of range
            (with the frame count), or a frame the file ends before (truncated or corrupt,
            with the missing index).
    """
    path = Path(path)
    out: dict[int, np.ndarray] = {}
    with _open(path) as container:
        stream = _video_stream(container, path)
        height, width = stream.codec_context.height, stream.codec_context.width
        # 0 means "unknown" (no count in the header); the decode then finds the end.
        header_frames = max(int(stream.frames), 0)
        order = _check_indices(indices, header_frames, path)
        if not order:
            return np.zeros((0, height, width, 3), dtype=np.uint8)
        wanted = set(order)
        rate = _frame_rate(stream)
        decoded = None
        if min(wanted) >= seek_threshold and rate is not None:
            decoded = _collect_seek(container, stream, path, wanted, out, rate)
    if decoded is None:
        # A fresh container, so nothing from a failed seek attempt lingers in the decoder.
        with _open(path) as container:
            stream = _video_stream(container, path)
            decoded = _collect_sequential(container, stream, path, wanted, out)
    missing = sorted(wanted - out.keys())
    if missing and header_frames == 0 and decoded > 0:
        raise VideoDecodeError(
            f"{path}: frame index {missing[0]} is out of range; the video has "
            f"{decoded} frames (0..{decoded - 1})"
        )
    if missing:
        ended = f"after frame {decoded - 1}" if decoded > 0 else "before its first frame"
        claim = f"the header claims {header_frames}" if header_frames else "no frame count"
        raise VideoDecodeError(
            f"{path}: truncated or corrupt video, frame {missing[0]} is missing: decoding "
            f"ended {ended} ({claim})"
        )
    return np.stack([out[i] for i in order])


def read_video(path: PathLike) -> np.ndarray:
    """Decode a whole video (a reference for tests and a convenience for short clips).

    Args:
        path: the video file.

    Returns:
        ``(T, H, W, 3)`` uint8 RGB frames, in decoding order.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        VideoDecodeError: naming the file, for an unreadable or corrupt file or zero frames.
    """
    path = Path(path)
    with _open(path) as container:
        stream = _video_stream(container, path)
        frames = [frame.to_ndarray(format="rgb24") for frame in _decode(container, stream, path, 0)]
    if not frames:
        raise VideoDecodeError(f"{path}: the video stream has zero decodable frames")
    return np.stack(frames)


def sample_frames(
    path: PathLike,
    num_frames: int,
    *,
    start: int = 0,
    end: int | None = None,
    train: bool = False,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Uniformly sample ``num_frames`` frames of a clip (PoseC3D's ``UniformSampleFrames``).

    Indices come from :func:`mgr.data.transforms.pose.uniform_sample_indices` over the
    inclusive range ``[start, end]``, so video and skeleton are sampled the same way: a
    random frame per segment in training, a fixed-seed draw at test time; shorter clips loop.

    Args:
        path: the video file (a per-clip file, or a long video holding the clip).
        num_frames: frames to sample.
        start: first frame of the clip (0-based).
        end: last frame of the clip (inclusive); ``None``: the video's last frame (found
            by :func:`probe_video`, which opens the file once more).
        train: use the random training rule instead of the deterministic test rule.
        rng: random generator for training (a fresh one if ``None``).

    Returns:
        ``(num_frames, H, W, 3)`` uint8 RGB frames.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if ``start < 0`` or ``end < start``.
        VideoDecodeError: naming the file, for an unreadable file or a range past its end.
    """
    if end is None:
        end = probe_video(path).num_frames - 1
    if start < 0 or end < start:
        raise ValueError(f"{path}: bad frame range start={start}, end={end} (inclusive)")
    offsets = uniform_sample_indices(end - start + 1, num_frames, test_mode=not train, rng=rng)
    return read_frames(path, (offsets + start).tolist())


def write_video(
    path: PathLike,
    frames: np.ndarray,
    fps: float = 30.0,
    *,
    codec: str = "libx264",
    crf: int = 18,
    qscale: int = 2,
    gop: int | None = None,
    faststart: bool = False,
    preset: str | None = None,
) -> None:
    """Encode RGB frames as an H.264 (or MPEG-4 part 2) video in yuv420p.

    The container follows the file suffix (``.mp4``; ``.mkv`` also works). If the FFmpeg
    build lacks ``libx264``, ``mpeg4`` is used instead.

    Args:
        path: output file (overwritten).
        frames: ``(T, H, W, 3)`` uint8 RGB frames, ``T >= 1``; ``H`` and ``W`` must be even
            (yuv420p stores chroma at half resolution).
        fps: frame rate.
        codec: FFmpeg encoder name.
        crf: libx264 constant rate factor (0 lossless luma ... 51 worst; 18 looks lossless).
        qscale: quantiser of the other encoders (``mpeg4``: 1 best ... 31 worst).
        gop: maximum distance between keyframes; ``None``: the encoder's default.
        faststart: put the MP4 index (``moov``) before the data, as streamed files do.
        preset: libx264 speed/size trade-off (``"ultrafast"`` ... ``"veryslow"``);
            ``None``: the encoder's default (``"medium"``).

    Raises:
        ValueError: for a wrong shape or dtype, odd ``H``/``W``, no frames or ``fps <= 0``.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(
            f"{path}: frames must be uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}"
        )
    num, height, width, _ = frames.shape
    if num == 0:
        raise ValueError(f"{path}: no frames to write")
    if height % 2 or width % 2:
        raise ValueError(
            f"{path}: frame size {height}x{width} (HxW) must be even for yuv420p; crop or pad it"
        )
    if not fps > 0:
        raise ValueError(f"{path}: fps must be positive, got {fps}")
    if codec == "libx264" and codec not in av.codecs_available:
        codec = "mpeg4"
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", options=options) as container:
        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1_000_000))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if gop is not None:
            stream.codec_context.gop_size = gop
        if codec == "libx264":
            stream.options = {"crf": str(crf), **({"preset": preset} if preset else {})}
        else:
            # ffmpeg's ``-q:v``: a fixed quantiser, given in lambda units (FF_QP2LAMBDA = 118).
            stream.options = {"flags": "+qscale", "global_quality": str(qscale * 118)}
        for image in frames:
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


# ---------------------------------------------------------------------- the training path
@dataclass(frozen=True)
class _FrameIndex:
    """Presentation order of a video stream, from its packets (no decoding).

    Attributes:
        pts: ``(T,)`` sorted presentation timestamps; frame ``i`` has ``pts[i]``.
        keyframes: sorted indices of the frames that start a group of pictures.
    """

    pts: np.ndarray
    keyframes: np.ndarray


#: Per-process caches (a DataLoader worker fills its own): frame indices by file, and
#: open torchcodec decoders. Keyed by path, size and mtime, so a rewritten file is re-read.
_INDEX_CACHE: OrderedDict[tuple, _FrameIndex | None] = OrderedDict()
_DECODER_CACHE: OrderedDict[tuple, Any] = OrderedDict()
_CACHE_PID = [os.getpid()]
_INHERITED_DECODERS: list[OrderedDict] = []
_INDEX_CACHE_SIZE = 4096
_DECODER_CACHE_SIZE = 8
#: Frames torchcodec decodes per call when each is transformed (``decode_frames_each``).
_TORCHCODEC_CHUNK = 4


def _cache_key(path: Path, *extra: object) -> tuple:
    if _CACHE_PID[0] != os.getpid():  # a forked worker: never reuse the parent's decoders
        # ... nor destroy them: a decoder's destructor can wait on a lock that one of the
        # parent's threads held at fork time (a deadlock seen with torchcodec). The copy
        # keeps them alive until the worker ends (os._exit: no destructors run).
        _INHERITED_DECODERS.append(_DECODER_CACHE.copy())
        _DECODER_CACHE.clear()
        _CACHE_PID[0] = os.getpid()
    stat = path.stat()
    return (str(path), stat.st_size, stat.st_mtime_ns, *extra)


def _lru_put(cache: OrderedDict, key: tuple, value: Any, size: int) -> None:
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > size:
        cache.popitem(last=False)


def _build_index(
    container: av.container.InputContainer, stream: av.VideoStream
) -> _FrameIndex | None:
    """Demux every packet once; ``None`` if timestamps cannot order the frames."""
    pts, key = [], []
    try:
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            if packet.pts is None:
                return None
            pts.append(int(packet.pts))
            key.append(bool(packet.is_keyframe))
    except av.error.FFmpegError:
        return None
    if not pts:
        return None
    pts_arr = np.asarray(pts, dtype=np.int64)
    order = np.argsort(pts_arr, kind="stable")
    sorted_pts = pts_arr[order]
    if np.any(np.diff(sorted_pts) <= 0):  # repeated timestamps: no unique order
        return None
    keyframes = np.flatnonzero(np.asarray(key)[order])
    if len(keyframes) == 0 or keyframes[0] != 0:
        return None
    return _FrameIndex(pts=sorted_pts, keyframes=keyframes)


def _collect_groups(
    container: av.container.InputContainer,
    stream: av.VideoStream,
    path: Path,
    index: _FrameIndex,
    wanted: list[int],
    convert: Callable[[np.ndarray], Any],
    threads: int,
    box: Callable[[int, int], Box] | None = None,
) -> dict[int, Any] | None:
    """Decode only the groups of pictures holding ``wanted`` (sorted, unique) frames.

    Inside a group, unwanted frames that no other frame refers to are not decoded at all
    (``skip_frame``; a fifth to two fifths of the decode time on x264 clips), and only the
    wanted frames are converted to RGB, with ``threads`` swscale threads (``0``: auto),
    and of them only the region ``box(H, W)`` (the whole frame without ``box``).

    Returns:
        index -> ``convert`` of its ``(h, w, 3)`` RGB frame (region), or ``None`` when the
        decoder's output does not follow the index (an overshooting seek, unknown
        timestamps), for a fallback.
    """
    rank = {int(p): i for i, p in enumerate(index.pts)}
    targets = set(wanted)
    keep_pts = {int(index.pts[w]) for w in wanted}
    out: dict[int, Any] = {}
    frames: Iterator[av.VideoFrame] | None = None
    pos = -1  # index of the last frame the decoder gave
    for w in wanted:
        key = int(index.keyframes[np.searchsorted(index.keyframes, w, side="right") - 1])
        if frames is None or key > pos + 1:
            # Jump over every group without a wanted frame.
            container.seek(int(index.pts[key]), stream=stream, backward=True, any_frame=False)
            frames, pos = _decode(container, stream, path, key, keep_pts), -1
        for frame in frames:
            i = rank.get(frame.pts) if frame.pts is not None else None
            if i is None or (pos < 0 and i > key):
                return None  # not a frame of the index, or the seek landed too late
            pos = i
            if i in targets:
                region = None if box is None else box(frame.height, frame.width)
                out[i] = convert(_to_rgb_box(frame, threads, region))
            if i >= w:
                break
        if w not in out:
            return None
    return out


def _decode_pyav(
    path: Path,
    wanted: list[int],
    threads: int,
    convert: Callable[[np.ndarray], Any],
    box: Callable[[int, int], Box] | None = None,
) -> list[Any] | None:
    with _open(path) as container:
        stream = container.streams.video[0] if container.streams.video else None
        if stream is None:
            return None
        stream.thread_type = "AUTO"
        stream.thread_count = threads
        key = _cache_key(path)
        if key in _INDEX_CACHE:
            index = _INDEX_CACHE[key]
        else:
            index = _build_index(container, stream)
            _lru_put(_INDEX_CACHE, key, index, _INDEX_CACHE_SIZE)
        if index is None or wanted[-1] >= len(index.pts):
            return None
        try:
            found = _collect_groups(container, stream, path, index, wanted, convert, threads, box)
        except (av.error.FFmpegError, VideoDecodeError):
            return None
        return None if found is None else [found[i] for i in wanted]


@functools.cache
def torchcodec_available() -> bool:
    """Whether ``torchcodec`` imports and finds the system's FFmpeg libraries."""
    try:
        from torchcodec.decoders import VideoDecoder  # noqa: F401
    except Exception:  # not installed, or no FFmpeg 4-9 shared libraries on the machine
        return False
    return True


def resolve_backend(backend: VideoBackend) -> Literal["pyav", "torchcodec"]:
    """The backend ``auto`` stands for here: torchcodec when it loads, else PyAV.

    Raises:
        ValueError: for an unknown name, or ``"torchcodec"`` where it does not load.
    """
    if backend == "auto":
        return "torchcodec" if torchcodec_available() else "pyav"
    if backend == "torchcodec" and not torchcodec_available():
        raise ValueError(
            "video backend 'torchcodec' does not load here: install torchcodec and the "
            "system's FFmpeg shared libraries (apt-get install ffmpeg), or use 'pyav'"
        )
    if backend not in ("pyav", "torchcodec"):
        raise ValueError(f"video backend must be auto, pyav or torchcodec, got {backend!r}")
    return backend


def _decode_torchcodec(
    path: Path, wanted: list[int], threads: int, convert: Callable[[np.ndarray], Any] | None
) -> list[Any] | np.ndarray | None:
    """The ``wanted`` (sorted, unique) frames, or ``None`` for a fallback.

    Without ``convert`` an ``(N, H, W, 3)`` array, else the list of ``convert`` of each
    ``(H, W, 3)`` frame.
    """
    from torchcodec.decoders import VideoDecoder

    key = _cache_key(path, threads)
    try:
        decoder = _DECODER_CACHE.get(key)
        if decoder is None:
            decoder = VideoDecoder(str(path), seek_mode="exact", num_ffmpeg_threads=threads)
            _lru_put(_DECODER_CACHE, key, decoder, _DECODER_CACHE_SIZE)
        if wanted[-1] >= len(decoder):
            return None
        if convert is None:
            # (N, C, H, W) uint8 in the order asked for; exact mode decodes each needed
            # group once.
            return decoder.get_frames_at(wanted).data.permute(0, 2, 3, 1).numpy()
        # A few frames at a time, each converted while it is in cache: never the whole
        # clip at full resolution in memory (32 1080p frames are 190 MiB). The decoder
        # continues from where it stopped when the next frames lie ahead in its group.
        out = []
        for k in range(0, len(wanted), _TORCHCODEC_CHUNK):
            batch = decoder.get_frames_at(wanted[k : k + _TORCHCODEC_CHUNK]).data
            out.extend(convert(frame.permute(1, 2, 0).numpy()) for frame in batch)
        return out
    except Exception:  # corrupt, truncated, ...: read_frames reports it properly
        _DECODER_CACHE.pop(key, None)
        return None


def _default_threads() -> int:
    """Decoding threads: 1 in a DataLoader worker (workers are the parallelism), else auto."""
    from torch.utils.data import get_worker_info

    return 1 if get_worker_info() is not None else 0


def decode_frames(
    path: PathLike,
    indices: Sequence[int],
    *,
    backend: VideoBackend = "auto",
    threads: int | None = None,
) -> np.ndarray:
    """Decode frames at 0-based indices, touching only the groups of pictures that hold them.

    Returns exactly :func:`read_video`'s frames at ``indices`` (any order, repeats allowed).
    Decoding starts at the keyframe before each wanted frame and stops at it, skipping
    groups of pictures without a wanted frame, and only the wanted frames are converted to
    RGB. Anything unusual (no timestamps, an index past the end, a truncated or corrupt
    file) falls back to :func:`read_frames`, whose errors name the file and the frame.

    Args:
        path: the video file.
        indices: ``(N,)`` frame indices.
        backend: ``"pyav"``, ``"torchcodec"`` or ``"auto"`` (torchcodec when it loads).
        threads: FFmpeg decoding threads; ``None``: 1 inside a DataLoader worker, FFmpeg's
            automatic count in the main process.

    Returns:
        ``(N, H, W, 3)`` uint8 RGB frames.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        VideoDecodeError: naming the file, for an unreadable file or a bad index.
    """
    path = Path(path)
    _require_file(path)
    order = [int(i) for i in indices]
    if not order or min(order) < 0:
        return read_frames(path, order)
    wanted = sorted(set(order))
    threads = _default_threads() if threads is None else threads
    if resolve_backend(backend) == "torchcodec":
        got = _decode_torchcodec(path, wanted, threads, None)
    else:
        found = _decode_pyav(path, wanted, threads, lambda frame: frame)
        got = None if found is None else np.stack(found)
    if got is None:
        return read_frames(path, order)
    if order == wanted:
        return got
    pos = {w: i for i, w in enumerate(wanted)}
    return got[[pos[i] for i in order]]


def decode_frames_each(
    path: PathLike,
    indices: Sequence[int],
    frame_fn: Callable[[Tensor], Tensor],
    *,
    box: Callable[[int, int], Box] | None = None,
    backend: VideoBackend = "auto",
    threads: int | None = None,
) -> Tensor:
    """:func:`decode_frames` with ``frame_fn`` applied to each frame as soon as it is decoded.

    The same frames, but a full-resolution frame lives only until ``frame_fn`` (a resize,
    typically) has made its output: the clip is never held, stacked or copied at full
    resolution. For 32 frames of a 720p clip that is 85 MiB of memory written and read
    back per clip, which cost the training path up to 2x the decode itself. With ``box``
    only that region of each frame reaches ``frame_fn``, and the PyAV backend converts only
    that region from YUV to RGB (bit-identical to cropping the converted frame).

    Args:
        path: the video file.
        indices: ``(N,)`` frame indices (any order, repeats allowed).
        frame_fn: maps a ``(3, h, w)`` uint8 frame (a channels-last view) to a
            ``(C, h', w')`` tensor; called per distinct index, in increasing order
            (possibly again from the start when an unusual file falls back to
            :func:`read_frames`), so it must not count its calls.
        box: maps the video's ``(H, W)`` to the region ``(top, left, height, width)``
            every frame is cut to; called once per call of this function. ``None``: the
            whole frame.
        backend: as in :func:`decode_frames`.
        threads: as in :func:`decode_frames`.

    Returns:
        ``(N, C, h', w')``: ``frame_fn``'s outputs in the order of ``indices``.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        VideoDecodeError: naming the file, for an unreadable file or a bad index.
        ValueError: if ``box`` gives a region that is empty or not inside the frame.
    """
    path = Path(path)
    _require_file(path)
    order = [int(i) for i in indices]
    if not order:
        raise ValueError(f"{path}: no frame indices given")
    chosen: list[Box] = []

    def region(height: int, width: int) -> Box:
        if not chosen:  # once: a random crop must not change from frame to frame
            asked = (0, 0, height, width) if box is None else box(height, width)
            chosen.append(check_box(asked, height, width, path))
        return chosen[0]

    def convert(frame: np.ndarray) -> Tensor:  # (h, w, 3) region, already cut
        return frame_fn(torch.from_numpy(frame).permute(2, 0, 1))

    def cut_convert(frame: np.ndarray) -> Tensor:  # (H, W, 3) whole frame
        top, left, h, w = region(frame.shape[0], frame.shape[1])
        return convert(frame[top : top + h, left : left + w])

    got: list[Tensor] | None = None
    wanted = sorted(set(order))
    if min(order) >= 0:
        threads = _default_threads() if threads is None else threads
        if resolve_backend(backend) == "torchcodec":
            got = _decode_torchcodec(path, wanted, threads, cut_convert)
        else:
            got = _decode_pyav(path, wanted, threads, convert, region)
    if got is None:  # the careful reader, whose errors name the file and the frame
        frames = read_frames(path, wanted)
        got = [cut_convert(frame) for frame in frames]
    pos = {w: i for i, w in enumerate(wanted)}
    return torch.stack([got[pos[i]] for i in order])
