"""LightningDataModules for SMG, iMiGUE, MA-52 and SynthMG (same layouts).

Clip datamodules: :mod:`.base` (:class:`MicroGestureDataModule`: settings,
modalities, classes, datasets) with its two parents :mod:`.records` (a release
-> clip records: cache, videos, pseudo-labelled extras, checks) and
:mod:`.loaders` (samplers, DataLoaders, collate); one module per dataset
(:mod:`.smg`, :mod:`.imigue`, :mod:`.ma52`) and :mod:`.unlabeled` (pretraining).
Online detection: :mod:`.online_base` (:class:`OnlineDataModule`) and
:mod:`.online` (SMG, iMiGUE). :mod:`.release` checks the release folder and
writes SynthMG when a config says so (``synthmg``, ``synthesize``).
"""

from .base import MicroGestureDataModule
from .imigue import IMiGUEDataModule
from .ma52 import MA52DataModule
from .online import IMiGUEOnlineDataModule, OnlineDataModule, SMGOnlineDataModule
from .smg import SMGDataModule
from .unlabeled import UnlabeledDataModule

__all__ = [
    "IMiGUEDataModule",
    "IMiGUEOnlineDataModule",
    "MA52DataModule",
    "MicroGestureDataModule",
    "OnlineDataModule",
    "SMGDataModule",
    "SMGOnlineDataModule",
    "UnlabeledDataModule",
]
