"""Encoder blocks of the temporal detector network (:mod:`.temporal`) and its pyramid.

Masked 1-D convolutions, the DFA convolution, the DynE and convolutional encoder
layers and the :class:`TemporalPyramid` built from them.

Masking rule: every layer zeroes padded positions of its *input* before mixing
along time and of its *output*, so the content of padded frames never reaches a
valid output, and a padded batch gives the same valid outputs as the unpadded
sequences (downsampling keeps ``mask[..., ::2]``, max-pooling treats padding as
``-inf`` just like its implicit border padding).

Choices where the papers are vague (documented, configurable where cheap):

* **DFA convolution** (DyFADet's dynamic feature aggregation): features are
  shifted to each kernel tap, re-weighted by a per-timestamp tap mask
  ``M = phi(Psi(guide))`` and summed through per-tap point-wise weights. ``Psi``
  is a depth-wise conv + point-wise conv; ``phi = relu(tanh(.))`` so a tap can be
  switched fully off (the "learned receptive field") or re-weighted. ``Psi``'s
  last layer starts at weight 0, bias 1, so a fresh DFA conv is a static conv
  with uniform tap weight ``tanh(1)``.
* **DynE layer** (§3.3, eqs. 2-3): ``x = DS(F)``, ``h = LN(x)``;
  instance-dynamic branch ``DFA_1(mean_c(h))`` (kernel 1 over the channel-squeezed
  map, 1 -> D channels; its tap mask is generated from the full ``h``, since a
  one-channel map says little about *which* timestamps matter); multi-kernel
  branch = two depth-wise DFA convs with kernel ``k`` and ``k * w`` (rounded up
  to odd). The branch outputs are summed, projected point-wise and added to
  ``x`` (the paper's "added to the original input"); then a Transformer-style
  point-wise FFN with its own residual ("DynE is designed based on the
  Transformer, replacing self-attention"). Simplification: the branches'
  outputs are added, not used as multiplicative masks on a value path.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "ChannelLayerNorm",
    "ConvEncoderLayer",
    "DFAConv1d",
    "DynamicEncoderLayer",
    "MaskedConv1d",
    "TemporalPyramid",
]


def _as_mask(mask: Tensor | None, x: Tensor) -> Tensor:
    """Normalise a mask to ``(B, 1, T)`` bool on ``x``'s device (None -> all valid)."""
    if mask is None:
        return torch.ones(x.shape[0], 1, x.shape[-1], dtype=torch.bool, device=x.device)
    if mask.dim() == 2:
        mask = mask[:, None, :]
    if mask.shape != (x.shape[0], 1, x.shape[-1]):
        raise ValueError(
            f"mask must be (B, T) or (B, 1, T) matching x {tuple(x.shape)}, got {tuple(mask.shape)}"
        )
    return mask.to(torch.bool)


def _zero_pad(x: Tensor, mask: Tensor) -> Tensor:
    """Zero padded positions (``where``, not ``*``, so inf/NaN padding cannot leak)."""
    return x.masked_fill(~mask, 0.0)


def masked_max_downsample(x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Stride-2 max-pool (kernel 3) that ignores padded positions.

    Args:
        x: features ``(B, C, T)``.
        mask: ``(B, 1, T)`` bool.

    Returns:
        ``(B, C, ceil(T / 2))`` features (padding zeroed) and their ``(B, 1, ceil(T / 2))`` mask.
    """
    out = F.max_pool1d(x.masked_fill(~mask, float("-inf")), kernel_size=3, stride=2, padding=1)
    out_mask = mask[..., ::2]
    return _zero_pad(out, out_mask), out_mask


class ChannelLayerNorm(nn.LayerNorm):
    """LayerNorm over the channel axis of ``(B, C, T)`` tensors."""

    def forward(self, x: Tensor) -> Tensor:
        """Normalise each timestamp over channels.

        Args:
            x: ``(B, C, T)``.

        Returns:
            ``(B, C, T)``.
        """
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


class MaskedConv1d(nn.Module):
    """1-D convolution over ``(B, C, T)`` with a ``(B, 1, T)`` validity mask.

    "Same" padding (odd kernels only), so output ``t`` is centred on input
    ``t * stride``; the output mask is ``mask[..., ::stride]`` and the output is
    zero at padded positions.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: odd kernel size.
        stride: temporal stride.
        dilation: temporal dilation.
        groups: convolution groups.
        bias: add a bias.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        dilation: int = 1,
        groups: int = 1,
        bias: bool = True,
    ) -> None:
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd to keep points centred, got {kernel_size}")
        self.stride = stride
        self.conv = nn.Conv1d(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=dilation * (kernel_size - 1) // 2,
            dilation=dilation,
            groups=groups,
            bias=bias,
        )

    def forward(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Convolve the valid part of ``x``.

        Args:
            x: ``(B, C_in, T)``.
            mask: ``(B, 1, T)`` bool.

        Returns:
            ``(B, C_out, ceil(T / stride))`` output and its ``(B, 1, ceil(T / stride))`` mask.
        """
        out = self.conv(_zero_pad(x, mask))
        out_mask = mask[..., :: self.stride]
        return _zero_pad(out, out_mask), out_mask


class DFAConv1d(nn.Module):
    """Dynamic feature aggregation conv: shift -> per-timestamp tap mask -> per-tap weights.

    ``y_t = sum_s W_s (M_{s,t} * x_{t + (s - k // 2) * dilation})`` with
    ``M = relu(tanh(Psi(guide)))``, one mask per tap, timestamp and mask group.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: odd number of taps.
        dilation: spacing of the taps.
        groups: groups of the per-tap point-wise weights (``in == out == groups``
            is depth-wise).
        mask_groups: channel groups of ``x`` that get their own tap masks (divides
            ``in_channels``).
        guide_channels: channels of the tensor the masks are computed from
            (default ``in_channels``: the input itself).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        dilation: int = 1,
        groups: int = 1,
        mask_groups: int = 1,
        guide_channels: int | None = None,
    ) -> None:
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        if in_channels % mask_groups:
            raise ValueError(f"mask_groups={mask_groups} must divide in_channels={in_channels}")
        self.kernel_size, self.dilation, self.mask_groups = kernel_size, dilation, mask_groups
        self.pad = dilation * (kernel_size - 1) // 2
        g = guide_channels or in_channels
        self.mask_gen = nn.Sequential(
            nn.Conv1d(g, g, kernel_size, padding=self.pad, dilation=dilation, groups=g),
            nn.ReLU(inplace=True),
            nn.Conv1d(g, mask_groups * kernel_size, 1),
        )
        # Start as a static conv: all taps open with the same weight.
        nn.init.zeros_(self.mask_gen[-1].weight)
        nn.init.constant_(self.mask_gen[-1].bias, 1.0)
        self.pointwise = nn.Conv1d(in_channels * kernel_size, out_channels, 1, groups=groups)

    def tap_masks(self, guide: Tensor, mask: Tensor) -> Tensor:
        """Per-timestamp tap masks.

        Args:
            guide: ``(B, G_in, T)`` tensor the masks are computed from.
            mask: ``(B, 1, T)`` bool.

        Returns:
            ``(B, mask_groups, kernel_size, T)`` masks in ``[0, 1)``.
        """
        m = torch.tanh(self.mask_gen(_zero_pad(guide, mask))).relu()
        return m.view(m.shape[0], self.mask_groups, self.kernel_size, m.shape[-1])

    def forward(self, x: Tensor, mask: Tensor, guide: Tensor | None = None) -> Tensor:
        """Aggregate shifted features with dynamic tap masks.

        Args:
            x: ``(B, C_in, T)``.
            mask: ``(B, 1, T)`` bool.
            guide: optional ``(B, guide_channels, T)`` tensor for the masks (default ``x``).

        Returns:
            ``(B, C_out, T)``, zero at padded positions.
        """
        b, c, t = x.shape
        x = _zero_pad(x, mask)
        m = self.tap_masks(x if guide is None else guide, mask)
        window = self.dilation * (self.kernel_size - 1) + 1
        # (B, C, T, window) -> taps (B, C, k, T); channel-major so point-wise groups align.
        taps = F.pad(x, (self.pad, self.pad)).unfold(-1, window, 1)[..., :: self.dilation]
        taps = taps.permute(0, 1, 3, 2).reshape(b, self.mask_groups, c // self.mask_groups, -1, t)
        taps = taps * m[:, :, None]
        return _zero_pad(self.pointwise(taps.reshape(b, -1, t)), mask)


class _PointwiseFFN(nn.Module):
    """Pre-LN point-wise MLP block (no temporal mixing, so masking is trivial)."""

    def __init__(self, dim: int, mlp_ratio: float) -> None:
        super().__init__()
        hidden = max(1, round(dim * mlp_ratio))
        self.norm = ChannelLayerNorm(dim)
        self.fc1 = nn.Conv1d(dim, hidden, 1)
        self.fc2 = nn.Conv1d(hidden, dim, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(self.norm(x))))


def _drop_path(x: Tensor, p: float, training: bool) -> Tensor:
    """Stochastic depth: drop the whole residual branch per sample."""
    if p == 0.0 or not training:
        return x
    keep = x.new_empty(x.shape[0], *([1] * (x.dim() - 1))).bernoulli_(1.0 - p)
    return x * keep / (1.0 - p)


class DynamicEncoderLayer(nn.Module):
    """DyFADet DynE layer (paper §3.3): DS -> LN -> instance-dynamic + multi-kernel DFA, FFN.

    Args:
        dim: channels (in = out).
        kernel_size: odd kernel of the local multi-kernel branch.
        window_expansion: ``w``; the wide branch uses kernel ``k * w`` (rounded up to odd).
        stride: 1 or 2 (DS = masked stride-2 max-pool).
        mlp_ratio: FFN hidden width / dim.
        mask_groups: channel groups with their own tap masks in the multi-kernel branch.
        drop_path: stochastic-depth rate of both residual branches.
    """

    def __init__(
        self,
        dim: int,
        kernel_size: int = 3,
        window_expansion: int = 2,
        stride: int = 1,
        mlp_ratio: float = 4.0,
        mask_groups: int = 1,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride}")
        wide = kernel_size * window_expansion
        wide += 1 - wide % 2
        self.stride, self.drop_path = stride, drop_path
        self.norm = ChannelLayerNorm(dim)
        self.instance = DFAConv1d(1, dim, 1, guide_channels=dim)
        self.local = DFAConv1d(dim, dim, kernel_size, groups=dim, mask_groups=mask_groups)
        self.wide = DFAConv1d(dim, dim, wide, groups=dim, mask_groups=mask_groups)
        self.proj = nn.Conv1d(dim, dim, 1)
        self.ffn = _PointwiseFFN(dim, mlp_ratio)

    def forward(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Encode (and down-sample when ``stride == 2``).

        Args:
            x: ``(B, D, T)``.
            mask: ``(B, 1, T)`` bool.

        Returns:
            ``(B, D, ceil(T / stride))`` features and mask.
        """
        if self.stride == 2:
            x, mask = masked_max_downsample(x, mask)
        else:
            x = _zero_pad(x, mask)
        h = self.norm(x)
        squeezed = h.mean(dim=1, keepdim=True)  # "Squeeze": average over channels
        branches = self.instance(squeezed, mask, guide=h) + self.local(h, mask)
        branches = branches + self.wide(h, mask)
        x = x + _drop_path(self.proj(branches), self.drop_path, self.training)
        x = x + _drop_path(self.ffn(x), self.drop_path, self.training)
        return _zero_pad(x, mask), mask


class ConvEncoderLayer(nn.Module):
    """Plain residual conv block (ActionFormer's conv-backbone ablation style).

    ``x = DS(F)``; ``x + conv(GELU(conv(LN(x))))``.

    Args:
        dim: channels (in = out).
        kernel_size: odd kernel size.
        stride: 1 or 2 (DS = masked stride-2 max-pool).
        drop_path: stochastic-depth rate of the residual branch.
    """

    def __init__(
        self, dim: int, kernel_size: int = 3, stride: int = 1, drop_path: float = 0.0
    ) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride}")
        self.stride, self.drop_path = stride, drop_path
        self.norm = ChannelLayerNorm(dim)
        self.conv1 = MaskedConv1d(dim, dim, kernel_size)
        self.conv2 = MaskedConv1d(dim, dim, kernel_size)

    def forward(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Encode (and down-sample when ``stride == 2``).

        Args:
            x: ``(B, D, T)``.
            mask: ``(B, 1, T)`` bool.

        Returns:
            ``(B, D, ceil(T / stride))`` features and mask.
        """
        if self.stride == 2:
            x, mask = masked_max_downsample(x, mask)
        else:
            x = _zero_pad(x, mask)
        h, _ = self.conv1(self.norm(x), mask)
        h, _ = self.conv2(F.gelu(h), mask)
        return _zero_pad(x + _drop_path(h, self.drop_path, self.training), mask), mask


class TemporalPyramid(nn.Module):
    """Embedding + encoder -> feature pyramid, level ``l`` down-sampled by ``2**l``.

    Embedding: ``embed_layers`` x (masked conv -> LN -> ReLU). Stem:
    ``stem_layers`` stride-1 encoder layers (level 0). Branch: one stride-2 encoder
    layer per further level. Each level output gets its own LayerNorm (the
    "identity neck").

    Args:
        in_channels: feature channels of the input clips (e.g. 1408 for VideoMAEv2-g).
        embed_dim: pyramid width ``D``.
        num_levels: pyramid levels (strides ``1, 2, ..., 2**(num_levels-1)``).
        arch: ``"dyn"`` (DynE layers) or ``"conv"`` (plain conv layers).
        embed_layers: masked conv layers of the embedding.
        embed_kernel_size: odd kernel of the embedding convs.
        stem_layers: stride-1 encoder layers at level 0.
        kernel_size: odd kernel of the encoder layers.
        window_expansion: ``w`` of the DynE wide branch.
        mlp_ratio: DynE FFN ratio.
        drop_path: stochastic-depth rate of the encoder layers.
    """

    def __init__(
        self,
        in_channels: int,
        embed_dim: int = 256,
        num_levels: int = 6,
        arch: Literal["dyn", "conv"] = "dyn",
        embed_layers: int = 2,
        embed_kernel_size: int = 3,
        stem_layers: int = 1,
        kernel_size: int = 3,
        window_expansion: int = 2,
        mlp_ratio: float = 4.0,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        if arch not in ("dyn", "conv"):
            raise ValueError(f"arch must be 'dyn' or 'conv', got {arch!r}")
        if num_levels < 1 or embed_layers < 1:
            raise ValueError("num_levels and embed_layers must be >= 1")
        self.in_channels, self.embed_dim, self.num_levels = in_channels, embed_dim, num_levels
        self.embed = nn.ModuleList(
            MaskedConv1d(in_channels if i == 0 else embed_dim, embed_dim, embed_kernel_size)
            for i in range(embed_layers)
        )
        self.embed_norms = nn.ModuleList(ChannelLayerNorm(embed_dim) for _ in range(embed_layers))

        def layer(stride: int) -> nn.Module:
            if arch == "dyn":
                return DynamicEncoderLayer(
                    embed_dim, kernel_size, window_expansion, stride, mlp_ratio, drop_path=drop_path
                )
            return ConvEncoderLayer(embed_dim, kernel_size, stride, drop_path)

        self.stem = nn.ModuleList(layer(1) for _ in range(stem_layers))
        self.branch = nn.ModuleList(layer(2) for _ in range(num_levels - 1))
        self.level_norms = nn.ModuleList(ChannelLayerNorm(embed_dim) for _ in range(num_levels))

    @property
    def strides(self) -> list[int]:
        """Temporal stride of each level relative to the input."""
        return [2**level for level in range(self.num_levels)]

    def forward(self, x: Tensor, mask: Tensor | None = None) -> tuple[list[Tensor], list[Tensor]]:
        """Build the pyramid.

        Args:
            x: clip features ``(B, C_in, T)``.
            mask: ``(B, T)`` or ``(B, 1, T)`` bool, True = valid (None: all valid).

        Returns:
            ``feats``: ``num_levels`` tensors ``(B, D, ceil(T / 2**l))``;
            ``masks``: matching ``(B, 1, ceil(T / 2**l))`` bool masks.
        """
        if x.dim() != 3 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected (B, {self.in_channels}, T) features, got {tuple(x.shape)}")
        mask = _as_mask(mask, x)
        for conv, norm in zip(self.embed, self.embed_norms, strict=True):
            x, mask = conv(x, mask)
            x = _zero_pad(F.relu(norm(x)), mask)
        for blk in self.stem:
            x, mask = blk(x, mask)
        feats, masks = [x], [mask]
        for blk in self.branch:
            x, mask = blk(x, mask)
            feats.append(x)
            masks.append(mask)
        feats = [
            _zero_pad(norm(f), m) for norm, f, m in zip(self.level_norms, feats, masks, strict=True)
        ]
        return feats, masks
