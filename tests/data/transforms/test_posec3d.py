import numpy as np
import pytest

from mgr.data.transforms.posec3d import (
    center_crop,
    crop_keypoints,
    flip_keypoints,
    limb_flip_permutation,
    pose_compact,
    random_resized_crop_box,
    resize_keypoints,
    short_side_shape,
)
from mgr.skeletons import IMIGUE_MIGA_22


def test_pose_compact_square_box_with_padding():
    # Two joints at (100, 200) and (140, 260); one missing (zeros).
    kp = np.array([[[[100.0, 200.0], [140.0, 260.0], [0.0, 0.0]]]], dtype=np.float32)
    out, shape = pose_compact(kp, (1080, 1920), padding=0.25, hw_ratio=(1.0, 1.0))
    # centre (120, 230); half sizes 20*1.25 = 25 and 30*1.25 = 37.5 -> square 37.5
    # box x: 82.5..157.5 -> int 82..157; y: 192.5..267.5 -> 192..267
    assert shape == (267 - 192, 157 - 82)
    np.testing.assert_allclose(out[0, 0, 0], [100 - 82, 200 - 192])
    np.testing.assert_allclose(out[0, 0, 1], [140 - 82, 260 - 192])
    assert np.all(out[0, 0, 2] == 0)  # missing stays missing


def test_pose_compact_leaves_tiny_boxes_alone():
    kp = np.array([[[[100.0, 200.0], [105.0, 203.0]]]], dtype=np.float32)
    out, shape = pose_compact(kp, (1080, 1920), threshold=10)
    np.testing.assert_array_equal(out, kp)
    assert shape == (1080, 1920)


def test_short_side_and_resize():
    assert short_side_shape((1080, 1920), 64) == (64, 114)  # 1920 * 64 / 1080 = 113.8
    assert short_side_shape((100, 50), 64) == (128, 64)
    kp = np.array([[[[10.0, 20.0], [0.0, 0.0]]]], dtype=np.float32)
    out = resize_keypoints(kp, (100, 50), (50, 100))
    np.testing.assert_allclose(out[0, 0, 0], [20.0, 10.0])
    assert np.all(out[0, 0, 1] == 0)


def test_random_resized_crop_box_fits_and_respects_area():
    rng = np.random.default_rng(0)
    for _ in range(50):
        left, top, right, bottom = random_resized_crop_box((64, 80), rng)
        assert 0 <= left < right <= 80 and 0 <= top < bottom <= 64
        area = (right - left) * (bottom - top) / (64 * 80)
        assert 0.5 <= area <= 1.0 + 1e-9
    # A 1-pixel-high image cannot fit the candidates: centred square fallback.
    assert random_resized_crop_box((1, 80), rng) == (39, 0, 40, 1)


def test_crops_shift_detected_joints_only():
    kp = np.array([[[[30.0, 40.0], [0.0, 0.0]]]], dtype=np.float32)
    out, shape = crop_keypoints(kp, (10, 5, 50, 45))
    assert shape == (40, 40)
    np.testing.assert_allclose(out[0, 0], [[20.0, 35.0], [0.0, 0.0]])
    out, shape = center_crop(kp, (70, 100), 64)  # left 18, top 3
    np.testing.assert_allclose(out[0, 0, 0], [12.0, 37.0])
    assert shape == (64, 64)


def test_flip_keypoints_mirrors_and_swaps():
    perm = IMIGUE_MIGA_22.flip_permutation()
    rng = np.random.default_rng(1)
    kp = rng.uniform(1, 55, (1, 3, 22, 2)).astype(np.float32)
    kp[0, 0, 5] = 0  # missing joint
    score = rng.uniform(0, 1, (1, 3, 22)).astype(np.float32)
    out, s = flip_keypoints(kp, score, 56, perm)
    rw, lw = IMIGUE_MIGA_22.index("RWrist"), IMIGUE_MIGA_22.index("LWrist")
    np.testing.assert_allclose(out[0, :, rw, 0], 56 - kp[0, :, lw, 0])
    np.testing.assert_allclose(out[0, :, rw, 1], kp[0, :, lw, 1])
    np.testing.assert_allclose(s[0, :, rw], score[0, :, lw])
    assert np.all(out[0, 0, perm[5]] == 0)  # missing stays zero (not W - 0)


def test_limb_flip_permutation_maps_limbs_to_their_mirror():
    lay = IMIGUE_MIGA_22
    perm = limb_flip_permutation(lay.limbs, lay.flip_permutation())
    names = [tuple(sorted((lay.joints[a], lay.joints[b]))) for a, b in lay.limbs]
    i = names.index(tuple(sorted(("RShoulder", "RElbow"))))
    assert names[perm[i]] == tuple(sorted(("LShoulder", "LElbow")))
    assert sorted(perm) == list(range(len(lay.limbs)))
    # RShoulder-RElbow alone: its mirror (LShoulder-LElbow) is not in the list.
    with pytest.raises(ValueError, match="mirror"):
        limb_flip_permutation([(2, 3)], lay.flip_permutation())


# mmaction2 1.2.0 PoseCompact(hw_ratio=1., allow_imgpad=True) on these keypoints, img_shape
# (1080, 1920), printed once: a joint at (12.5, 1050) (score 0 for a pose estimator, but
# PoseCompact never sees scores) and one joint with x == 0 only (y is kept and shifted).
# fmt: off
_MM_KP = [[[[1091.1, 408.5], [980.9, 437.3], [912.3, 601.2], [905.0, 594.2], [1144.0, 584.6]],
           [[1173.8, 515.1], [1082.0, 699.2], [1118.8, 694.3], [1063.1, 605.7], [0.0, 595.1]],
           [[1144.8, 606.5], [900.8, 516.7], [1157.2, 440.5], [12.5, 1050.0], [1118.9, 557.6]],
           [[952.7, 493.1], [1159.0, 545.8], [1062.4, 666.8], [989.9, 680.2], [1026.8, 507.3]]]]
# fmt: on
_MM_SHAPE = (1452, 1450)
_MM_SHIFT = (-132.0, 3.0)  # what mmaction2 subtracted from non-zero x and non-zero y


def test_pose_compact_matches_mmaction2_with_a_stray_joint():
    kp = np.array(_MM_KP, np.float32)
    out, shape = pose_compact(kp, (1080, 1920))
    assert shape == _MM_SHAPE
    want = kp.copy()
    want[..., 0][want[..., 0] != 0] -= _MM_SHIFT[0]
    want[..., 1][want[..., 1] != 0] -= _MM_SHIFT[1]
    np.testing.assert_allclose(out, want, atol=1e-3)
    # Dropping the stray joint (compact_unscored="drop" zeroes it first) shrinks the box
    # to the body's.
    dropped = kp.copy()
    dropped[0, 2, 3] = 0
    _, small = pose_compact(dropped, (1080, 1920))
    assert max(small) < 500
