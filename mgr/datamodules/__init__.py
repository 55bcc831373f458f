"""LightningDataModules for SMG, iMiGUE, MA-52 and SynthMG (same layouts)."""

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
