import pytest
import torch

from mgr.datamodules import SMGDataModule

SUBJECTS = {"train_subjects": [1, 2], "val_subjects": [3], "test_subjects": [4]}


def test_world_and_pixel_channels(synth_smg):
    dm = SMGDataModule(synth_smg, clip_len=10, batch_size=4, **SUBJECTS)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["skeleton"].shape == (4, 3, 10, 25, 1)
    assert (dm.num_classes, dm.num_channels, dm.num_joints) == (17, 3, 25)
    px = SMGDataModule(synth_smg, coords="pixel", clip_len=10, batch_size=4, **SUBJECTS)
    px.setup("fit")
    assert next(iter(px.train_dataloader()))["skeleton"].shape == (4, 2, 10, 25, 1)


def test_splits_are_by_subject(synth_smg):
    dm = SMGDataModule(synth_smg, **SUBJECTS)
    for split, subjects in (("train", {1, 2}), ("val", {3}), ("test", {4})):
        assert {r.subject for r in dm._get_records(split)} == subjects
        assert all(r.sample_id.startswith("Sample000") for r in dm._get_records(split))


def test_presets_and_errors(synth_smg):
    dm = SMGDataModule(synth_smg)
    assert dm.subjects["train"] == list(range(1, 31)) and dm.subjects["test"] == [
        36,
        37,
        38,
        39,
        40,
    ]
    off = SMGDataModule(synth_smg, split="official")
    assert (
        off.subjects["train"] == list(range(1, 36)) and off.subjects["val"] == off.subjects["test"]
    )
    with pytest.raises(ValueError, match="both train and test"):
        SMGDataModule(synth_smg, train_subjects=[1, 4], test_subjects=[4])
    with pytest.raises(FileNotFoundError, match="5"):
        SMGDataModule(synth_smg, train_subjects=[1, 5], val_subjects=[3], test_subjects=[4]).setup(
            "fit"
        )


def test_histogram(synth_smg):
    dm = SMGDataModule(synth_smg, **SUBJECTS)
    hist = dm.class_histogram("train")
    assert hist.shape == (17,) and int(hist.sum()) == dm.num_samples("train")
    labels = torch.tensor([r.label for r in dm.records["train"]])
    assert torch.equal(hist, torch.bincount(labels, minlength=17))
