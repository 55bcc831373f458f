"""Recognizers (LightningModules) and their building blocks."""

from .base import Recognizer
from .checkpoints import LoadReport, load_mmaction_checkpoint
from .poseconv3d import PoseConv3D
from .rgbposeconv3d import RGBPoseConv3D
from .stcnn import STCNN

__all__ = [
    "STCNN",
    "LoadReport",
    "PoseConv3D",
    "RGBPoseConv3D",
    "Recognizer",
    "load_mmaction_checkpoint",
]
