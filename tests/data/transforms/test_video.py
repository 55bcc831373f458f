from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torchvision.transforms.v2.functional as TF

from mgr.data.transforms import video as vt
from mgr.data.transforms.video import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    center_crop,
    crop,
    flip_keypoints_x,
    hflip,
    normalize,
    random_resized_crop,
    random_resized_crop_box,
    resize,
    saliency_crop,
    saliency_crop_box,
    taylor_video,
    to_tensor_video,
)

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
DTYPES = [torch.uint8, torch.float32]


def make_video(dtype: torch.dtype, device: str, shape=(3, 3, 20, 30), seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    video = torch.randint(0, 256, shape, generator=gen, dtype=torch.uint8)
    if dtype.is_floating_point:
        video = video.to(dtype) / 255
    return video.to(device)


def test_to_tensor_video() -> None:
    frames = np.random.default_rng(0).integers(0, 256, (4, 6, 8, 3), dtype=np.uint8)
    out = to_tensor_video(frames)
    assert out.shape == (4, 3, 6, 8) and out.dtype == torch.uint8 and out.is_contiguous()
    np.testing.assert_array_equal(out.numpy(), frames.transpose(0, 3, 1, 2))
    with pytest.raises(ValueError, match="uint8"):
        to_tensor_video(frames.astype(np.float32))
    with pytest.raises(ValueError, match=r"\(T, H, W, 3\)"):
        to_tensor_video(frames[..., :2])


# --- geometry against torchvision ---------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    ("shape", "size", "short_side", "expected"),
    [
        ((20, 30), 10, True, (10, 15)),
        ((30, 20), 10, True, (15, 10)),
        ((20, 30), 7, True, (7, 10)),  # int(7 * 30 / 20) = 10: the long side truncates
        ((20, 30), 40, True, (40, 60)),  # upsampling
        ((20, 30), 12, False, (12, 12)),
        ((20, 30), (9, 25), True, (9, 25)),
    ],
)
def test_resize_matches_torchvision(device, dtype, shape, size, short_side, expected) -> None:
    video = make_video(dtype, device, (3, 3, *shape))
    out = resize(video, size, short_side=short_side)
    assert out.shape == (3, 3, *expected) and out.dtype == dtype and out.device == video.device
    # torchvision's reference on the CPU: an int means "short side", a list an explicit size.
    ref = TF.resize(video.cpu(), list(expected), antialias=True)
    if dtype == torch.uint8:
        # torchvision's uint8 kernel rounds in fixed point; ours rounds a float result.
        assert (out.cpu().int() - ref.int()).abs().max() <= 1
    else:
        torch.testing.assert_close(out.cpu(), ref, atol=1e-5, rtol=0)
    if short_side and isinstance(size, int):
        torch.testing.assert_close(TF.resize(video.cpu(), size, antialias=True).shape, ref.shape)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_resize_half_precision_on_cpu(dtype) -> None:
    # Optical flow is stored as float16 (.npy); torch has no CPU kernel for the
    # antialiased half-precision resize. Reference: torchvision on the float32 values.
    video = torch.randn(2, 2, 36, 64, generator=torch.Generator().manual_seed(0)).to(dtype)
    out = resize(video, (9, 16))
    assert out.shape == (2, 2, 9, 16) and out.dtype == dtype
    ref = TF.resize(video.float(), [9, 16], antialias=True)
    torch.testing.assert_close(out.float(), ref, atol=1e-2, rtol=1e-2)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_crop_center_crop_hflip_match_torchvision(device, dtype) -> None:
    video = make_video(dtype, device)
    torch.testing.assert_close(crop(video, 2, 5, 10, 7), TF.crop(video, 2, 5, 10, 7))
    # Odd and even leftover margins: torchvision rounds half to even, (20 - 17) / 2 = 1.5 -> 2.
    for size in (8, 19, (17, 30), (20, 25), (5, 3)):
        torch.testing.assert_close(
            center_crop(video, size),
            TF.center_crop(video, list(size) if isinstance(size, tuple) else [size]),
        )
    torch.testing.assert_close(hflip(video), TF.horizontal_flip(video))
    np.testing.assert_array_equal(hflip(video).cpu().numpy(), video.cpu().numpy()[..., ::-1])


def test_crop_rejects_boxes_outside_the_image() -> None:
    video = make_video(torch.uint8, "cpu")
    for box in [(-1, 0, 5, 5), (0, 0, 21, 5), (0, 26, 5, 5), (0, 0, 0, 5)]:
        with pytest.raises(ValueError, match="not inside the 20x30"):
            crop(video, *box)
    with pytest.raises(ValueError, match="not inside"):
        center_crop(video, 24)
    with pytest.raises(ValueError, match=r"\(T, C, H, W\)"):
        hflip(video[0])


@pytest.mark.parametrize("device", DEVICES)
def test_normalize_matches_torchvision(device) -> None:
    video = make_video(torch.uint8, device)
    scaled = TF.to_dtype(video, torch.float32, scale=True)
    expected = TF.normalize(scaled, list(IMAGENET_MEAN), list(IMAGENET_STD))
    out = normalize(video)
    assert out.dtype == torch.float32 and out.device == video.device
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(normalize(scaled), expected)  # float input: not rescaled
    mean, std = (0.1, 0.2, 0.3), (0.5, 2.0, 4.0)
    torch.testing.assert_close(normalize(scaled, mean, std), TF.normalize(scaled, mean, std))
    with pytest.raises(ValueError, match="3 values"):
        normalize(video, (0.5,), (0.5,))


# --- random resized crop ------------------------------------------------------------------


def test_random_resized_crop_box_is_seeded_and_inside() -> None:
    boxes = [random_resized_crop_box(40, 60, rng=np.random.default_rng(s)) for s in range(300)]
    again = [random_resized_crop_box(40, 60, rng=np.random.default_rng(s)) for s in range(300)]
    assert boxes == again
    assert len(set(boxes)) > 250  # it is random across seeds
    for top, left, h, w in boxes:
        assert 0 <= top and 0 <= left and h > 0 and w > 0
        assert top + h <= 40 and left + w <= 60
    # Boxes that did not fall back honour the drawn area and aspect ranges (up to rounding).
    areas = np.array([h * w / (40 * 60) for _, _, h, w in boxes])
    ratios = np.array([w / h for _, _, h, w in boxes])
    assert areas.min() >= 0.08 * 0.8 and areas.max() <= 1.0
    assert ratios.min() >= 0.75 * 0.8 and ratios.max() <= 4 / 3 * 1.25


def test_random_resized_crop_box_fallback() -> None:
    # No box of >= 90% area with aspect in [3/4, 4/3] fits a 10x100 strip: torchvision then
    # takes the largest centred box with the aspect clamped to 4/3: h = 10, w = round(13.3).
    rng = np.random.default_rng(0)
    assert random_resized_crop_box(10, 100, scale=(0.9, 1.0), rng=rng) == (0, 43, 10, 13)
    assert random_resized_crop_box(100, 10, scale=(0.9, 1.0), rng=rng) == (43, 0, 13, 10)
    # An aspect inside the range: the whole image.
    assert random_resized_crop_box(10, 12, scale=(2.0, 3.0), rng=rng) == (0, 0, 10, 12)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_random_resized_crop_matches_torchvision(device, dtype) -> None:
    video = make_video(dtype, device)
    box = random_resized_crop_box(20, 30, scale=(0.3, 1.0), rng=np.random.default_rng(7))
    out = random_resized_crop(video, 16, scale=(0.3, 1.0), rng=np.random.default_rng(7))
    assert out.shape == (3, 3, 16, 16) and out.dtype == dtype and out.device == video.device
    ref = TF.resized_crop(video.cpu(), *box, [16, 16], antialias=True)
    if dtype == torch.uint8:
        assert (out.cpu().int() - ref.int()).abs().max() <= 1
    else:
        torch.testing.assert_close(out.cpu(), ref, atol=1e-5, rtol=0)


# --- flips of video and keypoints -------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
def test_flip_keypoints_x_follows_the_pixels(device) -> None:
    height, width = 12, 17
    spots = [(3, 5), (0, 16), (11, 1), (6, 8)]  # (row, column) of bright pixels
    video = torch.zeros((2, 3, height, width), dtype=torch.uint8, device=device)
    keypoint = np.zeros((2, len(spots) + 1, 3), dtype=np.float32)  # (T, V, x/y/score)
    for v, (row, col) in enumerate(spots):
        video[:, :, row, col] = 255
        keypoint[:, v] = (col, row, 0.5 + 0.1 * v)
    # The last joint stays (0, 0): missing.
    flipped = hflip(video)
    for kp in (
        flip_keypoints_x(keypoint, width),
        flip_keypoints_x(torch.as_tensor(keypoint).to(device), width),
    ):
        kp = kp.cpu().numpy() if isinstance(kp, torch.Tensor) else kp
        for v in range(len(spots)):
            x, y = kp[0, v, :2].astype(int)
            assert flipped[0, :, y, x].eq(255).all()
            assert kp[0, v, 0] == width - 1 - spots[v][1]
        np.testing.assert_array_equal(kp[:, -1], 0)  # missing joint unchanged
        np.testing.assert_array_equal(kp[..., 1:], keypoint[..., 1:])  # y and score kept
    tensor_out = flip_keypoints_x(torch.as_tensor(keypoint).to(device), width)
    assert isinstance(tensor_out, torch.Tensor) and tensor_out.device == video.device
    assert isinstance(flip_keypoints_x(keypoint, width), np.ndarray)
    assert keypoint[0, 0, 0] == spots[0][1]  # the input is not modified


@pytest.mark.parametrize("device", DEVICES)
def test_test_views(device) -> None:
    video = make_video(torch.float32, device)
    one = vt.test_views(video, flip=False)
    assert one.shape == (1, *video.shape)
    torch.testing.assert_close(one[0], video)
    two = vt.test_views(video, flip=True)
    assert two.shape == (2, *video.shape) and two.device == video.device
    torch.testing.assert_close(two[1], TF.horizontal_flip(video))


# --- saliency crop ------------------------------------------------------------------------


def test_saliency_crop_box_hand_computed() -> None:
    # Valid points span x 10..30 and y 20..60 -> w = 20, h = 40; a 20% margin on each side
    # adds 4 px left/right and 8 px top/bottom: x 6..34, y 12..68 -> left 6, right 35
    # (exclusive), top 12, bottom 69.
    keypoint = np.array(
        [
            [[10, 20], [30, 25], [0, 0]],  # (0, 0): a missing OpenPose joint
            [[15, 60], [70, 90], [20, 40]],  # (70, 90) has a zero score
        ],
        dtype=np.float32,
    )
    score = np.array([[0.9, 0.8, 0.0], [0.7, 0.0, 0.6]], dtype=np.float32)
    assert saliency_crop_box(keypoint, score, (100, 80)) == (12, 6, 57, 29)
    # Without scores the (70, 90) point counts: x 10..70 (w 60), y 20..90 (h 70) ->
    # x -2..82 clipped to 0..80, y 6..104 clipped to 6..100.
    assert saliency_crop_box(keypoint, None, (100, 80)) == (6, 0, 94, 80)
    # A threshold of 0.75 keeps only (10, 20) and (30, 25): x 10..30 (w 20), y 20..25 (h 5)
    # -> x 6..34 (left 6, right 35), y 19..26 (top 19, bottom 27).
    assert saliency_crop_box(keypoint, score, (100, 80), threshold=0.75) == (19, 6, 8, 29)
    # margin=0: the tight box.
    assert saliency_crop_box(keypoint, score, (100, 80), margin=0.0) == (20, 10, 41, 21)


def test_saliency_crop_box_multi_person_and_no_valid_keypoint() -> None:
    keypoint = np.zeros((2, 3, 4, 2), dtype=np.float32)  # (M, T, V, 2)
    score = np.ones((2, 3, 4), dtype=np.float32)
    assert saliency_crop_box(keypoint, score, (50, 60)) == (0, 0, 50, 60)  # all missing
    keypoint[0, 1, 2] = (10, 10)
    keypoint[1, 2, 0] = (20, 30)
    # x 10..20 (w 10), y 10..30 (h 20), margin 0.5: x 5..25 -> 5..26, y 0..40 -> 0..41.
    assert saliency_crop_box(keypoint, score, (50, 60), margin=0.5) == (0, 5, 41, 21)
    assert saliency_crop_box(keypoint, np.zeros_like(score), (50, 60)) == (0, 0, 50, 60)
    with pytest.raises(ValueError, match="score shape"):
        saliency_crop_box(keypoint, score[0], (50, 60))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_saliency_crop(device, dtype) -> None:
    video = make_video(dtype, device, (2, 3, 40, 48))
    keypoint = np.array([[[10, 8], [20, 30]], [[12, 9], [25, 28]]], dtype=np.float32)
    out, box = saliency_crop(video, keypoint, None, size=16, margin=0.2)
    # x 10..25 (w 15) -> 7..28 -> 7..29; y 8..30 (h 22) -> 3.6..34.4 -> 3..35.
    assert box == (3, 7, 32, 22)
    assert out.shape == (2, 3, 16, 16) and out.dtype == dtype and out.device == video.device
    ref = TF.resized_crop(video.cpu(), *box, [16, 16], antialias=True)
    if dtype == torch.uint8:
        assert (out.cpu().int() - ref.int()).abs().max() <= 1
    else:
        torch.testing.assert_close(out.cpu(), ref, atol=1e-5, rtol=0)


# --- Taylor video -------------------------------------------------------------------------


def taylor_reference(video: np.ndarray, order: int, window: int) -> np.ndarray:
    """Plain loops over the definition: per block, the k-th differences that fit, / k!."""
    num = video.shape[0]
    win = min(window, num)
    frames = []
    for t in range(num - win + 1):
        block = video[t : t + win]
        frames.append(
            sum(np.diff(block, n=k, axis=0).sum(0) / math.factorial(k) for k in range(1, order + 1))
        )
    frames += [frames[-1]] * (num - len(frames))
    return np.stack(frames)


@pytest.mark.parametrize("device", DEVICES)
def test_taylor_video_static_and_ramp(device) -> None:
    static = make_video(torch.float32, device, (1, 3, 5, 6)).expand(8, -1, -1, -1)
    out = taylor_video(static, order=2, window=4)
    assert out.shape == static.shape and out.device == static.device
    assert out.abs().max() == 0
    # f(t) = a + b t: every first difference is b, higher ones vanish -> (window - 1) * b.
    a = torch.rand(1, 3, 5, 6, generator=torch.Generator().manual_seed(1)).to(device)
    b = torch.rand(1, 3, 5, 6, generator=torch.Generator().manual_seed(2)).to(device) - 0.5
    t = torch.arange(10, dtype=torch.float32, device=device).view(-1, 1, 1, 1)
    ramp = a + b * t
    for order, window in [(1, 4), (2, 4), (3, 5)]:
        expected = ((window - 1) * b).expand(10, -1, -1, -1)
        torch.testing.assert_close(taylor_video(ramp, order=order, window=window), expected)


def test_taylor_video_quadratic_closed_form() -> None:
    # f(t) = c t^2: sum of first differences over a block of W frames is
    # c ((t + W - 1)^2 - t^2); each second difference is 2c, and W - 2 of them fit -> / 2!.
    c, num, window = 0.25, 9, 4
    t = np.arange(num, dtype=np.float64)
    video = torch.as_tensor(c * t**2).view(-1, 1, 1, 1).expand(-1, 2, 3, 3).contiguous()
    out = taylor_video(video, order=2, window=window)[:, 0, 0, 0].numpy()
    valid = np.arange(num - window + 1)
    expected = c * ((valid + window - 1) ** 2 - valid**2) + c * (window - 2)
    np.testing.assert_allclose(out[: len(valid)], expected)
    np.testing.assert_allclose(out[len(valid) :], expected[-1])  # replicate padding
    # order 1 drops the second-order term.
    out1 = taylor_video(video, order=1, window=window)[: len(valid), 0, 0, 0].numpy()
    np.testing.assert_allclose(out1, c * ((valid + window - 1) ** 2 - valid**2))


@pytest.mark.parametrize(("order", "window", "num"), [(2, 4, 7), (3, 6, 8), (1, 2, 5), (2, 8, 5)])
def test_taylor_video_matches_plain_loops(order, window, num) -> None:
    video = make_video(torch.uint8, "cpu", (num, 3, 4, 5))
    out = taylor_video(video, order=order, window=window)
    assert out.dtype == torch.float32 and out.shape == video.shape
    expected = taylor_reference(video.numpy().astype(np.float64) / 255, order, window)
    np.testing.assert_allclose(out.numpy(), expected, atol=1e-5)


def test_taylor_video_rejects_bad_arguments() -> None:
    video = make_video(torch.float32, "cpu", (4, 3, 4, 5))
    with pytest.raises(ValueError, match="window > order"):
        taylor_video(video, order=3, window=3)
    with pytest.raises(ValueError, match="order"):
        taylor_video(video, order=0)
    with pytest.raises(ValueError, match="needs more than 4 frames"):
        taylor_video(video, order=4, window=6)


# ------------------------------------------------------------------ device-side finishing


def _cpu_path(clip: torch.Tensor, flip: bool, mean, std, taylor) -> torch.Tensor:
    """What the workers computed before: per view, on ``(T, C, H, W)`` uint8 frames."""
    if taylor is not None:
        out = vt.taylor_video(clip.float() / 255.0, order=taylor[0], window=taylor[1])
    else:
        out = vt.normalize(clip, mean, std)
    return vt.hflip(out) if flip else out


@pytest.mark.parametrize("taylor", [None, (2, 4), (1, 3)])
@pytest.mark.parametrize("views", [None, 3])
def test_finish_video_batch_matches_the_cpu_path(taylor, views) -> None:
    gen = torch.Generator().manual_seed(0)
    b, c, t, h, w = 4, 3, 6, 10, 12
    lead = (b,) if views is None else (b, views)
    video = torch.randint(0, 256, (*lead, c, t, h, w), dtype=torch.uint8, generator=gen)
    flip = torch.rand(lead, generator=gen) < 0.5
    flip.view(-1)[0], flip.view(-1)[1] = True, False  # both kinds present
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    batch = {"video": video.clone(), "video_flip": flip, "label": torch.arange(b)}
    if taylor is not None:
        batch["video_taylor"] = torch.tensor(taylor).expand(*lead, 2)
    else:
        batch["video_mean"] = torch.tensor(mean).expand(*lead, c)
        batch["video_std"] = torch.tensor(std).expand(*lead, c)
    out = vt.finish_video_batch(batch)
    assert set(out) == {"video", "label"}  # the recipe is consumed
    assert out["video"].dtype == torch.float32 and out["video"].shape == video.shape
    flat_in = video.flatten(0, len(lead) - 1)
    flat_out = out["video"].flatten(0, len(lead) - 1)
    for i, f in enumerate(flip.reshape(-1).tolist()):
        # (C, T, H, W) -> the CPU path's (T, C, H, W)
        want = _cpu_path(flat_in[i].transpose(0, 1), f, mean, std, taylor).transpose(0, 1)
        torch.testing.assert_close(flat_out[i], want, rtol=0, atol=1e-6)
    # Idempotent: a finished batch passes through unchanged.
    again = vt.finish_video_batch(dict(out))
    assert again["video"] is out["video"]


def test_finish_video_batch_keeps_float_media_and_refuses_a_missing_recipe() -> None:
    flow = torch.randn(2, 2, 4, 6, 6)
    out = vt.finish_video_batch({"video": flow.clone(), "video_flip": torch.tensor([True, False])})
    torch.testing.assert_close(out["video"][0], flow[0].flip(-1))
    torch.testing.assert_close(out["video"][1], flow[1])
    # float16 arrays (flow stored in half precision) reach the model as float32.
    half = flow.half()
    out = vt.finish_video_batch({"video": half.clone(), "video_flip": torch.tensor([True, False])})
    assert out["video"].dtype == torch.float32
    torch.testing.assert_close(out["video"][0], half[0].flip(-1).float(), atol=0, rtol=0)
    raw = torch.zeros(2, 3, 4, 6, 6, dtype=torch.uint8)
    with pytest.raises(KeyError, match="video_mean"):
        vt.finish_video_batch({"video": raw, "video_flip": torch.tensor([False, False])})
