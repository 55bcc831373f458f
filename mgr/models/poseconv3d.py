"""PoseConv3D (Duan et al., CVPR 2022) on joint or limb heatmap volumes.

The skeleton-heatmap stream of MM-Gesture (MiGA'25) and of the CMPL framework
(MiGA'26): keypoints rendered as Gaussian heatmaps ``(K, T, H, W)``
(:class:`mgr.data.datasets.HeatmapOptions`) and classified by a ResNet3d
SlowOnly backbone, global average pooling, dropout and a linear head, as
mmaction2's ``Recognizer3D`` + ``I3DHead`` do. Defaults are PoseC3D's
(``reference-algorithms.md`` §2.1); submodule names follow mmaction2 so its
and pyskl's checkpoints load with :func:`mgr.models.checkpoints.load_mmaction_checkpoint`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn

from .backbones.resnet3d_slowonly import ResNet3dSlowOnly
from .base import Recognizer
from .checkpoints import load_mmaction_checkpoint

__all__ = ["PoseConv3D"]


class PoseConv3D(Recognizer):
    """PoseConv3D over ``heatmap (B, K, T, H, W)``.

    Args:
        num_classes: number of classes.
        in_channels: heatmap channels ``K`` (joints or limbs of the layout).
        base_channels: stem width (PoseC3D: 32).
        stage_blocks: bottlenecks per stage (PoseC3D: (4, 6, 3)).
        inflate: per stage, 3x1x1 temporal kernels in the blocks (PoseC3D: (0, 1, 1)).
        spatial_strides: per stage (PoseC3D: (2, 2, 2)).
        temporal_strides: per stage (PoseC3D: (1, 1, 2)).
        conv1_stride_s: spatial stride of the stem convolution (PoseC3D: 1;
            mmaction2's ``conv1_stride_s``). 2 quarters the cost, for CPU runs.
        dropout: dropout before the classifier (PoseC3D's I3DHead: 0.5).
        pretrained: path of an mmaction2 / pyskl / mgr checkpoint to start from.
        pretrained_reset_head: ``None`` (auto): keep the checkpoint's classifier
            when its classes are this model's (count and, where stored, names),
            else a freshly initialised one; ``True``/``False`` force either. The
            log says which and why.
        **kwargs: :class:`~mgr.models.base.Recognizer` arguments.
    """

    input_keys = ("heatmap",)

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 17,
        base_channels: int = 32,
        stage_blocks: Sequence[int] = (4, 6, 3),
        inflate: Sequence[int] = (0, 1, 1),
        spatial_strides: Sequence[int] = (2, 2, 2),
        temporal_strides: Sequence[int] = (1, 1, 2),
        conv1_stride_s: int = 1,
        dropout: float = 0.5,
        pretrained: str | None = None,
        pretrained_reset_head: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(num_classes, dropout=dropout, **kwargs)
        if pretrained is not None:
            self.load_pretrained(pretrained, load_mmaction_checkpoint, pretrained_reset_head)

    def configure_models(self) -> None:
        """Build the SlowOnly backbone, the pooling and the classifier head."""
        hp = self.hparams
        self.backbone = ResNet3dSlowOnly(
            in_channels=hp.in_channels,
            base_channels=hp.base_channels,
            num_stages=len(hp.stage_blocks),
            stage_blocks=tuple(hp.stage_blocks),
            conv1_kernel=(1, 7, 7),
            conv1_stride=(1, hp.conv1_stride_s, hp.conv1_stride_s),
            pool1_stride=(1, 1, 1),
            inflate=tuple(hp.inflate),
            spatial_strides=tuple(hp.spatial_strides),
            temporal_strides=tuple(hp.temporal_strides),
        )
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.feature_dim = self.backbone.out_channels
        super().configure_models()

    def forward_features(self, batch: dict[str, Any]) -> Tensor:
        """Encode ``batch["heatmap"] (B, K, T, H, W)`` -> ``(B, D)``."""
        x = batch["heatmap"]
        if x.ndim != 5 or x.shape[1] != self.hparams.in_channels:
            raise ValueError(
                f"expected heatmap (B, K={self.hparams.in_channels}, T, H, W), got {tuple(x.shape)}"
            )
        return self.pool(self.backbone(x)).flatten(1)
