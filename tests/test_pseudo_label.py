import json

import numpy as np
import pytest

from mgr.datamodules import IMiGUEDataModule
from mgr.predictions import SplitPredictions, save_predictions
from mgr.pseudo_label import load_pseudo_labels, pseudo_label_main, select_pseudo_labels


def _split(probs, labels=None):
    probs = np.asarray(probs, dtype=np.float32)
    n = len(probs)
    return SplitPredictions(
        np.array([f"s{i}" for i in range(n)]),
        np.log(probs),
        probs,
        np.asarray(labels if labels is not None else [-1] * n),
    )


def test_threshold_and_per_class_cap():
    p = _split(
        [[0.7, 0.2, 0.1], [0.5, 0.4, 0.1], [0.1, 0.05, 0.85], [0.9, 0.05, 0.05], [0.65, 0.3, 0.05]]
    )
    idx, lab = select_pseudo_labels(p, alpha=0.65)
    # max prob >= 0.65: s0 (0.7), s2 (0.85), s3 (0.9), s4 (0.65), by decreasing confidence
    assert idx.tolist() == [3, 2, 0, 4] and lab.tolist() == [0, 2, 0, 0]
    idx, lab = select_pseudo_labels(p, alpha=0.65, per_class_cap=1)
    assert idx.tolist() == [3, 2] and lab.tolist() == [0, 2]
    with pytest.raises(ValueError, match="alpha"):
        select_pseudo_labels(p, alpha=0.0)


def test_cli_writes_a_guarded_file(tmp_path, capsys):
    probs = [[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.4, 0.3, 0.3]]
    save_predictions(tmp_path / "fused", "test", _split(probs, [0, 0, 2]), ["a", "b", "c"])
    out = tmp_path / "pl.json"
    assert (
        pseudo_label_main(
            ["--preds", str(tmp_path / "fused"), "--alpha", "0.65", "--out", str(out)]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "2 of 3 test samples" in text and "pseudo-label accuracy" in text and "0.5000" in text
    pl = load_pseudo_labels(out, ["a", "b", "c"])
    assert pl.labels == {"s0": 0, "s1": 1} and pl.split == "test"
    assert pl.meta["alpha"] == 0.65 and "fused" in pl.meta["source"]
    assert pl.class_counts().tolist() == [1, 1, 0]
    with pytest.raises(ValueError, match="another class list"):
        load_pseudo_labels(out, ["a", "b", "x"])


def test_datamodule_trains_on_train_val_and_pseudo_labelled_test(synth_imigue, tmp_path):
    dm = IMiGUEDataModule(synth_imigue)
    test = dm._get_records("test")
    names = dm.class_names
    chosen = {test[0].sample_id: (test[0].label + 1) % 32, test[2].sample_id: test[2].label}
    (tmp_path / "pl.json").write_text(
        json.dumps(
            {
                "format": "mgr-pseudo-labels/1",
                "split": "test",
                "class_names": names,
                "alpha": 0.65,
                "samples": [{"sample_id": s, "label": c} for s, c in chosen.items()],
            }
        )
    )
    aug = IMiGUEDataModule(synth_imigue, extra_labels=str(tmp_path / "pl.json"))
    train = aug._get_records("train")
    n_train, n_val = dm.num_samples("train"), dm.num_samples("val")
    assert len(train) == n_train + n_val + 2
    pseudo = {r.sample_id: r.label for r in train[n_train + n_val :]}
    assert pseudo == chosen  # the pseudo-label replaces the sample's own label
    no_val = IMiGUEDataModule(
        synth_imigue, extra_labels=str(tmp_path / "pl.json"), extra_labels_with_val=False
    )
    assert no_val.num_samples("train") == n_train + 2
    bad = json.loads((tmp_path / "pl.json").read_text())
    bad["samples"].append({"sample_id": "9999_0", "label": 1})
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(ValueError, match="9999_0"):
        IMiGUEDataModule(synth_imigue, extra_labels=str(tmp_path / "bad.json")).setup("fit")
