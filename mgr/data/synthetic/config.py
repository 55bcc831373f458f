"""The settings of a SynthMG release (:class:`SynthMGConfig`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .gestures import GESTURES

__all__ = ["SynthMGConfig"]


Layout = Literal["imigue", "smg", "ma52"]


@dataclass
class SynthMGConfig:
    """Parameters of a SynthMG release.

    Args:
        layout: on-disk layout to write, ``"imigue"`` or ``"smg"``.
        seed: seed of every random choice.
        subjects: number of (train, val, test) subjects; disjoint sets. ``None``:
            (30, 6, 10) for iMiGUE; (30, 5, 5) for SMG, which numbers subjects
            1..40 in order so that the MiGA subject split (1-30 / 31-35 / 36-40)
            applies unchanged.
        videos_per_subject: long sequences per subject (SMG: always 1).
        clips_per_video: mean number of annotated clips per video.
        clip_frames: (min, max) clip length in frames.
        gap_frames: (min, max) unannotated frames between clips.
        difficulty: 0 (easy) .. 1 (hard): scales the distinguishing motion
            down (``1.5 - difficulty``) and the noise up (``0.5 + difficulty``).
        tail_floor: minimum class share of the long-tailed distribution.
        left_handed: fraction of subjects who gesture with the left hand.
        missing_rate: probability that a joint is missing in a frame.
        video: also render RGB videos of the figure (see below). MA-52 is a
            video-only release, so ``layout="ma52"`` always renders them.
        video_size: ``(H, W)`` of the rendered videos (even numbers: the mp4
            encoder needs them). The skeleton keeps its own pixel space
            (``image_size``); the video is the same frame scaled to this size.
            The real releases: iMiGUE 720x1280, SMG 1080x1920 (Kinect v2 colour).
        fps: frame rate written into the videos.
        untrimmed_video: iMiGUE layout: also write each whole rendered sequence as
            ``imigue_rgb_untrimmed/<vid>.mp4`` (not part of the MiGA release, which
            ships clips only): the unlabelled footage between clips, for
            self-supervised pretraining (:class:`mgr.datamodules.UnlabeledDataModule`).
        image_size: ``(H, W)`` of the pixel space the keypoints are written in (and
            that the figure is framed in). iMiGUE's MiGA'25 code uses 720x1280; SMG's
            Kinect colour camera is fixed at 1080x1920 (the only size allowed there).
        source: iMiGUE skeleton format: ``"miga23"`` (``_light_hand.csv``, 35 joints)
            or ``"miga25"`` (``_openpose.xlsx``, 137 keypoints; face and the 21 points
            of each hand are derived from the body model).

    RGB videos (``video=True``) follow each release's RGB layout: iMiGUE as
    MiGA'25 per-clip files ``imigue_rgb_{train,validate,test}/<vid>_<k>.mp4`` with
    clip lists ``iMiGUE_{train,val,test}_clips_list.txt`` (``"<vid>_<k>.mp4
    <label>"``); SMG as one long ``smg_rgb/SampleXXXX/SampleXXXX_color.mp4`` per
    subject; MA-52 as ``videos_{train,val,test}/SSSS_BB_NNNN.mp4`` (test:
    ``testNNNN.mp4``) with ``label_name.txt`` and CRLF ``*_list_videos.txt``.
    Unlike the real MA-52 release, SynthMG's test list carries the true labels
    (the real one has dummy zeros), so test metrics are meaningful.
    """

    layout: Layout = "imigue"
    seed: int = 0
    subjects: tuple[int, int, int] | None = None
    videos_per_subject: int = 2
    clips_per_video: int = 24
    clip_frames: tuple[int, int] = (20, 48)
    gap_frames: tuple[int, int] = (2, 8)
    difficulty: float = 0.5
    tail_floor: float = 0.01
    left_handed: float = 0.15
    missing_rate: float = 0.02
    video: bool = False
    video_size: tuple[int, int] = (180, 320)
    fps: float = 30.0
    untrimmed_video: bool = False
    image_size: tuple[int, int] = (1080, 1920)
    source: Literal["miga23", "miga25"] = "miga23"

    def __post_init__(self) -> None:
        if self.layout not in GESTURES:
            raise ValueError(f"layout must be one of {sorted(GESTURES)}, got {self.layout!r}")
        if not 0.0 <= self.difficulty <= 1.0:
            raise ValueError(f"difficulty must be in [0, 1], got {self.difficulty}")
        if self.subjects is None:
            self.subjects = {"imigue": (30, 6, 10), "smg": (30, 5, 5), "ma52": (30, 0, 10)}[
                self.layout
            ]
        # MA-52's validation set shares the training participants (datasets.md §3.2).
        shared_val = self.layout == "ma52"
        needed = (1, 0, 1) if shared_val else (1, 1, 1)
        if len(self.subjects) != 3 or any(
            n < m for n, m in zip(self.subjects, needed, strict=True)
        ):
            raise ValueError(
                f"subjects must give (train, val, test) counts >= {needed}, got {self.subjects}"
            )
        if any(v % 2 for v in self.video_size):
            raise ValueError(f"video_size must be even, got {self.video_size}")
        if len(self.image_size) != 2 or min(self.image_size) < 64:
            raise ValueError(f"image_size must be (H, W) >= 64 px, got {self.image_size}")
        if self.layout == "smg" and tuple(self.image_size) != (1080, 1920):
            raise ValueError(
                f"SMG keypoints are Kinect v2 colour pixels (1080x1920), got {self.image_size}"
            )
        if self.source not in ("miga23", "miga25"):
            raise ValueError(f"source must be 'miga23' or 'miga25', got {self.source!r}")
        if self.source == "miga25" and self.layout != "imigue":
            raise ValueError("source='miga25' (the OpenPose-137 xlsx) is an iMiGUE layout")
        if self.layout == "ma52":
            self.video = True
        if self.untrimmed_video and (self.layout != "imigue" or not self.video):
            raise ValueError(
                "untrimmed_video writes the iMiGUE layout's whole sequences: it needs "
                "layout='imigue' and video=True (SMG's RGB is untrimmed already)"
            )
        lo, hi = self.clip_frames
        if not 4 <= lo <= hi:
            raise ValueError(f"clip_frames must satisfy 4 <= min <= max, got {self.clip_frames}")
        self.subjects = tuple(self.subjects)  # type: ignore[assignment]
        self.clip_frames = tuple(self.clip_frames)  # type: ignore[assignment]
        self.gap_frames = tuple(self.gap_frames)  # type: ignore[assignment]
        self.video_size = tuple(self.video_size)  # type: ignore[assignment]
        self.image_size = tuple(self.image_size)  # type: ignore[assignment]
