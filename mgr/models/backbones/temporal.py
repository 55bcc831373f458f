"""Temporal detector network over pre-extracted clip features (ActionFormer / DyFADet family).

The online micro-gesture detector of ``papers/online-recognition.txt`` (HFUT-VUT,
MiGA'25) is DyFADet with a multi-scale spatial-temporal attention (MSTA) head.
Its plain ``nn.Module`` parts are here (the MSTA head, the detection heads and the
whole :class:`TemporalDetectionNet`) and in :mod:`.temporal_blocks` (the encoder
blocks and the pyramid, re-exported here); the target assignment, losses,
decoding and NMS live in :mod:`mgr.models.detection`.

Data flow (all tensors channel-first, masks ``(B, 1, T)`` bool, True = valid)::

    features (B, C_in, T) --TemporalPyramid--> [(B, D, T_l)], T_l = ceil(T / 2**l)
        --MSTAHead--> refined [(B, D, T_l)]
        --DetectionHeads--> logits [(B, T_l, K)], offsets [(B, T_l, 2)] (stride units)

The masking rule and the encoder's choices are documented in :mod:`.temporal_blocks`.

Choices where the papers are vague:

* **MSTA head** (§3.4): for 1-D features the "spatial" pooling of eq. 4 is the
  pooling over *time* (the only non-channel axis), so ``Attn_T`` is a
  CBAM-style per-channel gate from masked temporal avg/max pooling through a
  shared MLP, and ``Attn_S`` is a per-timestamp gate from channel avg/max
  pooling through a kernel-7 1-D conv (the paper's 7x7 on 2-D maps). Applied in
  CBAM order (``Attn_T`` then ``Attn_S``). The three paths per level are the level
  itself, the finer neighbour down-sampled (masked max-pool, stride 2) and the
  coarser neighbour up-sampled (nearest x2); each path type has its own
  attention module (shared over levels, like the heads). The paths are fused
  by a per-timestamp softmax over path gates (DyFADet's dynamic multi-scale
  fusion, simplified) and added to the level's features. Edge levels have two
  paths.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .temporal_blocks import (
    ChannelLayerNorm,
    ConvEncoderLayer,
    DFAConv1d,
    DynamicEncoderLayer,
    MaskedConv1d,
    TemporalPyramid,
    _zero_pad,
    masked_max_downsample,
)

__all__ = [
    "ChannelLayerNorm",
    "ConvEncoderLayer",
    "DFAConv1d",
    "DetectionHeads",
    "DynamicEncoderLayer",
    "MSTAHead",
    "MaskedConv1d",
    "SpatialTemporalAttention",
    "TemporalDetectionNet",
    "TemporalPyramid",
]


class SpatialTemporalAttention(nn.Module):
    """CBAM-style attention on 1-D features (paper eqs. 4-5).

    ``Attn_T = sigmoid(MLP(AvgPool_t(F)) + MLP(MaxPool_t(F)))`` (per channel, masked
    pooling over time), then ``Attn_S = sigmoid(Conv_k([AvgPool_c; MaxPool_c]))``
    (per timestamp).

    Args:
        dim: channels.
        reduction: MLP bottleneck ratio.
        kernel_size: odd kernel of the spatial (per-timestamp) conv (paper: 7).
    """

    def __init__(self, dim: int, reduction: int = 4, kernel_size: int = 7) -> None:
        super().__init__()
        hidden = max(1, dim // reduction)
        self.mlp = nn.Sequential(nn.Conv1d(dim, hidden, 1), nn.ReLU(inplace=True))
        self.mlp.append(nn.Conv1d(hidden, dim, 1))
        self.spatial = MaskedConv1d(2, 1, kernel_size)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        """Re-weight channels, then timestamps.

        Args:
            x: ``(B, D, T)``.
            mask: ``(B, 1, T)`` bool.

        Returns:
            ``(B, D, T)``, zero at padded positions.
        """
        x = _zero_pad(x, mask)
        count = mask.sum(-1, keepdim=True).clamp(min=1)
        avg = x.sum(-1, keepdim=True) / count
        mx = x.masked_fill(~mask, float("-inf")).amax(-1, keepdim=True)
        mx = mx.masked_fill(~mask.any(-1, keepdim=True), 0.0)  # fully padded rows
        x = x * torch.sigmoid(self.mlp(avg) + self.mlp(mx))
        pooled = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], dim=1)
        attn, _ = self.spatial(pooled, mask)
        return _zero_pad(x * torch.sigmoid(attn), mask)


class MSTAHead(nn.Module):
    """Multi-scale spatial-temporal attention over pyramid levels (paper §3.4).

    Level ``l`` gets three paths: itself, level ``l-1`` down-sampled, level ``l+1``
    up-sampled; each goes through its path's :class:`SpatialTemporalAttention`; a
    per-timestamp softmax over path gates fuses them; the fusion is added to the
    level (residual).

    Args:
        dim: pyramid channels.
        reduction: MLP ratio of the temporal attention.
        kernel_size: kernel of the spatial attention conv (paper: 7).
        neighbours: use the adjacent levels (False: attention on the level only).
    """

    PATHS = ("same", "down", "up")

    def __init__(
        self, dim: int, reduction: int = 4, kernel_size: int = 7, neighbours: bool = True
    ) -> None:
        super().__init__()
        self.neighbours = neighbours
        self.attn = nn.ModuleDict(
            {p: SpatialTemporalAttention(dim, reduction, kernel_size) for p in self.PATHS}
        )
        self.gate = nn.ModuleDict({p: nn.Conv1d(dim, 1, 1) for p in self.PATHS})
        for g in self.gate.values():  # equal path weights at init
            nn.init.zeros_(g.weight)
            nn.init.zeros_(g.bias)

    @staticmethod
    def _fit(x: Tensor, length: int) -> Tensor:
        """Crop or zero-pad the time axis to ``length``."""
        if x.shape[-1] >= length:
            return x[..., :length]
        return F.pad(x, (0, length - x.shape[-1]))

    def forward(self, feats: Sequence[Tensor], masks: Sequence[Tensor]) -> list[Tensor]:
        """Refine every level with attention over itself and its neighbours.

        Args:
            feats: per level ``(B, D, T_l)``.
            masks: per level ``(B, 1, T_l)`` bool.

        Returns:
            Refined per-level features ``(B, D, T_l)`` (same masks).
        """
        out = []
        n = len(feats)
        for lvl, (f, m) in enumerate(zip(feats, masks, strict=True)):
            t = f.shape[-1]
            paths = [("same", f)]
            if self.neighbours and lvl > 0:
                down, _ = masked_max_downsample(feats[lvl - 1], masks[lvl - 1])
                paths.append(("down", self._fit(down, t)))
            if self.neighbours and lvl < n - 1:
                up = feats[lvl + 1].repeat_interleave(2, dim=-1)
                paths.append(("up", self._fit(up, t)))
            attended = [self.attn[name](p, m) for name, p in paths]
            logits = torch.stack(
                [self.gate[name](a) for (name, _), a in zip(paths, attended, strict=True)]
            )
            weights = torch.softmax(logits, dim=0)  # (P, B, 1, T)
            fused = (weights * torch.stack(attended)).sum(0)
            out.append(_zero_pad(f + fused, m))
        return out


class _Scale(nn.Module):
    """Learnable scalar (per-level regression scale)."""

    def __init__(self, init: float = 1.0) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(float(init)))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.scale


class _ConvTrunk(nn.Module):
    """(masked conv -> LN -> ReLU) x n, then a masked conv to ``out_channels``."""

    def __init__(self, dim: int, out_channels: int, num_layers: int, kernel_size: int) -> None:
        super().__init__()
        self.convs = nn.ModuleList(MaskedConv1d(dim, dim, kernel_size) for _ in range(num_layers))
        self.norms = nn.ModuleList(ChannelLayerNorm(dim) for _ in range(num_layers))
        self.out = MaskedConv1d(dim, out_channels, kernel_size)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        for conv, norm in zip(self.convs, self.norms, strict=True):
            x, _ = conv(x, mask)
            x = _zero_pad(F.relu(norm(x)), mask)
        return self.out(x, mask)[0]


class DetectionHeads(nn.Module):
    """Classification and regression heads shared over levels (ActionFormer style).

    Classification: conv trunk -> ``K`` logits with the focal-loss prior bias
    ``-log((1 - pi) / pi)``. Regression: conv trunk -> 2 distances, times a
    learnable per-level scale, then ReLU (or softplus) so distances are >= 0.
    Distances are in units of the level's stride. The regression output bias
    starts at 1 (ActionFormer: 0) so that initial distances sit outside ReLU's
    dead zone; with 0, a positive point whose distance starts negative gets no
    gradient (seen in the overfitting test).

    Args:
        num_classes: ``K``.
        dim: input channels ``D``.
        prior_prob: initial foreground probability ``pi`` of every class.
        num_levels: pyramid levels (one regression scale each).
        num_layers: conv -> LN -> ReLU layers before each output conv.
        kernel_size: odd kernel of the head convs.
        offset_activation: ``"relu"`` (ActionFormer) or ``"softplus"`` (never dead).
        empty_classes: class ids without training instances; their bias starts at
            ``-log((1 - 1e-6) / 1e-6)`` so they stay silent.
    """

    def __init__(
        self,
        num_classes: int,
        dim: int,
        prior_prob: float = 0.01,
        num_levels: int = 6,
        num_layers: int = 2,
        kernel_size: int = 3,
        offset_activation: Literal["relu", "softplus"] = "relu",
        empty_classes: Sequence[int] = (),
    ) -> None:
        super().__init__()
        if not 0.0 < prior_prob < 1.0:
            raise ValueError(f"prior_prob must be in (0, 1), got {prior_prob}")
        if offset_activation not in ("relu", "softplus"):
            raise ValueError(f"offset_activation must be relu|softplus, got {offset_activation!r}")
        self.num_classes, self.num_levels = num_classes, num_levels
        self.offset_activation = offset_activation
        self.cls_head = _ConvTrunk(dim, num_classes, num_layers, kernel_size)
        self.reg_head = _ConvTrunk(dim, 2, num_layers, kernel_size)
        self.scales = nn.ModuleList(_Scale() for _ in range(num_levels))
        bias, reg_bias = self.cls_head.out.conv.bias, self.reg_head.out.conv.bias
        assert bias is not None and reg_bias is not None
        with torch.no_grad():
            # Distances start around one stride, away from ReLU's dead zone.
            reg_bias.fill_(1.0)
            bias.fill_(-math.log((1.0 - prior_prob) / prior_prob))
            for k in empty_classes:
                bias[k] = -math.log((1.0 - 1e-6) / 1e-6)

    def forward(
        self, feats: Sequence[Tensor], masks: Sequence[Tensor]
    ) -> tuple[list[Tensor], list[Tensor]]:
        """Predict per-level class logits and boundary distances.

        Args:
            feats: per level ``(B, D, T_l)``.
            masks: per level ``(B, 1, T_l)`` bool.

        Returns:
            ``cls_logits``: per level ``(B, T_l, K)`` (0 at padded positions);
            ``offsets``: per level ``(B, T_l, 2)`` non-negative distances to start/end
            in stride units.
        """
        if len(feats) > self.num_levels:
            raise ValueError(f"got {len(feats)} levels, heads built for {self.num_levels}")
        logits, offsets = [], []
        for lvl, (f, m) in enumerate(zip(feats, masks, strict=True)):
            logits.append(self.cls_head(f, m).transpose(1, 2))
            reg = self.scales[lvl](self.reg_head(f, m))
            reg = F.relu(reg) if self.offset_activation == "relu" else F.softplus(reg)
            offsets.append(_zero_pad(reg, m).transpose(1, 2))
        return logits, offsets


class TemporalDetectionNet(nn.Module):
    """Pyramid -> (optional) MSTA head -> detection heads, outputs concatenated over levels.

    Args:
        in_channels: input feature channels.
        num_classes: ``K``.
        embed_dim: pyramid width.
        num_levels: pyramid levels.
        arch: encoder layers, ``"dyn"`` (DynE) or ``"conv"``.
        msta: use the multi-scale spatial-temporal attention head.
        head_layers: conv layers of each detection head trunk.
        prior_prob: focal-loss prior of the classification bias.
        offset_activation: ``"relu"`` or ``"softplus"`` for the distances.
        drop_path: stochastic depth of the encoder layers.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        embed_dim: int = 256,
        num_levels: int = 6,
        arch: Literal["dyn", "conv"] = "dyn",
        msta: bool = True,
        head_layers: int = 2,
        prior_prob: float = 0.01,
        offset_activation: Literal["relu", "softplus"] = "relu",
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        self.pyramid = TemporalPyramid(
            in_channels, embed_dim, num_levels, arch=arch, drop_path=drop_path
        )
        self.msta = MSTAHead(embed_dim) if msta else None
        self.heads = DetectionHeads(
            num_classes,
            embed_dim,
            prior_prob=prior_prob,
            num_levels=num_levels,
            num_layers=head_layers,
            offset_activation=offset_activation,
        )

    @property
    def strides(self) -> list[int]:
        """Stride of each level."""
        return self.pyramid.strides

    def forward(self, x: Tensor, mask: Tensor | None = None) -> dict[str, Tensor | list[int]]:
        """Detect on a batch of feature sequences.

        Args:
            x: ``(B, C_in, T)`` features.
            mask: ``(B, T)`` or ``(B, 1, T)`` bool, True = valid (None: all valid).

        Returns:
            ``cls_logits (B, N, K)``, ``offsets (B, N, 2)`` (stride units), ``mask (B, N)``
            bool, with ``N = sum_l T_l`` in level order, and ``lengths`` (list of ``T_l``),
            the input of :func:`mgr.models.detection.make_points`.
        """
        feats, masks = self.pyramid(x, mask)
        if self.msta is not None:
            feats = self.msta(feats, masks)
        logits, offsets = self.heads(feats, masks)
        return {
            "cls_logits": torch.cat(logits, dim=1),
            "offsets": torch.cat(offsets, dim=1),
            "mask": torch.cat([m[:, 0] for m in masks], dim=1),
            "lengths": [f.shape[-1] for f in feats],
        }
