"""LightningDataModules for SMG, iMiGUE and SynthMG (same layouts)."""

from .base import MicroGestureDataModule
from .imigue import IMiGUEDataModule
from .smg import SMGDataModule

__all__ = ["IMiGUEDataModule", "MicroGestureDataModule", "SMGDataModule"]
