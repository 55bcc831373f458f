"""Readers for the released file formats of SMG, iMiGUE and MA-52.

One module per format: :mod:`.imigue` (MiGA'23 raw csv), :mod:`.miga` (MiGA'23
processed arrays, MiGA'25 splits, RGB clip lists), :mod:`.openpose_xlsx` (the
MiGA'25 ``_openpose.xlsx`` skeleton file, read by both), :mod:`.smg` (raw Kinect csv),
:mod:`.ma52` (list files), :mod:`.posec3d` (PoseC3D/pyskl pickle, read and
write), :mod:`.pose_json` (OpenPose / mmpose outputs), :mod:`.video` (PyAV
decoding) and :mod:`.media` (video or array frame sources, alignment).
mgr's own files that the datamodules read are here too: :mod:`.features`
(``mgr extract-features`` folders) and :mod:`.pseudo_labels` (``mgr pseudo-label``
files); the commands that write them sit above the datamodules.
"""

from .common import ClipRecord, DataFormatError
from .video import VideoDecodeError, VideoInfo, probe_video, read_frames, read_video, write_video

__all__ = [
    "ClipRecord",
    "DataFormatError",
    "VideoDecodeError",
    "VideoInfo",
    "probe_video",
    "read_frames",
    "read_video",
    "write_video",
]
