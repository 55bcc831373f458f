"""Online micro-gesture detection: (start, end, class) in untrimmed sequences.

:class:`OnlineDetector` is the DyFADet-based detector of the online-recognition
paper (``papers/online-recognition.txt``) in ActionFormer's anchor-free form:
a masked 1-D embedding of the per-frame input, a feature pyramid of dynamic
encoder layers, the multi-scale spatial-temporal attention head, per-level
classification (sigmoid focal loss) and boundary regression (1-D DIoU), and
Gaussian soft-NMS. The network lives in :mod:`mgr.models.backbones.temporal`,
targets, losses and post-processing in :mod:`mgr.models.detection`.

The input is either the raw skeleton sequence (``input_key="skeleton"``:
``skeleton (B, C, T, V, 1)`` flattened to ``(B, C*V, T)``, one step per frame),
so the whole path runs without a pretrained encoder, or, as in the paper (which
feeds VideoMAEv2 window features), a recognizer's sliding-window features
(``input_key="features"``: ``features (B, D, N)`` from ``mgr extract-features``,
one step per window, see :mod:`mgr.features`). The same masked 1-D embedding
takes either. Instance ``(start, end)`` with an inclusive end is the continuous
span ``[start, end + 1)`` in steps; detections are converted back to frames
when the batch carries the window ``centers`` and reported in the SMG start-kit
convention ``(start, end_exclusive)``, scored by :class:`OnlineF1` (label
match and temporal IoU > 0.3) and :class:`TemporalMAP` against the frame-unit
instances.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
from lightning.pytorch import LightningModule
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor

from mgr.data.transforms.steps import steps_to_frames
from mgr.metrics import OnlineF1, TemporalMAP
from mgr.protocols import Protocol, literature_line

from .backbones.temporal import TemporalDetectionNet
from .checkpoints import check_checkpoint_model
from .detection import assign_targets, detection_loss, make_points, postprocess

__all__ = ["OnlineDetector"]


def _default_optimizer(params: Any) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=1e-3, weight_decay=0.05)


class OnlineDetector(LightningModule):
    """Temporal micro-gesture detector over untrimmed sequences.

    Batches are those of :class:`~mgr.datamodules.online.OnlineDataModule`:
    ``skeleton (B, C, T, V, 1)`` or ``features (B, D, T)``, ``mask (B, T)``,
    per-sequence ``segments (G, 2)`` (inclusive ends, window steps) and
    ``labels (G,)``; feature batches also carry ``centers (B, T)``,
    ``num_frames (B,)`` and ``frame_segments`` (the instances in frames).

    With features, the regression ranges, ``num_levels`` strides and the
    datamodule's windows count feature steps (``stride`` frames each). The
    features' ``meta.json`` (taken from the datamodule at ``setup``) is kept in
    the checkpoint as ``feature_meta``, so ``mgr detect --recognizer`` rebuilds
    the same windows.

    Args:
        num_classes: classes to detect (SMG: 17 with non-MG, 16 without).
        class_names: class names (stored in checkpoints).
        in_channels: per-step input size: ``C * V`` of the skeleton (Kinect world
            xyz: 3 * 25), or the recognizer's feature size ``D``.
        input_key: ``"skeleton"`` (raw keypoints) or ``"features"`` (recognizer
            window features).
        embed_dim: width of the pyramid.
        num_levels: pyramid levels (level ``l`` has stride ``2**l`` frames).
        arch: ``"dyn"`` (DyFADet dynamic encoder) or ``"conv"`` (plain conv).
        msta: use the multi-scale spatial-temporal attention head (paper §3.4).
        regression_ranges: per level, the instance lengths (frames) it predicts;
            ``None``: ``(0, 8), (8, 16), (16, 32), ...`` doubling, last open.
        center_sample_radius: ActionFormer's centre sampling radius (strides).
        drop_path: stochastic depth of the encoder layers.
        pre_nms_thresh: class probability below which points are not decoded.
        nms: ``"soft"`` (Gaussian soft-NMS, ActionFormer/DyFADet) or ``"hard"``.
        nms_sigma: soft-NMS ``sigma`` in ``exp(-iou^2 / sigma)``.
        min_score: detections below this score are dropped.
        max_detections: detections kept per sequence.
        iou_threshold: temporal IoU of a hit for the SMG F1 (start kit: 0.3, strict).
        f1_min_score: detections scored by the F1 need at least this score (the F1
            counts every prediction, so it needs an operating point; mAP ranks all).
        optimizer: optimizer factory (default AdamW lr 1e-3, wd 0.05).
        scheduler: learning-rate scheduler factory, stepped per epoch.
    """

    input_keys: tuple[str, ...] = ("skeleton",)

    def __init__(
        self,
        num_classes: int,
        class_names: Sequence[str] | None = None,
        in_channels: int = 75,
        input_key: Literal["skeleton", "features"] = "skeleton",
        embed_dim: int = 128,
        num_levels: int = 6,
        arch: Literal["dyn", "conv"] = "dyn",
        msta: bool = True,
        regression_ranges: list[tuple[float, float]] | None = None,
        center_sample_radius: float = 1.5,
        drop_path: float = 0.1,
        pre_nms_thresh: float = 0.001,
        nms: Literal["soft", "hard"] = "soft",
        nms_sigma: float = 0.5,
        min_score: float = 0.01,
        max_detections: int = 200,
        iou_threshold: float = 0.3,
        f1_min_score: float = 0.3,
        optimizer: OptimizerCallable = _default_optimizer,
        scheduler: LRSchedulerCallable | None = None,
    ) -> None:
        super().__init__()
        if input_key not in ("skeleton", "features"):
            raise ValueError(f"input_key must be 'skeleton' or 'features', got {input_key!r}")
        self.input_keys = (input_key,)
        #: ``meta.json`` of the training features (input_key="features"), from the datamodule.
        self.feature_meta: dict[str, Any] | None = None
        if regression_ranges is None:
            regression_ranges = [(0.0, 8.0)] + [
                (8.0 * 2 ** (i - 1), 8.0 * 2**i if i < num_levels - 1 else 1e4)
                for i in range(1, num_levels)
            ]
        if len(regression_ranges) != num_levels:
            raise ValueError(f"{len(regression_ranges)} regression ranges for {num_levels} levels")
        self.save_hyperparameters(ignore=["optimizer", "scheduler"])
        self.hparams["regression_ranges"] = [tuple(map(float, r)) for r in regression_ranges]
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.net = TemporalDetectionNet(
            in_channels,
            num_classes,
            embed_dim=embed_dim,
            num_levels=num_levels,
            arch=arch,
            msta=msta,
            drop_path=drop_path,
        )
        # ActionFormer normalises the losses by an EMA of the number of positives.
        self.register_buffer("loss_normalizer", torch.tensor(100.0))
        self.metrics = torch.nn.ModuleDict(
            {
                "f1": OnlineF1(iou_threshold=iou_threshold, one_to_one=True),
                "f1_startkit": OnlineF1(iou_threshold=iou_threshold, one_to_one=False),
                "map": TemporalMAP(),
            }
        )

    # ------------------------------------------------------------------ network
    def _inputs(self, batch: dict[str, Any]) -> tuple[Tensor, Tensor]:
        if self.hparams.input_key == "features":
            if "features" not in batch:
                raise ValueError(
                    "this detector reads recognizer features (input_key='features') but the "
                    f"batch has {sorted(k for k in batch if torch.is_tensor(batch[k]))}; "
                    "use a datamodule with features_dir"
                )
            x = batch["features"]
            if x.ndim != 3 or x.shape[1] != self.hparams.in_channels:
                raise ValueError(
                    f"expected features (B, D={self.hparams.in_channels}, T), got {tuple(x.shape)}"
                )
            return x, batch["mask"]
        if "skeleton" not in batch:
            raise ValueError(
                "this detector reads raw skeletons (input_key='skeleton') but the batch has "
                f"{sorted(k for k in batch if torch.is_tensor(batch[k]))}"
            )
        skeleton = batch["skeleton"]
        if skeleton.ndim != 5:
            raise ValueError(f"expected skeleton (B, C, T, V, M), got {tuple(skeleton.shape)}")
        b, c, t, v, m = skeleton.shape
        x = skeleton.permute(0, 1, 3, 4, 2).reshape(b, c * v * m, t)
        if x.shape[1] != self.hparams.in_channels:
            raise ValueError(
                f"in_channels={self.hparams.in_channels} but the skeleton has C*V*M = {x.shape[1]}"
            )
        return x, batch["mask"]

    def forward(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Per-point class logits ``(B, N, K)`` and offsets ``(B, N, 2)`` of all levels."""
        x, mask = self._inputs(batch)
        return self.net(x, mask)

    def _points(self, lengths: Sequence[int], device: torch.device) -> Tensor:
        return make_points(lengths, self.net.strides, self.hparams.regression_ranges, device=device)

    # ------------------------------------------------------------------ training
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        """Focal + DIoU losses on the points of every level."""
        out = self(batch)
        points = self._points(out["lengths"], out["cls_logits"].device)
        cls_t, reg_t = [], []
        for seg, lab in zip(batch["segments"], batch["labels"], strict=True):
            # Inclusive frame ends -> continuous spans [start, end + 1).
            spans = seg.to(points) + torch.tensor([0.0, 1.0], device=points.device)
            c, r = assign_targets(
                points, spans, lab.to(points.device), self.hparams.num_classes,
                center_sample_radius=self.hparams.center_sample_radius,
            )  # fmt: skip
            cls_t.append(c)
            reg_t.append(r)
        cls_t, reg_t = torch.stack(cls_t), torch.stack(reg_t)
        num_pos = (cls_t.sum(-1) > 0) & out["mask"]
        if self.training:
            self.loss_normalizer.mul_(0.9).add_(0.1 * max(float(num_pos.sum()), 1.0))
        losses = detection_loss(
            out["cls_logits"], out["offsets"], out["mask"], cls_t, reg_t,
            normalizer=float(self.loss_normalizer),
        )  # fmt: skip
        self.log_dict(
            {f"train/{k}": v for k, v in losses.items() if k != "num_pos"},
            batch_size=len(batch["segments"]),
        )
        return losses["loss"]

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def detect(self, batch: dict[str, Any]) -> list[dict[str, Tensor]]:
        """Detections per sequence of the batch.

        Returns:
            Per sequence: ``segments (D, 2)`` ``(start, end_exclusive)`` frames
            (integers, clipped to the sequence), ``scores (D,)``, ``labels (D,)``.
        """
        hp = self.hparams
        out = self(batch)
        points = self._points(out["lengths"], out["cls_logits"].device)
        results = []
        for i in range(out["cls_logits"].shape[0]):
            segs, scores, labels = postprocess(
                points, out["cls_logits"][i], out["offsets"][i], out["mask"][i],
                pre_nms_thresh=hp.pre_nms_thresh, nms=hp.nms, sigma=hp.nms_sigma,
                min_score=hp.min_score, max_detections=hp.max_detections,
            )  # fmt: skip
            length = int(batch["mask"][i].sum())
            segs = segs.clamp(0, length)
            if "centers" in batch:  # feature steps -> frames
                num_frames = int(batch["num_frames"][i])
                segs = steps_to_frames(segs, batch["centers"][i, :length], num_frames)
                length = num_frames
            segs = segs.round().clamp(0, length)
            keep = segs[:, 1] > segs[:, 0]
            results.append(
                {"segments": segs[keep].long(), "scores": scores[keep], "labels": labels[keep]}
            )
        return results

    def stream(self, skeleton: Tensor, **kwargs: Any) -> tuple[list, dict[str, float]]:
        """Streaming inference over one sequence (see :mod:`mgr.models.streaming`).

        Args:
            skeleton: ``(C, T, V, 1)`` normalised keypoints of the whole stream.
            **kwargs: ``chunk``, ``context``, ``lookahead``, ``min_score`` of
                :class:`~mgr.models.streaming.StreamingDetector`.

        Returns:
            The detections in emission order and latency statistics (frames from
            an instance's end to its emission).
        """
        from .streaming import stream_sequence

        if self.hparams.input_key != "skeleton":
            raise NotImplementedError("streaming runs on raw skeletons only (input_key='skeleton')")
        return stream_sequence(self, skeleton, **kwargs)

    def _evaluate(self, batch: dict[str, Any], stage: str) -> None:
        preds = self.detect(batch)
        # Feature batches: detections are in frames (detect), so score against frame instances.
        segments = batch.get("frame_segments", batch["segments"])
        targets = [
            {"segments": seg + torch.tensor([0, 1], device=seg.device), "labels": lab}
            for seg, lab in zip(segments, batch["labels"], strict=True)
        ]
        self.metrics["map"].update(preds, targets)
        confident = [
            {k: v[p["scores"] >= self.hparams.f1_min_score] for k, v in p.items()} for p in preds
        ]
        self.metrics["f1"].update(confident, targets)
        self.metrics["f1_startkit"].update(confident, targets)

    def _log_metrics(self, stage: str) -> dict[str, float]:
        # Runs on every process (epoch end): compute() gathers the states of all
        # processes, whose loaders hold disjoint sequences (eval_shard_sampler), so
        # every process gets the values of the whole split.
        f1 = self.metrics["f1"].compute()
        startkit = self.metrics["f1_startkit"].compute()
        maps = self.metrics["map"].compute()
        values = {
            f"{stage}/f1": f1["f1"],
            f"{stage}/precision": f1["precision"],
            f"{stage}/recall": f1["recall"],
            f"{stage}/f1_startkit": startkit["f1"],
            **{f"{stage}/{k}": v for k, v in maps.items()},
        }
        # The values are already global and equal on every process: a max over processes
        # keeps them as they are (a mean might round) and tells Lightning they are synced.
        self.log_dict(
            {k: torch.as_tensor(v, dtype=torch.float32) for k, v in values.items()},
            sync_dist=True,
            reduce_fx="max",
        )
        for metric in self.metrics.values():
            metric.reset()
        return {k: float(v) for k, v in values.items()}

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """Accumulate the SMG F1 (both matching modes) and temporal mAP."""
        self._evaluate(batch, "val")

    def on_validation_epoch_end(self) -> None:
        """Log ``val/f1``, ``val/f1_startkit``, ``val/mAP`` ..."""
        self._log_metrics("val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """Accumulate the test metrics."""
        self._evaluate(batch, "test")

    def on_test_epoch_end(self) -> None:
        """Log ``test/f1``, ``test/f1_startkit``, ``test/mAP`` ...; print them with their rules."""
        values = self._log_metrics("test")
        dm = getattr(self.trainer, "datamodule", None)
        protocol = dm.protocol("test") if callable(getattr(dm, "protocol", None)) else None
        rank_zero_info(format_detection_summary(values, self.metrics, protocol))

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> list[dict[str, Any]]:
        """Detections with their sequence ids and frame offsets."""
        return [
            {**det, "video_id": vid, "offset": int(off)}
            for det, vid, off in zip(
                self.detect(batch), batch["video_id"], batch["offset"], strict=True
            )
        ]

    # ------------------------------------------------------------------ setup, checkpoints
    def setup(self, stage: str) -> None:
        """Check the datamodule's input (``input_key``, ``in_channels``); keep its feature meta."""
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if dm is None:
            return
        hp = self.hparams
        key = getattr(dm, "input_key", None)
        if key is not None and key != hp.input_key:
            raise ValueError(
                f"{type(dm).__name__} supplies {key!r} but the detector reads "
                f"input_key={hp.input_key!r}"
            )
        channels = getattr(dm, "in_channels", None)
        if channels is not None and channels != hp.in_channels:
            raise ValueError(
                f"{type(dm).__name__} supplies {channels} channels per step but the detector "
                f"has in_channels={hp.in_channels}"
            )
        meta = getattr(dm, "feature_meta", None)
        if meta is not None:
            self.feature_meta = meta

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Record the class and the training features' meta (``mgr detect --recognizer``)."""
        checkpoint["mgr_class"] = f"{type(self).__module__}.{type(self).__qualname__}"
        if self.feature_meta is not None:
            checkpoint["feature_meta"] = self.feature_meta

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Refuse a checkpoint of another model; restore ``feature_meta``."""
        check_checkpoint_model(checkpoint, self)
        self.feature_meta = checkpoint.get("feature_meta")

    def configure_optimizers(self) -> Any:
        """The configured optimizer (and per-epoch scheduler)."""
        optimizer = self.optimizer_factory(self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": self.scheduler_factory(optimizer)}


def format_detection_summary(
    values: dict[str, float], metrics: Any, protocol: Protocol | None
) -> str:
    """The ``mgr test`` summary of a detector: scores with their matching rules and protocol.

    Args:
        values: the logged ``test/...`` scores.
        metrics: the detector's metric dict (``f1``, ``f1_startkit``: :class:`OnlineF1`;
            ``map``: :class:`TemporalMAP`).
        protocol: where the scores were measured (``None``: unknown).
    """
    thresholds = ", ".join(f"{t:g}" for t in metrics["map"].iou_thresholds)
    lines = ["", "mgr test summary (online detection)"]
    if protocol is not None:
        lines.append(f"  protocol            {protocol.describe()}")
    lines += [
        f"  test f1             {values['test/f1']:.4f}   ({metrics['f1'].rule})",
        f"  test f1_startkit    {values['test/f1_startkit']:.4f}   ({metrics['f1_startkit'].rule})",
        f"  test mAP            {values['test/mAP']:.4f}   (ActivityNet, tIoU >= {thresholds})",
    ]
    published = literature_line(protocol) if protocol is not None else None
    if published:
        lines.append(f"  {published}")
    return "\n".join(lines)
