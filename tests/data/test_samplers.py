from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mgr.data.samplers import (
    EvalShardSampler,
    SqrtBalancedSampler,
    class_balanced_weights,
    repeat_indices,
    repetition_factors,
)

# Class sizes 1, 3, 16, 0, 80 (class 3 empty).
LABELS = np.array([0] + [1] * 3 + [2] * 16 + [4] * 80)
COUNTS = {0: 1, 1: 3, 2: 16, 3: 0, 4: 80}


def test_class_balanced_weights_closed_form() -> None:
    shuffled = np.random.default_rng(0).permutation(LABELS)
    weights = class_balanced_weights(shuffled, 5)
    expected = [1.0 / math.sqrt(COUNTS[int(c)] + 1) for c in shuffled]
    np.testing.assert_allclose(weights, expected, rtol=1e-12)
    powered = class_balanced_weights(shuffled.tolist(), 5, power=1.0)
    np.testing.assert_allclose(powered, [1.0 / (COUNTS[int(c)] + 1) for c in shuffled])
    np.testing.assert_array_equal(class_balanced_weights(shuffled, 5, power=0.0), 1.0)


@pytest.mark.parametrize(
    ("labels", "num_classes", "match"),
    [
        ([0, 5], 5, "outside 0..4"),
        ([-1], 3, "outside"),
        ([0.5, 1.0], 3, "integers"),
        ([[0, 1]], 3, "1-D"),
    ],
)
def test_class_balanced_weights_rejects_bad_labels(labels, num_classes, match) -> None:
    with pytest.raises(ValueError, match=match):
        class_balanced_weights(labels, num_classes)


def test_sampler_frequencies_match_weights() -> None:
    num_draws = 20_000
    sampler = SqrtBalancedSampler(LABELS, 5, num_samples=num_draws, seed=3)
    drawn = np.fromiter(iter(sampler), dtype=np.int64)
    assert len(sampler) == num_draws == len(drawn)
    assert drawn.min() >= 0 and drawn.max() < len(LABELS)
    # Expected class probabilities from the closed form: N_c / sqrt(N_c + 1), normalised.
    mass = {c: n / math.sqrt(n + 1) for c, n in COUNTS.items()}
    total = sum(mass.values())
    observed = np.bincount(LABELS[drawn], minlength=5) / num_draws
    for c in range(5):
        assert abs(observed[c] - mass[c] / total) < 0.02, (c, observed[c], mass[c] / total)
    assert observed[3] == 0.0
    # Within a class the draws are uniform: the single class-0 sample gets all class-0 draws.
    assert (drawn[LABELS[drawn] == 0] == 0).all()


def test_sampler_seed_and_epochs() -> None:
    def draw(seed: int, epoch: int) -> list[int]:
        sampler = SqrtBalancedSampler(LABELS, 5, seed=seed)
        sampler.set_epoch(epoch)
        return list(sampler)

    first = draw(1, 0)
    assert len(first) == len(LABELS)  # default num_samples = N
    assert first == draw(1, 0)
    assert first != draw(1, 1)
    assert first != draw(2, 0)
    sampler = SqrtBalancedSampler(LABELS, 5, seed=1)
    assert list(sampler) == list(sampler) == first  # no hidden state between iterations


def test_sampler_in_dataloader() -> None:
    dataset = torch.utils.data.TensorDataset(torch.as_tensor(LABELS))
    sampler = SqrtBalancedSampler(LABELS, 5, num_samples=12)
    loader = torch.utils.data.DataLoader(dataset, batch_size=4, sampler=sampler)
    batches = [batch[0] for batch in loader]
    assert [len(b) for b in batches] == [4, 4, 4]


def test_sampler_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="empty"):
        SqrtBalancedSampler([], 3)
    with pytest.raises(ValueError, match="num_samples"):
        SqrtBalancedSampler([0, 1], 3, num_samples=0)


def reference_factor(z: int, alpha: float) -> int:
    """Eq. (1) written straight from the paper."""
    if z == 0 or z >= alpha:
        return 1
    return math.ceil(math.log2(alpha / z)) + 1


def test_repetition_factors_eq1() -> None:
    # alpha = 8: Z=1 -> ceil(3)+1 = 4; Z=3 -> ceil(1.415)+1 = 3; Z=16 -> 1; Z=0 -> 1; Z=80 -> 1.
    factors = repetition_factors(LABELS, 5, alpha=8)
    assert factors.tolist() == [4, 3, 1, 1, 1]
    assert factors.dtype == np.int64
    # alpha=20: Z=1 -> ceil(log2 20)=5 -> 6; Z=3 -> ceil(2.74)=3 -> 4; Z=16 -> ceil(0.32)=1 -> 2.
    assert repetition_factors(LABELS, 5, alpha=20).tolist() == [6, 4, 2, 1, 1]
    # alpha=48 (alpha / Z an exact power of two for Z=3, where float rounding could bite):
    # Z=1 -> ceil(5.58)=6 -> 7; Z=3 -> log2(16)=4 -> 5; Z=16 -> ceil(log2 3)=2 -> 3; Z=80 -> 1.
    assert repetition_factors(LABELS, 5, alpha=48).tolist() == [7, 5, 3, 1, 1]
    for alpha in (2, 3.5, 17, 100, 1000):
        got = repetition_factors(LABELS, 5, alpha=alpha).tolist()
        assert got == [reference_factor(COUNTS[c], alpha) for c in range(5)], alpha


def test_repetition_factors_rejects_bad_alpha() -> None:
    for alpha in (0, -1.0, math.inf, math.nan):
        with pytest.raises(ValueError, match="alpha"):
            repetition_factors([0, 1], 2, alpha=alpha)


def test_repeat_indices_counts_and_order() -> None:
    labels = np.array([2, 0, 1, 0, 2])
    out = repeat_indices(labels, np.array([3, 1, 2]))
    assert out.tolist() == [0, 0, 1, 1, 1, 2, 3, 3, 3, 4, 4]
    factors = repetition_factors(LABELS, 5, alpha=8)
    out = repeat_indices(LABELS, factors)
    assert len(out) == 1 * 4 + 3 * 3 + 16 + 80
    assert (np.diff(out) >= 0).all()
    np.testing.assert_array_equal(np.bincount(out, minlength=len(LABELS)), factors[LABELS])
    with pytest.raises(ValueError, match="non-negative"):
        repeat_indices(labels, [1, -1, 1])
    with pytest.raises(ValueError, match="outside"):
        repeat_indices(labels, [1, 1])


# ----------------------------------------------------------------------------- EvalShardSampler


@pytest.mark.parametrize("n", [1, 2, 5, 7, 9, 10, 23])
@pytest.mark.parametrize("batch_size", [1, 3, 4])
@pytest.mark.parametrize("world", [1, 2, 3])
def test_eval_shards_cover_every_index_once_in_one_process_batches(n, batch_size, world):
    data = list(range(n))
    if n < world:
        with pytest.raises(ValueError, match=f"at most {n} processes"):
            EvalShardSampler(data, batch_size, num_replicas=world, rank=0)
        return
    shards = [list(EvalShardSampler(data, batch_size, world, rank)) for rank in range(world)]
    assert sorted(i for s in shards for i in s) == data  # no repeats, nothing missing
    assert all(shards)  # every process has something to evaluate
    one_process = [data[i : i + batch_size] for i in range(0, n, batch_size)]
    if len(one_process) >= world:
        # A loader batching a shard sees the one-process batches j = rank, rank + world, ...
        for rank, shard in enumerate(shards):
            batches = [shard[i : i + batch_size] for i in range(0, len(shard), batch_size)]
            assert batches == one_process[rank::world]
    else:  # fewer batches than processes: single samples dealt out
        assert shards == [data[rank::world] for rank in range(world)]
    assert [len(EvalShardSampler(data, batch_size, world, r)) for r in range(world)] == [
        len(s) for s in shards
    ]


def test_eval_shard_sampler_is_kept_by_lightning():
    """Lightning puts its padding DistributedSampler in a loader unless it already has one."""
    from lightning.pytorch import Trainer
    from lightning.pytorch.trainer.states import RunningStage
    from torch.utils.data import DataLoader

    trainer = Trainer(strategy="ddp", devices=2, accelerator="cpu", logger=False)
    data = list(range(7))
    sampler = EvalShardSampler(data, 3, num_replicas=2, rank=1)
    ours = DataLoader(data, batch_size=3, sampler=sampler)
    plain = DataLoader(data, batch_size=3)
    connector = trainer._data_connector
    assert connector._requires_distributed_sampler(plain)
    assert not connector._requires_distributed_sampler(ours)
    kept = connector._prepare_dataloader(ours, shuffle=False, mode=RunningStage.TESTING)
    assert kept.sampler is sampler
    assert [b.tolist() for b in kept] == [[3, 4, 5]]
