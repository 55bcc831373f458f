"""RGBPoseConv3D (Duan et al., CVPR 2022) on RGB clips and their pose heatmap volumes.

The "R+J" / "R+L" streams of MM-Gesture (MiGA'25 §3.3): an RGB pathway and a
heatmap pathway with lateral connections
(:class:`mgr.models.backbones.rgbposeconv3d.RGBPoseConv3D`), each pooled and
classified by its own head, as mmaction2's ``RGBPoseHead`` does:

* training loss ``w_rgb * L(rgb logits) + w_pose * L(pose logits)`` (MM-Gesture's
  ``L_R+J = L_R + L_J``), ``L`` being the criterion configured on the base
  class (cross-entropy, label smoothing, focal, class weights, logit adjustment);
* prediction ``P = w * softmax(rgb) + (1 - w) * softmax(pose)`` with
  ``w = fusion_weight`` (MM-Gesture: ``P_R+J = (P_R + P_J) / 2``).

:meth:`RGBPoseConv3D.forward` returns ``log P``: a valid logit vector whose
softmax is ``P`` itself, so the base class's metrics, its ``val/loss`` (the
NLL of ``P``) and ``predict_step``'s ``probs = softmax(logits)`` all see the
fused prediction. Test-time views are averaged per stream before fusing
(``test_average="prob"``: the mean of each stream's probabilities, which,
fusion being linear, equals the mean of the fused probabilities).

Checkpoints of mmaction2's ``rgbpose_conv3d`` configs load with
:data:`RGBPOSE_PREFIX_MAP` (``cls_head.fc_rgb`` -> ``head_rgb.1``,
``cls_head.fc_pose`` -> ``head_pose.1``, backbone keys unchanged).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torchmetrics.classification import MulticlassAccuracy

from mgr.batch import MODALITY_NDIM

from .backbones.rgbposeconv3d import RGBPoseConv3D as RGBPoseBackbone
from .base import _NO_COUNTS, Recognizer
from .checkpoints import load_mmaction_checkpoint
from .losses import logit_adjusted

__all__ = ["RGBPOSE_HEAD_KEYS", "RGBPOSE_PREFIX_MAP", "RGBPoseConv3D"]

#: mmaction2 checkpoint prefix -> :class:`RGBPoseConv3D` prefix.
RGBPOSE_PREFIX_MAP: dict[str, str] = {
    "backbone.rgb_path.": "backbone.rgb_path.",
    "backbone.pose_path.": "backbone.pose_path.",
    "cls_head.fc_rgb.": "head_rgb.1.",
    "cls_head.fc_pose.": "head_pose.1.",
}
#: name components of mmaction2's ``RGBPoseHead`` classifiers.
RGBPOSE_HEAD_KEYS: tuple[str, str] = ("fc_rgb", "fc_pose")

_STREAMS = ("rgb", "pose")


class RGBPoseConv3D(Recognizer):
    """Two-pathway RGB + pose-heatmap recognizer with two heads and late fusion.

    Reads ``video (B, 3, T, H, W)`` (normalised RGB) and ``heatmap (B, K,
    speed_ratio * T, H / 4, W / 4)``; the defaults are mmaction2's
    ``rgbpose_conv3d`` config (8 RGB frames at 224², 32 heatmap frames at 56²).

    Args:
        num_classes: number of classes.
        in_channels: heatmap channels ``K`` (joints or limbs of the layout).
        speed_ratio: heatmap frames per RGB frame.
        channel_ratio: channel ratio that sizes the laterals.
        lateral: connect the pathways (``False``: two independent streams
            trained jointly, fused only at the output).
        rgb_base_channels: RGB stem width (64).
        rgb_stage_blocks: RGB blocks per stage ((3, 4, 6, 3): ResNet-50).
        pose_base_channels: pose stem width (32; ``rgb_base_channels / 2``).
        pose_stage_blocks: pose blocks per stage ((4, 6, 3)).
        rgb_detach: stop gradients of the RGB loss into the pose pathway.
        pose_detach: stop gradients of the pose loss into the RGB pathway.
        rgb_drop_path: in training, probability of dropping the laterals into
            the RGB pathway for a batch.
        pose_drop_path: the same for the laterals into the pose pathway.
        dropout: dropout before each classifier (mmaction2's ``RGBPoseHead``: 0.5).
        rgb_loss_weight: weight ``w_rgb`` of the RGB head's loss.
        pose_loss_weight: weight ``w_pose`` of the pose head's loss.
        fusion_weight: weight ``w`` of the RGB probabilities in the prediction
            ``w * P_rgb + (1 - w) * P_pose``.
        pretrained: path of an mmaction2 RGBPoseConv3D checkpoint (or of an
            mgr-named one) to start from.
        pretrained_reset_head: ``None`` (auto): keep the checkpoint's two
            classifiers when their classes are this model's (count and, where
            stored, names), else freshly initialised ones (e.g. mmaction2's merged
            ``rgbpose_conv3d_init`` weights); ``True``/``False`` force either.
        **kwargs: :class:`~mgr.models.base.Recognizer` arguments (optimizer,
            scheduler, label_smoothing, loss, class_weights, test_average, ...).
    """

    input_keys = ("video", "heatmap")
    head_prefixes = ("head_rgb.", "head_pose.")

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 17,
        speed_ratio: int = 4,
        channel_ratio: int = 4,
        lateral: bool = True,
        rgb_base_channels: int = 64,
        rgb_stage_blocks: Sequence[int] = (3, 4, 6, 3),
        pose_base_channels: int = 32,
        pose_stage_blocks: Sequence[int] = (4, 6, 3),
        rgb_detach: bool = False,
        pose_detach: bool = False,
        rgb_drop_path: float = 0.0,
        pose_drop_path: float = 0.0,
        dropout: float = 0.5,
        rgb_loss_weight: float = 1.0,
        pose_loss_weight: float = 1.0,
        fusion_weight: float = 0.5,
        pretrained: str | None = None,
        pretrained_reset_head: bool | None = None,
        **kwargs: Any,
    ) -> None:
        if not 0.0 <= fusion_weight <= 1.0:
            raise ValueError(f"fusion_weight must be in [0, 1], got {fusion_weight}")
        if rgb_loss_weight < 0 or pose_loss_weight < 0 or rgb_loss_weight + pose_loss_weight == 0:
            raise ValueError(
                "loss weights must be >= 0 and not both 0, got "
                f"rgb_loss_weight={rgb_loss_weight}, pose_loss_weight={pose_loss_weight}"
            )
        super().__init__(num_classes, dropout=dropout, **kwargs)
        if pretrained is not None:
            self.load_pretrained(
                pretrained,
                load_mmaction_checkpoint,
                pretrained_reset_head,
                prefix_map=RGBPOSE_PREFIX_MAP,
                head_keys=RGBPOSE_HEAD_KEYS,
            )

    # ------------------------------------------------------------------ template
    def configure_models(self) -> None:
        """Build the two-pathway backbone, the pooling and the two heads.

        The base class's single ``head`` is not built: the two classifiers are
        ``head_rgb`` and ``head_pose``, each ``nn.Sequential(dropout, Linear)``.
        """
        hp = self.hparams
        self.backbone = RGBPoseBackbone(
            in_channels=hp.in_channels,
            speed_ratio=hp.speed_ratio,
            channel_ratio=hp.channel_ratio,
            lateral=hp.lateral,
            rgb_base_channels=hp.rgb_base_channels,
            rgb_stage_blocks=tuple(hp.rgb_stage_blocks),
            pose_base_channels=hp.pose_base_channels,
            pose_stage_blocks=tuple(hp.pose_stage_blocks),
            rgb_detach=hp.rgb_detach,
            pose_detach=hp.pose_detach,
            rgb_drop_path=hp.rgb_drop_path,
            pose_drop_path=hp.pose_drop_path,
        )
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.rgb_dim = self.backbone.rgb_out_channels
        self.pose_dim = self.backbone.pose_out_channels
        self.feature_dim = self.rgb_dim + self.pose_dim
        self.head_rgb = self._make_head(self.rgb_dim)
        self.head_pose = self._make_head(self.pose_dim)

    def _make_head(self, dim: int) -> nn.Sequential:
        """Dropout + linear classifier, initialised as mmaction2's ``RGBPoseHead`` (std 0.01)."""
        hp = self.hparams
        fc = nn.Linear(dim, hp.num_classes)
        nn.init.normal_(fc.weight, std=0.01)
        nn.init.zeros_(fc.bias)
        return nn.Sequential(nn.Dropout(hp.dropout) if hp.dropout > 0 else nn.Identity(), fc)

    def configure_metrics(self) -> None:
        """The base metrics (on the fused prediction) plus top-1 of each head."""
        super().configure_metrics()
        k = self.hparams.num_classes
        self.val_stream_acc = nn.ModuleDict(
            {s: MulticlassAccuracy(k, top_k=1, average="micro") for s in _STREAMS}
        )
        self.test_stream_acc = nn.ModuleDict(
            {s: MulticlassAccuracy(k, top_k=1, average="micro") for s in _STREAMS}
        )

    # ------------------------------------------------------------------ forward
    def forward_features(self, batch: dict[str, Any]) -> Tensor:
        """Encode a batch into the pooled features of both pathways.

        Args:
            batch: ``video (B, 3, T, H, W)`` and ``heatmap (B, K, speed_ratio * T, h, w)``.

        Returns:
            ``(B, rgb_dim + pose_dim)`` (``2048 + 512``): RGB features first.
        """
        video, heatmap = batch["video"], batch["heatmap"]
        if video.ndim != 5 or video.shape[1] != 3:
            raise ValueError(f"expected video (B, 3, T, H, W), got {tuple(video.shape)}")
        k = self.hparams.in_channels
        if heatmap.ndim != 5 or heatmap.shape[1] != k:
            raise ValueError(f"expected heatmap (B, K={k}, T, H, W), got {tuple(heatmap.shape)}")
        rgb, pose = self.backbone(video, heatmap)
        return torch.cat((self.pool(rgb).flatten(1), self.pool(pose).flatten(1)), dim=1)

    def forward_heads(self, features: Tensor) -> tuple[Tensor, Tensor]:
        """Classify the features with each head.

        Args:
            features: ``(B, rgb_dim + pose_dim)`` from :meth:`forward_features`.

        Returns:
            ``(rgb_logits, pose_logits)``, each ``(B, num_classes)``.
        """
        rgb, pose = features.split((self.rgb_dim, self.pose_dim), dim=1)
        return self.head_rgb(rgb), self.head_pose(pose)

    def fuse(self, rgb: Tensor, pose: Tensor) -> Tensor:
        """Log of the fused probability ``w * softmax(rgb) + (1 - w) * softmax(pose)``.

        Args:
            rgb: ``(B, K)`` RGB logits (or log-probabilities).
            pose: ``(B, K)`` pose logits (or log-probabilities).

        Returns:
            ``(B, K)`` log-probabilities; their softmax is the fused probability.
        """
        w = self.hparams.fusion_weight
        # In log space, so that w = 0 or 1 gives exactly one stream's log-softmax.
        log_w = math.log(w) if w > 0 else -math.inf
        log_1mw = math.log1p(-w) if w < 1 else -math.inf
        return torch.logaddexp(rgb.log_softmax(-1) + log_w, pose.log_softmax(-1) + log_1mw)

    def forward_head(self, features: Tensor) -> Tensor:
        """Fused prediction of the two heads.

        Args:
            features: ``(B, rgb_dim + pose_dim)``.

        Returns:
            ``(B, K)`` log of the fused probabilities (see :meth:`fuse`).
        """
        return self.fuse(*self.forward_heads(features))

    def forward_streams(self, batch: dict[str, Any]) -> tuple[Tensor, Tensor]:
        """Each head's prediction, averaging test-time views per stream.

        Args:
            batch: a batch dict; ``video (B, N, 3, T, H, W)`` and ``heatmap (B, N, K,
                T', h, w)`` carry ``N`` views per sample.

        Returns:
            ``(rgb, pose)``, each ``(B, K)``: logits, or with views the log of
            the views' mean probabilities (``test_average="prob"``) or the mean
            logits (``"logit"``).
        """
        self._check_input_keys(batch)
        views = self._num_views(batch)
        if views is None:
            return self.forward_heads(self.forward_features(batch))
        folded = dict(batch)
        for key in self.input_keys:
            if torch.is_tensor(batch[key]) and key in MODALITY_NDIM:
                folded[key] = batch[key].flatten(0, 1)
        rgb, pose = self.forward_heads(self.forward_features(folded))
        return self._average_views(rgb, views), self._average_views(pose, views)

    def _average_views(self, logits: Tensor, views: int) -> Tensor:
        """``(B * N, K)`` -> ``(B, K)`` by the configured test-time average."""
        logits = logits.reshape(-1, views, logits.shape[-1])
        if self.hparams.test_average == "logit":
            return logits.mean(1)
        return logits.softmax(-1).mean(1).clamp_min(1e-12).log()

    def forward(self, batch: dict[str, Any]) -> Tensor:
        """Fused prediction of a batch (views averaged per stream, then fused).

        Args:
            batch: a batch dict (see :meth:`forward_streams`).

        Returns:
            ``(B, K)`` log of the fused probabilities: ``softmax`` of it is
            ``fusion_weight * P_rgb + (1 - fusion_weight) * P_pose``.
        """
        return self.fuse(*self.forward_streams(batch))

    # ------------------------------------------------------------------ steps
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        """``w_rgb * L(rgb) + w_pose * L(pose)`` (+ the semantic loss on the features).

        Logs ``train/loss``, ``train/loss_rgb``, ``train/loss_pose`` (and
        ``train/semantic_loss``). Logit adjustment, label smoothing, class
        weights and the focal loss apply to each head as configured.
        """
        if self._counts_missing:
            raise RuntimeError(_NO_COUNTS)
        self._check_input_keys(batch)
        labels = batch["label"]
        hp = self.hparams
        features = self.forward_features(batch)
        losses = {}
        for name, logits in zip(_STREAMS, self.forward_heads(features), strict=True):
            if hp.logit_adjust_tau > 0:
                logits = logit_adjusted(logits, self.log_prior, hp.logit_adjust_tau)
            losses[name] = self.criterion(logits, labels)
        n = len(labels)
        loss = hp.rgb_loss_weight * losses["rgb"] + hp.pose_loss_weight * losses["pose"]
        self.log("train/loss_rgb", losses["rgb"], batch_size=n)
        self.log("train/loss_pose", losses["pose"], batch_size=n)
        if self.semantic_loss is not None:
            semantic = self.semantic_loss(features, labels)
            self.log("train/semantic_loss", semantic, batch_size=n)
            loss = loss + hp.semantic_loss_weight * semantic
        self.log("train/loss", loss, prog_bar=True, batch_size=n)
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """Base validation metrics on the fused prediction, plus ``val/acc_{rgb,pose}``."""
        rgb, pose = self.forward_streams(batch)
        logits = self.fuse(rgb, pose)
        labels = batch["label"]
        self.update_eval_metrics("val", logits, labels)
        self._update_stream_acc(self.val_stream_acc, rgb, pose, labels)

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """Base test metrics and confusion matrix (fused), plus ``test/acc_{rgb,pose}``."""
        rgb, pose = self.forward_streams(batch)
        logits = self.fuse(rgb, pose)
        labels = batch["label"]
        self.update_eval_metrics("test", logits, labels)
        self._update_stream_acc(self.test_stream_acc, rgb, pose, labels)

    @staticmethod
    def _update_stream_acc(
        metrics: nn.ModuleDict, rgb: Tensor, pose: Tensor, labels: Tensor
    ) -> None:
        for name, logits in zip(_STREAMS, (rgb, pose), strict=True):
            metrics[name].update(logits, labels)

    def _log_stream_acc(self, stage: str, metrics: nn.ModuleDict) -> None:
        # At the epoch end, on every process (compute() synchronises; see the base class).
        for name in _STREAMS:
            metrics[name].compute()
            self.log(f"{stage}/acc_{name}", metrics[name])

    def on_validation_epoch_start(self) -> None:
        """Reset the base metrics and the per-stream accuracies."""
        super().on_validation_epoch_start()
        for metric in self.val_stream_acc.values():
            metric.reset()

    def on_validation_epoch_end(self) -> None:
        """Base validation metrics, plus ``val/acc_{rgb,pose}``."""
        super().on_validation_epoch_end()
        self._log_stream_acc("val", self.val_stream_acc)

    def on_test_epoch_start(self) -> None:
        """Reset the base metrics and the per-stream accuracies."""
        super().on_test_epoch_start()
        for metric in self.test_stream_acc.values():
            metric.reset()

    def on_test_epoch_end(self) -> None:
        """Base test metrics and files, plus ``test/acc_{rgb,pose}``."""
        super().on_test_epoch_end()
        self._log_stream_acc("test", self.test_stream_acc)

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        """Fused predictions of one batch, and each head's probabilities.

        Returns:
            ``{"sample_id": list[str], "logits": (B, K), "probs": (B, K),
            "probs_rgb": (B, K), "probs_pose": (B, K), "label": (B,)}``:
            ``logits`` is the log of the fused probability ``probs``.
        """
        rgb, pose = self.forward_streams(batch)
        logits = self.fuse(rgb, pose).float()
        out = {
            "sample_id": list(batch.get("sample_id", [])),
            "logits": logits,
            "probs": logits.softmax(-1),
            "probs_rgb": rgb.float().softmax(-1),
            "probs_pose": pose.float().softmax(-1),
        }
        if "label" in batch:
            out["label"] = batch["label"]
        return out
