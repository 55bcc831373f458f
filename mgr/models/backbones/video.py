"""RGB-family video backbones on torchvision: Video Swin (swin3d) and R(2+1)D.

Both are torchvision's networks without their classifier, returning pooled
features ``(B, D)``; a recognizer puts its own head on top. Submodule names are
torchvision's, so a torchvision state dict loads after dropping its classifier
(``head.*`` for swin3d, ``fc.*`` for R(2+1)D); see
:mod:`mgr.models.video_checkpoints`.

Any number of input channels is accepted (e.g. 2 for optical flow): only the
first convolution changes (swin3d's patch-embedding projection, R(2+1)D's stem
conv). A 3-channel pretrained first layer is carried over with
:func:`adapt_input_channels`.

Nothing is downloaded: the builders never pass ``weights=``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint
from torchvision.models.video import r2plus1d_18
from torchvision.models.video.resnet import (
    BasicBlock,
    Conv2Plus1D,
    R2Plus1dStem,
    VideoResNet,
)
from torchvision.models.video.swin_transformer import PatchEmbed3d, SwinTransformer3d

__all__ = [
    "R2Plus1DBackbone",
    "SwinTransformer3dBackbone",
    "adapt_input_channels",
    "r2plus1d_backbone",
    "swin3d_backbone",
]

# The arguments torchvision's swin3d_{t,s,b} builders pass to SwinTransformer3d. The
# builders themselves fix stochastic_depth_prob=0.1, so the class is built directly.
_SWIN_CONFIGS: dict[str, dict] = {
    "t": {"embed_dim": 96, "depths": [2, 2, 6, 2], "num_heads": [3, 6, 12, 24]},
    "s": {"embed_dim": 96, "depths": [2, 2, 18, 2], "num_heads": [3, 6, 12, 24]},
    "b": {"embed_dim": 128, "depths": [2, 2, 18, 2], "num_heads": [4, 8, 16, 32]},
}
_SWIN_DEFAULT_STOCHASTIC_DEPTH = 0.1


def adapt_input_channels(weight: Tensor, in_channels: int) -> Tensor:
    """Adapt a pretrained 3-channel (RGB) first-layer weight to ``in_channels`` inputs.

    The rule keeps each output unit's response to a *uniform* input (the same
    value ``u`` on every channel and position) unchanged, so the pretrained
    normalisation statistics downstream still fit:

    * ``in_channels == 3``: the weight unchanged (a copy).
    * ``in_channels == 1``: the sum over the RGB channels, ``w' = sum_c w_c``.
    * otherwise: the RGB mean repeated ``in_channels`` times and scaled by
      ``3 / in_channels``, ``w'_k = (3 / C) * mean_c w_c`` for every ``k < C``.

    (The ``C == 1`` case is the general rule with ``C = 1``: ``3 * mean = sum``.)
    With either rule, ``sum_k w'_k * u = sum_c w_c * u``.

    Args:
        weight: ``(O, 3, *kernel)`` first-layer weight, e.g. ``(96, 3, 2, 4, 4)``
            (swin3d patch embedding) or ``(45, 3, 1, 7, 7)`` (R(2+1)D stem).
        in_channels: input channels ``C`` of the new layer (``>= 1``).

    Returns:
        ``(O, C, *kernel)`` weight, same dtype and device.

    Raises:
        ValueError: ``weight`` does not have 3 input channels or ``in_channels < 1``.
    """
    if weight.ndim < 2 or weight.shape[1] != 3:
        raise ValueError(
            f"expected a first-layer weight (O, 3, ...), got shape {tuple(weight.shape)}"
        )
    if in_channels < 1:
        raise ValueError(f"in_channels must be >= 1, got {in_channels}")
    if in_channels == 3:
        return weight.clone()
    mean = weight.mean(1, keepdim=True)
    repeats = [1] * weight.ndim
    repeats[1] = in_channels
    return mean.repeat(*repeats) * (3.0 / in_channels)


class SwinTransformer3dBackbone(nn.Module):
    """torchvision's ``SwinTransformer3d`` without its head: ``(B, C, T, H, W) -> (B, D)``.

    Holds the torchvision model's submodules under their own names
    (``patch_embed``, ``pos_drop``, ``features``, ``norm``, ``avgpool``), so
    torchvision state-dict keys other than ``head.*`` match one to one.

    Args:
        model: a torchvision ``SwinTransformer3d`` (its ``head`` is discarded).
        gradient_checkpointing: in training, recompute each entry of
            ``features`` (the four stages and three patch mergings) in the
            backward pass instead of storing its activations
            (:func:`torch.utils.checkpoint.checkpoint`, non-reentrant; stochastic
            depth draws the same masks on recomputation because the RNG state
            is restored).

    Attributes:
        out_channels: feature dimension ``D`` (768 for t/s, 1024 for b).
    """

    def __init__(self, model: SwinTransformer3d, gradient_checkpointing: bool = False) -> None:
        super().__init__()
        self.patch_embed = model.patch_embed
        self.pos_drop = model.pos_drop
        self.features = model.features
        self.norm = model.norm
        self.avgpool = model.avgpool
        self.out_channels: int = model.num_features
        self.gradient_checkpointing = gradient_checkpointing

    def forward(self, x: Tensor) -> Tensor:
        """Encode a clip.

        Args:
            x: ``(B, C, T, H, W)``; T, H, W are padded to multiples of the patch
                size ``(2, 4, 4)``, and windows shrink for small feature maps.

        Returns:
            ``(B, D)`` features (final LayerNorm, then global average pooling).
        """
        x = self.patch_embed(x)  # (B, T', H', W', C)
        x = self.pos_drop(x)
        if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
            for stage in self.features:
                x = checkpoint(stage, x, use_reentrant=False)
        else:
            x = self.features(x)
        x = self.norm(x)
        x = x.permute(0, 4, 1, 2, 3)  # (B, D, T', H', W')
        return self.avgpool(x).flatten(1)


def swin3d_backbone(
    variant: Literal["t", "s", "b"] = "t",
    in_channels: int = 3,
    stochastic_depth_prob: float | None = None,
    gradient_checkpointing: bool = False,
    embed_dim: int | None = None,
    depths: Sequence[int] | None = None,
    num_heads: Sequence[int] | None = None,
    window_size: Sequence[int] | None = None,
) -> SwinTransformer3dBackbone:
    """Video Swin (torchvision ``swin3d_{t,s,b}``, randomly initialised) as a feature extractor.

    The network of torchvision's ``swin3d_{t,s,b}(weights=None)`` (patch
    ``(2, 4, 4)``, window ``(8, 7, 7)``), built from ``SwinTransformer3d`` so that
    the stochastic-depth rate and the input channels can be chosen.

    Args:
        variant: ``"t"`` (28M params, D=768), ``"s"`` (50M, D=768) or ``"b"`` (88M, D=1024).
        in_channels: input channels (3 for RGB, 2 for optical flow, ...): the
            patch-embedding convolution ``patch_embed.proj`` takes this many.
        stochastic_depth_prob: maximum stochastic-depth rate (linearly
            increasing over blocks); ``None``: torchvision's default, 0.1 for
            every variant (mmaction2's swin-tiny config uses 0.1 too).
        gradient_checkpointing: recompute stage activations in backward
            (saves memory at the cost of about one more forward pass).
        embed_dim: override the variant's patch-embedding width (CPU-sized
            models; pretrained checkpoints of the variant then no longer fit).
        depths: override the blocks per stage (4 stages).
        num_heads: override the attention heads per stage (each must divide
            the stage width ``embed_dim * 2**i``).
        window_size: override the ``(T, H, W)`` attention window ``(8, 7, 7)``.

    Returns:
        A :class:`SwinTransformer3dBackbone` mapping ``(B, C, T, H, W)`` to ``(B, D)``.
    """
    if variant not in _SWIN_CONFIGS:
        raise ValueError(f"swin3d variant must be one of {sorted(_SWIN_CONFIGS)}, got {variant!r}")
    if in_channels < 1:
        raise ValueError(f"in_channels must be >= 1, got {in_channels}")
    if stochastic_depth_prob is None:
        stochastic_depth_prob = _SWIN_DEFAULT_STOCHASTIC_DEPTH
    arch = dict(_SWIN_CONFIGS[variant])
    for name, value in (("embed_dim", embed_dim), ("depths", depths), ("num_heads", num_heads)):
        if value is not None:
            arch[name] = list(value) if name != "embed_dim" else int(value)
    if len(arch["depths"]) != len(arch["num_heads"]):
        raise ValueError(
            f"depths {arch['depths']} and num_heads {arch['num_heads']} differ in length"
        )
    bad = [h for i, h in enumerate(arch["num_heads"]) if (arch["embed_dim"] * 2**i) % h]
    if bad:
        raise ValueError(f"num_heads {arch['num_heads']} must divide embed_dim * 2**stage")
    model = SwinTransformer3d(
        patch_size=[2, 4, 4],
        window_size=list(window_size) if window_size is not None else [8, 7, 7],
        stochastic_depth_prob=stochastic_depth_prob,
        # SwinTransformer3d has no in_channels argument; its patch-embed factory does.
        patch_embed=functools.partial(PatchEmbed3d, in_channels=in_channels),
        **arch,
    )
    return SwinTransformer3dBackbone(model, gradient_checkpointing=gradient_checkpointing)


class R2Plus1DBackbone(nn.Module):
    """torchvision's ``VideoResNet`` (R(2+1)D) without ``fc``: ``(B, C, T, H, W) -> (B, 512)``.

    Holds the torchvision model's ``stem``, ``layer1``..``layer4`` and
    ``avgpool`` under their own names, so torchvision state-dict keys other
    than ``fc.*`` match one to one.

    Args:
        model: a torchvision ``VideoResNet`` built with ``Conv2Plus1D`` (its ``fc``
            is discarded).

    Attributes:
        out_channels: feature dimension ``D`` (512).
    """

    def __init__(self, model: VideoResNet) -> None:
        super().__init__()
        self.stem = model.stem
        self.layer1 = model.layer1
        self.layer2 = model.layer2
        self.layer3 = model.layer3
        self.layer4 = model.layer4
        self.avgpool = model.avgpool
        self.out_channels: int = model.fc.in_features

    def forward(self, x: Tensor) -> Tensor:
        """Encode a clip.

        Args:
            x: ``(B, C, T, H, W)``; the stem halves H and W, layers 2-4 halve T, H, W
                (T >= 1 and H, W >= 16 keep every stage non-empty).

        Returns:
            ``(B, 512)`` globally average-pooled features.
        """
        x = self.stem(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.avgpool(x).flatten(1)


def r2plus1d_backbone(depth: Literal[18, 34] = 18, in_channels: int = 3) -> R2Plus1DBackbone:
    """R(2+1)D (Tran et al. 2018) on torchvision's ``VideoResNet``, randomly initialised.

    Depth 18 is ``torchvision.models.video.r2plus1d_18``. torchvision has no
    34-layer builder; depth 34 is the same network with ``[3, 4, 6, 3]`` basic
    blocks (``VideoResNet(BasicBlock, [Conv2Plus1D] * 4, [3, 4, 6, 3],
    R2Plus1dStem)``), the layout of the IG65M-pretrained R(2+1)D-34 models
    ported to torchvision (so such state dicts load by the same key names).

    Args:
        depth: 18 or 34.
        in_channels: input channels: the stem's first convolution ``stem.0``
            (``Conv3d(C, 45, (1, 7, 7))``) takes this many.

    Returns:
        An :class:`R2Plus1DBackbone` mapping ``(B, C, T, H, W)`` to ``(B, 512)``.
    """
    if depth not in (18, 34):
        raise ValueError(f"R(2+1)D depth must be 18 or 34, got {depth!r}")
    if in_channels < 1:
        raise ValueError(f"in_channels must be >= 1, got {in_channels}")
    if depth == 18:
        model = r2plus1d_18(weights=None)
    else:
        model = VideoResNet(BasicBlock, [Conv2Plus1D] * 4, [3, 4, 6, 3], R2Plus1dStem)
    if in_channels != 3:
        old = model.stem[0]
        conv = nn.Conv3d(
            in_channels,
            old.out_channels,
            kernel_size=old.kernel_size,
            stride=old.stride,
            padding=old.padding,
            bias=False,
        )
        # The same initialisation VideoResNet gives its convolutions.
        nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
        model.stem[0] = conv
    return R2Plus1DBackbone(model)
