"""Decoupled ST-CNN recognizer on joint coordinates (CMPL, MiGA'26 §3.1)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from torch import Tensor

from .backbones.stcnn import DecoupledSTCNN
from .base import Recognizer

__all__ = ["STCNN"]


class STCNN(Recognizer):
    """Decoupled spatial-temporal CNN over ``skeleton (B, C, T, V, M)``.

    Args:
        num_classes: number of classes.
        in_channels: skeleton channels ``C`` (x, y, confidence: 3).
        num_joints: joints ``V`` of the datamodule's keypoint layout.
        channels: width of each block.
        temporal_strides: temporal stride of each block.
        spatial_kernel: kernel over joints (paper: 3).
        temporal_kernel: kernel over frames (paper: 5).
        block_dropout: dropout after each block.
        readout: ``"joint"`` keeps per-joint features, ``"mean"`` pools joints.
        **kwargs: :class:`~mgr.models.base.Recognizer` arguments (optimizer,
            scheduler, dropout, label_smoothing, ...).
    """

    input_keys = ("skeleton",)

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        num_joints: int = 22,
        channels: Sequence[int] = (64, 64, 128, 128, 256),
        temporal_strides: Sequence[int] = (1, 1, 2, 1, 2),
        spatial_kernel: int = 3,
        temporal_kernel: int = 5,
        block_dropout: float = 0.0,
        readout: Literal["joint", "mean"] = "joint",
        **kwargs: Any,
    ) -> None:
        super().__init__(num_classes, **kwargs)

    def configure_models(self) -> None:
        """Build the backbone, then the classifier head."""
        hp = self.hparams
        self.backbone = DecoupledSTCNN(
            in_channels=hp.in_channels,
            num_joints=hp.num_joints,
            channels=tuple(hp.channels),
            temporal_strides=tuple(hp.temporal_strides),
            spatial_kernel=hp.spatial_kernel,
            temporal_kernel=hp.temporal_kernel,
            dropout=hp.block_dropout,
            readout=hp.readout,
        )
        self.feature_dim = self.backbone.out_features
        super().configure_models()

    def forward_features(self, batch: dict[str, Any]) -> Tensor:
        """Encode ``batch["skeleton"] (B, C, T, V, M)`` -> ``(B, D)``."""
        return self.backbone(batch["skeleton"])
