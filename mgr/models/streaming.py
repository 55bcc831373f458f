"""Streaming (chunk-by-chunk) inference for :class:`~mgr.models.detector.OnlineDetector`.

:class:`StreamingDetector` consumes an untrimmed sequence as it arrives and emits
each detection once, as soon as later frames can no longer change it. Design:

* **Rolling buffer.** The last ``context`` frames are kept. Frames are counted
  from the start of the stream; a frame's *absolute* index never changes.
* **A run every ``chunk`` frames.** Whenever ``chunk`` new frames have arrived
  (at absolute frame ``n = k * chunk``), ``model.detect`` runs on the whole
  buffer ``[n - len(buffer), n)`` and its segments are shifted to absolute frames.
  :meth:`StreamingDetector.push` splits its input at these boundaries, so the
  runs happen at the same frames however the stream is cut into pushes.
* **Bounded look-ahead.** A detection is *final* when its end (exclusive) is at
  least ``lookahead`` frames before the buffer's end, ``end <= n - lookahead``:
  the model has seen ``lookahead`` frames past it, and the detection is emitted
  with ``emitted_at = n``. Hence the latency ``emitted_at - end`` of a detection
  that the model keeps finding lies in ``[lookahead, lookahead + chunk)``.
* **Left edge.** Once the buffer is full, its first frames lack left context and
  instances crossing its start are cut; detections starting less than
  ``lookahead`` frames after the buffer's start are therefore not emitted (they
  were final, and emitted, in an earlier run). An instance longer than about
  ``context - 2 * lookahead - chunk`` frames can only be emitted truncated.
* **Deduplication.** The same instance is found again by later runs. Candidates
  are visited by decreasing score and dropped when their temporal IoU
  (:func:`mgr.metrics.temporal_iou`, intersection over hull) with an already
  emitted detection of the same label is above ``dedup_iou`` (0.5): the first
  emission is kept, never revised.
  A detection is also emitted late when the model finds it (above ``min_score``)
  only in a later run than the one in which its end became final; such late ones
  are mostly weak (the latency bound holds for stable detections, not for these).
* **End of stream.** :meth:`StreamingDetector.flush` runs on the buffer once
  more and treats every remaining detection as final (``emitted_at`` = frames seen).

Candidates below ``min_score`` (default: the model's ``min_score``) are ignored
before deduplication, so raising it keeps weak early detections from
suppressing later, stronger ones.

Cost: each run processes up to ``context`` frames, so streaming costs about
``context / chunk`` times the offline forward pass per frame. Inputs must be
pre-processed as for offline inference (e.g. the per-frame centring and
shoulder scaling of :class:`~mgr.datamodules.online.SMGOnlineDataModule`).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

if TYPE_CHECKING:  # the detector imports this module when it streams
    from .detector import OnlineDetector

__all__ = [
    "Detection",
    "StreamingDetector",
    "detections_to_dict",
    "latency_stats",
    "stream_sequence",
]


@dataclass(frozen=True)
class Detection:
    """One emitted detection, in absolute frames of the stream.

    Attributes:
        start: first frame of the instance.
        end: frame after the last one (exclusive end, SMG start-kit convention).
        label: class id.
        score: confidence.
        emitted_at: frames seen when it was emitted (the stream position).
    """

    start: int
    end: int
    label: int
    score: float
    emitted_at: int

    @property
    def latency(self) -> int:
        """Frames between the instance's end and its emission (``emitted_at - end``)."""
        return self.emitted_at - self.end


class StreamingDetector:
    """Chunk-by-chunk inference with a bounded look-ahead (see the module docstring).

    The model is put in eval mode.

    Args:
        model: a trained detector.
        chunk: frames between two runs of the model.
        context: frames kept in the rolling buffer (the model's input length).
        lookahead: frames the model must have seen after a detection's end
            before it is emitted.
        min_score: candidates below this score are ignored; ``None``: the model's
            ``min_score``.
        dedup_iou: temporal IoU above which a candidate duplicates an emitted
            detection of the same label.

    Raises:
        ValueError: if ``chunk < 1``, ``lookahead < 0`` or ``context`` is not
            larger than ``chunk + 2 * lookahead``.
    """

    def __init__(
        self,
        model: OnlineDetector,
        *,
        chunk: int = 64,
        context: int = 512,
        lookahead: int = 64,
        min_score: float | None = None,
        dedup_iou: float = 0.5,
    ) -> None:
        if chunk < 1 or lookahead < 0:
            raise ValueError(f"need chunk >= 1 and lookahead >= 0, got {chunk} and {lookahead}")
        if context <= chunk + 2 * lookahead:
            raise ValueError(
                f"context={context} must exceed chunk + 2 * lookahead = {chunk + 2 * lookahead}"
            )
        self.model = model.eval()
        self.chunk, self.context, self.lookahead = int(chunk), int(context), int(lookahead)
        self.min_score = float(model.hparams.min_score if min_score is None else min_score)
        self.dedup_iou = float(dedup_iou)
        self.reset()

    def reset(self) -> None:
        """Forget the stream: empty buffer, frame counter at 0, nothing emitted."""
        self._buffer: Tensor | None = None
        self._shape: tuple[int, int, int] | None = None  # (C, V, M) of the stream
        self.frames_seen = 0
        self._since_run = 0
        self._recent: list[Detection] = []  # emitted, still overlapping the buffer
        self._finished = False

    # ------------------------------------------------------------------ public
    def push(self, frames: Tensor) -> list[Detection]:
        """Append frames to the stream; the detections that became final.

        Args:
            frames: ``(C, t, V, 1)`` new frames (``t >= 0``), pre-processed as for
                offline inference; ``C * V * 1`` must be the model's ``in_channels``.

        Returns:
            Newly final detections, by emission time, then start frame.

        Raises:
            ValueError: on a wrong shape, a change of shape within the stream, or a
                push after :meth:`flush` (call :meth:`reset` first).
        """
        if self._finished:
            raise ValueError("the stream was flushed; call reset() to start a new one")
        frames = self._check(frames)
        out: list[Detection] = []
        pos = 0
        while pos < frames.shape[1]:
            n = min(self.chunk - self._since_run, frames.shape[1] - pos)
            self._append(frames[:, pos : pos + n])
            pos += n
            self._since_run += n
            if self._since_run == self.chunk:
                self._since_run = 0
                out += self._run(final=False)
        return out

    def flush(self) -> list[Detection]:
        """End the stream: emit every remaining detection (``emitted_at`` = frames seen)."""
        if self._finished:
            return []
        self._finished = True
        return self._run(final=True) if self._buffer is not None else []

    # ------------------------------------------------------------------ internals
    def _check(self, frames: Tensor) -> Tensor:
        if not isinstance(frames, Tensor) or frames.ndim != 4:
            shape = tuple(frames.shape) if isinstance(frames, Tensor) else type(frames).__name__
            raise ValueError(f"expected frames (C, t, V, 1), got {shape}")
        c, _, v, m = frames.shape
        in_channels = int(self.model.hparams.in_channels)
        if c * v * m != in_channels:
            raise ValueError(
                f"frames (C, t, V, M) = {tuple(frames.shape)} give C*V*M = {c * v * m}, "
                f"but the model has in_channels={in_channels}"
            )
        if self._shape is not None and (c, v, m) != self._shape:
            raise ValueError(
                f"frames (C, t, V, M) = {tuple(frames.shape)} changed from (C, V, M) = "
                f"{self._shape} earlier in the stream"
            )
        self._shape = (c, v, m)
        return frames.to(device=self.model.device, dtype=self.model.dtype)

    def _append(self, frames: Tensor) -> None:
        buf = frames if self._buffer is None else torch.cat([self._buffer, frames], dim=1)
        self._buffer = buf[:, -self.context :]
        self.frames_seen += frames.shape[1]

    def _run(self, final: bool) -> list[Detection]:
        assert self._buffer is not None
        length = self._buffer.shape[1]
        offset = self.frames_seen - length  # absolute frame of the buffer's first frame
        batch: dict[str, Any] = {
            "skeleton": self._buffer[None],
            "mask": torch.ones(1, length, dtype=torch.bool, device=self._buffer.device),
        }
        # Candidates below min_score can neither be emitted nor decay others in soft-NMS,
        # so raising the pre-NMS threshold to it gives the same detections, faster.
        hp = self.model.hparams
        saved = hp.pre_nms_thresh
        hp.pre_nms_thresh = max(float(saved), math.nextafter(self.min_score, -math.inf))
        try:
            (det,) = self.model.detect(batch)
        finally:
            hp.pre_nms_thresh = saved
        segs = det["segments"].cpu() + offset
        scores, labels = det["scores"].float().cpu(), det["labels"].cpu()
        keep = scores >= self.min_score
        if not final:
            keep &= segs[:, 1] <= self.frames_seen - self.lookahead
        if offset > 0:  # the buffer's start cuts the stream: no left context there
            keep &= segs[:, 0] >= offset + self.lookahead
        order = torch.argsort(torch.where(keep, scores, -1.0), descending=True, stable=True)
        order = order[: int(keep.sum())]
        # Emitted detections that end before the buffer cannot overlap a candidate.
        self._recent = [d for d in self._recent if d.end > offset]
        new: list[Detection] = []
        for i in order.tolist():
            start, end = (int(x) for x in segs[i])
            label = int(labels[i])
            if any(
                d.label == label and _tiou(start, end, d.start, d.end) > self.dedup_iou
                for d in self._recent
            ):
                continue
            d = Detection(start, end, label, float(scores[i]), self.frames_seen)
            self._recent.append(d)
            new.append(d)
        return sorted(new, key=lambda d: (d.start, d.end))


def _tiou(s1: int, e1: int, s2: int, e2: int) -> float:
    """:func:`mgr.metrics.temporal_iou` of two segments (intersection over hull)."""
    hull = max(e1, e2) - min(s1, s2)
    return max(0, min(e1, e2) - max(s1, s2)) / hull if hull > 0 else 0.0


def detections_to_dict(detections: list[Detection]) -> dict[str, Tensor]:
    """Detections as the per-video dict of :class:`~mgr.metrics.OnlineF1` / ``TemporalMAP``.

    Returns:
        ``segments (D, 2)`` int64 ``(start, end_exclusive)``, ``scores (D,)``, ``labels (D,)``.
    """
    return {
        "segments": torch.tensor([[d.start, d.end] for d in detections], dtype=torch.long).reshape(
            -1, 2
        ),
        "scores": torch.tensor([d.score for d in detections], dtype=torch.float32),
        "labels": torch.tensor([d.label for d in detections], dtype=torch.long),
    }


def stream_sequence(
    model: OnlineDetector, skeleton: Tensor, **kwargs: Any
) -> tuple[list[Detection], dict[str, float]]:
    """Stream a whole sequence through a :class:`StreamingDetector` and flush it.

    Args:
        model: a trained detector.
        skeleton: ``(C, T, V, 1)`` the sequence.
        **kwargs: :class:`StreamingDetector` options (``chunk``, ``context``, ...).

    Returns:
        All emitted detections (in emission order) and latency statistics over
        them, in frames (``emitted_at - end``): ``count``, ``mean``, ``median``,
        ``min``, ``max`` (``nan`` for an empty list, ``count`` 0).
    """
    streamer = StreamingDetector(model, **kwargs)
    detections = streamer.push(skeleton) + streamer.flush()
    return detections, latency_stats(detections)


def latency_stats(detections: list[Detection]) -> dict[str, float]:
    """``count``, ``mean``, ``median``, ``min``, ``max`` of ``emitted_at - end`` (frames)."""
    lat = [d.latency for d in detections]
    if not lat:
        nan = float("nan")
        return {"count": 0.0, "mean": nan, "median": nan, "min": nan, "max": nan}
    return {
        "count": float(len(lat)),
        "mean": float(statistics.fmean(lat)),
        "median": float(statistics.median(lat)),
        "min": float(min(lat)),
        "max": float(max(lat)),
    }
