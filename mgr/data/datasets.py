"""torch Datasets over clips, returning sample dicts of the batch contract."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from .fgtext import FGTextTable
from .readers.common import ClipRecord, DataFormatError
from .readers.media import (
    align_indices,
    media_num_frames,
    read_media_frames,
    read_media_frames_each,
)
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
from .transforms.video import random_resized_crop_box as random_resized_crop_box_video
from .transforms.video import resize as resize_video
from .transforms.video import saliency_crop_box

__all__ = [
    "ClipDataset",
    "HeatmapClipDataset",
    "HeatmapOptions",
    "SkeletonClipDataset",
    "SkeletonTransformConfig",
    "VideoOptions",
    "describe_failure",
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
        self.failed: set[str] = set()
        if config.flip_prob > 0 or config.test_flip:
            if config.flip_permutation is None:
                raise ValueError("flipping needs the layout's flip permutation")

    def __len__(self) -> int:
        return len(self.records)

    #: ``"raise"``: a sample that fails to load stops the run with an error naming it;
    #: ``"skip"``: it is replaced by the next sample that loads, with a warning naming it
    #: (once per worker) and its id added to :attr:`failed`. Set by the datamodule.
    on_bad_sample: str = "raise"
    #: FG-Text of the samples (FG-SGL): when set, items carry ``fg_text`` (sides
    #: swapped with a flipped clip) and ``class_text``. Set by the datamodule.
    texts: FGTextTable | None = None

    def __getitem__(self, index: int) -> dict:
        for attempt in range(len(self.records)):
            rec = self.records[(index + attempt) % len(self.records)]
            try:
                return self.load_item(rec)
            except Exception as err:  # name the sample: one bad clip must say which it is
                message = describe_failure(rec, err)
                if self.on_bad_sample != "skip":
                    raise RuntimeError(message) from err
                if rec.sample_id not in self.failed:
                    self.failed.add(rec.sample_id)
                    warnings.warn(
                        f"skipping bad sample (on_bad_sample='skip'): {message}", stacklevel=2
                    )
        raise RuntimeError(f"none of the {len(self.records)} samples could be loaded")

    def load_item(self, rec: ClipRecord) -> dict:
        """The sample dict of one record, exactly as :meth:`__getitem__` serves it.

        Raises:
            Exception: whatever loading the record's files raises (``__getitem__``
                names the sample and applies :attr:`on_bad_sample`; ``mgr check``
                collects them).
        """
        item = self._load_inputs(rec)
        flipped = bool(item.pop("_flipped", False))
        item = {**item, "label": rec.label, "sample_id": rec.sample_id}
        if self.texts is not None:
            item["fg_text"] = self.texts.sentence(rec.sample_id, rec.label, flipped)
            item["class_text"] = self.texts.class_sentence(rec.label)
        if rec.coarse_label is not None:  # MA-52: body-part label next to the action label
            item["coarse_label"] = rec.coarse_label
        return item

    def _load_inputs(self, rec: ClipRecord) -> dict:
        """The model inputs of one record (subclasses supply other modalities)."""
        skeleton, flipped = self._load(rec)
        return {"skeleton": skeleton, "_flipped": flipped}

    def _load(self, rec: ClipRecord) -> tuple[torch.Tensor, bool]:
        """The skeleton tensor of one record and whether it was flipped (training)."""
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
            flipped = cfg.flip_prob > 0 and rng.random() < cfg.flip_prob
            if flipped:
                clip = flip_skeleton(clip, cfg.flip_permutation)
            return _to_tensor(clip), flipped
        idx = uniform_sample_indices(len(kp), cfg.clip_len, num_clips=cfg.num_clips, test_mode=True)
        views = list(kp[idx].reshape(cfg.num_clips, cfg.clip_len, *kp.shape[1:]))
        if cfg.test_flip:
            views += [flip_skeleton(v, cfg.flip_permutation) for v in views]
        if len(views) == 1:
            return _to_tensor(views[0]), False
        return torch.stack([_to_tensor(v) for v in views]), False


def describe_failure(rec: ClipRecord, err: BaseException) -> str:
    """``failed to load sample 'ID' (frames a-b of SOURCE, video V): REASON``."""
    where = f"frames {rec.start}-{rec.end} of {rec.source}"
    if rec.video is not None:
        where += f", video {rec.video}"
    return f"failed to load sample {rec.sample_id!r} ({where}): {err}"


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
        test_size: evaluation: short side resized to ``test_size``, centre crop
            (PoseC3D: 64 after training on 56 crops). On tiny volumes the
            shifted feature grid costs accuracy: on SynthMG at 40x40,
            ``test_size`` 45 scored 0.829 test top-1 against 0.921 at 40.
        sigma: Gaussian standard deviation in heatmap pixels.
        use_score: scale each Gaussian by the joint's confidence.
        area_range: area fraction range of the training random-resized crop.
        compact_padding: ``PoseCompact`` enlarges the box of all joints by this
            fraction on each side (mmaction2's default 0.25). Smaller values
            spend more heatmap pixels on the body, so small motions span more
            pixels; the random-resized crop may then cut off edge joints.
        compact_unscored: joints with score 0 but real coordinates:
            ``"keep"`` (mmaction2 / pyskl, for checkpoint parity): they count in
            ``PoseCompact``'s box (drawing skips them either way); ``"drop"``:
            they are zeroed first, so one stray undetected joint (a pose
            estimator's guess in a corner) cannot widen the box (one such joint
            gave 1458x1459 instead of 589x589 on a 1080p frame).
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
    compact_padding: float = 0.25
    compact_unscored: Literal["keep", "drop"] = "keep"
    img_shape: tuple[int, int] = (1080, 1920)
    on_device: bool = False

    def __post_init__(self) -> None:
        if self.kind not in ("joint", "limb"):
            raise ValueError(f"heatmap kind must be 'joint' or 'limb', got {self.kind!r}")
        if self.compact_padding < 0:
            raise ValueError(f"compact_padding must be >= 0, got {self.compact_padding}")
        if self.compact_unscored not in ("keep", "drop"):
            raise ValueError(
                f"compact_unscored must be 'keep' or 'drop', got {self.compact_unscored!r}"
            )


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
        if opt.compact_unscored == "drop":
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
        keypoint, shape = pose_compact(keypoint, opt.img_shape, padding=opt.compact_padding)
        new = short_side_shape(shape, opt.test_size)
        keypoint, shape = resize_keypoints(keypoint, shape, new), new
        flip_views = flipped = False
        if self.train:
            box = random_resized_crop_box(shape, rng, opt.area_range)
            keypoint, shape = crop_keypoints(keypoint, box)
            keypoint, shape = (
                resize_keypoints(keypoint, shape, (opt.size, opt.size)),
                (opt.size, opt.size),
            )
            flipped = cfg.flip_prob > 0 and rng.random() < cfg.flip_prob
            if flipped:
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
                "_flipped": flipped,
            }
        heatmap = render_heatmaps(keypoint, score, shape, opt, self.limbs)
        if flip_views:
            heatmap = torch.cat([heatmap, self.flip_heatmaps(heatmap)])
        return {"heatmap": heatmap[0] if len(heatmap) == 1 else heatmap, "_flipped": flipped}

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


Modality = Literal["skeleton", "video", "pose", "heatmap"]
_MODALITIES: tuple[str, ...] = ("skeleton", "video", "pose", "heatmap")


@dataclass(frozen=True)
class VideoOptions:
    """How a clip's frames become the ``video (C, T, H, W)`` tensor.

    Attributes:
        root: folder searched (recursively, by file name) for the clips' video or
            array files; ``None``: the datamodule's ``root``.
        modality: ``"rgb"``; ``"taylor"`` (Taylor video computed from the RGB
            frames, MM-Gesture); ``"flow"`` / ``"depth"``: precomputed per-clip
            files of an external tool under ``root`` (videos or ``.npy`` arrays,
            named like the RGB clips), aligned to the clip proportionally in time.
        size: output frames are ``size x size``.
        clip_len: frames sampled for the video; ``None``: the datamodule's
            ``clip_len``. RGBPoseConv3D samples fewer RGB frames (8) than pose
            frames (32) over the same span, as mmaction2's ``MMUniformSampleFrames``.
        crop: the region resized to ``size x size``: ``"saliency"``: the person
            box from the clip's keypoints with ``margin`` (CMPL §3.1; needs pixel
            keypoints); ``"center"``: the centred square of side ``min(H, W)``
            (= resizing the short side to ``size`` and centre-cropping).
        train_scale: area range of the training random-resized crop taken inside
            that region; ``(1.0, 1.0)`` disables it.
        margin: saliency-box margin, a fraction of the box size on each side.
        keypoint_image_size: ``(H, W)`` of the pixel space the keypoints are in;
            ``None``: the datamodule's ``image_size`` (the release's frame size),
            else the video's own size. Keypoints are rescaled to the video, whose
            resolution need not be the one the pose estimator saw.
        mean: per-channel mean subtracted after scaling uint8 frames to [0, 1]
            (ImageNet by default); float arrays (flow, depth) are used as stored.
        std: per-channel standard deviation.
        taylor_order: highest order of the Taylor expansion (``"taylor"`` only).
        taylor_window: window of the Taylor expansion, in sampled frames.
        backend: video decoder: ``"pyav"`` (bundled FFmpeg), ``"torchcodec"`` (the
            system's FFmpeg libraries) or ``"auto"`` (torchcodec when it loads, else
            PyAV); all return the same frames. PyAV skips unwanted non-reference frames
            and converts only the crop box, so it is the faster one on long GOPs (x264's
            default 250; docs/guides/performance.md), torchcodec on short ones.
        decode_threads: FFmpeg threads per decode; ``None``: 1 in DataLoader workers
            (the workers are the parallelism), FFmpeg's choice in the main process.
    """

    root: str | None = None
    modality: Literal["rgb", "taylor", "flow", "depth"] = "rgb"
    size: int = 224
    clip_len: int | None = None
    crop: Literal["saliency", "center"] = "center"
    train_scale: tuple[float, float] = (0.6, 1.0)
    margin: float = 0.2
    keypoint_image_size: tuple[int, int] | None = None
    mean: tuple[float, ...] = (0.485, 0.456, 0.406)
    std: tuple[float, ...] = (0.229, 0.224, 0.225)
    taylor_order: int = 2
    taylor_window: int = 4
    backend: Literal["auto", "pyav", "torchcodec"] = "auto"
    decode_threads: int | None = None

    def __post_init__(self) -> None:
        if self.backend not in ("auto", "pyav", "torchcodec"):
            raise ValueError(f"video backend must be auto/pyav/torchcodec, got {self.backend!r}")
        if self.modality not in ("rgb", "taylor", "flow", "depth"):
            raise ValueError(f"video modality must be rgb/taylor/flow/depth, got {self.modality!r}")
        if self.crop not in ("saliency", "center"):
            raise ValueError(f"video crop must be 'saliency' or 'center', got {self.crop!r}")
        if not 0 < self.train_scale[0] <= self.train_scale[1] <= 1:
            raise ValueError(f"train_scale must satisfy 0 < lo <= hi <= 1, got {self.train_scale}")
        if self.clip_len is not None and self.clip_len < 1:
            raise ValueError(f"clip_len must be positive, got {self.clip_len}")
        if any(v == 0 for v in self.std):
            raise ValueError(f"video std must be non-zero, got {self.std}")


class ClipDataset(SkeletonClipDataset):
    """Multi-modal clips: any of ``skeleton``, ``video``, ``pose``, ``heatmap``, aligned.

    One sampling of the clip's time span and one flip decision is drawn per
    sample and applied to every modality, so the skeleton, the video and the
    pixel keypoints show the same moments, mirrored together (the skeleton swaps
    its left/right joints when the video is flipped). Positions are sampled on
    the skeleton's frames (the video's when there is no skeleton) and mapped
    onto the video's frame range proportionally (:func:`align_indices`).

    Items hold, per requested modality (with ``N`` test-time views a leading
    ``N`` axis):

    * ``skeleton (C, T, V, 1)``: as :class:`SkeletonClipDataset`;
    * ``video (C, T', H, W)`` uint8 (``T'`` = ``video.clip_len`` or ``T``; float
      for float ``.npy`` media), cropped and resized, with its recipe
      ``video_flip ()`` bool, ``video_mean (C,)`` and ``video_std (C,)``
      (uint8 frames) or ``video_taylor (2,)`` (Taylor video); the datamodule's
      ``on_after_batch_transfer`` turns a batch of them into the float model input
      on the device (:func:`~mgr.data.transforms.video.finish_video_batch`);
    * ``pose``: ``keypoint (1, T, V, 2)`` pixel coordinates and
      ``keypoint_score (1, T, V)`` (the inputs of PoseConv3D heatmaps), plus
      ``img_shape (2,)`` int64 ``(H, W)`` of their pixel space;
    * ``heatmap (K, T, h, w)``: PoseConv3D volumes of the keypoints cropped,
      resized and flipped exactly as the video (RGBPoseConv3D's joint input);
      ``h = w = heatmap.size``, i.e. mmaction2's ``scaling = size / video.size``.

    Args:
        records: the clips; ``video`` fields must be set for the video modality.
        config: skeleton sampling/normalisation settings (``clip_len``,
            ``num_clips``, ``test_flip``, ``flip_prob`` apply to every modality).
        train: training or evaluation mode.
        modalities: what to load.
        video: video settings (required with ``"video"`` and ``"heatmap"``).
        pixel_channels: channels of the records' keypoints holding pixel ``(x, y)``
            (for saliency crops, ``pose`` and ``heatmap``), or ``None`` if they are
            not pixels.
        image_size: ``(H, W)`` of the keypoints' pixel space.
        heatmap: heatmap settings (``kind``, ``size``, ``sigma``, ``use_score``)
            for the ``"heatmap"`` modality.
        limbs: joint pairs of the kept joints (limb heatmaps).
    """

    def __init__(
        self,
        records: Sequence[ClipRecord],
        config: SkeletonTransformConfig,
        train: bool,
        *,
        modalities: Sequence[Modality] = ("skeleton",),
        video: VideoOptions | None = None,
        pixel_channels: tuple[int, int] | None = (0, 1),
        image_size: tuple[int, int] | None = None,
        heatmap: HeatmapOptions | None = None,
        limbs: Sequence[tuple[int, int]] = (),
    ) -> None:
        super().__init__(records, config, train)
        unknown = set(modalities) - set(_MODALITIES)
        if unknown or not modalities:
            raise ValueError(f"modalities must be a non-empty subset of {_MODALITIES}")
        self.modalities = tuple(modalities)
        if "heatmap" in self.modalities and ("video" not in self.modalities or heatmap is None):
            raise ValueError(
                "the heatmap modality of ClipDataset shares the video's crop: it needs the "
                "video modality and HeatmapOptions (heatmaps alone: HeatmapClipDataset)"
            )
        if "video" in self.modalities:
            if video is None:
                raise ValueError("the video modality needs VideoOptions")
            missing = [r.sample_id for r in self.records if r.video is None]
            if missing:
                raise ValueError(f"{len(missing)} clips have no video file, e.g. {missing[:3]}")
        needs_pixels = (
            "pose" in self.modalities
            or "heatmap" in self.modalities
            or (video is not None and video.crop == "saliency")
        )
        if needs_pixels and pixel_channels is None:
            raise ValueError(
                "saliency crops, heatmaps and the pose modality need pixel keypoints; this "
                "datamodule's keypoints are not in pixels (SMG: use coords='pixel')"
            )
        if "pose" in self.modalities and image_size is None:
            raise ValueError("the pose modality needs the keypoints' image_size (H, W)")
        self.video = video
        self.pixel_channels = pixel_channels
        self.image_size = image_size
        self.heatmap = heatmap
        self.limbs = [tuple(e) for e in limbs]

    def _indices(self, length: int, clip_len: int, rng: np.random.Generator | None) -> np.ndarray:
        """``(N, clip_len)`` frame indices of the views (``N = 1`` in training)."""
        cfg = self.config
        if self.train:
            return uniform_sample_indices(length, clip_len, rng=rng)[None]
        idx = uniform_sample_indices(
            length, clip_len, num_clips=cfg.num_clips, test_mode=True
        ).reshape(cfg.num_clips, clip_len)
        return np.concatenate([idx, idx]) if cfg.test_flip else idx

    def _load_inputs(self, rec: ClipRecord) -> dict:
        cfg = self.config
        rng = np.random.default_rng(int(torch.randint(2**62, ()))) if self.train else None
        length = rec.num_frames if rec.keypoint is not None else self._video_range(rec)[1]
        idx = self._indices(length, cfg.clip_len, rng)
        if self.train:
            flips = [cfg.flip_prob > 0 and rng.random() < cfg.flip_prob]
        else:
            flips = [False] * cfg.num_clips + [True] * cfg.num_clips * cfg.test_flip
        out: dict[str, torch.Tensor] = {}
        if "skeleton" in self.modalities:
            kp = rec.keypoint if cfg.joints is None else rec.keypoint[:, list(cfg.joints)]
            if cfg.normalize:
                kp = normalize_skeleton(
                    kp,
                    cfg.center,
                    score_channel=cfg.score_channel,
                    scale_joints=cfg.scale_joints,
                    center_mode=cfg.center_mode,
                )
            views = [
                flip_skeleton(kp[i], cfg.flip_permutation) if f else kp[i]
                for i, f in zip(idx, flips, strict=True)
            ]
            out["skeleton"] = torch.stack([_to_tensor(v) for v in views])
        if "pose" in self.modalities:
            out.update(self._pose(rec, idx, flips))
        if "video" in self.modalities:
            clip_len = self.video.clip_len or cfg.clip_len
            vidx = idx if clip_len == cfg.clip_len else self._indices(length, clip_len, rng)
            video, box, size = self._decode(rec, vidx, length, rng)  # (N*T', C, h, w)
            out.update(self._video(video, len(vidx), flips))
            if "heatmap" in self.modalities:
                out["heatmap"] = self._heatmap(rec, idx, flips, box, size)
        if len(idx) == 1:  # no view axis for a single view
            out = {k: v[0] if k != "img_shape" else v for k, v in out.items()}
        out["_flipped"] = self.train and flips[0]
        return out

    # ---------------------------------------------------------------- pose
    def _pixels(self, rec: ClipRecord) -> tuple[np.ndarray, np.ndarray]:
        """``(T, V, 2)`` pixel keypoints of the kept joints and ``(T, V)`` scores."""
        cfg = self.config
        kp = rec.keypoint if cfg.joints is None else rec.keypoint[:, list(cfg.joints)]
        xy = kp[..., list(self.pixel_channels)].astype(np.float32)
        if cfg.score_channel is not None:
            score = kp[..., cfg.score_channel].astype(np.float32)
        else:  # no confidence: detected joints count fully
            score = np.any(xy != 0, axis=-1).astype(np.float32)
        return xy, score

    def _pose(self, rec: ClipRecord, idx: np.ndarray, flips: list[bool]) -> dict:
        xy, score = self._pixels(rec)
        width = self.image_size[1]
        kps, scores = [], []
        for i, f in zip(idx, flips, strict=True):
            k, s = xy[i][None], score[i][None]
            if f:
                k, s = flip_keypoints(k, s, width, self.config.flip_permutation)
            kps.append(k)
            scores.append(s)
        return {
            "keypoint": torch.from_numpy(np.stack(kps).astype(np.float32)),
            "keypoint_score": torch.from_numpy(np.stack(scores).astype(np.float32)),
            "img_shape": torch.tensor(self.image_size, dtype=torch.int64),
        }

    def _video_pixels(self, rec: ClipRecord, size: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Keypoints rescaled from their image space to the video's ``size = (H, W)``."""
        xy, score = self._pixels(rec)
        height, width = int(size[0]), int(size[1])
        kh, kw = self.video.keypoint_image_size or self.image_size or (height, width)
        return xy * np.array([width / kw, height / kh], dtype=np.float32), score

    # ---------------------------------------------------------------- heatmap
    def _heatmap(
        self,
        rec: ClipRecord,
        idx: np.ndarray,
        flips: list[bool],
        box: tuple[int, int, int, int],
        size: Sequence[int],
    ) -> torch.Tensor:
        """Heatmap volumes of the keypoints in the video's crop: ``(N, K, T, h, w)``."""
        opt, out_size = self.heatmap, self.video.size
        xy, score = self._video_pixels(rec, size)
        top, left, h, w = box
        # Crop and resize as the video; then mirror like the pixels (x -> size - 1 - x).
        xy = (xy - np.array([left, top], np.float32)) * np.array(
            [out_size / w, out_size / h], np.float32
        )
        present = score > 0
        views_kp, views_score = [], []
        for i, f in zip(idx, flips, strict=True):
            k, s = xy[i].copy(), score[i].copy()
            if f:
                k[..., 0] = np.where(present[i], out_size - 1 - k[..., 0], k[..., 0])
                k, s = (
                    k[:, list(self.config.flip_permutation)],
                    s[:, list(self.config.flip_permutation)],
                )
            views_kp.append(k)
            views_score.append(s)
        scaling = opt.size / out_size  # mmaction2's GeneratePoseTarget(scaling=...)
        kp = torch.from_numpy(np.stack(views_kp)[:, None] * scaling)  # (N, M=1, T, V, 2)
        sc = torch.from_numpy(np.stack(views_score)[:, None])
        if not opt.use_score:
            sc = (sc > 0).float()
        return render_heatmaps(kp, sc, (opt.size, opt.size), opt, self.limbs)

    # ---------------------------------------------------------------- video
    def _video_range(self, rec: ClipRecord) -> tuple[int, int]:
        """``(first frame, number of frames)`` of the clip inside its video file."""
        end = rec.video_end
        if end is None:
            end = media_num_frames(rec.video) - 1
        if end < rec.video_start:
            raise DataFormatError(
                f"{rec.video}: clip {rec.sample_id} has frames {rec.video_start}..{end}"
            )
        return rec.video_start, end - rec.video_start + 1

    def decode_span(self, rec: ClipRecord) -> None:
        """Decode every frame of the clip's span in its video (``mgr check``).

        Only the first and last frames are kept, but every frame between them is
        decoded, so a corrupt or truncated frame anywhere in the span raises.
        """
        start, frames = self._video_range(rec)
        read_media_frames(rec.video, [start, start + frames - 1])

    def _decode(
        self, rec: ClipRecord, idx: np.ndarray, length: int, rng: np.random.Generator | None
    ) -> tuple[torch.Tensor, tuple[int, int, int, int], tuple[int, int]]:
        """The views' frames, each cropped and resized in its own dtype as it is decoded.

        Returns:
            ``(N*T', C, size, size)`` frames, the crop box ``(top, left, h, w)`` in
            video pixels and the video's ``(H, W)``.
        """
        start, frames = self._video_range(rec)
        vidx = start + align_indices(idx.reshape(-1), length, frames)
        opt = self.video
        geometry: list = []  # [box, size], from the first frame

        def box(height: int, width: int) -> tuple[int, int, int, int]:
            # Called once per clip, before any frame is converted: only the box is
            # converted from YUV and resized.
            geometry[:] = [self._crop_box(rec, (height, width), rng), (height, width)]
            return geometry[0]

        def resize(frame: torch.Tensor) -> torch.Tensor:
            return resize_video(frame[None], (opt.size, opt.size))[0]

        video = read_media_frames_each(
            rec.video, vidx, resize, box=box, backend=opt.backend, threads=opt.decode_threads
        )
        return video, geometry[0], geometry[1]

    def _crop_box(
        self, rec: ClipRecord, size: Sequence[int], rng: np.random.Generator | None
    ) -> tuple[int, int, int, int]:
        """``(top, left, h, w)`` of the region resized to the output, in video pixels."""
        opt = self.video
        height, width = int(size[0]), int(size[1])
        if opt.crop == "saliency" and rec.keypoint is not None:
            xy, score = self._video_pixels(rec, size)
            box = saliency_crop_box(xy, score, (height, width), margin=opt.margin)
        else:  # the centred square: short side -> size, centre crop
            side = min(height, width)
            box = ((height - side) // 2, (width - side) // 2, side, side)
        if self.train and opt.train_scale != (1.0, 1.0):
            top, left, h, w = random_resized_crop_box_video(
                box[2], box[3], scale=opt.train_scale, rng=rng
            )
            box = (box[0] + top, box[1] + left, h, w)
        return tuple(int(v) for v in box)

    def _video(
        self, video: torch.Tensor, num_views: int, flips: list[bool]
    ) -> dict[str, torch.Tensor]:
        """The views' cropped and resized ``(N*T', C, h, w)`` pixels, plus the recipe.

        The float work (normalisation or Taylor video, flip) is left to
        :func:`~mgr.data.transforms.video.finish_video_batch`, on the device.
        """
        opt = self.video
        views = video.unflatten(0, (num_views, -1)).transpose(1, 2)  # (N, C, T, H, W)
        out = {"video": views.contiguous(), "video_flip": torch.tensor(flips, dtype=torch.bool)}
        channels = views.shape[1]
        if opt.modality == "taylor":
            out["video_taylor"] = torch.tensor([[opt.taylor_order, opt.taylor_window]] * num_views)
        elif views.dtype == torch.uint8:
            if len(opt.mean) != channels or len(opt.std) != channels:
                raise ValueError(
                    f"video mean/std need {channels} values, got {len(opt.mean)} and {len(opt.std)}"
                )
            out["video_mean"] = torch.tensor([opt.mean] * num_views, dtype=torch.float32)
            out["video_std"] = torch.tensor([opt.std] * num_views, dtype=torch.float32)
        return out
