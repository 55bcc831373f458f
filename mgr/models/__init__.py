"""Recognizers (LightningModules) and their building blocks.

:mod:`.base` is the :class:`Recognizer` template (networks, losses, metrics,
forward); :mod:`.hooks` its Lightning hooks (steps, test outputs, setup checks,
checkpoint hooks, optimizers); one module per recognizer; :mod:`.detector`,
:mod:`.detection` and :mod:`.streaming` the online detector; :mod:`.checkpoints`
reading checkpoints (and refusing one of another model or other classes);
:mod:`.backbones` the plain ``nn.Module`` networks.
"""

from .base import Recognizer
from .checkpoints import LoadReport, load_mmaction_checkpoint
from .detector import OnlineDetector
from .fgsgl import FGSGL
from .poseconv3d import PoseConv3D
from .rgbposeconv3d import RGBPoseConv3D
from .stcnn import STCNN
from .video import R2Plus1D, VideoSwin
from .video_checkpoints import (
    load_mgr_video_checkpoint,
    load_mmaction_swin_checkpoint,
    load_torchvision_video_checkpoint,
)
from .videomae import VideoMAE, VideoViT

__all__ = [
    "FGSGL",
    "STCNN",
    "LoadReport",
    "OnlineDetector",
    "PoseConv3D",
    "R2Plus1D",
    "RGBPoseConv3D",
    "Recognizer",
    "VideoMAE",
    "VideoSwin",
    "VideoViT",
    "load_mgr_video_checkpoint",
    "load_mmaction_checkpoint",
    "load_mmaction_swin_checkpoint",
    "load_torchvision_video_checkpoint",
]
