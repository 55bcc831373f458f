"""Tests of mgr.data.transforms.pose against plainly written references."""

from __future__ import annotations

import numpy as np
import pytest

from mgr.data.transforms.pose import flip_skeleton, normalize_skeleton, uniform_sample_indices

from .mmaction2_sampling import MMACTION2_TEST_INDICES

# ------------------------------------------------------------------ reference sampler


def reference_uniform_sample(num_frames, clip_len, num_clips, test_mode, rng):
    """mmaction2 ``UniformSampleFrames`` (``_get_train_clips`` / ``_get_test_clips``).

    Written from the published algorithm. ``rng`` is a ``np.random.RandomState``
    (mmaction2's own calls ``np.random.randint(a)`` / ``np.random.choice`` on the
    global one) or a ``np.random.Generator`` (``integers(0, a)`` / ``choice``, mgr's
    training stream). In test mode the caller passes ``RandomState(seed)``:
    mmaction2 calls ``np.random.seed(self.seed)`` once before the clip loop.
    """
    legacy = isinstance(rng, np.random.RandomState)

    def randint(high):
        return rng.randint(0, high) if legacy else rng.integers(0, high)

    all_inds = []
    for i in range(num_clips):
        if num_frames < clip_len:
            if test_mode:
                start_ind = i if num_frames < num_clips else i * num_frames // num_clips
            else:
                start_ind = randint(num_frames)
            inds = np.arange(start_ind, start_ind + clip_len)
        elif clip_len <= num_frames < clip_len * 2:
            basic = np.arange(clip_len)
            chosen = rng.choice(clip_len + 1, num_frames - clip_len, replace=False)
            offset = np.zeros(clip_len + 1, dtype=np.int64)
            offset[chosen] = 1
            offset = np.cumsum(offset)
            inds = basic + offset[:-1]
        else:
            bids = np.array([j * num_frames // clip_len for j in range(clip_len + 1)])
            bsize = np.diff(bids)
            bst = bids[:clip_len]
            inds = bst + randint(bsize)
        all_inds.append(inds)
    return np.mod(np.concatenate(all_inds), num_frames)


# (num_frames, clip_len): loop (n < L), random skip (L <= n < 2L), segments (n >= 2L).
CASES = [
    (1, 8),
    (3, 8),
    (7, 8),
    (8, 8),
    (9, 8),
    (15, 8),
    (16, 8),
    (17, 8),
    (100, 8),
    (37, 16),
    (250, 64),
]


@pytest.mark.parametrize(("num_frames", "clip_len"), CASES)
@pytest.mark.parametrize(("num_clips", "seed"), [(1, 0), (3, 7)])
def test_uniform_sample_train_matches_reference(num_frames, clip_len, num_clips, seed):
    got = uniform_sample_indices(
        num_frames, clip_len, num_clips=num_clips, rng=np.random.default_rng(seed)
    )
    want = reference_uniform_sample(
        num_frames, clip_len, num_clips, False, np.random.default_rng(seed)
    )
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize(("num_frames", "clip_len"), CASES)
@pytest.mark.parametrize(("num_clips", "seed"), [(1, 255), (5, 3)])
def test_uniform_sample_test_mode_matches_reference(num_frames, clip_len, num_clips, seed):
    got = uniform_sample_indices(
        num_frames, clip_len, num_clips=num_clips, test_mode=True, seed=seed
    )
    want = reference_uniform_sample(
        num_frames, clip_len, num_clips, True, np.random.RandomState(seed)
    )
    np.testing.assert_array_equal(got, want)


def test_uniform_sample_default_test_seed_is_255():
    got = uniform_sample_indices(100, 16, num_clips=2, test_mode=True)
    want = reference_uniform_sample(100, 16, 2, True, np.random.RandomState(255))
    np.testing.assert_array_equal(got, want)


def test_uniform_sample_hand_computed_loops():
    # n < L, test mode: clip i starts at i * n // num_clips (or i when n < num_clips), mod n.
    got = uniform_sample_indices(3, 5, num_clips=2, test_mode=True)
    np.testing.assert_array_equal(got, [0, 1, 2, 0, 1, 1, 2, 0, 1, 2])
    got = uniform_sample_indices(2, 3, num_clips=3, test_mode=True)  # n < num_clips: start = i
    np.testing.assert_array_equal(got, [0, 1, 0, 1, 0, 1, 0, 1, 0])
    np.testing.assert_array_equal(uniform_sample_indices(1, 4, test_mode=True), [0, 0, 0, 0])
    # Training: a random start, then consecutive frames looped around the clip.
    for seed in range(10):
        got = uniform_sample_indices(5, 12, rng=np.random.default_rng(seed))
        assert np.all((got[1:] - got[:-1]) % 5 == 1)
        assert got.min() >= 0 and got.max() < 5


def test_uniform_sample_exact_length_takes_every_frame():
    # n == L: no frame to skip, every frame once in order, whatever the generator.
    for seed in range(5):
        got = uniform_sample_indices(10, 10, rng=np.random.default_rng(seed))
        np.testing.assert_array_equal(got, np.arange(10))
    np.testing.assert_array_equal(uniform_sample_indices(10, 10, test_mode=True), np.arange(10))


@pytest.mark.parametrize(
    ("num_frames", "clip_len"), [(16, 8), (17, 8), (63, 8), (100, 16), (129, 64), (1000, 64)]
)
def test_uniform_sample_one_index_per_segment(num_frames, clip_len):
    for seed in range(20):
        got = uniform_sample_indices(num_frames, clip_len, rng=np.random.default_rng(seed))
        assert got.shape == (clip_len,)
        for i, idx in enumerate(got):
            assert i * num_frames // clip_len <= idx < (i + 1) * num_frames // clip_len


@pytest.mark.parametrize(
    ("num_frames", "clip_len"), [(8, 8), (9, 8), (12, 8), (15, 8), (33, 32), (63, 32)]
)
def test_uniform_sample_random_skip_properties(num_frames, clip_len):
    seen = set()
    for seed in range(20):
        got = uniform_sample_indices(num_frames, clip_len, rng=np.random.default_rng(seed))
        assert got.shape == (clip_len,)
        assert np.all(np.diff(got) > 0)  # strictly increasing
        assert got.min() >= 0 and got.max() < num_frames
        skipped = set(range(num_frames)) - set(got.tolist())
        assert len(skipped) == num_frames - clip_len
        seen.add(tuple(got.tolist()))
    if num_frames > clip_len:
        assert len(seen) > 1  # the skipped frames are random


@pytest.mark.parametrize(("num_frames", "clip_len"), CASES)
def test_uniform_sample_indices_in_range(num_frames, clip_len):
    for test_mode in (False, True):
        got = uniform_sample_indices(num_frames, clip_len, num_clips=4, test_mode=test_mode)
        assert got.shape == (4 * clip_len,)
        assert got.min() >= 0 and got.max() < num_frames


def test_uniform_sample_test_mode_is_deterministic():
    a = uniform_sample_indices(100, 16, num_clips=3, test_mode=True)
    b = uniform_sample_indices(100, 16, num_clips=3, test_mode=True)
    # A training generator passed along must not change the test-time rule.
    c = uniform_sample_indices(100, 16, num_clips=3, test_mode=True, rng=np.random.default_rng(123))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)
    # Another seed gives another sampling.
    e = uniform_sample_indices(100, 16, num_clips=3, test_mode=True, seed=256)
    assert not np.array_equal(a, e)


def test_uniform_sample_num_clips_views():
    got = uniform_sample_indices(100, 16, num_clips=4, test_mode=True).reshape(4, 16)
    for view in got:  # every view covers the clip, one frame per segment
        for i, idx in enumerate(view):
            assert i * 100 // 16 <= idx < (i + 1) * 100 // 16
    assert len({tuple(v) for v in got.tolist()}) > 1  # views differ
    got = uniform_sample_indices(12, 8, num_clips=3, test_mode=True).reshape(3, 8)
    for view in got:
        assert np.all(np.diff(view) > 0)


@pytest.mark.parametrize("num_frames", [0, -1])
def test_uniform_sample_rejects_empty_clip(num_frames):
    with pytest.raises(ValueError):
        uniform_sample_indices(num_frames, 8)
    with pytest.raises(ValueError):
        uniform_sample_indices(num_frames, 8, test_mode=True)


def test_uniform_sample_rejects_bad_lengths():
    with pytest.raises(ValueError):
        uniform_sample_indices(10, 0)
    with pytest.raises(ValueError):
        uniform_sample_indices(10, 4, num_clips=0)


# ------------------------------------------------------------------ normalize_skeleton


# Missing joints (no score channel): all coordinates 0. Centre = joint 0.
KP_CENTRE = np.array(
    [
        [[10, 20], [13, 24], [7, 16]],
        [[0, 0], [5, 5], [1, 1]],  # centre missing
        [[20, 40], [0, 0], [21, 41]],  # joint 1 missing
    ],
    dtype=np.float32,
)
# The valid centres are (10, 20) and (20, 40): their mean is (15, 30).


def test_normalize_frame_mode_centre_per_frame_and_missing_centre():
    want = np.array(
        [
            [[0, 0], [3, 4], [-3, -4]],
            [[0, 0], [-10, -25], [-14, -29]],  # missing centre: uses (15, 30); itself stays 0
            [[0, 0], [0, 0], [1, 1]],
        ],
        dtype=np.float32,
    )
    got = normalize_skeleton(KP_CENTRE, 0, center_mode="frame")
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_normalize_clip_mode_subtracts_the_mean_valid_centre():
    want = np.array(
        [
            [[-5, -10], [-2, -6], [-8, -14]],
            [[0, 0], [-10, -25], [-14, -29]],
            [[5, 10], [0, 0], [6, 11]],
        ],
        dtype=np.float32,
    )
    np.testing.assert_allclose(
        normalize_skeleton(KP_CENTRE, 0, center_mode="clip"), want, atol=1e-5
    )
    # "clip" is the default
    np.testing.assert_allclose(normalize_skeleton(KP_CENTRE, 0), want, atol=1e-5)


def test_normalize_rejects_unknown_center_mode():
    with pytest.raises(ValueError):
        normalize_skeleton(KP_CENTRE, 0, center_mode="joint")


def test_normalize_centre_3d():
    kp = np.array([[[1, 2, 3], [2, 4, 6]], [[-1, 0, 1], [0, 0, 0]]], dtype=np.float64)
    # frame 1: centre (joint 1) missing -> mean valid centre (2, 4, 6); it stays 0 itself
    want = np.array([[[-1, -2, -3], [0, 0, 0]], [[-3, -4, -5], [0, 0, 0]]], dtype=np.float32)
    np.testing.assert_allclose(normalize_skeleton(kp, 1, center_mode="frame"), want, atol=1e-6)
    # only one valid centre: the clip mode gives the same result
    np.testing.assert_allclose(normalize_skeleton(kp, 1, center_mode="clip"), want, atol=1e-6)


# (x, y, confidence); joint 0 = centre, scale = median distance of joints 1 and 2.
KP_SCALE = np.array(
    [
        [[0, 0, 0.9], [3, 4, 0.5], [0, 0, 0.8]],  # (0, 0) with confidence > 0 is a real joint
        [[1, 1, 0.7], [1, 11, 0.6], [1, 1, 0.4]],
        [[2, 2, 0.3], [2, 2, 0.2], [2, 22, 0.1]],
        [[5, 5, 0.9], [100, 100, 0.0], [5, 5, 0.9]],  # joint 1 undetected: not in the median
    ],
    dtype=np.float32,
)
# Pair distances in the frames where both are detected: 5, 10, 20 -> median 10
# (with the undetected frame it would be 15).


def test_normalize_score_channel_and_scale_frame_mode():
    want = np.array(
        [
            [[0, 0, 0.9], [0.3, 0.4, 0.5], [0, 0, 0.8]],
            [[0, 0, 0.7], [0, 1.0, 0.6], [0, 0, 0.4]],
            [[0, 0, 0.3], [0, 0, 0.2], [0, 2.0, 0.1]],
            [[0, 0, 0.9], [0, 0, 0], [0, 0, 0.9]],
        ],
        dtype=np.float32,
    )
    got = normalize_skeleton(KP_SCALE, 0, score_channel=2, scale_joints=(1, 2), center_mode="frame")
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_normalize_score_channel_and_scale_clip_mode():
    # mean centre over the four frames: (0+1+2+5)/4 = 2 in x and y
    want = np.array(
        [
            [[-0.2, -0.2, 0.9], [0.1, 0.2, 0.5], [-0.2, -0.2, 0.8]],
            [[-0.1, -0.1, 0.7], [-0.1, 0.9, 0.6], [-0.1, -0.1, 0.4]],
            [[0, 0, 0.3], [0, 0, 0.2], [0, 2.0, 0.1]],
            [[0.3, 0.3, 0.9], [0, 0, 0], [0.3, 0.3, 0.9]],
        ],
        dtype=np.float32,
    )
    got = normalize_skeleton(KP_SCALE, 0, score_channel=2, scale_joints=(1, 2), center_mode="clip")
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_normalize_missing_joints_are_zero_in_every_channel():
    kp = np.array(
        [[[4, 4, 1.0], [7, -3, 0.0], [6, 6, 0.5]], [[5, 5, 1.0], [9, 9, 0.8], [8, 1, 0.0]]],
        dtype=np.float32,
    )
    got = normalize_skeleton(kp, 0, score_channel=2, center_mode="frame")
    np.testing.assert_array_equal(got[0, 1], [0, 0, 0])
    np.testing.assert_array_equal(got[1, 2], [0, 0, 0])
    np.testing.assert_allclose(got[0, 2], [2, 2, 0.5])
    np.testing.assert_allclose(got[1, 1], [4, 4, 0.8])


@pytest.mark.parametrize("center_mode", ["frame", "clip"])
def test_normalize_scale_falls_back_to_bounding_box(center_mode):
    # Joints 1 and 2 are never detected in the same frame; the centre does not move.
    kp = np.array(
        [
            [[10, 10], [14, 10], [0, 0]],
            [[10, 10], [0, 0], [10, 18]],
        ],
        dtype=np.float32,
    )
    # Centred valid points: (0,0), (4,0), (0,0), (0,8): box 4 x 8 -> scale 8.
    want = np.array(
        [
            [[0, 0], [0.5, 0], [0, 0]],
            [[0, 0], [0, 0], [0, 1.0]],
        ],
        dtype=np.float32,
    )
    got = normalize_skeleton(kp, 0, scale_joints=(1, 2), center_mode=center_mode)
    np.testing.assert_allclose(got, want, atol=1e-6)


@pytest.mark.parametrize("center_mode", ["frame", "clip"])
def test_normalize_all_missing_clip_is_zeros(center_mode):
    kp = np.zeros((4, 3, 2), dtype=np.float32)
    got = normalize_skeleton(kp, 0, scale_joints=(1, 2), center_mode=center_mode)
    assert got.shape == (4, 3, 2)
    assert not got.any()
    kp = np.full((4, 3, 3), 7.0, dtype=np.float32)
    kp[..., 2] = 0.0  # coordinates present but no joint detected
    got = normalize_skeleton(kp, 0, score_channel=2, scale_joints=(1, 2), center_mode=center_mode)
    assert got.shape == (4, 3, 3)
    assert not got.any()


@pytest.mark.parametrize("center_mode", ["frame", "clip"])
def test_normalize_does_not_modify_input(center_mode):
    rng = np.random.default_rng(0)
    kp = rng.normal(size=(6, 5, 3)).astype(np.float32)
    kp[..., 2] = np.abs(kp[..., 2])
    kp[2, 1, 2] = 0.0
    before = kp.copy()
    got = normalize_skeleton(kp, 1, score_channel=2, scale_joints=(0, 4), center_mode=center_mode)
    np.testing.assert_array_equal(kp, before)
    assert got is not kp
    assert not np.shares_memory(got, kp)


# ------------------------------------------------------------------ flip_skeleton


def test_flip_hand_made_example():
    # joints: 0 centre, 1 left hand, 2 right hand; channels (x, y, confidence)
    kp = np.array(
        [
            [[0.0, 0.0, 1.0], [-1.0, 2.0, 0.5], [3.0, 4.0, 0.8]],
            [[0.5, -1.0, 0.9], [-2.0, 1.0, 0.6], [1.5, 0.5, 0.7]],
        ],
        dtype=np.float32,
    )
    want = np.array(
        [
            [[0.0, 0.0, 1.0], [-3.0, 4.0, 0.8], [1.0, 2.0, 0.5]],
            [[-0.5, -1.0, 0.9], [-1.5, 0.5, 0.7], [2.0, 1.0, 0.6]],
        ],
        dtype=np.float32,
    )
    before = kp.copy()
    got = flip_skeleton(kp, (0, 2, 1))
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(kp, before)  # input untouched


def test_flip_is_an_involution():
    rng = np.random.default_rng(1)
    kp = rng.normal(size=(5, 6, 3)).astype(np.float32)
    perm = (0, 3, 4, 1, 2, 5)  # swaps 1<->3 and 2<->4
    once = flip_skeleton(kp, perm)
    assert not np.allclose(once, kp)
    np.testing.assert_array_equal(flip_skeleton(once, perm), kp)
    # x negated and joints swapped, nothing else
    np.testing.assert_array_equal(once[:, 1, 0], -kp[:, 3, 0])
    np.testing.assert_array_equal(once[:, 1, 1:], kp[:, 3, 1:])


# ------------------------------------------------------------------ mmaction2's own indices


@pytest.mark.parametrize("case", sorted(MMACTION2_TEST_INDICES))
def test_uniform_sample_test_mode_is_index_identical_to_mmaction2(case):
    """Every test view of mmaction2's UniformSampleFrames (seed 255), as it printed them."""
    num_frames, clip_len, num_clips = case
    got = uniform_sample_indices(num_frames, clip_len, num_clips=num_clips, test_mode=True)
    np.testing.assert_array_equal(got, MMACTION2_TEST_INDICES[case])


def test_uniform_sample_test_mode_leaves_numpy_global_state_alone():
    np.random.seed(7)  # noqa: NPY002 (the global state is the point)
    want = np.random.random()  # noqa: NPY002
    np.random.seed(7)  # noqa: NPY002 (the global state is the point)
    uniform_sample_indices(100, 48, num_clips=3, test_mode=True)
    assert np.random.random() == want  # noqa: NPY002
