"""Transforms: pose (sampling, normalisation, flip); heatmaps and video come with their issues."""

from .pose import flip_skeleton, normalize_skeleton, uniform_sample_indices

__all__ = ["flip_skeleton", "normalize_skeleton", "uniform_sample_indices"]
