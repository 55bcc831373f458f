"""Tests of mgr.data.datasets.SkeletonClipDataset on hand-made ClipRecords."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mgr.data.datasets import SkeletonClipDataset, SkeletonTransformConfig
from mgr.data.readers.common import ClipRecord

V, C = 5, 3


def encoded_keypoint(num_frames: int, num_joints: int = V, channels: int = C) -> np.ndarray:
    """(T, V, C) with value 100*t + 10*v + c + 1: every entry says where it came from."""
    t, v, c = np.meshgrid(
        np.arange(num_frames), np.arange(num_joints), np.arange(channels), indexing="ij"
    )
    return (100.0 * t + 10.0 * v + c + 1).astype(np.float32)


def decode_frames(skeleton: torch.Tensor, joint: int = 0) -> np.ndarray:
    """Frame index of every time step of a (C, T, V', 1) skeleton built from encoded_keypoint."""
    return ((skeleton[1, :, joint, 0].numpy() - 2.0) // 100).astype(int)


def make_record(keypoint: np.ndarray, sample_id: str = "0007_3", label: int = 4) -> ClipRecord:
    return ClipRecord(
        sample_id=sample_id,
        label=label,
        keypoint=keypoint,
        video_id="0007",
        start=10,
        end=10 + len(keypoint) - 1,
        source="/data/imigue_skeleton_train/0007/0007_light_hand.csv",
    )


def reference_test_indices(num_frames: int, clip_len: int, num_clips: int) -> np.ndarray:
    """mmaction2 ``_get_test_clips`` (``np.random.seed(255)``: a legacy RandomState),
    ``(num_clips, L)``."""
    rng = np.random.RandomState(255)
    out = []
    for i in range(num_clips):
        if num_frames < clip_len:
            start = i if num_frames < num_clips else i * num_frames // num_clips
            inds = np.arange(start, start + clip_len)
        elif num_frames < 2 * clip_len:
            chosen = rng.choice(clip_len + 1, num_frames - clip_len, replace=False)
            offset = np.zeros(clip_len + 1, dtype=np.int64)
            offset[chosen] = 1
            inds = np.arange(clip_len) + np.cumsum(offset)[:-1]
        else:
            bids = np.array([j * num_frames // clip_len for j in range(clip_len + 1)])
            inds = bids[:-1] + rng.randint(0, np.diff(bids))
        out.append(inds % num_frames)
    return np.stack(out)


def manual_flip(view: torch.Tensor, perm) -> torch.Tensor:
    """(C, T, V, 1): swap joints by ``perm`` and negate x (channel 0)."""
    out = view[:, :, list(perm)].clone()
    out[0] = -out[0]
    return out


# ------------------------------------------------------------------ evaluation mode


def test_eval_item_contract_and_layout():
    kp = encoded_keypoint(20)
    ds = SkeletonClipDataset(
        [make_record(kp)], SkeletonTransformConfig(clip_len=8, normalize=False), train=False
    )
    assert len(ds) == 1
    item = ds[0]
    assert set(item) == {"skeleton", "label", "sample_id"}
    assert item["label"] == 4 and item["sample_id"] == "0007_3"
    sk = item["skeleton"]
    assert isinstance(sk, torch.Tensor) and sk.dtype == torch.float32
    assert tuple(sk.shape) == (C, 8, V, 1)
    idx = reference_test_indices(20, 8, 1)[0]
    # skeleton[c, t, v, 0] == keypoint[idx[t], v, c]
    want = np.transpose(kp[idx], (2, 0, 1))[..., None]
    np.testing.assert_array_equal(sk.numpy(), want)


@pytest.mark.parametrize("num_frames", [5, 12, 40])  # loop, random skip, segments
def test_eval_multi_clip_views_follow_the_test_sampler(num_frames):
    kp = encoded_keypoint(num_frames)
    cfg = SkeletonTransformConfig(clip_len=8, normalize=False, num_clips=3)
    sk = SkeletonClipDataset([make_record(kp)], cfg, train=False)[0]["skeleton"]
    assert tuple(sk.shape) == (3, C, 8, V, 1)
    want = reference_test_indices(num_frames, 8, 3)
    for view, idx in zip(sk, want, strict=True):
        np.testing.assert_array_equal(view.numpy(), np.transpose(kp[idx], (2, 0, 1))[..., None])
    # evaluation is deterministic
    again = SkeletonClipDataset([make_record(kp)], cfg, train=False)[0]["skeleton"]
    torch.testing.assert_close(sk, again, rtol=0, atol=0)


@pytest.mark.parametrize("num_clips", [1, 2])
def test_eval_test_flip_views(num_clips):
    perm = (0, 2, 1, 4, 3)
    kp = encoded_keypoint(30)
    base = SkeletonTransformConfig(
        clip_len=6, normalize=False, num_clips=num_clips, flip_permutation=perm
    )
    flipped = SkeletonTransformConfig(
        clip_len=6, normalize=False, num_clips=num_clips, flip_permutation=perm, test_flip=True
    )
    plain = SkeletonClipDataset([make_record(kp)], base, train=False)[0]["skeleton"]
    sk = SkeletonClipDataset([make_record(kp)], flipped, train=False)[0]["skeleton"]
    assert tuple(sk.shape) == (2 * num_clips, C, 6, V, 1)
    if num_clips == 1:
        plain = plain[None]
    for i in range(num_clips):
        torch.testing.assert_close(sk[i], plain[i], rtol=0, atol=0)
        torch.testing.assert_close(sk[num_clips + i], manual_flip(sk[i], perm), rtol=0, atol=0)


def test_eval_normalisation_frame_mode_centres_every_frame():
    rng = np.random.default_rng(0)
    kp = rng.uniform(1, 50, size=(16, V, 2)).astype(np.float32)  # no zero: all joints valid
    cfg = SkeletonTransformConfig(clip_len=4, center=2, center_mode="frame")
    sk = SkeletonClipDataset([make_record(kp)], cfg, train=False)[0]["skeleton"].numpy()
    idx = reference_test_indices(16, 4, 1)[0]
    want = kp[idx] - kp[idx][:, 2:3]  # (T, V, 2)
    np.testing.assert_allclose(sk[..., 0], np.transpose(want, (2, 0, 1)), atol=1e-4)


def test_eval_normalisation_clip_mode_subtracts_the_clip_mean_centre():
    rng = np.random.default_rng(0)
    kp = rng.uniform(1, 50, size=(16, V, 2)).astype(np.float32)
    cfg = SkeletonTransformConfig(clip_len=4, center=2, center_mode="clip")
    sk = SkeletonClipDataset([make_record(kp)], cfg, train=False)[0]["skeleton"].numpy()
    idx = reference_test_indices(16, 4, 1)[0]
    # the mean of the centre joint over the whole record, not only the sampled frames
    want = kp[idx] - kp[:, 2].mean(0)
    np.testing.assert_allclose(sk[..., 0], np.transpose(want, (2, 0, 1)), atol=1e-4)


def test_joint_subset_selection():
    kp = encoded_keypoint(24, num_joints=8)
    joints = (6, 0, 3)
    cfg = SkeletonTransformConfig(clip_len=8, joints=joints, normalize=False)
    rec = make_record(kp)
    sk = SkeletonClipDataset([rec], cfg, train=False)[0]["skeleton"].numpy()
    assert sk.shape == (C, 8, 3, 1)
    idx = reference_test_indices(24, 8, 1)[0]
    for j, src in enumerate(joints):
        for t in range(8):
            np.testing.assert_array_equal(sk[:, t, j, 0], rec.keypoint[idx[t], src, :])


def test_joint_subset_centre_and_flip_use_kept_indices():
    kp = np.random.default_rng(1).uniform(1, 9, size=(10, 8, 2)).astype(np.float32)
    joints = (5, 1, 7)
    cfg = SkeletonTransformConfig(
        clip_len=10,
        joints=joints,
        center=1,
        center_mode="frame",
        flip_permutation=(0, 1, 2),
        test_flip=True,
    )
    sk = SkeletonClipDataset([make_record(kp)], cfg, train=False)[0]["skeleton"].numpy()
    assert sk.shape == (2, 2, 10, 3, 1)
    # n == clip_len: every frame in order; centre = original joint 1 (kept index 1)
    want = kp[:, list(joints)] - kp[:, 1:2]
    np.testing.assert_allclose(sk[0, ..., 0], np.transpose(want, (2, 0, 1)), atol=1e-5)
    np.testing.assert_allclose(sk[1, 0], -sk[0, 0], atol=0)
    np.testing.assert_allclose(sk[1, 1], sk[0, 1], atol=0)


# ------------------------------------------------------------------ training mode


def test_train_is_reproducible_under_manual_seed():
    kp = encoded_keypoint(40)
    cfg = SkeletonTransformConfig(
        clip_len=8, normalize=False, flip_prob=0.5, flip_permutation=(0, 2, 1, 4, 3)
    )
    ds = SkeletonClipDataset([make_record(kp)], cfg, train=True)
    outs = []
    for seed in (0, 0, 1, 2, 3, 4):
        torch.manual_seed(seed)
        outs.append(ds[0]["skeleton"])
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=0)
    assert tuple(outs[0].shape) == (C, 8, V, 1)
    # the sampling is random: other seeds give other clips
    assert any(not torch.equal(outs[0], o) for o in outs[2:])


@pytest.mark.parametrize("num_frames", [5, 12, 40])
def test_train_sampling_properties(num_frames):
    kp = encoded_keypoint(num_frames)
    ds = SkeletonClipDataset(
        [make_record(kp)], SkeletonTransformConfig(clip_len=8, normalize=False), train=True
    )
    for seed in range(10):
        torch.manual_seed(seed)
        sk = ds[0]["skeleton"]
        frames = decode_frames(sk)
        assert frames.min() >= 0 and frames.max() < num_frames
        if num_frames >= 16:
            for i, f in enumerate(frames):
                assert i * num_frames // 8 <= f < (i + 1) * num_frames // 8
        elif num_frames >= 8:
            assert np.all(np.diff(frames) > 0)
        else:
            assert np.all((frames[1:] - frames[:-1]) % num_frames == 1)
        # each time step is one whole frame of the record
        np.testing.assert_array_equal(sk[..., 0].numpy(), np.transpose(kp[frames], (2, 0, 1)))


def test_train_flip_prob_one_always_flips():
    perm = (0, 2, 1, 4, 3)
    kp = encoded_keypoint(16)
    ds = SkeletonClipDataset(
        [make_record(kp)],
        SkeletonTransformConfig(clip_len=16, normalize=False, flip_prob=1.0, flip_permutation=perm),
        train=True,
    )
    torch.manual_seed(0)
    sk = ds[0]["skeleton"]
    # n == clip_len: the frames are 0..15 in order; joint v holds joint perm[v], x negated
    want = np.transpose(kp[:, list(perm)], (2, 0, 1))[..., None].copy()
    want[0] *= -1
    np.testing.assert_array_equal(sk.numpy(), want)


def test_flip_needs_a_permutation():
    rec = make_record(encoded_keypoint(8))
    with pytest.raises(ValueError):
        SkeletonClipDataset([rec], SkeletonTransformConfig(flip_prob=0.5), train=True)
    with pytest.raises(ValueError):
        SkeletonClipDataset([rec], SkeletonTransformConfig(test_flip=True), train=False)


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize("train", [False, True])
@pytest.mark.parametrize("normalize", [False, True])
def test_bad_record_error_names_sample_and_file(train, normalize):
    good = make_record(encoded_keypoint(12), sample_id="0001_0")
    bad = make_record(np.zeros((0, V, C), dtype=np.float32), sample_id="0042_17")
    ds = SkeletonClipDataset(
        [good, bad], SkeletonTransformConfig(clip_len=8, normalize=normalize), train=train
    )
    ds[0]  # the good one loads
    with pytest.raises(RuntimeError) as info:
        ds[1]
    msg = str(info.value)
    assert "0042_17" in msg
    assert "/data/imigue_skeleton_train/0007/0007_light_hand.csv" in msg
