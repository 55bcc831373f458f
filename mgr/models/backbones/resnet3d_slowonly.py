"""ResNet3dSlowOnly: the 3D-CNN of PoseConv3D and its RGB pathway.

A ResNet-50-style network of Bottleneck3d blocks whose early stages are purely
spatial and whose later stages add a temporal kernel of 3 ("SlowOnly",
Feichtenhofer et al. 2019). PoseConv3D (Duan et al. 2022) runs it on stacks of
keypoint heatmaps ``(B, K, T, H, W)`` with a shallower, narrower configuration
(:func:`slowonly_pose`); the RGB pathway is the usual ResNet-50 SlowOnly on
224² frames (:func:`slowonly_r50_rgb`).

The architecture follows mmaction2's ``ResNet3dSlowOnly`` (``inflate_style
'3x1x1'``, ``style 'pytorch'``, no ``pool2``), and submodules are named like
its ``ConvModule``s, so mmaction2 and pyskl checkpoints load after stripping
their ``backbone.`` prefix (see :func:`mgr.models.checkpoints.load_mmaction_checkpoint`)::

    conv1.{conv,bn}
    layer{i}.{k}.conv{1,2,3}.{conv,bn}
    layer{i}.0.downsample.{conv,bn}

Not supported (unused by the PoseConv3D configs): dilation, non-local blocks,
``'caffe'`` style, the ``'3x3x3'`` inflate style, lateral connections.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from torch import Tensor, nn

__all__ = [
    "Bottleneck3d",
    "ConvBNAct3d",
    "ResNet3dSlowOnly",
    "slowonly_pose",
    "slowonly_r50_rgb",
]


def _triple(value: Sequence[int], name: str) -> tuple[int, int, int]:
    """Check a ``(t, h, w)`` triple given as any sequence (YAML gives lists)."""
    out = tuple(int(v) for v in value)
    if len(out) != 3:
        raise ValueError(f"{name} must have 3 entries (t, h, w), got {value!r}")
    return out  # type: ignore[return-value]


class ConvBNAct3d(nn.Module):
    """``Conv3d`` (no bias) -> ``BatchNorm3d`` -> optional ReLU.

    The attribute names ``conv`` and ``bn`` match mmcv's ``ConvModule`` so that
    checkpoint keys line up; the activation has no parameters.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: ``(t, h, w)`` kernel.
        stride: ``(t, h, w)`` stride.
        padding: ``(t, h, w)`` zero padding.
        act: apply ReLU after the BN.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: tuple[int, int, int],
        stride: tuple[int, int, int] = (1, 1, 1),
        padding: tuple[int, int, int] = (0, 0, 0),
        act: bool = True,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv3d(
            in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False
        )
        self.bn = nn.BatchNorm3d(out_channels)
        self.act = nn.ReLU(inplace=True) if act else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        """Apply conv, BN and activation.

        Args:
            x: ``(B, C_in, T, H, W)``.

        Returns:
            ``(B, C_out, T', H', W')``.
        """
        return self.act(self.bn(self.conv(x)))


class Bottleneck3d(nn.Module):
    """ResNet bottleneck with an optional ``3x1x1`` temporal kernel in ``conv1``.

    ``conv1`` (``1x1x1``, or ``3x1x1`` when inflated) reduces to ``planes``;
    ``conv2`` (``1x3x3``) carries the block's temporal *and* spatial stride
    ("pytorch" style); ``conv3`` (``1x1x1``, no activation) expands to
    ``planes * 4``. The residual is added before the final ReLU.

    Args:
        in_channels: input channels.
        planes: bottleneck width; the block outputs ``planes * expansion``.
        spatial_stride: stride over ``H`` and ``W``.
        temporal_stride: stride over ``T``.
        inflate: use a ``3x1x1`` kernel (padding 1 in time) in ``conv1``.
        downsample: projection of the shortcut when the shape changes, or ``None``.
    """

    expansion: ClassVar[int] = 4

    def __init__(
        self,
        in_channels: int,
        planes: int,
        spatial_stride: int = 1,
        temporal_stride: int = 1,
        inflate: bool = False,
        downsample: nn.Module | None = None,
    ) -> None:
        super().__init__()
        k1, p1 = ((3, 1, 1), (1, 0, 0)) if inflate else ((1, 1, 1), (0, 0, 0))
        self.conv1 = ConvBNAct3d(in_channels, planes, k1, padding=p1)
        self.conv2 = ConvBNAct3d(
            planes,
            planes,
            (1, 3, 3),
            stride=(temporal_stride, spatial_stride, spatial_stride),
            padding=(0, 1, 1),
        )
        self.conv3 = ConvBNAct3d(planes, planes * self.expansion, (1, 1, 1), act=False)
        self.downsample = downsample
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        """Apply the block.

        Args:
            x: ``(B, C_in, T, H, W)``.

        Returns:
            ``(B, planes * 4, ceil(T / st), ceil(H / ss), ceil(W / ss))``.
        """
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(self.conv3(self.conv2(self.conv1(x))) + identity)


class ResNet3dSlowOnly(nn.Module):
    """SlowOnly 3D ResNet of Bottleneck3d blocks (mmaction2-compatible naming).

    Stem: ``conv1`` (``conv1_kernel``, ``conv1_stride``, "same" padding) + BN +
    ReLU, then a ``1x3x3`` max pool with ``pool1_stride``. Stage ``i`` has
    ``stage_blocks[i]`` bottlenecks of width ``base_channels * 2**i`` (output
    ``4x`` that); its first block carries the stage's strides and a ``1x1x1``
    projection shortcut (``downsample``) when the shape changes.

    The defaults are mmaction2's ``slowonly_r50`` RGB pathway; see
    :func:`slowonly_pose` for PoseConv3D's heatmap configuration.

    Args:
        in_channels: input channels (3 for RGB, ``K`` keypoints/limbs for heatmaps).
        base_channels: width of the stem and of the first stage's bottleneck.
        num_stages: number of residual stages.
        stage_blocks: blocks per stage (``num_stages`` entries).
        conv1_kernel: ``(t, h, w)`` kernel of the stem convolution.
        conv1_stride: ``(t, h, w)`` stride of the stem convolution.
        pool1_stride: ``(t, h, w)`` stride of the stem max pool.
        inflate: per stage, 1 to give every block's ``conv1`` a ``3x1x1``
            temporal kernel, 0 for ``1x1x1``.
        spatial_strides: per stage, spatial stride of its first block.
        temporal_strides: per stage, temporal stride of its first block.
        zero_init_residual: initialise the last BN of every block to zero, so
            each block starts as the identity (as mmaction2 does by default).
    """

    def __init__(
        self,
        in_channels: int = 3,
        base_channels: int = 64,
        num_stages: int = 4,
        stage_blocks: Sequence[int] = (3, 4, 6, 3),
        conv1_kernel: Sequence[int] = (1, 7, 7),
        conv1_stride: Sequence[int] = (1, 2, 2),
        pool1_stride: Sequence[int] = (1, 2, 2),
        inflate: Sequence[int] = (0, 0, 1, 1),
        spatial_strides: Sequence[int] = (1, 2, 2, 2),
        temporal_strides: Sequence[int] = (1, 1, 1, 1),
        zero_init_residual: bool = True,
    ) -> None:
        super().__init__()
        if num_stages < 1:
            raise ValueError(f"num_stages must be >= 1, got {num_stages}")
        for name, seq in (
            ("stage_blocks", stage_blocks),
            ("inflate", inflate),
            ("spatial_strides", spatial_strides),
            ("temporal_strides", temporal_strides),
        ):
            if len(seq) != num_stages:
                raise ValueError(
                    f"{name} has {len(seq)} entries but num_stages={num_stages}: {tuple(seq)}"
                )
        kernel = _triple(conv1_kernel, "conv1_kernel")
        if any(k % 2 == 0 for k in kernel):
            raise ValueError(f"conv1_kernel must be odd to pad symmetrically, got {kernel}")
        self.in_channels = in_channels
        self.zero_init_residual = zero_init_residual

        self.conv1 = ConvBNAct3d(
            in_channels,
            base_channels,
            kernel,
            stride=_triple(conv1_stride, "conv1_stride"),
            padding=tuple(k // 2 for k in kernel),  # type: ignore[arg-type]
        )
        self.maxpool = nn.MaxPool3d(
            (1, 3, 3), stride=_triple(pool1_stride, "pool1_stride"), padding=(0, 1, 1)
        )
        self.stage_names: list[str] = []
        channels = base_channels
        for i, blocks in enumerate(stage_blocks):
            planes = base_channels * 2**i
            stage = self._make_stage(
                channels,
                planes,
                int(blocks),
                int(spatial_strides[i]),
                int(temporal_strides[i]),
                bool(inflate[i]),
            )
            self.add_module(f"layer{i + 1}", stage)
            self.stage_names.append(f"layer{i + 1}")
            channels = planes * Bottleneck3d.expansion
        #: channels of the output feature map.
        self.out_channels = channels
        self.init_weights()

    @staticmethod
    def _make_stage(
        in_channels: int,
        planes: int,
        blocks: int,
        spatial_stride: int,
        temporal_stride: int,
        inflate: bool,
    ) -> nn.Sequential:
        """One residual stage; only its first block strides and projects."""
        out_channels = planes * Bottleneck3d.expansion
        downsample = None
        # mmaction2 omits the temporal stride from this test; with it, a stage that
        # strides only in time still gets a matching shortcut (same keys otherwise).
        if spatial_stride != 1 or temporal_stride != 1 or in_channels != out_channels:
            downsample = ConvBNAct3d(
                in_channels,
                out_channels,
                (1, 1, 1),
                stride=(temporal_stride, spatial_stride, spatial_stride),
                act=False,
            )
        layers = [
            Bottleneck3d(in_channels, planes, spatial_stride, temporal_stride, inflate, downsample)
        ]
        layers += [Bottleneck3d(out_channels, planes, inflate=inflate) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def init_weights(self) -> None:
        """Kaiming-normal (fan-out) convs, unit BNs, zero last BN per block if asked."""
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if self.zero_init_residual:
            for m in self.modules():
                if isinstance(m, Bottleneck3d):
                    nn.init.zeros_(m.conv3.bn.weight)

    def forward(self, x: Tensor) -> Tensor:
        """Encode a clip into a feature map.

        Args:
            x: ``(B, C, T, H, W)`` frames or heatmaps, ``C = in_channels``.

        Returns:
            ``(B, out_channels, T', H', W')`` output of the last stage (not pooled).
        """
        if x.ndim != 5:
            raise ValueError(f"expected (B, C, T, H, W), got shape {tuple(x.shape)}")
        if x.shape[1] != self.in_channels:
            raise ValueError(
                f"input has C={x.shape[1]} channels but the backbone was built for "
                f"in_channels={self.in_channels}"
            )
        x = self.maxpool(self.conv1(x))
        for name in self.stage_names:
            x = getattr(self, name)(x)
        return x


def slowonly_pose(in_channels: int = 17, **kwargs: Any) -> ResNet3dSlowOnly:
    """PoseConv3D's heatmap backbone (mmaction2/pyskl ``slowonly_r50 ... keypoint``).

    Three stages of (4, 6, 3) blocks, base width 32 (output 512 channels), no
    spatial downsampling in the stem, temporal stride 2 in the last stage: a
    ``(B, K, 48, 56, 56)`` heatmap stack gives a ``(B, 512, 24, 7, 7)`` map.
    About 2.0 M parameters.

    Args:
        in_channels: heatmap channels ``K`` (17 COCO keypoints, or the limb count).
        **kwargs: overrides of any other :class:`ResNet3dSlowOnly` argument.

    Returns:
        The backbone.
    """
    config: dict[str, Any] = {
        "base_channels": 32,
        "num_stages": 3,
        "stage_blocks": (4, 6, 3),
        "conv1_kernel": (1, 7, 7),
        "conv1_stride": (1, 1, 1),
        "pool1_stride": (1, 1, 1),
        "inflate": (0, 1, 1),
        "spatial_strides": (2, 2, 2),
        "temporal_strides": (1, 1, 2),
    }
    return ResNet3dSlowOnly(in_channels=in_channels, **{**config, **kwargs})


def slowonly_r50_rgb(in_channels: int = 3, **kwargs: Any) -> ResNet3dSlowOnly:
    """SlowOnly ResNet-50 for RGB clips (mmaction2 ``slowonly_r50`` defaults).

    Four stages of (3, 4, 6, 3) blocks, base width 64 (output 2048 channels),
    stem and pool each stride 2 in space, no temporal stride: a
    ``(B, 3, T, 224, 224)`` clip gives ``(B, 2048, T, 7, 7)``.

    Args:
        in_channels: input channels.
        **kwargs: overrides of any other :class:`ResNet3dSlowOnly` argument.

    Returns:
        The backbone.
    """
    config: dict[str, Any] = {
        "base_channels": 64,
        "num_stages": 4,
        "stage_blocks": (3, 4, 6, 3),
        "conv1_kernel": (1, 7, 7),
        "conv1_stride": (1, 2, 2),
        "pool1_stride": (1, 2, 2),
        "inflate": (0, 0, 1, 1),
        "spatial_strides": (1, 2, 2, 2),
        "temporal_strides": (1, 1, 1, 1),
    }
    return ResNet3dSlowOnly(in_channels=in_channels, **{**config, **kwargs})
