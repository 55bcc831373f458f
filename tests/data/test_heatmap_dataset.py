import pytest
import torch

from mgr.data.datasets import HeatmapOptions
from mgr.data.transforms.posec3d import limb_flip_permutation
from mgr.datamodules import IMiGUEDataModule


def _dm(root, kind="joint", on_device=False, **kw):
    opts = HeatmapOptions(kind=kind, size=24, test_size=28, on_device=on_device)
    return IMiGUEDataModule(root, clip_len=6, batch_size=3, heatmap=opts, **kw)


def _batch(dm, split, seed=0):
    dm.setup({"train": "fit", "test": "test"}[split])
    torch.manual_seed(seed)
    loader = dm.train_dataloader() if split == "train" else dm.test_dataloader()
    return dm.on_after_batch_transfer(next(iter(loader)), 0)


def test_shapes_and_supplied_keys(synth_imigue):
    dm = _dm(synth_imigue, test_clips=2, test_flip=True)
    assert dm.supplies == ("heatmap", "label", "sample_id")
    train, test = _batch(dm, "train"), _batch(dm, "test")
    assert train["heatmap"].shape == (3, 22, 6, 24, 24)
    assert test["heatmap"].shape == (3, 4, 22, 6, 28, 28)  # 2 clips x (plain, flipped)
    assert 0 < float(train["heatmap"].max()) <= 1.0
    limb = _dm(synth_imigue, kind="limb")
    assert limb.num_heatmap_channels == len(limb.layout.limbs) == 21
    assert _batch(limb, "train")["heatmap"].shape == (3, 21, 6, 24, 24)


def test_rendering_on_the_device_gives_the_same_volumes(synth_imigue):
    for kind in ("joint", "limb"):
        for split in ("train", "test"):
            a = _batch(_dm(synth_imigue, kind, test_clips=2, test_flip=True, flip_prob=0.5), split)
            b = _batch(
                _dm(synth_imigue, kind, True, test_clips=2, test_flip=True, flip_prob=0.5), split
            )
            torch.testing.assert_close(a["heatmap"], b["heatmap"], atol=1e-5, rtol=0)


def test_flipped_test_views_are_mmaction2_double(synth_imigue):
    # mmaction2's `double`: reverse the pixels along W and swap left/right channels.
    for kind in ("joint", "limb"):
        dm = _dm(synth_imigue, kind, test_flip=True)
        views = _batch(dm, "test")["heatmap"]  # (B, 2, K, T, H, W)
        joint_perm = dm.layout.flip_permutation()
        perm = joint_perm if kind == "joint" else limb_flip_permutation(dm.layout.limbs, joint_perm)
        expected = views[:, 0].flip(-1)[:, perm]
        torch.testing.assert_close(views[:, 1], expected, atol=1e-5, rtol=0)


def test_compact_padding_sets_the_share_of_the_box_the_joints_span(synth_imigue):
    # PoseCompact: box = joint extent x (1 + padding), made square; at evaluation with
    # test_size == size the crop is the whole box, so the longer joint span is size / (1 + p).
    for padding in (0.0, 0.25, 0.5):
        opts = HeatmapOptions(size=40, test_size=40, compact_padding=padding, on_device=True)
        dm = IMiGUEDataModule(synth_imigue, clip_len=6, batch_size=3, heatmap=opts)
        dm.setup("test")
        item = dm.test_dataloader().dataset[0]
        kp, score = item["pose_keypoint"][0], item["pose_score"][0]  # (M, T, V, 2), (M, T, V)
        xy = kp[score > 0]
        span = float((xy.max(0).values - xy.min(0).values).max())
        # Joints of the sampled frames only, and the box is cut to integer pixels.
        assert abs(span - 40 / (1 + padding)) < 1.5, (padding, span)


def test_negative_compact_padding_is_refused():
    with pytest.raises(ValueError, match="compact_padding"):
        HeatmapOptions(compact_padding=-0.1)


@pytest.mark.parametrize("mode", ["keep", "drop"])
def test_compact_unscored_joints(synth_imigue, mode):
    # A joint with score 0 but coordinates in the image's corner: mmaction2 ("keep") lets
    # it widen PoseCompact's box, so the scored joints span a smaller share of the volume.
    opts = HeatmapOptions(
        size=40, test_size=40, compact_padding=0.0, compact_unscored=mode, on_device=True
    )
    dm = IMiGUEDataModule(synth_imigue, clip_len=6, batch_size=3, heatmap=opts)
    dm.setup("test")
    data = dm.test_dataloader().dataset
    rec = data.records[0]
    kp = rec.keypoint.copy()
    kp[:, 0, :2], kp[:, 0, 2] = (3.0, 3.0), 0.0  # parent joint 0: the corner, unscored
    data.records[0] = type(rec)(**{**rec.__dict__, "keypoint": kp})
    item = data[0]
    xy = item["pose_keypoint"][0][item["pose_score"][0] > 0]
    span = float((xy.max(0).values - xy.min(0).values).max())
    if mode == "drop":
        assert abs(span - 40) < 1.5  # the scored joints fill the box
    else:
        assert span < 30
