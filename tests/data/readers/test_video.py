from __future__ import annotations

import re
import wave
from pathlib import Path

import av
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mgr.data.readers import video as video_module
from mgr.data.readers.common import DataFormatError
from mgr.data.readers.video import (
    VideoDecodeError,
    VideoInfo,
    decode_frames,
    probe_video,
    read_frames,
    read_video,
    sample_frames,
    write_video,
)
from mgr.data.transforms.pose import uniform_sample_indices

T, H, W = 40, 32, 48
STEP = 6  # frame t is a uniform grey of level STEP * t


def grey_frames(num: int = T) -> np.ndarray:
    levels = (STEP * np.arange(num)).astype(np.uint8)
    return np.broadcast_to(levels[:, None, None, None], (num, H, W, 3)).copy()


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("videos")
    frames = grey_frames()
    paths = {
        "mp4": root / "grey.mp4",
        "mkv": root / "grey.mkv",  # Matroska stores no frame count: probe must demux
        "faststart": root / "faststart.mp4",
        "mpeg4": root / "mpeg4.mp4",
        "ntsc": root / "ntsc.mp4",  # a non-integer frame rate, 30000/1001
    }
    write_video(paths["mp4"], frames, fps=30.0, gop=4)
    write_video(paths["mkv"], frames, fps=30.0, gop=4)
    write_video(paths["faststart"], frames, fps=30.0, gop=4, faststart=True)
    write_video(paths["mpeg4"], frames, fps=25.0, codec="mpeg4", gop=4)
    write_video(paths["ntsc"], frames, fps=30000 / 1001, gop=4)
    return paths


@pytest.fixture(scope="module")
def reference(videos: dict[str, Path]) -> np.ndarray:
    return read_video(videos["mp4"])


# --- writing, probing, full decode ------------------------------------------------------


@pytest.mark.parametrize("kind", ["mp4", "mkv", "faststart", "mpeg4", "ntsc"])
def test_probe(videos: dict[str, Path], kind: str) -> None:
    info = probe_video(videos[kind])
    fps = {"mpeg4": 25.0, "ntsc": 30000 / 1001}.get(kind, 30.0)
    assert info == VideoInfo(path=str(videos[kind]), num_frames=T, fps=fps, height=H, width=W)


@pytest.mark.parametrize("kind", ["mp4", "mkv", "mpeg4"])
def test_decoded_frames_are_identifiable(videos: dict[str, Path], kind: str) -> None:
    # Independent of read_frames: each decoded frame's grey level names its index.
    frames = read_video(videos[kind])
    assert frames.shape == (T, H, W, 3) and frames.dtype == np.uint8
    means = frames.reshape(T, -1).mean(1)
    np.testing.assert_allclose(means, STEP * np.arange(T), atol=STEP / 2)


def test_write_video_rejects_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="even"):
        write_video(tmp_path / "odd.mp4", np.zeros((2, 31, 48, 3), np.uint8))
    with pytest.raises(ValueError, match="even"):
        write_video(tmp_path / "odd.mp4", np.zeros((2, 32, 47, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        write_video(tmp_path / "f.mp4", np.zeros((2, 32, 48, 3), np.float32))
    with pytest.raises(ValueError, match=r"\(T, H, W, 3\)"):
        write_video(tmp_path / "g.mp4", np.zeros((2, 32, 48), np.uint8))
    with pytest.raises(ValueError, match="no frames"):
        write_video(tmp_path / "e.mp4", np.zeros((0, 32, 48, 3), np.uint8))


def test_write_video_falls_back_to_mpeg4(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(av, "codecs_available", av.codecs_available - {"libx264"})
    path = tmp_path / "fallback.mp4"
    write_video(path, grey_frames(4))
    with av.open(str(path)) as container:
        assert container.streams.video[0].codec_context.name == "mpeg4"
    means = read_video(path).reshape(4, -1).mean(1)
    np.testing.assert_allclose(means, STEP * np.arange(4), atol=STEP / 2)


# --- frame-accurate random access ----------------------------------------------------------


@pytest.mark.parametrize(
    "indices",
    [[0, 1, 2, 3], [2, 9, 5, 0, 11], [4, 4, 1, 4], [39], [0, 39], []],
    ids=["sorted", "unsorted", "repeated", "last", "ends", "empty"],
)
def test_read_frames_matches_full_decode(
    videos: dict[str, Path], reference: np.ndarray, indices: list[int]
) -> None:
    out = read_frames(videos["mp4"], indices)
    assert out.shape == (len(indices), H, W, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, reference[indices])


class SeekSpy:
    """Records what the seek path returned (None: it fell back to a sequential decode)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.results: list[int | None] = []
        original = video_module._collect_seek

        def spy(*args, **kwargs):
            result = original(*args, **kwargs)
            self.results.append(result)
            return result

        monkeypatch.setattr(video_module, "_collect_seek", spy)


@pytest.mark.parametrize("kind", ["mp4", "mkv", "faststart", "mpeg4", "ntsc"])
@pytest.mark.parametrize(
    "indices", [list(range(30, 36)), [35, 20, 27, 20, 33]], ids=["range", "unsorted"]
)
def test_seek_matches_full_decode(
    videos: dict[str, Path], kind: str, indices: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = SeekSpy(monkeypatch)
    full = read_video(videos[kind])
    out = read_frames(videos[kind], indices)
    # The seek path ran (did not fall back) and stopped at the last wanted frame.
    assert spy.results == [max(indices) + 1]
    np.testing.assert_array_equal(out, full[indices])


def test_seek_is_used_only_far_from_the_start(
    videos: dict[str, Path], reference: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = SeekSpy(monkeypatch)
    np.testing.assert_array_equal(read_frames(videos["mp4"], [3, 8]), reference[[3, 8]])
    assert spy.results == []
    # seek_threshold=0 always seeks, even to frame 0.
    np.testing.assert_array_equal(
        read_frames(videos["mp4"], [0, 7], seek_threshold=0), reference[[0, 7]]
    )
    assert spy.results == [8]


def test_sample_frames_matches_uniform_indices(
    videos: dict[str, Path], reference: np.ndarray
) -> None:
    path = videos["mp4"]
    expected = uniform_sample_indices(20, 8, test_mode=True) + 5
    np.testing.assert_array_equal(
        sample_frames(path, 8, start=5, end=24), read_frames(path, expected)
    )
    np.testing.assert_array_equal(sample_frames(path, 8, start=5, end=24), reference[expected])
    # Training: the same generator state gives the same draw.
    expected = uniform_sample_indices(20, 8, rng=np.random.default_rng(3)) + 5
    out = sample_frames(path, 8, start=5, end=24, train=True, rng=np.random.default_rng(3))
    np.testing.assert_array_equal(out, reference[expected])
    # end=None: up to the last frame; a clip shorter than num_frames loops.
    whole = uniform_sample_indices(T, 16, test_mode=True)
    np.testing.assert_array_equal(sample_frames(path, 16), reference[whole])
    short = uniform_sample_indices(3, 6, test_mode=True) + 36
    np.testing.assert_array_equal(sample_frames(path, 6, start=36, end=38), reference[short])
    with pytest.raises(ValueError, match="range"):
        sample_frames(path, 4, start=10, end=9)


# --- errors ----------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.mp4"
    for call in (probe_video, read_video, lambda p: read_frames(p, [0])):
        with pytest.raises(FileNotFoundError, match=r"nope\.mp4"):
            call(path)
    with pytest.raises(FileNotFoundError, match=r"nope\.mp4"):
        sample_frames(path, 4, end=10)


def test_not_a_video(tmp_path: Path) -> None:
    text = tmp_path / "text.mp4"
    text.write_text("this is not a video\n" * 20)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    for path in (text, empty):
        for call in (probe_video, read_video, lambda p: read_frames(p, [0])):
            with pytest.raises(VideoDecodeError, match=re.escape(str(path))):
                call(path)
    assert issubclass(VideoDecodeError, DataFormatError)


def test_no_video_stream(tmp_path: Path) -> None:
    path = tmp_path / "sound.wav"
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(8000)
        f.writeframes(b"\0\0" * 800)
    with pytest.raises(VideoDecodeError, match="no video stream") as err:
        probe_video(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("kind", ["mp4", "faststart", "mkv"])
def test_truncated_file(videos: dict[str, Path], tmp_path: Path, kind: str) -> None:
    data = videos[kind].read_bytes()
    path = tmp_path / f"half{videos[kind].suffix}"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoDecodeError) as err:
        probe_video(path)
        read_frames(path, [T - 1])
    assert str(path) in str(err.value)


def test_truncated_after_header_names_the_missing_frame(
    videos: dict[str, Path], reference: np.ndarray, tmp_path: Path
) -> None:
    # faststart: the index comes first, so a file cut inside its data still claims all T
    # frames. Cut it where the packet of frame 30 starts (tiny grey frames compress so well
    # that half of the bytes would be mostly index).
    source = videos["faststart"]
    with av.open(str(source)) as container:
        positions = [p.pos for p in container.demux(video=0) if p.size > 0]
    path = tmp_path / "cut.mp4"
    path.write_bytes(source.read_bytes()[: positions[30]])
    assert probe_video(path).num_frames == T
    np.testing.assert_array_equal(read_frames(path, [0, 1]), reference[[0, 1]])
    for threshold in (0, 10**6):  # seek path and sequential path
        with pytest.raises(VideoDecodeError) as err:
            read_frames(path, [1, T - 1], seek_threshold=threshold)
        message = str(err.value)
        assert str(path) in message
        assert f"frame {T - 1} is missing" in message or "decoding failed near frame" in message


@pytest.mark.parametrize("kind", ["mp4", "mkv"])
@pytest.mark.parametrize("threshold", [0, 10**6], ids=["seek", "sequential"])
def test_index_out_of_range(videos: dict[str, Path], kind: str, threshold: int) -> None:
    path = videos[kind]
    for index in (T, T + 7):
        with pytest.raises(VideoDecodeError) as err:
            read_frames(path, [1, index], seek_threshold=threshold)
        message = str(err.value)
        assert str(path) in message and f"index {index}" in message
        assert f"{T} frames" in message
    with pytest.raises(VideoDecodeError, match="index -1"):
        read_frames(path, [-1])


# --- decode_frames: only the groups of pictures holding wanted frames -------------------------

BACKENDS = ["pyav", "torchcodec"]


def _need_backend(backend: str) -> None:
    if backend == "torchcodec" and not video_module.torchcodec_available():
        pytest.skip("torchcodec does not load here (needs the system's FFmpeg libraries)")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", ["mp4", "mkv", "faststart", "mpeg4", "ntsc"])
@pytest.mark.parametrize(
    "indices",
    [[0, 1, 2, 3], [2, 9, 5, 0, 11], [4, 4, 1, 4], [39], [0, 39], [1, 13, 26, 38], []],
    ids=["sorted", "unsorted", "repeated", "last", "ends", "sparse", "empty"],
)
def test_decode_frames_matches_a_plain_sequential_decode(
    videos: dict[str, Path], kind: str, indices: list[int], backend: str
) -> None:
    _need_backend(backend)
    full = read_video(videos[kind])  # the plain sequential decode
    out = decode_frames(videos[kind], indices, backend=backend, threads=1)
    assert out.shape == (len(indices), H, W, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, full[indices])
    # Grey level STEP * t names the frame: the indices are right, not just the pixels.
    np.testing.assert_array_equal(np.round(out[:, 0, 0, 0] / STEP), indices)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", ["mp4", "mkv", "ntsc"])
@pytest.mark.parametrize(
    "indices", [[0, 1, 2, 3], [2, 9, 5, 0, 11], [4, 4, 1, 4], [39], [1, 13, 26, 38]]
)
def test_decode_frames_each_applies_the_function_to_each_frame(
    videos: dict[str, Path], kind: str, indices: list[int], backend: str
) -> None:
    """Per-frame transform as decoded == the transform of the plain sequential decode."""
    _need_backend(backend)
    full = torch.from_numpy(read_video(videos[kind])).permute(0, 3, 1, 2)  # (T, 3, H, W)
    calls: list[tuple] = []

    def crop_resize(frame: torch.Tensor) -> torch.Tensor:
        calls.append((frame.shape, frame.dtype))
        return F.interpolate(frame[None, :, 2:-2, 1:], size=(7, 9), mode="bilinear",
                             antialias=True)[0]  # fmt: skip

    out = video_module.decode_frames_each(
        videos[kind], indices, crop_resize, backend=backend, threads=1
    )
    expected = F.interpolate(full[indices, :, 2:-2, 1:], size=(7, 9), mode="bilinear",
                             antialias=True)  # fmt: skip
    assert out.shape == (len(indices), 3, 7, 9) and out.dtype == torch.uint8
    torch.testing.assert_close(out, expected, atol=0, rtol=0)
    # Once per distinct frame (no fallback here), each a (3, H, W) uint8 frame.
    assert calls == [((3, H, W), torch.uint8)] * len(set(indices))


def test_decode_frames_each_errors_name_the_file(videos: dict[str, Path]) -> None:
    with pytest.raises(VideoDecodeError, match=f"index {T}") as err:
        video_module.decode_frames_each(videos["mp4"], [1, T], lambda f: f, backend="pyav")
    assert str(videos["mp4"]) in str(err.value)
    with pytest.raises(ValueError, match="no frame indices"):
        video_module.decode_frames_each(videos["mp4"], [], lambda f: f)


def _record_decoded_frames(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The pts of every frame the decoder hands out from now on; no fallback allowed."""
    decoded: list[int] = []
    original = video_module._decode

    def counting(*args, **kwargs):
        for frame in original(*args, **kwargs):
            decoded.append(frame.pts)
            yield frame

    monkeypatch.setattr(video_module, "_decode", counting)
    monkeypatch.setattr(video_module, "read_frames", None)
    return decoded


def test_decode_frames_skips_groups_without_a_wanted_frame(
    videos: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """GOP 4: frames 1, 13, 26, 38 need groups [0-3], [12-15], [24-27], [36-39] only."""
    decoded = _record_decoded_frames(monkeypatch)
    out = decode_frames(videos["mp4"], [38, 1, 13, 26], backend="pyav", threads=1)
    np.testing.assert_array_equal(np.round(out[:, 0, 0, 0] / STEP), [38, 1, 13, 26])
    # 2 + 2 + 3 + 3 frames up to each wanted one, plus what frame threading/B-frame
    # reordering hands out past the last one it needed; never all 39.
    assert len(decoded) < 20, len(decoded)


@pytest.fixture(scope="module")
def bframe_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 frames of moving texture, one group of pictures: x264 codes most as B-frames."""
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 256, (64, 160, 3), dtype=np.uint8)
    frames = np.stack([texture[:, t : t + 96] for t in range(60)])
    path = tmp_path_factory.mktemp("bframes") / "moving.mp4"
    write_video(path, frames, fps=30.0, gop=250)
    return path


@pytest.mark.parametrize("threads", [1, 0])
@pytest.mark.parametrize(
    "indices", [[1, 2, 3, 30], [5, 21, 22, 40, 58], [0, 59], list(range(1, 60, 2))]
)
def test_decode_frames_skips_unwanted_unreferenced_frames(
    bframe_video: Path, indices: list[int], threads: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unwanted non-reference B-frames are not decoded; wanted ones (B-frames too) are exact.

    ``threads=0`` is FFmpeg's frame threading, where ``skip_frame`` is set per packet while
    earlier packets are still being decoded on other threads.
    """
    full = read_video(bframe_video)  # the plain sequential decode, every frame
    with av.open(str(bframe_video)) as container:
        types = [av.video.frame.PictureType(f.pict_type) for f in container.decode(video=0)]
    assert types.count(av.video.frame.PictureType.B) > 20, types  # B-frames to skip
    decoded = _record_decoded_frames(monkeypatch)
    out = decode_frames(bframe_video, indices, backend="pyav", threads=threads)
    np.testing.assert_array_equal(out, full[indices])
    # Without skipping, every frame up to the last wanted one comes out.
    assert len(decoded) < max(indices) + 1 - 5, (len(decoded), max(indices))


def _write_tagged(path: Path, frames: np.ndarray, colorspace: int, color_range: int) -> None:
    """H.264 with colour tags (BT.709 = 1; full range = 2), which change YUV->RGB."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuvj420p" if color_range == 2 else "yuv420p"
        stream.codec_context.colorspace = colorspace
        stream.codec_context.color_range = color_range
        for rgb in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        container.mux(stream.encode())


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("tags", [None, (1, 1), (1, 2)], ids=["untagged", "bt709", "bt709-full"])
@pytest.mark.parametrize(
    "box",
    [(0, 16, 64, 64), (3, 5, 31, 47), (1, 0, 63, 96), (0, 95, 64, 1), (0, 0, 64, 96)],
    ids=["square", "odd", "odd-edges", "last-column", "whole"],
)
def test_decode_frames_each_box_equals_cropping_the_converted_frame(
    bframe_video: Path,
    tmp_path: Path,
    box: tuple[int, int, int, int],
    tags: tuple[int, int] | None,
    backend: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Only the box is converted from YUV (PyAV), yet pixels equal crop(whole conversion).

    A textured clip: a chroma plane cut one pixel off would change the colours.
    """
    _need_backend(backend)
    path = bframe_video
    if tags is not None:
        path = tmp_path / "tagged.mp4"
        _write_tagged(path, read_video(bframe_video)[:12], *tags)
    full = torch.from_numpy(read_video(path)).permute(0, 3, 1, 2)  # (T, 3, 64, 96)
    converted: list[tuple[int, int]] = []
    original = video_module._to_rgb

    def recording(frame, threads):
        converted.append((frame.height, frame.width))
        return original(frame, threads)

    monkeypatch.setattr(video_module, "_to_rgb", recording)
    indices = [7, 2, 11, 2]
    top, left, h, w = box
    out = video_module.decode_frames_each(
        path, indices, lambda f: f.clone(), box=lambda H, W: box, backend=backend, threads=1
    )
    expected = full[indices, :, top : top + h, left : left + w]
    torch.testing.assert_close(out, expected, atol=0, rtol=0)
    if backend == "pyav":  # the even-aligned region holding the box, not the frame
        aligned = (h + top % 2 + (h + top % 2) % 2, w + left % 2 + (w + left % 2) % 2)
        assert converted == [aligned] * 3, converted


def test_decode_frames_each_rejects_a_box_outside_the_frame(bframe_video: Path) -> None:
    with pytest.raises(ValueError, match=r"moving.mp4: crop box .* not inside the 64x96"):
        video_module.decode_frames_each(
            bframe_video, [0], lambda f: f, box=lambda H, W: (0, 40, 64, 64), backend="pyav"
        )


@pytest.mark.parametrize("backend", BACKENDS)
def test_decode_frames_errors_name_the_file(
    videos: dict[str, Path], tmp_path: Path, backend: str
) -> None:
    _need_backend(backend)
    with pytest.raises(VideoDecodeError, match=f"index {T}") as err:
        decode_frames(videos["mp4"], [1, T], backend=backend)
    assert str(videos["mp4"]) in str(err.value)
    data = videos["faststart"].read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(VideoDecodeError) as err:
        decode_frames(cut, [1, T - 1], backend=backend)
    assert str(cut) in str(err.value)


def test_resolve_backend() -> None:
    assert video_module.resolve_backend("pyav") == "pyav"
    want = "torchcodec" if video_module.torchcodec_available() else "pyav"
    assert video_module.resolve_backend("auto") == want
    with pytest.raises(ValueError, match="backend"):
        video_module.resolve_backend("decord")  # type: ignore[arg-type]
