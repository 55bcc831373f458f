"""MA52DataModule on a tiny SynthMG MA-52 release (video only, fine + coarse labels)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mgr.classes import ma52_fine_to_coarse
from mgr.data.datasets import VideoOptions
from mgr.datamodules import MA52DataModule
from mgr.datamodules.base import collate

SMALL = VideoOptions(size=24)


def list_labels(root: Path, split: str) -> dict[str, int]:
    """Sample id -> label, parsed from the raw CRLF list file."""
    raw = (root / f"{split}_list_videos.txt").read_bytes().decode()
    lines = [line for line in raw.split("\r\n") if line]
    assert all("\n" not in line for line in lines)  # CRLF endings, as released
    out = {}
    for line in lines:
        name, label = line.split(" ")
        out[name.removesuffix(".mp4")] = int(label)
    return out


@pytest.fixture(scope="module")
def dm(synth_ma52: Path) -> MA52DataModule:
    dm = MA52DataModule(
        synth_ma52, video=SMALL, clip_len=6, batch_size=4, test_clips=2, test_flip=True
    )
    dm.setup("fit")
    dm.setup("test")
    return dm


def test_contract(dm: MA52DataModule) -> None:
    assert dm.modalities == ("video",)
    assert dm.supplies == ("video", "label", "coarse_label", "sample_id")
    assert dm.num_classes == 52 and dm.num_joints == 0 and dm.layout is None


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_batches_match_the_list_files(dm: MA52DataModule, synth_ma52: Path, split: str) -> None:
    truth = list_labels(synth_ma52, split)
    loader = {"train": dm.train_dataloader, "val": dm.val_dataloader}.get(
        split, dm.test_dataloader
    )()
    views = () if split == "train" else (4,)
    seen = []
    torch.manual_seed(0)
    for batch in loader:
        assert batch["video"].dtype == torch.uint8  # finished on the device
        batch = dm.on_after_batch_transfer(batch, 0)
        assert set(batch) == set(dm.supplies)
        b = len(batch["sample_id"])
        assert batch["video"].shape == (b, *views, 3, 6, 24, 24)
        assert batch["video"].dtype == torch.float32 and torch.isfinite(batch["video"]).all()
        for key in ("label", "coarse_label"):
            assert batch[key].dtype == torch.int64 and batch[key].shape == (b,)
        labels = batch["label"].tolist()
        assert labels == [truth[s] for s in batch["sample_id"]]
        assert batch["coarse_label"].tolist() == [ma52_fine_to_coarse(c) for c in labels]
        seen += batch["sample_id"]
    assert sorted(seen) == sorted(truth)  # every listed clip, once


def test_records(dm: MA52DataModule, synth_ma52: Path) -> None:
    for split in ("train", "val", "test"):
        for rec in dm.records[split]:
            assert rec.keypoint is None
            assert Path(rec.video) == (synth_ma52 / f"videos_{split}" / f"{rec.sample_id}.mp4")
            assert Path(rec.video).is_file()
            assert rec.coarse_label == ma52_fine_to_coarse(rec.label)
    # Train and val share their participants (MA-52 is not cross-subject); test is anonymous.
    train_subjects = {r.subject for r in dm.records["train"]}
    assert {r.subject for r in dm.records["val"]} <= train_subjects
    assert all(r.sample_id.startswith("test") for r in dm.records["test"])


def test_test_views_mirror(dm: MA52DataModule) -> None:
    item = collate([dm.datasets["test"][0]])
    video = dm.on_after_batch_transfer(item, 0)["video"][0]  # (4, C, T, H, W): 2 clips, mirrors
    torch.testing.assert_close(video[2], video[0].flip(-1))
    torch.testing.assert_close(video[3], video[1].flip(-1))


def test_flip_in_training(synth_ma52: Path) -> None:
    items = []
    for p in (0.0, 1.0):
        dm = MA52DataModule(
            synth_ma52,
            video=VideoOptions(size=24, train_scale=(1.0, 1.0)),
            clip_len=4,
            flip_prob=p,
        )
        dm.setup("fit")
        torch.manual_seed(5)
        item = collate([dm.datasets["train"][0]])
        items.append(dm.on_after_batch_transfer(item, 0)["video"][0])
    torch.testing.assert_close(items[1], items[0].flip(-1))


def test_bad_options(synth_ma52: Path) -> None:
    with pytest.raises(ValueError, match="video"):
        MA52DataModule(synth_ma52, modalities=["skeleton"])
    with pytest.raises(ValueError, match="video"):
        MA52DataModule(synth_ma52, modalities=["video", "pose"])
    with pytest.raises(ValueError, match="saliency"):
        MA52DataModule(synth_ma52, video=VideoOptions(crop="saliency"))
    with pytest.raises(ValueError, match="keypoints"):
        MA52DataModule(synth_ma52, keypoints="imigue_miga_22")
    dm = MA52DataModule(synth_ma52)  # modalities default to the video
    assert dm.modalities == ("video",) and dm.video is not None


def test_flow_root_replaces_the_rgb_clips(synth_ma52: Path, tmp_path: Path) -> None:
    # An external tool's flow, one .npy per clip named like the RGB clip, under video.root.
    code = {}
    for i, mp4 in enumerate(sorted(synth_ma52.rglob("*.mp4"))):
        code[mp4.stem] = float(i)
        folder = tmp_path / "flow" / mp4.parent.name
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / f"{mp4.stem}.npy", np.full((7, 6, 8, 2), i, np.float32))
    opts = VideoOptions(root=str(tmp_path / "flow"), modality="flow", size=4)
    dm = MA52DataModule(synth_ma52, video=opts, clip_len=3)
    dm.setup("validate")
    for i, rec in enumerate(dm.records["val"]):
        assert Path(rec.video).suffix == ".npy"
        video = dm.datasets["val"][i]["video"]
        assert video.shape == (2, 3, 4, 4)
        torch.testing.assert_close(video, torch.full_like(video, code[rec.sample_id]))
