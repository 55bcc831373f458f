import json
import math
from pathlib import Path

import numpy as np
import pytest

from mgr.fusion import (
    fit_temperature,
    format_table,
    fuse,
    fuse_main,
    fuse_probs,
    metrics,
    search_weights,
)
from mgr.predictions import SplitPredictions, load_predictions, save_predictions

CLASSES = ["c0", "c1", "c2", "c3"]


def plain_softmax(z, tau=1.0):
    e = np.exp(np.asarray(z, dtype=np.float64) / tau)
    return e / e.sum(axis=1, keepdims=True)


def write_set(root: Path, name: str, splits: dict, classes=CLASSES, dataset="synth") -> Path:
    """splits: split -> (sample ids, logits (N, K), labels (N,))."""
    path = root / name
    for split, (ids, logits, labels) in splits.items():
        preds = SplitPredictions(
            np.asarray(ids),
            logits.astype(np.float32),
            plain_softmax(logits).astype(np.float32),
            np.asarray(labels, dtype=np.int64),
        )
        save_predictions(path, split, preds, classes, {"dataset": dataset})
    return path


def complementary_logits(labels, expert_classes, rng, strength=3.0):
    """Confident and mostly right on ``expert_classes``, weak noise elsewhere."""
    n, k = len(labels), len(CLASSES)
    logits = rng.normal(0.0, 1.0, (n, k))
    mine = np.isin(labels, expert_classes)
    logits[mine, labels[mine]] += strength
    return logits


def complementary_sets(root: Path, rng, test_labelled=True, n_val=200, n_test=200):
    """Two models: "skeleton" knows classes 0-1, "rgb" knows classes 2-3."""
    data = {"skeleton": {}, "rgb": {}}
    for split, n in (("val", n_val), ("test", n_test)):
        ids = np.array([f"{split}_{i:04d}" for i in range(n)])
        y = rng.integers(0, len(CLASSES), n)
        stored = y if split == "val" or test_labelled else np.full(n, -1)
        data["skeleton"][split] = (ids, complementary_logits(y, [0, 1], rng), stored)
        data["rgb"][split] = (ids, complementary_logits(y, [2, 3], rng), stored)
    return [load_predictions(write_set(root, name, s)) for name, s in data.items()]


# ----------------------------------------------------------------------------- fuse_probs


def test_fuse_probs_matches_plain_formula():
    rng = np.random.default_rng(0)
    zs = [rng.normal(0, 3, (6, 5)) for _ in range(3)]
    w, tau = [0.2, 0.5, 1.3], [0.7, 1.0, 2.5]
    expected = sum(wm * plain_softmax(z, t) for wm, z, t in zip(w, zs, tau, strict=True)) / sum(w)
    got = fuse_probs(zs, w, tau)
    np.testing.assert_allclose(got, expected, rtol=1e-10)
    np.testing.assert_allclose(got.sum(1), 1.0)


def test_fuse_probs_uniform_is_mean_of_softmaxes():
    rng = np.random.default_rng(1)
    zs = [rng.normal(0, 2, (5, 4)) for _ in range(2)]
    expected = (plain_softmax(zs[0]) + plain_softmax(zs[1])) / 2
    np.testing.assert_allclose(fuse_probs(zs, [1, 1]), expected, rtol=1e-10)
    # A global tau is the same as one tau per model.
    np.testing.assert_allclose(fuse_probs(zs, [1, 3], 2.0), fuse_probs(zs, [1, 3], [2.0, 2.0]))


def test_fuse_probs_rejects_bad_weights():
    z = [np.zeros((2, 3)), np.zeros((2, 3))]
    with pytest.raises(ValueError, match="non-negative"):
        fuse_probs(z, [0, 0])
    with pytest.raises(ValueError, match="2 weights"):
        fuse_probs([*z, np.zeros((2, 3))], [1, 1])


# ----------------------------------------------------------------------------- temperature


@pytest.mark.parametrize("k", [3.0, 0.5])
def test_fit_temperature_recovers_scale(k):
    rng = np.random.default_rng(2)
    true_logits = rng.normal(0, 1.5, (6000, 6))
    p = plain_softmax(true_logits)
    labels = np.array([rng.choice(6, p=row) for row in p])
    tau = fit_temperature(k * true_logits, labels)
    assert tau == pytest.approx(k, rel=0.1)
    assert (tau > 1) == (k > 1)  # overconfident logits are softened


def test_fit_temperature_ignores_unlabelled_and_clamps():
    rng = np.random.default_rng(3)
    true_logits = rng.normal(0, 1.5, (2000, 4))
    labels = np.array([rng.choice(4, p=row) for row in plain_softmax(true_logits)])
    unlabelled = np.where(np.arange(2000) % 4 == 0, -1, labels)
    # Unlabelled rows get adversarial logits: used, they would push tau up.
    logits = 3 * true_logits
    logits[unlabelled < 0] = -10 * np.eye(4)[labels[unlabelled < 0]]
    assert fit_temperature(logits, unlabelled) == pytest.approx(3.0, rel=0.15)
    assert fit_temperature(logits, unlabelled, tau_range=(0.1, 2.0)) == 2.0
    with pytest.raises(ValueError, match="labelled"):
        fit_temperature(logits, np.full(2000, -1))


# ----------------------------------------------------------------------------- metrics


def plain_macro_f1(pred, y, k):
    f1 = []
    for c in range(k):
        tp = np.sum((pred == c) & (y == c))
        fp = np.sum((pred == c) & (y != c))
        fn = np.sum((pred != c) & (y == c))
        if tp + fp + fn:  # classes absent from both labels and predictions do not count
            f1.append(2 * tp / (2 * tp + fp + fn))
    return np.mean(f1)


def plain_ece(probs, y, n_bins=15):
    conf, correct = probs.max(1), probs.argmax(1) == y
    bins = np.minimum((conf * n_bins).astype(int), n_bins - 1)
    return sum(
        abs(correct[bins == b].mean() - conf[bins == b].mean()) * np.mean(bins == b)
        for b in np.unique(bins)
    )


def test_metrics_match_plain_definitions():
    rng = np.random.default_rng(3)
    k = 8
    y = rng.integers(0, k - 1, 300)  # class 7 never occurs
    probs = plain_softmax(rng.normal(0, 1, (300, k)) + 2 * np.eye(k)[y])
    pred = probs.argmax(1)
    m = metrics(probs, y)
    top5 = np.argsort(-probs, axis=1)[:, :5]
    assert m["top1"] == pytest.approx(np.mean(pred == y))
    assert m["top5"] == pytest.approx(np.mean([y[i] in top5[i] for i in range(len(y))]))
    assert m["macro_f1"] == pytest.approx(plain_macro_f1(pred, y, k))
    assert m["nll"] == pytest.approx(-np.mean(np.log(probs[np.arange(len(y)), y])))
    assert m["ece"] == pytest.approx(plain_ece(probs, y), abs=1e-6)
    assert m["top1"] < m["top5"] < 1


def test_metrics_top5_with_fewer_classes():
    probs = np.array([[0.6, 0.3, 0.1], [0.2, 0.5, 0.3]])
    assert metrics(probs, np.array([2, 0]))["top5"] == 1.0  # top-min(5, K) = top-3
    with pytest.raises(ValueError, match="labelled"):
        metrics(probs, np.array([0, -1]))


# ----------------------------------------------------------------------------- weight search


def test_search_weights_prefers_better_model():
    rng = np.random.default_rng(4)
    y = rng.integers(0, 5, 400)
    good = rng.normal(0, 1, (400, 5)) + 3 * np.eye(5)[y]
    noise = rng.normal(0, 4, (400, 5))  # confident and wrong: drags the uniform mean down
    found = search_weights([good, noise], y)
    assert found.weights[0] > found.weights[1]
    assert not found.kept_uniform
    assert found.score > found.uniform_score + found.min_gain
    assert found.score == pytest.approx(
        np.mean(fuse_probs([good, noise], found.weights).argmax(1) == y)
    )
    assert sum(found.weights) == pytest.approx(1.0)


def tiny_val_case():
    # K = 2, every label 0; columns: P(class 0) of models A and B on 8 samples.
    # Uniform gets 4/8 right; weights (0.25, 0.75) also get sample 4 right: 5/8.
    pa = np.array([0.8, 0.8, 0.8, 0.8, 0.40, 0.2, 0.2, 0.2])
    pb = np.array([0.8, 0.8, 0.8, 0.8, 0.55, 0.2, 0.2, 0.2])
    to_logits = lambda p: np.log(np.stack([p, 1 - p], 1))  # noqa: E731
    return [to_logits(pa), to_logits(pb)], np.zeros(8, dtype=int)


def test_search_weights_guard_keeps_uniform_on_tiny_val():
    logits, y = tiny_val_case()
    found = search_weights(logits, y)
    se = math.sqrt(0.5 * 0.5 / 8)  # one standard error of the uniform top-1 (4/8)
    assert found.min_gain == pytest.approx(se)
    assert found.uniform_score == pytest.approx(4 / 8)
    assert found.best_score == pytest.approx(5 / 8)  # the grid does find a better vote ...
    assert found.best_score - found.uniform_score < se  # ... by less than val can resolve
    assert found.kept_uniform
    assert found.weights == (0.5, 0.5)
    # Without the guard the better grid point wins.
    free = search_weights(logits, y, min_gain=0.0)
    assert not free.kept_uniform and free.score == pytest.approx(5 / 8)
    assert free.weights[1] > free.weights[0]


def test_search_weights_restricted_grid_and_fixed_weights():
    logits, y = tiny_val_case()
    only_equal = search_weights(logits, y, grid=(0, 1), min_gain=0.0)
    assert only_equal.best_weights in {(0.5, 0.5), (0.0, 1.0), (1.0, 0.0)}
    fixed = search_weights(logits, y, fixed_weights=[1, 3])
    assert fixed.weights == (0.25, 0.75) and fixed.score == pytest.approx(5 / 8)
    assert not fixed.kept_uniform


# ----------------------------------------------------------------------------- fuse


def test_fuse_complementary_models_beat_each_alone(tmp_path):
    sets = complementary_sets(tmp_path, np.random.default_rng(5))
    result = fuse(sets)
    models = {r.name: r for r in result.rows if r.kind == "model"}
    assert set(models) == {"skeleton", "rgb"}
    chosen = result.chosen_row
    for split in ("val", "test"):
        best_single = max(getattr(r, split)["top1"] for r in models.values())
        assert getattr(chosen, split)["top1"] > best_single + 0.2
        assert getattr(chosen, split)["top1"] < 1.0  # not a trivial task
    # Fused splits hold log probabilities and the chosen row's scores.
    np.testing.assert_allclose(plain_softmax(result.val.logits), result.val.probs, atol=1e-5)
    assert metrics(result.test.probs, result.test.label)["top1"] == pytest.approx(
        chosen.test["top1"], abs=1e-6
    )
    table = format_table(result)
    assert "skeleton" in table and "rgb" in table and f"* {result.chosen}" in table


def test_fuse_aligns_shuffled_sample_order(tmp_path):
    rng = np.random.default_rng(6)
    sets = complementary_sets(tmp_path / "a", rng)
    rgb = sets[1]
    perm = rng.permutation(len(rgb["val"].sample_id))
    shuffled = {}
    for split in ("val", "test"):
        sp = rgb[split]
        order = perm if split == "val" else perm[::-1]
        shuffled[split] = (
            sp.sample_id[order],
            sp.logits[order].astype(np.float64),
            sp.label[order],
        )
    rgb_shuffled = load_predictions(write_set(tmp_path / "b", "rgb", shuffled))

    expected, got = fuse(sets), fuse([sets[0], rgb_shuffled])
    np.testing.assert_array_equal(got.val.sample_id, sets[0]["val"].sample_id)
    np.testing.assert_allclose(got.val.probs, expected.val.probs, rtol=1e-6)
    np.testing.assert_allclose(got.test.probs, expected.test.probs, rtol=1e-6)
    for a, b in zip(expected.rows, got.rows, strict=True):
        assert a.val == pytest.approx(b.val) and a.test == pytest.approx(b.test)


def test_fuse_class_list_mismatch_names_both_sets(tmp_path):
    z = np.zeros((2, 4))
    split = {"val": (["a", "b"], z, [0, 1]), "test": (["c", "d"], z, [0, 1])}
    a = load_predictions(write_set(tmp_path, "joint", split))
    b = load_predictions(write_set(tmp_path, "video", split, classes=["c0", "c1", "c2", "cX"]))
    with pytest.raises(ValueError, match=r"'joint' and 'video'.*class"):
        fuse([a, b])


def test_fuse_missing_split_and_different_samples(tmp_path):
    z = np.zeros((2, 4))
    a = load_predictions(
        write_set(
            tmp_path, "joint", {"val": (["a", "b"], z, [0, 1]), "test": (["c", "d"], z, [0, 1])}
        )
    )
    b = load_predictions(write_set(tmp_path, "limb", {"val": (["a", "b"], z, [0, 1])}))
    with pytest.raises(KeyError, match=r"limb.*'test'"):
        fuse([a, b])
    c = load_predictions(
        write_set(
            tmp_path, "rgb", {"val": (["a", "x"], z, [0, 1]), "test": (["c", "d"], z, [0, 1])}
        )
    )
    with pytest.raises(ValueError, match=r"'joint' and 'rgb' hold different samples"):
        fuse([a, c])


def test_fuse_unlabelled_test_has_no_test_metrics(tmp_path):
    sets = complementary_sets(tmp_path, np.random.default_rng(7), test_labelled=False)
    result = fuse(sets, temperature="fit")
    assert all(r.test is None for r in result.rows)
    assert np.all(result.test.label == -1) and len(result.test.sample_id) == 200
    temp = next(r for r in result.rows if r.name == "temperature")
    assert len(temp.tau) == 2 and all(0.05 <= t <= 20 for t in temp.tau)
    line = next(x for x in format_table(result).splitlines() if "skeleton" in x)
    assert line.split()[4:7] == ["-", "-", "-"]


def test_fuse_method_guard_prefers_mean(tmp_path):
    # Two equally good, independent models: no method can beat the mean by a standard error.
    rng = np.random.default_rng(8)
    splits = {}
    for name in ("joint", "limb"):
        splits[name] = {}
        for split in ("val", "test"):
            y = np.arange(60) % 4
            splits[name][split] = (
                [f"{split}{i}" for i in range(60)],
                rng.normal(0, 1, (60, 4)) + np.eye(4)[y],
                y,
            )
    sets = [load_predictions(write_set(tmp_path, n, s)) for n, s in splits.items()]
    result = fuse(sets, temperature=1.0)
    assert result.chosen == "mean"
    p = result.chosen_row.val["top1"]
    assert result.min_gain == pytest.approx(math.sqrt(p * (1 - p) / 60))


# ----------------------------------------------------------------------------- CLI


def test_fuse_main_end_to_end(tmp_path, capsys):
    sets = complementary_sets(tmp_path / "preds", np.random.default_rng(9))
    out = tmp_path / "fused"
    args = ["--preds", str(sets[0].path), str(sets[1].path / "val.npz"), "--out", str(out)]
    assert fuse_main([*args, "--temperature", "fit", "--grid", "0", "0.5", "1"]) == 0
    printed = capsys.readouterr().out
    for word in ("skeleton", "rgb", "mean", "weighted", "temperature", "chosen"):
        assert word in printed
    for file in ("meta.json", "val.npz", "test.npz", "reliability.png"):
        assert (out / file).is_file()
    assert (out / "reliability.png").read_bytes()[:4] == b"\x89PNG"

    fused = load_predictions(out)
    producer = json.loads((out / "meta.json").read_text())["producer"]
    assert fused.class_names == CLASSES and fused.meta["dataset"] == "synth"
    assert producer["kind"] == "fusion" and producer["metric"] == "top1"
    assert producer["inputs"] == [str(s.path.resolve()) for s in sets]
    assert producer["method"] in ("mean", "weighted", "temperature")
    assert len(producer["weights"]) == 2 and len(producer["tau"]) == 2
    np.testing.assert_array_equal(fused["test"].sample_id, sets[0]["test"].sample_id)
    # The fused set is itself a valid fusion input.
    assert fuse([fused, sets[0]], methods=("mean",)).chosen == "mean"


def test_fuse_main_rejects_bad_temperature(tmp_path):
    with pytest.raises(SystemExit):
        fuse_main(["--preds", str(tmp_path), "--out", str(tmp_path / "o"), "--temperature", "hot"])


def _ma52_sets(root: Path, rng, protocol=None):
    """Two MA-52 models over val/test, with the protocol mgr predict records."""
    from mgr.classes import get_classes

    names = list(get_classes("ma52").names)
    sets = []
    for model in ("rgb_a", "rgb_b"):
        path = root / model
        for split, n in (("val", 60), ("test", 45)):
            ids = np.array([f"{split}_{i:04d}" for i in range(n)])
            y = np.random.default_rng(len(split)).integers(0, 52, n)  # same labels per model
            logits = rng.normal(0, 1, (n, 52))
            logits[np.arange(n), y] += rng.uniform(0, 3, n)
            preds = SplitPredictions(
                ids, logits.astype(np.float32), plain_softmax(logits).astype(np.float32), y
            )
            proto = None if protocol is None else {**protocol, "split": split}
            save_predictions(path, split, preds, names, {"dataset": "ma52"}, protocol=proto)
        sets.append(load_predictions(path))
    return sets


def test_fusion_on_ma52_reports_f1_mean_like_the_challenge_code(tmp_path):
    from sklearn.metrics import f1_score

    from mgr.classes import ma52_fine_to_coarse

    sets = _ma52_sets(tmp_path, np.random.default_rng(0))
    result = fuse(sets, methods=("mean",), metric="f1_mean")
    row = result.chosen_row
    y = result.test.label
    pred = row.test_probs.argmax(1)
    cy, cp = [ma52_fine_to_coarse(v) for v in y], [ma52_fine_to_coarse(v) for v in pred]
    expected = np.mean(
        [
            f1_score(y, pred, average="micro"),
            f1_score(y, pred, average="macro"),
            f1_score(cy, cp, average="micro"),
            f1_score(cy, cp, average="macro"),
        ]
    )
    assert row.test["f1_mean"] == pytest.approx(expected, abs=1e-6)
    assert {"fine_macro_f1", "coarse_macro_f1", "body_top1"} <= set(row.test)
    assert "f1_mean" in format_table(result).splitlines()[1]


def test_f1_mean_selection_needs_ma52_classes(tmp_path):
    sets = complementary_sets(tmp_path / "preds", np.random.default_rng(1))
    with pytest.raises(ValueError, match="MA-52"):
        fuse(sets, metric="f1_mean")
    assert "f1_mean" not in metrics(np.eye(4), np.arange(4))


def test_fuse_main_prints_the_protocol_of_each_split(tmp_path, capsys):
    protocol = {"dataset": "ma52", "scheme": "official", "task": "classification"}
    sets = _ma52_sets(tmp_path / "preds", np.random.default_rng(2), protocol)
    out = tmp_path / "fused"
    assert fuse_main(["--preds", *(str(s.path) for s in sets), "--out", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("protocol (val): MA-52, split scheme 'official' (official list")
    assert printed[1].startswith("protocol (test): MA-52, split scheme 'official'")
    # The fused set keeps the protocol, so fusing it again still prints it.
    assert load_predictions(out).meta["splits"]["test"]["protocol"]["scheme"] == "official"


def test_fuse_main_says_when_the_protocol_is_unknown(tmp_path, capsys):
    sets = complementary_sets(tmp_path / "preds", np.random.default_rng(3))
    fuse_main(["--preds", *(str(s.path) for s in sets), "--out", str(tmp_path / "f")])
    assert "protocol (val): unknown" in capsys.readouterr().out
