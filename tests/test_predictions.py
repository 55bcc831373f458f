import csv
import json
import zipfile

import numpy as np
import pytest

from mgr.classes import MA52, ma52_fine_to_coarse
from mgr.cli import MgrCLI
from mgr.predictions import (
    SplitPredictions,
    load_predictions,
    save_predictions,
    write_submission,
)


def _preds(n=6, k=4, seed=0, labels=True):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, k)).astype(np.float32)
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    label = rng.integers(0, k, n) if labels else np.full(n, -1)
    return SplitPredictions(np.array([f"v_{i}" for i in range(n)]), logits, probs, label)


def test_round_trip_and_meta(tmp_path):
    names = ["a", "b", "c", "d"]
    val, test = _preds(seed=1), _preds(seed=2, labels=False)
    save_predictions(tmp_path / "m", "val", val, names, {"dataset": "imigue"})
    save_predictions(tmp_path / "m", "test", test, names)
    pset = load_predictions(tmp_path / "m" / "test.npz")
    assert pset.class_names == names and set(pset.splits) == {"val", "test"}
    np.testing.assert_array_equal(pset["val"].logits, val.logits)
    np.testing.assert_array_equal(pset["val"].sample_id, val.sample_id)
    assert pset["val"].has_labels and not pset["test"].has_labels
    assert pset.meta["dataset"] == "imigue"
    with pytest.raises(KeyError, match="predict_split train"):
        pset["train"]
    with pytest.raises(ValueError, match="other classes"):
        save_predictions(tmp_path / "m", "val", val, ["w", "x", "y", "z"])


def test_align_reorders_by_sample_id():
    p = _preds()
    order = ["v_3", "v_0", "v_5", "v_1", "v_2", "v_4"]
    q = p.align(order)
    assert q.sample_id.tolist() == order
    np.testing.assert_array_equal(q.logits[0], p.logits[3])
    with pytest.raises(KeyError, match="no prediction"):
        p.align(["v_9"])
    with pytest.raises(ValueError, match="duplicate"):
        SplitPredictions(np.array(["a", "a"]), np.zeros((2, 2)), np.zeros((2, 2)), np.zeros(2))


def test_imigue_submission_is_a_zipped_two_column_csv(tmp_path):
    p = _preds(k=32)
    path = write_submission(tmp_path, "test", p, "imigue")
    with zipfile.ZipFile(path) as z:
        assert z.namelist() == ["Submission.csv"]
        rows = list(csv.reader(z.read("Submission.csv").decode().splitlines()))
    assert rows == [
        [s, str(int(np.argmax(pr)))] for s, pr in zip(p.sample_id, p.probs, strict=True)
    ]


def test_ma52_submission_top5_actions_and_body_parts(tmp_path):
    p = _preds(n=5, k=52, seed=3)
    write_submission(tmp_path, "test", p, "ma52")
    rows = list(csv.DictReader(open(tmp_path / "submission_test" / "prediction.csv")))
    for row, probs in zip(rows, p.probs, strict=True):
        top5 = [int(row[f"action_pred_{i}"]) for i in range(1, 6)]
        assert top5 == np.argsort(-probs)[:5].tolist()
        # Body-part scores: the summed probabilities of each part's actions.
        part = np.zeros(len(MA52.groups))
        for c, q in enumerate(probs):
            part[ma52_fine_to_coarse(c)] += q
        assert int(row["body_pred_1"]) == int(np.argmax(part))
    top1 = list(csv.DictReader(open(tmp_path / "submission_test" / "prediction_top1.csv")))
    assert int(top1[0]["pred_label_2"]) == int(np.argmax(p.probs[0]))
    assert int(top1[0]["pred_label_1"]) == ma52_fine_to_coarse(int(np.argmax(p.probs[0])))


def test_mgr_predict_writes_a_prediction_set(synth_imigue, tmp_path, monkeypatch):
    from pathlib import Path

    monkeypatch.setattr("sys.argv", ["mgr"])
    monkeypatch.chdir(tmp_path)  # LightningCLI saves config.yaml in the run's folder
    conf = Path(__file__).parent / "conf" / "stcnn_imigue.yaml"
    out = tmp_path / "preds"
    for split in ("val", "test"):
        MgrCLI(
            args=[
                "predict",
                "--config",
                str(conf),
                "--data.init_args.root",
                str(synth_imigue),
                "--data.init_args.predict_split",
                split,
                "--prediction_writer.out_dir",
                str(out),
            ]
        )
    pset = load_predictions(out)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["dataset"] == "imigue" and meta["producer"]["class"] == "STCNN"
    assert len(pset.class_names) == 32
    val_ids = sorted(pset["val"].sample_id.tolist())
    val_dir = synth_imigue / "imigue_skeleton_validate"
    expected = sorted(
        f"{d.name}_{k}"
        for d in val_dir.iterdir()
        for k in range(len((d / f"{d.name}_label.csv").read_text().splitlines()))
    )
    assert val_ids == expected
    np.testing.assert_allclose(pset["test"].probs.sum(1), 1.0, rtol=1e-5)
    assert (out / "submission_test" / "Submission.zip").is_file()


def test_shards_of_several_processes_merge_into_the_one_process_order():
    from mgr.predictions import _merge_shards

    ref = _preds(n=7, k=3)

    def shard(rows):
        return {
            "sample_id": ref.sample_id[rows],
            "logits": ref.logits[rows],
            "probs": ref.probs[rows],
            "label": ref.label[rows],
            "index": np.array(rows, dtype=np.int64),
        }

    # Batches of 3 dealt to 2 processes (rank 0: 0-2 and 6, rank 1: 3-5), one sample twice.
    merged = _merge_shards([shard([0, 1, 2, 6]), shard([3, 4, 5, 6])])
    np.testing.assert_array_equal(merged["sample_id"], ref.sample_id)
    np.testing.assert_array_equal(merged["logits"], ref.logits)
    np.testing.assert_array_equal(merged["label"], ref.label)
    # Without dataset indices: one process keeps its order, several are sorted by id.
    unknown = {**shard([5, 0, 3]), "index": np.full(3, -1)}
    assert _merge_shards([unknown])["sample_id"].tolist() == ["v_5", "v_0", "v_3"]
    other = {**shard([1]), "index": np.full(1, -1)}
    assert _merge_shards([unknown, other])["sample_id"].tolist() == ["v_0", "v_1", "v_3", "v_5"]


def _dies_mid_write(f, **arrays):
    """np.savez that is killed after the zip's first bytes."""
    f.write(b"PK\x03\x04 half an npz")
    raise OSError("killed mid-write")


def test_killed_save_leaves_the_split_absent_then_a_rerun_writes_it(tmp_path, monkeypatch):
    names = ["a", "b", "c", "d"]
    old, new = _preds(seed=1), _preds(seed=5)
    save_predictions(tmp_path, "val", old, names)
    save_predictions(tmp_path, "test", _preds(seed=2), names)
    old_bytes = (tmp_path / "val.npz").read_bytes()
    with monkeypatch.context() as m:
        m.setattr(np, "savez", _dies_mid_write)
        with pytest.raises(OSError, match="mid-write"):
            save_predictions(tmp_path, "val", new, names)
    # The file is the old complete one, and meta.json no longer lists it: a reader
    # (mgr fuse, pseudo-label) sees no 'val' split rather than a stale or broken one.
    assert (tmp_path / "val.npz").read_bytes() == old_bytes
    pset = load_predictions(tmp_path)
    assert set(pset.splits) == {"test"}
    with pytest.raises(KeyError, match="predict_split val"):
        pset["val"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    save_predictions(tmp_path, "val", new, names)  # the rerun
    np.testing.assert_array_equal(load_predictions(tmp_path)["val"].logits, new.logits)


def test_killed_first_save_leaves_no_prediction_set(tmp_path, monkeypatch):
    monkeypatch.setattr(np, "savez", _dies_mid_write)
    with pytest.raises(OSError, match="mid-write"):
        save_predictions(tmp_path / "m", "val", _preds(), ["a", "b", "c", "d"])
    assert not (tmp_path / "m" / "val.npz").exists()
    with pytest.raises(FileNotFoundError, match="not a prediction set"):
        load_predictions(tmp_path / "m")


def test_killed_submission_leaves_no_stale_zip(tmp_path, monkeypatch):
    old, new = _preds(k=32, seed=1), _preds(k=32, seed=2)
    write_submission(tmp_path, "test", old, "imigue")
    out = tmp_path / "submission_test"

    def dies(self, name, data, *args, **kwargs):
        raise OSError("killed mid-write")

    with monkeypatch.context() as m:
        m.setattr(zipfile.ZipFile, "writestr", dies)
        with pytest.raises(OSError, match="mid-write"):
            write_submission(tmp_path, "test", new, "imigue")
    # The old Submission.zip (of other predictions) is gone, the new csv is whole.
    assert sorted(p.name for p in out.iterdir()) == ["Submission.csv"]
    rows = list(csv.reader((out / "Submission.csv").read_text().splitlines()))
    assert rows == [
        [s, str(int(np.argmax(q)))] for s, q in zip(new.sample_id, new.probs, strict=True)
    ]
    write_submission(tmp_path, "test", new, "imigue")  # the rerun
    with zipfile.ZipFile(out / "Submission.zip") as z:
        assert z.read("Submission.csv") == (out / "Submission.csv").read_bytes()
