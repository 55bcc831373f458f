"""The pose files ``mgr pose`` writes, reading them back, and layout conversion.

Per video ``<name>`` (the file stem), in the output folder::

    <name>.npz                   the models' output (written last: its presence marks the
                                 video done)
    <name>_openpose.xlsx         MiGA'25 layout: one row per frame, 137 keypoints x (x, y, c)
    <name>_json/<name>_<frame:012d>_keypoints.json   OpenPose --write_json, one per frame

``<name>.npz`` holds (``P`` people, ``T`` frames)::

    keypoints  (P, T, 133, 2) float32  COCO-WholeBody pixels (zeros where the person is absent)
    scores     (P, T, 133)    float32  the pose model's keypoint scores (0 where absent)
    boxes      (P, T, 5)      float32  person box [x1, y1, x2, y2, detector score] (zeros: absent)
    track_ids  (P,)           int64    tracker id of each person
    fps        ()             float64  frames per second of the video
    image_size (2,)           int64    (H, W) of the frames
    kpt_thr    ()             float32  keypoints scored below it are "not detected" in the
                                       OpenPose files
    meta_key   ()             str      digest of the models and settings (resuming)

``P`` is 1 (the main subject) or, with ``--all-people``, every track (the main subject
first); 0 when nobody was detected in the whole video. The xlsx and JSON files hold the
keypoints converted to ``openpose_137``
(:func:`mgr.skeletons.openpose_137_from_coco_wholebody`), points scored below
``kpt_thr`` as OpenPose's ``(0, 0, 0)``, scores clipped to ``[0, 1]``. The JSON files
list every person with ``person_id`` = track id; the xlsx has one person per row, the
main subject (with ``--all-people``: one ``<name>_<track>_openpose.xlsx`` per track).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mgr.errors import UserError
from mgr.skeletons import (
    IMIGUE_LIGHT_HAND_35_FROM_137,
    get_layout,
    openpose_137_from_coco_wholebody,
)

__all__ = [
    "FORMATS",
    "VideoPose",
    "convert_layout",
    "find_pose_file",
    "load_pose_keypoints",
    "npz_meta_key",
    "pose_file_paths",
    "read_pose_npz",
    "write_pose_files",
]

#: Output formats of ``mgr pose``.
FORMATS = ("npz", "xlsx", "json")
_NPZ_KEYS = ("keypoints", "scores", "boxes", "track_ids", "fps", "image_size", "kpt_thr")


@dataclass
class VideoPose:
    """Whole-body keypoints of the people of one video (see the module docstring)."""

    keypoints: np.ndarray
    scores: np.ndarray
    boxes: np.ndarray
    track_ids: np.ndarray
    fps: float
    image_size: tuple[int, int]
    kpt_thr: float = 0.3

    @property
    def num_people(self) -> int:
        """People ``P``."""
        return int(self.keypoints.shape[0])

    @property
    def num_frames(self) -> int:
        """Frames ``T``."""
        return int(self.keypoints.shape[1])

    def wholebody(self, person: int = 0) -> np.ndarray:
        """``(T, 133, 3)`` ``(x, y, score)`` of one person; zeros if nobody was found."""
        if self.num_people == 0:
            return np.zeros((self.num_frames, 133, 3), np.float32)
        return np.concatenate([self.keypoints[person], self.scores[person][..., None]], -1)

    def openpose(self, person: int = 0) -> np.ndarray:
        """``(T, 137, 3)`` OpenPose keypoints of one person (points below ``kpt_thr``: 0)."""
        kp = openpose_137_from_coco_wholebody(self.wholebody(person), min_score=self.kpt_thr)
        kp[..., 2] = np.clip(kp[..., 2], 0.0, 1.0)
        return kp


def _atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Write ``path`` through a temporary sibling renamed into place."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        if path.is_dir():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp)
        elif tmp.exists():
            tmp.unlink()


def _write_json_frames(folder: Path, name: str, pose: VideoPose) -> None:
    folder.mkdir()
    people = [pose.openpose(p) for p in range(pose.num_people)]
    parts = (("pose_keypoints_2d", 0, 25), ("face_keypoints_2d", 25, 70),
             ("hand_left_keypoints_2d", 95, 21), ("hand_right_keypoints_2d", 116, 21))  # fmt: skip
    for t in range(pose.num_frames):
        entries = []
        for p, kp in enumerate(people):
            if not kp[t, :, 2].any():
                continue
            entry: dict[str, Any] = {"person_id": [int(pose.track_ids[p])]}
            for key, first, count in parts:
                entry[key] = [round(float(v), 3) for v in kp[t, first : first + count].ravel()]
            entries.append(entry)
        text = json.dumps({"version": 1.3, "people": entries})
        (folder / f"{name}_{t:012d}_keypoints.json").write_text(text)


def pose_file_paths(
    out: str | Path, name: str, pose: VideoPose, formats: Sequence[str]
) -> list[Path]:
    """The files and folders :func:`write_pose_files` writes for these formats (npz last)."""
    out = Path(out)
    paths = []
    if "xlsx" in formats:
        if pose.num_people > 1:
            paths += [out / f"{name}_{int(t)}_openpose.xlsx" for t in pose.track_ids]
        else:  # an empty sheet is unreadable for the MiGA'25 reader: nobody -> zeros
            paths.append(out / f"{name}_openpose.xlsx")
    if "json" in formats:
        paths.append(out / f"{name}_json")
    return [*paths, out / f"{name}.npz"]


def write_pose_files(
    out: str | Path,
    name: str,
    pose: VideoPose,
    formats: Sequence[str],
    meta_key: str,
    only_missing: bool = False,
) -> list[Path]:
    """Write a video's pose files (each atomically, the npz last).

    Args:
        out: the output folder (must exist).
        name: the video's name (file stem).
        pose: the keypoints.
        formats: any of :data:`FORMATS`; ``npz`` is always written.
        meta_key: digest stored in the npz (a rerun with the same key skips the video).
        only_missing: write only the files that do not exist yet.

    Returns:
        The files and folders written.
    """
    from mgr.data.readers.miga import write_openpose_xlsx

    written = []
    for path in pose_file_paths(out, name, pose, formats):
        if only_missing and path.exists():
            continue
        if path.suffix == ".xlsx":
            stem = path.name[: -len("_openpose.xlsx")]
            person = 0 if stem == name else list(pose.track_ids).index(int(stem.rsplit("_", 1)[1]))
            # openpyxl picks the format from the suffix: keep .xlsx at the end of the temp name.
            tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
            write_openpose_xlsx(tmp, pose.openpose(person))
            os.replace(tmp, path)
        elif path.suffix == ".npz":

            def save(tmp: Path) -> None:
                with open(tmp, "wb") as f:
                    np.savez_compressed(
                        f, keypoints=pose.keypoints.astype(np.float32),
                        scores=pose.scores.astype(np.float32),
                        boxes=pose.boxes.astype(np.float32),
                        track_ids=pose.track_ids.astype(np.int64), fps=np.float64(pose.fps),
                        image_size=np.asarray(pose.image_size, np.int64),
                        kpt_thr=np.float32(pose.kpt_thr), meta_key=np.str_(meta_key),
                    )  # fmt: skip

            _atomic(path, save)
        else:
            _atomic(path, lambda tmp: _write_json_frames(tmp, name, pose))
        written.append(path)
    return written


def npz_meta_key(path: str | Path) -> str | None:
    """The ``meta_key`` of a pose npz, or ``None`` if it is missing or unreadable."""
    try:
        with np.load(path) as f:
            return str(f["meta_key"])
    except Exception:  # a half-written or foreign file is recomputed
        return None


def read_pose_npz(path: str | Path) -> VideoPose:
    """Read a ``<name>.npz`` of ``mgr pose``.

    Raises:
        UserError: naming the file, if it is missing, unreadable or not a pose file.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"pose file {path} does not exist")
    try:
        with np.load(path) as f:
            missing = [k for k in _NPZ_KEYS if k not in f.files]
            if missing:
                raise UserError(f"{path}: not a pose file of mgr pose (no {missing})")
            data = {k: f[k] for k in _NPZ_KEYS}
    except UserError:
        raise
    except Exception as err:
        raise UserError(f"{path}: not a readable npz ({type(err).__name__}: {err})") from err
    kp = data["keypoints"]
    if kp.ndim != 4 or kp.shape[2:] != (133, 2) or data["scores"].shape != kp.shape[:3]:
        raise UserError(
            f"{path}: keypoints {kp.shape} / scores {data['scores'].shape}, expected "
            "(P, T, 133, 2) / (P, T, 133)"
        )
    return VideoPose(
        keypoints=kp.astype(np.float32),
        scores=data["scores"].astype(np.float32),
        boxes=data["boxes"].astype(np.float32),
        track_ids=data["track_ids"].astype(np.int64),
        fps=float(data["fps"]),
        image_size=tuple(int(v) for v in data["image_size"]),  # type: ignore[arg-type]
        kpt_thr=float(data["kpt_thr"]),
    )


# ------------------------------------------------------------------------------ reading back
def find_pose_file(source: str | Path, name: str) -> Path:
    """The pose file of video ``name`` under ``source``.

    ``source`` is a pose file itself (``.npz``, ``.xlsx``, an OpenPose JSON folder) or a
    folder holding ``<name>.npz``, ``<name>_openpose.xlsx`` or ``<name>_json/`` (tried in
    that order).

    Raises:
        UserError: naming the folder and the names tried.
    """
    source = Path(source)
    if source.is_file() or (source.is_dir() and any(source.glob("*_keypoints.json"))):
        return source
    tried = [source / f"{name}.npz", source / f"{name}_openpose.xlsx", source / f"{name}_json"]
    for path in tried:
        if path.exists():
            return path
    if not source.exists():
        raise UserError(f"--pose {source} does not exist")
    raise UserError(
        f"--pose {source}: no pose file of video {name!r} (looked for "
        f"{', '.join(p.name for p in tried)}); run `mgr pose VIDEO --out {source}` first"
    )


def load_pose_keypoints(path: str | Path) -> tuple[np.ndarray, str, VideoPose | None]:
    """Keypoints ``(T, V, 3)`` of the (main) person in a pose file, and their layout.

    Args:
        path: a ``mgr pose`` npz (``coco_wholebody_133``), a MiGA'25 xlsx or an OpenPose
            JSON folder (``openpose_137``; the most confident person per frame).

    Returns:
        ``(keypoints, layout name, the VideoPose of an npz or None)``; from an npz,
        points scored below its ``kpt_thr`` are zeros and scores are clipped to
        ``[0, 1]``, so that it gives what its xlsx and JSON files hold.

    Raises:
        UserError: naming the file, for an unreadable file.
    """
    from mgr.data.readers.common import DataFormatError
    from mgr.data.readers.miga import read_openpose_xlsx
    from mgr.data.readers.pose_json import read_openpose_json

    path = Path(path)
    try:
        if path.suffix == ".npz":
            pose = read_pose_npz(path)
            kp = pose.wholebody(0)
            kp = np.where(kp[..., 2:] >= pose.kpt_thr, kp, 0.0).astype(np.float32)
            kp[..., 2] = np.clip(kp[..., 2], 0.0, 1.0)  # as in the xlsx and JSON files
            return kp, "coco_wholebody_133", pose
        if path.suffix == ".xlsx":
            return read_openpose_xlsx(path), "openpose_137", None
        if path.is_dir():
            return read_openpose_json(path), "openpose_137", None
    except (DataFormatError, FileNotFoundError, ValueError) as err:
        raise UserError(str(err).splitlines()[0]) from err
    raise UserError(f"{path}: not a pose file (.npz of mgr pose, _openpose.xlsx, OpenPose JSON)")


def convert_layout(keypoint: np.ndarray, source: str, target: str) -> np.ndarray:
    """Keypoints ``(T, V, 3)`` from layout ``source`` to the parent layout ``target``.

    Supported: COCO-WholeBody 133 -> itself, ``coco_17`` (its first 17 joints) or any
    OpenPose target; ``openpose_137`` -> itself, ``openpose_body_25`` and
    ``imigue_light_hand_35`` (fingertips, see
    :data:`mgr.skeletons.IMIGUE_LIGHT_HAND_35_FROM_137`).

    Raises:
        UserError: for a target no video pose can give (e.g. Kinect skeletons of SMG).
    """
    if source == target:
        return keypoint
    if source == "coco_wholebody_133":
        if target == "coco_17":
            return keypoint[:, :17]
        keypoint, source = openpose_137_from_coco_wholebody(keypoint), "openpose_137"
        if target == source:
            return keypoint
    if source == "openpose_137":
        if target == "openpose_body_25":
            return keypoint[:, :25]
        if target == "imigue_light_hand_35":
            return keypoint[:, list(IMIGUE_LIGHT_HAND_35_FROM_137)]
    get_layout(target)  # an unknown name fails with the list of layouts
    raise UserError(
        f"keypoints from video ({source}) cannot become {target!r} keypoints: recognizers "
        "trained on OpenPose (iMiGUE MiGA'23/'25) or COCO keypoints can read video pose; "
        "Kinect skeletons (SMG) cannot"
    )
