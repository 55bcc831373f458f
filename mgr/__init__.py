"""mgr: a PyTorch Lightning library of micro-gesture recognizers.

The public API is re-exported here; see the README for a tour::

    import mgr
    dm = mgr.IMiGUEDataModule("data/synthmg_imigue", clip_len=32)
    model = mgr.STCNN(num_classes=dm.num_classes, num_joints=dm.num_joints)
"""

__version__ = "0.1.0"

from . import classes, skeletons
from .classes import ClassList, get_classes
from .data.datasets import HeatmapOptions, VideoOptions
from .data.synthetic import SynthMGConfig, generate_synthmg
from .datamodules import (
    IMiGUEDataModule,
    MA52DataModule,
    MicroGestureDataModule,
    SMGDataModule,
    UnlabeledDataModule,
)
from .models import (
    STCNN,
    PoseConv3D,
    R2Plus1D,
    Recognizer,
    RGBPoseConv3D,
    VideoMAE,
    VideoSwin,
    VideoViT,
    load_mmaction_checkpoint,
)
from .predictions import PredictionSet, load_predictions
from .skeletons import SkeletonLayout, get_layout

__all__ = [
    "STCNN",
    "ClassList",
    "HeatmapOptions",
    "IMiGUEDataModule",
    "MA52DataModule",
    "MicroGestureDataModule",
    "PoseConv3D",
    "PredictionSet",
    "R2Plus1D",
    "RGBPoseConv3D",
    "Recognizer",
    "SMGDataModule",
    "SkeletonLayout",
    "SynthMGConfig",
    "UnlabeledDataModule",
    "VideoMAE",
    "VideoOptions",
    "VideoSwin",
    "VideoViT",
    "__version__",
    "classes",
    "generate_synthmg",
    "get_classes",
    "get_layout",
    "load_mmaction_checkpoint",
    "load_predictions",
    "skeletons",
]
