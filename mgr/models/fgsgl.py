"""FG-SGL: fine-grained semantic guidance learning (``../shared/papers/fg-sgl.txt``).

A visual encoder (frame-wise ViT, :mod:`mgr.models.backbones.vl`) gives a
mid-level feature ``f_mid`` and a high-level feature ``f_high`` of a clip; a
frozen text encoder embeds sentences. Training minimises eq. (3)::

    L = L_cls + lambda_fg * L_fg + lambda_cp * L_cp

* ``L_cls``: the Recognizer's classification loss on ``head(f_high)`` (all the
  base class's options apply: focal, class weights, label smoothing, ...);
* ``L_fg`` (FG-SA, eq. 1): InfoNCE from each clip's projected ``f_mid`` to the
  FG-Text sentence embeddings of the batch (:func:`fine_grained_loss`);
* ``L_cp`` (CP-A, eq. 2): cross-entropy of the cosine similarities between the
  projected ``f_high`` and all ``K`` class-prototype sentence embeddings
  (:func:`prototype_loss`).

**ML-CO** (§III-E): stage 1 trains ``L_cls + L_cp``; stage 2 adds ``L_fg`` from
epoch ``fg_start_epoch`` (logged as ``train/stage``). The switches
``use_fg``, ``use_cp``, ``mlco`` and ``fg_text_source`` reproduce every row of
Tables II and III:

==========================  =====================================================
row                         settings
==========================  =====================================================
full FG-SGL                 defaults
w/o FG-SA                   ``use_fg: false``
w/o CP-A                    ``use_cp: false``
w/o ML-CO                   ``mlco: false`` (all losses from the first epoch)
class-level text            ``fg_text_source: class`` (``class_text`` in ``L_fg``)
==========================  =====================================================

Choices where the paper is silent (ours, documented):

* the projections from ``f_mid`` / ``f_high`` to the text space are
  LayerNorm-Linear-GELU-Linear MLPs (the paper's trainable "MLP layers"; in
  InternVL that is the ``mlp1`` projector);
* ``tau`` is fixed at 0.07 unless ``learn_temperature`` (CLIP's learnable
  logit scale, clamped at 100);
* in ``L_fg``, identical sentences in a batch are merged into one candidate,
  so a clip is never pushed away from its own description carried by another
  clip (their embeddings are identical; keeping both would count one
  positive as a negative);
* stage 2 starts at epoch 5 by default (one third of the paper's 15 epochs).

Inference uses only the visual path and the classifier; ``inference:
prototype`` classifies by similarity to the class prototypes instead (stored in
the checkpoint, so no text encoder is needed at test time).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor, nn

from .backbones.vl import (
    CachedTextEncoder,
    TextEncoder,
    apply_lora,
    build_text_encoder,
    build_visual_encoder,
    default_lora_targets,
)
from .base import _NO_COUNTS, Recognizer, warmup_cosine
from .losses import logit_adjusted

__all__ = ["FGSGL", "fine_grained_loss", "prototype_loss", "warmup_cosine"]


def _cosine_logits(x: Tensor, y: Tensor, scale: Tensor | float) -> Tensor:
    """``scale * cos(x_i, y_j)``: ``(N, D) x (M, D) -> (N, M)``."""
    return scale * F.normalize(x, dim=-1) @ F.normalize(y, dim=-1).T


def fine_grained_loss(
    visual: Tensor, sentences: Sequence[str], text: Tensor, scale: Tensor | float
) -> Tensor:
    """FG-SA InfoNCE, eq. (1), with in-batch negatives.

    Args:
        visual: ``(B, D)`` projected mid-level features.
        sentences: the ``B`` FG-Text sentences of the clips.
        text: ``(B, D)`` their embeddings.
        scale: ``1 / tau``.

    Returns:
        Scalar mean over the batch of ``-log softmax_j(sim(f_i, t_j) / tau)[own]``,
        the candidates ``j`` being the *unique* sentences of the batch.
    """
    unique = list(dict.fromkeys(sentences))
    index = {s: i for i, s in enumerate(unique)}
    first = [sentences.index(s) for s in unique]
    target = torch.tensor([index[s] for s in sentences], device=visual.device)
    logits = _cosine_logits(visual, text[first], scale)
    return F.cross_entropy(logits, target)


def prototype_loss(visual: Tensor, labels: Tensor, prototypes: Tensor, scale: Tensor | float):
    """CP-A, eq. (2): cross-entropy over the cosine similarities to all class prototypes.

    Args:
        visual: ``(B, D)`` projected high-level features.
        labels: ``(B,)`` class ids.
        prototypes: ``(K, D)`` class-sentence embeddings.
        scale: ``1 / tau``.
    """
    return F.cross_entropy(_cosine_logits(visual, prototypes, scale), labels)


class _Projection(nn.Sequential):
    """LayerNorm -> Linear -> GELU -> Linear: a feature to the text embedding space."""

    def __init__(self, dim: int, out: int) -> None:
        super().__init__(nn.LayerNorm(dim), nn.Linear(dim, out), nn.GELU(), nn.Linear(out, out))


class FGSGL(Recognizer):
    """FG-SGL on ``video (B, 3, T, H, W)`` with FG-Text (``fg_text``/``class_text``).

    Args:
        num_classes: number of classes.
        visual: visual encoder kind: ``"timm"``, ``"open_clip"``, ``"hf"`` or
            ``"mgr"`` (mgr's video ViT, e.g. a :class:`~mgr.models.VideoMAE`
            pretraining's encoder: space-time tokens instead of frames).
        visual_name: timm model name / open_clip architecture.
        visual_path: local weights (timm, open_clip), model directory (hf) or an mgr
            ``VideoMAE`` / ``VideoViT`` checkpoint (mgr); ``None``: random init
            (timm, open_clip, mgr). Never downloaded.
        visual_kwargs: extra encoder arguments (timm: ``img_size``, ``embed_dim``,
            ``depth``, ``num_heads``, ``patch_size``; open_clip: ``model_cfg``; hf:
            ``trust_remote_code``; mgr: ``drop_path_rate`` and, without a
            checkpoint, the architecture: ``img_size``, ``num_frames``,
            ``patch_size``, ``embed_dim``, ``depth``, ``num_heads``, ...).
        mid_layer: 0-based block of the mid-level feature (``None``: the middle one).
        temporal_layers: temporal transformer layers on the frame features.
        text: text encoder kind: ``"minilm"`` (packaged all-MiniLM-L6-v2, the
            default: runs offline), ``"sentence_transformers"``, ``"open_clip"``, ``"hf"``.
        text_name: open_clip architecture of the text encoder.
        text_path: local text model directory / weights.
        text_dim: embedding size of the text encoder (``None``: read by building it).
        text_kwargs: extra text-encoder arguments (hf: ``trust_remote_code``,
            ``max_length``).
        finetune: how the visual encoder trains: ``"lora"`` (frozen weights + LoRA
            adapters, the paper), ``"full"`` or ``"frozen"``.
        lora_rank: LoRA rank (paper: 8).
        lora_alpha: LoRA alpha.
        lora_dropout: LoRA dropout.
        lora_targets: module-name suffixes to adapt (``None``: the encoder's
            attention and MLP linears, InternVL's choice).
        trainable_modules: name fragments of visual-encoder parameters to train
            anyway (e.g. ``["mlp"]``, ``["norm"]``).
        gradient_checkpointing: recompute the visual encoder's blocks in the backward
            pass (InternVL's fine-tuning scripts: ``--grad_checkpoint True``); needed to
            train InternViT-300M on 8 frames of 448x448 per clip in bounded memory.
        lambda_fg: weight of ``L_fg``.
        lambda_cp: weight of ``L_cp``.
        temperature: ``tau`` of both contrastive losses.
        learn_temperature: learn ``tau`` (as CLIP's logit scale).
        use_fg: FG-SA on/off (Table II).
        use_cp: CP-A on/off (Table II).
        mlco: two-stage ML-CO; ``False``: every loss from the first epoch.
        fg_start_epoch: first epoch of stage 2 (``L_fg`` added).
        fg_text_source: ``"fine"`` (per-sample FG-Text) or ``"class"`` (class-level
            text in ``L_fg``: the Table III ablation).
        class_texts: the ``K`` class sentences (CP-A prototypes); ``None``: the
            datamodule's ``class_texts`` at fit, else ``"A micro-gesture of {name}."``.
        inference: ``"classifier"`` (the head) or ``"prototype"`` (cosine
            similarity to the class prototypes / tau).
        dropout: dropout before the classifier.
        **kwargs: :class:`~mgr.models.base.Recognizer` arguments.
    """

    input_keys = ("video",)

    def __init__(
        self,
        num_classes: int,
        visual: Literal["timm", "open_clip", "hf", "mgr"] = "timm",
        visual_name: str | None = "vit_tiny_patch16_224",
        visual_path: str | None = None,
        visual_kwargs: dict[str, Any] | None = None,
        mid_layer: int | None = None,
        temporal_layers: int = 0,
        text: Literal["minilm", "sentence_transformers", "open_clip", "hf"] = "minilm",
        text_name: str | None = None,
        text_path: str | None = None,
        text_dim: int | None = None,
        text_kwargs: dict[str, Any] | None = None,
        finetune: Literal["lora", "full", "frozen"] = "lora",
        lora_rank: int = 8,
        lora_alpha: float = 16.0,
        lora_dropout: float = 0.0,
        lora_targets: list[str] | None = None,
        trainable_modules: list[str] | None = None,
        gradient_checkpointing: bool = False,
        lambda_fg: float = 1.0,
        lambda_cp: float = 1.0,
        temperature: float = 0.07,
        learn_temperature: bool = False,
        use_fg: bool = True,
        use_cp: bool = True,
        mlco: bool = True,
        fg_start_epoch: int = 5,
        fg_text_source: Literal["fine", "class"] = "fine",
        class_texts: list[str] | None = None,
        inference: Literal["classifier", "prototype"] = "classifier",
        dropout: float = 0.0,
        **kwargs: Any,
    ) -> None:
        if finetune not in ("lora", "full", "frozen"):
            raise ValueError(f"finetune must be 'lora', 'full' or 'frozen', got {finetune!r}")
        if fg_text_source not in ("fine", "class"):
            raise ValueError(f"fg_text_source must be 'fine' or 'class', got {fg_text_source!r}")
        if inference not in ("classifier", "prototype"):
            raise ValueError(f"inference must be 'classifier' or 'prototype', got {inference!r}")
        if temperature <= 0 or lambda_fg < 0 or lambda_cp < 0 or fg_start_epoch < 0:
            raise ValueError("temperature must be > 0; lambdas and fg_start_epoch >= 0")
        if class_texts is not None and len(class_texts) != num_classes:
            raise ValueError(f"{len(class_texts)} class_texts for num_classes={num_classes}")
        self._text_encoder: CachedTextEncoder | None = None
        if text_dim is None:  # build the text encoder now to learn its size
            self._text_encoder = CachedTextEncoder(
                build_text_encoder(text, name=text_name, path=text_path, **(text_kwargs or {}))
            )
            text_dim = self._text_encoder.dim
        # Kept apart from hparams: under LightningCLI, save_hyperparameters records the
        # config's values (text_dim: null), not this frame's, and configure_models runs
        # inside super().__init__.
        self._resolved_text_dim = text_dim
        super().__init__(num_classes, dropout=dropout, **kwargs)
        self.hparams["text_dim"] = text_dim  # checkpoints rebuild without the encoder

    # ------------------------------------------------------------------ build
    def configure_models(self) -> None:
        """Build the visual encoder (+ LoRA), the projections, tau and the classifier."""
        hp = self.hparams
        self.encoder = build_visual_encoder(
            hp.visual,
            name=hp.visual_name,
            path=hp.visual_path,
            mid_layer=hp.mid_layer,
            temporal_layers=hp.temporal_layers,
            **(hp.visual_kwargs or {}),
        )
        if hp.visual == "mgr":  # checkpoints rebuild the architecture without the start file
            hp["visual_kwargs"] = {**(hp.visual_kwargs or {}), **self.encoder.model.arch}
        model = self.encoder.model  # the pretrained part; the temporal mixer always trains
        if hp.finetune == "lora":
            targets = hp.lora_targets or default_lora_targets(self.encoder)
            apply_lora(model, hp.lora_rank, hp.lora_alpha, targets, hp.lora_dropout)
        elif hp.finetune == "frozen":
            model.requires_grad_(False)
        for name, param in model.named_parameters():
            if any(part in name for part in hp.trainable_modules or ()):
                param.requires_grad_(True)
        if hp.get("gradient_checkpointing"):  # .get: checkpoints saved before the option
            self.encoder.set_gradient_checkpointing(True)
        text_dim = hp.get("text_dim") or self._resolved_text_dim
        self.proj_mid = _Projection(self.encoder.mid_dim, text_dim)
        self.proj_high = _Projection(self.encoder.high_dim, text_dim)
        log_scale = torch.tensor(math.log(1.0 / hp.temperature))
        if hp.learn_temperature:
            self.log_scale = nn.Parameter(log_scale)
        else:
            self.register_buffer("log_scale", log_scale)
        # CP-A prototypes: class-sentence embeddings, saved so tests need no text encoder.
        self.register_buffer("prototypes", torch.zeros(hp.num_classes, text_dim))
        self.register_buffer("prototypes_ready", torch.tensor(False))
        self.feature_dim = self.encoder.high_dim
        super().configure_models()

    def trainable_parameters(self) -> tuple[int, int]:
        """``(trainable, total)`` parameter counts (the LoRA budget of the paper)."""
        total = sum(p.numel() for p in self.parameters())
        trainable = sum(p.numel() for p in self.parameters() if p.requires_grad)
        return trainable, total

    @property
    def scale(self) -> Tensor:
        """``1 / tau`` (clamped at 100 when learned, as CLIP)."""
        return self.log_scale.exp().clamp(max=100.0)

    @property
    def text_encoder(self) -> CachedTextEncoder:
        """The frozen, cached text encoder (built on first use; never saved)."""
        if self._text_encoder is None:
            hp = self.hparams
            encoder: TextEncoder = build_text_encoder(
                hp.text, name=hp.text_name, path=hp.text_path, **(hp.text_kwargs or {})
            )
            if encoder.dim != hp.text_dim:
                raise ValueError(
                    f"text encoder gives {encoder.dim}-d embeddings, the model was built for "
                    f"text_dim={hp.text_dim}"
                )
            self._text_encoder = CachedTextEncoder(encoder)
        return self._text_encoder

    def embed_text(self, sentences: Sequence[str]) -> Tensor:
        """``N`` sentences -> ``(N, text_dim)`` embeddings on this module's device (no grad)."""
        return self.text_encoder(list(sentences)).to(self.device)

    def set_class_texts(self, texts: Sequence[str]) -> None:
        """Embed the ``K`` class sentences into the CP-A prototypes."""
        if len(texts) != self.hparams.num_classes:
            raise ValueError(f"{len(texts)} class texts for {self.hparams.num_classes} classes")
        self.hparams["class_texts"] = list(texts)
        self.prototypes.copy_(self.embed_text(texts))
        self.prototypes_ready.fill_(True)

    # ------------------------------------------------------------------ forward
    def encode(self, batch: dict[str, Any]) -> tuple[Tensor, Tensor]:
        """``video (B, C, T, H, W)`` -> ``(f_mid (B, D_mid), f_high (B, D_high))``."""
        return self.encoder(batch["video"])

    def forward_features(self, batch: dict[str, Any]) -> Tensor:
        """The high-level feature ``(B, D_high)`` (what the classifier reads)."""
        return self.encode(batch)[1]

    def forward_head(self, features: Tensor) -> Tensor:
        """Classifier logits, or prototype similarities / tau with ``inference="prototype"``."""
        if self.hparams.inference == "prototype":
            if not bool(self.prototypes_ready):
                raise RuntimeError(
                    "inference='prototype' needs the class prototypes: fit first, or call "
                    "set_class_texts()"
                )
            return _cosine_logits(self.proj_high(features), self.prototypes, self.scale)
        return self.head(features)

    # ------------------------------------------------------------------ training
    def fg_active(self, epoch: int | None = None) -> bool:
        """Whether ``L_fg`` is part of the loss at ``epoch`` (ML-CO stage 2)."""
        hp = self.hparams
        epoch = self.current_epoch if epoch is None else epoch
        return hp.use_fg and hp.lambda_fg > 0 and (not hp.mlco or epoch >= hp.fg_start_epoch)

    def setup(self, stage: str) -> None:
        """Check the FG-Text keys; embed the class prototypes at fit; report trainable params."""
        super().setup(stage)
        if stage != "fit":
            return
        hp = self.hparams
        dm = getattr(self.trainer, "datamodule", None)
        supplies = getattr(dm, "supplies", None)
        key = "fg_text" if hp.fg_text_source == "fine" else "class_text"
        if hp.use_fg and supplies is not None and key not in supplies:
            raise ValueError(
                f"FGSGL with use_fg needs batch key {key!r}: set fg_text: true on the datamodule"
            )
        texts = hp.get("class_texts") or getattr(dm, "class_texts", None)
        if texts is None:
            names = hp.get("class_names") or [str(k) for k in range(hp.num_classes)]
            texts = [f"A micro-gesture of {n.lower()}." for n in names]
        self.set_class_texts(texts)
        trainable, total = self.trainable_parameters()
        rank_zero_info(
            f"FGSGL: {trainable:,} of {total:,} parameters trainable "
            f"({100 * trainable / total:.2f}%, finetune={hp.finetune})"
        )

    def on_train_epoch_start(self) -> None:
        """Announce the ML-CO stage switch."""
        hp = self.hparams
        if hp.use_fg and hp.mlco and self.current_epoch == hp.fg_start_epoch:
            rank_zero_info(f"FGSGL: ML-CO stage 2 from epoch {self.current_epoch}: L_fg added")

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        """``L_cls + lambda_fg L_fg + lambda_cp L_cp``; each term logged separately."""
        hp = self.hparams
        if self._counts_missing:
            raise RuntimeError(_NO_COUNTS)
        self._check_input_keys(batch)
        labels = batch["label"]
        mid, high = self.encode(batch)
        logits = self.head(high)
        if hp.logit_adjust_tau > 0:
            logits = logit_adjusted(logits, self.log_prior, hp.logit_adjust_tau)
        n = len(labels)
        loss_cls = self.criterion(logits, labels)
        loss = loss_cls
        self.log("train/loss_cls", loss_cls, batch_size=n)
        if hp.use_cp and hp.lambda_cp > 0:
            loss_cp = prototype_loss(self.proj_high(high), labels, self.prototypes, self.scale)
            loss = loss + hp.lambda_cp * loss_cp
            self.log("train/loss_cp", loss_cp, batch_size=n)
        fg = self.fg_active()
        if fg:
            key = "fg_text" if hp.fg_text_source == "fine" else "class_text"
            if key not in batch:
                raise KeyError(f"FGSGL needs batch[{key!r}] (datamodule fg_text: true)")
            sentences = list(batch[key])
            loss_fg = fine_grained_loss(
                self.proj_mid(mid), sentences, self.embed_text(sentences), self.scale
            )
            loss = loss + hp.lambda_fg * loss_fg
            self.log("train/loss_fg", loss_fg, batch_size=n)
        if self.semantic_loss is not None:
            loss = loss + hp.semantic_loss_weight * self.semantic_loss(high, labels)
        self.log("train/stage", 2.0 if fg else 1.0, batch_size=n)
        self.log("train/loss", loss, prog_bar=True, batch_size=n)
        return loss

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Drop weight-only start paths: timm/open_clip/mgr weights are in the state dict.

        An ``hf`` encoder keeps ``visual_path``: its directory defines the architecture.
        """
        super().on_save_checkpoint(checkpoint)
        hparams = checkpoint.get("hyper_parameters")
        if isinstance(hparams, dict) and hparams.get("visual") in ("timm", "open_clip", "mgr"):
            hparams["visual_path"] = None
