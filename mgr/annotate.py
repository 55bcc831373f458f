"""Annotated outputs of ``mgr recognize`` and ``mgr detect --video``: video and timeline.

:func:`write_annotated_video` decodes a video, draws the skeleton of each frame and a
few lines of text (the top classes of the window covering the frame, or the detected
segments running through it) and encodes the result as H.264 MP4 with PyAV, one frame
at a time (memory stays flat for long videos). :func:`plot_window_timeline` draws the
top class of every window over the frame axis.

Only the layouts (:mod:`mgr.skeletons`), Pillow, matplotlib and PyAV are used.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np

from mgr.skeletons import SkeletonLayout

__all__ = ["draw_frame", "plot_window_timeline", "write_annotated_video"]

_BODY_COLOUR = (255, 80, 40)
_FACE_COLOUR = (250, 250, 250)
_HAND_COLOURS = ((60, 200, 255), (80, 255, 120))  # left, right


def _limb_colours(layout: SkeletonLayout) -> list[tuple[int, int, int]]:
    """A colour per limb: body, face, left hand, right hand told apart by joint names."""
    colours = []
    for i, j in layout.limbs:
        names = (layout.joints[i].lower(), layout.joints[j].lower())
        if all("face" in n for n in names):
            colours.append(_FACE_COLOUR)
        elif all(("hand" in n or "finger" in n or "thumb" in n) for n in names):
            left = all(n.startswith(("lhand", "left")) for n in names)
            colours.append(_HAND_COLOURS[0 if left else 1])
        else:
            colours.append(_BODY_COLOUR)
    return colours


def draw_frame(
    image: np.ndarray,
    keypoint: np.ndarray | None,
    layout: SkeletonLayout | None,
    lines: Sequence[str] = (),
) -> np.ndarray:
    """Draw a skeleton and text lines on a frame.

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        keypoint: ``(V, 3)`` ``(x, y, score)`` in ``layout`` (points with score 0 are not
            drawn), or ``None``.
        layout: the keypoints' layout (its limbs are drawn).
        lines: text drawn at the top left, one per line.

    Returns:
        The annotated ``(H, W, 3)`` uint8 RGB frame.
    """
    from PIL import Image, ImageDraw, ImageFont

    img = Image.fromarray(np.ascontiguousarray(image))
    draw = ImageDraw.Draw(img)
    height, width = image.shape[:2]
    unit = max(1, round(min(height, width) / 160))
    if keypoint is not None and layout is not None:
        seen = keypoint[:, 2] > 0
        for (i, j), colour in zip(layout.limbs, _limb_colours(layout), strict=True):
            if seen[i] and seen[j]:
                draw.line([tuple(keypoint[i, :2]), tuple(keypoint[j, :2])], fill=colour, width=unit)
        r = max(1.0, unit * 0.75)
        for x, y in keypoint[seen, :2]:
            draw.ellipse([x - r, y - r, x + r, y + r], fill=(255, 255, 0))
    if lines:
        font = ImageFont.load_default(size=max(8, height // 22))
        pad = max(2, height // 120)
        top = pad
        for text in lines:
            left, t, right, bottom = draw.textbbox((pad, top), text, font=font)
            draw.rectangle([left - pad, t - pad, right + pad, bottom + pad], fill=(0, 0, 0))
            draw.text((pad, top), text, fill=(255, 255, 255), font=font)
            top = bottom + 2 * pad
    return np.asarray(img)


def write_annotated_video(
    video: str | Path,
    out: str | Path,
    keypoint: np.ndarray | None,
    layout: SkeletonLayout | None,
    captions: Callable[[int], Sequence[str]],
    *,
    min_size: int = 360,
    crf: int = 23,
    progress: bool = True,
) -> Path:
    """Decode ``video``, annotate every frame and encode the result (H.264 MP4, yuv420p).

    Args:
        video: the source video.
        out: the ``.mp4`` to write (overwritten; written under a temporary name first).
        keypoint: ``(T, V, 3)`` keypoints to draw (frames past ``T`` get none), or ``None``.
        layout: the keypoints' layout.
        captions: frame index -> the text lines of that frame.
        min_size: frames whose short side is smaller are enlarged by an integer factor
            (nearest neighbour) so that the text stays legible.
        crf: libx264 quality (lower is better).
        progress: show a tqdm bar.

    Returns:
        ``out``.
    """
    import os

    import av
    from tqdm.auto import tqdm

    from mgr.data.pose_estimation.run import iter_frames

    out = Path(out)
    tmp = out.with_name(f".tmp-{os.getpid()}-{out.name}")
    with av.open(str(video)) as src:
        stream_in = src.streams.video[0]
        rate = stream_in.average_rate or stream_in.guessed_rate or Fraction(25)
        total = stream_in.frames or None
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    try:
        with av.open(str(tmp), "w", format="mp4") as container:
            stream = None
            t = 0
            bar = tqdm(total=total, desc=f"annotate {out.name}", unit="frame", disable=not progress)
            for frames in iter_frames(video, 16):
                factor = max(1, -(-min_size // min(frames.shape[1:3])))  # ceil division
                for image in frames:
                    kp = keypoint[t] if keypoint is not None and t < len(keypoint) else None
                    if factor > 1:
                        image = image.repeat(factor, 0).repeat(factor, 1)
                        if kp is not None:  # pixel centres move with the enlargement
                            kp = np.concatenate([(kp[:, :2] + 0.5) * factor - 0.5, kp[:, 2:]], 1)
                    image = draw_frame(image, kp, layout, captions(t))
                    h, w = image.shape[:2]
                    if h % 2 or w % 2:  # yuv420p needs even sizes: pad one black row/column
                        image = np.pad(image, ((0, h % 2), (0, w % 2), (0, 0)))
                    if stream is None:
                        stream = container.add_stream(codec, rate=Fraction(rate))
                        stream.width, stream.height = image.shape[1], image.shape[0]
                        stream.pix_fmt = "yuv420p"
                        if codec == "libx264":
                            stream.options = {"crf": str(crf), "preset": "veryfast"}
                    frame = av.VideoFrame.from_ndarray(image, format="rgb24")
                    container.mux(stream.encode(frame))
                    t += 1
                bar.update(len(frames))
            bar.close()
            if stream is not None:
                container.mux(stream.encode(None))
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    return out


def plot_window_timeline(
    path: str | Path,
    num_frames: int,
    bounds: np.ndarray,
    probs: np.ndarray,
    class_names: Sequence[str],
    title: str = "",
) -> Path:
    """The top class of each window over the frame axis, bar height = its probability.

    Args:
        path: PNG to write.
        num_frames: frames of the video.
        bounds: ``(N + 1,)`` frame boundaries: window ``i`` is drawn over
            ``[bounds[i], bounds[i + 1])`` (the frames nearest its centre).
        probs: ``(N, K)`` class probabilities per window (rows of NaN: no prediction,
            drawn as grey hatching).
        class_names: the ``K`` class names.
        title: figure title.

    Returns:
        ``path``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    path = Path(path)
    num_classes = probs.shape[1]
    cmap = plt.get_cmap("tab20", max(num_classes, 1))
    fig, ax = plt.subplots(figsize=(14, 2.8))
    used: dict[int, str] = {}
    for i, row in enumerate(probs):
        left, width = bounds[i], bounds[i + 1] - bounds[i]
        if not np.isfinite(row).all():
            ax.bar(left, 1.0, width=width, align="edge", color="none", edgecolor="0.6", hatch="//")
            continue
        k = int(row.argmax())
        used[k] = class_names[k] if k < len(class_names) else f"class {k}"
        ax.bar(left, float(row[k]), width=width, align="edge", color=cmap(k), edgecolor="none")
    ax.set_xlim(0, num_frames)
    ax.set_ylim(0, 1)
    ax.set_xlabel("frame")
    ax.set_ylabel("top-1 probability")
    if title:
        ax.set_title(title, fontsize=9)
    handles = [Patch(color=cmap(k), label=f"{k}: {name}") for k, name in sorted(used.items())]
    if handles:
        ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
