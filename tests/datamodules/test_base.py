"""The evaluation loaders of MicroGestureDataModule under several processes."""

from types import SimpleNamespace

import pytest
from torch.utils.data import SequentialSampler

from mgr.data.samplers import EvalShardSampler
from mgr.datamodules import IMiGUEDataModule
from mgr.errors import UserError


def _attach(dm, kwargs):
    dm.trainer = SimpleNamespace(distributed_sampler_kwargs=kwargs)


def test_eval_loaders_shard_exactly_under_ddp(synth_imigue):
    dm = IMiGUEDataModule(synth_imigue, clip_len=8, batch_size=3, test_clips=2, test_flip=True)
    dm.setup("test")
    n = len(dm.datasets["test"])
    assert isinstance(dm.test_dataloader().sampler, SequentialSampler)  # one process
    _attach(dm, {"num_replicas": 1, "rank": 0})  # DDP on one device: the plain order
    assert isinstance(dm.test_dataloader().sampler, SequentialSampler)
    seen = []
    for rank in range(2):
        _attach(dm, {"num_replicas": 2, "rank": rank})
        loader = dm.test_dataloader()
        assert isinstance(loader.sampler, EvalShardSampler)
        for batch in loader:  # views stay with their sample: (B, N=2 clips x 2 flips, ...)
            assert batch["skeleton"].shape[1] == 4
            seen += batch["sample_id"]
    assert sorted(seen) == sorted(r.sample_id for r in dm.datasets["test"].records)
    assert len(seen) == n
    # Training is Lightning's to shard (its DistributedSampler pads, as training may).
    dm.setup("fit")
    assert not isinstance(dm.train_dataloader().sampler, EvalShardSampler)
    _attach(dm, {"num_replicas": n + 1, "rank": 0})
    with pytest.raises(UserError, match=rf"split 'test': {n} samples .* at most {n} processes"):
        dm.test_dataloader()
