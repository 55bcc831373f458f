"""Recognizers (LightningModules) and their building blocks."""

from .base import Recognizer
from .stcnn import STCNN

__all__ = ["STCNN", "Recognizer"]
