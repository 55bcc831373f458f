"""``mgr pose``: whole-body keypoints of the people in videos, resumable per video.

Each video is decoded twice, streaming (memory stays flat for long videos): the first
pass runs the person detector on batches of frames and the tracker links the boxes
(:mod:`.tracking`); the second runs the pose model on the boxes of the chosen tracks
only: the main subject, or every track with ``all_people``. The files are described in
:mod:`.files`. A video whose ``.npz`` exists and was written with the same models and
settings is skipped (files of newly requested formats are written from it), so an
interrupted run resumes; each file is written under a temporary name and renamed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from mgr.errors import UserError
from mgr.skeletons import OPENPOSE_137, SkeletonLayout, get_layout

from .files import (
    FORMATS,
    VideoPose,
    convert_layout,
    find_pose_file,
    load_pose_keypoints,
    npz_meta_key,
    read_pose_npz,
    write_pose_files,
)
from .models import PersonDetector, WholeBodyPoseModel, file_sha256
from .tracking import main_track, track_boxes

__all__ = [
    "PoseSettings",
    "VideoKeypoints",
    "estimate_video_pose",
    "find_videos",
    "iter_frames",
    "pose_main",
    "run_pose",
    "video_info",
    "video_keypoints",
]

#: File suffixes taken as videos when a folder is given.
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".wmv")
_META_VERSION = 1


@dataclass(frozen=True)
class PoseSettings:
    """What shapes the keypoints besides the two models (part of the resume key).

    Attributes:
        det_kind: detector pre-processing, ``"auto"``, ``"yolox"`` or ``"rtmdet"``.
        det_threshold: person boxes scoring below this are dropped.
        nms_threshold: NMS IoU of raw YOLOX outputs.
        kpt_threshold: keypoints scored below this are "not detected" in the OpenPose files.
        iou_threshold: tracker: smallest IoU linking a box to a track.
        max_gap: tracker: frames a track may go unseen.
        all_people: keep every track (else the main subject only).
    """

    det_kind: str = "auto"
    det_threshold: float = 0.3
    nms_threshold: float = 0.45
    kpt_threshold: float = 0.3
    iou_threshold: float = 0.3
    max_gap: int = 30
    all_people: bool = False


def iter_frames(path: str | Path, batch_size: int) -> Iterator[np.ndarray]:
    """Decode a video in order, ``batch_size`` frames at a time.

    Yields:
        ``(B, H, W, 3)`` uint8 RGB, ``B <= batch_size``.

    Raises:
        UserError: naming the file, if it cannot be opened or decoded.
    """
    import av
    import av.error

    path = Path(path)
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as err:
        raise UserError(f"{path}: not a readable video ({err})") from err
    with container:
        if not container.streams.video:
            raise UserError(f"{path}: the file has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        batch: list[np.ndarray] = []
        decoded = 0
        frames = container.decode(stream)
        while True:
            try:
                frame = next(frames)
            except StopIteration:
                break
            except av.error.FFmpegError as err:
                raise UserError(
                    f"{path}: corrupt or truncated video, decoding failed near frame {decoded} "
                    f"({err})"
                ) from err
            batch.append(frame.to_ndarray(format="rgb24"))
            decoded += 1
            if len(batch) == batch_size:
                yield np.stack(batch)
                batch = []
        if batch:
            yield np.stack(batch)


def video_info(video: str | Path) -> tuple[int, float, tuple[int, int]]:
    """``(frames the header claims, fps, (H, W))``; a file that is no video is a UserError."""
    from mgr.data.readers.video import VideoDecodeError, probe_video

    try:
        info = probe_video(video)
    except (VideoDecodeError, FileNotFoundError) as err:
        raise UserError(str(err).splitlines()[0]) from err
    return info.num_frames, info.fps, (info.height, info.width)


def estimate_video_pose(
    video: str | Path,
    detector: PersonDetector,
    model: WholeBodyPoseModel,
    settings: PoseSettings = PoseSettings(),
    batch_size: int = 8,
    progress: bool = True,
) -> VideoPose:
    """Detect, track and estimate the whole-body pose of the people in one video.

    Args:
        video: the video file.
        detector: the person detector.
        model: the whole-body pose model.
        settings: tracking and output settings.
        batch_size: frames per detector call.
        progress: show a tqdm bar (two passes over the frames).

    Returns:
        The keypoints (``P = 0`` people if nobody was detected in any frame).

    Raises:
        UserError: naming the file, if it cannot be decoded.
    """
    from tqdm.auto import tqdm

    video = Path(video)
    claimed, fps, _ = video_info(video)
    bar = tqdm(total=2 * claimed, desc=video.name, unit="frame", disable=not progress)
    detections: list[np.ndarray] = []
    size = None
    for frames in iter_frames(video, batch_size):
        size = size or frames.shape[1:3]
        detections += detector(frames)
        bar.update(len(frames))
    num_frames = len(detections)
    if num_frames == 0 or size is None:
        raise UserError(f"{video}: the video stream has no decodable frame")
    tracks = track_boxes(detections, settings.iou_threshold, settings.max_gap)
    main = main_track(tracks)
    chosen = [main] if main is not None else []
    if settings.all_people:  # every track, the main subject first
        chosen += [k for k in tracks if k is not main]
    people = len(chosen)
    keypoints = np.zeros((people, num_frames, 133, 2), np.float32)
    scores = np.zeros((people, num_frames, 133), np.float32)
    boxes = np.zeros((people, num_frames, 5), np.float32)
    wanted: dict[int, list[int]] = {}
    for p, track in enumerate(chosen):
        for t, box in zip(track.frames, track.boxes, strict=True):
            boxes[p, t] = box[:5]
            wanted.setdefault(t, []).append(p)
    start = 0
    if wanted:
        for frames in iter_frames(video, batch_size):
            index, who = [], []
            for i in range(len(frames)):
                for p in wanted.get(start + i, ()):
                    index.append(i)
                    who.append((p, start + i))
            if index:
                ps, ts = np.array(who).T
                kp, sc = model(frames, index, boxes[ps, ts])
                keypoints[ps, ts], scores[ps, ts] = kp, sc
            start += len(frames)
            bar.update(len(frames))
    bar.close()
    return VideoPose(
        keypoints=keypoints,
        scores=scores,
        boxes=boxes,
        track_ids=np.array([k.id for k in chosen], np.int64),
        fps=fps,
        image_size=(int(size[0]), int(size[1])),
        kpt_thr=settings.kpt_threshold,
    )


def find_videos(inputs: Sequence[str | Path]) -> list[Path]:
    """The video files given: files as they are, folders searched recursively by suffix.

    Raises:
        UserError: for a missing path, a folder without videos, or two videos with the
            same file stem (their outputs would collide).
    """
    videos: list[Path] = []
    for item in map(Path, inputs):
        if item.is_file():
            videos.append(item)
        elif item.is_dir():
            found = sorted(
                p for p in item.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES
            )
            if not found:
                raise UserError(f"{item}: no video files ({', '.join(VIDEO_SUFFIXES)}) in it")
            videos += found
        else:
            raise UserError(f"{item} does not exist")
    stems: dict[str, Path] = {}
    for video in videos:
        if video.stem in stems and stems[video.stem] != video:
            raise UserError(
                f"two videos named {video.stem!r} ({stems[video.stem]}, {video}): their pose "
                "files would collide; run them into different --out folders"
            )
        stems[video.stem] = video
    return list(stems.values())


def _meta_key(det: Path, pose: Path, settings: PoseSettings) -> str:
    meta = {
        "version": _META_VERSION,
        "det_sha256": file_sha256(det),
        "pose_sha256": file_sha256(pose),
        **asdict(settings),
    }
    return hashlib.sha256(json.dumps(meta, sort_keys=True).encode()).hexdigest()[:16]


def run_pose(
    inputs: Sequence[str | Path],
    out: str | Path,
    det: str | Path,
    pose: str | Path,
    *,
    settings: PoseSettings = PoseSettings(),
    formats: Sequence[str] = FORMATS,
    device: str = "cpu",
    batch_size: int = 8,
    threads: int = 0,
    progress: bool = True,
) -> dict[str, str]:
    """Write the pose files of every video (resumable, see the module docstring).

    Args:
        inputs: video files and/or folders of videos.
        out: output folder (created).
        det: the person detector ``.onnx``.
        pose: the whole-body pose model ``.onnx``.
        settings: detection, tracking and output settings.
        formats: pose files to write, any of :data:`~.files.FORMATS` (npz always).
        device: ``"cpu"`` or ``"cuda"`` (onnxruntime providers).
        batch_size: frames per detector call.
        threads: onnxruntime intra-op threads (0: all cores).
        progress: show progress bars.

    Returns:
        Video name -> ``"computed"``, ``"cached"`` or ``"nobody"`` (computed, no person).

    Raises:
        UserError: for missing or wrong model files, missing or undecodable videos.
    """
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        raise UserError(f"unknown pose file formats {unknown}; choose from {list(FORMATS)}")
    videos = find_videos(inputs)
    det, pose = Path(det), Path(pose)
    for path, flag in ((det, "--det"), (pose, "--pose")):
        if not path.is_file():
            raise UserError(f"{flag} {path} does not exist")
    key = _meta_key(det, pose, settings)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    models: tuple[PersonDetector, WholeBodyPoseModel] | None = None
    status: dict[str, str] = {}
    for video in videos:
        name = video.stem
        npz = out / f"{name}.npz"
        if npz.is_file() and npz_meta_key(npz) == key:
            cached = read_pose_npz(npz)
            write_pose_files(out, name, cached, formats, key, only_missing=True)
            status[name] = "cached"
            continue
        if models is None:  # loaded once, and only when a video needs them
            models = (
                PersonDetector(
                    det, device, settings.det_kind, settings.det_threshold,  # type: ignore[arg-type]
                    settings.nms_threshold, threads,
                ),
                WholeBodyPoseModel(pose, device, threads=threads),  # type: ignore[arg-type]
            )  # fmt: skip
        result = estimate_video_pose(video, *models, settings, batch_size, progress)
        write_pose_files(out, name, result, formats, key)
        status[name] = "computed"
        if result.num_people == 0:
            status[name] = "nobody"
            warnings.warn(
                f"{video}: no person detected in any of its {result.num_frames} frames; "
                f"{npz} and its other pose files hold zeros",
                stacklevel=2,
            )
    return status


def pose_main(argv: Sequence[str]) -> int:
    """Entry point of ``mgr pose``."""
    p = argparse.ArgumentParser(
        prog="mgr pose",
        description="Whole-body pose (COCO-WholeBody 133 keypoints, converted to OpenPose 137) "
        "of the people in videos with mmpose's ONNX models (a person detector and an RTMW / "
        "DWPose / RTMPose-wholebody model; see the README for the files), tracked through "
        "each video. Writes DIR/<video>.npz, <video>_openpose.xlsx (MiGA'25 layout) and "
        "<video>_json/ (OpenPose per-frame JSON). Resumable: finished videos are skipped.",
    )
    p.add_argument("inputs", nargs="+", help="video files or folders of videos")
    p.add_argument("--det", required=True, help="person detector .onnx (YOLOX / RTMDet)")
    p.add_argument("--pose", required=True, help="whole-body pose model .onnx (RTMW / DWPose)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument(
        "--det-kind",
        choices=["auto", "yolox", "rtmdet"],
        default="auto",
        help="detector pre-processing (auto: rtmdet if the file path names it, else yolox)",
    )
    p.add_argument("--det-thr", type=float, default=0.3, help="person box score threshold")
    p.add_argument(
        "--kpt-thr",
        type=float,
        default=0.3,
        help="keypoints scored below it are written as not detected (0, 0, 0) in the "
        "OpenPose files",
    )
    p.add_argument(
        "--all-people",
        action="store_true",
        help="keep every tracked person with its track id (default: the main subject, the "
        "track with the largest box area summed over the video)",
    )
    p.add_argument("--formats", nargs="+", choices=FORMATS, default=list(FORMATS))
    p.add_argument("--batch-size", type=int, default=8, help="frames per detector call")
    p.add_argument("--iou-thr", type=float, default=0.3, help="tracker: IoU linking boxes")
    p.add_argument("--max-gap", type=int, default=30, help="tracker: frames a track may miss")
    p.add_argument("--threads", type=int, default=0, help="onnxruntime threads (0: all cores)")
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    if a.batch_size < 1:
        p.error("--batch-size must be >= 1")
    settings = PoseSettings(
        det_kind=a.det_kind,
        det_threshold=a.det_thr,
        kpt_threshold=a.kpt_thr,
        iou_threshold=a.iou_thr,
        max_gap=a.max_gap,
        all_people=a.all_people,
    )
    status = run_pose(
        a.inputs,
        a.out,
        a.det,
        a.pose,
        settings=settings,
        formats=a.formats,
        device=a.device,
        batch_size=a.batch_size,
        threads=a.threads,
        progress=not a.no_progress,
    )
    counts = {k: sum(v == k for v in status.values()) for k in ("computed", "cached", "nobody")}
    print(
        f"pose of {len(status)} videos in {a.out} ({counts['computed'] + counts['nobody']} "
        f"computed, {counts['cached']} cached, {counts['nobody']} without anybody)"
    )
    return 0


@dataclass
class VideoKeypoints:
    """Keypoints of a raw video's main person.

    Attributes:
        keypoint: ``(T, V, 3)`` ``(x, y, score)`` in ``layout`` (zeros: not detected).
        layout: the keypoints' layout name.
        source: the pose file they came from.
    """

    keypoint: np.ndarray
    layout: str
    source: Path

    def drawable(self) -> tuple[np.ndarray, SkeletonLayout]:
        """Keypoints and layout to draw: OpenPose 137 where the source converts to it."""
        if self.layout in ("coco_wholebody_133", "openpose_137"):
            return convert_layout(self.keypoint, self.layout, "openpose_137"), OPENPOSE_137
        return self.keypoint, get_layout(self.layout)


def video_keypoints(
    video: str | Path,
    *,
    pose: str | Path | None = None,
    det: str | Path | None = None,
    pose_model: str | Path | None = None,
    out: str | Path | None = None,
    device: str = "cpu",
    progress: bool = True,
) -> VideoKeypoints | None:
    """A video's keypoints from its pose files, or from the pose models on the fly.

    Args:
        video: the video file.
        pose: a pose file or a folder of them (``mgr pose --out``).
        det: person detector ``.onnx`` (with ``pose_model``, when ``pose`` is not given).
        pose_model: whole-body pose ``.onnx``.
        out: where on-the-fly pose files go (``out/pose``).
        device: onnxruntime device of the pose models.
        progress: show progress bars.

    Returns:
        The keypoints, or ``None`` if neither pose files nor models were given.

    Raises:
        UserError: naming the file, for pose files of another length or frame size than
            the video, unreadable files, or only one of ``det`` / ``pose_model``.
    """
    video = Path(video)
    num_frames, _, size = video_info(video)
    if pose is None:
        if det is None and pose_model is None:
            return None
        if det is None or pose_model is None:
            raise UserError("pose on the fly needs both --det DET.onnx and --pose-model POSE.onnx")
        pose = Path(out or ".") / "pose"
        run_pose([video], pose, det, pose_model, formats=("npz",), device=device, progress=progress)
    path = find_pose_file(pose, video.stem)
    keypoint, layout, npz = load_pose_keypoints(path)
    if len(keypoint) != num_frames:
        raise UserError(
            f"{path} has keypoints for {len(keypoint)} frames but {video} has {num_frames}: "
            "pose files of another video?"
        )
    if npz is not None and tuple(npz.image_size) != size:
        raise UserError(
            f"{path} was estimated on {npz.image_size[1]}x{npz.image_size[0]} frames but "
            f"{video} is {size[1]}x{size[0]}: pose files of another video?"
        )
    return VideoKeypoints(keypoint, layout, path)
