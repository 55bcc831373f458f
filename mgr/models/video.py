"""RGB-family recognizers: Video Swin (swin3d) and R(2+1)D on ``video (B, C, T, H, W)``.

MM-Gesture (MiGA'25, §3.4) encodes RGB, Taylor, optical-flow and depth videos
with Video Swin-T, one model per modality (RGB pretrained on MA-52, then
fine-tuned on iMiGUE; the others from scratch). The CMPL framework (MiGA'26,
§3.1) runs Swin3D and R(2+1)D, both Kinetics-400 pretrained, on 224x224
saliency crops. Both recognizers are torchvision's networks (global average
pooling, no dropout inside) with the Recognizer head: dropout, then a linear
classifier (mmaction2's I3DHead: dropout 0.5).

Pretrained weights come from a local file (nothing is downloaded); see
:mod:`mgr.models.video_checkpoints` for the key maps. Inputs must be
normalised as the weights were trained: torchvision's Kinetics-400 swin3d uses
ImageNet mean/std (the default of :class:`mgr.data.datasets.VideoOptions`);
its ``r2plus1d_18`` uses mean ``(0.43216, 0.394666, 0.37645)``, std
``(0.22803, 0.22145, 0.216989)``.
"""

from __future__ import annotations

from typing import Any, Literal

from torch import Tensor

from .backbones.video import r2plus1d_backbone, swin3d_backbone
from .base import Recognizer
from .video_checkpoints import (
    load_mgr_video_checkpoint,
    load_mmaction_swin_checkpoint,
    load_torchvision_video_checkpoint,
)

__all__ = ["R2Plus1D", "VideoSwin"]

_SWIN_LOADERS = {
    "torchvision": load_torchvision_video_checkpoint,
    "mmaction2": load_mmaction_swin_checkpoint,
    "mgr": load_mgr_video_checkpoint,
}
_R2PLUS1D_LOADERS = {
    "torchvision": load_torchvision_video_checkpoint,
    "mgr": load_mgr_video_checkpoint,
}


def _check_video(x: Tensor, in_channels: int) -> None:
    """Raise a clear error unless ``x`` is ``(B, C=in_channels, T, H, W)``."""
    if x.ndim != 5 or x.shape[1] != in_channels:
        raise ValueError(
            f"expected video (B, C={in_channels}, T, H, W), got {tuple(x.shape)}; "
            "test-time views (B, N, C, T, H, W) are folded by Recognizer.forward"
        )


class VideoSwin(Recognizer):
    """Video Swin Transformer (Liu et al. 2022; torchvision ``swin3d``) over ``video``.

    Args:
        num_classes: number of classes.
        variant: ``"t"``, ``"s"`` or ``"b"`` (``swin3d_t/s/b``; D = 768, 768, 1024).
        in_channels: video channels ``C`` (3 RGB / Taylor / depth as RGB, 2 optical flow).
        dropout: dropout before the classifier.
        stochastic_depth_prob: maximum stochastic-depth rate; ``None``:
            torchvision's default (0.1).
        gradient_checkpointing: recompute each stage in the backward pass to
            save activation memory (training only).
        embed_dim: override the variant's width (a CPU-sized Swin; checkpoints of
            the variant then no longer fit).
        depths: override the blocks per stage.
        num_heads: override the heads per stage.
        window_size: override the ``(T, H, W)`` attention window.
        pretrained: path of a checkpoint to start from (never downloaded).
        pretrained_format: ``"torchvision"`` (e.g. ``swin3d_t-7615ae03.pth``),
            ``"mmaction2"`` (an mmaction2 / Video-Swin recognizer checkpoint) or
            ``"mgr"`` (a checkpoint of this class, e.g. trained on MA-52).
        pretrained_reset_head: ``None`` (auto): keep the checkpoint's classifier
            when its classes are this model's (count and, where stored, names),
            else a freshly initialised one (e.g. Kinetics-400 weights); ``True`` /
            ``False`` force either. The log says which and why.
        **kwargs: :class:`~mgr.models.base.Recognizer` arguments.
    """

    input_keys = ("video",)

    def __init__(
        self,
        num_classes: int,
        variant: Literal["t", "s", "b"] = "t",
        in_channels: int = 3,
        dropout: float = 0.5,
        stochastic_depth_prob: float | None = None,
        gradient_checkpointing: bool = False,
        embed_dim: int | None = None,
        depths: list[int] | None = None,
        num_heads: list[int] | None = None,
        window_size: list[int] | None = None,
        pretrained: str | None = None,
        pretrained_format: Literal["torchvision", "mmaction2", "mgr"] = "torchvision",
        pretrained_reset_head: bool | None = None,
        **kwargs: Any,
    ) -> None:
        if pretrained_format not in _SWIN_LOADERS:
            raise ValueError(
                f"pretrained_format must be one of {list(_SWIN_LOADERS)}, got {pretrained_format!r}"
            )
        super().__init__(num_classes, dropout=dropout, **kwargs)
        if pretrained is not None:
            loader = _SWIN_LOADERS[pretrained_format]
            self.load_pretrained(pretrained, loader, pretrained_reset_head)

    def configure_models(self) -> None:
        """Build the swin3d backbone and the classifier head."""
        hp = self.hparams
        self.backbone = swin3d_backbone(
            hp.variant,
            in_channels=hp.in_channels,
            stochastic_depth_prob=hp.stochastic_depth_prob,
            gradient_checkpointing=hp.gradient_checkpointing,
            embed_dim=hp.embed_dim,
            depths=hp.depths,
            num_heads=hp.num_heads,
            window_size=hp.window_size,
        )
        self.feature_dim = self.backbone.out_channels
        super().configure_models()

    def forward_features(self, batch: dict[str, Any]) -> Tensor:
        """Encode ``batch["video"] (B, C, T, H, W)`` -> ``(B, D)``."""
        x = batch["video"]
        _check_video(x, self.hparams.in_channels)
        return self.backbone(x)


class R2Plus1D(Recognizer):
    """R(2+1)D (Tran et al. 2018; torchvision ``VideoResNet``) over ``video``.

    Args:
        num_classes: number of classes.
        depth: 18 (``r2plus1d_18``) or 34 (basic blocks ``[3, 4, 6, 3]``).
        in_channels: video channels ``C``.
        dropout: dropout before the classifier.
        pretrained: path of a checkpoint to start from (never downloaded).
        pretrained_format: ``"torchvision"`` (e.g. ``r2plus1d_18-91a641e6.pth``)
            or ``"mgr"`` (a checkpoint of this class).
        pretrained_reset_head: ``None`` (auto): keep the checkpoint's classifier
            when its classes are this model's (count and, where stored, names),
            else a freshly initialised one (e.g. Kinetics-400 weights); ``True`` /
            ``False`` force either. The log says which and why.
        **kwargs: :class:`~mgr.models.base.Recognizer` arguments.
    """

    input_keys = ("video",)

    def __init__(
        self,
        num_classes: int,
        depth: Literal[18, 34] = 18,
        in_channels: int = 3,
        dropout: float = 0.5,
        pretrained: str | None = None,
        pretrained_format: Literal["torchvision", "mgr"] = "torchvision",
        pretrained_reset_head: bool | None = None,
        **kwargs: Any,
    ) -> None:
        if pretrained_format not in _R2PLUS1D_LOADERS:
            raise ValueError(
                f"pretrained_format must be one of {list(_R2PLUS1D_LOADERS)}, "
                f"got {pretrained_format!r}"
            )
        super().__init__(num_classes, dropout=dropout, **kwargs)
        if pretrained is not None:
            loader = _R2PLUS1D_LOADERS[pretrained_format]
            self.load_pretrained(pretrained, loader, pretrained_reset_head)

    def configure_models(self) -> None:
        """Build the R(2+1)D backbone and the classifier head."""
        hp = self.hparams
        self.backbone = r2plus1d_backbone(hp.depth, in_channels=hp.in_channels)
        self.feature_dim = self.backbone.out_channels
        super().configure_models()

    def forward_features(self, batch: dict[str, Any]) -> Tensor:
        """Encode ``batch["video"] (B, C, T, H, W)`` -> ``(B, 512)``."""
        x = batch["video"]
        _check_video(x, self.hparams.in_channels)
        return self.backbone(x)
