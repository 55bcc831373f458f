from typing import ClassVar

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from mgr.classes import get_classes
from mgr.datamodules.base import collate
from mgr.errors import UserError
from mgr.models import STCNN, Recognizer


class Passthrough(Recognizer):
    """Logits = the batch's ``skeleton`` flattened: lets tests choose the predictions."""

    input_keys: ClassVar[tuple[str, ...]] = ("skeleton",)

    def configure_models(self) -> None:
        self.feature_dim = self.hparams.num_classes
        super().configure_models()
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward_features(self, batch):
        return batch["skeleton"].flatten(1) + 0 * self.dummy

    def forward_head(self, features):
        return features


def _plain_metrics(logits: np.ndarray, labels: np.ndarray, k: int) -> dict[str, float]:
    """top-1, top-5 and macro-F1 written from their definitions (classes seen in y or y_hat)."""
    pred = logits.argmax(1)
    top5 = np.argsort(-logits, axis=1)[:, :5]
    f1s = []
    for c in range(k):
        tp = np.sum((pred == c) & (labels == c))
        fp = np.sum((pred == c) & (labels != c))
        fn = np.sum((pred != c) & (labels == c))
        if tp + fp + fn == 0:
            continue
        f1s.append(2 * tp / (2 * tp + fp + fn))
    return {
        "top1": float(np.mean(pred == labels)),
        "top5": float(np.mean([labels[i] in top5[i] for i in range(len(labels))])),
        "macro_f1": float(np.mean(f1s)),
    }


def _loader(logits, labels, batch_size=7):
    samples = [
        {
            "skeleton": torch.tensor(z, dtype=torch.float32).reshape(-1, 1, 1, 1),
            "label": int(y),
            "sample_id": f"s{i}",
        }
        for i, (z, y) in enumerate(zip(logits, labels, strict=True))
    ]
    return DataLoader(samples, batch_size=batch_size, collate_fn=collate)


def test_test_metrics_match_plain_definitions(tmp_path):
    rng = np.random.default_rng(0)
    k, n = 8, 61
    labels = rng.integers(0, k - 1, n)  # class k-1 never occurs in y
    logits = rng.normal(size=(n, k))
    logits[np.arange(n), labels] += rng.uniform(0, 2.5, n)  # better than chance
    # A perfect first batch: top-1 and top-5 states coincide after it, which once made
    # torchmetrics' compute groups merge them for the rest of the epoch.
    logits[np.arange(7), labels[:7]] += 10.0
    model = Passthrough(num_classes=k)
    trainer = pl.Trainer(
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    res = trainer.test(model, _loader(logits, labels), verbose=False)[0]
    ref = _plain_metrics(logits, labels, k)
    for key, value in ref.items():
        assert res[f"test/{key}"] == pytest.approx(value, abs=1e-6), key
    # Confusion matrix and per-class accuracy are written next to the logs.
    assert (tmp_path / "confusion_matrix.png").stat().st_size > 0
    rows = (tmp_path / "per_class_accuracy.csv").read_text().splitlines()
    assert len(rows) == k + 1
    c0 = labels == 0
    assert float(rows[1].split(",")[-1]) == pytest.approx(
        np.mean(logits[c0].argmax(1) == 0), abs=1e-4
    )


def test_view_averaging_is_mean_of_probabilities_or_logits():
    model = Passthrough(num_classes=4)
    views = torch.randn(3, 5, 4, 1, 1, 1)  # (B, N, C=K, T, V, M)
    out = model({"skeleton": views})
    ref = views.flatten(2).softmax(-1).mean(1).log()
    torch.testing.assert_close(out, ref)
    model = Passthrough(num_classes=4, test_average="logit")
    torch.testing.assert_close(model({"skeleton": views}), views.flatten(2).mean(1))
    with pytest.raises(ValueError, match="expected 5 dims"):
        model({"skeleton": torch.randn(2, 2, 2, 4, 1, 1, 1)})


def test_predict_returns_probabilities_and_ids():
    model = Passthrough(num_classes=3)
    batch = collate(
        [
            {"skeleton": torch.randn(3, 1, 1, 1), "label": 1, "sample_id": "a"},
            {"skeleton": torch.randn(3, 1, 1, 1), "label": 2, "sample_id": "b"},
        ]
    )
    out = model.predict_step(batch, 0)
    assert out["sample_id"] == ["a", "b"]
    torch.testing.assert_close(out["probs"].sum(1), torch.ones(2))
    torch.testing.assert_close(out["probs"], out["logits"].softmax(1))


def test_missing_batch_key_is_a_clear_error():
    model = Passthrough(num_classes=3)
    with pytest.raises(KeyError, match="skeleton"):
        model({"video": torch.randn(1, 3, 2, 2, 2)})


class _VideoOnly(pl.LightningDataModule):
    supplies = ("video", "label")
    num_classes = 3

    def train_dataloader(self):
        return _loader(np.zeros((2, 3)), np.zeros(2, dtype=int))


def test_setup_refuses_a_datamodule_without_the_models_inputs():
    trainer = pl.Trainer(fast_dev_run=True, logger=False, enable_progress_bar=False)
    with pytest.raises(ValueError, match=r"missing \['skeleton'\]"):
        trainer.fit(Passthrough(num_classes=3), datamodule=_VideoOnly())


def test_checkpoint_with_other_classes_is_refused(tmp_path):
    names = ["a", "b", "c", "d"]
    src = STCNN(4, class_names=names, num_joints=5, channels=(4,), temporal_strides=(1,))
    trainer = pl.Trainer(logger=False, enable_progress_bar=False, max_epochs=0)
    trainer.strategy.connect(src)
    path = tmp_path / "m.ckpt"
    trainer.save_checkpoint(path)
    with pytest.raises(UserError, match=r"num_classes=4.*num_classes=5"):
        STCNN(5, num_joints=5, channels=(4,), temporal_strides=(1,)).on_load_checkpoint(
            torch.load(path, weights_only=False)
        )
    other = STCNN(
        4, class_names=["a", "b", "x", "d"], num_joints=5, channels=(4,), temporal_strides=(1,)
    )
    with pytest.raises(UserError, match=r"ids \[2\].*'c' vs 'x'"):
        other.on_load_checkpoint(torch.load(path, weights_only=False))
    # Same classes: loads, same weights.
    same = STCNN.load_from_checkpoint(path)
    for (n, a), b in zip(src.state_dict().items(), same.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, msg=n)


class MLPHead(STCNN):
    """A new head on an existing recognizer: what users do by subclassing."""

    def configure_models(self) -> None:
        super().configure_models()
        self.head = nn.Sequential(
            nn.Linear(self.feature_dim, 16), nn.GELU(), nn.Linear(16, self.hparams.num_classes)
        )


def test_subclass_with_a_new_head_trains():
    torch.manual_seed(0)
    model = MLPHead(3, num_joints=4, channels=(4,), temporal_strides=(1,))
    batch = {"skeleton": torch.randn(6, 3, 8, 4, 1), "label": torch.tensor([0, 1, 2, 0, 1, 2])}
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        loss = model.criterion(model(batch), batch["label"])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert isinstance(model.head[1], nn.GELU)
    assert losses[-1] < 0.5 * losses[0]


def test_bad_arguments():
    with pytest.raises(ValueError, match="class names"):
        STCNN(3, class_names=["a"])
    with pytest.raises(ValueError, match="test_average"):
        STCNN(3, test_average="median")


# ---------------------------------------------------------------- long-tail losses
def _tiny_stcnn(num_classes=3, **kwargs):
    return STCNN(num_classes, num_joints=5, channels=(4,), temporal_strides=(1,), **kwargs)


def _skeleton_batch(labels):
    torch.manual_seed(1)
    return {"skeleton": torch.randn(len(labels), 3, 8, 5, 1), "label": torch.tensor(labels)}


_NO_TRAINER = "ignore:You are trying to `self.log\\(\\)`"


@pytest.mark.filterwarnings(_NO_TRAINER)
def test_longtail_training_loss_matches_plain_formulas():
    counts = [10, 3, 1]
    model = _tiny_stcnn(
        loss="focal",
        class_weights="sqrt",
        semantic_loss_weight=0.5,
        logit_adjust_tau=1.0,
        class_counts=counts,
    )
    batch = _skeleton_batch([0, 2, 1, 0, 2, 1])
    y = batch["label"]
    loss = model.training_step(batch, 0)

    features = model.forward_features(batch)  # (6, 20): 4 channels x 5 joints
    logits = model.forward_head(features)
    n = torch.tensor(counts, dtype=torch.float32)
    w = 1 / torch.sqrt(n + 1)
    w = w * n.sum() / (n * w).sum()
    logp = (logits + 1.0 * torch.log(n / n.sum())).log_softmax(1)[torch.arange(6), y]
    focal = ((1 - logp.exp()) ** 2 * w[y] * -logp).mean()
    g = torch.Generator().manual_seed(0)
    q, r = torch.linalg.qr(torch.randn(20, 3, generator=g, dtype=torch.float64))
    anchors = (q * torch.sign(torch.diagonal(r))).T.float()
    semantic = ((features - anchors[y]) ** 2).mean()
    torch.testing.assert_close(loss, focal + 0.5 * semantic)
    loss.backward()  # anchors and weights are constants: only the network trains
    assert all(p.grad is not None for p in model.head.parameters())


@pytest.mark.filterwarnings(_NO_TRAINER)
def test_default_training_loss_is_cross_entropy():
    model = _tiny_stcnn()
    batch = _skeleton_batch([0, 2, 1, 1])
    torch.testing.assert_close(
        model.training_step(batch, 0), F.cross_entropy(model(batch), batch["label"])
    )
    assert isinstance(model.criterion, nn.CrossEntropyLoss) and model.criterion.weight is None
    assert model.semantic_loss is None and model.log_prior is None
    smoothed = _tiny_stcnn(label_smoothing=0.1)
    torch.testing.assert_close(
        smoothed.training_step(batch, 0),
        F.cross_entropy(smoothed(batch), batch["label"], label_smoothing=0.1),
    )
    # The only new state is the (unknown, all-zero) class histogram.
    assert [k for k in model.state_dict() if not k.startswith(("backbone.", "head."))] == [
        "class_counts"
    ]
    assert not model.class_counts.any()


def test_class_counts_from_the_datamodule_survive_a_checkpoint(synth_imigue, tmp_path):
    from mgr.datamodules import IMiGUEDataModule
    from mgr.models.losses import class_log_prior, sqrt_smoothed_weights

    dm = IMiGUEDataModule(synth_imigue, clip_len=8, batch_size=4)
    kwargs = {"num_joints": dm.num_joints, "channels": (4,), "temporal_strides": (1,)}
    model = STCNN(
        dm.num_classes,
        loss="focal",
        class_weights="sqrt",
        logit_adjust_tau=1.0,
        semantic_loss_weight=0.1,
        **kwargs,
    )
    assert not model.class_counts.any()
    trainer = pl.Trainer(
        fast_dev_run=True,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(model, datamodule=dm)
    hist = dm.class_histogram("train")
    assert torch.equal(model.class_counts, hist)
    torch.testing.assert_close(model.criterion.weight, sqrt_smoothed_weights(hist))
    torch.testing.assert_close(model.log_prior, class_log_prior(hist))

    path = tmp_path / "longtail.ckpt"
    trainer.save_checkpoint(path)
    loaded = STCNN.load_from_checkpoint(path)
    assert loaded.hparams.class_counts is None
    assert torch.equal(loaded.class_counts, hist)
    torch.testing.assert_close(loaded.criterion.weight, model.criterion.weight)
    torch.testing.assert_close(loaded.log_prior, model.log_prior)
    torch.testing.assert_close(loaded.semantic_loss.anchors, model.semantic_loss.anchors)
    # Loss state is derived, not saved: the weights load strictly into a model
    # configured with any loss, and state dicts without class_counts still load.
    state = torch.load(path, weights_only=False)["state_dict"]
    assert not any(k.startswith(("criterion.", "semantic_loss.")) for k in state)
    plain = STCNN(dm.num_classes, **kwargs)
    plain.load_state_dict(state)
    assert torch.equal(plain.class_counts, hist)
    fresh = STCNN(dm.num_classes, class_weights="sqrt", **kwargs)
    fresh.load_state_dict({k: v for k, v in state.items() if k != "class_counts"})
    assert not fresh.class_counts.any()


def test_explicit_class_counts_win_over_the_datamodule(synth_imigue, tmp_path):
    from mgr.datamodules import IMiGUEDataModule

    dm = IMiGUEDataModule(synth_imigue, clip_len=8, batch_size=4)
    counts = list(range(1, dm.num_classes + 1))
    model = STCNN(
        dm.num_classes,
        num_joints=dm.num_joints,
        channels=(4,),
        temporal_strides=(1,),
        class_weights="sqrt",
        class_counts=counts,
    )
    trainer = pl.Trainer(fast_dev_run=True, logger=False, enable_progress_bar=False)
    trainer.fit(model, datamodule=dm)
    assert model.class_counts.tolist() == counts


def test_class_weights_without_a_histogram_are_a_clear_error():
    model = Passthrough(num_classes=3, class_weights="sqrt")
    batch = collate([{"skeleton": torch.randn(3, 1, 1, 1), "label": 1, "sample_id": "a"}])
    with pytest.raises(RuntimeError, match="class histogram"):
        model.training_step(batch, 0)
    trainer = pl.Trainer(fast_dev_run=True, logger=False, enable_progress_bar=False)
    loader = _loader(np.zeros((2, 3)), np.zeros(2, dtype=int))
    with pytest.raises(ValueError, match=r"class_counts=\[\.\.\.\]"):
        trainer.fit(Passthrough(num_classes=3, logit_adjust_tau=1.0), train_dataloaders=loader)
    # Given explicitly, no datamodule is needed.
    model = Passthrough(num_classes=3, class_weights="sqrt", class_counts=[5, 1, 0])
    trainer = pl.Trainer(fast_dev_run=True, logger=False, enable_progress_bar=False)
    trainer.fit(model, train_dataloaders=loader)
    assert model.class_counts.tolist() == [5, 1, 0]


def test_bad_longtail_arguments():
    with pytest.raises(ValueError, match="loss must be"):
        _tiny_stcnn(loss="ldam")
    with pytest.raises(ValueError, match="class_weights"):
        _tiny_stcnn(class_weights="inverse")
    with pytest.raises(ValueError, match="focal_gamma"):
        _tiny_stcnn(focal_gamma=-1.0)
    with pytest.raises(ValueError, match="3 entries"):
        _tiny_stcnn(class_counts=[1, 2])
    with pytest.raises(ValueError, match="not all zero"):
        _tiny_stcnn(class_counts=[0, 0, 0])
    # 3 orthonormal anchors do not fit in 2-D features.
    with pytest.raises(ValueError, match="d=2 < 3"):
        STCNN(3, num_joints=1, channels=(2,), temporal_strides=(1,), semantic_loss_weight=1.0)


def test_init_from_transfers_the_backbone(tmp_path):
    torch.manual_seed(0)
    source = STCNN(num_classes=52, num_joints=5, channels=(8, 8), temporal_strides=(1, 2))
    path = tmp_path / "ma52.pt"
    torch.save({"state_dict": source.state_dict()}, path)  # the layout of a Lightning .ckpt

    target = STCNN(
        num_classes=32,
        num_joints=5,
        channels=(8, 8),
        temporal_strides=(1, 2),
        init_from=str(path),
        init_reset_head=True,
    )
    head_before = target.head[1].weight.clone()
    target.setup("fit")  # a fit from scratch loads the weights
    for key, value in source.backbone.state_dict().items():
        torch.testing.assert_close(target.backbone.state_dict()[key], value, rtol=0, atol=0)
    torch.testing.assert_close(target.head[1].weight, head_before, rtol=0, atol=0)

    clash = STCNN(num_classes=32, num_joints=5, channels=(8, 8), temporal_strides=(1, 2))
    with pytest.raises(ValueError, match="init_reset_head=True"):
        clash.init_weights_from(path, reset_head=False)
    other = STCNN(num_classes=32, num_joints=7, channels=(8, 8), temporal_strides=(1, 2))
    with pytest.raises(ValueError, match=r"ma52\.pt"):
        other.init_weights_from(path, reset_head=True)


def test_init_from_head_rule(tmp_path, caplog):
    torch.manual_seed(0)
    kw = {"num_joints": 5, "channels": (8,), "temporal_strides": (1,)}
    names = ["a", "b", "c", "d"]
    source = STCNN(num_classes=4, class_names=names, **kw)
    path = tmp_path / "run.ckpt"
    torch.save({"state_dict": source.state_dict(), "hyper_parameters": dict(source.hparams)}, path)
    caplog.set_level("INFO")
    same = STCNN(num_classes=4, class_names=names, **kw)
    assert "head.1.weight" in same.init_weights_from(path)  # auto: same classes, kept
    torch.testing.assert_close(same.head[1].weight, source.head[1].weight, rtol=0, atol=0)
    assert "classifier kept: the checkpoint has this model's 4 classes (same names)" in caplog.text
    renamed = STCNN(num_classes=4, class_names=["a", "b", "d", "c"], **kw)
    fresh = renamed.head[1].weight.clone()
    assert "head.1.weight" not in renamed.init_weights_from(path)  # same count, other names
    torch.testing.assert_close(renamed.head[1].weight, fresh, rtol=0, atol=0)
    assert "other names (id 2: 'c', this model 'd')" in caplog.text
    forced = STCNN(num_classes=4, class_names=names, **kw)
    assert "head.1.weight" not in forced.init_weights_from(path, reset_head=True)


def test_checkpoints_do_not_point_at_start_weights(tmp_path):
    source = STCNN(num_classes=4, num_joints=5, channels=(8,), temporal_strides=(1,))
    torch.save(source.state_dict(), tmp_path / "start.pt")
    model = STCNN(
        num_classes=4,
        num_joints=5,
        channels=(8,),
        temporal_strides=(1,),
        init_from=str(tmp_path / "start.pt"),
    )
    checkpoint = {"hyper_parameters": dict(model.hparams)}
    model.on_save_checkpoint(checkpoint)
    assert checkpoint["hyper_parameters"]["init_from"] is None
    assert model.hparams.init_from == str(tmp_path / "start.pt")  # the live run keeps it


def _sklearn_f1_mean(logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """MA-52's F1_mean written with scikit-learn, as the MAC baseline computes it."""
    from sklearn.metrics import f1_score

    group = np.asarray(get_classes("ma52").group_of)
    pred = logits.argmax(1)
    parts = {
        "fine_micro_f1": f1_score(labels, pred, average="micro"),
        "fine_macro_f1": f1_score(labels, pred, average="macro"),
        "coarse_micro_f1": f1_score(group[labels], group[pred], average="micro"),
        "coarse_macro_f1": f1_score(group[labels], group[pred], average="macro"),
    }
    return {"f1_mean": float(np.mean(list(parts.values()))), **parts}


def _ma52_predictions(n: int = 83, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 40, n)  # classes 40..51 never occur in the labels
    logits = rng.normal(size=(n, 52))
    logits[np.arange(n), labels] += rng.uniform(0, 3.0, n)
    return logits, labels


def test_ma52_recognizer_logs_f1_mean(tmp_path):
    pytest.importorskip("sklearn")
    logits, labels = _ma52_predictions()
    names = list(get_classes("ma52").names)
    model = Passthrough(num_classes=52, class_names=names)
    trainer = pl.Trainer(logger=False, enable_progress_bar=False, default_root_dir=tmp_path)
    res = trainer.test(model, _loader(logits, labels), verbose=False)[0]
    for key, value in _sklearn_f1_mean(logits, labels).items():
        assert res[f"test/{key}"] == pytest.approx(value, abs=1e-6), key
    assert "test/body_top1" in res
    # Not MA-52's classes (same count, other names): no F1_mean.
    other = Passthrough(num_classes=52, class_names=[f"c{i}" for i in range(52)])
    res = trainer.test(other, _loader(logits, labels), verbose=False)[0]
    assert "test/f1_mean" not in res


def test_val_f1_mean_can_be_monitored_by_model_checkpoint(tmp_path):
    pytest.importorskip("sklearn")
    from lightning.pytorch.callbacks import ModelCheckpoint

    logits, labels = _ma52_predictions(n=30)
    model = Passthrough(num_classes=52, class_names=list(get_classes("ma52").names))
    ckpt = ModelCheckpoint(dirpath=tmp_path, monitor="val/f1_mean", mode="max", filename="best")
    trainer = pl.Trainer(
        logger=False,
        enable_progress_bar=False,
        max_epochs=1,
        callbacks=[ckpt],
        default_root_dir=tmp_path,
        num_sanity_val_steps=0,
    )
    loader = _loader(logits, labels)
    trainer.fit(model, loader, loader)
    expected = _sklearn_f1_mean(logits, labels)["f1_mean"]
    assert float(ckpt.best_model_score) == pytest.approx(expected, abs=1e-6)
    assert (tmp_path / "best.ckpt").is_file()
