"""Tiny ONNX models with the signatures of mmpose's published exports (nothing downloaded).

* :func:`export_detector`: mmdeploy ``end2end.onnx`` of a person detector: input ``input
  (N, 3, H, W)``, outputs ``dets (N, D, 5)`` and ``labels (N, D)``. Its boxes are fixed in
  the input's pixels (plus zero times an image feature, so the graph reads the image).
* :func:`export_raw_yolox`: Megvii's raw YOLOX output ``(N, A, 6)`` over the stride-8/16/32
  grids, with chosen anchors firing.
* :func:`export_template_pose`: RTMPose/RTMW ``simcc_x (N, 133, 2w)``, ``simcc_y (N, 133,
  2h)`` peaking at a fixed whole-body template placed in the crop.
* :func:`export_bright_spot_pose`: SimCC logits = the crop's brightest column / row, for
  geometry tests (every keypoint lands on the brightest pixel).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

DET_SIZE = (64, 64)  # (H, W) of the tiny detectors' input
POSE_SIZE = (32, 24)  # (h, w) of the tiny pose models' input (the 4:3 of 256x192)


def _export(model: nn.Module, path: Path, inputs: torch.Tensor, outputs: list[str]) -> Path:
    axes = {"input": {0: "batch"}, **{name: {0: "batch"} for name in outputs}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            model.eval(), (inputs,), str(path), input_names=["input"], output_names=outputs,
            dynamic_axes=axes, dynamo=False, opset_version=17,
        )  # fmt: skip
    return path


class _FixedDetector(nn.Module):
    def __init__(self, boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("boxes", torch.as_tensor(boxes, dtype=torch.float32))
        self.register_buffer("scores", torch.as_tensor(scores, dtype=torch.float32))
        self.register_buffer("labels", torch.as_tensor(labels, dtype=torch.int64))
        self.conv = nn.Conv2d(3, 1, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        touch = self.conv(x).mean((1, 2, 3)) * 0.0  # (N,): reads the image, adds nothing
        dets = torch.cat([self.boxes, self.scores[:, None]], 1)[None] + touch[:, None, None]
        labels = self.labels[None] + touch[:, None].long()
        return dets, labels


def frame_to_canvas(boxes: np.ndarray, frame_size: tuple[int, int]) -> np.ndarray:
    """Frame-pixel boxes -> the detector input's pixels (resize keeping the aspect ratio)."""
    h, w = frame_size
    ratio = min(DET_SIZE[0] / h, DET_SIZE[1] / w)
    nh, nw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    return np.asarray(boxes, np.float64) * [nw / w, nh / h, nw / w, nh / h]


def export_detector(
    path: Path,
    frame_boxes: np.ndarray,
    frame_size: tuple[int, int],
    scores: list[float],
    labels: list[int] | None = None,
) -> Path:
    """A detector whose boxes are ``frame_boxes`` on frames of ``frame_size`` (H, W)."""
    boxes = frame_to_canvas(frame_boxes, frame_size)
    labels = [0] * len(scores) if labels is None else labels
    model = _FixedDetector(boxes, np.asarray(scores), np.asarray(labels))
    return _export(model, path, torch.rand(1, 3, *DET_SIZE), ["dets", "labels"])


class _RawYOLOX(nn.Module):
    def __init__(self, pred: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("pred", torch.as_tensor(pred, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pred[None] + x.mean((1, 2, 3))[:, None, None] * 0.0


def yolox_cells() -> list[tuple[int, int, int]]:
    """``(stride, gx, gy)`` of every raw YOLOX prediction row, in output order."""
    h, w = DET_SIZE
    return [(s, gx, gy) for s in (8, 16, 32) for gy in range(h // s) for gx in range(w // s)]


def export_raw_yolox(path: Path, fire: dict[tuple[int, int, int], list[float]]) -> Path:
    """Raw YOLOX ``(N, A, 6)``; ``fire[(stride, gx, gy)] = [dx, dy, log w, log h, obj, cls]``."""
    cells = yolox_cells()
    pred = np.zeros((len(cells), 6), np.float32)
    pred[:, 2:4] = 0.0
    for cell, row in fire.items():
        pred[cells.index(cell)] = row
    return _export(_RawYOLOX(pred), path, torch.rand(1, 3, *DET_SIZE), ["output"])


def wholebody_template() -> np.ndarray:
    """A standing person's 133 COCO-WholeBody points in crop units ``(u, v)`` in ``[0, 1]``.

    The person faces the camera, so their left side is on the image's right (larger u).
    """
    pts = np.zeros((133, 2))
    body = {  # person's side: left joints at u > 0.5
        0: (0.50, 0.16), 1: (0.53, 0.14), 2: (0.47, 0.14), 3: (0.56, 0.15), 4: (0.44, 0.15),
        5: (0.62, 0.27), 6: (0.38, 0.27), 7: (0.70, 0.41), 8: (0.30, 0.41), 9: (0.67, 0.55),
        10: (0.33, 0.55), 11: (0.57, 0.58), 12: (0.43, 0.58), 13: (0.58, 0.75),
        14: (0.42, 0.75), 15: (0.58, 0.90), 16: (0.42, 0.90),
        17: (0.62, 0.94), 18: (0.64, 0.93), 19: (0.57, 0.92),
        20: (0.38, 0.94), 21: (0.36, 0.93), 22: (0.43, 0.92),
    }  # fmt: skip
    for k, uv in body.items():
        pts[k] = uv
    cx, cy, rx, ry = 0.50, 0.16, 0.05, 0.06
    face = np.zeros((68, 2))
    a = np.linspace(np.pi * 0.95, np.pi * 0.05, 17)  # jaw, from the person's right (image left)
    face[:17] = np.stack([cx - rx * np.cos(a), cy + ry * np.sin(a) * 0.9], 1)
    face[17:22] = np.stack([np.linspace(cx - 0.04, cx - 0.01, 5), np.full(5, cy - 0.04)], 1)
    face[22:27] = np.stack([np.linspace(cx + 0.01, cx + 0.04, 5), np.full(5, cy - 0.04)], 1)
    face[27:31] = np.stack([np.full(4, cx), np.linspace(cy - 0.03, cy, 4)], 1)
    face[31:36] = np.stack([np.linspace(cx - 0.015, cx + 0.015, 5), np.full(5, cy + 0.01)], 1)
    for first, ex in ((36, cx - 0.022), (42, cx + 0.022)):
        t = np.linspace(0, 2 * np.pi, 6, endpoint=False)
        face[first : first + 6] = np.stack(
            [ex + 0.01 * np.cos(t), cy - 0.02 + 0.005 * np.sin(t)], 1
        )
    t = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    face[48:60] = np.stack([cx - 0.02 * np.cos(t), cy + 0.03 + 0.008 * np.sin(t)], 1)
    t = np.linspace(0, 2 * np.pi, 8, endpoint=False)
    face[60:68] = np.stack([cx - 0.012 * np.cos(t), cy + 0.03 + 0.004 * np.sin(t)], 1)
    pts[23:91] = face
    for first, wrist, sign in ((91, body[9], 1), (112, body[10], -1)):
        pts[first] = wrist
        for f in range(5):
            angle = np.deg2rad(-40 + 20 * f)
            for k in range(1, 5):
                r = 0.012 * k
                pts[first + 1 + 4 * f + k - 1] = (
                    wrist[0] + sign * r * np.sin(angle) * 0.8, wrist[1] + r * np.cos(angle),
                )  # fmt: skip
    return pts


class _TemplatePose(nn.Module):
    def __init__(self, template: np.ndarray) -> None:
        super().__init__()
        h, w = POSE_SIZE
        bins_x = np.clip(np.round(template[:, 0] * w * 2), 0, 2 * w - 1).astype(int)
        bins_y = np.clip(np.round(template[:, 1] * h * 2), 0, 2 * h - 1).astype(int)
        k = len(template)
        sx, sy = np.zeros((k, 2 * w), np.float32), np.zeros((k, 2 * h), np.float32)
        sx[np.arange(k), bins_x] = 0.9  # a SimCC peak of 0.9: the keypoint score
        sy[np.arange(k), bins_y] = 0.9
        self.register_buffer("sx", torch.from_numpy(sx))
        self.register_buffer("sy", torch.from_numpy(sy))
        self.conv = nn.Conv2d(3, 1, 3, padding=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        touch = self.conv(x).mean((1, 2, 3))[:, None, None] * 0.0
        return self.sx[None] + touch, self.sy[None] + touch


def template_bins() -> tuple[np.ndarray, np.ndarray]:
    """The SimCC bins ``(133,)`` x and y where the template model peaks."""
    h, w = POSE_SIZE
    t = wholebody_template()
    return (
        np.clip(np.round(t[:, 0] * w * 2), 0, 2 * w - 1),
        np.clip(np.round(t[:, 1] * h * 2), 0, 2 * h - 1),
    )


def export_template_pose(path: Path, keypoints: int = 133) -> Path:
    """RTMW-like: peaks at :func:`wholebody_template` (``keypoints != 133``: a wrong model)."""
    model = _TemplatePose(wholebody_template()[:keypoints])  # 17: a body-only RTMPose
    return _export(model, path, torch.rand(1, 3, *POSE_SIZE), ["simcc_x", "simcc_y"])


class _BrightSpot(nn.Module):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        gray = x.sum(1)  # (N, h, w), normalised input: brighter is larger
        col = gray.amax(1).repeat_interleave(2, -1)  # (N, 2w): bins 2j, 2j+1 <- column j
        row = gray.amax(2).repeat_interleave(2, -1)  # (N, 2h)
        zeros = torch.zeros(1, 133, 1)
        return col[:, None] + zeros, row[:, None] + zeros


def export_bright_spot_pose(path: Path) -> Path:
    """Every keypoint at the crop's brightest column and row (first bin of the pixel)."""
    return _export(_BrightSpot(), path, torch.rand(1, 3, *POSE_SIZE), ["simcc_x", "simcc_y"])
