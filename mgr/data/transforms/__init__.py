"""Transforms: pose (sampling, normalisation, flip), PoseConv3D keypoints and heatmaps.

Also video (:mod:`.video`: crops, resize, normalise, Taylor) and the step <-> frame
mapping of sliding windows over long sequences (:mod:`.steps`).
"""

from .heatmaps import batch_joint_heatmaps, batch_limb_heatmaps, joint_heatmaps, limb_heatmaps
from .pose import flip_skeleton, normalize_skeleton, uniform_sample_indices

__all__ = [
    "batch_joint_heatmaps",
    "batch_limb_heatmaps",
    "flip_skeleton",
    "joint_heatmaps",
    "limb_heatmaps",
    "normalize_skeleton",
    "uniform_sample_indices",
]
