"""Person tracks from per-frame boxes, and the video's main subject.

Tracking is greedy IoU matching frame by frame: every pair of an active track (unseen
for at most ``max_gap`` frames since its last box) and a box of the current frame with
IoU at least ``iou_threshold`` to that last box is a candidate; candidates are taken in
order of decreasing IoU, each track and box once. Boxes left over start new tracks.
Track ids count from 0 in order of appearance.

The **main subject** is the track with the largest box area summed over its frames:
the person who is both large in the picture and present for long (the interviewee of
a press conference, not a passer-by in front of the camera, nor a distant audience
member visible throughout). Ties go to the earlier track.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .models import box_iou

__all__ = ["Track", "main_track", "track_boxes"]


@dataclass
class Track:
    """One person through the video.

    Attributes:
        id: track id (0, 1, ... in order of appearance).
        frames: frame indices where the track has a box, increasing.
        boxes: ``[x1, y1, x2, y2, score]`` per entry of ``frames``.
    """

    id: int
    frames: list[int] = field(default_factory=list)
    boxes: list[np.ndarray] = field(default_factory=list)

    @property
    def area(self) -> float:
        """Box area summed over the track's frames."""
        if not self.boxes:
            return 0.0
        b = np.stack(self.boxes)
        return float(
            (np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)).sum()
        )


def track_boxes(
    detections: Sequence[np.ndarray], iou_threshold: float = 0.3, max_gap: int = 30
) -> list[Track]:
    """Link per-frame boxes into tracks (see the module docstring).

    Args:
        detections: per frame, ``(D_t, 5+)`` boxes ``[x1, y1, x2, y2, score, ...]``.
        iou_threshold: smallest IoU between a track's last box and a new box to link them.
        max_gap: frames a track may go unseen and still be continued.

    Returns:
        The tracks, by id.
    """
    tracks: list[Track] = []
    for t, dets in enumerate(detections):
        dets = np.asarray(dets, dtype=np.float32).reshape(-1, dets.shape[-1] if len(dets) else 5)
        active = [k for k in tracks if t - k.frames[-1] - 1 <= max_gap]
        taken: set[int] = set()
        if active and len(dets):
            last = np.stack([k.boxes[-1][:4] for k in active])
            iou = box_iou(last, dets[:, :4])
            pairs = np.argwhere(iou >= iou_threshold)
            # Decreasing IoU; ties keep argwhere's track-then-box order (stable sort).
            pairs = pairs[np.argsort(-iou[pairs[:, 0], pairs[:, 1]], kind="stable")]
            used_tracks: set[int] = set()
            for a, d in pairs.tolist():
                if a in used_tracks or d in taken:
                    continue
                used_tracks.add(a)
                taken.add(d)
                active[a].frames.append(t)
                active[a].boxes.append(dets[d])
        for d in range(len(dets)):
            if d not in taken:
                tracks.append(Track(len(tracks), [t], [dets[d]]))
    return tracks


def main_track(tracks: Sequence[Track]) -> Track | None:
    """The track with the largest summed box area (the first on a tie); ``None`` if none."""
    if not tracks:
        return None
    areas = [k.area for k in tracks]
    return tracks[int(np.argmax(areas))]
