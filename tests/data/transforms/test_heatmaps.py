"""Tests of mgr.data.transforms.heatmaps against a plainly written reference loop."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mgr.data.transforms import heatmaps
from mgr.data.transforms.heatmaps import (
    batch_joint_heatmaps,
    batch_limb_heatmaps,
    joint_heatmaps,
    limb_heatmaps,
)

# ------------------------------------------------------------------ reference loop
# mmaction2's GeneratePoseTarget (scaling=1) as published: a Python loop over
# frames, channels and persons that draws one small numpy patch at a time, on
# float32 arrays. The window arithmetic on numpy float32 scalars stays float32
# (numpy >= 2), and int() truncates toward zero.


def _reference_joint(arr, centres, values, sigma, eps):
    """Max-merge a Gaussian per person into ``arr (H, W)``; centres ``(M, 2)``."""
    height, width = arr.shape
    for (mu_x, mu_y), value in zip(centres, values, strict=True):
        if value < eps:
            continue
        x0, x1 = max(int(mu_x - 3 * sigma), 0), min(int(mu_x + 3 * sigma) + 1, width)
        y0, y1 = max(int(mu_y - 3 * sigma), 0), min(int(mu_y + 3 * sigma) + 1, height)
        xs = np.arange(x0, x1, dtype=np.float32)
        ys = np.arange(y0, y1, dtype=np.float32)[:, None]
        if xs.size == 0 or ys.size == 0:
            continue
        patch = np.exp(-((xs - mu_x) ** 2 + (ys - mu_y) ** 2) / 2 / sigma**2) * value
        arr[y0:y1, x0:x1] = np.maximum(arr[y0:y1, x0:x1], patch)


def _reference_limb(arr, starts, ends, start_values, end_values, sigma, eps):
    """Max-merge a limb per person into ``arr (H, W)``; endpoints ``(M, 2)``."""
    height, width = arr.shape
    for a, b, va, vb in zip(starts, ends, start_values, end_values, strict=True):
        value = min(va, vb)
        if value < eps:
            continue
        x0 = max(int(min(a[0], b[0]) - 3 * sigma), 0)
        x1 = min(int(max(a[0], b[0]) + 3 * sigma) + 1, width)
        y0 = max(int(min(a[1], b[1]) - 3 * sigma), 0)
        y1 = min(int(max(a[1], b[1]) + 3 * sigma) + 1, height)
        xs = np.arange(x0, x1, dtype=np.float32)
        ys = np.arange(y0, y1, dtype=np.float32)[:, None]
        if xs.size == 0 or ys.size == 0:
            continue
        d2_start = (xs - a[0]) ** 2 + (ys - a[1]) ** 2
        d2_end = (xs - b[0]) ** 2 + (ys - b[1]) ** 2
        d2_ab = (a[0] - b[0]) ** 2 + (a[1] - b[1]) ** 2
        if d2_ab < 1:  # endpoints less than a pixel apart: a joint at the start
            _reference_joint(arr, a[None], va[None], sigma, eps)
            continue
        coeff = (d2_start - d2_end + d2_ab) / 2.0 / d2_ab
        near_a = coeff <= 0
        near_b = coeff >= 1
        near_line = 1 - near_a - near_b
        proj_x = a[0] + coeff * (b[0] - a[0])
        proj_y = a[1] + coeff * (b[1] - a[1])
        d2_line = (xs + np.zeros_like(ys) - proj_x) ** 2 + (ys + np.zeros_like(xs) - proj_y) ** 2
        d2_seg = near_a * d2_start + near_b * d2_end + near_line * d2_line
        patch = np.exp(-d2_seg / 2.0 / sigma**2) * value
        arr[y0:y1, x0:x1] = np.maximum(arr[y0:y1, x0:x1], patch)


def reference_heatmaps(keypoint, score, size, sigma=0.6, eps=1e-4, limbs=None):
    """Reference heatmaps ``(C, T, H, W)`` of ``keypoint (M, T, V, 2)``.

    ``C = V`` joint channels if ``limbs`` is None, else one channel per limb.
    """
    keypoint = np.asarray(keypoint, dtype=np.float32)
    m, t, v, _ = keypoint.shape
    if score is None:
        score = np.ones((m, t, v), np.float32)
    score = np.asarray(score, dtype=np.float32)
    height, width = size
    out = np.zeros((t, v if limbs is None else len(limbs), height, width), np.float32)
    for i in range(t):
        kps, scores = keypoint[:, i], score[:, i]
        if limbs is None:
            for j in range(v):
                _reference_joint(out[i, j], kps[:, j], scores[:, j], sigma, eps)
        else:
            for j, (p, q) in enumerate(limbs):
                _reference_limb(
                    out[i, j], kps[:, p], kps[:, q], scores[:, p], scores[:, q], sigma, eps
                )
    return out.transpose(1, 0, 2, 3)  # (C, T, H, W), as after FormatShape


# ------------------------------------------------------------------ random clips

V = 8
# (0, 6) and (6, 0) are degenerate (joint 6 sits within a pixel of joint 0),
# joint 3 has low scores, joint 1 is sometimes far off the image.
LIMBS = [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 0), (0, 6), (6, 0), (1, 7), (7, 2), (2, 5)]
SIZES = [(48, 64), (64, 48), (56, 56)]


def random_clip(seed: int, m: int, t: int = 6, size=(48, 64)) -> tuple[np.ndarray, np.ndarray]:
    """``(M, T, V, 2)`` keypoints and ``(M, T, V)`` scores with the awkward cases."""
    rng = np.random.default_rng(seed)
    height, width = size
    kp = rng.uniform([-6, -6], [width + 6, height + 6], (m, t, V, 2)).astype(np.float32)
    kp[:, ::3, 1] = [-40.0, -40.0]  # far off the image
    kp[:, 1::3, 1] = [width + 20.0, height + 0.5]
    kp[..., 6, :] = kp[..., 0, :] + rng.uniform(-0.6, 0.6, (m, t, 2)).astype(np.float32)
    kp[:, 0, 6] = kp[:, 0, 0]  # coincident endpoints
    score = rng.uniform(0.0, 1.0, (m, t, V)).astype(np.float32)
    score[score < 0.15] = 0.0
    score[:, ::2, 3] = 5e-5  # below eps
    score[:, 1, 4] = np.float32(1e-4)  # exactly eps in float32: drawn
    return kp, score


def max_abs_diff(actual: torch.Tensor, expected: np.ndarray) -> float:
    assert actual.dtype == torch.float32
    assert tuple(actual.shape) == expected.shape
    return float(np.abs(actual.numpy() - expected).max())


@pytest.mark.parametrize("sigma", [0.6, 1.0])
@pytest.mark.parametrize("use_score", [True, False])
@pytest.mark.parametrize("m", [1, 2])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_joints_match_reference(seed, m, use_score, sigma):
    size = SIZES[seed]
    kp, score = random_clip(seed, m, size=size)
    score = score if use_score else None
    expected = reference_heatmaps(kp, score, size, sigma)
    score_t = None if score is None else torch.from_numpy(score)
    actual = joint_heatmaps(torch.from_numpy(kp), score_t, size, sigma)
    assert max_abs_diff(actual, expected) <= 1e-5
    assert expected.max() > 0.5  # something was drawn


@pytest.mark.parametrize("sigma", [0.6, 1.0])
@pytest.mark.parametrize("use_score", [True, False])
@pytest.mark.parametrize("m", [1, 2])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_limbs_match_reference(seed, m, use_score, sigma):
    size = SIZES[seed]
    kp, score = random_clip(seed, m, size=size)
    score = score if use_score else None
    expected = reference_heatmaps(kp, score, size, sigma, limbs=LIMBS)
    actual = limb_heatmaps(kp, score, size, LIMBS, sigma)  # numpy in, tensor out
    assert max_abs_diff(actual, expected) <= 1e-5
    assert expected.max() > 0.5


def test_long_limbs_match_reference():
    """Long limbs, where the reference's own float32 rounding is largest."""
    rng = np.random.default_rng(7)
    kp = rng.uniform(0, 64, (1, 40, 4, 2)).astype(np.float32)
    limbs = [(0, 1), (1, 2), (2, 3), (3, 0), (0, 2)]
    expected = reference_heatmaps(kp, None, (64, 64), limbs=limbs)
    assert max_abs_diff(limb_heatmaps(kp, None, (64, 64), limbs), expected) <= 1e-5


def test_joint_edges_and_sizes_match_reference():
    """Windows cut by every edge, images smaller than a window, several sigmas."""
    rng = np.random.default_rng(12)
    for size in [(2, 3), (5, 5), (7, 4), (9, 16)]:
        height, width = size
        edge_x = [-2.9, -2.5, -1.0, -0.4, 0.0, 0.3]
        edge_x += [width - 1.5, width - 1, width - 0.5, width + 1.7]
        edge_y = [-2.5, 0.0, 0.6, height - 1, height - 0.2, height + 1.7]
        kp = np.array([[x, y] for x in edge_x for y in edge_y], np.float32)[None, None]
        kp = np.concatenate([kp, rng.uniform(-3, max(size) + 3, kp.shape).astype(np.float32)], 1)
        for sigma in [0.3, 0.6, 1.5]:
            expected = reference_heatmaps(kp, None, size, sigma)
            actual = joint_heatmaps(kp, None, size, sigma)
            assert max_abs_diff(actual, expected) <= 1e-5, (size, sigma)


@pytest.mark.parametrize("m", [1, 2, 3])
def test_joint_scores_zero_negative_and_eps(m):
    """Zero and negative confidences draw nothing, with and without eps."""
    size = (48, 64)
    kp, score = random_clip(13, m, size=size)
    score[:, :, 2] = -0.5
    score[:, 2:4, 5] = 0.0
    for eps in [1e-4, 0.0, -1.0]:
        expected = reference_heatmaps(kp, score, size, eps=eps)
        assert max_abs_diff(joint_heatmaps(kp, score, size, eps=eps), expected) <= 1e-5
        assert expected[2].max() == 0


def test_one_person_equals_two_with_an_absent_one():
    """The single-person path (plain writes) and the max over persons agree."""
    size = (56, 56)
    kp, score = random_clip(14, 1, size=size)
    absent_kp = np.concatenate([kp, kp[:, ::-1] + 0.5])  # a second person, never drawn
    absent_score = np.concatenate([score, np.zeros_like(score)])
    one = joint_heatmaps(kp, score, size)
    torch.testing.assert_close(joint_heatmaps(absent_kp, absent_score, size), one, atol=0, rtol=0)
    # The same person twice: the max of two equal patches.
    twice = joint_heatmaps(np.concatenate([kp, kp]), np.concatenate([score, score]), size)
    torch.testing.assert_close(twice, one, atol=0, rtol=0)


@pytest.mark.parametrize("m", [1, 2])
def test_dense_joint_path_matches_reference(monkeypatch, m):
    """The dense outer products used on GPUs, run on the CPU, match the reference."""
    size = (48, 64)
    kp, score = random_clip(15, m, size=size)
    expected_sparse = joint_heatmaps(kp, score, size)
    monkeypatch.setattr(heatmaps, "_scatter_joints", heatmaps._dense_joints)
    actual = joint_heatmaps(kp, score, size)
    assert max_abs_diff(actual, reference_heatmaps(kp, score, size)) <= 1e-5
    # The CPU path's exp is numpy's, the dense path's torch's: each within an
    # ulp, so the two may differ by 2 ulps of values up to 1.
    torch.testing.assert_close(actual, expected_sparse, atol=2.5e-7, rtol=0)


def test_joint_outputs_are_fresh_and_contiguous():
    kp, score = random_clip(16, 1)
    first = joint_heatmaps(kp, score, (48, 64))
    expected = first.clone()
    second = joint_heatmaps(kp, score, (48, 64))
    second.fill_(7.0)  # writing one result leaves the other alone
    assert first.is_contiguous() and torch.equal(first, expected)


def test_score_none_is_all_ones():
    kp, _ = random_clip(3, 2)
    ones = np.ones(kp.shape[:-1], np.float32)
    for fn, extra in ((joint_heatmaps, ()), (limb_heatmaps, (LIMBS,))):
        torch.testing.assert_close(fn(kp, None, (48, 64), *extra), fn(kp, ones, (48, 64), *extra))


# ------------------------------------------------------------------ batched forms


def test_batched_equals_stacked():
    size = (48, 64)
    clips = [random_clip(seed, 2, size=size) for seed in (4, 5, 6)]
    kp = torch.from_numpy(np.stack([c[0] for c in clips]))
    score = torch.from_numpy(np.stack([c[1] for c in clips]))
    joints = batch_joint_heatmaps(kp, score, size)
    limbs = batch_limb_heatmaps(kp, score, size, LIMBS, sigma=1.0)
    assert joints.shape == (3, V, 6, *size) and limbs.shape == (3, len(LIMBS), 6, *size)
    for i in range(3):
        torch.testing.assert_close(joints[i], joint_heatmaps(kp[i], score[i], size))
        torch.testing.assert_close(limbs[i], limb_heatmaps(kp[i], score[i], size, LIMBS, 1.0))


@pytest.mark.parametrize("budget", [1, 2**30])
def test_limb_grouping_does_not_change_the_result(monkeypatch, budget):
    """One limb channel per group, or all of them in one group: the same heatmaps."""
    kp, score = random_clip(10, 2)
    expected = limb_heatmaps(kp, score, (48, 64), LIMBS)
    monkeypatch.setattr(heatmaps, "_CPU_CHUNK_ELEMENTS", budget)
    torch.testing.assert_close(limb_heatmaps(kp, score, (48, 64), LIMBS), expected)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    kp, score = random_clip(11, 2)
    kp, score = torch.from_numpy(kp), torch.from_numpy(score)
    for fn, extra in ((joint_heatmaps, ()), (limb_heatmaps, (LIMBS,))):
        on_gpu = fn(kp.cuda(), score.cuda(), (48, 64), *extra)
        assert on_gpu.device.type == "cuda"
        torch.testing.assert_close(on_gpu.cpu(), fn(kp, score, (48, 64), *extra), atol=1e-6, rtol=0)


# ------------------------------------------------------------------ hand-checked cases


def one_joint(x: float, y: float, size=(12, 16), sigma=0.6) -> torch.Tensor:
    """``(H, W)`` heatmap of a single joint at ``(x, y)`` with score 1."""
    kp = torch.tensor([[[[x, y]]]])  # (M=1, T=1, V=1, 2)
    return joint_heatmaps(kp, torch.ones(1, 1, 1), size, sigma)[0, 0]


def test_single_joint_by_hand():
    sigma = 0.6
    heat = one_joint(5.0, 7.0, sigma=sigma)
    assert heat[7, 5] == 1.0 and heat.max() == 1.0  # peak on the pixel centre
    assert heat[7, 6].item() == pytest.approx(math.exp(-1 / (2 * sigma**2)), rel=1e-6)
    assert heat[8, 6].item() == pytest.approx(math.exp(-2 / (2 * sigma**2)), rel=1e-6)
    # Window: int(5 - 1.8) = 3 <= x < int(5 + 1.8) + 1 = 7, likewise 5 <= y < 9.
    assert heat[7, 3] > 0 and heat[7, 6] > 0
    assert heat[7, 2] == 0 and heat[7, 7] == 0
    assert heat[5, 5] > 0 and heat[9, 5] == 0 and heat[4, 5] == 0
    assert (heat > 0).sum() == 4 * 4


def test_window_truncates_toward_zero():
    """int() of a negative number rounds up: the window ends later than with floor."""
    # x = -2.5: int(-4.3) = -4 -> 0 and int(-0.7) + 1 = 1, so column 0 is drawn.
    heat = one_joint(-2.5, 5.0)
    assert heat[5, 0].item() == pytest.approx(math.exp(-(2.5**2) / 0.72), rel=1e-6)
    assert heat[:, 1:].sum() == 0
    # x = -2.9: int(-1.1) + 1 = 0, an empty window although column 0 is 2.9 px away.
    assert one_joint(-2.9, 5.0).sum() == 0
    # Past the right edge the window is clipped to the image.
    heat = one_joint(16 + 1.5, 5.0)
    assert heat[5, 15].item() == pytest.approx(math.exp(-(2.5**2) / 0.72), rel=1e-6)


def test_single_limb_by_hand():
    sigma = 0.6
    kp = torch.tensor([[[[2.0, 5.0], [10.0, 5.0]]]])  # a horizontal limb
    heat = limb_heatmaps(kp, None, (12, 16), [(0, 1)], sigma)[0, 0]
    assert torch.all(heat[5, 2:11] == 1.0)
    assert heat[6, 4].item() == pytest.approx(math.exp(-1 / (2 * sigma**2)), rel=1e-6)
    assert heat[5, 11].item() == pytest.approx(math.exp(-1 / (2 * sigma**2)), rel=1e-6)
    # Window: int(10 + 1.8) + 1 = 12 cuts the cap beyond x = 11.
    assert heat[5, 12] == 0 and heat[5, 0] > 0 and heat[8, 5] == 0


def test_scores_scale_and_persons_merge_by_max():
    kp = torch.tensor([[[[5.0, 5.0]]], [[[5.0, 5.0]]]])  # two persons, same place
    heat = joint_heatmaps(kp, torch.tensor([[[0.3]], [[0.8]]]), (10, 10))
    assert heat[0, 0, 5, 5].item() == pytest.approx(0.8)  # max, not sum
    limb_kp = torch.tensor([[[[1.0, 1.0], [8.0, 8.0]]]])
    heat = limb_heatmaps(limb_kp, torch.tensor([[[0.9, 0.4]]]), (10, 10), [(0, 1)])
    assert heat.max().item() == pytest.approx(0.4)  # the smaller endpoint score


def test_missing_and_non_finite_joints_draw_nothing():
    kp = torch.tensor([[[[3.0, 3.0], [math.nan, 2.0], [math.inf, 4.0], [5.0, 6.0]]]])
    score = torch.tensor([[[0.0, 1.0, 1.0, 1.0]]])
    joints = joint_heatmaps(kp, score, (8, 8))
    assert torch.all(joints[:3] == 0) and joints[3].max() == 1.0
    limbs = limb_heatmaps(kp, score, (8, 8), [(0, 3), (1, 3), (2, 3), (3, 3)])
    assert torch.all(limbs[:3] == 0) and limbs[3].max() == 1.0
    assert joint_heatmaps(torch.zeros(0, 2, 3, 2), None, (8, 8)).shape == (3, 2, 8, 8)
    assert limb_heatmaps(torch.zeros(0, 2, 3, 2), None, (8, 8), [(0, 1)]).sum() == 0


def test_input_checks():
    kp = torch.zeros(1, 2, 3, 2)
    with pytest.raises(ValueError, match="keypoint"):
        joint_heatmaps(torch.zeros(1, 2, 3, 3), None, (8, 8))
    with pytest.raises(ValueError, match="score"):
        joint_heatmaps(kp, torch.ones(1, 2, 4), (8, 8))
    with pytest.raises(ValueError, match="limb indices"):
        limb_heatmaps(kp, None, (8, 8), [(0, 3)])
    with pytest.raises(ValueError, match="sigma"):
        joint_heatmaps(kp, None, (8, 8), sigma=0.0)


def test_float64_input_gives_float32():
    kp, score = random_clip(8, 1)
    heat = joint_heatmaps(torch.from_numpy(kp).double(), torch.from_numpy(score).double(), (48, 64))
    assert heat.dtype == torch.float32
    torch.testing.assert_close(heat, joint_heatmaps(kp, score, (48, 64)))


# ------------------------------------------------------------------ optional: mmaction2 itself


def test_matches_mmaction2(mmaction):
    from mmaction.datasets.transforms import GeneratePoseTarget

    size = (48, 64)
    kp, score = random_clip(9, 2, size=size)
    for with_limb, expected_fn in (
        (False, lambda: joint_heatmaps(kp, score, size, 0.6)),
        (True, lambda: limb_heatmaps(kp, score, size, LIMBS, 0.6)),
    ):
        transform = GeneratePoseTarget(
            sigma=0.6, use_score=True, with_kp=not with_limb, with_limb=with_limb, skeletons=LIMBS
        )
        results = {"keypoint": kp.copy(), "keypoint_score": score.copy(), "img_shape": size}
        imgs = transform.transform(results)["imgs"]  # (T, C, H, W)
        assert max_abs_diff(expected_fn(), imgs.transpose(1, 0, 2, 3)) <= 1e-5
