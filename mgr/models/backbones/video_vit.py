"""Video ViT with tubelet patches and the VideoMAE pretraining pieces (plain PyTorch).

VideoMAE (Tong et al., NeurIPS 2022) pretrains a plain ViT on videos by
masking almost all space-time patches and reconstructing them:

* **tubelet embedding**: a ``Conv3d`` with kernel = stride = ``(2, 16, 16)``
  turns ``video (B, C, T, H, W)`` into ``N = T/2 * H/16 * W/16`` tokens,
  ordered ``(t, h, w)``, with a fixed 1-D sinusoidal position table over the
  token index (VideoMAE's ``get_sinusoid_encoding_table``);
* **tube masking** (:func:`tube_mask`): one random spatial mask per clip of
  ``int(ratio * H/16 * W/16)`` patches, repeated over every temporal slot, so a
  masked patch cannot be copied from the next frame (default ratio 0.9);
* the **encoder** sees only the visible tokens (:meth:`VideoViTBackbone.forward_tokens`
  with ``visible``);
* a **light decoder** (:class:`VideoMAEDecoder`) fills in mask tokens, adds
  positions and predicts the pixels of every masked tubelet;
* the **target** (:func:`pixel_targets`) is each tubelet's pixels, normalised
  per patch and channel by their mean and (unbiased) standard deviation; the
  loss is the mean squared error over the masked tubelets only.

Transformer blocks are timm's (``timm.models.vision_transformer.Block``: pre-norm
attention + MLP with stochastic depth). VideoMAE's own blocks differ only in
having no key bias, which has no effect (a key bias adds the same term to every
logit of a query's softmax).

The same :class:`VideoViTBackbone` is the encoder of the pretraining module
(:class:`mgr.models.VideoMAE`), of the fine-tuned recognizer
(:class:`mgr.models.VideoViT`) and of FG-SGL's ``visual: mgr`` encoder.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "ARCH_KEYS",
    "VideoMAEDecoder",
    "VideoViTBackbone",
    "hf_videomae_to_mgr",
    "load_hf_videomae",
    "masked_reconstruction_loss",
    "patchify",
    "pixel_targets",
    "read_video_vit_checkpoint",
    "sinusoid_table",
    "tube_mask",
]

#: the constructor arguments of :class:`VideoViTBackbone` that fix its weights' shapes.
ARCH_KEYS: tuple[str, ...] = (
    "img_size",
    "num_frames",
    "tubelet_size",
    "patch_size",
    "in_channels",
    "embed_dim",
    "depth",
    "num_heads",
    "mlp_ratio",
)


def sinusoid_table(num_positions: int, dim: int) -> Tensor:
    """The fixed sinusoidal position table of the Transformer / VideoMAE.

    Args:
        num_positions: ``N`` positions.
        dim: ``D`` channels.

    Returns:
        ``(N, D)`` float32: ``sin(p / 10000^(2i/D))`` in even and ``cos`` in odd channels.
    """
    position = torch.arange(num_positions, dtype=torch.float64)[:, None]
    exponent = 2 * (torch.arange(dim) // 2) / dim
    angle = position / torch.pow(10000.0, exponent.double())[None]
    table = torch.empty_like(angle)
    table[:, 0::2] = angle[:, 0::2].sin()
    table[:, 1::2] = angle[:, 1::2].cos()
    return table.float()


def tube_mask(
    batch_size: int,
    grid: tuple[int, int, int],
    ratio: float,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """VideoMAE tube masking: one random spatial mask per clip, repeated over time.

    Args:
        batch_size: ``B``.
        grid: token grid ``(t, h, w)`` (temporal slots, patch rows, patch columns).
        ratio: share of masked patches; every clip masks exactly
            ``int(ratio * h * w)`` patches per temporal slot (VideoMAE's
            ``TubeMaskingGenerator``), so all clips keep the same number of tokens.
        generator: random generator (e.g. seeded for a fixed validation mask).
        device: device of the mask.

    Returns:
        ``(B, t * h * w)`` bool, ``True`` = masked, in token order ``(t, h, w)``.
    """
    t, h, w = grid
    per_frame = h * w
    masked = int(ratio * per_frame)
    if not 0 < masked < per_frame:
        raise ValueError(
            f"mask ratio {ratio} masks {masked} of {per_frame} patches per frame: "
            "at least one must be masked and one visible"
        )
    noise = torch.rand(batch_size, per_frame, generator=generator)
    order = noise.argsort(dim=1)
    frame = torch.zeros(batch_size, per_frame, dtype=torch.bool)
    frame.scatter_(1, order[:, :masked], True)
    return frame.repeat(1, t).to(device)


def patchify(video: Tensor, tubelet_size: int, patch_size: int) -> Tensor:
    """Cut a video into tubelets, in token order.

    Args:
        video: ``(B, C, T, H, W)``.
        tubelet_size: frames per tubelet ``ts``.
        patch_size: pixels per patch side ``p``.

    Returns:
        ``(B, N, ts * p * p, C)``: per token ``(t, h, w)`` its pixels in ``(ts, p, p)``
        order, channels last (VideoMAE's ``b c (t p0) (h p1) (w p2) -> b (t h w) (p0 p1 p2) c``).
    """
    b, c, t, h, w = video.shape
    ts, p = tubelet_size, patch_size
    if t % ts or h % p or w % p:
        raise ValueError(
            f"video {tuple(video.shape)} does not divide into tubelets of {ts}x{p}x{p}"
        )
    x = video.reshape(b, c, t // ts, ts, h // p, p, w // p, p)
    x = x.permute(0, 2, 4, 6, 3, 5, 7, 1)  # b, t', h', w', ts, p, p, c
    return x.reshape(b, (t // ts) * (h // p) * (w // p), ts * p * p, c)


def pixel_targets(
    video: Tensor,
    tubelet_size: int,
    patch_size: int,
    *,
    normalize: bool = True,
    eps: float = 1e-6,
) -> Tensor:
    """VideoMAE's reconstruction targets of every tubelet.

    Per-patch normalisation subtracts each tubelet's mean and divides by its
    unbiased standard deviation (plus ``eps``), per channel. It is invariant to
    a per-channel affine normalisation of the input (up to ``eps``), so it can
    be computed on the normalised clip the encoder sees.

    Args:
        video: ``(B, C, T, H, W)``.
        tubelet_size: frames per tubelet.
        patch_size: pixels per patch side.
        normalize: per-patch normalisation (VideoMAE's default); ``False``: raw pixels.
        eps: added to the standard deviation.

    Returns:
        ``(B, N, ts * p * p * C)`` float32, pixels in ``(ts, p, p, C)`` order.
    """
    patches = patchify(video.float(), tubelet_size, patch_size)
    if normalize:
        mean = patches.mean(dim=-2, keepdim=True)
        std = patches.var(dim=-2, unbiased=True, keepdim=True).sqrt()
        patches = (patches - mean) / (std + eps)
    return patches.flatten(2)


def _init_weights(module: nn.Module) -> None:
    """VideoMAE's initialisation: Xavier-uniform linears with zero bias, unit LayerNorms."""
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def _blocks(
    dim: int, depth: int, num_heads: int, mlp_ratio: float, drop_path_rate: float
) -> nn.ModuleList:
    from timm.models.vision_transformer import Block

    if dim % num_heads:
        raise ValueError(f"width {dim} is not divisible by num_heads={num_heads}")
    rates = torch.linspace(0, drop_path_rate, depth).tolist() if depth else []
    return nn.ModuleList(
        Block(
            dim,
            num_heads,
            mlp_ratio=mlp_ratio,
            qkv_bias=True,
            drop_path=rate,
            norm_layer=nn.LayerNorm,
        )
        for rate in rates
    )


class VideoViTBackbone(nn.Module):
    """A plain ViT over tubelets of a video (the VideoMAE encoder).

    Args:
        img_size: input frame side ``H = W``.
        num_frames: input frames ``T``.
        tubelet_size: frames per tubelet (VideoMAE: 2).
        patch_size: pixels per patch side (VideoMAE: 16).
        in_channels: input channels ``C``.
        embed_dim: token width ``D``.
        depth: transformer blocks.
        num_heads: attention heads.
        mlp_ratio: MLP hidden width / ``D``.
        drop_path_rate: stochastic depth of the last block; block ``i`` drops
            ``i / (depth - 1)`` of it (VideoMAE fine-tuning: 0.1; pretraining: 0).

    Token order is ``(t, h, w)``: ``N = T/ts * H/p * W/p``.
    """

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
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        if img_size % patch_size or num_frames % tubelet_size:
            raise ValueError(
                f"img_size {img_size} / num_frames {num_frames} must be multiples of "
                f"patch_size {patch_size} / tubelet_size {tubelet_size}"
            )
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        self.arch: dict[str, Any] = {
            "img_size": img_size,
            "num_frames": num_frames,
            "tubelet_size": tubelet_size,
            "patch_size": patch_size,
            "in_channels": in_channels,
            "embed_dim": embed_dim,
            "depth": depth,
            "num_heads": num_heads,
            "mlp_ratio": mlp_ratio,
        }
        self.grid = (num_frames // tubelet_size, img_size // patch_size, img_size // patch_size)
        self.num_patches = math.prod(self.grid)
        self.embed_dim = self.out_channels = embed_dim
        self.depth = depth
        self.tubelet_size, self.patch_size = tubelet_size, patch_size
        kernel = (tubelet_size, patch_size, patch_size)
        self.patch_embed = nn.Conv3d(in_channels, embed_dim, kernel_size=kernel, stride=kernel)
        # Fixed (not learned) positions: derived state, rebuilt rather than saved.
        self.register_buffer(
            "pos_embed", sinusoid_table(self.num_patches, embed_dim)[None], persistent=False
        )
        self.blocks = _blocks(embed_dim, depth, num_heads, mlp_ratio, drop_path_rate)
        self.norm = nn.LayerNorm(embed_dim)
        self.apply(_init_weights)

    def embed(self, video: Tensor) -> Tensor:
        """``video (B, C, T, H, W)`` -> tokens with positions ``(B, N, D)``."""
        a = self.arch
        expected = (a["in_channels"], a["num_frames"], a["img_size"], a["img_size"])
        if video.ndim != 5 or tuple(video.shape[1:]) != expected:
            raise ValueError(
                f"expected video (B, C, T, H, W) = (B, {', '.join(map(str, expected))}), got "
                f"{tuple(video.shape)}"
            )
        x = self.patch_embed(video).flatten(2).transpose(1, 2)
        return x + self.pos_embed.to(x.dtype)

    def forward_tokens(
        self,
        video: Tensor,
        visible: Tensor | None = None,
        return_layers: tuple[int, ...] = (),
    ) -> tuple[Tensor, list[Tensor]]:
        """Run the blocks over all or only the visible tokens.

        Args:
            video: ``(B, C, T, H, W)``.
            visible: ``(B, N)`` bool, ``True`` = the encoder sees the token; every
                row must keep the same number ``N_v`` of tokens (tube masking does).
                ``None``: all tokens.
            return_layers: 0-based blocks whose outputs are also returned.

        Returns:
            ``(tokens (B, N_v, D), [block outputs (B, N_v, D)])``: the last block's
            output, before the final norm, and the requested intermediates.
        """
        x = self.embed(video)
        if visible is not None:
            keep = visible.sum(1)
            if visible.shape != x.shape[:2] or bool((keep != keep[0]).any()):
                raise ValueError(
                    f"visible must be (B, N={x.shape[1]}) with the same count per row, "
                    f"got {tuple(visible.shape)} with counts {keep.unique().tolist()}"
                )
            x = x[visible].reshape(x.shape[0], int(keep[0]), x.shape[-1])
        outputs = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in return_layers:
                outputs.append(x)
        return x, outputs

    def forward(self, video: Tensor) -> Tensor:
        """Mean-pooled, normalised clip feature: ``(B, C, T, H, W)`` -> ``(B, D)``."""
        tokens, _ = self.forward_tokens(video)
        return self.norm(tokens.mean(1))


class VideoMAEDecoder(nn.Module):
    """VideoMAE's light decoder: visible tokens + mask tokens -> pixels of masked tubelets.

    Args:
        num_patches: tokens ``N`` of the encoder's grid.
        encoder_dim: encoder width.
        embed_dim: decoder width (VideoMAE ViT-B: 384).
        depth: decoder blocks (VideoMAE: 4).
        num_heads: decoder heads (VideoMAE ViT-B: 6).
        mlp_ratio: MLP hidden width / width.
        out_dim: pixels per tubelet, ``ts * p * p * C``.
    """

    def __init__(
        self,
        num_patches: int,
        encoder_dim: int,
        embed_dim: int = 384,
        depth: int = 4,
        num_heads: int = 6,
        mlp_ratio: float = 4.0,
        out_dim: int = 2 * 16 * 16 * 3,
    ) -> None:
        super().__init__()
        self.embed = nn.Linear(encoder_dim, embed_dim, bias=False)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.register_buffer(
            "pos_embed", sinusoid_table(num_patches, embed_dim)[None], persistent=False
        )
        self.blocks = _blocks(embed_dim, depth, num_heads, mlp_ratio, 0.0)
        self.norm = nn.LayerNorm(embed_dim)
        self.head = nn.Linear(embed_dim, out_dim)
        self.apply(_init_weights)
        nn.init.trunc_normal_(self.mask_token, std=0.02)

    def forward(self, visible_tokens: Tensor, mask: Tensor) -> Tensor:
        """Predict the masked tubelets.

        Args:
            visible_tokens: ``(B, N_v, D_enc)`` normalised encoder outputs, in token order.
            mask: ``(B, N)`` bool, ``True`` = masked (``N_v = N - N_m`` per row).

        Returns:
            ``(B, N_m, out_dim)``: predictions of the masked tubelets in token order
            (the order of ``target[mask]``).
        """
        b = visible_tokens.shape[0]
        x = self.embed(visible_tokens)
        pos = self.pos_embed.to(x.dtype).expand(b, -1, -1)
        d = x.shape[-1]
        pos_visible = pos[~mask].reshape(b, -1, d)
        pos_masked = pos[mask].reshape(b, -1, d)
        x = torch.cat([x + pos_visible, self.mask_token.to(x.dtype) + pos_masked], dim=1)
        for block in self.blocks:
            x = block(x)
        n_masked = pos_masked.shape[1]
        return self.head(self.norm(x[:, -n_masked:]))


def masked_reconstruction_loss(prediction: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Mean squared error over the masked tubelets only.

    Args:
        prediction: ``(B, N_m, P)`` decoder output.
        target: ``(B, N, P)`` targets of every tubelet (:func:`pixel_targets`).
        mask: ``(B, N)`` bool, ``True`` = masked.

    Returns:
        Scalar: mean over masked tubelets and pixels.
    """
    labels = target[mask].reshape(prediction.shape)
    return F.mse_loss(prediction.float(), labels)


def read_video_vit_checkpoint(path: str | Path) -> tuple[dict[str, Any], dict[str, Tensor], str]:
    """The encoder of a VideoMAE pretraining, a VideoViT run or a plain backbone state dict.

    Args:
        path: a Lightning checkpoint of :class:`mgr.models.VideoMAE` (``encoder.*``)
            or :class:`mgr.models.VideoViT` (``backbone.*``), or a
            :class:`VideoViTBackbone` state dict saved with ``torch.save``.

    Returns:
        ``(arch, state, kind)``: the architecture arguments (:data:`ARCH_KEYS`, from
        the checkpoint's hyperparameters, else those the weights' shapes tell),
        the backbone's state dict (prefix removed) and ``"videomae"``,
        ``"videovit"`` or ``"backbone"``.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: naming the file, if it holds no video ViT encoder.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"video ViT checkpoint not found: {path} (nothing is downloaded)")
    ckpt = torch.load(path, map_location="cpu", weights_only=False)  # trusted files only
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise ValueError(f"{path}: not a checkpoint or state dict")
    kinds = {"videomae": "encoder.", "videovit": "backbone.", "backbone": ""}
    kind = next((k for k, pre in kinds.items() if f"{pre}patch_embed.weight" in state), None)
    if kind is None:
        raise ValueError(
            f"{path}: no video ViT encoder in it (no encoder.patch_embed.weight, "
            f"backbone.patch_embed.weight or patch_embed.weight; keys: {list(state)[:5]})"
        )
    prefix = kinds[kind]
    encoder = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    hparams = ckpt.get("hyper_parameters", {}) if isinstance(ckpt, dict) else {}
    weight = encoder["patch_embed.weight"]  # (D, C, ts, p, p)
    arch: dict[str, Any] = {
        "embed_dim": weight.shape[0],
        "in_channels": weight.shape[1],
        "tubelet_size": weight.shape[2],
        "patch_size": weight.shape[3],
        "depth": len({k.split(".")[1] for k in encoder if k.startswith("blocks.")}),
    }
    if "blocks.0.mlp.fc1.weight" in encoder:
        arch["mlp_ratio"] = encoder["blocks.0.mlp.fc1.weight"].shape[0] / arch["embed_dim"]
    arch.update({k: hparams[k] for k in ARCH_KEYS if k in hparams})
    return arch, encoder, kind


def hf_videomae_to_mgr(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Map a HuggingFace ``transformers`` VideoMAE state dict onto :class:`VideoViTBackbone`.

    Accepts ``VideoMAEModel``, ``VideoMAEForPreTraining`` (``videomae.*``; the decoder is
    dropped) and ``VideoMAEForVideoClassification`` (``videomae.*``; the classifier is
    dropped, its ``fc_norm`` after mean pooling becomes ``norm``, which is where this
    backbone applies it) weights. Separate query/key/value projections are fused into
    timm's ``qkv`` (the key has no bias in VideoMAE: zeros); query and value biases are
    read under either name HuggingFace uses (``q_bias``/``v_bias`` in saved files,
    ``query.bias``/``value.bias`` in a live module's ``state_dict()``).

    Args:
        state: the HuggingFace state dict.

    Returns:
        A state dict of :class:`VideoViTBackbone` (``norm`` only if the checkpoint has one).

    Raises:
        ValueError: if the dict holds no VideoMAE encoder.
    """
    state = {k.removeprefix("videomae."): v for k, v in state.items()}
    proj = "embeddings.patch_embeddings.projection"
    if f"{proj}.weight" not in state:
        raise ValueError(f"not a HuggingFace VideoMAE state dict (no {proj}.weight)")
    out = {"patch_embed.weight": state[f"{proj}.weight"], "patch_embed.bias": state[f"{proj}.bias"]}
    depth = len({k.split(".")[2] for k in state if k.startswith("encoder.layer.")})
    names = {
        "attention.output.dense": "attn.proj",
        "intermediate.dense": "mlp.fc1",
        "output.dense": "mlp.fc2",
        "layernorm_before": "norm1",
        "layernorm_after": "norm2",
    }
    for i in range(depth):
        hf, ours = f"encoder.layer.{i}.", f"blocks.{i}."
        att = hf + "attention.attention."
        q, k, v = (state[f"{att}{n}.weight"] for n in ("query", "key", "value"))
        out[ours + "attn.qkv.weight"] = torch.cat([q, k, v])
        zeros = torch.zeros(q.shape[0], dtype=q.dtype)
        # Saved files name the biases as the original code (q_bias, v_bias); modules as ViT.
        q_bias = state.get(f"{att}q_bias", state.get(f"{att}query.bias", zeros))
        v_bias = state.get(f"{att}v_bias", state.get(f"{att}value.bias", zeros))
        out[ours + "attn.qkv.bias"] = torch.cat([q_bias, zeros, v_bias])
        for name, mine in names.items():
            for p in ("weight", "bias"):
                out[f"{ours}{mine}.{p}"] = state[f"{hf}{name}.{p}"]
    for norm in ("layernorm", "fc_norm"):
        if f"{norm}.weight" in state:
            out["norm.weight"], out["norm.bias"] = state[f"{norm}.weight"], state[f"{norm}.bias"]
    return out


def load_hf_videomae(backbone: VideoViTBackbone, path: str | Path) -> list[str]:
    """Load HuggingFace VideoMAE weights (a local directory or weights file) into ``backbone``.

    E.g. the Kinetics-400 VideoMAE ViT-B pretraining saved by ``save_pretrained`` (or its
    ``model.safetensors``); nothing is downloaded. The architecture must match
    (``embed_dim``, ``depth``, ``patch_size``, ``tubelet_size``); positions are the fixed
    sinusoid table of this backbone's ``img_size`` and ``num_frames``.

    Args:
        backbone: the encoder to fill.
        path: a directory with ``model.safetensors`` or ``pytorch_model.bin``, or such a file.

    Returns:
        The loaded keys (a checkpoint without a final norm keeps ``norm`` as initialised).

    Raises:
        FileNotFoundError: if no weights file is found.
        ValueError: naming the file, for another model or mismatching shapes.
    """
    path = Path(path)
    if path.is_dir():
        found = [
            path / n for n in ("model.safetensors", "pytorch_model.bin") if (path / n).is_file()
        ]
        if not found:
            raise FileNotFoundError(f"no model.safetensors or pytorch_model.bin in {path}")
        path = found[0]
    if not path.is_file():
        raise FileNotFoundError(f"VideoMAE weights not found: {path} (nothing is downloaded)")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    try:
        mapped = hf_videomae_to_mgr(state)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err
    own = backbone.state_dict()
    bad = {
        k: (tuple(v.shape), tuple(own[k].shape))
        for k, v in mapped.items()
        if k in own and v.shape != own[k].shape
    }
    missing = sorted(set(own) - set(mapped) - {"norm.weight", "norm.bias"})
    if bad or missing or set(mapped) - set(own):
        raise ValueError(
            f"{path}: VideoMAE weights do not fit this backbone ({backbone.arch}): shapes "
            f"(file, model) {dict(list(bad.items())[:5])}, missing {missing[:5]}, "
            f"unexpected {sorted(set(mapped) - set(own))[:5]}"
        )
    backbone.load_state_dict(mapped, strict=False)
    return sorted(mapped)
