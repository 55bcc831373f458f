"""Readers for the released file formats of SMG, iMiGUE and MA-52.

One module per format: :mod:`.imigue` (MiGA'23 raw csv), :mod:`.miga` (MiGA'23
processed arrays, MiGA'25 xlsx, RGB clip lists), :mod:`.smg` (raw Kinect csv),
:mod:`.ma52` (list files), :mod:`.posec3d` (PoseC3D/pyskl pickle, read and
write), :mod:`.pose_json` (OpenPose / mmpose outputs), :mod:`.video` (PyAV
decoding) and :mod:`.media` (video or array frame sources, alignment).
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
