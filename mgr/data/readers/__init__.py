"""Readers for the released file formats of SMG, iMiGUE and MA-52."""

from .common import ClipRecord, DataFormatError

__all__ = ["ClipRecord", "DataFormatError"]
