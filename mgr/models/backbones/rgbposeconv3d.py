"""RGBPoseConv3D: an RGB and a pose-heatmap SlowOnly pathway joined by lateral connections.

PoseConv3D's two-stream model (Duan et al., CVPR 2022, §3.3; mmaction2's
``RGBPoseConv3D``): a ResNet-50 SlowOnly on few RGB frames and a narrow
SlowOnly on many heatmap frames exchange features twice, SlowFast-style
(Feichtenhofer et al. 2019), in *both* directions. The pathways are aligned by
spatial resolution: with the default strides the RGB stage ``m + 1`` and the
pose stage ``m`` have the same ``H x W`` (RGB 224² and heatmaps 56² give 28²
after RGB ``layer2`` / pose ``layer1``, 14² after ``layer3`` / ``layer2``).
After each aligned pair ``(rgb layer{m+1}, pose layer{m})``, ``m = 1, 2``:

* pose -> RGB: ``rgb_path.layer{m+1}_lateral``, a ``(7, 1, 1)`` convolution with
  temporal stride ``speed_ratio`` (32 pose frames -> 8 RGB frames);
* RGB -> pose: ``pose_path.layer{m}_lateral``, a ``(7, 1, 1)`` *transposed*
  convolution upsampling time by ``speed_ratio`` (8 -> 32 frames) + BN + ReLU
  (mmaction2's ``DeConvModule``, built because the pose pathway has
  ``lateral_inv=True``);

and each lateral output is concatenated (channels) to the receiving pathway's
features, i.e. to the input of its next stage. Both laterals of a pair are
computed from the features *before* either concatenation.

Naming and channel arithmetic follow mmaction2's ``ResNet3dPathway`` exactly,
so its checkpoints load after stripping ``backbone.``: a pathway's
``layer{i}_lateral`` is sized from *its own* stage-``i`` output ``C_i`` (the
other pathway is assumed to be ``channel_ratio`` times narrower or wider):

* ``lateral_inv=False`` (RGB): ``Conv3d``, ``C_i / channel_ratio`` in,
  ``C_i * lateral_infl / channel_ratio`` out, no norm, no activation (mmcv
  ``ConvModule`` with ``norm_cfg=None``: only ``conv.weight``);
* ``lateral_inv=True`` (pose): ``ConvTranspose3d``, ``C_i * channel_ratio`` in,
  ``C_i * channel_ratio / lateral_infl`` out, + ``bn`` + ReLU;

and stage ``i + 1`` takes ``C_i`` plus the lateral's channels. With the defaults
(``speed_ratio=channel_ratio=4``, RGB ``lateral_infl=1``, pose ``lateral_infl=16``)::

    key                                   shape                 reads -> feeds (in channels)
    rgb_path.layer2_lateral.conv.weight   (128, 128, 7, 1, 1)   pose 128 -> rgb layer3 (512 + 128)
    rgb_path.layer3_lateral.conv.weight   (256, 256, 7, 1, 1)   pose 256 -> rgb layer4 (1024 + 256)
    pose_path.layer1_lateral.conv.weight  (512, 32, 7, 1, 1)    rgb 512 -> pose layer2 (128 + 32)
    pose_path.layer2_lateral.conv.weight  (1024, 64, 7, 1, 1)   rgb 1024 -> pose layer3 (256 + 64)

(transposed convolutions store ``(C_in, C_out, k_t, k_h, k_w)``). Every other
key is a :class:`~mgr.models.backbones.resnet3d_slowonly.ResNet3dSlowOnly` key;
the first block of a stage that receives a lateral is simply wider.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .resnet3d_slowonly import Bottleneck3d, ResNet3dSlowOnly

__all__ = ["DeConvBNAct3d", "LateralConv3d", "RGBPoseConv3D", "ResNet3dPathway"]


class LateralConv3d(nn.Module):
    """Temporal-strided lateral convolution (mmcv ``ConvModule`` naming).

    ``Conv3d`` with a ``(fusion_kernel, 1, 1)`` kernel and stride
    ``(speed_ratio, 1, 1)``, no bias: ``T`` frames become ``ceil(T / speed_ratio)``.
    mmaction2 adds BN + ReLU only with ``lateral_norm=True``; without them the
    module holds ``conv.weight`` alone, as its checkpoints do.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        fusion_kernel: odd temporal kernel size.
        speed_ratio: temporal stride.
        norm: add ``bn`` (BatchNorm3d) and a ReLU after the convolution.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        fusion_kernel: int,
        speed_ratio: int,
        norm: bool = False,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv3d(
            in_channels,
            out_channels,
            (fusion_kernel, 1, 1),
            stride=(speed_ratio, 1, 1),
            padding=((fusion_kernel - 1) // 2, 0, 0),
            bias=False,
        )
        self.bn = nn.BatchNorm3d(out_channels) if norm else None
        self.act = nn.ReLU(inplace=True) if norm else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        """Fuse a faster pathway's features into a slower one's frame rate.

        Args:
            x: ``(B, C_in, T, H, W)``.

        Returns:
            ``(B, C_out, ceil(T / speed_ratio), H, W)``.
        """
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        return self.act(x)


class DeConvBNAct3d(nn.Module):
    """Temporal transposed convolution + BN + ReLU (mmaction2's ``DeConvModule``).

    ``ConvTranspose3d`` with a ``(fusion_kernel, 1, 1)`` kernel and stride
    ``(speed_ratio, 1, 1)``, no bias, asked for exactly ``speed_ratio * T``
    output frames (the ``output_size`` argument picks the output padding).

    Args:
        in_channels: input channels.
        out_channels: output channels.
        fusion_kernel: odd temporal kernel size.
        speed_ratio: temporal upsampling factor.
    """

    def __init__(
        self, in_channels: int, out_channels: int, fusion_kernel: int, speed_ratio: int
    ) -> None:
        super().__init__()
        self.speed_ratio = speed_ratio
        self.conv = nn.ConvTranspose3d(
            in_channels,
            out_channels,
            (fusion_kernel, 1, 1),
            stride=(speed_ratio, 1, 1),
            padding=((fusion_kernel - 1) // 2, 0, 0),
            bias=False,
        )
        self.bn = nn.BatchNorm3d(out_channels)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        """Bring a slower pathway's features to a faster one's frame rate.

        Args:
            x: ``(B, C_in, T, H, W)``.

        Returns:
            ``(B, C_out, speed_ratio * T, H, W)``.
        """
        t, h, w = x.shape[2:]
        x = self.conv(x, output_size=[t * self.speed_ratio, h, w])
        return self.act(self.bn(x))


class ResNet3dPathway(ResNet3dSlowOnly):
    """A :class:`ResNet3dSlowOnly` that takes lateral inputs from another pathway.

    Stage ``i`` (``layer{i+1}``) takes ``lateral_inplanes[i]`` extra input
    channels when ``lateral_activate[i]`` is set, and ``layer{i}_lateral``
    (``1 <= i < num_stages``) maps the other pathway's features to exactly that
    many channels (see the module docstring for the arithmetic). The pathway
    only builds the laterals; running the exchange is :class:`RGBPoseConv3D`'s
    job, so a pathway with laterals cannot run on its own.

    Args:
        in_channels: input channels.
        base_channels: stem width and first-stage bottleneck width.
        num_stages: residual stages.
        stage_blocks: blocks per stage.
        conv1_kernel: ``(t, h, w)`` stem kernel.
        conv1_stride: ``(t, h, w)`` stem stride.
        pool1_stride: ``(t, h, w)`` stem max-pool stride.
        inflate: per stage, ``3x1x1`` temporal kernels (1) or not (0).
        spatial_strides: per stage.
        temporal_strides: per stage.
        zero_init_residual: zero the last BN of each block.
        lateral: build lateral connections *into* this pathway.
        lateral_inv: the other pathway has ``speed_ratio`` times *fewer* frames
            and ``channel_ratio`` times *more* channels: laterals are
            :class:`DeConvBNAct3d` (upsampling time) instead of strided
            :class:`LateralConv3d`.
        lateral_norm: BN + ReLU in the (non-inverse) lateral convolutions.
        lateral_infl: channel inflation of the laterals (see the module docstring).
        lateral_activate: per stage, whether stage ``i`` receives a lateral
            (``None``: every stage but the first). The first entry must be 0:
            stem laterals (mmaction2's ``conv1_lateral``) are not supported.
        speed_ratio: frame-rate ratio between the faster and the slower pathway.
        channel_ratio: channel ratio between the wider and the narrower pathway.
        fusion_kernel: odd temporal kernel of the laterals.
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
        lateral: bool = False,
        lateral_inv: bool = False,
        lateral_norm: bool = False,
        lateral_infl: int = 2,
        lateral_activate: Sequence[int] | None = None,
        speed_ratio: int = 4,
        channel_ratio: int = 4,
        fusion_kernel: int = 7,
    ) -> None:
        super().__init__(
            in_channels=in_channels,
            base_channels=base_channels,
            num_stages=num_stages,
            stage_blocks=stage_blocks,
            conv1_kernel=conv1_kernel,
            conv1_stride=conv1_stride,
            pool1_stride=pool1_stride,
            inflate=inflate,
            spatial_strides=spatial_strides,
            temporal_strides=temporal_strides,
            zero_init_residual=zero_init_residual,
        )
        if lateral_activate is None:
            lateral_activate = (0,) + (1,) * (num_stages - 1)
        activate = tuple(bool(a) for a in lateral_activate)
        if len(activate) != num_stages:
            raise ValueError(
                f"lateral_activate has {len(activate)} entries but num_stages={num_stages}"
            )
        if lateral and activate[0]:
            raise ValueError(
                "lateral_activate[0] (a lateral into the first stage, mmaction2's "
                "conv1_lateral) is not supported: RGBPoseConv3D never uses it"
            )
        for name, value in (
            ("lateral_infl", lateral_infl),
            ("speed_ratio", speed_ratio),
            ("channel_ratio", channel_ratio),
        ):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if fusion_kernel < 1 or fusion_kernel % 2 == 0:
            raise ValueError(f"fusion_kernel must be odd and positive, got {fusion_kernel}")
        self.lateral = lateral
        self.lateral_inv = lateral_inv
        self.speed_ratio = speed_ratio
        self.channel_ratio = channel_ratio

        expansion = Bottleneck3d.expansion
        #: output channels of each stage.
        self.stage_out_channels = [base_channels * 2**i * expansion for i in range(num_stages)]
        #: input channels of each stage without laterals.
        self.stage_in_channels = [base_channels, *self.stage_out_channels[:-1]]
        #: extra (lateral) input channels of each stage.
        self.lateral_inplanes = [0] * num_stages
        #: names of the lateral modules, ``layer{i}_lateral``.
        self.lateral_connections: list[str] = []
        if lateral:
            for i in range(1, num_stages):
                if not activate[i]:
                    continue
                c = self.stage_in_channels[i]  # = output of stage i - 1
                if lateral_inv:
                    c_in, c_out = c * channel_ratio, c * channel_ratio // lateral_infl
                else:
                    c_in, c_out = c // channel_ratio, c * lateral_infl // channel_ratio
                if c_in < 1 or c_out < 1:
                    raise ValueError(
                        f"layer{i}_lateral would have {c_in} -> {c_out} channels: increase "
                        "base_channels or lower channel_ratio / lateral_infl"
                    )
                module: nn.Module
                if lateral_inv:
                    module = DeConvBNAct3d(c_in, c_out, fusion_kernel, speed_ratio)
                else:
                    module = LateralConv3d(c_in, c_out, fusion_kernel, speed_ratio, lateral_norm)
                name = f"layer{i}_lateral"
                self.add_module(name, module)
                self.lateral_connections.append(name)
                self.lateral_inplanes[i] = c_out
                # Only the stage's first block sees the lateral channels. It is rebuilt
                # by the parent's own rule, so the shortcut projection stays identical.
                first = self._make_stage(
                    c + c_out,
                    base_channels * 2**i,
                    1,
                    int(spatial_strides[i]),
                    int(temporal_strides[i]),
                    bool(inflate[i]),
                )[0]
                getattr(self, f"layer{i + 1}")[0] = first
                self._init_new(first)
                self._init_new(module)

    def _init_new(self, module: nn.Module) -> None:
        """Initialise a module built after ``init_weights`` by the same rule.

        Kaiming-normal (fan-out) ``Conv3d``, unit BN, zeroed last BN of a
        bottleneck when ``zero_init_residual``. Transposed convolutions keep
        PyTorch's default initialisation, as in mmaction2 (whose
        ``kaiming_init`` pass only visits ``Conv2d``/``Conv3d``).
        """
        for m in module.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        # A second pass: modules() visits a block before its BNs.
        for m in module.modules():
            if self.zero_init_residual and isinstance(m, Bottleneck3d):
                nn.init.zeros_(m.conv3.bn.weight)

    def forward_stem(self, x: Tensor) -> Tensor:
        """Stem convolution and max pool.

        Args:
            x: ``(B, C, T, H, W)`` with ``C = in_channels``.

        Returns:
            ``(B, base_channels, T', H', W')``.
        """
        if x.ndim != 5:
            raise ValueError(f"expected (B, C, T, H, W), got shape {tuple(x.shape)}")
        if x.shape[1] != self.in_channels:
            raise ValueError(
                f"input has C={x.shape[1]} channels but the pathway was built for "
                f"in_channels={self.in_channels}"
            )
        return self.maxpool(self.conv1(x))

    def forward(self, x: Tensor) -> Tensor:
        """Run the pathway alone (only without lateral inputs).

        Args:
            x: ``(B, C, T, H, W)``.

        Returns:
            ``(B, out_channels, T', H', W')``.
        """
        if any(self.lateral_inplanes):
            raise RuntimeError(
                "this pathway's stages take lateral inputs from another pathway; "
                "run it inside RGBPoseConv3D"
            )
        return super().forward(x)


class RGBPoseConv3D(nn.Module):
    """Two SlowOnly pathways, RGB and pose heatmaps, with bidirectional laterals.

    Defaults are mmaction2's ``rgbpose_conv3d.py`` config
    (``reference-algorithms.md`` §2.3): RGB ResNet-50 SlowOnly (base 64, blocks
    (3, 4, 6, 3), inflate (0, 0, 1, 1), stem stride 2 and pool stride 2),
    pose SlowOnly (base 32, blocks (4, 6, 3), inflate (0, 1, 1), spatial
    strides 2, no stem striding, *no* temporal stride), ``speed_ratio = 4``,
    ``channel_ratio = 4``, laterals into RGB ``layer3``/``layer4`` and pose
    ``layer2``/``layer3``. Inputs: 8 RGB frames at 224² and 32 heatmap frames
    at 56² (``GeneratePoseTarget(scaling=0.25)``) give ``(B, 2048, 8, 7, 7)`` and
    ``(B, 512, 32, 7, 7)``.

    The exchange pairs RGB stage ``j + offset`` with pose stage ``j`` where
    ``offset = rgb stages - pose stages`` (1): after RGB ``layer{j+offset}`` and
    pose ``layer{j}``, ``rgb_path.layer{j+offset}_lateral`` reads the pose
    features and ``pose_path.layer{j}_lateral`` reads the RGB features. The
    channel arithmetic holds when the RGB pathway is ``channel_ratio / 2`` times
    wider at equal stage index, i.e. ``rgb_base_channels = 2 * pose_base_channels``
    for ``channel_ratio = 4``; this is checked at construction. The frame and
    size ratios (``T_pose = speed_ratio * T_rgb``, heatmaps a quarter of the
    video's size with the default strides) are checked at run time.

    Args:
        in_channels: heatmap channels ``K`` of the pose pathway.
        rgb_in_channels: video channels.
        speed_ratio: pose frames per RGB frame.
        channel_ratio: channel ratio used to size the laterals.
        lateral: build the lateral connections (``False``: two independent
            pathways, e.g. to pre-train them apart as mmaction2 does).
        rgb_base_channels: RGB stem width (64; tiny test models: 8).
        rgb_stage_blocks: RGB blocks per stage.
        rgb_inflate: RGB per-stage ``3x1x1`` inflation.
        rgb_spatial_strides: RGB per-stage spatial strides.
        rgb_lateral_infl: channel inflation of the pose -> RGB laterals.
        rgb_lateral_activate: per RGB stage, whether it receives a pose lateral.
        pose_base_channels: pose stem width (32; tiny test models: 4).
        pose_stage_blocks: pose blocks per stage.
        pose_inflate: pose per-stage ``3x1x1`` inflation.
        pose_spatial_strides: pose per-stage spatial strides.
        pose_lateral_infl: channel deflation of the RGB -> pose laterals.
        pose_lateral_activate: per pose stage, whether it receives an RGB lateral.
        fusion_kernel: odd temporal kernel of every lateral.
        lateral_norm: BN + ReLU in the pose -> RGB lateral convolutions.
        rgb_detach: stop gradients from the RGB pathway into the pose pathway
            (the pose features feeding the RGB laterals are detached).
        pose_detach: the same for the RGB features feeding the pose laterals.
        rgb_drop_path: in training, probability of zeroing the laterals into the
            RGB pathway for a whole batch.
        pose_drop_path: the same for the laterals into the pose pathway.
    """

    def __init__(
        self,
        in_channels: int = 17,
        rgb_in_channels: int = 3,
        speed_ratio: int = 4,
        channel_ratio: int = 4,
        lateral: bool = True,
        rgb_base_channels: int = 64,
        rgb_stage_blocks: Sequence[int] = (3, 4, 6, 3),
        rgb_inflate: Sequence[int] = (0, 0, 1, 1),
        rgb_spatial_strides: Sequence[int] = (1, 2, 2, 2),
        rgb_lateral_infl: int = 1,
        rgb_lateral_activate: Sequence[int] = (0, 0, 1, 1),
        pose_base_channels: int = 32,
        pose_stage_blocks: Sequence[int] = (4, 6, 3),
        pose_inflate: Sequence[int] = (0, 1, 1),
        pose_spatial_strides: Sequence[int] = (2, 2, 2),
        pose_lateral_infl: int = 16,
        pose_lateral_activate: Sequence[int] = (0, 1, 1),
        fusion_kernel: int = 7,
        lateral_norm: bool = False,
        rgb_detach: bool = False,
        pose_detach: bool = False,
        rgb_drop_path: float = 0.0,
        pose_drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        for name, p in (("rgb_drop_path", rgb_drop_path), ("pose_drop_path", pose_drop_path)):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {p}")
        n_rgb, n_pose = len(rgb_stage_blocks), len(pose_stage_blocks)
        if n_rgb < n_pose:
            raise ValueError(
                f"the RGB pathway needs at least as many stages as the pose pathway "
                f"({n_rgb} < {n_pose}): its extra early stages do the spatial downsampling "
                "that the heatmaps' smaller size already has"
            )
        self.speed_ratio = speed_ratio
        self.offset = n_rgb - n_pose
        self.rgb_detach = rgb_detach
        self.pose_detach = pose_detach
        self.rgb_drop_path = rgb_drop_path
        self.pose_drop_path = pose_drop_path
        common = {
            "lateral": lateral,
            "speed_ratio": speed_ratio,
            "channel_ratio": channel_ratio,
            "fusion_kernel": fusion_kernel,
            "conv1_kernel": (1, 7, 7),
        }
        self.rgb_path = ResNet3dPathway(
            in_channels=rgb_in_channels,
            base_channels=rgb_base_channels,
            num_stages=n_rgb,
            stage_blocks=rgb_stage_blocks,
            conv1_stride=(1, 2, 2),
            pool1_stride=(1, 2, 2),
            inflate=rgb_inflate,
            spatial_strides=rgb_spatial_strides,
            temporal_strides=(1,) * n_rgb,
            lateral_inv=False,
            lateral_norm=lateral_norm,
            lateral_infl=rgb_lateral_infl,
            lateral_activate=rgb_lateral_activate,
            **common,
        )
        self.pose_path = ResNet3dPathway(
            in_channels=in_channels,
            base_channels=pose_base_channels,
            num_stages=n_pose,
            stage_blocks=pose_stage_blocks,
            conv1_stride=(1, 1, 1),
            pool1_stride=(1, 1, 1),
            inflate=pose_inflate,
            spatial_strides=pose_spatial_strides,
            temporal_strides=(1,) * n_pose,
            lateral_inv=True,
            lateral_infl=pose_lateral_infl,
            lateral_activate=pose_lateral_activate,
            **common,
        )
        self._check_lateral_channels()
        #: channels of the RGB output feature map (2048).
        self.rgb_out_channels = self.rgb_path.out_channels
        #: channels of the pose output feature map (512).
        self.pose_out_channels = self.pose_path.out_channels

    def _check_lateral_channels(self) -> None:
        """Every lateral must read exactly the channels the other pathway produces."""
        rgb, pose, off = self.rgb_path, self.pose_path, self.offset
        for m in range(1, len(rgb.stage_names)):
            if hasattr(rgb, f"layer{m}_lateral"):
                j = m - off  # the pose stage aligned with RGB layer{m}
                if not 1 <= j < len(pose.stage_names):
                    raise ValueError(
                        f"rgb_path.layer{m}_lateral has no aligned pose stage (pose "
                        f"layer{j}); adjust rgb_lateral_activate"
                    )
                self._check_pair(f"rgb_path.layer{m}_lateral", rgb, m, f"pose layer{j}", pose, j)
        for j in range(1, len(pose.stage_names)):
            if hasattr(pose, f"layer{j}_lateral"):
                m = j + off  # the RGB stage aligned with pose layer{j}
                if not 1 <= m < len(rgb.stage_names):
                    raise ValueError(
                        f"pose_path.layer{j}_lateral has no aligned RGB stage (rgb "
                        f"layer{m}); adjust pose_lateral_activate"
                    )
                self._check_pair(f"pose_path.layer{j}_lateral", pose, j, f"rgb layer{m}", rgb, m)

    @staticmethod
    def _check_pair(
        name: str, path: ResNet3dPathway, i: int, source: str, other: ResNet3dPathway, stage: int
    ) -> None:
        """Check that ``path.layer{i}_lateral`` reads what ``other``'s ``layer{stage}`` outputs."""
        expected = getattr(path, f"layer{i}_lateral").conv.in_channels
        got = other.stage_out_channels[stage - 1]
        if got != expected:
            raise ValueError(
                f"{name} expects {expected} input channels but {source} outputs {got}: "
                "mmaction2 sizes each lateral from its own pathway assuming the RGB pathway "
                "is channel_ratio / 2 times wider (rgb_base_channels = 2 * pose_base_channels "
                "for channel_ratio = 4)"
            )

    def forward(self, video: Tensor, heatmap: Tensor) -> tuple[Tensor, Tensor]:
        """Encode a clip and its heatmap volume.

        Args:
            video: ``(B, 3, T, H, W)`` normalised RGB frames.
            heatmap: ``(B, K, speed_ratio * T, H / 4, W / 4)`` heatmaps (for the
                default strides; other strides need sizes that align the stages).

        Returns:
            ``(rgb_feat, pose_feat)``: ``(B, rgb_out_channels, T, H / 32, W / 32)``
            and ``(B, pose_out_channels, speed_ratio * T, H / 32, W / 32)``
            feature maps (not pooled).
        """
        if video.shape[0] != heatmap.shape[0]:
            raise ValueError(
                f"video and heatmap batch sizes differ: {video.shape[0]} vs {heatmap.shape[0]}"
            )
        rgb, pose = self.rgb_path, self.pose_path
        # One draw per batch, as mmaction2 does.
        drop_rgb = self.training and bool(torch.rand(()) < self.rgb_drop_path)
        drop_pose = self.training and bool(torch.rand(()) < self.pose_drop_path)
        x_rgb = rgb.forward_stem(video)
        x_pose = pose.forward_stem(heatmap)
        for m in range(self.offset):
            x_rgb = getattr(rgb, rgb.stage_names[m])(x_rgb)
        for j in range(len(pose.stage_names)):
            if j > 0:
                m = j + self.offset
                # Both laterals read the features before either concatenation.
                to_rgb = self._lateral(rgb, m, x_pose, self.rgb_detach, drop_rgb)
                to_pose = self._lateral(pose, j, x_rgb, self.pose_detach, drop_pose)
                if to_rgb is not None:
                    x_rgb = self._concat(x_rgb, to_rgb, f"rgb_path.layer{m}_lateral")
                if to_pose is not None:
                    x_pose = self._concat(x_pose, to_pose, f"pose_path.layer{j}_lateral")
            x_rgb = getattr(rgb, rgb.stage_names[j + self.offset])(x_rgb)
            x_pose = getattr(pose, pose.stage_names[j])(x_pose)
        return x_rgb, x_pose

    @staticmethod
    def _lateral(
        path: ResNet3dPathway, i: int, source: Tensor, detach: bool, drop: bool
    ) -> Tensor | None:
        """``path.layer{i}_lateral(source)``, or ``None`` where that lateral is not built."""
        module = getattr(path, f"layer{i}_lateral", None)
        if module is None:
            return None
        out = module(source.detach() if detach else source)
        return torch.zeros_like(out) if drop else out

    def _concat(self, x: Tensor, lateral: Tensor, name: str) -> Tensor:
        """Channel-concatenate a lateral, with a clear error when the sizes do not align."""
        if x.shape[2:] != lateral.shape[2:]:
            raise ValueError(
                f"{name} gives (T, H, W) = {tuple(lateral.shape[2:])} but the receiving "
                f"pathway has {tuple(x.shape[2:])}: the heatmap needs speed_ratio="
                f"{self.speed_ratio} times the video's frames and, with the default strides, "
                "a quarter of its height and width (e.g. video 8 x 224², heatmap 32 x 56²)"
            )
        return torch.cat((x, lateral), dim=1)
