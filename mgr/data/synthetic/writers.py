"""Per-layout writers of SynthMG: iMiGUE (MiGA'23 csv / MiGA'25 xlsx, RGB), SMG, MA-52."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from ..readers.openpose_xlsx import write_openpose_xlsx
from ..readers.video import write_video
from .config import SynthMGConfig

_SPLITS = ("train", "val", "test")
_IMIGUE_DIRS = {
    "train": "imigue_skeleton_train",
    "val": "imigue_skeleton_validate",
    "test": "imigue_skeleton_test",
}
_IMIGUE_RGB_DIRS = {
    "train": "imigue_rgb_train",
    "val": "imigue_rgb_validate",
    "test": "imigue_rgb_test",
}


class _Writer:
    """Writes the sequences of one layout.

    ``write`` yields ``(name, split, label, sample_id)`` per clip for the meta file
    and the FG-Text annotations (``sample_id`` as the release's reader names it).
    """

    def __init__(self, out: Path, cfg: SynthMGConfig) -> None:
        self.out, self.cfg = out, cfg

    def write(
        self,
        split: str,
        sid: int,
        vid: int,
        frames: np.ndarray | None,
        clips: list[tuple[int, int, int]],
        rgb: np.ndarray | None,
    ) -> Iterator[tuple[str, str, int, str]]:
        raise NotImplementedError

    def close(self) -> None:
        """Write files that list every clip."""


class _IMiGUEWriter(_Writer):
    def __init__(self, out: Path, cfg: SynthMGConfig) -> None:
        super().__init__(out, cfg)
        self.lists: dict[str, list[str]] = {s: [] for s in _SPLITS}

    def write(
        self,
        split: str,
        sid: int,
        vid: int,
        frames: np.ndarray | None,
        clips: list[tuple[int, int, int]],
        rgb: np.ndarray | None,
    ) -> Iterator[tuple[str, str, int, str]]:
        from mgr.classes import imigue_label_to_raw

        name = f"{vid:04d}"
        folder = self.out / _IMIGUE_DIRS[split] / name
        folder.mkdir(parents=True, exist_ok=True)
        if self.cfg.source == "miga25":
            # The reader takes the xlsx cells as written: round as OpenPose's json does.
            write_openpose_xlsx(folder / f"{name}_openpose.xlsx", _round_openpose(frames))
        else:
            rows = np.concatenate(
                [np.arange(len(frames))[:, None], frames.reshape(len(frames), -1)], 1
            )
            _write_csv(folder / f"{name}_light_hand.csv", rows, "%d" + ",%.1f,%.1f,%.3f" * 35)
        _write_label_csv(
            folder / f"{name}_label.csv", [(imigue_label_to_raw(c), s, e) for c, s, e in clips]
        )
        if rgb is not None:
            rgb_dir = self.out / _IMIGUE_RGB_DIRS[split]
            rgb_dir.mkdir(parents=True, exist_ok=True)
            for k, (c, s, e) in enumerate(clips):
                write_video(
                    rgb_dir / f"{name}_{k}.mp4", rgb[s : e + 1], fps=self.cfg.fps, preset="veryfast"
                )
                self.lists[split].append(f"{name}_{k}.mp4 {c}")
            if self.cfg.untrimmed_video:
                folder = self.out / "imigue_rgb_untrimmed"
                folder.mkdir(exist_ok=True)
                write_video(folder / f"{name}.mp4", rgb, fps=self.cfg.fps, preset="veryfast")
        for k, (c, _, _) in enumerate(clips):
            yield name, split, c, f"{name}_{k}"

    def close(self) -> None:
        if self.cfg.video:
            for split, lines in self.lists.items():
                path = self.out / f"iMiGUE_{split}_clips_list.txt"
                path.write_text("".join(f"{line}\n" for line in lines))


class _SMGWriter(_Writer):
    def write(
        self,
        split: str,
        sid: int,
        vid: int,
        frames: np.ndarray | None,
        clips: list[tuple[int, int, int]],
        rgb: np.ndarray | None,
    ) -> Iterator[tuple[str, str, int, str]]:
        from mgr.classes import smg_label_to_raw

        name = f"Sample{sid:04d}"
        folder = self.out / name
        folder.mkdir(parents=True, exist_ok=True)
        _write_csv(
            folder / f"{name}_skeleton.csv",
            frames.reshape(len(frames), -1),
            ",".join(["%.5g"] * 275),
        )
        # SMG finelabels: end exclusive (the official gendata slices [start, end)).
        _write_label_csv(
            folder / f"{name}_finelabels.csv",
            [(smg_label_to_raw(c), s, e + 1) for c, s, e in clips],
        )
        (folder / f"{name}_data.csv").write_text(f"{len(frames)},{int(self.cfg.fps)},4500\n")
        if rgb is not None:
            rgb_dir = self.out / "smg_rgb" / name
            rgb_dir.mkdir(parents=True, exist_ok=True)
            write_video(rgb_dir / f"{name}_color.mp4", rgb, fps=self.cfg.fps, preset="veryfast")
        for k, (c, _, _) in enumerate(clips):
            yield name, split, c, f"{name}{k}"


class _MA52Writer(_Writer):
    #: share of a training participant's clips that go to the validation list
    #: (real MA-52: 5,586 val / 16,836 train+val).
    VAL_SHARE = 1 / 3

    def __init__(self, out: Path, cfg: SynthMGConfig) -> None:
        from mgr.classes import MA52

        super().__init__(out, cfg)
        self.lists: dict[str, list[str]] = {s: [] for s in _SPLITS}
        self.index: dict[int, int] = {}
        self.rng = np.random.default_rng([cfg.seed, 0x52])
        (out / "label_name.txt").write_text(
            "".join(f"{i}\t{n}\n" for i, n in enumerate(MA52.names))
        )

    def write(
        self,
        split: str,
        sid: int,
        vid: int,
        frames: np.ndarray | None,
        clips: list[tuple[int, int, int]],
        rgb: np.ndarray | None,
    ) -> Iterator[tuple[str, str, int, str]]:
        from mgr.classes import ma52_fine_to_coarse

        for c, s, e in clips:
            clip_split = split
            if split == "train" and self.rng.random() < self.VAL_SHARE:
                clip_split = "val"
            if clip_split == "test":
                name = f"test{len(self.lists['test']):04d}"
            else:
                k = self.index[sid] = self.index.get(sid, 0) + 1
                name = f"{sid:04d}_{ma52_fine_to_coarse(c):02d}_{k:04d}"
            folder = self.out / f"videos_{clip_split}"
            folder.mkdir(parents=True, exist_ok=True)
            write_video(folder / f"{name}.mp4", rgb[s : e + 1], fps=self.cfg.fps, preset="veryfast")
            self.lists[clip_split].append(f"{name}.mp4 {c}")
            yield name, clip_split, c, name

    def close(self) -> None:
        for split, lines in self.lists.items():
            # The real list files have Windows line endings.
            path = self.out / f"{split}_list_videos.txt"
            path.write_bytes("".join(f"{line}\r\n" for line in lines).encode())


_WRITERS: dict[str, type[_Writer]] = {
    "imigue": _IMiGUEWriter,
    "smg": _SMGWriter,
    "ma52": _MA52Writer,
}


def _round_openpose(frames: np.ndarray) -> np.ndarray:
    """``(T, V, 3)`` keypoints rounded to 0.1 px and confidences to 1e-3 (float64)."""
    out = frames.astype(np.float64)
    out[..., :2] = out[..., :2].round(1)
    out[..., 2] = out[..., 2].round(3)
    return out


def _write_label_csv(path: Path, rows: Sequence[tuple[int, int, int]]) -> None:
    path.write_text("".join(f"{a},{b},{c}\n" for a, b, c in rows))


def _write_csv(path: Path, rows: np.ndarray, line: str) -> None:
    """Write a headerless numeric csv, one ``line % row`` per row."""
    with open(path, "w", newline="\n") as f:
        f.write("\n".join(line % tuple(r) for r in rows.tolist()))
        f.write("\n")
