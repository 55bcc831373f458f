"""The batch contract shared by every DataModule and Recognizer.

A batch is a plain ``dict``. Every key is optional except ``label``; a
recognizer declares the keys it reads (``Recognizer.input_keys``), a datamodule
the keys it supplies (``MicroGestureDataModule.supplies``), and a mismatch is
an error at setup. Shapes:

* ``skeleton``: ``(B, C, T, V, M)`` float: channels (e.g. x, y, confidence),
  frames, joints, persons.
* ``heatmap``: ``(B, K, T, H, W)`` float: one channel per joint or limb.
* ``video``: ``(B, C, T, H, W)`` float as a model sees it. Loaders ship it as
  uint8 (a quarter of the bytes through worker queues and host-to-device copies)
  with a per-sample recipe (``video_flip``, ``video_mean``/``video_std`` or
  ``video_taylor``); the datamodule's ``on_after_batch_transfer`` normalises and
  flips it on the device (:func:`mgr.data.transforms.video.finish_video_batch`),
  and a Recognizer does the same to a uint8 batch handed to it directly.
* ``label``: ``(B,)`` int64, 0-based class ids (``-1`` where unknown, e.g. a test set).
* ``sample_id``: list of ``B`` str.
* ``fg_text``: list of ``B`` str: each clip's FG-Text sentence (FG-SGL,
  :mod:`mgr.data.fgtext`; sides mirrored for a flipped clip).
* ``class_text``: list of ``B`` str: the class-level sentence of each clip's label.
* ``features``: ``(B, D, N)`` float: a Recognizer's features over ``N`` sliding
  windows of an untrimmed sequence (online detection on features,
  :mod:`mgr.features`), with ``centers (B, N)`` window-centre frames.

Test-time views: when a datamodule produces ``N`` views (clips and/or flips)
of one sample, the modality tensor carries an extra view axis right after the
batch axis, e.g. ``skeleton (B, N, C, T, V, M)``. Recognizers fold it to
``(B*N, ...)`` for the network and average the ``N`` predictions.
"""

from __future__ import annotations

from typing import TypedDict

from torch import Tensor

__all__ = ["MODALITY_NDIM", "Batch", "Sample"]

#: Number of dimensions of each modality tensor in a batch, without views.
MODALITY_NDIM: dict[str, int] = {"skeleton": 5, "heatmap": 5, "video": 5}


class Sample(TypedDict, total=False):
    """One sample as returned by a Dataset (no batch axis)."""

    skeleton: Tensor  # (C, T, V, M) or (N, C, T, V, M) with test-time views
    heatmap: Tensor  # (K, T, H, W)
    video: Tensor  # (C, T, H, W)
    label: int
    sample_id: str
    fg_text: str
    class_text: str


class Batch(TypedDict, total=False):
    """A collated batch (see the module docstring for shapes)."""

    skeleton: Tensor
    heatmap: Tensor
    video: Tensor
    label: Tensor
    sample_id: list[str]
    fg_text: list[str]
    class_text: list[str]
