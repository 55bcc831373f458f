"""``mgr recognize``: a trained recognizer over sliding windows of a raw video.

The video gets keypoints from pose files (``--pose``, written by ``mgr pose``: the
``.npz``, or a MiGA'25 ``_openpose.xlsx`` / OpenPose JSON folder), or from the pose
models on the fly (``--det`` and ``--pose-model``: ``mgr pose`` into ``OUT/pose``).
They are converted to the layout the recognizer's datamodule reads
(:func:`mgr.data.pose_estimation.convert_layout`) and the windows go through the
recognizer's own evaluation transform, test-time views included
(:func:`mgr.features.window_transform_of`: skeleton, heatmap, or the clip pipeline
that decodes the window's frames from the video with its crop, saliency from the
pose when the recognizer was trained with it). Windows start every ``stride`` frames
(:func:`mgr.features.window_starts`).

Writes, for a video ``<name>``, into ``--out``::

    <name>_windows.csv     window, start, end (inclusive), center, person (0/1), top1,
                           top1_prob, then one probability column per class
    <name>_timeline.png    top class per window over the frames, height = probability
    <name>_annotated.mp4   the skeleton on every frame and the top-3 classes of the window
                           whose centre is nearest

A window in which the pose has nobody gets no prediction (empty cells) and a video
with nobody in it at all is an error, rather than a prediction on zeros. The
recognizer's training config (``--data``, by default the ``config.yaml`` ``mgr fit``
saved next to the checkpoint's folder) gives the datamodule and its transforms.
"""

from __future__ import annotations

import argparse
import csv
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mgr.data.pose_estimation.files import convert_layout
from mgr.data.pose_estimation.run import VideoKeypoints, video_info, video_keypoints
from mgr.data.readers.common import SequenceRecord
from mgr.errors import UserError
from mgr.features import (
    _default_config,
    datamodule_from_config,
    load_recognizer,
    step_boundaries,
    window_starts,
    window_transform_of,
)

__all__ = ["recognize_main", "recognize_video"]


def _class_names(model: Any) -> list[str]:
    names = getattr(model.hparams, "class_names", None) or []
    k = int(model.hparams.num_classes)
    return [names[i] if i < len(names) else f"class {i}" for i in range(k)]


@torch.inference_mode()
def recognize_video(
    video: str | Path,
    model: Any,
    dm: Any,
    keypoints: VideoKeypoints | None,
    *,
    window: int = 32,
    stride: int = 8,
    batch_size: int = 16,
) -> dict[str, Any]:
    """Class probabilities of every window of a raw video.

    Args:
        video: the video file.
        model: a :class:`~mgr.models.base.Recognizer` in eval mode.
        dm: its training datamodule (transforms and keypoint layout).
        keypoints: the video's keypoints (needed unless the recognizer reads RGB only and
            crops without them).
        window: frames per window.
        stride: frames between window starts.
        batch_size: windows per forward pass.

    Returns:
        ``starts (N,)``, ``centers (N,)``, ``person (N,)`` bool, ``probs (N, K)`` (NaN rows
        where nobody is in the window), ``num_frames``.

    Raises:
        UserError: if the recognizer needs keypoints and has none, or nobody is in the
            video, or its datamodule's keypoints cannot come from a video (SMG Kinect).
    """
    video = Path(video)
    num_frames, _, size = video_info(video)
    video_only = dm.layout is None
    crops = getattr(dm.video, "crop", None) if getattr(dm, "video", None) else None
    needs_pose = not video_only and (dm.modalities != ("video",) or crops == "saliency")
    name = type(model).__name__
    if needs_pose:
        if keypoints is None:
            raise UserError(
                f"{name} reads keypoints ({', '.join(model.input_keys)} from "
                f"{type(dm).__name__}): pass --pose DIR (from mgr pose) or --det DET.onnx "
                "--pose-model POSE.onnx"
            )
        if not keypoints.keypoint[..., 2].any():
            raise UserError(
                f"{keypoints.source}: no person was detected in {video} (its keypoints are all "
                f"zero); {name} has nothing to recognize"
            )
    if video_only or keypoints is None:
        kp = np.zeros((num_frames, 0, 3), np.float32)
    else:
        kp = convert_layout(keypoints.keypoint, keypoints.layout, dm.parent_layout)
    seq = SequenceRecord(
        video_id=video.stem, keypoint=np.ascontiguousarray(kp, dtype=np.float32),
        segments=np.zeros((0, 2), np.int64), labels=np.zeros(0, np.int64),
        source=str(keypoints.source if keypoints is not None else video), video=str(video),
    )  # fmt: skip
    transform = window_transform_of(dm, image_size=size, views=True)
    missing = [k for k in model.input_keys if k not in transform.keys]
    if missing:
        raise UserError(
            f"{name} reads {list(model.input_keys)} but its datamodule {type(dm).__name__} "
            f"supplies {list(transform.keys)}: the training config does not match the checkpoint"
        )
    starts = window_starts(num_frames, window, stride)
    if needs_pose:
        present = kp[..., 2].reshape(num_frames, -1).max(1) > 0
        person = np.array([present[s : s + window].any() for s in starts])
    else:
        person = np.ones(len(starts), bool)
    probs = np.full((len(starts), int(model.hparams.num_classes)), np.nan, np.float32)
    device = next(model.parameters()).device
    todo = np.flatnonzero(person)
    for i in range(0, len(todo), batch_size):
        chunk = todo[i : i + batch_size]
        batch = transform(seq, starts[chunk], window)
        batch = {k: v.to(device) for k, v in batch.items()}
        probs[chunk] = model(batch).float().softmax(-1).cpu().numpy()
    if (~person).any():
        warnings.warn(
            f"{video}: nobody in {(~person).sum()} of {len(starts)} windows; they get no "
            "prediction",
            stacklevel=2,
        )
    return {
        "starts": starts,
        "centers": starts + window // 2,
        "person": person,
        "probs": probs,
        "num_frames": num_frames,
    }


def _write_csv(path: Path, result: dict[str, Any], window: int, names: list[str]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["window", "start", "end", "center", "person", "top1", "top1_prob", *names])
        for i, (start, center, person, row) in enumerate(
            zip(result["starts"], result["centers"], result["person"], result["probs"], strict=True)
        ):
            end = min(int(start) + window, result["num_frames"]) - 1
            if person:
                k = int(row.argmax())
                cells = [names[k], f"{row[k]:.4f}", *(f"{p:.4f}" for p in row)]
            else:
                cells = ["", "", *([""] * len(names))]
            writer.writerow([i, int(start), end, int(center), int(person), *cells])


def _window_captions(result: dict[str, Any], names: list[str], top_k: int) -> Any:
    bounds = step_boundaries(result["centers"], result["num_frames"])

    def captions(t: int) -> list[str]:
        i = int(np.clip(np.searchsorted(bounds, t, side="right") - 1, 0, len(result["probs"]) - 1))
        start = int(result["starts"][i])
        if not result["person"][i]:
            return [f"window {start}+: nobody in view"]
        row = result["probs"][i]
        top = np.argsort(-row, kind="stable")[:top_k]
        return [f"{r + 1}. {names[k]}  {row[k]:.2f}" for r, k in enumerate(top)]

    return captions


def recognize_main(argv: Sequence[str]) -> int:
    """Entry point of ``mgr recognize``."""
    from mgr.annotate import plot_window_timeline, write_annotated_video

    p = argparse.ArgumentParser(
        prog="mgr recognize",
        description="Run a trained recognizer over sliding windows of a raw video; write the "
        "class probabilities per window (csv), a timeline (png) and an annotated video (mp4).",
    )
    p.add_argument("video", help="the video file")
    p.add_argument("--ckpt", required=True, help="Recognizer checkpoint (mgr fit)")
    p.add_argument(
        "--data",
        default=None,
        help="the recognizer's training config (transforms, keypoint layout); default: the "
        "config.yaml mgr fit saved next to the checkpoint's folder",
    )
    p.add_argument("--pose", default=None, help="pose files of the video (mgr pose --out DIR)")
    p.add_argument("--det", default=None, help="person detector .onnx (pose on the fly)")
    p.add_argument("--pose-model", default=None, help="whole-body pose .onnx (pose on the fly)")
    p.add_argument("--window", type=int, default=32, help="frames per window")
    p.add_argument("--stride", type=int, default=8, help="frames between window starts")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--top-k", type=int, default=3, help="classes written on the video")
    p.add_argument("--batch-size", type=int, default=16, help="windows per forward pass")
    p.add_argument("--device", default="cpu", help="torch device of the recognizer (and cuda "
                   "for the pose models)")  # fmt: skip
    p.add_argument("--no-video", action="store_true", help="skip the annotated mp4")
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    if a.window < 1 or a.stride < 1:
        p.error("--window and --stride must be >= 1")
    video, ckpt, out = Path(a.video), Path(a.ckpt), Path(a.out)
    if not video.is_file():
        raise UserError(f"video {video} does not exist")
    try:
        model = load_recognizer(ckpt).to(a.device)
    except (FileNotFoundError, ValueError, TypeError) as err:
        raise UserError(str(err).splitlines()[0]) from err
    config = Path(a.data) if a.data else _default_config(ckpt.resolve())
    if config is None:
        raise UserError(
            f"no config.yaml next to {ckpt}: pass the recognizer's training config with --data"
        )
    try:
        dm = datamodule_from_config(config)
    except (FileNotFoundError, ValueError) as err:
        raise UserError(str(err).splitlines()[0]) from err
    out.mkdir(parents=True, exist_ok=True)
    pose_device = "cuda" if str(a.device).startswith("cuda") else "cpu"
    keypoints = video_keypoints(
        video, pose=a.pose, det=a.det, pose_model=a.pose_model, out=out, device=pose_device,
        progress=not a.no_progress,
    )  # fmt: skip
    result = recognize_video(
        video, model, dm, keypoints, window=a.window, stride=a.stride, batch_size=a.batch_size
    )
    names = _class_names(model)
    stem = video.stem
    _write_csv(out / f"{stem}_windows.csv", result, a.window, names)
    bounds = step_boundaries(result["centers"], result["num_frames"])
    plot_window_timeline(
        out / f"{stem}_timeline.png", result["num_frames"], bounds, result["probs"], names,
        title=f"{stem}: {type(model).__name__}, windows of {a.window} every {a.stride} frames",
    )  # fmt: skip
    written = [f"{stem}_windows.csv", f"{stem}_timeline.png"]
    if not a.no_video:
        kp, layout = keypoints.drawable() if keypoints is not None else (None, None)
        write_annotated_video(
            video, out / f"{stem}_annotated.mp4", kp, layout,
            _window_captions(result, names, a.top_k), progress=not a.no_progress,
        )  # fmt: skip
        written.append(f"{stem}_annotated.mp4")
    done = int(result["person"].sum())
    print(f"{done} of {len(result['starts'])} windows recognized -> {out}: {', '.join(written)}")
    return 0
