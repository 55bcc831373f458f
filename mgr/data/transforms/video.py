"""Video transforms on one clip ``(T, C, H, W)`` (torch; uint8 or float; CPU or CUDA).

Every transform works on the tensor's own device and keeps the time axis first, so the same
spatial operation (one crop box, one flip) applies to all frames of the clip. The batch
contract's ``video (B, 3, T, H, W)`` is a permute of stacked clips, done by the dataset.

Geometry follows torchvision's conventions (``torchvision.transforms.v2.functional``):
pixel ``(row, column)`` covers ``[row, row + 1) x [column, column + 1)``, boxes are
``(top, left, height, width)``. Unlike torchvision, crops never pad: a box outside the image
is an error.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "VIDEO_RECIPE_KEYS",
    "center_crop",
    "crop",
    "finish_video_batch",
    "flip_keypoints_x",
    "hflip",
    "normalize",
    "random_resized_crop",
    "random_resized_crop_box",
    "resize",
    "saliency_crop",
    "saliency_crop_box",
    "taylor_video",
    "test_views",
    "to_tensor_video",
]

#: ImageNet channel means and standard deviations (RGB, for values in ``[0, 1]``).
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

Box = tuple[int, int, int, int]


def _check_video(video: Tensor) -> None:
    if not isinstance(video, Tensor) or video.ndim != 4:
        shape = tuple(video.shape) if hasattr(video, "shape") else type(video).__name__
        raise ValueError(f"expected a (T, C, H, W) video tensor, got {shape}")


def _pair(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, int | np.integer):
        return size, size
    h, w = size
    return int(h), int(w)


def to_tensor_video(frames: np.ndarray) -> Tensor:
    """Decoded frames to a video tensor.

    Args:
        frames: ``(T, H, W, 3)`` uint8 RGB frames (as :mod:`mgr.data.readers.video` returns).

    Returns:
        ``(T, 3, H, W)`` uint8 tensor (contiguous, on the CPU).
    """
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"expected uint8 (T, H, W, 3) frames, got {frames.dtype} {frames.shape}")
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).contiguous()


def _resize_to(video: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear resize (antialiased when shrinking) of every frame to ``size = (h, w)``."""
    if tuple(video.shape[-2:]) == size:
        return video.clone()
    if video.dtype == torch.uint8 and video.device.type == "cpu":
        # torch's native uint8 kernel (fixed-point weights, SIMD; fastest on channels-last
        # memory, which decoded frames have): about 9x faster than going through float, and
        # within one grey level of it.
        return F.interpolate(video, size=size, mode="bilinear", align_corners=False, antialias=True)
    if video.dtype == torch.uint8:
        # Elsewhere (CUDA has no uint8 kernel): interpolate in float and round.
        out = F.interpolate(
            video.float(), size=size, mode="bilinear", align_corners=False, antialias=True
        )
        return out.round_().clamp_(0, 255).to(torch.uint8)
    if not video.is_floating_point():
        raise TypeError(f"video must be uint8 or floating point, got {video.dtype}")
    if video.dtype in (torch.float16, torch.bfloat16) and video.device.type == "cpu":
        # No CPU kernel for the antialiased half-precision resize (float16 flow arrays at
        # their real 1280x720 size hit this): resize in float32, return the input's dtype.
        out = F.interpolate(
            video.float(), size=size, mode="bilinear", align_corners=False, antialias=True
        )
        return out.to(video.dtype)
    return F.interpolate(video, size=size, mode="bilinear", align_corners=False, antialias=True)


def resize(video: Tensor, size: int | tuple[int, int], *, short_side: bool = True) -> Tensor:
    """Bilinear, antialiased resize of every frame.

    Args:
        video: ``(T, C, H, W)`` uint8 or float video.
        size: ``(h, w)``; or an int: with ``short_side`` the shorter side becomes ``size`` and
            the longer one ``int(size * long / short)`` (aspect kept, torchvision's rule),
            without it the output is ``size x size``.
        short_side: how an int ``size`` is read.

    Returns:
        ``(T, C, h, w)`` video of the input's dtype (uint8 values rounded and clamped).
    """
    _check_video(video)
    h, w = video.shape[-2:]
    if isinstance(size, int | np.integer) and short_side:
        short, long = (h, w) if h <= w else (w, h)
        new_short, new_long = int(size), int(size * long / short)
        out_size = (new_short, new_long) if h <= w else (new_long, new_short)
    else:
        out_size = _pair(size)
    if min(out_size) <= 0:
        raise ValueError(f"resize to {out_size} (h, w): sizes must be positive")
    return _resize_to(video, out_size)


def crop(video: Tensor, top: int, left: int, height: int, width: int) -> Tensor:
    """Crop every frame to ``[top, top + height) x [left, left + width)``.

    Args:
        video: ``(T, C, H, W)`` video.
        top: first row.
        left: first column.
        height: rows of the crop (> 0).
        width: columns of the crop (> 0).

    Returns:
        ``(T, C, height, width)`` view of ``video``.

    Raises:
        ValueError: if the box is empty or not inside the image (no padding is done).
    """
    _check_video(video)
    h, w = video.shape[-2:]
    if height <= 0 or width <= 0 or top < 0 or left < 0 or top + height > h or left + width > w:
        raise ValueError(
            f"crop box (top={top}, left={left}, height={height}, width={width}) is not inside "
            f"the {h}x{w} (HxW) image"
        )
    return video[..., top : top + height, left : left + width]


def center_crop(video: Tensor, size: int | tuple[int, int]) -> Tensor:
    """Centre crop of every frame (torchvision's placement: ``round((H - h) / 2)``).

    Args:
        video: ``(T, C, H, W)`` video.
        size: ``(h, w)`` or an int for a square crop; must fit in the image.

    Returns:
        ``(T, C, h, w)`` view of ``video``.
    """
    _check_video(video)
    ch, cw = _pair(size)
    h, w = video.shape[-2:]
    return crop(video, round((h - ch) / 2.0), round((w - cw) / 2.0), ch, cw)


def random_resized_crop_box(
    height: int,
    width: int,
    *,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    rng: np.random.Generator,
) -> Box:
    """A random crop box as torchvision's ``RandomResizedCrop`` draws it.

    Up to 10 tries draw an area fraction uniformly from ``scale`` and an aspect ratio
    (width / height) log-uniformly from ``ratio``; the first box that fits is placed
    uniformly at random. If none fits, the largest centred box whose aspect ratio is
    clamped into ``ratio`` is returned.

    Args:
        height: image height ``H``.
        width: image width ``W``.
        scale: range of the crop's area as a fraction of the image's.
        ratio: range of the crop's aspect ratio (width / height).
        rng: random generator (the only source of randomness, for reproducible workers).

    Returns:
        ``(top, left, h, w)`` of a box inside the image.
    """
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target_area = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(log_ratio[0], log_ratio[1]))
        w = round(math.sqrt(target_area * aspect))
        h = round(math.sqrt(target_area / aspect))
        if 0 < w <= width and 0 < h <= height:
            top = int(rng.integers(0, height - h + 1))
            left = int(rng.integers(0, width - w + 1))
            return top, left, h, w
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h = width, round(width / min(ratio))
    elif in_ratio > max(ratio):
        h, w = height, round(height * max(ratio))
    else:
        h, w = height, width
    return (height - h) // 2, (width - w) // 2, h, w


def random_resized_crop(
    video: Tensor,
    size: int | tuple[int, int],
    *,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    rng: np.random.Generator,
) -> Tensor:
    """Crop one random box (:func:`random_resized_crop_box`) from all frames and resize it.

    Args:
        video: ``(T, C, H, W)`` uint8 or float video.
        size: output ``(h, w)``, or an int for ``size x size``.
        scale: range of the crop's area as a fraction of the image's.
        ratio: range of the crop's aspect ratio (width / height).
        rng: random generator.

    Returns:
        ``(T, C, h, w)`` video of the input's dtype.
    """
    _check_video(video)
    box = random_resized_crop_box(*video.shape[-2:], scale=scale, ratio=ratio, rng=rng)
    return _resize_to(crop(video, *box), _pair(size))


def hflip(video: Tensor) -> Tensor:
    """Mirror every frame left-right: column ``c`` moves to ``W - 1 - c``.

    When the sample also carries a skeleton, mirror it too, or the two disagree: map the
    pixel keypoints with :func:`flip_keypoints_x` *and* swap left/right joints
    (:func:`mgr.data.transforms.pose.flip_skeleton` for a skeleton; for PoseC3D keypoints,
    whose flip uses ``x -> W - x``, :func:`mgr.data.transforms.posec3d.flip_keypoints`).

    Args:
        video: ``(T, C, H, W)`` video.

    Returns:
        ``(T, C, H, W)`` mirrored copy.
    """
    _check_video(video)
    return torch.flip(video, dims=[-1])


def flip_keypoints_x(keypoint: np.ndarray | Tensor, width: int) -> np.ndarray | Tensor:
    """Mirror pixel keypoints the way :func:`hflip` mirrors the image: ``x -> W - 1 - x``.

    A joint on the pixel at column ``c`` lands on column ``W - 1 - c``, the column that pixel
    moves to. Joints at exactly ``(0, 0)`` (how OpenPose writes a missing joint) stay
    ``(0, 0)`` so that they keep meaning "missing". This does not swap left and right
    joints; see :func:`hflip`.

    Args:
        keypoint: ``(..., C)`` keypoints with ``x`` in channel 0 and ``y`` in channel 1
            (further channels, e.g. a score, are kept), numpy or torch.
        width: image width ``W`` in pixels.

    Returns:
        Mirrored keypoints, a new array/tensor of the input's type, dtype and device.
    """
    if keypoint.shape[-1] < 2:
        raise ValueError(f"keypoints need (x, y) in the last axis, got shape {keypoint.shape}")
    x, y = keypoint[..., 0], keypoint[..., 1]
    present = (x != 0) | (y != 0)
    if isinstance(keypoint, Tensor):
        out = keypoint.clone()
        out[..., 0] = torch.where(present, width - 1 - x, x)
    else:
        out = np.array(keypoint, copy=True)
        out[..., 0] = np.where(present, width - 1 - x, x)
    return out


def normalize(
    video: Tensor,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> Tensor:
    """Per-channel ``(x - mean) / std``.

    A uint8 video is first scaled to ``[0, 1]`` (divided by 255) and becomes float32, so the
    ImageNet constants apply to it directly; a float video is used as is (scale it yourself).

    Args:
        video: ``(T, C, H, W)`` uint8 or float video.
        mean: ``(C,)`` channel means.
        std: ``(C,)`` channel standard deviations (non-zero).

    Returns:
        ``(T, C, H, W)`` float video (float32 for uint8 input, else the input's dtype).
    """
    _check_video(video)
    if video.dtype == torch.uint8:
        video = video.float() / 255.0
    elif not video.is_floating_point():
        raise TypeError(f"video must be uint8 or floating point, got {video.dtype}")
    channels = video.shape[1]
    if len(mean) != channels or len(std) != channels:
        raise ValueError(f"mean/std need {channels} values, got {len(mean)} and {len(std)}")
    m = torch.as_tensor(mean, dtype=video.dtype, device=video.device).view(1, -1, 1, 1)
    s = torch.as_tensor(std, dtype=video.dtype, device=video.device).view(1, -1, 1, 1)
    if (s == 0).any():
        raise ValueError(f"std must be non-zero, got {tuple(std)}")
    return (video - m) / s


def saliency_crop_box(
    keypoint: np.ndarray,
    score: np.ndarray | None,
    image_size: tuple[int, int],
    *,
    margin: float = 0.2,
    threshold: float = 0.0,
) -> Box:
    """The person box of a clip, from its skeleton (CMPL's saliency-guided crop).

    The CMPL paper crops each clip to the extreme keypoints of the skeleton with a 20% safety
    margin before resizing to 224x224. Here: the tightest box around every valid keypoint of
    every frame (and person) is grown by ``margin`` times its own size **on each side**, i.e.
    a box ``w`` wide becomes ``w * (1 + 2 * margin)`` wide (likewise for the height), then
    clipped to the image. In pixels: ``left = floor(x_min - margin * w)`` and ``right =
    floor(x_max + margin * w) + 1`` (exclusive, so the pixel under ``x_max`` is inside), the
    same for rows. A keypoint is valid if its score is ``> threshold`` (when scores are
    given), it is finite, and it is not exactly ``(0, 0)`` (a missing OpenPose joint).

    With no valid keypoint the whole image is returned: nothing tells where the person is,
    and the full frame still contains them.

    Args:
        keypoint: ``(T, V, 2)`` or ``(M, T, V, 2)`` pixel keypoints ``(x, y)`` (further
            channels are ignored) in the frame of ``image_size``.
        score: ``(T, V)`` or ``(M, T, V)`` confidences, or ``None``.
        image_size: ``(H, W)`` of the video frames.
        margin: growth of the box on each side, as a fraction of its width/height.
        threshold: keypoints with a score ``<= threshold`` are ignored.

    Returns:
        ``(top, left, h, w)`` of a non-empty box inside the image.
    """
    kp = np.asarray(keypoint, dtype=np.float64)
    if kp.ndim not in (3, 4) or kp.shape[-1] < 2:
        raise ValueError(f"keypoint must be (T, V, 2) or (M, T, V, 2), got {kp.shape}")
    height, width = image_size
    xy = kp[..., :2]
    valid = np.isfinite(xy).all(-1) & (xy != 0).any(-1)
    if score is not None:
        score = np.asarray(score)
        if score.shape != kp.shape[:-1]:
            raise ValueError(f"score shape {score.shape} does not match keypoints {kp.shape}")
        valid &= score > threshold
    if not valid.any():
        return 0, 0, height, width
    pts = xy[valid]
    (x0, y0), (x1, y1) = pts.min(0), pts.max(0)
    dx, dy = margin * (x1 - x0), margin * (y1 - y0)
    left = min(max(math.floor(x0 - dx), 0), width - 1)
    top = min(max(math.floor(y0 - dy), 0), height - 1)
    right = max(min(math.floor(x1 + dx) + 1, width), left + 1)
    bottom = max(min(math.floor(y1 + dy) + 1, height), top + 1)
    return top, left, bottom - top, right - left


def saliency_crop(
    video: Tensor,
    keypoint: np.ndarray,
    score: np.ndarray | None,
    *,
    size: int | tuple[int, int] = 224,
    margin: float = 0.2,
    threshold: float = 0.0,
) -> tuple[Tensor, Box]:
    """Crop the clip to its skeleton's person box and resize it (CMPL's vision branch).

    The box (:func:`saliency_crop_box`) is resized to ``size`` regardless of its aspect
    ratio, as the paper's fixed 224x224 input implies.

    Args:
        video: ``(T, C, H, W)`` uint8 or float video.
        keypoint: ``(T', V, 2)`` or ``(M, T', V, 2)`` pixel keypoints in the video's frame.
        score: ``(T', V)`` or ``(M, T', V)`` confidences, or ``None``.
        size: output ``(h, w)``, or an int for ``size x size``.
        margin: growth of the box on each side, as a fraction of its width/height.
        threshold: keypoints with a score ``<= threshold`` are ignored.

    Returns:
        ``(video (T, C, h, w), (top, left, box_h, box_w))``.
    """
    _check_video(video)
    box = saliency_crop_box(
        keypoint, score, tuple(video.shape[-2:]), margin=margin, threshold=threshold
    )
    return _resize_to(crop(video, *box), _pair(size)), box


def taylor_video(video: Tensor, *, order: int = 2, window: int = 4) -> Tensor:
    """Taylor video (Wang et al., ICML 2024): the dominant motion of short temporal blocks.

    A Taylor frame expands the block of ``window`` frames starting at ``t`` around its first
    frame and keeps only the motion terms, i.e. drops the zeroth-order (static appearance)
    term. With forward differences ``D^k f(s) = sum_j (-1)^(k-j) C(k, j) f(s + j)`` standing
    in for the ``k``-th temporal derivatives, this implementation computes, per pixel and
    channel::

        taylor(t) = sum_{k=1..order} 1/k! * sum_{s=t..t+window-1-k} D^k f(s)

    i.e. the ``k``-th order term sums every ``k``-th difference that fits in the block. By
    telescoping, the inner sum equals ``D^(k-1) f(t+window-k) - D^(k-1) f(t)``, which is how
    it is evaluated. A static video gives zeros; a linear ramp ``f(t) = a + b t`` gives the
    constant ``(window - 1) * b``.

    Frames ``t = 0 .. T - window`` have a full block; the output keeps ``T`` frames by
    repeating the last of those at the end (replicate padding). A clip shorter than
    ``window`` uses one block of all its frames. Colour channels are kept (the paper works
    on grey frames; MM-Gesture feeds 3-channel Taylor videos to Video Swin).

    Args:
        video: ``(T, C, H, W)`` video, ``T > order``; uint8 is scaled to ``[0, 1]`` first.
        order: highest derivative order kept (``>= 1``).
        window: frames per block (``> order``).

    Returns:
        ``(T, C, H, W)`` float Taylor video (float32 for uint8 input).
    """
    _check_video(video)
    if video.dtype == torch.uint8:
        video = video.float() / 255.0
    elif not video.is_floating_point():
        raise TypeError(f"video must be uint8 or floating point, got {video.dtype}")
    return _taylor(video, order, window)


def _taylor(video: Tensor, order: int, window: int) -> Tensor:
    """:func:`taylor_video` of a float tensor with time on its first axis (any other axes)."""
    if order < 1 or window <= order:
        raise ValueError(f"need order >= 1 and window > order, got order={order}, window={window}")
    num = video.shape[0]
    if num <= order:
        raise ValueError(
            f"a Taylor video of order {order} needs more than {order} frames, got {num}"
        )
    win = min(window, num)
    blocks = num - win + 1
    out = torch.zeros((blocks, *video.shape[1:]), dtype=video.dtype, device=video.device)
    diff = video  # D^(k-1) f, for k = 1
    for k in range(1, order + 1):
        # sum_{s=t}^{t+win-1-k} D^k f(s) = D^(k-1) f(t + win - k) - D^(k-1) f(t)
        out += (diff[win - k : win - k + blocks] - diff[:blocks]) / math.factorial(k)
        diff = diff[1:] - diff[:-1]
    if blocks < num:
        out = torch.cat([out, out[-1:].expand(num - blocks, *out.shape[1:])])
    return out


#: Batch keys that describe the device-side finishing of a uint8 ``video``
#: (:func:`finish_video_batch`); a finished batch has none of them.
VIDEO_RECIPE_KEYS: tuple[str, ...] = ("video_flip", "video_mean", "video_std", "video_taylor")


def finish_video_batch(batch: dict) -> dict:
    """Turn a loader's uint8 ``video`` into the model's float input, where the batch lies.

    Loaders ship ``video`` as uint8 (a quarter of float32's bytes through the worker
    queue and the host-to-device copy) with a small recipe per sample; this runs
    the float work on the batch's device (the GPU after the transfer): scaling to
    ``[0, 1]``, then either the Taylor video or the per-channel normalisation, then
    the horizontal flip. The arithmetic is the CPU path's
    (:func:`normalize`, :func:`taylor_video`, :func:`hflip`) on the same values,
    so the result matches it to float rounding. A batch without the recipe keys
    (already finished, or built by hand) is returned as it is.

    Args:
        batch: a collated batch with ``video (B, C, T, H, W)`` or, with test-time
            views, ``(B, N, C, T, H, W)``, uint8 (or float for flow/depth arrays),
            and the recipe (``...`` = ``(B,)`` or ``(B, N)``):
            ``video_flip (...)`` bool: mirror the view;
            ``video_mean (..., C)``, ``video_std (..., C)`` float: the
            normalisation of uint8 frames (absent for float frames and Taylor);
            ``video_taylor (..., 2)`` int: ``(order, window)`` of a Taylor video.

    Returns:
        The same dict with a float32 ``video`` of the same shape and without the
        recipe keys (:data:`VIDEO_RECIPE_KEYS`).
    """
    if "video_flip" not in batch:
        return batch
    video = batch["video"]
    flip = batch.pop("video_flip").to(video.device)
    mean, std = batch.pop("video_mean", None), batch.pop("video_std", None)
    taylor = batch.pop("video_taylor", None)
    lead = flip.shape  # (B,) or (B, N)
    x = video.flatten(0, len(lead) - 1)  # (B*N, C, T, H, W)
    if taylor is not None:
        order, window = (int(v) for v in taylor.reshape(-1, 2)[0])
        if not bool((taylor.reshape(-1, 2) == taylor.reshape(-1, 2)[0]).all()):
            raise ValueError("a batch mixes Taylor settings; one setting per batch")
        frames = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
        x = _taylor(frames.transpose(0, 2), order, window).transpose(0, 2)
    elif x.dtype == torch.uint8:
        if mean is None or std is None:
            raise KeyError("a uint8 video needs video_mean and video_std to be finished")
        shape = (-1, x.shape[1], 1, 1, 1)
        m = mean.to(x.device, torch.float32).reshape(shape)
        s = std.to(x.device, torch.float32).reshape(shape)
        x = (x.float() / 255.0 - m) / s
    elif not x.is_floating_point():
        raise TypeError(f"video must be uint8 or floating point, got {x.dtype}")
    elif x.dtype != torch.float32:
        # float16 flow/depth arrays cross the queue at half the bytes; the model's
        # weights are float32 (mixed precision is autocast's business, not the data's).
        x = x.float()
    flip = flip.reshape(-1).bool()
    if bool(flip.any()):
        x = torch.where(flip.view(-1, 1, 1, 1, 1), x.flip(-1), x)
    batch["video"] = x.unflatten(0, lead)
    return batch


def test_views(video: Tensor, *, flip: bool) -> Tensor:
    """Stack the test-time spatial views of a clip.

    Args:
        video: ``(T, C, H, W)`` video.
        flip: add the mirrored view (:func:`hflip`).

    Returns:
        ``(N, T, C, H, W)`` with ``N = 2`` (original, mirrored) if ``flip`` else ``N = 1``.
    """
    _check_video(video)
    views = [video, hflip(video)] if flip else [video]
    return torch.stack(views)


# The name starts with "test_": keep pytest from collecting it where a test module imports it.
test_views.__test__ = False  # type: ignore[attr-defined]
