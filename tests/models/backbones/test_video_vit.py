"""Video ViT and VideoMAE pieces against plain reference computations and HF transformers."""

import numpy as np
import pytest
import torch

from mgr.models.backbones.video_vit import (
    VideoMAEDecoder,
    VideoViTBackbone,
    masked_reconstruction_loss,
    patchify,
    pixel_targets,
    read_video_vit_checkpoint,
    sinusoid_table,
    tube_mask,
)

TINY = {"img_size": 16, "num_frames": 4, "tubelet_size": 2, "patch_size": 4, "embed_dim": 16}
TINY |= {"depth": 3, "num_heads": 2}


def test_sinusoid_table_matches_transformers():
    from transformers.models.videomae.modeling_videomae import get_sinusoid_encoding_table

    for n, d in ((10, 8), (37, 12)):
        expected = get_sinusoid_encoding_table(n, d)[0]
        assert torch.allclose(sinusoid_table(n, d), expected, atol=1e-6)


def test_tube_mask_ratio_and_tube_structure():
    grid = (4, 5, 6)
    mask = tube_mask(8, grid, 0.9, generator=torch.Generator().manual_seed(0))
    assert mask.shape == (8, 4 * 5 * 6) and mask.dtype == torch.bool
    per_slot = mask.reshape(8, 4, 30)
    # exactly int(0.9 * 30) = 27 masked patches in every temporal slot of every clip
    assert (per_slot.sum(-1) == 27).all()
    # a tube: the same spatial patches are masked in every temporal slot
    assert (per_slot == per_slot[:, :1]).all()
    # clips get different masks, and a seeded generator repeats them
    assert len({tuple(m.tolist()) for m in per_slot[:, 0]}) > 1
    again = tube_mask(8, grid, 0.9, generator=torch.Generator().manual_seed(0))
    assert torch.equal(mask, again)
    with pytest.raises(ValueError, match="one must be masked and one visible"):
        tube_mask(1, (1, 2, 2), 1.0)
    with pytest.raises(ValueError, match="masks 0 of 4"):
        tube_mask(1, (1, 2, 2), 0.2)


def test_patchify_matches_plain_indexing():
    video = torch.randn(2, 3, 4, 8, 12)
    ts, p = 2, 4
    got = patchify(video, ts, p)  # (B, N, ts*p*p, C)
    assert got.shape == (2, 2 * 2 * 3, ts * p * p, 3)
    n = 0
    for t in range(2):
        for h in range(2):
            for w in range(3):
                # pixels of the tubelet in (frame, row, column) order, channels last
                ref = video[:, :, t * ts : (t + 1) * ts, h * p : (h + 1) * p, w * p : (w + 1) * p]
                ref = ref.permute(0, 2, 3, 4, 1).reshape(2, ts * p * p, 3)
                assert torch.equal(got[:, n], ref)
                n += 1
    with pytest.raises(ValueError, match="tubelets"):
        patchify(torch.randn(1, 3, 3, 8, 8), 2, 4)


def test_pixel_targets_match_plain_computation():
    torch.manual_seed(0)
    video = torch.rand(2, 3, 4, 8, 8)
    got = pixel_targets(video, 2, 4)
    raw = video.numpy().astype(np.float64)
    n = 0
    for t in range(2):
        for h in range(2):
            for w in range(2):
                cube = raw[:, :, 2 * t : 2 * t + 2, 4 * h : 4 * h + 4, 4 * w : 4 * w + 4]
                cube = cube.transpose(0, 2, 3, 4, 1).reshape(2, 32, 3)  # (B, pixels, C)
                mean = cube.mean(1, keepdims=True)
                std = cube.std(1, ddof=1, keepdims=True)  # unbiased, as VideoMAE
                ref = ((cube - mean) / (std + 1e-6)).reshape(2, 96)
                assert np.allclose(got[:, n].numpy(), ref, atol=1e-5)
                n += 1
    plain = pixel_targets(video, 2, 4, normalize=False)
    assert torch.equal(plain, patchify(video, 2, 4).flatten(2))


def test_pixel_targets_match_transformers_videomae(monkeypatch):
    """HF's VideoMAEForPreTraining computes its labels on un-normalised frames; ours on the
    ImageNet-normalised clip give the same targets (per-patch normalisation is affine-invariant)."""
    from transformers import VideoMAEConfig, VideoMAEForPreTraining
    from transformers.models.videomae import modeling_videomae

    captured = {}

    class Capture(torch.nn.MSELoss):
        def forward(self, prediction, labels):
            captured["labels"] = labels
            return super().forward(prediction, labels)

    monkeypatch.setattr(modeling_videomae, "MSELoss", Capture)
    config = VideoMAEConfig(
        image_size=16, patch_size=4, num_frames=4, tubelet_size=2, hidden_size=16,
        num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        decoder_hidden_size=16, decoder_num_hidden_layers=1, decoder_num_attention_heads=2,
        decoder_intermediate_size=32, norm_pix_loss=True,
    )  # fmt: skip
    hf = VideoMAEForPreTraining(config).eval()
    torch.manual_seed(0)
    rgb = torch.rand(2, 3, 4, 16, 16)
    mean = torch.tensor([0.485, 0.456, 0.406])[:, None, None, None]
    std = torch.tensor([0.229, 0.224, 0.225])[:, None, None, None]
    video = (rgb - mean) / std  # what the datamodules feed
    mask = tube_mask(2, (2, 4, 4), 0.75, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        hf(pixel_values=video.transpose(1, 2), bool_masked_pos=mask)
    ours = pixel_targets(video, 2, 4)[mask].reshape(2, -1, 96)
    assert torch.allclose(ours, captured["labels"], atol=2e-3)


def test_encoder_sees_only_visible_tokens():
    torch.manual_seed(0)
    enc = VideoViTBackbone(**TINY).eval()
    assert enc.grid == (2, 4, 4) and enc.num_patches == 32
    mask = tube_mask(2, enc.grid, 0.75, generator=torch.Generator().manual_seed(0))
    seen = []
    enc.blocks[0].register_forward_hook(lambda m, i, o: seen.append(i[0].shape))
    video = torch.randn(2, 3, 4, 16, 16)
    with torch.no_grad():
        tokens, _ = enc.forward_tokens(video, visible=~mask)
    assert seen == [(2, 8, 16)] and tokens.shape == (2, 8, 16)  # 32 - 3 * 4 * 2 masked
    # the masked tubes' pixels do not reach the encoder at all
    changed = video.clone()
    tubes = mask.reshape(2, 2, 4, 4)
    for b, t, h, w in tubes.nonzero().tolist():
        changed[b, :, 2 * t : 2 * t + 2, 4 * h : 4 * h + 4, 4 * w : 4 * w + 4] = 100.0
    with torch.no_grad():
        again, _ = enc.forward_tokens(changed, visible=~mask)
        full, _ = enc.forward_tokens(changed)
    assert torch.equal(tokens, again)
    assert full.shape == (2, 32, 16)
    uneven = ~mask
    uneven[0, mask[0].nonzero()[0, 0]] = True  # one more visible token in the first clip
    with pytest.raises(ValueError, match="same count"):
        enc.forward_tokens(video, visible=uneven)


def test_backbone_rejects_wrong_input():
    enc = VideoViTBackbone(**TINY)
    with pytest.raises(ValueError, match=r"\(B, 3, 4, 16, 16\)"):
        enc(torch.randn(1, 3, 8, 16, 16))


def test_drop_path_grows_linearly_over_blocks():
    enc = VideoViTBackbone(**{**TINY, "depth": 5}, drop_path_rate=0.2)
    rates = [float(getattr(b.drop_path1, "drop_prob", 0.0)) for b in enc.blocks]
    assert rates == pytest.approx([0.0, 0.05, 0.1, 0.15, 0.2])


def test_decoder_predicts_masked_tubes_in_target_order():
    torch.manual_seed(0)
    dec = VideoMAEDecoder(32, 16, embed_dim=8, depth=1, num_heads=2, out_dim=96)
    mask = tube_mask(3, (2, 4, 4), 0.75)
    out = dec(torch.randn(3, 8, 16), mask)
    assert out.shape == (3, 24, 96)


def test_loss_only_on_masked_tubes():
    torch.manual_seed(0)
    video = torch.randn(2, 3, 4, 16, 16)
    mask = tube_mask(2, (2, 4, 4), 0.75, generator=torch.Generator().manual_seed(0))
    target = pixel_targets(video, 2, 4)
    prediction = torch.randn(2, 24, 96)
    loss = masked_reconstruction_loss(prediction, target, mask)
    # plain reference: squared error of each masked tubelet against its own target
    errors = []
    for b in range(2):
        for k, n in enumerate(mask[b].nonzero().flatten().tolist()):
            errors.append(((prediction[b, k] - target[b, n]) ** 2).mean())
    assert torch.allclose(loss, torch.stack(errors).mean(), atol=1e-6)
    # changing visible tubes' targets leaves the loss unchanged; a masked one does not
    visible_changed = target.clone()
    visible_changed[~mask] += 5.0
    assert torch.equal(masked_reconstruction_loss(prediction, visible_changed, mask), loss)
    masked_changed = target.clone()
    masked_changed[0, mask[0].nonzero()[0, 0]] += 5.0
    assert masked_reconstruction_loss(prediction, masked_changed, mask) > loss


def test_read_checkpoint_kinds(tmp_path):
    enc = VideoViTBackbone(**TINY)
    torch.save(enc.state_dict(), tmp_path / "plain.pt")
    arch, state, kind = read_video_vit_checkpoint(tmp_path / "plain.pt")
    assert kind == "backbone" and arch["embed_dim"] == 16 and arch["depth"] == 3
    assert arch["patch_size"] == 4 and arch["tubelet_size"] == 2 and arch["mlp_ratio"] == 4.0
    assert all(torch.equal(state[k], v) for k, v in enc.state_dict().items())
    torch.save({"state_dict": {"x": torch.zeros(1)}}, tmp_path / "other.ckpt")
    with pytest.raises(ValueError, match="no video ViT encoder"):
        read_video_vit_checkpoint(tmp_path / "other.ckpt")
    with pytest.raises(FileNotFoundError, match="nothing is downloaded"):
        read_video_vit_checkpoint(tmp_path / "missing.ckpt")


def test_backbone_equals_transformers_videomae(tmp_path):
    """HF's VideoMAE encoder with its weights mapped in gives our tokens, masked or not."""
    from transformers import VideoMAEConfig, VideoMAEModel

    from mgr.models.backbones.video_vit import load_hf_videomae

    config = VideoMAEConfig(
        image_size=16, patch_size=4, num_frames=4, tubelet_size=2, hidden_size=16,
        num_hidden_layers=3, num_attention_heads=2, intermediate_size=64,
        use_mean_pooling=False, layer_norm_eps=1e-5,
    )  # fmt: skip
    torch.manual_seed(0)
    hf = VideoMAEModel(config).eval()
    with torch.no_grad():  # HF starts biases and norms at 0/1: perturb so the map is exercised
        for p in hf.parameters():
            p.add_(0.1 * torch.randn_like(p))
    hf.save_pretrained(tmp_path)
    ours = VideoViTBackbone(**TINY).eval()
    loaded = load_hf_videomae(ours, tmp_path)
    assert "blocks.2.attn.qkv.weight" in loaded and "norm.weight" in loaded
    video = torch.randn(2, 3, 4, 16, 16)
    mask = tube_mask(2, ours.grid, 0.75, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = hf(pixel_values=video.transpose(1, 2)).last_hidden_state
        got = ours.norm(ours.forward_tokens(video)[0])
        want_visible = hf(pixel_values=video.transpose(1, 2), bool_masked_pos=mask)
        got_visible = ours.norm(ours.forward_tokens(video, visible=~mask)[0])
    assert torch.allclose(got, want, atol=1e-5)
    assert torch.allclose(got_visible, want_visible.last_hidden_state, atol=1e-5)
    with pytest.raises(ValueError, match="do not fit"):
        load_hf_videomae(VideoViTBackbone(**{**TINY, "depth": 2}), tmp_path)


def test_hf_map_reads_live_state_dicts_too():
    """A live HF module names its biases query.bias/value.bias, saved files q_bias/v_bias."""
    from transformers import VideoMAEConfig, VideoMAEModel

    from mgr.models.backbones.video_vit import hf_videomae_to_mgr

    config = VideoMAEConfig(
        image_size=16, patch_size=4, num_frames=4, tubelet_size=2, hidden_size=16,
        num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
    )  # fmt: skip
    hf = VideoMAEModel(config)
    with torch.no_grad():
        hf.encoder.layer[0].attention.attention.query.bias.fill_(1.0)
        hf.encoder.layer[0].attention.attention.value.bias.fill_(2.0)
    bias = hf_videomae_to_mgr(hf.state_dict())["blocks.0.attn.qkv.bias"]
    assert bias.tolist() == [1.0] * 16 + [0.0] * 16 + [2.0] * 16
    with pytest.raises(ValueError, match="not a HuggingFace VideoMAE"):
        hf_videomae_to_mgr({"x": torch.zeros(1)})
