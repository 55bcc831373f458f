"""MicroGestureDataModule: the base of every mgr DataModule (skeleton modality).

Settings, modalities, classes, layouts and datasets are here; reading the release
into records is in :mod:`.records` and the samplers and loaders in :mod:`.loaders`
(both parents of the class; their public names stay importable here).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch

from mgr.classes import ClassList, get_classes
from mgr.data.datasets import (
    ClipDataset,
    HeatmapClipDataset,
    HeatmapOptions,
    SkeletonClipDataset,
    SkeletonTransformConfig,
    VideoOptions,
)
from mgr.data.fgtext import FGTextTable, read_fgtext_csv
from mgr.data.readers.common import ClipRecord
from mgr.options import coerce_options
from mgr.protocols import Protocol
from mgr.skeletons import SkeletonLayout, get_layout

from .loaders import DataLoaderHooks, collate, eval_shard_sampler
from .records import _SPLITS, Modality, ReleaseRecords, Split
from .release import is_synthmg_release

__all__ = ["MicroGestureDataModule", "Modality", "Split", "collate", "eval_shard_sampler"]


log = logging.getLogger(__name__)


class MicroGestureDataModule(ReleaseRecords, DataLoaderHooks):
    """Clips of one benchmark, as ``skeleton (B, C, T, V, M)`` batches.

    Subclasses say which class list and parent keypoint layout they read
    (:attr:`dataset`, :attr:`parent_layout`), which channels the reader
    produces, and implement :meth:`load_records`. This class does the rest:
    keypoint subset selection, centre normalisation, uniform temporal sampling
    (random in training, deterministic in evaluation), random flips with
    left/right swap, test-time views, class histograms and loaders.

    Args:
        root: folder of the release, laid out exactly as the dataset owners ship it.
        batch_size: clips per batch.
        num_workers: DataLoader worker processes.
        clip_len: frames per clip after uniform temporal sampling.
        keypoints: name of a layout in :data:`mgr.skeletons.LAYOUTS` that is a
            subset of the release's layout (``None``: the dataset's default).
        normalize: centre-normalise (and scale-normalise) the coordinates.
        center_mode: ``"clip"`` subtracts the centre joint's mean position over
            the clip (keeps the motion of the torso); ``"frame"`` subtracts it
            in every frame (pins the body at the centre joint). The CMPL paper
            only says "subtracting the center joint coordinates"; on SynthMG
            ``"clip"`` is better because torso sway and sitting up are classes.
        scale: ``"shoulder"`` divides by the clip's median shoulder width,
            ``"none"`` keeps the centred coordinates' units.
        flip_prob: probability of a random horizontal flip (with left/right
            joint swap) in training.
        test_clips: clips sampled per sample at validation/test time (averaged
            by the recognizer).
        test_flip: also average over horizontally flipped views at test time.
        predict_split: split served by ``predict_dataloader``.
        on_bad_sample: what to do with a bad clip (frames past the end of its
            skeleton, all-zero keypoints, a missing, empty or unreadable video):
            ``"raise"`` an error naming the file and the clip, or ``"skip"`` it
            with a logged warning and a count per split at the end of setup
            (``skipped``). A clip that only fails when it is decoded (a
            truncated video whose header looks fine) is replaced by the next
            clip, with a warning naming it, and listed in its dataset's ``failed``.
        pin_memory: pin host memory in the loaders (faster host-to-GPU copies).
        extra_labels: a pseudo-label file (``mgr pseudo-label``): its samples,
            taken from the split it names with the pseudo-labels in place of
            theirs, join the training set. The file must index this dataset's
            class list.
        extra_labels_with_val: with ``extra_labels``, also train on the
            validation split (the CMPL recipe trains on train ∪ val ∪
            test(pseudo)); validation metrics are then optimistic.
        heatmap: supply PoseConv3D ``heatmap (B, K, T, H, W)`` volumes rendered
            from the (pixel) keypoints instead of ``skeleton`` coordinates;
            ``None``: skeleton coordinates. A dict of its fields is checked
            as the command line checks it (:func:`mgr.options.coerce_options`).
        modalities: what each sample carries, any of ``"skeleton"``
            (``skeleton (B, C, T, V, M)``), ``"video"`` (``video (B, C, T, H, W)``,
            see ``video``) and ``"pose"`` (pixel ``keypoint (B, 1, T, V, 2)``,
            ``keypoint_score (B, 1, T, V)`` and ``img_shape (B, 2)``: the inputs of
            heatmaps) and ``"heatmap"`` with ``"video"`` (heatmap volumes of the
            keypoints cropped, resized and flipped as the video: RGBPoseConv3D).
            All are sampled over the same span and flipped together.
            ``None``: ``["skeleton"]`` (``heatmap`` replaces it when set).
        video: how clips' frames are found and transformed (``"video"`` only);
            a :class:`~mgr.data.datasets.VideoOptions` or a dict of its fields.
        sampler: ``"random"`` shuffles the training set; ``"sqrt_balanced"``
            draws with probability ``1 / sqrt(N_c + 1)`` per sample of class ``c``
            (square-root-smoothed class balancing).
        cache_dir: a cache written by ``mgr prepare`` (:meth:`write_cache`):
            splits are read from it when it was made from the same release with
            the same reader options, else parsed from ``root``. RGB clips
            prepared in it by ``mgr prepare --video`` (:func:`mgr.data.cache.write_video_cache`)
            are read in place of their raw videos; a clip not prepared (or
            prepared from another file or with other options) reads the raw video.
        repeat_alpha: rare-class annotation repetition (online-recognition paper,
            eq. 1): each training clip of a class with ``Z_c < alpha`` clips is
            repeated ``ceil(log2(alpha / Z_c)) + 1`` times; ``None``: off.
        fg_text: put FG-Text in the batch (FG-SGL, :mod:`mgr.data.fgtext`):
            ``fg_text`` (list of ``B`` sentences from each clip's attributes,
            sides swapped for flipped clips) and ``class_text`` (its class's
            sentence); :attr:`class_texts` holds the ``K`` class sentences.
        fg_text_file: per-sample FG-Text annotations
            (``sample_id,initiator,receiver,direction,motion_type``) over the
            class defaults; ``None``: ``root/fgtext.csv`` when it exists (SynthMG
            writes one), else class defaults only.
        synthmg: ``root`` is a SynthMG release written with these settings
            (keyword arguments of :func:`mgr.data.synthetic.generate_synthmg`, e.g.
            ``{seed: 0, subjects: [16, 4, 6], video: true}``): a missing ``root``
            is reported with the ``mgr synth`` command that writes it
            (:mod:`mgr.datamodules.release`); ``None``: a real release.
        synthesize: write the SynthMG release (``synthmg``) when ``root`` is
            missing, instead of stopping; an existing ``root`` is read as it is.
    """

    #: dataset key of :func:`mgr.classes.get_classes`.
    dataset: ClassVar[str]
    #: layout name of the keypoints the readers return (``None``: a video-only release).
    parent_layout: ClassVar[str | None]
    #: default keypoint subset.
    default_keypoints: ClassVar[str | None]
    #: ``(H, W)`` of the pixel space the release's keypoints are in (``None``: not pixels).
    image_size: ClassVar[tuple[int, int] | None] = None

    def __init__(
        self,
        root: str | Path,
        batch_size: int = 32,
        num_workers: int = 0,
        clip_len: int = 64,
        keypoints: str | None = None,
        normalize: bool = True,
        center_mode: Literal["clip", "frame"] = "clip",
        scale: Literal["shoulder", "none"] = "shoulder",
        flip_prob: float = 0.0,
        test_clips: int = 1,
        test_flip: bool = False,
        predict_split: Split = "test",
        on_bad_sample: Literal["raise", "skip"] = "raise",
        pin_memory: bool = False,
        extra_labels: str | Path | None = None,
        extra_labels_with_val: bool = True,
        heatmap: HeatmapOptions | None = None,
        modalities: list[Modality] | None = None,
        video: VideoOptions | None = None,
        sampler: Literal["random", "sqrt_balanced"] = "random",
        repeat_alpha: float | None = None,
        cache_dir: str | Path | None = None,
        fg_text: bool = False,
        fg_text_file: str | Path | None = None,
        synthmg: dict[str, Any] | None = None,
        synthesize: bool = False,
    ) -> None:
        super().__init__()
        if scale not in ("shoulder", "none"):
            raise ValueError(f"scale must be 'shoulder' or 'none', got {scale!r}")
        if on_bad_sample not in ("raise", "skip"):
            raise ValueError(f"on_bad_sample must be 'raise' or 'skip', got {on_bad_sample!r}")
        if sampler not in ("random", "sqrt_balanced"):
            raise ValueError(f"sampler must be 'random' or 'sqrt_balanced', got {sampler!r}")
        if repeat_alpha is not None and repeat_alpha <= 0:
            raise ValueError(f"repeat_alpha must be positive, got {repeat_alpha}")
        if predict_split not in _SPLITS:
            raise ValueError(f"predict_split must be one of {_SPLITS}, got {predict_split!r}")
        if not 0.0 <= flip_prob <= 1.0:
            raise ValueError(f"flip_prob must be in [0, 1], got {flip_prob}")
        if clip_len < 1 or test_clips < 1 or batch_size < 1:
            raise ValueError("clip_len, test_clips and batch_size must be positive")
        self.root = Path(root)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.clip_len = clip_len
        self.keypoints = keypoints or self.default_keypoints
        self.normalize = normalize
        if center_mode not in ("clip", "frame"):
            raise ValueError(f"center_mode must be 'clip' or 'frame', got {center_mode!r}")
        self.center_mode = center_mode
        self.scale = scale
        self.flip_prob = flip_prob
        self.test_clips = test_clips
        self.test_flip = test_flip
        self.predict_split = predict_split
        self.on_bad_sample = on_bad_sample
        self.pin_memory = pin_memory
        self.extra_labels = extra_labels
        self.extra_labels_with_val = extra_labels_with_val
        # Python callers may pass dicts; the CLI has already built the objects.
        heatmap = coerce_options(HeatmapOptions, heatmap, "heatmap")
        video = coerce_options(VideoOptions, video, "video")
        self.heatmap = heatmap
        self.modalities = self._check_modalities(modalities, heatmap, video)
        if video is None and "video" in self.modalities:
            video = VideoOptions()
        self.video = video
        self.sampler = sampler
        self.repeat_alpha = repeat_alpha
        self.skipped: dict[str, int] = {}
        #: the warnings of the skipped clips, per split (``mgr check`` lists them).
        self.skip_messages: dict[str, list[str]] = {}
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.layout = self._resolve_layout(self.keypoints)
        self.records: dict[str, list[ClipRecord]] = {}
        self.datasets: dict[str, SkeletonClipDataset] = {}
        self.fg_text = fg_text
        self.fg_text_file = Path(fg_text_file) if fg_text_file is not None else None
        self._fgtext: FGTextTable | None = None
        self.synthmg = dict(synthmg) if synthmg is not None else None
        self.synthesize = synthesize

    # ---------------------------------------------------------------- to override
    def load_records(self, split: Split) -> list[ClipRecord]:
        """Read the clips of one split from :attr:`root`.

        Returns:
            Records with keypoints ``(T, V_parent, C)`` in :attr:`parent_layout`.
        """
        raise NotImplementedError

    @property
    def channels(self) -> tuple[str, ...]:
        """Names of the skeleton channels ``C`` the reader produces."""
        return ("x", "y", "confidence")

    @property
    def pixel_channels(self) -> tuple[int, int] | None:
        """Channels holding pixel ``(x, y)``, or ``None`` if the keypoints are not pixels."""
        return (0, 1) if self.image_size is not None else None

    def video_names(self, record: ClipRecord) -> list[str]:
        """File stems (without suffix) under which a clip's video may be stored.

        Returns:
            Candidates in order of preference; the default is the clip's own
            name (one file per clip, as iMiGUE and MA-52 ship their RGB).
        """
        return [record.sample_id]

    def video_frames(self, record: ClipRecord) -> tuple[int, int | None]:
        """``(first, last)`` frame of the clip inside its video (``None``: to the end)."""
        return 0, None

    @property
    def reader_on_error(self) -> Literal["raise", "warn"]:
        """The readers' ``on_error`` for :attr:`on_bad_sample`."""
        return "warn" if self.on_bad_sample == "skip" else "raise"

    # ---------------------------------------------------------------- properties
    @property
    def protocol_scheme(self) -> str:
        """How the splits were chosen (a key of :data:`mgr.protocols.SCHEMES`)."""
        return "official"

    def protocol(self, split: str) -> Protocol:
        """The evaluation protocol of one split, printed next to every metric."""
        synthetic = is_synthmg_release(self.root)
        return Protocol(self.dataset, self.protocol_scheme, split, synthetic=synthetic)

    @property
    def supplies(self) -> tuple[str, ...]:
        """Batch keys this datamodule supplies (see :mod:`mgr.batch`)."""
        keys = {"skeleton": ("skeleton",), "video": ("video",), "heatmap": ("heatmap",)}
        keys["pose"] = ("keypoint", "keypoint_score", "img_shape")
        inputs = sum((keys[m] for m in self.modalities), ())
        if self.heatmap is not None and self.modalities == ("skeleton",):
            inputs = ("heatmap",)  # HeatmapClipDataset: heatmaps in place of coordinates
        extra = ("coarse_label",) if self.dataset == "ma52" else ()
        if self.fg_text:
            extra += ("fg_text", "class_text")
        return (*inputs, "label", *extra, "sample_id")

    @property
    def fgtext(self) -> FGTextTable:
        """The FG-Text table: class defaults + per-sample annotations (read once)."""
        if self._fgtext is None:
            path = self.fg_text_file
            if path is None and (self.root / "fgtext.csv").is_file():
                path = self.root / "fgtext.csv"
            annotations = read_fgtext_csv(path) if path is not None else None
            if path is not None:
                log.info("FG-Text: %d per-sample annotations from %s", len(annotations), path)
            self._fgtext = FGTextTable(self.dataset, self.class_names, annotations)
        return self._fgtext

    @property
    def class_texts(self) -> list[str]:
        """The ``K`` class-level FG-Text sentences (FG-SGL's CP-A prototypes)."""
        return self.fgtext.class_sentences

    def _check_modalities(
        self,
        modalities: Sequence[str] | None,
        heatmap: HeatmapOptions | None,
        video: VideoOptions | None,
    ) -> tuple[str, ...]:
        if modalities is None:
            modalities = ["skeleton"] if self.parent_layout is not None else ["video"]
        modalities = tuple(modalities)
        allowed = ("skeleton", "video", "pose", "heatmap")
        if not modalities or any(m not in allowed for m in modalities):
            raise ValueError(
                f"modalities must be a non-empty subset of {allowed}, got {modalities}"
            )
        if self.parent_layout is None and set(modalities) != {"video"}:
            raise ValueError(
                f"{type(self).__name__} has no skeletons: modalities must be ['video']"
            )
        if "heatmap" in modalities and ("video" not in modalities or heatmap is None):
            raise ValueError(
                "modality 'heatmap' (next to 'video', cropped like it: RGBPoseConv3D) needs "
                "'video' in modalities and heatmap options; for heatmaps alone set only "
                "heatmap (modalities ['skeleton'])"
            )
        if heatmap is not None and modalities != ("skeleton",) and "heatmap" not in modalities:
            raise ValueError("heatmap options with other modalities: add 'heatmap' to modalities")
        if video is not None and video.crop == "saliency" and self.image_size is None:
            raise ValueError(
                f"{type(self).__name__}'s keypoints are not in pixels: no saliency crop "
                "(SMG: coords='pixel'; MA-52 has no skeleton: crop='center')"
            )
        if {"pose", "heatmap"} & set(modalities) and self.image_size is None:
            raise ValueError(
                f"{type(self).__name__}'s keypoints are not in pixels: no pose modality"
            )
        return modalities

    @property
    def num_heatmap_channels(self) -> int:
        """Heatmap channels ``K``: joints or limbs of the keypoint layout."""
        if self.heatmap is not None and self.heatmap.kind == "limb":
            return len(self.layout.limbs)
        return self.num_joints

    @property
    def classes(self) -> ClassList:
        """The dataset's class list."""
        return get_classes(self.dataset)

    @property
    def num_classes(self) -> int:
        """Number of classes ``K``."""
        return len(self.classes)

    @property
    def class_names(self) -> list[str]:
        """Class names, index = 0-based label."""
        return list(self.classes.names)

    @property
    def num_channels(self) -> int:
        """Skeleton channels ``C``."""
        return len(self.channels)

    @property
    def num_joints(self) -> int:
        """Joints ``V`` of the selected keypoint layout (0 without skeletons)."""
        return self.layout.num_joints if self.layout is not None else 0

    def class_histogram(self, split: Split = "train") -> torch.Tensor:
        """Number of clips per class.

        Returns:
            ``(K,)`` int64 counts (reads the split if it was not set up yet).
        """
        labels = torch.tensor([r.label for r in self._get_records(split)], dtype=torch.long)
        return torch.bincount(labels, minlength=self.num_classes)

    def num_samples(self, split: Split = "train") -> int:
        """Number of clips in a split."""
        return len(self._get_records(split))

    # ---------------------------------------------------------------- setup
    def _resolve_layout(self, name: str | None) -> SkeletonLayout | None:
        if self.parent_layout is None:
            if name is not None:
                raise ValueError(f"{type(self).__name__} has no skeletons: keypoints must be None")
            return None
        layout = get_layout(name)
        parent = get_layout(self.parent_layout)
        if layout.name == parent.name:
            return layout
        if layout.parent != parent.name or layout.parent_indices is None:
            raise ValueError(
                f"keypoints={name!r} is not a subset of {type(self).__name__}'s layout "
                f"{parent.name!r}; choose {parent.name!r} or one of its subsets: "
                f"{_subsets_of(parent.name)}"
            )
        return layout

    def transform_config(self, train: bool) -> SkeletonTransformConfig:
        """Sampling and normalisation settings of the train or evaluation datasets."""
        lay = self.layout
        if lay is None:  # video only: sampling and flip settings are all that apply
            return SkeletonTransformConfig(
                clip_len=self.clip_len,
                normalize=False,
                flip_permutation=(),  # no joints to swap: a video flip needs no permutation
                flip_prob=self.flip_prob if train else 0.0,
                num_clips=1 if train else self.test_clips,
                test_flip=False if train else self.test_flip,
            )
        joints = lay.parent_indices if lay.parent_indices is not None else None
        score = self.channels.index("confidence") if "confidence" in self.channels else None
        return SkeletonTransformConfig(
            clip_len=self.clip_len,
            joints=tuple(joints) if joints is not None else None,
            center=lay.center,
            flip_permutation=tuple(lay.flip_permutation()),
            score_channel=score,
            scale_joints=_shoulders(lay) if self.scale == "shoulder" else None,
            normalize=self.normalize,
            center_mode=self.center_mode,
            flip_prob=self.flip_prob if train else 0.0,
            num_clips=1 if train else self.test_clips,
            test_flip=False if train else self.test_flip,
        )

    def setup(self, stage: str) -> None:
        """Read the splits the stage needs (once; later stages reuse them)."""
        needed: dict[str, tuple[Split, ...]] = {
            "fit": ("train", "val"),
            "validate": ("val",),
            "test": ("test",),
            "predict": (self.predict_split,),
        }
        for split in needed.get(stage, _SPLITS):
            if split in self.datasets:
                continue
            self.datasets[split] = self.build_dataset(split)
            if self.skipped.get(split):
                log.warning(
                    "%s %s: skipped %d bad clip(s) (on_bad_sample='skip'); see the warnings above",
                    type(self).__name__,
                    split,
                    self.skipped[split],
                )

    def build_dataset(self, split: Split) -> SkeletonClipDataset:
        """The Dataset of one split, as :meth:`setup` builds it (reads the split if needed)."""
        train = split == "train"
        records, config = self._get_records(split), self.transform_config(train=train)
        if self.heatmap is not None and self.modalities == ("skeleton",):
            dataset: SkeletonClipDataset = HeatmapClipDataset(
                records, config, self.heatmap, self.layout.limbs, train=train
            )
        elif self.modalities == ("skeleton",):
            dataset = SkeletonClipDataset(records, config, train=train)
        else:
            dataset = ClipDataset(
                records,
                config,
                train=train,
                modalities=self.modalities,
                video=self.video,
                pixel_channels=self.pixel_channels,
                image_size=self.image_size,
                heatmap=self.heatmap,
                limbs=self.layout.limbs if self.layout is not None else (),
            )
        dataset.on_bad_sample = self.on_bad_sample
        if self.fg_text:
            self._attach_fgtext(split, dataset)
        return dataset

    def _attach_fgtext(self, split: str, dataset: SkeletonClipDataset) -> None:
        table = self.fgtext
        ids = [r.sample_id for r in dataset.records]
        if table.annotations:
            found = table.coverage(ids)
            if found == 0:
                raise ValueError(
                    f"FG-Text annotations name none of the {len(ids)} {split} samples "
                    f"(first ids here: {ids[:3]}); is the file for this dataset?"
                )
            if found < len(ids):
                log.warning(
                    "FG-Text: %d of %d %s samples have no annotation: class defaults used",
                    len(ids) - found,
                    len(ids),
                    split,
                )
        dataset.texts = table


def _shoulders(layout: SkeletonLayout) -> tuple[int, int] | None:
    """Indices of the two shoulders, found by name, or ``None``."""
    found = {}
    for i, name in enumerate(layout.joints):
        low = name.lower()
        if "shoulder" in low and "spine" not in low:
            side = "l" if ("left" in low or low.startswith("l")) else "r"
            found.setdefault(side, i)
    return (found["l"], found["r"]) if len(found) == 2 else None


def _subsets_of(parent: str) -> list[str]:
    from mgr.skeletons import LAYOUTS

    return sorted(n for n, lay in LAYOUTS.items() if lay.parent == parent)
