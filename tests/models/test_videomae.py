"""VideoMAE pretraining and VideoViT fine-tuning: Trainer step, init_from, layer decay, FG-SGL."""

import pytest
import torch
from lightning.pytorch import Trainer

from mgr.data.datasets import VideoOptions
from mgr.datamodules import IMiGUEDataModule, UnlabeledDataModule
from mgr.models import FGSGL, VideoMAE, VideoViT
from mgr.models.backbones.video_vit import pixel_targets, tube_mask
from mgr.models.backbones.vl import VideoViTEncoder, build_visual_encoder

ARCH = {"img_size": 16, "num_frames": 4, "tubelet_size": 2, "patch_size": 4}
ARCH |= {"embed_dim": 16, "depth": 3, "num_heads": 2}
DECODER = {"decoder_embed_dim": 8, "decoder_depth": 1, "decoder_num_heads": 2}
QUIET = {
    "accelerator": "cpu",
    "logger": False,
    "enable_checkpointing": False,
    "enable_progress_bar": False,
    "enable_model_summary": False,
}


def mae(**kwargs) -> VideoMAE:
    return VideoMAE(**ARCH, **DECODER, mask_ratio=0.75, **kwargs)


@pytest.fixture
def pretrained(tmp_path) -> tuple[VideoMAE, str]:
    torch.manual_seed(0)
    model = mae()
    path = tmp_path / "pretrain.ckpt"
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams)}, path)
    return model, str(path)


def test_reconstruction_loss_is_the_masked_mse_of_normalised_pixels():
    torch.manual_seed(0)
    model = mae().eval()
    video = torch.randn(2, 3, 4, 16, 16)
    mask = tube_mask(2, model.encoder.grid, 0.75)
    with torch.no_grad():
        prediction = model(video, mask)
        loss = model.reconstruction_loss(video, mask)
    target = pixel_targets(video, 2, 4)
    want = torch.stack(
        [((prediction[b] - target[b][mask[b]]) ** 2).mean() for b in range(2)]
    ).mean()
    assert prediction.shape == (2, 24, 2 * 4 * 4 * 3)
    assert torch.allclose(loss, want, atol=1e-6)


def test_pretrain_steps_through_a_trainer_without_labels(synth_imigue_rgb, tmp_path):
    source = IMiGUEDataModule(
        synth_imigue_rgb, modalities=["video"], clip_len=4, video=VideoOptions(size=16)
    )
    dm = UnlabeledDataModule(sources=[source], batch_size=4)
    model = mae(warmup_ratio=0.5)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    seen = []
    trainer = Trainer(max_steps=3, **QUIET)
    original = model.training_step

    def spy(batch, batch_idx):
        seen.append(sorted(batch))
        return original(batch, batch_idx)

    model.training_step = spy
    trainer.fit(model, datamodule=dm)
    assert seen and all(keys == ["sample_id", "video"] for keys in seen)  # no label anywhere
    assert torch.isfinite(trainer.callback_metrics["train/loss"])
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
    assert any(k.startswith("encoder.blocks") for k in changed)
    assert any(k.startswith("decoder.") for k in changed)
    trainer.save_checkpoint(tmp_path / "p.ckpt")
    ckpt = torch.load(tmp_path / "p.ckpt", weights_only=False)
    assert ckpt["mgr_class"] == "mgr.models.videomae.VideoMAE"
    # biases and norms are not decayed (VideoMAE's parameter groups)
    groups = trainer.optimizers[0].param_groups
    no_decay = {id(p) for g in groups if g["weight_decay"] == 0.0 for p in g["params"]}
    named = dict(model.named_parameters())
    assert id(named["encoder.norm.weight"]) in no_decay
    assert id(named["encoder.blocks.0.attn.qkv.bias"]) in no_decay
    assert id(named["decoder.mask_token"]) in no_decay
    assert id(named["encoder.blocks.0.attn.qkv.weight"]) not in no_decay


def test_bad_mask_ratio():
    with pytest.raises(ValueError, match="mask_ratio"):
        mae_kwargs = {**ARCH, **DECODER}
        VideoMAE(**mae_kwargs, mask_ratio=1.0)
    with pytest.raises(ValueError, match="masks 0 of 4"):
        VideoMAE(**{**ARCH, "img_size": 8}, **DECODER, mask_ratio=0.2)  # 4 patches per frame


def test_init_from_transfers_the_encoder(pretrained):
    model_mae, path = pretrained
    torch.manual_seed(1)
    fine = VideoViT(5, **ARCH)
    head = {k: v.clone() for k, v in fine.head.state_dict().items()}
    loaded = fine.init_weights_from(path)
    assert loaded == sorted(f"backbone.{k}" for k in model_mae.encoder.state_dict())
    for key, value in model_mae.encoder.state_dict().items():
        assert torch.equal(fine.backbone.state_dict()[key], value), key
    for key, value in fine.head.state_dict().items():
        assert torch.equal(value, head[key])  # the head keeps its initialisation


def test_init_from_through_fit_setup(pretrained, synth_imigue_rgb):
    model_mae, path = pretrained
    dm = IMiGUEDataModule(
        synth_imigue_rgb, modalities=["video"], clip_len=4, video=VideoOptions(size=16)
    )
    fine = VideoViT(dm.num_classes, **ARCH, init_from=path)
    fine.setup("fit")  # what Trainer.fit does before the first step
    weight = "blocks.1.mlp.fc1.weight"
    assert torch.equal(fine.backbone.state_dict()[weight], model_mae.encoder.state_dict()[weight])


def test_init_from_refuses_another_architecture(pretrained):
    _, path = pretrained
    with pytest.raises(ValueError, match="depth"):
        VideoViT(5, **{**ARCH, "depth": 2}).init_weights_from(path)


def test_init_from_another_videovit_run(tmp_path):
    torch.manual_seed(0)
    a = VideoViT(5, **ARCH)
    torch.save({"state_dict": a.state_dict()}, tmp_path / "a.ckpt")
    b = VideoViT(5, **ARCH)
    b.init_weights_from(tmp_path / "a.ckpt")
    assert all(torch.equal(v, a.state_dict()[k]) for k, v in b.state_dict().items())


def test_layer_decay_factors_match_the_closed_form():
    depth, decay, lr = 3, 0.75, 1e-3
    model = VideoViT(5, **ARCH, layer_decay=decay)
    optimizer = model.configure_optimizers()
    lr_of = {}
    for group in optimizer.param_groups:
        for p in group["params"]:
            lr_of[id(p)] = (group["lr"], group["weight_decay"])

    def expected(name: str) -> float:
        # VideoMAE / BEiT: embedding decay^(L+1), block i decay^(L-i), after the blocks 1
        if name.startswith("backbone.patch_embed."):
            return lr * decay ** (depth + 1)
        if name.startswith("backbone.blocks."):
            return lr * decay ** (depth - int(name.split(".")[2]))
        return lr

    for name, p in model.named_parameters():
        got_lr, wd = lr_of[id(p)]
        assert got_lr == pytest.approx(expected(name)), name
        assert wd == (0.0 if p.ndim == 1 else 0.05), name
    assert lr_of[id(model.head[-1].weight)][0] == lr
    assert lr_of[id(model.backbone.blocks[2].attn.qkv.weight)][0] == pytest.approx(lr * 0.75)
    flat = VideoViT(5, **ARCH, layer_decay=None).configure_optimizers()
    assert {g["lr"] for g in flat.param_groups} == {lr}


def test_head_starts_small_and_drop_path_is_set():
    torch.manual_seed(0)
    model = VideoViT(5, **{**ARCH, "embed_dim": 64}, head_init_scale=0.001, drop_path_rate=0.1)
    std = model.head[-1].weight.std().item()  # 320 draws of 0.001 * N(0, 0.02)
    assert 1.6e-5 < std < 2.4e-5 and not model.head[-1].bias.any()
    assert model.backbone.blocks[-1].drop_path1.drop_prob == pytest.approx(0.1)
    features = model.forward_features({"video": torch.randn(2, 3, 4, 16, 16)})
    assert features.shape == (2, 64)


# ----------------------------------------------------------------------------- FG-SGL
def test_videovit_encoder_matches_its_backbone(pretrained):
    model_mae, path = pretrained
    enc = VideoViTEncoder(path, mid_layer=0).eval()
    video = torch.randn(2, 3, 4, 16, 16)
    vit = model_mae.encoder.eval()
    with torch.no_grad():
        mid, high = enc(video)
        x = vit.embed(video)
        first = vit.blocks[0](x)
        last = vit.blocks[2](vit.blocks[1](first))
    assert torch.allclose(mid, first.mean(1), atol=1e-6)
    assert torch.allclose(high, vit.norm(last.mean(1)), atol=1e-6)
    with pytest.raises(ValueError, match="differs"):
        VideoViTEncoder(path, embed_dim=32)
    with pytest.raises(ValueError, match="temporal_layers"):
        VideoViTEncoder(None, temporal_layers=1, **ARCH)
    assert isinstance(build_visual_encoder("mgr", path=path), VideoViTEncoder)


def test_fgsgl_on_a_pretrained_encoder(pretrained):
    pytest.importorskip("peft")
    model_mae, path = pretrained
    model = FGSGL(7, visual="mgr", visual_path=path, text_dim=12, finetune="lora", lora_rank=2)
    video = torch.randn(2, 3, 4, 16, 16)
    mid, high = model.encode({"video": video})
    assert mid.shape == (2, 16) and high.shape == (2, 16)
    assert model({"video": video}).shape == (2, 7)
    assert model.proj_mid(mid).shape == (2, 12)
    # LoRA adapters in the timm blocks; the pretrained weights stay frozen and loaded
    names = [n for n, p in model.encoder.model.named_parameters() if p.requires_grad]
    assert names and all("lora_" in n for n in names)
    qkv = model.encoder.model.blocks[0].attn.qkv.base_layer.weight
    assert torch.equal(qkv, model_mae.encoder.blocks[0].attn.qkv.weight)
    # a saved FG-SGL rebuilds its encoder without the pretraining file
    model.on_save_checkpoint(ckpt := {"hyper_parameters": dict(model.hparams)})
    assert ckpt["hyper_parameters"]["visual_path"] is None
    rebuilt = FGSGL(**ckpt["hyper_parameters"])
    rebuilt.load_state_dict(model.state_dict())
    model.eval(), rebuilt.eval()
    with torch.no_grad():
        assert torch.allclose(rebuilt({"video": video}), model({"video": video}))


# ----------------------------------------------------------------------------- CLI
def test_cli_pretrain_then_finetune_with_init_from(synth_imigue_rgb, tmp_path, monkeypatch):
    """``mgr fit`` of the tiny pretraining twin, then the VideoViT twin started from it."""
    from pathlib import Path

    from mgr.cli import MgrCLI

    monkeypatch.setattr("sys.argv", ["mgr"])
    monkeypatch.chdir(tmp_path)
    conf = Path(__file__).parents[1] / "conf"
    text = (conf / "pretrain" / "videomae_imigue.yaml").read_text()
    pretrain_yaml = tmp_path / "pretrain.yaml"
    pretrain_yaml.write_text(text.replace("SET_BY_TEST", str(synth_imigue_rgb)))
    cli = MgrCLI(args=["fit", "--config", str(pretrain_yaml), "--trainer.max_steps", "2"])
    assert cli.trainer.state.finished and isinstance(cli.model, VideoMAE)
    assert cli.trainer.global_step == 2
    ckpt = tmp_path / "pretrain.ckpt"
    cli.trainer.save_checkpoint(ckpt)
    fine = MgrCLI(
        args=[
            "fit",
            "--config",
            str(conf / "videovit_imigue.yaml"),
            "--data.init_args.root",
            str(synth_imigue_rgb),
            "--model.init_args.init_from",
            str(ckpt),
            "--trainer.max_steps",
            "0",
        ]
    )
    assert isinstance(fine.model, VideoViT)
    pretrained = cli.model.encoder.state_dict()
    for key, value in fine.model.backbone.state_dict().items():
        assert torch.equal(value, pretrained[key]), key


def test_pretrained_hf_videomae_weights(tmp_path):
    """A HuggingFace VideoMAE save_pretrained directory starts both modules (not saved after)."""
    from transformers import VideoMAEConfig, VideoMAEForPreTraining

    config = VideoMAEConfig(
        image_size=16, patch_size=4, num_frames=4, tubelet_size=2, hidden_size=16,
        num_hidden_layers=3, num_attention_heads=2, intermediate_size=64,
        decoder_hidden_size=8, decoder_num_hidden_layers=1, decoder_num_attention_heads=2,
        decoder_intermediate_size=16,
    )  # fmt: skip
    hf = VideoMAEForPreTraining(config)
    hf.save_pretrained(tmp_path)
    want = hf.videomae.encoder.layer[1].intermediate.dense.weight
    fine = VideoViT(5, **ARCH, pretrained=str(tmp_path))
    assert torch.equal(fine.backbone.blocks[1].mlp.fc1.weight, want)
    model = mae(pretrained=str(tmp_path))
    assert torch.equal(model.encoder.blocks[1].mlp.fc1.weight, want)
    model.on_save_checkpoint(ckpt := {"hyper_parameters": dict(model.hparams)})
    assert ckpt["hyper_parameters"]["pretrained"] is None


@pytest.mark.slow
def test_synth_experiment_configs_pretrain_then_finetune(tmp_path, monkeypatch):
    """``experiments/synth/videomae_pretrain.yaml`` (2 steps) writes the checkpoint that
    ``videovit_finetune.yaml`` starts from (its own ``init_from``), on a tiny release with
    untrimmed videos at the configs' relative data path."""
    from pathlib import Path

    from mgr.cli import MgrCLI
    from mgr.data.synthetic import generate_synthmg

    repo = Path(__file__).resolve().parents[2]
    monkeypatch.setattr("sys.argv", ["mgr"])
    monkeypatch.chdir(tmp_path)  # the configs read data/ and write runs/ relative to it
    generate_synthmg(
        tmp_path / "data" / "synthmg_imigue_rgb",
        layout="imigue",
        seed=3,
        subjects=(2, 1, 1),
        videos_per_subject=1,
        clips_per_video=6,
        clip_frames=(8, 12),
        gap_frames=(1, 2),
        video=True,
        video_size=(48, 80),
        untrimmed_video=True,
    )
    pre = MgrCLI(
        args=[
            "fit",
            "--config",
            str(repo / "experiments" / "synth" / "videomae_pretrain.yaml"),
            "--trainer.max_steps",
            "2",
            "--data.init_args.num_workers",
            "0",
        ]
    )
    assert isinstance(pre.model, VideoMAE) and pre.trainer.global_step == 2
    assert any(k.endswith(":untrimmed") for k in pre.datamodule.parts)
    ckpt = tmp_path / "runs" / "synth_videomae" / "checkpoints" / "last.ckpt"
    # Mark one encoder weight (0.5 everywhere; random init is ~N(0, 0.02)): two fine-tuning
    # steps at lr <= 5e-4 keep it near 0.5 only if init_from loaded this file.
    state = torch.load(ckpt, weights_only=False)
    key = next(
        k for k, v in state["state_dict"].items() if k.startswith("encoder.") and v.ndim == 2
    )
    state["state_dict"][key] = torch.full_like(state["state_dict"][key], 0.5)
    torch.save(state, ckpt)
    fine = MgrCLI(
        args=[
            "fit",
            "--config",
            str(repo / "experiments" / "synth" / "videovit_finetune.yaml"),
            "--trainer.max_steps",
            "2",
            "--data.init_args.num_workers",
            "0",
        ]
    )
    assert isinstance(fine.model, VideoViT) and fine.trainer.global_step == 2
    weight = fine.model.backbone.state_dict()[key.removeprefix("encoder.")]
    assert torch.allclose(weight, torch.full_like(weight, 0.5), atol=0.01)
