"""Metrics of mgr, as torchmetrics ``Metric`` objects that synchronise across processes.

* :mod:`mgr.metrics.classification`: MA-52's official ``F1_mean`` (:class:`F1Mean`).
* :mod:`mgr.metrics.aggregation`: :class:`SampleMean`, the exact mean over a split
  under several processes (``val/loss``).
* :mod:`mgr.metrics.detection`: online detection in untrimmed video: the SMG start
  kit's F1 (:class:`OnlineF1`) and ActivityNet temporal mAP (:class:`TemporalMAP`).

Top-1/top-5 accuracy, macro-F1 and mean-class accuracy are torchmetrics' own
(``MulticlassAccuracy``, ``MulticlassF1Score``), built by
:meth:`mgr.models.Recognizer.configure_metrics`.
"""

from .aggregation import SampleMean
from .classification import F1_MEAN_PARTS, F1Mean, f1_from_confusion, is_ma52
from .detection import (
    DEFAULT_TIOU_THRESHOLDS,
    OnlineF1,
    TemporalMAP,
    interpolated_average_precision,
    segment_iou,
    temporal_iou,
)

__all__ = [
    "DEFAULT_TIOU_THRESHOLDS",
    "F1_MEAN_PARTS",
    "F1Mean",
    "OnlineF1",
    "SampleMean",
    "TemporalMAP",
    "f1_from_confusion",
    "interpolated_average_precision",
    "is_ma52",
    "segment_iou",
    "temporal_iou",
]
