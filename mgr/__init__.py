"""mgr: a PyTorch Lightning library of micro-gesture recognizers.

The public API is re-exported here; see the README for a tour::

    import mgr
    dm = mgr.IMiGUEDataModule("data/synthmg_imigue", clip_len=32)
    model = mgr.STCNN(num_classes=dm.num_classes, num_joints=dm.num_joints)

Imports run one way, lowest layer first (checked by ``tools/import_graph.py`` and
``tests/test_import_graph.py``: no cycles, no import of a higher layer):

1. foundations: :mod:`.errors` (one-line user errors), :mod:`.options` (option
   dataclasses from dicts), :mod:`.fileio`, :mod:`.batch`, :mod:`.skeletons`,
   :mod:`.classes`, :mod:`.protocols`, :mod:`.metrics`, :mod:`.distributed`;
2. :mod:`.data`: readers, transforms, datasets, samplers, SynthMG (no Lightning);
3. training: :mod:`.datamodules`, :mod:`.models`, :mod:`.callbacks`, :mod:`.predictions`;
4. applications: :mod:`.features`, :mod:`.fusion`, :mod:`.pseudo_label`,
   :mod:`.detect`, :mod:`.recognize`, :mod:`.check`, :mod:`.annotate`;
5. the command line: :mod:`.cli` (and this package's re-exports).
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
