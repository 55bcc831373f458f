"""F1Mean against scikit-learn's f1_score, the reference of the MA-52 challenge code."""

import os
import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from sklearn.metrics import f1_score

from mgr.classes import ma52_fine_to_coarse
from mgr.metrics import F1Mean, f1_from_confusion


def _reference(probs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """The MAC baseline's lv_evaluation written plainly with sklearn, plus the body top-1."""
    pred = probs.argmax(1)
    coarse_pred = [ma52_fine_to_coarse(p) for p in pred]
    coarse_true = [ma52_fine_to_coarse(y) for y in labels]
    parts = {
        "fine_micro_f1": f1_score(labels, pred, average="micro"),
        "fine_macro_f1": f1_score(labels, pred, average="macro"),
        "coarse_micro_f1": f1_score(coarse_true, coarse_pred, average="micro"),
        "coarse_macro_f1": f1_score(coarse_true, coarse_pred, average="macro"),
    }
    body_scores = np.zeros((len(probs), 7))
    for c in range(52):
        body_scores[:, ma52_fine_to_coarse(c)] += probs[:, c]
    body_top1 = float(np.mean(body_scores.argmax(1) == np.array(coarse_true)))
    return {"f1_mean": sum(parts.values()) / 4, **parts, "body_top1": body_top1}


def _random_predictions(seed: int, n: int, absent: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Softmax scores and labels; the first ``absent`` classes never occur as labels."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(absent, 52, n)
    logits = rng.normal(size=(n, 52))
    logits[np.arange(n), labels] += rng.uniform(0, 4, n)  # better than chance, not perfect
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return probs.astype(np.float32), labels


@pytest.mark.parametrize(("seed", "n", "absent"), [(0, 300, 0), (1, 40, 0), (2, 25, 20), (3, 7, 0)])
def test_f1_mean_equals_sklearn_on_random_predictions(seed, n, absent):
    probs, labels = _random_predictions(seed, n, absent)
    metric = F1Mean()
    for chunk in np.array_split(np.arange(n), 3):  # several batches, some classes absent per batch
        metric.update(torch.from_numpy(probs[chunk]), torch.from_numpy(labels[chunk]))
    got = {k: float(v) for k, v in metric.compute().items()}
    expected = _reference(probs, labels)
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-6), key


def test_a_class_only_predicted_counts_and_a_class_never_seen_does_not():
    # labels {0, 1}; predictions {0, 2}: class 2 (predicted only) has F1 0 and counts,
    # the other 49 classes occur nowhere and are left out of the macro average.
    cm = torch.zeros(52, 52, dtype=torch.long)
    cm[0, 0], cm[1, 2] = 3, 1
    micro, macro = f1_from_confusion(cm)
    assert float(micro) == pytest.approx(3 / 4)
    assert float(macro) == pytest.approx(1 / 3)  # (1 + 0 + 0) / 3 classes


@pytest.mark.filterwarnings("ignore:.*was called before the ``update``")
def test_empty_metric_is_zero_not_nan():
    out = F1Mean().compute()
    assert all(float(v) == 0.0 for v in out.values())


def test_bad_inputs_are_clear_errors():
    metric = F1Mean()
    with pytest.raises(ValueError, match=r"scores \(N, 52\)"):
        metric.update(torch.rand(4, 10), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="class ids"):
        metric.update(torch.rand(2, 52), torch.tensor([0, 52]))
    with pytest.raises(ValueError, match="group id"):
        F1Mean(group_of=[0, -1, 1])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_compute(rank: int, world: int, port: int, probs, labels, out) -> None:
    torch.set_num_threads(1)  # a forked child must not enter the parent's OpenMP pool
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        metric = F1Mean()
        shard = np.arange(rank, len(labels), world)  # uneven shards: 25 samples on 2 ranks
        metric.update(torch.from_numpy(probs[shard]), torch.from_numpy(labels[shard]))
        out[rank] = {k: float(v) for k, v in metric.compute().items()}
    finally:
        dist.destroy_process_group()


def test_f1_mean_synchronises_across_two_gloo_processes():
    probs, labels = _random_predictions(5, 25, absent=10)
    out = mp.get_context("fork").Manager().dict()
    # fork: the children need no fresh imports (spawn costs ~10 s per child here).
    mp.start_processes(
        _rank_compute, args=(2, _free_port(), probs, labels, out), nprocs=2, start_method="fork"
    )
    expected = _reference(probs, labels)
    for rank in (0, 1):
        for key, value in expected.items():
            assert out[rank][key] == pytest.approx(value, abs=1e-6), (rank, key)
