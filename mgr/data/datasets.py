"""torch Datasets over clips, returning sample dicts of the batch contract."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from .readers.common import ClipRecord
from .transforms.pose import flip_skeleton, normalize_skeleton, uniform_sample_indices

__all__ = ["SkeletonClipDataset", "SkeletonTransformConfig"]


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
            skeleton = self._load(rec)
        except Exception as err:  # name the sample: one bad clip must say which it is
            raise RuntimeError(
                f"failed to load sample {rec.sample_id!r} (frames {rec.start}-{rec.end} of "
                f"{rec.source}): {err}"
            ) from err
        return {"skeleton": skeleton, "label": rec.label, "sample_id": rec.sample_id}

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
