import json
import pickle
import shutil

import numpy as np
import pytest
import torch

from mgr.data.readers.common import DataFormatError
from mgr.data.transforms.pose import uniform_sample_indices
from mgr.datamodules import IMiGUEDataModule
from mgr.skeletons import IMIGUE_LIGHT_HAND_35, IMIGUE_MIGA_22


def test_batches_follow_the_contract(synth_imigue):
    dm = IMiGUEDataModule(synth_imigue, clip_len=12, batch_size=5)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["skeleton"].shape == (5, 3, 12, 22, 1)
    assert batch["skeleton"].dtype == torch.float32
    assert batch["label"].dtype == torch.int64 and batch["label"].shape == (5,)
    assert len(batch["sample_id"]) == 5 and all("_" in s for s in batch["sample_id"])
    assert (dm.num_classes, dm.num_channels, dm.num_joints) == (32, 3, 22)
    assert dm.class_names[31] == "Illustrative body language"


def test_histogram_and_counts_match_the_release(synth_imigue):
    meta = json.loads((synth_imigue / "synthmg.json").read_text())
    dm = IMiGUEDataModule(synth_imigue)
    for split in ("train", "val", "test"):
        assert dm.class_histogram(split).tolist() == meta["class_counts"][split]
        assert dm.num_samples(split) == sum(meta["class_counts"][split])


def test_keypoint_subset_picks_the_miga_joints(synth_imigue):
    dm = IMiGUEDataModule(synth_imigue, clip_len=6, normalize=False)
    dm.setup("validate")
    rec = dm.records["val"][0]
    item = dm.datasets["val"][0]["skeleton"]  # (C, T, V, 1)
    idx = uniform_sample_indices(rec.num_frames, 6, test_mode=True)
    want = rec.keypoint[idx][:, list(IMIGUE_MIGA_22.parent_indices)]
    np.testing.assert_allclose(item[..., 0].permute(1, 2, 0).numpy(), want)
    # The MiGA 22: nose, neck, shoulders/elbows/wrists, eyes, ears, 5 + 5 finger points.
    names = [IMIGUE_LIGHT_HAND_35.joints[i] for i in IMIGUE_MIGA_22.parent_indices]
    assert names == list(IMIGUE_MIGA_22.joints)
    all35 = IMiGUEDataModule(synth_imigue, keypoints="imigue_light_hand_35")
    assert all35.num_joints == 35


def test_flip_mirrors_x_and_swaps_left_and_right(synth_imigue):
    items = []
    for p in (0.0, 1.0):
        dm = IMiGUEDataModule(synth_imigue, clip_len=8, flip_prob=p)
        dm.setup("fit")
        torch.manual_seed(3)
        items.append(dm.datasets["train"][4]["skeleton"])
    plain, flipped = items
    lay = IMIGUE_MIGA_22
    rw, lw = lay.index("RWrist"), lay.index("LWrist")
    torch.testing.assert_close(flipped[0, :, rw], -plain[0, :, lw])
    torch.testing.assert_close(flipped[1:, :, rw], plain[1:, :, lw])
    nose = lay.index("Nose")
    torch.testing.assert_close(flipped[0, :, nose], -plain[0, :, nose])


def test_test_time_views(synth_imigue):
    dm = IMiGUEDataModule(synth_imigue, clip_len=8, batch_size=3, test_clips=2, test_flip=True)
    dm.setup("test")
    batch = next(iter(dm.test_dataloader()))
    assert batch["skeleton"].shape == (3, 4, 3, 8, 22, 1)


def test_centre_normalisation(synth_imigue):
    dm = IMiGUEDataModule(synth_imigue, clip_len=8, center_mode="frame", scale="none")
    dm.setup("validate")
    x = dm.datasets["val"][0]["skeleton"]
    neck = IMIGUE_MIGA_22.index("Neck")
    detected = x[2, :, neck, 0] > 0
    assert torch.all(x[:2, detected, neck, 0] == 0)


def test_miga_split_scheme_uses_the_video_lists(synth_imigue, tmp_path):
    # Rename three synthetic videos to ids of the MiGA'23 train / val / test lists.
    src = sorted((synth_imigue / "imigue_skeleton_train").iterdir())[0]
    for vid, folder in (
        ("0012", "imigue_skeleton_train"),
        ("0001", "imigue_skeleton_train"),
        ("0054", "imigue_skeleton_test"),
    ):
        dst = tmp_path / folder / vid
        dst.mkdir(parents=True)
        for f in src.iterdir():
            shutil.copy(f, dst / f.name.replace(src.name, vid))
    dm = IMiGUEDataModule(tmp_path, split_scheme="miga")
    with pytest.warns(UserWarning, match="MiGA train videos are missing"):
        assert {r.video_id for r in dm._get_records("train")} == {"0012"}
    with pytest.warns(UserWarning):
        assert {r.video_id for r in dm._get_records("val")} == {"0001"}
    with pytest.warns(UserWarning):
        assert {r.video_id for r in dm._get_records("test")} == {"0054"}


def test_bad_releases_are_clear_errors(synth_imigue, tmp_path):
    with pytest.raises(FileNotFoundError, match="imigue_skeleton_train"):
        IMiGUEDataModule(tmp_path).setup("fit")
    shutil.copytree(synth_imigue, tmp_path / "r")
    label = sorted((tmp_path / "r" / "imigue_skeleton_train").glob("*/*_label.csv"))[0]
    label.write_text(label.read_text() + "57,0,3\n")
    with pytest.raises(DataFormatError, match=rf"{label.name}.*57"):
        IMiGUEDataModule(tmp_path / "r").setup("fit")
    with pytest.raises(ValueError, match="not a subset"):
        IMiGUEDataModule(synth_imigue, keypoints="kinect_v2_25")
    with pytest.raises(ValueError, match="center_mode"):
        IMiGUEDataModule(synth_imigue, center_mode="hips")


def test_imigue_datamodule_reads_miga23_arrays(tmp_path):
    # The processed-array release (datasets.md §2.4), written by hand: (N, 3, 90, 22, 1).
    rng = np.random.default_rng(0)
    data = np.zeros((3, 3, 90, 22, 1), np.float32)
    lengths = [90, 40, 17]
    for i, t in enumerate(lengths):
        data[i, :, :t] = rng.uniform(1, 100, (3, t, 22, 1))
    np.save(tmp_path / "train_data.npy", data)
    with open(tmp_path / "train_label.pkl", "wb") as f:
        pickle.dump((["0012_0", "0012_1", "0013_0"], [3, 31, 0]), f)
    dm = IMiGUEDataModule(tmp_path, source="miga23_arrays", clip_len=8)
    recs = dm.load_records("train")
    assert [r.label for r in recs] == [3, 31, 0]
    assert [r.num_frames for r in recs] == lengths
    np.testing.assert_array_equal(recs[1].keypoint, data[1, :, :40, :, 0].transpose(1, 2, 0))
    assert dm.num_joints == 22
    with pytest.raises(ValueError, match="split_scheme='folders'"):
        IMiGUEDataModule(tmp_path, source="miga23_arrays", split_scheme="miga")
