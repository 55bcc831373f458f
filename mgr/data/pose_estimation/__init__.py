"""Whole-body pose of people in raw videos with mmpose's ONNX models (``mgr pose``).

:mod:`.models` runs the person detector and the SimCC pose model with onnxruntime
(the ``pose`` extra), :mod:`.tracking` follows people through the video,
:mod:`.files` writes and reads the pose files (OpenPose JSON, MiGA'25 xlsx, npz) and
converts keypoint layouts, :mod:`.run` is the resumable command. Only data-level code
is imported here; onnxruntime is imported when a model is opened.
"""

from .files import FORMATS, VideoPose, convert_layout, load_pose_keypoints, read_pose_npz
from .models import PersonDetector, WholeBodyPoseModel
from .run import PoseSettings, estimate_video_pose, run_pose
from .tracking import Track, main_track, track_boxes

__all__ = [
    "FORMATS",
    "PersonDetector",
    "PoseSettings",
    "Track",
    "VideoPose",
    "WholeBodyPoseModel",
    "convert_layout",
    "estimate_video_pose",
    "load_pose_keypoints",
    "main_track",
    "read_pose_npz",
    "run_pose",
    "track_boxes",
]
