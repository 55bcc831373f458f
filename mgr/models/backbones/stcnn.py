"""Decoupled spatial-temporal CNN on joint coordinates.

The skeleton-joint branch of the multi-modal CMPL framework (MiGA'26,
``papers/multimodal-cmpl.txt`` §3.1): centre-normalised ``(x, y, confidence)``
coordinates, ``C x T x V``, go through stacked blocks that *independently*
apply a ``(1 x 3)`` spatial convolution (across neighbouring joints, in the
layout's joint order) and a ``(5 x 1)`` temporal convolution (across frames
of one joint). The paper gives no depth or width, so both are configurable;
the defaults are ours.

Choices the paper leaves open (documented here):

* an input BatchNorm over ``C * V`` (as ST-GCN does), so raw pixel-scale
  coordinates and confidences train without hand tuning;
* residual connections around each block (with a ``1 x 1`` projection when
  the width or temporal stride changes);
* the readout: ``"mean"`` pools over frames and joints (the usual
  action-recognition readout); ``"joint"`` pools over frames only and keeps one
  feature per joint, flattened, so the head knows *which* joint moved. A
  ``(1 x 3)`` convolution over an index-ordered joint axis has no notion of
  joint identity, and micro-gestures differ mostly in *where* a small motion
  happens, so ``"joint"`` is the default.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from torch import Tensor, nn

__all__ = ["DecoupledSTBlock", "DecoupledSTCNN"]


class DecoupledSTBlock(nn.Module):
    """``(1 x ks)`` spatial conv -> BN -> ReLU -> ``(kt x 1)`` temporal conv -> BN, residual.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        spatial_kernel: kernel size over joints (odd).
        temporal_kernel: kernel size over frames (odd).
        temporal_stride: stride over frames.
        dropout: dropout after the block.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        spatial_kernel: int = 3,
        temporal_kernel: int = 5,
        temporal_stride: int = 1,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if spatial_kernel % 2 == 0 or temporal_kernel % 2 == 0:
            raise ValueError("kernel sizes must be odd to keep the joint/frame alignment")
        self.spatial = nn.Sequential(
            nn.Conv2d(
                in_channels,
                out_channels,
                (1, spatial_kernel),
                padding=(0, spatial_kernel // 2),
                bias=False,
            ),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )
        self.temporal = nn.Sequential(
            nn.Conv2d(
                out_channels,
                out_channels,
                (temporal_kernel, 1),
                stride=(temporal_stride, 1),
                padding=(temporal_kernel // 2, 0),
                bias=False,
            ),
            nn.BatchNorm2d(out_channels),
        )
        if in_channels == out_channels and temporal_stride == 1:
            self.residual: nn.Module = nn.Identity()
        else:
            self.residual = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=(temporal_stride, 1), bias=False),
                nn.BatchNorm2d(out_channels),
            )
        self.relu = nn.ReLU(inplace=True)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        """Apply the block.

        Args:
            x: ``(N, C_in, T, V)``.

        Returns:
            ``(N, C_out, ceil(T / stride), V)``.
        """
        return self.drop(self.relu(self.temporal(self.spatial(x)) + self.residual(x)))


class DecoupledSTCNN(nn.Module):
    """Decoupled ST-CNN backbone.

    Args:
        in_channels: coordinate channels ``C`` (3 for x, y, confidence).
        num_joints: joints ``V``.
        channels: output width of each block.
        temporal_strides: temporal stride of each block (same length as ``channels``).
        spatial_kernel: kernel over joints (the paper's 3).
        temporal_kernel: kernel over frames (the paper's 5).
        dropout: dropout after each block.
        readout: ``"joint"`` (keep per-joint features) or ``"mean"`` (pool joints).
    """

    def __init__(
        self,
        in_channels: int = 3,
        num_joints: int = 22,
        channels: Sequence[int] = (64, 64, 128, 128, 256),
        temporal_strides: Sequence[int] = (1, 1, 2, 1, 2),
        spatial_kernel: int = 3,
        temporal_kernel: int = 5,
        dropout: float = 0.0,
        readout: Literal["joint", "mean"] = "joint",
    ) -> None:
        super().__init__()
        if len(channels) != len(temporal_strides):
            raise ValueError(
                f"channels ({len(channels)}) and temporal_strides ({len(temporal_strides)}) "
                "must have the same length"
            )
        if readout not in ("joint", "mean"):
            raise ValueError(f"readout must be 'joint' or 'mean', got {readout!r}")
        self.in_channels = in_channels
        self.num_joints = num_joints
        self.readout = readout
        self.data_bn = nn.BatchNorm1d(in_channels * num_joints)
        blocks, c_in = [], in_channels
        for c_out, stride in zip(channels, temporal_strides, strict=True):
            blocks.append(
                DecoupledSTBlock(c_in, c_out, spatial_kernel, temporal_kernel, stride, dropout)
            )
            c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.out_features = c_in * (num_joints if readout == "joint" else 1)

    def forward(self, x: Tensor) -> Tensor:
        """Encode a batch of skeleton clips.

        Args:
            x: ``(B, C, T, V, M)`` joint coordinates of ``M`` persons.

        Returns:
            ``(B, D)`` features, ``D = out_features``; persons are averaged.
        """
        if x.ndim != 5:
            raise ValueError(f"expected skeleton (B, C, T, V, M), got shape {tuple(x.shape)}")
        b, c, t, v, m = x.shape
        if c != self.in_channels or v != self.num_joints:
            raise ValueError(
                f"skeleton has C={c}, V={v} but the backbone was built for "
                f"in_channels={self.in_channels}, num_joints={self.num_joints}"
            )
        # (B, C, T, V, M) -> (B*M, C*V, T) for the input BN -> (B*M, C, T, V).
        x = x.permute(0, 4, 1, 3, 2).reshape(b * m, c * v, t)
        x = self.data_bn(x).reshape(b * m, c, v, t).transpose(2, 3)
        x = self.blocks(x)
        x = x.mean(2)  # pool frames: (B*M, C', V)
        x = x.flatten(1) if self.readout == "joint" else x.mean(-1)
        return x.reshape(b, m, -1).mean(1)
