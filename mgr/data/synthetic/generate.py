"""Writing a SynthMG release: subjects, sequences, splits and the per-layout writers."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..fgtext import FGAttributes, write_fgtext_csv
from .body import _BASE_AMPLITUDE, _Subject
from .config import SynthMGConfig
from .gestures import _HISTOGRAMS, GESTURES, GestureSpec, synth_attributes
from .layouts import (
    _KINECT_FOCAL,
    _smg_metres,
    _smg_pixels,
    _smg_world,
    _to_imigue,
    _to_openpose137,
    _to_smg,
)
from .motion import _idle, render_clip
from .render import FigureStyle, render_background, render_figure
from .writers import _SPLITS, _WRITERS

__all__ = ["generate_synthmg"]


# ----------------------------------------------------------------------------
# The release writer
# ----------------------------------------------------------------------------


def _class_probs(layout: str, floor: float) -> np.ndarray:
    h = np.asarray(_HISTOGRAMS[layout], dtype=float)
    p = h / h.sum()
    p = np.maximum(p, floor)
    return p / p.sum()


def _make_subject(sid: int, rng: np.random.Generator, cfg: SynthMGConfig) -> _Subject:
    # Framing drawn in full-HD pixels, then scaled to the keypoints' pixel space.
    fy, fx = cfg.image_size[0] / 1080, cfg.image_size[1] / 1920
    return _Subject(
        sid=sid,
        scale=float(rng.uniform(150, 260)) * fy,
        origin=np.array([rng.uniform(780, 1140) * fx, rng.uniform(380, 520) * fy]),
        proportions={
            "arm": float(rng.uniform(0.92, 1.08)),
            "head": float(rng.uniform(0.9, 1.1)),
            "hand": float(rng.uniform(0.85, 1.15)),
        },
        dominant="l" if rng.random() < cfg.left_handed else "r",
        style=float(rng.uniform(0.8, 1.25)),
        conf_level=float(rng.uniform(0.55, 0.9)),
        rng=np.random.default_rng(rng.integers(2**63)),
    )


def _render_sequence(
    subj: _Subject, labels: np.ndarray, cfg: SynthMGConfig, specs: Sequence[GestureSpec]
) -> tuple[np.ndarray | None, list[tuple[int, int, int]], tuple[dict, dict], list[FGAttributes]]:
    """Animate one long sequence with the given clip labels in order.

    Returns:
        ``(frames, clips, (positions, hidden), attributes)``: per-frame joints in
        the layout's row format (``None`` for the video-only MA-52 layout),
        ``(label, start, end)`` with 0-based inclusive frames, the body-unit joint
        positions and hidden-hand masks of every frame (what the RGB renderer
        draws), and the true FG-Text attributes of every clip.
    """
    rng = subj.rng
    noise = 0.5 + cfg.difficulty
    amplitude = _BASE_AMPLITUDE * (1.5 - cfg.difficulty)
    project = {"imigue": _to_imigue, "smg": _to_smg}.get(cfg.layout)
    if cfg.source == "miga25":
        project = _to_openpose137
    parts: list[tuple[dict, dict]] = []
    chunks, clips, t = [], [], 0
    attributes: list[FGAttributes] = []

    def add(pos: dict, hidden: dict) -> None:
        parts.append((pos, hidden))
        if project is not None:
            chunks.append(project(pos, hidden, subj, noise, cfg.missing_rate, rng))

    for label in labels:
        gap = int(rng.integers(cfg.gap_frames[0], cfg.gap_frames[1] + 1))
        if gap:
            add(*_idle(gap, subj, noise))
            t += gap
        n = int(rng.integers(cfg.clip_frames[0], cfg.clip_frames[1] + 1))
        info: dict = {}
        add(*render_clip(specs[label], n, subj, amplitude, noise, info))
        clips.append((int(label), t, t + n - 1))
        attributes.append(synth_attributes(specs[label], subj.dominant, info))
        t += n
    tail = int(rng.integers(cfg.gap_frames[0], cfg.gap_frames[1] + 1)) + 1
    add(*_idle(tail, subj, noise))
    positions = {k: np.concatenate([p[k] for p, _ in parts]) for k in parts[0][0]}
    hidden = {s: np.concatenate([h[s] for _, h in parts]) for s in "rl"}
    frames = np.concatenate(chunks, 0) if chunks else None
    return frames, clips, (positions, hidden), attributes


def _render_rgb(
    subj: _Subject, motion: tuple[dict, dict], cfg: SynthMGConfig, seed: int
) -> np.ndarray:
    """RGB frames ``(T, H, W, 3)`` uint8 of one sequence.

    Drawn from a random stream of its own, so that turning videos on does not
    change the skeleton files.
    """
    rng = np.random.default_rng([cfg.seed, seed, 0x51D])
    project = None
    scale = subj.scale
    if cfg.layout == "smg":  # draw where the Kinect's perspective projection puts the joints
        project = lambda xyz: _smg_pixels(_smg_world(xyz, subj))  # noqa: E731
        depth = _smg_world(np.zeros(3), subj)[2]
        scale = _KINECT_FOCAL * _smg_metres(subj) / depth  # pixels per body unit at the neck
    style = FigureStyle.random(
        rng,
        origin=tuple(subj.origin),
        scale=scale,
        image_size=cfg.image_size,
        desk=cfg.layout == "imigue",
    )
    background = render_background(rng, cfg.video_size)
    return render_figure(*motion, style, background, rng, project=project)


def generate_synthmg(out: str | Path, config: SynthMGConfig | None = None, **kwargs) -> Path:
    """Write a SynthMG release to ``out``.

    Args:
        out: output folder (created; existing files of the same names are overwritten).
        config: generator parameters; keyword arguments override its fields.
        **kwargs: fields of :class:`SynthMGConfig`.

    Returns:
        The output folder. It also holds ``synthmg.json``: the config, the video ->
        subject -> split map and the class counts per split (not part of the real
        layouts; readers ignore it).
    """
    cfg = SynthMGConfig(**{**(asdict(config) if config else {}), **kwargs})
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(cfg.seed)
    specs = GESTURES[cfg.layout]
    probs = _class_probs(cfg.layout, cfg.tail_floor)
    writer = _WRITERS[cfg.layout](out, cfg)
    meta: dict = {"config": asdict(cfg), "videos": {}, "class_counts": {}}
    fgtext: dict[str, FGAttributes] = {}
    counts = {split: np.zeros(len(specs), dtype=int) for split in _SPLITS}
    sid = vid = 0
    for split, n_subj in zip(_SPLITS, cfg.subjects, strict=True):
        for _ in range(n_subj):
            sid += 1
            subj = _make_subject(sid, rng, cfg)
            n_videos = 1 if cfg.layout == "smg" else cfg.videos_per_subject
            for _ in range(n_videos):
                vid += 1
                n_clips = max(1, int(rng.poisson(cfg.clips_per_video)))
                labels = rng.choice(len(specs), size=n_clips, p=probs)
                frames, clips, motion, attrs = _render_sequence(subj, labels, cfg, specs)
                rgb = _render_rgb(subj, motion, cfg, vid) if cfg.video else None
                written = writer.write(split, sid, vid, frames, clips, rgb)
                for (name, clip_split, label, sample), a in zip(written, attrs, strict=True):
                    meta["videos"][name] = {"subject": sid, "split": clip_split}
                    counts[clip_split][label] += 1
                    fgtext[sample] = a
    writer.close()
    write_fgtext_csv(out / "fgtext.csv", fgtext)
    meta["class_counts"] = {split: c.tolist() for split, c in counts.items()}
    (out / "synthmg.json").write_text(json.dumps(meta, indent=1))
    return out
