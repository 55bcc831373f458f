"""FG-SGL: losses against hand computation, frozen text, LoRA, ML-CO stages, ablation rows."""

import math

import pytest
import torch
from lightning.pytorch import Callback, Trainer

from mgr.data.datasets import VideoOptions
from mgr.datamodules import IMiGUEDataModule
from mgr.models import FGSGL
from mgr.models.fgsgl import fine_grained_loss, prototype_loss, warmup_cosine

pytest.importorskip("peft")
pytest.importorskip("sentence_transformers")

TINY_VIT = {"img_size": 16, "patch_size": 8, "embed_dim": 16, "depth": 2, "num_heads": 2}
QUIET = {
    "accelerator": "cpu",
    "logger": False,
    "enable_checkpointing": False,
    "enable_progress_bar": False,
    "enable_model_summary": False,
}


def tiny(num_classes: int = 32, **kwargs) -> FGSGL:
    kwargs.setdefault("finetune", "full")
    return FGSGL(num_classes, visual_kwargs=TINY_VIT, mid_layer=0, **kwargs)


def datamodule(root, **kwargs) -> IMiGUEDataModule:
    return IMiGUEDataModule(
        root,
        modalities=["video"],
        fg_text=True,
        clip_len=2,
        batch_size=4,
        video=VideoOptions(size=16),
        **kwargs,
    )


# ----------------------------------------------------------------------------- losses
def _nll(row: list[float], target: int) -> float:
    return -(row[target] - math.log(sum(math.exp(v) for v in row)))


def test_fine_grained_loss_by_hand():
    # Unit vectors at known angles: cos(a, b) = cos(angle difference).
    def unit(deg):
        return [math.cos(math.radians(deg)), math.sin(math.radians(deg))]

    visual = torch.tensor([unit(0), unit(90)])
    text = torch.tensor([unit(30), unit(120)]) * 3.0  # scale must not matter (cosine)
    tau = 0.5
    got = fine_grained_loss(visual, ["a", "b"], text, 1 / tau)
    sims = [[math.cos(math.radians(30)), math.cos(math.radians(120))],
            [math.cos(math.radians(-60)), math.cos(math.radians(30))]]  # fmt: skip
    want = (_nll([s / tau for s in sims[0]], 0) + _nll([s / tau for s in sims[1]], 1)) / 2
    assert got.item() == pytest.approx(want, abs=1e-6)


def test_fine_grained_loss_merges_duplicate_sentences():
    visual = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    text = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])  # clips 0 and 1 share sentence "a"
    got = fine_grained_loss(visual, ["a", "a", "b"], text, 2.0)
    # Candidates: unique sentences {a: (1, 0), b: (0, 1)}.
    c = 1 / math.sqrt(2)
    rows = [[2 * 1.0, 0.0], [0.0, 2 * 1.0], [2 * c, 2 * c]]
    want = (_nll(rows[0], 0) + _nll(rows[1], 0) + _nll(rows[2], 1)) / 3
    assert got.item() == pytest.approx(want, abs=1e-6)


def test_prototype_loss_by_hand():
    visual = torch.tensor([[2.0, 0.0], [0.0, -1.0]])
    protos = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    got = prototype_loss(visual, torch.tensor([0, 2]), protos, 10.0)
    rows = [[10.0, 0.0, -10.0], [0.0, -10.0, 0.0]]
    assert got.item() == pytest.approx((_nll(rows[0], 0) + _nll(rows[1], 2)) / 2, abs=1e-5)


def test_warmup_cosine_schedule():
    assert warmup_cosine(0, 100, 3) == pytest.approx(0.25)
    assert warmup_cosine(2, 100, 3) == pytest.approx(0.75)
    assert warmup_cosine(3, 100, 3) == pytest.approx(1.0)
    assert warmup_cosine(100, 100, 3) == pytest.approx(0.0)
    mid = 3 + (100 - 3) / 2
    assert warmup_cosine(int(mid), 100, 3) == pytest.approx(
        0.5 * (1 + math.cos(math.pi * (int(mid) - 3) / 97))
    )


# ----------------------------------------------------------------------------- model
def _batch(n: int = 4, k: int = 32) -> dict:
    return {
        "video": torch.randn(n, 3, 2, 16, 16),
        "label": torch.arange(n) % k,
        "fg_text": ["The right hand moves upward to the neck with a scratching motion."] * (n - 1)
        + ["The head moves downward to the shoulders with a sinking motion."],
        "class_text": [f"class {i}" for i in range(n)],
    }


def test_text_encoder_is_frozen_and_not_saved():
    model = tiny()
    model.set_class_texts([f"A micro-gesture of class {k}." for k in range(32)])
    text_model = model.text_encoder.encoder.model
    before = {k: v.clone() for k, v in text_model.state_dict().items()}
    assert not any(p.requires_grad for p in text_model.parameters())
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1.0)
    loss = model.training_step(_batch(), 0)
    loss.backward()
    opt.step()
    assert all(p.grad is None for p in text_model.parameters())
    after = text_model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    emb = model.embed_text(["x"])
    assert not emb.requires_grad
    assert not any("sentence" in k or "auto_model" in k for k in model.state_dict())


def test_text_embeddings_cached_per_sentence():
    model = tiny()
    calls = []
    encoder = model.text_encoder.encoder
    original = encoder._encode
    encoder._encode = lambda s: (calls.append(list(s)), original(s))[1]
    model.embed_text(["a", "b", "a"])
    model.embed_text(["b", "c"])
    assert calls == [["a", "b"], ["c"]]


def test_lora_freezes_base_weights_and_trains_adapters():
    model = tiny(finetune="lora", lora_rank=2)
    model.set_class_texts([f"c{k}" for k in range(32)])
    vit = model.encoder.model
    base = {n: p.detach().clone() for n, p in vit.named_parameters() if "lora_" not in n}
    lora = {n: p.detach().clone() for n, p in vit.named_parameters() if "lora_" in n}
    assert lora and all(not p.requires_grad for n, p in vit.named_parameters() if n in base)
    # LoRA on qkv, proj, fc1, fc2 of both blocks: A (r x in) + B (out x r) each.
    d, r = TINY_VIT["embed_dim"], 2
    per_block = r * (d + 3 * d) + r * (d + d) + r * (d + 4 * d) + r * (4 * d + d)
    assert sum(p.numel() for p in lora.values()) == 2 * per_block
    trainable, total = model.trainable_parameters()
    others = sum(
        p.numel() for n, p in model.named_parameters() if not n.startswith("encoder.model.")
    )
    assert trainable == 2 * per_block + others < total
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(2):  # B starts at zero: A only moves from the second step on
        opt.zero_grad()
        model.training_step(_batch(), 0).backward()
        opt.step()
    for n, p in vit.named_parameters():
        if n in base:
            assert torch.equal(p, base[n]), n
    assert all(not torch.equal(dict(vit.named_parameters())[n], v) for n, v in lora.items())


def test_gradient_checkpointing_switch_reaches_the_encoder_and_keeps_the_loss():
    """Checkpointing with LoRA: the same loss and the same adapter gradients as without."""
    losses, grads = [], []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        model = tiny(finetune="lora", lora_rank=2, gradient_checkpointing=checkpointing)
        assert model.encoder.model.grad_checkpointing is checkpointing
        model.set_class_texts([f"c{k}" for k in range(32)])
        for n, p in model.encoder.model.named_parameters():
            if "lora_" in n:
                torch.nn.init.normal_(p, std=0.1)
        torch.manual_seed(1)
        loss = model.training_step(_batch(), 0)
        loss.backward()
        losses.append(loss.detach())
        grads.append([p.grad for n, p in model.encoder.model.named_parameters() if "lora_" in n])
    torch.testing.assert_close(losses[0], losses[1])
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-4)


def test_frozen_encoder_and_trainable_modules():
    model = tiny(finetune="frozen", trainable_modules=["norm"])
    vit = model.encoder.model
    for n, p in vit.named_parameters():
        assert p.requires_grad == ("norm" in n), n


def test_fg_active_by_epoch():
    model = tiny(fg_start_epoch=2)
    assert [model.fg_active(e) for e in range(4)] == [False, False, True, True]
    assert all(tiny(mlco=False).fg_active(e) for e in range(3))
    assert not any(tiny(use_fg=False).fg_active(e) for e in range(8))


class _Stages(Callback):
    def __init__(self):
        self.stages, self.has_fg = [], []

    def on_train_epoch_end(self, trainer, pl_module):
        self.stages.append(float(trainer.callback_metrics["train/stage"]))
        self.has_fg.append("train/loss_fg" in trainer.logged_metrics)


def test_stage_switch_happens_at_the_configured_epoch(synth_imigue_rgb):
    model = tiny(fg_start_epoch=2)
    stages = _Stages()
    trainer = Trainer(
        max_epochs=3, limit_train_batches=1, limit_val_batches=0, callbacks=[stages], **QUIET
    )
    trainer.fit(model, datamodule=datamodule(synth_imigue_rgb))
    assert stages.stages == [1.0, 1.0, 2.0]
    assert stages.has_fg == [False, False, True]


ABLATIONS = {
    "full": {},
    "no_fg_sa": {"use_fg": False},
    "no_cp_a": {"use_cp": False},
    "no_mlco": {"mlco": False},
    "class_text": {"fg_text_source": "class"},
}


@pytest.mark.parametrize("row", list(ABLATIONS))
def test_every_ablation_runs(synth_imigue_rgb, row):
    model = tiny(fg_start_epoch=0, **ABLATIONS[row])
    logged = {}

    class Keep(Callback):
        def on_train_batch_end(self, trainer, *args):
            logged.update(trainer.logged_metrics)

    Trainer(fast_dev_run=True, callbacks=[Keep()], **QUIET).fit(
        model, datamodule=datamodule(synth_imigue_rgb)
    )
    assert ("train/loss_fg" in logged) == (row != "no_fg_sa")
    assert ("train/loss_cp" in logged) == (row != "no_cp_a")
    assert torch.isfinite(logged["train/loss"])


def test_use_fg_needs_fg_text_in_the_batch(synth_imigue_rgb):
    dm = IMiGUEDataModule(
        synth_imigue_rgb, modalities=["video"], clip_len=2, video=VideoOptions(size=16)
    )
    with pytest.raises(ValueError, match="fg_text: true"):
        Trainer(fast_dev_run=True, **QUIET).fit(tiny(), datamodule=dm)


def test_checkpoint_round_trip_and_prototype_inference(synth_imigue_rgb, tmp_path):
    dm = datamodule(synth_imigue_rgb)
    model = tiny(fg_start_epoch=0)
    trainer = Trainer(fast_dev_run=True, **QUIET)
    trainer.fit(model, datamodule=dm)
    path = tmp_path / "m.ckpt"
    trainer.save_checkpoint(path)
    loaded = FGSGL.load_from_checkpoint(path, inference="prototype")
    assert loaded._text_encoder is None  # nothing to embed: prototypes come from the file
    assert torch.equal(loaded.prototypes, model.prototypes)
    assert bool(loaded.prototypes_ready)
    batch = _batch(2)
    model.eval(), loaded.eval()
    with torch.no_grad():
        assert torch.allclose(loaded.forward_features(batch), model.forward_features(batch))
        logits = loaded(batch)
        want = (
            1
            / 0.07
            * torch.nn.functional.normalize(model.proj_high(model.forward_features(batch)), dim=-1)
            @ torch.nn.functional.normalize(model.prototypes, dim=-1).T
        )
    assert torch.allclose(logits, want, atol=1e-4)


def test_prototype_inference_without_prototypes_is_an_error():
    model = tiny(inference="prototype").eval()
    with pytest.raises(RuntimeError, match="prototypes"):
        model(_batch(2))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"finetune": "partial"}, "finetune"),
        ({"fg_text_source": "words"}, "fg_text_source"),
        ({"temperature": 0.0}, "temperature"),
        ({"class_texts": ["a"]}, "class_texts"),
        ({"warmup_ratio": 1.5}, "warmup_ratio"),
    ],
)
def test_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tiny(**kwargs)


def test_learned_temperature_is_a_parameter():
    model = tiny(learn_temperature=True, temperature=0.1)
    assert isinstance(model.log_scale, torch.nn.Parameter)
    assert model.scale.item() == pytest.approx(10.0)
