"""mgr.data.seeding and ShuffleSampler: draws are functions of (seed, epoch, position)."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from mgr.data.samplers import ShuffleSampler, SqrtBalancedSampler
from mgr.data.seeding import (
    DistributedSeededSampler,
    SeededDataset,
    SeededSampler,
    derive_seed,
    loader_generator,
)


class _Draws(Dataset):
    """Item ``i``: its index and one draw of each global RNG."""

    def __len__(self) -> int:
        return 10

    def __getitem__(self, i: int) -> tuple[int, float, float, float]:
        return i, torch.rand(()).item(), float(np.random.rand()), random.random()  # noqa: NPY002


def test_derive_seed_separates_nearby_keys() -> None:
    seeds = {derive_seed(s, e) for s in range(20) for e in range(20)}
    assert len(seeds) == 400 and all(0 <= s < 2**63 for s in seeds)
    assert derive_seed(3, 4) == derive_seed(3, 4) != derive_seed(4, 3)


def test_shuffle_sampler_is_a_permutation_chosen_by_seed_and_epoch() -> None:
    indices = [0, 0, 1, 2, 2, 2, 5]
    s = ShuffleSampler(indices, seed=7)
    draws = {}
    for epoch in range(3):
        s.set_epoch(epoch)
        draws[epoch] = list(s)
        assert sorted(draws[epoch]) == indices
    s.set_epoch(1)
    assert list(s) == draws[1]
    assert draws[0] != draws[1]
    torch.manual_seed(0)  # the global RNG plays no part
    s.set_epoch(2)
    assert list(s) == draws[2]


def test_seeded_sampler_pairs_and_epochs() -> None:
    base = SqrtBalancedSampler([0, 0, 0, 1, 2, 2], 3, seed=1)
    s = SeededSampler(base, seed=5, epoch=3)
    first = list(s)
    base.set_epoch(3)
    assert [i for i, _ in first] == list(base)  # the wrapped sampler's draw, epoch forwarded
    assert len({seed for _, seed in first}) == len(first)  # one seed per position
    s.set_epoch(3)
    assert list(s) == first
    s.set_epoch(4)
    fourth = list(s)
    assert fourth != first
    # A loop that never calls set_epoch still gets a new draw per iteration.
    assert list(s) != fourth and s.epoch == 5


def test_seeded_dataset_items_depend_on_their_seed_only() -> None:
    data = SeededDataset(_Draws())
    torch.manual_seed(1)
    np.random.seed(1)  # noqa: NPY002
    a = data[(3, 99)]
    torch.manual_seed(2)
    b = data[(3, 99)]
    assert a == b and data[(3, 98)] != a
    # The caller's streams are left where they were.
    torch.manual_seed(4)
    before = torch.rand(2)
    torch.manual_seed(4)
    data[(1, 5)]
    torch.testing.assert_close(torch.rand(2), before, rtol=0, atol=0)
    assert data[2][0] == 2 and len(data) == 10  # plain indices load as the dataset does


def test_items_do_not_depend_on_num_workers() -> None:
    def items(workers: int) -> list:
        sampler = SeededSampler(ShuffleSampler(range(10), seed=3), seed=3, epoch=2)
        loader = DataLoader(
            SeededDataset(_Draws()), batch_size=3, sampler=sampler, num_workers=workers,
            generator=loader_generator(3), collate_fn=lambda b: b,
        )  # fmt: skip
        return [item for batch in loader for item in batch]

    assert items(0) == items(2)


@pytest.mark.parametrize("world", [2, 3, 4])
def test_distributed_shards_cover_the_single_process_draw(world: int) -> None:
    def seeded() -> SeededSampler:
        return SeededSampler(ShuffleSampler(range(10), seed=1), seed=1, epoch=4)

    whole = list(seeded())
    shards = [list(DistributedSeededSampler(seeded(), world, r)) for r in range(world)]
    assert len({len(s) for s in shards}) == 1 and len(shards[0]) == -(-10 // world)
    # Interleaved back, the shards are the single-process draw, padded by wrapping around.
    merged = [shards[r][k] for k in range(len(shards[0])) for r in range(world)]
    assert merged[:10] == whole and merged[10:] == whole[: len(merged) - 10]
    sampler = DistributedSeededSampler(seeded(), world, 0)
    assert isinstance(sampler, DistributedSampler)  # Lightning does not wrap it again
    sampler.set_epoch(5)
    assert sampler.epoch == 5 and list(sampler) != shards[0]
    with pytest.raises(ValueError, match="rank"):
        DistributedSeededSampler(seeded(), world, world)
