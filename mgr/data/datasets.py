"""torch Datasets over clips, returning sample dicts of the batch contract."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from .readers.common import ClipRecord
from .transforms.heatmaps import batch_joint_heatmaps, batch_limb_heatmaps
from .transforms.pose import flip_skeleton, normalize_skeleton, uniform_sample_indices
from .transforms.posec3d import (
    center_crop,
    crop_keypoints,
    flip_keypoints,
    limb_flip_permutation,
    pose_compact,
    random_resized_crop_box,
    resize_keypoints,
    short_side_shape,
)

__all__ = [
    "HeatmapClipDataset",
    "HeatmapOptions",
    "SkeletonClipDataset",
    "SkeletonTransformConfig",
    "flip_heatmaps",
    "render_heatmaps",
]


@dataclass(frozen=True)
class SkeletonTransformConfig:
    """How a clip's keypoints become the ``skeleton`` tensor.

    Attributes:
        clip_len: frames per clip after uniform sampling.
        joints: indices of the kept joints in the reader's layout (``None``: all).
        center: centre joint, as an index into the *kept* joints.
        flip_permutation: left/right joint permutation over the kept joints.
        score_channel: index of the confidence channel, or ``None``.
        scale_joints: joint pair (kept indices) for scale normalisation, or ``None``.
        normalize: apply centre (and scale) normalisation.
        center_mode: ``"clip"`` or ``"frame"`` centring (see ``normalize_skeleton``).
        flip_prob: probability of a random horizontal flip in training.
        num_clips: test-time clips per sample.
        test_flip: add flipped copies of every test clip as extra views.
    """

    clip_len: int = 64
    joints: tuple[int, ...] | None = None
    center: int = 0
    flip_permutation: tuple[int, ...] | None = None
    score_channel: int | None = None
    scale_joints: tuple[int, int] | None = None
    normalize: bool = True
    center_mode: str = "clip"
    flip_prob: float = 0.0
    num_clips: int = 1
    test_flip: bool = False


class SkeletonClipDataset(Dataset):
    """Skeleton clips held in memory.

    Each item is ``{"skeleton": (C, T, V, 1), "label": int, "sample_id": str}``;
    with several test-time views (clips x flips) the skeleton is
    ``(N, C, T, V, 1)``.

    Args:
        records: the clips, as returned by a reader.
        config: sampling and normalisation settings.
        train: training mode (random sampling and flips) or evaluation mode
            (deterministic sampling, test-time views).
    """

    def __init__(
        self, records: Sequence[ClipRecord], config: SkeletonTransformConfig, train: bool
    ) -> None:
        self.records = list(records)
        self.config = config
        self.train = train
        if config.flip_prob > 0 or config.test_flip:
            if config.flip_permutation is None:
                raise ValueError("flipping needs the layout's flip permutation")

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        rec = self.records[index]
        try:
            item = self._load_inputs(rec)
        except Exception as err:  # name the sample: one bad clip must say which it is
            raise RuntimeError(
                f"failed to load sample {rec.sample_id!r} (frames {rec.start}-{rec.end} of "
                f"{rec.source}): {err}"
            ) from err
        return {**item, "label": rec.label, "sample_id": rec.sample_id}

    def _load_inputs(self, rec: ClipRecord) -> dict:
        """The model inputs of one record (subclasses supply other modalities)."""
        return {"skeleton": self._load(rec)}

    def _load(self, rec: ClipRecord) -> torch.Tensor:
        cfg = self.config
        kp = rec.keypoint if cfg.joints is None else rec.keypoint[:, list(cfg.joints)]
        if cfg.normalize:
            kp = normalize_skeleton(
                kp,
                cfg.center,
                score_channel=cfg.score_channel,
                scale_joints=cfg.scale_joints,
                center_mode=cfg.center_mode,
            )
        if self.train:
            # Seeded from torch so that seed_everything and worker seeding apply.
            rng = np.random.default_rng(int(torch.randint(2**62, ())))
            idx = uniform_sample_indices(len(kp), cfg.clip_len, rng=rng)
            clip = kp[idx]
            if cfg.flip_prob > 0 and rng.random() < cfg.flip_prob:
                clip = flip_skeleton(clip, cfg.flip_permutation)
            return _to_tensor(clip)
        idx = uniform_sample_indices(len(kp), cfg.clip_len, num_clips=cfg.num_clips, test_mode=True)
        views = list(kp[idx].reshape(cfg.num_clips, cfg.clip_len, *kp.shape[1:]))
        if cfg.test_flip:
            views += [flip_skeleton(v, cfg.flip_permutation) for v in views]
        if len(views) == 1:
            return _to_tensor(views[0])
        return torch.stack([_to_tensor(v) for v in views])


def _to_tensor(clip: np.ndarray) -> torch.Tensor:
    """``(T, V, C)`` -> ``(C, T, V, 1)`` float32."""
    return torch.from_numpy(
        np.ascontiguousarray(clip.transpose(2, 0, 1)[..., None], dtype=np.float32)
    )


@dataclass(frozen=True)
class HeatmapOptions:
    """PoseConv3D heatmap volumes (``reference-algorithms.md`` §1).

    Attributes:
        kind: ``"joint"`` (one channel per joint) or ``"limb"`` (one per limb).
        size: training crops are resized to ``size x size``.
        test_size: evaluation: short side resized to ``test_size``, centre crop.
        sigma: Gaussian standard deviation in heatmap pixels.
        use_score: scale each Gaussian by the joint's confidence.
        area_range: area fraction range of the training random-resized crop.
        img_shape: ``(H, W)`` of the source frames (used when ``PoseCompact``
            has no box to crop to).
        on_device: render the heatmaps after the batch reaches the device
            (GPU) instead of in the Dataset workers; same result.
    """

    kind: str = "joint"
    size: int = 56
    test_size: int = 64
    sigma: float = 0.6
    use_score: bool = True
    area_range: tuple[float, float] = (0.56, 1.0)
    img_shape: tuple[int, int] = (1080, 1920)
    on_device: bool = False

    def __post_init__(self) -> None:
        if self.kind not in ("joint", "limb"):
            raise ValueError(f"heatmap kind must be 'joint' or 'limb', got {self.kind!r}")


class HeatmapClipDataset(SkeletonClipDataset):
    """PoseConv3D inputs: keypoints -> compact -> resize/crop/flip -> heatmap volumes.

    Items are ``{"heatmap": (K, T, H, W), "label", "sample_id"}`` (with test-time
    views ``(N, K, T, H, W)``). With ``options.on_device`` they carry the
    transformed keypoints instead, ``pose_keypoint (M, T, V, 2)`` and
    ``pose_score (M, T, V)`` (views: one more leading axis), and
    :func:`render_heatmaps` turns a batch of them into ``heatmap`` on the device.

    Args:
        records: the clips.
        config: sampling settings (``clip_len``, ``joints``, ``flip_permutation``,
            ``score_channel``, ``flip_prob``, ``num_clips``, ``test_flip``);
            coordinates are pixels, so ``normalize`` is ignored.
        options: heatmap settings.
        limbs: joint pairs of the kept joints (for ``kind="limb"``).
        train: training or evaluation mode.
    """

    def __init__(
        self,
        records: Sequence[ClipRecord],
        config: SkeletonTransformConfig,
        options: HeatmapOptions,
        limbs: Sequence[tuple[int, int]],
        train: bool,
    ) -> None:
        super().__init__(records, config, train)
        self.options = options
        self.limbs = [tuple(e) for e in limbs]
        if cfg_flip := config.flip_permutation:
            # Flipping keypoints with a joint swap mirrors limb channels too; check that
            # every limb has a mirror image so flipped limb heatmaps stay meaningful.
            limb_flip_permutation(self.limbs, cfg_flip)

    def _load_inputs(self, rec: ClipRecord) -> dict:
        cfg, opt = self.config, self.options
        kp = rec.keypoint if cfg.joints is None else rec.keypoint[:, list(cfg.joints)]
        xy = kp[..., :2].astype(np.float32)
        if cfg.score_channel is not None:
            score = kp[..., cfg.score_channel].astype(np.float32)
        else:  # no confidence: detected joints count fully
            score = np.any(xy != 0, axis=-1).astype(np.float32)
        xy = np.where(score[..., None] > 0, xy, 0.0).astype(np.float32)
        rng = np.random.default_rng(int(torch.randint(2**62, ()))) if self.train else None
        if self.train:
            idx = uniform_sample_indices(len(xy), cfg.clip_len, rng=rng)
            n_views = 1
        else:
            idx = uniform_sample_indices(
                len(xy), cfg.clip_len, num_clips=cfg.num_clips, test_mode=True
            )
            n_views = cfg.num_clips
        keypoint, score = xy[idx][None], score[idx][None]  # (M=1, T, V, 2), (1, T, V)
        keypoint, shape = pose_compact(keypoint, opt.img_shape)
        new = short_side_shape(shape, opt.test_size)
        keypoint, shape = resize_keypoints(keypoint, shape, new), new
        flip_views = False
        if self.train:
            box = random_resized_crop_box(shape, rng, opt.area_range)
            keypoint, shape = crop_keypoints(keypoint, box)
            keypoint, shape = (
                resize_keypoints(keypoint, shape, (opt.size, opt.size)),
                (opt.size, opt.size),
            )
            if cfg.flip_prob > 0 and rng.random() < cfg.flip_prob:
                keypoint, score = flip_keypoints(keypoint, score, shape[1], cfg.flip_permutation)
        else:
            keypoint, shape = center_crop(keypoint, shape, opt.test_size)
            flip_views = cfg.test_flip
        # (M, N*T, V, 2) -> (N, M, T, V, 2): one entry per test-time clip.
        m, _, v, _ = keypoint.shape
        keypoint = keypoint.reshape(m, n_views, cfg.clip_len, v, 2).transpose(1, 0, 2, 3, 4)
        score = score.reshape(m, n_views, cfg.clip_len, v).transpose(1, 0, 2, 3)
        keypoint = torch.from_numpy(np.ascontiguousarray(keypoint, dtype=np.float32))
        score = torch.from_numpy(np.ascontiguousarray(score, dtype=np.float32))
        if not opt.use_score:
            score = (score > 0).float()
        if opt.on_device:  # rendered by render_heatmaps after the transfer
            return {
                "pose_keypoint": keypoint,
                "pose_score": score,
                "heatmap_size": torch.tensor(shape),
                "heatmap_flip": torch.tensor(flip_views),
            }
        heatmap = render_heatmaps(keypoint, score, shape, opt, self.limbs)
        if flip_views:
            heatmap = torch.cat([heatmap, self.flip_heatmaps(heatmap)])
        return {"heatmap": heatmap[0] if len(heatmap) == 1 else heatmap}

    def flip_heatmaps(self, heatmap: torch.Tensor) -> torch.Tensor:
        """Test-time flip of rendered volumes; see :func:`flip_heatmaps`."""
        return flip_heatmaps(heatmap, self.config.flip_permutation, self.options.kind, self.limbs)


def flip_heatmaps(
    heatmap: torch.Tensor,
    flip_permutation: Sequence[int],
    kind: str,
    limbs: Sequence[tuple[int, int]],
) -> torch.Tensor:
    """mmaction2's test-time ``double`` flip: reverse W, swap left/right channels.

    It flips the rendered volume rather than the keypoints: the ±3σ window is
    truncated with ``int()``, so it is not symmetric and a re-rendered mirror
    image differs slightly at the window's edges.

    Args:
        heatmap: ``(..., K, T, H, W)``.
        flip_permutation: ``(V,)`` left/right joint permutation.
        kind: ``"joint"`` or ``"limb"`` channels.
        limbs: joint pairs of the limb channels.

    Returns:
        The mirrored volumes, same shape.
    """
    perm = list(flip_permutation)
    if kind == "limb":
        perm = limb_flip_permutation(limbs, perm)
    return heatmap.flip(-1)[..., perm, :, :, :]


def render_heatmaps(
    keypoint: torch.Tensor,
    score: torch.Tensor,
    size: tuple[int, int],
    options: HeatmapOptions,
    limbs: Sequence[tuple[int, int]],
) -> torch.Tensor:
    """Heatmap volumes of a batch of keypoint clips.

    Args:
        keypoint: ``(B, M, T, V, 2)`` pixel coordinates in the heatmap frame.
        score: ``(B, M, T, V)`` confidences (already binarised if scores are off).
        size: ``(H, W)``.
        options: heatmap settings.
        limbs: joint pairs for limb heatmaps.

    Returns:
        ``(B, K, T, H, W)`` with ``K = V`` joints or ``L`` limbs.
    """
    size = (int(size[0]), int(size[1]))
    if options.kind == "joint":
        return batch_joint_heatmaps(keypoint, score, size, options.sigma)
    return batch_limb_heatmaps(keypoint, score, size, limbs, options.sigma)
