"""Vision-language encoders: features against the libraries' own forward passes, LoRA, text."""

import pytest
import torch

from mgr.models.backbones.vl import (
    HFText,
    HFVisualEncoder,
    OpenCLIPText,
    OpenCLIPVisualEncoder,
    SentenceTransformerText,
    TimmViTEncoder,
    apply_lora,
    build_text_encoder,
    build_visual_encoder,
    default_lora_targets,
)

TINY_VIT = {"img_size": 16, "patch_size": 8, "embed_dim": 16, "depth": 3, "num_heads": 2}
OPEN_CLIP_CFG = {
    "embed_dim": 12,
    "vision_cfg": {"image_size": 16, "layers": 2, "width": 16, "patch_size": 8, "head_width": 8},
    "text_cfg": {"context_length": 12, "vocab_size": 49408, "width": 16, "heads": 2, "layers": 1},
}


def _frames_mean(fn, video):
    """Apply an image function per frame and average over time: the reference pooling."""
    b, c, t, h, w = video.shape
    out = fn(video.transpose(1, 2).reshape(b * t, c, h, w))
    return out.reshape(b, t, -1).mean(1)


def test_timm_encoder_matches_timm_forward():
    torch.manual_seed(0)
    enc = TimmViTEncoder("vit_tiny_patch16_224", mid_layer=1, **TINY_VIT).eval()
    vit = enc.model
    video = torch.randn(2, 3, 4, 16, 16)

    def high(x):
        return vit.forward_head(vit.forward_features(x), pre_logits=True)

    def mid(x):  # the public pieces of timm's forward, run to block 1
        x = vit.norm_pre(vit._pos_embed(vit.patch_embed(x)))
        x = vit.blocks[1](vit.blocks[0](x))
        return x[:, vit.num_prefix_tokens :].mean(1)

    with torch.no_grad():
        got_mid, got_high = enc(video)
        assert torch.allclose(got_high, _frames_mean(high, video), atol=1e-5)
        assert torch.allclose(got_mid, _frames_mean(mid, video), atol=1e-5)
    assert enc.mid_dim == enc.high_dim == 16


def test_timm_default_mid_layer_and_range():
    assert TimmViTEncoder(**{**TINY_VIT, "depth": 4}).mid_layer == 1
    with pytest.raises(ValueError, match="mid_layer"):
        TimmViTEncoder(mid_layer=3, **TINY_VIT)


def test_timm_loads_a_local_checkpoint(tmp_path):
    torch.manual_seed(1)
    src = TimmViTEncoder(**TINY_VIT).model
    path = tmp_path / "vit.pth"
    torch.save(src.state_dict(), path)
    enc = TimmViTEncoder(checkpoint=path, **TINY_VIT)
    for k, v in src.state_dict().items():
        assert torch.equal(enc.model.state_dict()[k], v), k
    with pytest.raises(FileNotFoundError, match=r"missing\.pth"):
        TimmViTEncoder(checkpoint=tmp_path / "missing.pth", **TINY_VIT)


def test_temporal_mixer_changes_only_the_high_feature():
    torch.manual_seed(0)
    enc = TimmViTEncoder(temporal_layers=1, mid_layer=0, **TINY_VIT).eval()
    video = torch.randn(2, 3, 3, 16, 16)
    mid, high = enc(video)
    enc.temporal = None
    mid0, high0 = enc(video)
    assert torch.allclose(mid, mid0) and not torch.allclose(high, high0)


def test_open_clip_visual_matches_clip_visual():
    open_clip = pytest.importorskip("open_clip")
    torch.manual_seed(0)
    enc = OpenCLIPVisualEncoder(None, model_cfg=OPEN_CLIP_CFG, mid_layer=0).eval()
    video = torch.randn(2, 3, 2, 16, 16)
    with torch.no_grad():
        mid, high = enc(video)
        assert torch.allclose(high, _frames_mean(enc.model, video), atol=1e-5)
    assert mid.shape == (2, 16) and high.shape == (2, 12)
    assert isinstance(open_clip.model.CLIP(**OPEN_CLIP_CFG), torch.nn.Module)


def test_hf_visual_matches_transformers(tmp_path):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.CLIPVisionConfig(
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=16,
        patch_size=8,
    )
    ref = transformers.CLIPVisionModel(config).eval()
    ref.save_pretrained(tmp_path)
    enc = HFVisualEncoder(tmp_path, mid_layer=0).eval()
    video = torch.randn(2, 3, 2, 16, 16)
    with torch.no_grad():
        mid, high = enc(video)
        assert torch.allclose(
            high, _frames_mean(lambda x: ref(pixel_values=x).pooler_output, video), atol=1e-5
        )

        def ref_mid(x):
            hidden = ref(pixel_values=x, output_hidden_states=True).hidden_states[1]
            return hidden[:, 1:].mean(1)  # drop the class token

        assert torch.allclose(mid, _frames_mean(ref_mid, video), atol=1e-5)


@pytest.mark.parametrize("kind", ["timm", "open_clip", "hf"])
def test_lora_on_every_encoder(kind, tmp_path):
    pytest.importorskip("peft")
    if kind == "hf":
        transformers = pytest.importorskip("transformers")
        config = transformers.CLIPVisionConfig(
            hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
            image_size=16, patch_size=8,
        )  # fmt: skip
        transformers.CLIPVisionModel(config).save_pretrained(tmp_path)
        enc = build_visual_encoder("hf", path=tmp_path)
    elif kind == "open_clip":
        enc = build_visual_encoder("open_clip", model_cfg=OPEN_CLIP_CFG)
    else:
        enc = build_visual_encoder("timm", **TINY_VIT)
    apply_lora(enc.model, rank=2, alpha=4, targets=default_lora_targets(enc))
    names = [n for n, p in enc.model.named_parameters() if p.requires_grad]
    assert names and all("lora_" in n for n in names)
    frozen = [n for n, p in enc.model.named_parameters() if not p.requires_grad]
    assert frozen and not any("lora_" in n for n in frozen)
    # LoRA B starts at zero: the adapted encoder computes what the base computed.
    enc.eval()
    mid, high = enc(torch.randn(1, 3, 2, 16, 16))
    assert torch.isfinite(high).all() and torch.isfinite(mid).all()


def test_lora_with_unknown_target_lists_layer_names():
    pytest.importorskip("peft")
    enc = build_visual_encoder("timm", **TINY_VIT)
    with pytest.raises(ValueError, match=r"match nothing.*qkv"):
        apply_lora(enc.model, targets=["q_proj"])


def test_build_errors():
    with pytest.raises(ValueError, match="visual encoder kind"):
        build_visual_encoder("resnet")
    with pytest.raises(ValueError, match="needs path"):
        build_visual_encoder("hf")
    with pytest.raises(ValueError, match="text encoder kind"):
        build_text_encoder("word2vec")
    with pytest.raises(FileNotFoundError, match="nothing is downloaded"):
        build_text_encoder("hf", path="/no/such/dir")


# ----------------------------------------------------------------------------- text
def test_packaged_minilm_loads_offline_and_is_frozen(monkeypatch):
    pytest.importorskip("sentence_transformers")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    enc = SentenceTransformerText()
    emb = enc.encode(["The right hand moves upward to the neck.", "The head moves downward."])
    assert emb.shape == (2, 384) and enc.dim == 384
    assert not emb.requires_grad
    assert torch.allclose(emb.norm(dim=-1), torch.ones(2), atol=1e-4)  # MiniLM normalises
    assert not any(p.requires_grad for p in enc.model.parameters())
    # Similar sentences are closer than unrelated ones: the weights really loaded.
    a, b, c = enc.encode(["rubbing the eyes", "rubbing both eyes", "crossing the legs"])
    assert (a @ b) > (a @ c) + 0.1


def test_open_clip_text_matches_encode_text():
    open_clip = pytest.importorskip("open_clip")
    torch.manual_seed(0)
    enc = OpenCLIPText(None, model_cfg=OPEN_CLIP_CFG)
    ref = enc.model
    got = enc.encode(["a hand", "a head"])
    with torch.no_grad():
        want = ref.encode_text(open_clip.tokenize(["a hand", "a head"], context_length=12))
    assert torch.allclose(got, want, atol=1e-5) and enc.dim == 12


def test_hf_text_mean_pools_with_the_mask(tmp_path):
    transformers = pytest.importorskip("transformers")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "hand", "head", "moves"]
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tok = transformers.BertTokenizer(str(tmp_path / "vocab.txt"))
    tok.save_pretrained(tmp_path)
    config = transformers.BertConfig(
        vocab_size=len(vocab), hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=16, max_position_embeddings=32,
    )  # fmt: skip
    torch.manual_seed(0)
    ref = transformers.BertModel(config).eval()
    ref.save_pretrained(tmp_path)
    enc = HFText(tmp_path)
    got = enc.encode(["the hand moves", "head"])
    with torch.no_grad():
        for i, s in enumerate(["the hand moves", "head"]):  # one sentence at a time: no padding
            ids = tok(s, return_tensors="pt")
            want = ref(**ids).last_hidden_state.mean(1)[0]
            assert torch.allclose(got[i], want, atol=1e-5)


def _tiny_internvl_vision(path):
    """transformers' native InternViT (InternVLVisionModel) at toy size, saved to ``path``."""
    transformers = pytest.importorskip("transformers")
    config = transformers.InternVLVisionConfig(
        hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
        image_size=16, patch_size=8, attention_bias=True,
    )  # fmt: skip
    ref = transformers.InternVLVisionModel(config).eval()
    ref.save_pretrained(path)
    return ref


def test_hf_native_internvit_features_and_lora_targets(tmp_path):
    """InternViT as transformers' own class: class token dropped from f_mid, every linear
    of attention and MLP adapted (InternVL's LoRA recipe adapts qkv, proj, fc1, fc2)."""
    pytest.importorskip("peft")
    torch.manual_seed(0)
    ref = _tiny_internvl_vision(tmp_path)
    enc = HFVisualEncoder(tmp_path, mid_layer=0).eval()
    video = torch.randn(2, 3, 2, 16, 16)
    with torch.no_grad():
        mid, high = enc(video)

        def ref_mid(x):  # 1 class token + 4 patches: keep the patches
            return ref(pixel_values=x, output_hidden_states=True).hidden_states[1][:, 1:].mean(1)

        assert torch.allclose(mid, _frames_mean(ref_mid, video), atol=1e-5)
        assert torch.allclose(
            high,
            _frames_mean(lambda x: ref(pixel_values=x).last_hidden_state.mean(1), video),
            atol=1e-5,
        )
    targets = default_lora_targets(enc)
    assert set(targets) == {"q_proj", "k_proj", "v_proj", "projection_layer", "fc1", "fc2"}
    apply_lora(enc.model, rank=2, alpha=4, targets=targets)
    adapted = {n.rsplit(".lora_A", 1)[0] for n, _ in enc.model.named_modules() if ".lora_A" in n}
    linears = {
        n for n, m in ref.named_modules() if isinstance(m, torch.nn.Linear) and "encoder." in n
    }
    assert adapted == linears  # 2 layers x (q, k, v, projection, fc1, fc2)


def _counting(forward, count):
    def wrapped(*args, **kwargs):
        count[0] += 1
        return forward(*args, **kwargs)

    return wrapped


@pytest.mark.parametrize("kind", ["timm", "open_clip", "hf"])
def test_gradient_checkpointing_keeps_lora_gradients(kind, tmp_path):
    """Checkpointed backward through a frozen encoder gives the LoRA adapters the same
    gradients as the plain backward (a reentrant checkpoint would give them none)."""
    pytest.importorskip("peft")
    if kind == "hf":
        _tiny_internvl_vision(tmp_path)
        make = lambda: build_visual_encoder("hf", path=tmp_path, mid_layer=0)  # noqa: E731
    elif kind == "open_clip":
        pytest.importorskip("open_clip")
        make = lambda: build_visual_encoder("open_clip", model_cfg=OPEN_CLIP_CFG)  # noqa: E731
    else:
        make = lambda: build_visual_encoder("timm", mid_layer=0, **TINY_VIT)  # noqa: E731
    first_mlp = {  # inside the checkpointed block (HF checkpoints the class's forward)
        "timm": lambda m: m.blocks[0].mlp,
        "open_clip": lambda m: m.transformer.resblocks[0].mlp,
        "hf": lambda m: m.encoder.layer[0].mlp,
    }[kind]
    video = torch.randn(2, 3, 2, 16, 16)
    grads, calls = [], []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        enc = make()
        apply_lora(enc.model, rank=2, alpha=4, targets=default_lora_targets(enc))
        for name, p in enc.model.named_parameters():
            if "lora_" in name:
                torch.nn.init.normal_(p, std=0.1)  # B != 0: A receives a gradient too
        enc.set_gradient_checkpointing(checkpointing)
        enc.train()
        count, mlp = [0], first_mlp(enc.model)
        mlp.forward = _counting(mlp.forward, count)  # hooks do not fire in recomputation
        mid, high = enc(video)
        (mid.square().sum() + high.square().sum()).backward()
        grads.append({n: p.grad for n, p in enc.model.named_parameters() if p.requires_grad})
        calls.append(count[0])
    assert calls == [1, 2]  # checkpointing recomputes the block in the backward pass
    plain, checkpointed = grads
    assert plain.keys() == checkpointed.keys() and plain
    for name, g in plain.items():
        assert checkpointed[name] is not None and g.abs().sum() > 0, name
        torch.testing.assert_close(checkpointed[name], g, atol=1e-6, rtol=1e-4)


def test_hf_visual_loads_bf16_weights_as_float32(tmp_path):
    """InternViT's release stores bf16 weights; transformers would keep them, and a
    32-true run would then fail on float32 frames (or train LoRA in bf16)."""
    ref = _tiny_internvl_vision(tmp_path / "fp32")
    ref.to(torch.bfloat16).save_pretrained(tmp_path / "bf16")
    enc = HFVisualEncoder(tmp_path / "bf16", mid_layer=0).eval()
    assert {p.dtype for p in enc.parameters()} == {torch.float32}
    for (name, got), want in zip(
        enc.model.state_dict().items(), ref.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(got, want.float(), msg=name)  # the stored bf16 values
    mid, high = enc(torch.randn(1, 3, 2, 16, 16))
    assert mid.dtype == high.dtype == torch.float32
