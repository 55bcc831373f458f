"""mmpose's person detectors and whole-body pose models as ONNX files, run with onnxruntime.

No mmcv, mmdet or mmpose: the pre- and post-processing of the published exports is
written here with numpy and torch, following the facts of their configs.

**Person detectors** (:class:`PersonDetector`), one input ``(N, 3, H, W)`` float32 and
either

* ``dets (N, D, 5)`` ``[x1, y1, x2, y2, score]`` and ``labels (N, D)`` class ids in the
  input's pixels, NMS inside (mmdeploy ``end2end.onnx``: the published YOLOX
  ``*_humanart`` and RTMDet person detectors), or
* raw YOLOX predictions ``(N, A, 5 + C)`` ``[cx, cy, log w, log h, objectness, class
  scores]`` on the stride-8/16/32 grids (Megvii's ``yolox_*.onnx``), decoded and
  suppressed here.

The frame is resized keeping its aspect ratio to fit ``H x W`` (bilinear), pasted at the
top left of a canvas filled with 114 and fed in BGR order: raw 0-255 for YOLOX (mmdet's
YOLOX config has no normalisation), ``(x - mean) / std`` with the BGR ImageNet mean and
std for RTMDet (``bgr_to_rgb=False`` in its config). Boxes of class 0 (person) scoring at
least ``score_threshold`` are kept.

**Whole-body pose models** (:class:`WholeBodyPoseModel`), top-down SimCC (RTMPose, RTMW,
DWPose): one input ``(N, 3, h, w)`` (``256x192`` or ``384x288``), outputs ``simcc_x (N,
K, w * r)`` and ``simcc_y (N, K, h * r)`` with ``K = 133`` COCO-WholeBody keypoints and
split ratio ``r = 2``. A person box is enlarged 1.25 times, widened or heightened to the
input's aspect ratio and resampled (bilinear, zeros outside the frame) so that its centre
lands on the input's centre (mmpose's ``get_warp_matrix`` with no rotation); the crop is
normalised in RGB with mean ``(123.675, 116.28, 103.53)`` and std ``(58.395, 57.12,
57.375)`` (``bgr_to_rgb=True`` in mmpose's config). A keypoint is the argmax of each axis
divided by ``r``, mapped back through the crop; its score is the smaller of the two
maxima (mmpose's ``get_simcc_maximum``).

Models whose batch axis is fixed to 1 are called once per frame / person; others get a
whole batch per call.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from mgr.errors import UserError

__all__ = [
    "DETECTOR_FORMATS",
    "PersonDetector",
    "WholeBodyPoseModel",
    "bbox_to_center_scale",
    "crop_person",
    "decode_simcc",
    "file_sha256",
    "nms",
    "open_session",
]

#: Detector pre-processing: BGR order, pad value, mean and std (``None``: raw pixels).
DETECTOR_FORMATS: dict[str, dict[str, Any]] = {
    "yolox": {"mean": None, "std": None},
    "rtmdet": {"mean": (103.53, 116.28, 123.675), "std": (57.375, 57.12, 58.395)},
}
_PAD_VALUE = 114.0
_POSE_MEAN = (123.675, 116.28, 103.53)
_POSE_STD = (58.395, 57.12, 57.375)
_YOLOX_STRIDES = (8, 16, 32)

DeviceName = Literal["cpu", "cuda"]


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file (read in 1 MiB blocks)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def open_session(path: str | Path, device: DeviceName = "cpu", threads: int = 0) -> Any:
    """An onnxruntime session on the chosen device.

    Args:
        path: the ``.onnx`` file.
        device: ``"cpu"`` or ``"cuda"`` (onnxruntime's CUDA provider, with CPU fallback
            for operators it lacks).
        threads: intra-op threads (0: onnxruntime's default, all cores).

    Raises:
        UserError: without onnxruntime (the ``pose`` extra), for a missing file, a file
            onnxruntime cannot read, or ``cuda`` without onnxruntime's CUDA provider.
    """
    try:
        import onnxruntime as ort
    except ImportError as err:
        raise UserError(
            "running pose models needs onnxruntime: pip install 'mgr[pose]' "
            "(or onnxruntime-gpu for --device cuda)"
        ) from err
    path = Path(path)
    if not path.is_file():
        raise UserError(f"model file {path} does not exist")
    if device not in ("cpu", "cuda"):
        raise UserError(f"device must be 'cpu' or 'cuda', got {device!r}")
    providers = ["CPUExecutionProvider"]
    if device == "cuda":
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise UserError(
                f"--device cuda: onnxruntime {ort.__version__} has no CUDAExecutionProvider "
                f"(available: {ort.get_available_providers()}); install onnxruntime-gpu"
            )
        providers.insert(0, "CUDAExecutionProvider")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3  # errors only: no optimizer chatter on stderr
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=providers)
    except Exception as err:  # onnxruntime raises its own exception types
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"{path}: not a readable ONNX model ({first})") from err


def _describe(args: Sequence[Any]) -> str:
    return ", ".join(f"{a.name} {list(a.shape)}" for a in args) or "none"


def _static(dim: Any) -> int | None:
    return dim if isinstance(dim, int) and dim > 0 else None


def _fixed_batch(session: Any) -> bool:
    return _static(session.get_inputs()[0].shape[0]) == 1


# ------------------------------------------------------------------------------ boxes
def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU ``(A, B)`` of boxes ``(A, 4)`` and ``(B, 4)`` ``[x1, y1, x2, y2]``."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:4], b[None, :, 2:4])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area_a = np.clip(a[:, 2:4] - a[:, :2], 0, None).prod(-1)
    area_b = np.clip(b[:, 2:4] - b[:, :2], 0, None).prod(-1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression.

    Args:
        boxes: ``(D, 4)`` ``[x1, y1, x2, y2]``.
        scores: ``(D,)``.
        iou_threshold: a box overlapping a kept, higher-scoring box by more than this
            IoU is dropped.

    Returns:
        Indices of the kept boxes, highest score first.
    """
    order = np.argsort(-scores, kind="stable")
    keep = []
    while len(order):
        i, order = order[0], order[1:]
        keep.append(int(i))
        if len(order):
            order = order[box_iou(boxes[i : i + 1], boxes[order])[0] <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


# ------------------------------------------------------------------------------ detector
@dataclass(frozen=True)
class _Letterbox:
    """How a frame was placed on the detector's canvas."""

    scale_x: float
    scale_y: float


class PersonDetector:
    """A person detector exported by mmdeploy (or Megvii's raw YOLOX), see the module doc.

    Args:
        path: the ``.onnx`` file.
        device: ``"cpu"`` or ``"cuda"``.
        kind: ``"yolox"``, ``"rtmdet"`` or ``"auto"`` (``rtmdet`` if the path names
            it, else ``yolox``): the pre-processing of the model.
        score_threshold: person boxes scoring below this are dropped.
        nms_threshold: IoU of the NMS applied to raw YOLOX outputs.
        threads: onnxruntime intra-op threads (0: all cores).

    Raises:
        UserError: if the file is not a detector of either signature (the message
            lists what it expects and what the file has).
    """

    def __init__(
        self,
        path: str | Path,
        device: DeviceName = "cpu",
        kind: Literal["auto", "yolox", "rtmdet"] = "auto",
        score_threshold: float = 0.3,
        nms_threshold: float = 0.45,
        threads: int = 0,
    ) -> None:
        self.path = Path(path)
        if kind == "auto":
            kind = "rtmdet" if "rtmdet" in str(self.path).lower() else "yolox"
        if kind not in DETECTOR_FORMATS:
            raise UserError(f"detector kind must be 'yolox' or 'rtmdet', got {kind!r}")
        self.kind = kind
        self.score_threshold = score_threshold
        self.nms_threshold = nms_threshold
        self.session = open_session(self.path, device, threads)
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        expected = (
            "a person detector has one input (N, 3, H, W) and outputs dets (N, D, 5) "
            "[x1, y1, x2, y2, score] + labels (N, D) (mmdeploy end2end.onnx with NMS) or raw "
            "YOLOX predictions (N, A, 5 + classes)"
        )
        shape = inputs[0].shape if len(inputs) == 1 else []
        size = (_static(shape[2]), _static(shape[3])) if len(shape) == 4 else (None, None)
        if len(shape) != 4 or shape[1] not in (3, "3") or None in size or not outputs:
            raise UserError(
                f"{self.path}: not a person detector: {expected}; this file has inputs "
                f"[{_describe(inputs)}] and outputs [{_describe(outputs)}]"
            )
        first = outputs[0].shape
        last = _static(first[2]) if len(first) == 3 else None
        if (
            len(first) == 3
            and len(outputs) == 2
            and len(outputs[1].shape) == 2
            and last in (5, None)
        ):
            self.mode = "dets"
        elif len(first) == 3 and len(outputs) == 1 and (last is None or last > 5):
            self.mode = "raw"
        else:
            raise UserError(
                f"{self.path}: not a person detector: {expected}; this file has inputs "
                f"[{_describe(inputs)}] and outputs [{_describe(outputs)}]"
            )
        self.input_name = inputs[0].name
        self.input_size: tuple[int, int] = size  # type: ignore[assignment]  # (H, W)
        self.fixed_batch = _fixed_batch(self.session)
        fmt = DETECTOR_FORMATS[kind]
        self.mean, self.std = fmt["mean"], fmt["std"]

    def preprocess(self, frames: np.ndarray) -> tuple[np.ndarray, _Letterbox]:
        """Frames ``(B, H, W, 3)`` uint8 RGB -> the model input ``(B, 3, H', W')`` float32."""
        b, h, w, _ = frames.shape
        ih, iw = self.input_size
        ratio = min(ih / h, iw / w)
        nh, nw = max(int(h * ratio + 0.5), 1), max(int(w * ratio + 0.5), 1)
        x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
        if (nh, nw) != (h, w):
            x = F.interpolate(x, size=(nh, nw), mode="bilinear", align_corners=False)
            x = x.round().clamp(0, 255)  # the resized image is uint8, as cv2 makes it
        canvas = torch.full((b, 3, ih, iw), _PAD_VALUE)
        canvas[:, :, :nh, :nw] = x.flip(1)  # RGB -> BGR
        if self.mean is not None:
            mean = torch.tensor(self.mean).view(1, 3, 1, 1)
            canvas = (canvas - mean) / torch.tensor(self.std).view(1, 3, 1, 1)
        return canvas.numpy(), _Letterbox(nw / w, nh / h)

    def _run(self, inputs: np.ndarray) -> list[np.ndarray]:
        if not self.fixed_batch:
            return self.session.run(None, {self.input_name: inputs})
        outs = [self.session.run(None, {self.input_name: x[None]}) for x in inputs]
        return [np.concatenate([o[k] for o in outs]) for k in range(len(outs[0]))]

    def __call__(self, frames: np.ndarray) -> list[np.ndarray]:
        """Person boxes of each frame.

        Args:
            frames: ``(B, H, W, 3)`` uint8 RGB.

        Returns:
            ``B`` arrays ``(D_i, 5)`` float32 ``[x1, y1, x2, y2, score]`` in frame pixels,
            clipped to the frame, highest score first.
        """
        inputs, box = self.preprocess(frames)
        outputs = self._run(inputs)
        if self.mode == "dets" and outputs[0].shape[-1] != 5:
            raise UserError(
                f"{self.path}: dets output has {outputs[0].shape[-1]} values per box, expected 5 "
                "[x1, y1, x2, y2, score]"
            )
        h, w = frames.shape[1:3]
        result = []
        for i in range(len(frames)):
            if self.mode == "dets":
                dets, labels = outputs[0][i], outputs[1][i]
                keep = (labels.astype(np.int64) == 0) & (dets[:, 4] >= self.score_threshold)
                dets = dets[keep].astype(np.float32)
            else:
                dets = self._decode_raw(outputs[0][i])
            dets = dets[np.argsort(-dets[:, 4], kind="stable")]
            dets[:, [0, 2]] = np.clip(dets[:, [0, 2]] / box.scale_x, 0, w)
            dets[:, [1, 3]] = np.clip(dets[:, [1, 3]] / box.scale_y, 0, h)
            result.append(dets)
        return result

    def _decode_raw(self, pred: np.ndarray) -> np.ndarray:
        """Raw YOLOX ``(A, 5 + C)`` -> person boxes ``(D, 5)`` after NMS, canvas pixels."""
        ih, iw = self.input_size
        grids, strides = [], []
        for s in _YOLOX_STRIDES:
            ys, xs = np.meshgrid(np.arange(ih // s), np.arange(iw // s), indexing="ij")
            grids.append(np.stack([xs.ravel(), ys.ravel()], 1))
            strides.append(np.full(xs.size, s))
        grid, stride = np.concatenate(grids), np.concatenate(strides)[:, None]
        if len(grid) != len(pred):
            raise UserError(
                f"{self.path}: {len(pred)} raw YOLOX predictions, but a {ih}x{iw} input has "
                f"{len(grid)} grid cells at strides {_YOLOX_STRIDES}"
            )
        center = (pred[:, :2] + grid) * stride
        size = np.exp(pred[:, 2:4]) * stride
        score = pred[:, 4] * pred[:, 5]  # objectness x person (class 0)
        boxes = np.concatenate([center - size / 2, center + size / 2, score[:, None]], 1)
        boxes = boxes[score >= self.score_threshold]
        return boxes[nms(boxes[:, :4], boxes[:, 4], self.nms_threshold)].astype(np.float32)


# ------------------------------------------------------------------------------ pose
def bbox_to_center_scale(
    boxes: np.ndarray, aspect: float, padding: float = 1.25
) -> tuple[np.ndarray, np.ndarray]:
    """Mmpose's top-down box: centre and ``(w, h)`` enlarged by ``padding`` to ``aspect``.

    Args:
        boxes: ``(P, 4)`` ``[x1, y1, x2, y2]``.
        aspect: input width / height.
        padding: enlargement of the box.

    Returns:
        ``center (P, 2)`` and ``scale (P, 2)``, with ``scale_w / scale_h = aspect``.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    center = (boxes[:, :2] + boxes[:, 2:]) / 2
    wh = (boxes[:, 2:] - boxes[:, :2]) * padding
    w, h = wh[:, 0], wh[:, 1]
    wider = w > h * aspect
    scale = np.stack([np.where(wider, w, h * aspect), np.where(wider, w / aspect, h)], 1)
    return center, scale


def crop_person(
    frame: np.ndarray, center: np.ndarray, scale: np.ndarray, size: tuple[int, int]
) -> torch.Tensor:
    """Resample the box ``center +- scale / 2`` of a frame to ``size``, bilinearly.

    Output pixel ``(i, j)`` samples the frame at ``center + ((j, i) - (w, h) / 2) * scale /
    (w, h)`` (pixel centres at integer coordinates, zeros outside the frame): what
    ``cv2.warpAffine`` does with mmpose's warp matrix.

    Args:
        frame: ``(H, W, 3)`` uint8.
        center: ``(2,)`` ``(x, y)``.
        scale: ``(2,)`` ``(w, h)`` of the box in frame pixels.
        size: ``(h, w)`` of the crop.

    Returns:
        ``(3, h, w)`` float32 crop, channels as in ``frame``.
    """
    h, w = size
    xs = center[0] + (np.arange(w) - w / 2) * (scale[0] / w)
    ys = center[1] + (np.arange(h) - h / 2) * (scale[1] / h)
    height, width = frame.shape[:2]
    # Read only the frame region the grid touches (plus one pixel for interpolation).
    x0, x1 = (
        int(np.clip(np.floor(xs[0]), 0, width - 1)),
        int(np.clip(np.ceil(xs[-1]), 0, width - 1)),
    )
    y0, y1 = (
        int(np.clip(np.floor(ys[0]), 0, height - 1)),
        int(np.clip(np.ceil(ys[-1]), 0, height - 1)),
    )
    patch = torch.from_numpy(np.ascontiguousarray(frame[y0 : y1 + 1, x0 : x1 + 1]))
    patch = patch.permute(2, 0, 1)[None].float()
    ph, pw = patch.shape[-2:]
    gx = torch.from_numpy((xs - x0) * 2 / max(pw - 1, 1) - 1).float()
    gy = torch.from_numpy((ys - y0) * 2 / max(ph - 1, 1) - 1).float()
    grid = torch.stack(torch.meshgrid(gx, gy, indexing="xy"), -1)[None]  # (1, h, w, 2)
    if pw == 1 or ph == 1:  # degenerate patch: grid_sample needs two pixels per axis
        patch = F.pad(patch, (0, 1, 0, 1))
    return F.grid_sample(patch, grid, mode="bilinear", padding_mode="zeros", align_corners=True)[0]


def decode_simcc(
    simcc_x: np.ndarray, simcc_y: np.ndarray, split_ratio: float
) -> tuple[np.ndarray, np.ndarray]:
    """SimCC argmax decoding (mmpose's ``get_simcc_maximum``).

    Args:
        simcc_x: ``(P, K, Wx)`` x-axis logits.
        simcc_y: ``(P, K, Wy)`` y-axis logits.
        split_ratio: bins per input pixel.

    Returns:
        ``locs (P, K, 2)`` in input pixels and ``scores (P, K)`` = the smaller of the two
        axis maxima.
    """
    locs = np.stack([simcc_x.argmax(-1), simcc_y.argmax(-1)], -1).astype(np.float32)
    scores = np.minimum(simcc_x.max(-1), simcc_y.max(-1)).astype(np.float32)
    return locs / split_ratio, scores


class WholeBodyPoseModel:
    """A top-down SimCC whole-body pose model (RTMPose / RTMW / DWPose ONNX), see the module doc.

    Args:
        path: the ``.onnx`` file.
        device: ``"cpu"`` or ``"cuda"``.
        padding: box enlargement before cropping (mmpose: 1.25).
        max_batch: people per model call (models with a dynamic batch axis).
        threads: onnxruntime intra-op threads (0: all cores).

    Raises:
        UserError: if the file is not a SimCC model of 133 keypoints (the message lists
            what it expects and what the file has).
    """

    num_keypoints = 133

    def __init__(
        self,
        path: str | Path,
        device: DeviceName = "cpu",
        padding: float = 1.25,
        max_batch: int = 32,
        threads: int = 0,
    ) -> None:
        self.path = Path(path)
        self.padding = padding
        self.max_batch = max_batch
        self.session = open_session(self.path, device, threads)
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        shape = inputs[0].shape if len(inputs) == 1 else []
        size = (_static(shape[2]), _static(shape[3])) if len(shape) == 4 else (None, None)
        names = [o.name for o in outputs]
        named = {"simcc_x", "simcc_y"} <= set(names)
        order = [names.index("simcc_x"), names.index("simcc_y")] if named else [0, 1]
        ok = len(shape) == 4 and None not in size and len(outputs) == 2
        ok = ok and all(len(outputs[k].shape) == 3 for k in order)
        if not ok:
            raise UserError(
                f"{self.path}: not a SimCC pose model: expected one input (N, 3, h, w) and "
                "outputs simcc_x (N, 133, w * 2) and simcc_y (N, 133, h * 2) (RTMPose / RTMW / "
                f"DWPose end2end.onnx); this file has inputs [{_describe(inputs)}] and outputs "
                f"[{_describe(outputs)}]"
            )
        keypoints = {outputs[k].shape[1] for k in order}
        if keypoints != {self.num_keypoints}:
            raise UserError(
                f"{self.path}: a pose model of {sorted(keypoints, key=str)} keypoints; mgr pose "
                f"needs a whole-body model of {self.num_keypoints} COCO-WholeBody keypoints "
                "(RTMW, DWPose or RTMPose-wholebody)"
            )
        self.input_name = inputs[0].name
        self.output_names = [names[k] for k in order]
        self.input_size: tuple[int, int] = size  # type: ignore[assignment]  # (h, w)
        self.fixed_batch = _fixed_batch(self.session)

    def _run(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        step = 1 if self.fixed_batch else self.max_batch
        xs, ys = [], []
        for i in range(0, len(crops), step):
            x, y = self.session.run(self.output_names, {self.input_name: crops[i : i + step]})
            xs.append(x)
            ys.append(y)
        return np.concatenate(xs), np.concatenate(ys)

    def __call__(
        self, frames: np.ndarray, frame_index: Sequence[int], boxes: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Keypoints of the people in the given boxes.

        Args:
            frames: ``(F, H, W, 3)`` uint8 RGB.
            frame_index: ``(P,)`` frame of each box.
            boxes: ``(P, 4+)`` ``[x1, y1, x2, y2, ...]`` in frame pixels.

        Returns:
            ``keypoints (P, 133, 2)`` float32 frame pixels and ``scores (P, 133)`` float32.
        """
        num = len(frame_index)
        if num == 0:
            return np.zeros((0, 133, 2), np.float32), np.zeros((0, 133), np.float32)
        h, w = self.input_size
        center, scale = bbox_to_center_scale(np.asarray(boxes)[:, :4], w / h, self.padding)
        mean = torch.tensor(_POSE_MEAN).view(3, 1, 1)
        std = torch.tensor(_POSE_STD).view(3, 1, 1)
        crops = torch.stack(
            [
                (crop_person(frames[f], center[p], scale[p], (h, w)) - mean) / std
                for p, f in enumerate(frame_index)
            ]
        ).numpy()
        simcc_x, simcc_y = self._run(crops)
        locs, scores = decode_simcc(simcc_x, simcc_y, simcc_x.shape[-1] / w)
        keypoints = center[:, None] + (locs - np.array([w / 2, h / 2])) * (scale / [w, h])[:, None]
        return keypoints.astype(np.float32), scores
