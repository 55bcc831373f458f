"""Masked video modelling (VideoMAE) and the video ViT recognizer fine-tuned from it.

* :class:`VideoMAE` pretrains a :class:`~mgr.models.backbones.video_vit.VideoViTBackbone`
  on unlabelled clips (:class:`~mgr.datamodules.UnlabeledDataModule`, or any
  datamodule: labels are never read): tube masking at ratio 0.9, a light
  decoder, mean squared error on the per-patch normalised pixels of the masked
  tubelets (Tong et al., NeurIPS 2022).
* :class:`VideoViT` is the same encoder with mean pooling and a linear head, a
  :class:`~mgr.models.base.Recognizer`: ``init_from`` takes a ``VideoMAE``
  checkpoint (its encoder; the decoder is dropped) or another ``VideoViT`` run;
  fine-tuning uses layer-wise learning-rate decay and stochastic depth as
  VideoMAE fine-tuning does.

FG-SGL reads the same encoder with ``visual: mgr``
(:class:`mgr.models.backbones.vl.VideoViTEncoder`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from lightning.pytorch import LightningModule
from lightning.pytorch.cli import OptimizerCallable
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor, nn

from mgr.data.transforms.video import finish_video_batch

from .backbones.video_vit import (
    ARCH_KEYS,
    VideoMAEDecoder,
    VideoViTBackbone,
    load_hf_videomae,
    masked_reconstruction_loss,
    pixel_targets,
    read_video_vit_checkpoint,
    tube_mask,
)
from .base import Recognizer, warmup_cosine

__all__ = [
    "VideoMAE",
    "VideoViT",
    "layer_decay_param_groups",
    "video_vit_layer_id",
]


def _pretrain_optimizer(params: Any) -> torch.optim.Optimizer:
    # VideoMAE pretraining: AdamW, betas (0.9, 0.95), weight decay 0.05, lr 1.5e-4 x batch / 256.
    return torch.optim.AdamW(params, lr=1.5e-4, betas=(0.9, 0.95), weight_decay=0.05)


def _finetune_optimizer(params: Any) -> torch.optim.Optimizer:
    # VideoMAE fine-tuning: AdamW, betas (0.9, 0.999), weight decay 0.05, lr 1e-3 x batch / 256.
    return torch.optim.AdamW(params, lr=1e-3, betas=(0.9, 0.999), weight_decay=0.05)


def video_vit_layer_id(name: str, depth: int, prefix: str = "") -> int:
    """Layer of a parameter for layer-wise learning-rate decay (VideoMAE / BEiT).

    Args:
        name: parameter name.
        depth: transformer blocks of the encoder.
        prefix: the encoder's name prefix (e.g. ``"backbone."``).

    Returns:
        ``0`` for the tubelet embedding, ``i + 1`` for block ``i``, ``depth + 1``
        for everything after the blocks (final norm, head).
    """
    if name.startswith(f"{prefix}patch_embed."):
        return 0
    if name.startswith(f"{prefix}blocks."):
        return int(name[len(prefix) :].split(".")[1]) + 1
    return depth + 1


def _no_weight_decay(name: str, param: Tensor, skip: Sequence[str]) -> bool:
    """VideoMAE's rule: biases, norms (1-D tensors) and listed tokens are not decayed."""
    return param.ndim <= 1 or name.endswith(".bias") or any(name.endswith(s) for s in skip)


def layer_decay_param_groups(
    named_parameters: Iterable[tuple[str, nn.Parameter]],
    num_layers: int,
    layer_decay: float | None,
    layer_id: Callable[[str], int],
    skip_weight_decay: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """Parameter groups with layer-wise learning-rate scales and no decay on biases/norms.

    Layer ``l`` of ``num_layers + 2`` (embedding ``0``, blocks ``1..num_layers``,
    head ``num_layers + 1``) gets ``lr_scale = layer_decay ** (num_layers + 1 - l)``
    (VideoMAE's ``LayerDecayValueAssigner``); the optimizer's learning rate is
    multiplied by it (:meth:`mgr.models.base.Recognizer.configure_optimizers`).

    Args:
        named_parameters: ``(name, parameter)`` pairs; frozen ones are skipped.
        num_layers: transformer blocks.
        layer_decay: decay per layer; ``None``: every scale is 1.
        layer_id: parameter name -> layer.
        skip_weight_decay: name suffixes kept out of weight decay as well.

    Returns:
        Groups ``{"params", "lr_scale", "layer"}``, plus ``"weight_decay": 0.0`` for
        biases, norms and skipped names.
    """
    groups: dict[tuple[int, bool], dict[str, Any]] = {}
    for name, param in named_parameters:
        if not param.requires_grad:
            continue
        layer = layer_id(name)
        no_decay = _no_weight_decay(name, param, skip_weight_decay)
        key = (layer, no_decay)
        if key not in groups:
            scale = 1.0 if layer_decay is None else layer_decay ** (num_layers + 1 - layer)
            groups[key] = {"params": [], "lr_scale": scale, "layer": layer}
            if no_decay:
                groups[key]["weight_decay"] = 0.0
        groups[key]["params"].append(param)
    return [groups[k] for k in sorted(groups)]


class VideoMAE(LightningModule):
    """VideoMAE pretraining: masked tubelets of unlabelled clips, reconstructed.

    Reads ``batch["video"] (B, C, T, H, W)`` only. Logs ``train/loss`` (and
    ``val/loss`` on a validation loader, with a fixed mask per batch). Its
    checkpoints start :class:`VideoViT` (``init_from``) and FG-SGL (``visual: mgr``).

    Args:
        img_size: frame side ``H = W`` (VideoMAE: 224).
        num_frames: frames per clip ``T`` (VideoMAE: 16).
        tubelet_size: frames per tubelet (VideoMAE: 2).
        patch_size: pixels per patch side (VideoMAE: 16).
        in_channels: video channels.
        embed_dim: encoder width (ViT-S 384, ViT-B 768).
        depth: encoder blocks (12).
        num_heads: encoder heads (ViT-S 6, ViT-B 12).
        mlp_ratio: MLP width ratio of encoder and decoder.
        decoder_embed_dim: decoder width (VideoMAE ViT-B: 384; ViT-S: 192).
        decoder_depth: decoder blocks (VideoMAE: 4).
        decoder_num_heads: decoder heads (VideoMAE ViT-B: 6; ViT-S: 3).
        mask_ratio: share of tubes masked (VideoMAE: 0.9).
        norm_pix_loss: per-patch normalised pixel targets (VideoMAE's default).
        optimizer: optimizer factory (default AdamW lr 1.5e-4, betas (0.9, 0.95),
            weight decay 0.05; biases and norms are never decayed).
        warmup_ratio: per-step linear warm-up over this share of the steps, then
            cosine decay to zero (VideoMAE: 40 of 800 epochs = 0.05); ``None``: constant.
        pretrained: HuggingFace VideoMAE weights (a local ``save_pretrained`` directory
            or weights file, e.g. the Kinetics-400 pretraining) to continue from: the
            encoder's (:func:`~mgr.models.backbones.video_vit.load_hf_videomae`); the
            decoder starts fresh. Never downloaded; not kept in checkpoints.
        num_classes: ignored (the CLI links the datamodule's class count; none is used).
        class_names: ignored, as ``num_classes``.
    """

    input_keys = ("video",)

    def __init__(
        self,
        img_size: int = 224,
        num_frames: int = 16,
        tubelet_size: int = 2,
        patch_size: int = 16,
        in_channels: int = 3,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        decoder_embed_dim: int = 384,
        decoder_depth: int = 4,
        decoder_num_heads: int = 6,
        mask_ratio: float = 0.9,
        norm_pix_loss: bool = True,
        optimizer: OptimizerCallable = _pretrain_optimizer,
        warmup_ratio: float | None = 0.05,
        pretrained: str | None = None,
        num_classes: int | None = None,
        class_names: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        if not 0.0 < mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in (0, 1), got {mask_ratio}")
        if warmup_ratio is not None and not 0.0 <= warmup_ratio < 1.0:
            raise ValueError(f"warmup_ratio must be in [0, 1), got {warmup_ratio}")
        self.save_hyperparameters(ignore=["optimizer", "num_classes", "class_names"])
        self.optimizer_factory = optimizer
        self.encoder = VideoViTBackbone(
            img_size, num_frames, tubelet_size, patch_size, in_channels,
            embed_dim, depth, num_heads, mlp_ratio,
        )  # fmt: skip
        self.decoder = VideoMAEDecoder(
            self.encoder.num_patches,
            embed_dim,
            decoder_embed_dim,
            decoder_depth,
            decoder_num_heads,
            mlp_ratio,
            out_dim=tubelet_size * patch_size * patch_size * in_channels,
        )
        # Fail at construction, not at the first step, if no patch stays visible.
        tube_mask(1, self.encoder.grid, mask_ratio)
        if pretrained is not None:
            keys = load_hf_videomae(self.encoder, pretrained)
            rank_zero_info(f"VideoMAE encoder: {len(keys)} tensors from {pretrained}")

    def forward(self, video: Tensor, mask: Tensor) -> Tensor:
        """Reconstruct the masked tubelets.

        Args:
            video: ``(B, C, T, H, W)``.
            mask: ``(B, N)`` bool, ``True`` = masked (:func:`tube_mask`).

        Returns:
            ``(B, N_m, ts * p * p * C)`` predicted (normalised) pixels of the masked tubelets.
        """
        tokens, _ = self.encoder.forward_tokens(video, visible=~mask)
        return self.decoder(self.encoder.norm(tokens), mask)

    def reconstruction_loss(self, video: Tensor, mask: Tensor) -> Tensor:
        """MSE between predicted and target pixels of the masked tubelets of ``video``."""
        hp = self.hparams
        target = pixel_targets(video, hp.tubelet_size, hp.patch_size, normalize=hp.norm_pix_loss)
        return masked_reconstruction_loss(self(video, mask), target, mask)

    def _video(self, batch: dict[str, Any]) -> Tensor:
        if "video" not in batch:
            raise KeyError(f"VideoMAE needs batch key 'video', the batch has {sorted(batch)}")
        # A loader's uint8 video that bypassed the datamodule's on_after_batch_transfer.
        video = finish_video_batch(batch)["video"]
        if video.ndim != 5:
            raise ValueError(
                f"VideoMAE trains on clips (B, C, T, H, W), got {tuple(video.shape)} "
                "(test-time views are not used in pretraining)"
            )
        return video

    def on_train_start(self) -> None:
        """Give every DDP rank its own mask stream (``seed_everything`` seeds ranks alike)."""
        self._mask_generator = None
        if self.trainer.world_size > 1:
            seed = torch.initial_seed() + self.global_rank
            self._mask_generator = torch.Generator().manual_seed(seed % 2**63)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        """One masked-reconstruction step with fresh tube masks."""
        video = self._video(batch)
        mask = tube_mask(
            len(video),
            self.encoder.grid,
            self.hparams.mask_ratio,
            generator=getattr(self, "_mask_generator", None),
            device=self.device,
        )
        loss = self.reconstruction_loss(video, mask)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(video))
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """Reconstruction loss with a mask fixed per batch index (comparable across epochs)."""
        video = self._video(batch)
        generator = torch.Generator().manual_seed(batch_idx)
        mask = tube_mask(
            len(video), self.encoder.grid, self.hparams.mask_ratio, generator=generator
        ).to(self.device)
        loss = self.reconstruction_loss(video, mask)
        self.log("val/loss", loss, prog_bar=True, batch_size=len(video), sync_dist=True)

    def configure_optimizers(self) -> Any:
        """AdamW (by default) without decay on biases and norms; per-step warm-up cosine."""
        groups = layer_decay_param_groups(
            self.named_parameters(), self.hparams.depth, None, lambda n: 0, ("mask_token",)
        )
        optimizer = self.optimizer_factory(groups)
        warmup = self.hparams.warmup_ratio
        if warmup is None:
            return optimizer
        total = max(1, int(self.trainer.estimated_stepping_batches))
        steps = int(warmup * total)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: warmup_cosine(step, total, steps)
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Record the class (``mgr.features.load_recognizer``); drop the start file's path."""
        checkpoint["mgr_class"] = f"{type(self).__module__}.{type(self).__qualname__}"
        hparams = checkpoint.get("hyper_parameters")
        if isinstance(hparams, dict) and hparams.get("pretrained") is not None:
            hparams["pretrained"] = None


class VideoViT(Recognizer):
    """A video ViT (tubelet tokens, mean pooling, linear head) over ``video``.

    Start it from a :class:`VideoMAE` pretraining with ``init_from: PRETRAIN.ckpt``
    (the encoder's weights; the architecture arguments must match it) or from
    another ``VideoViT`` run. Fine-tuning follows VideoMAE: stochastic depth
    (``drop_path_rate``), layer-wise learning-rate decay (``layer_decay``), no
    weight decay on biases and norms, a head initialised at a small scale.

    Args:
        num_classes: number of classes.
        img_size: frame side.
        num_frames: frames per clip.
        tubelet_size: frames per tubelet.
        patch_size: pixels per patch side.
        in_channels: video channels.
        embed_dim: encoder width.
        depth: encoder blocks.
        num_heads: encoder heads.
        mlp_ratio: MLP width ratio.
        drop_path_rate: stochastic depth of the last block (VideoMAE fine-tuning: 0.1).
        layer_decay: layer-wise learning-rate decay (VideoMAE ViT-B: 0.75); block
            ``i`` of ``depth`` trains at ``layer_decay ** (depth - i)`` times the
            learning rate, the embedding at ``layer_decay ** (depth + 1)``, the
            head at 1. ``None``: one learning rate.
        head_init_scale: the head's truncated-normal (std 0.02) weights are
            multiplied by it (VideoMAE: 0.001).
        dropout: dropout before the classifier (VideoMAE: 0.0 on Kinetics, 0.5 on SSv2).
        pretrained: HuggingFace VideoMAE weights (a local directory or weights file:
            a pretraining or a fine-tuned classifier, whose ``fc_norm`` becomes the
            post-pooling ``norm``) for the encoder; the head starts fresh. Never
            downloaded; not kept in checkpoints. For an mgr pretraining use ``init_from``.
        optimizer: optimizer factory (default AdamW lr 1e-3, weight decay 0.05).
        **kwargs: :class:`~mgr.models.base.Recognizer` arguments (``init_from``,
            ``warmup_ratio``, ``label_smoothing``, ...).
    """

    input_keys = ("video",)

    def __init__(
        self,
        num_classes: int,
        img_size: int = 224,
        num_frames: int = 16,
        tubelet_size: int = 2,
        patch_size: int = 16,
        in_channels: int = 3,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        drop_path_rate: float = 0.1,
        layer_decay: float | None = 0.75,
        head_init_scale: float = 0.001,
        dropout: float = 0.0,
        pretrained: str | None = None,
        optimizer: OptimizerCallable = _finetune_optimizer,
        **kwargs: Any,
    ) -> None:
        if layer_decay is not None and not 0.0 < layer_decay <= 1.0:
            raise ValueError(f"layer_decay must be in (0, 1], got {layer_decay}")
        super().__init__(num_classes, dropout=dropout, optimizer=optimizer, **kwargs)
        if pretrained is not None:
            keys = load_hf_videomae(self.backbone, pretrained)
            rank_zero_info(f"VideoViT encoder: {len(keys)} tensors from {pretrained}")

    def configure_models(self) -> None:
        """Build the encoder and the (small-scale initialised) classifier."""
        hp = self.hparams
        self.backbone = VideoViTBackbone(
            **{k: hp[k] for k in ARCH_KEYS}, drop_path_rate=hp.drop_path_rate
        )
        self.feature_dim = self.backbone.out_channels
        super().configure_models()
        linear = self.head[-1]
        nn.init.trunc_normal_(linear.weight, std=0.02)
        nn.init.zeros_(linear.bias)
        with torch.no_grad():
            linear.weight.mul_(hp.head_init_scale)

    def forward_features(self, batch: dict[str, Any]) -> Tensor:
        """``video (B, C, T, H, W)`` -> mean-pooled, normalised tokens ``(B, D)``."""
        return self.backbone(batch["video"])

    def optimizer_param_groups(self) -> list[dict[str, Any]]:
        """Layer-wise learning-rate scales; no weight decay on biases and norms."""
        depth = self.hparams.depth
        return layer_decay_param_groups(
            self.named_parameters(),
            depth,
            self.hparams.layer_decay,
            lambda name: video_vit_layer_id(name, depth, prefix="backbone."),
        )

    def init_weights_from(self, path: Any, *, reset_head: bool = False) -> list[str]:
        """Load a :class:`VideoMAE` pretraining's encoder, or another ``VideoViT`` run.

        Args:
            path: a ``VideoMAE`` checkpoint (its ``encoder.*`` weights) or a
                backbone state dict: the head keeps its initialisation; or a
                ``VideoViT`` checkpoint (see :meth:`Recognizer.init_weights_from`).
            reset_head: for a ``VideoViT`` checkpoint: keep this module's head.

        Raises:
            ValueError: naming the file, if the pretraining's architecture differs
                from this model's (``img_size``, ``depth``, ...).
        """
        arch, state, kind = read_video_vit_checkpoint(path)
        if kind == "videovit":
            return super().init_weights_from(path, reset_head=reset_head)
        ours = {k: self.hparams[k] for k in ARCH_KEYS}
        differ = {k: (arch[k], ours[k]) for k in ARCH_KEYS if k in arch and arch[k] != ours[k]}
        if differ:
            raise ValueError(
                f"{path}: the pretraining's architecture differs from this VideoViT's "
                f"(checkpoint, model): {differ}"
            )
        self.backbone.load_state_dict(state)
        return sorted(f"backbone.{k}" for k in state)
