"""``mgr check``: read every sample of a config's splits before a long run.

With ``on_bad_sample: raise`` a bad file stops training only when the sampler
first draws it, which may be hours in (or never, with ``sampler:
sqrt_balanced`` and a short run). ``mgr check --config CONFIG`` builds the
datamodule exactly as ``mgr fit`` does (LightningCLI parsing, the same
overrides) and reads every clip of every split the way training and
evaluation read it: the release's keypoint files, the clip's sample through
the split's own transforms (pose, heatmaps, FG-Text), and a full decode of
the clip's span in its video. It does not stop at the first problem: it
prints one table of every bad file with the reason, the counts per split, and
exits with status 1 if anything is bad. ``mgr fit --check_data true`` runs the
same check on the splits a run reads before training starts.

Problems come from the places that report them during training: the readers
(a malformed or missing file, a clip past the end of its sequence), the video
attachment (a missing, empty or unreadable video) and the Dataset's own item
loading (a file that fails only when decoded). Clips whose keypoints are all
zero are not errors: training always skips them; they are counted.
"""

from __future__ import annotations

import argparse
import copy
import logging
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from torch.utils.data import DataLoader, Dataset

from mgr.data.datasets import ClipDataset, SkeletonClipDataset
from mgr.data.readers.common import ClipRecord, FileProblem, collect_file_problems
from mgr.errors import UserError

__all__ = ["BadFile", "CheckReport", "check_data", "check_main"]

#: readers' warning for clips without a detected person (always skipped, not an error).
_NOBODY = "no person detected"
_PATH = re.compile(r"((?:[A-Za-z]:)?[\w.~-]*/[^\s,;:()'\"]+)")
_MISSING_VIDEO = re.compile(r"no video (\S+) under")


@dataclass(frozen=True)
class BadFile:
    """One bad file (or clip) found by :func:`check_data`.

    Attributes:
        split: the split it belongs to.
        sample: the clip's sample id, or ``"-"`` when a whole file or split failed.
        file: the file at fault (best effort: the path the reason names).
        problem: the reason, as training would report it.
    """

    split: str
    sample: str
    file: str
    problem: str


@dataclass
class SplitCounts:
    """Counts of one split.

    Attributes:
        read: clips the readers returned (bad files' clips are not among them).
        ok: of those, clips whose sample loaded and whose video span decoded.
        nobody: clips skipped because their keypoints are all zero (training skips
            them too; not an error).
    """

    read: int = 0
    ok: int = 0
    nobody: int = 0


@dataclass
class CheckReport:
    """What :func:`check_data` found.

    Attributes:
        bad: every bad file or clip.
        splits: split -> its counts.
    """

    bad: list[BadFile] = field(default_factory=list)
    splits: dict[str, SplitCounts] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Whether nothing is bad."""
        return not self.bad

    def format(self) -> str:
        """The table of bad files (if any), then the counts per split."""
        lines: list[str] = []
        if self.bad:
            lines.append(f"{len(self.bad)} bad:")
            lines += _table(
                ("split", "sample", "file", "problem"),
                [(b.split, b.sample, b.file, b.problem) for b in self.bad],
            )
            lines.append("")
        rows = []
        for split, c in self.splits.items():
            bad = sum(b.split == split for b in self.bad)
            rows.append((split, str(c.read), str(c.ok), str(bad), str(c.nobody)))
        lines += _table(("split", "clips read", "loaded ok", "bad", "no person (skipped)"), rows)
        return "\n".join(lines)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Left-aligned columns; the last one is not padded."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]

    def line(row: Sequence[str]) -> str:
        cells = [c.ljust(w) for c, w in zip(row[:-1], widths, strict=True)]
        return "  ".join([*cells, row[-1]]).rstrip()

    return [line(header), *(line(r) for r in rows)]


def _file_in(message: str, default: str) -> str:
    """The file a message is about: a missing video's name, else the first path it names."""
    found = _MISSING_VIDEO.search(message) or _PATH.search(message)
    return found[1] if found else default


def _bad(split: str, sample: str, file: str, message: str) -> BadFile:
    """A row; the reason loses its leading ``FILE:`` / ``FILE,`` (the file has its column)."""
    for sep in (": ", ", "):
        if message.startswith(file + sep):
            message = message[len(file) + len(sep) :]
            break
    return BadFile(split, sample, file, message)


class _Probe(Dataset):
    """Loads each record of a split's Dataset as training would; returns the failures."""

    def __init__(self, dataset: SkeletonClipDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset.records)

    def __getitem__(self, index: int) -> tuple[str, str, str] | None:
        rec: ClipRecord = self.dataset.records[index]
        try:
            self.dataset.load_item(rec)
            if isinstance(self.dataset, ClipDataset) and "video" in self.dataset.modalities:
                self.dataset.decode_span(rec)
        except Exception as err:  # every failure is reported, none stops the check
            message = str(err) or type(err).__name__
            if rec.video is not None and rec.video in message:
                where = rec.video
            elif rec.source in message:
                where = rec.source
            else:
                where = _file_in(message, rec.video or rec.source)
            return rec.sample_id, where, message
        return None


def _first(batch: list[Any]) -> Any:
    return batch[0]


def check_data(
    datamodule: Any,
    splits: Sequence[str] | None = None,
    *,
    workers: int = 0,
    progress: bool = True,
) -> CheckReport:
    """Read every clip of ``splits`` as training and evaluation would; collect every problem.

    The datamodule is not changed: the check runs on a copy set to
    ``on_bad_sample="skip"``, so that readers and the video attachment report a
    bad clip and go on, and inside :func:`~mgr.data.readers.common.collect_file_problems`,
    so that a malformed file is reported and the split's other files are still read.

    Args:
        datamodule: a :class:`~mgr.datamodules.base.MicroGestureDataModule` or an
            online datamodule (``load_sequences``), not set up yet.
        splits: the splits to read (default ``train``, ``val``, ``test``).
        workers: DataLoader worker processes that load the clips (``0``: here).
        progress: show a progress bar per split.

    Returns:
        The bad files and the counts per split.
    """
    splits = list(splits or ("train", "val", "test"))
    report = CheckReport()
    if not hasattr(datamodule, "build_dataset"):
        return _check_sequences(datamodule, splits, report)
    quiet = logging.getLogger("mgr")  # the table reports what the skip warnings would log
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        return _check_clips(datamodule, splits, report, workers, progress)
    finally:
        quiet.setLevel(level)


def _check_clips(
    datamodule: Any, splits: Sequence[str], report: CheckReport, workers: int, progress: bool
) -> CheckReport:
    from tqdm import tqdm  # not tqdm.auto: its asyncio flavour starts a second iterator

    dm = copy.deepcopy(datamodule)
    dm.on_bad_sample = "skip"
    for split in splits:
        counts = report.splits.setdefault(split, SplitCounts())
        with collect_file_problems() as problems:
            try:
                dataset = dm.build_dataset(split)
            except (OSError, ValueError, UserError) as err:  # the whole split is unreadable
                report.bad.append(_bad(split, "-", _file_in(str(err), str(dm.root)), str(err)))
                dataset = None
        report.bad += [_file_problem(split, p) for p in problems]
        for message in dm.skip_messages.get(split, []):
            if _NOBODY in message:
                counts.nobody += 1
                continue
            problem = re.sub(r"^skipping (bad )?clip:?\s*", "", message)
            sample = re.search(r"\bclip (\S+)", problem)
            name = sample[1] if sample else "-"
            report.bad.append(_bad(split, name, _file_in(problem, "-"), problem))
        if dataset is None:
            continue
        counts.read = len(dataset.records)
        loader = DataLoader(_Probe(dataset), batch_size=1, num_workers=workers, collate_fn=_first)
        bar = tqdm(loader, desc=f"check {split}", unit="clip", disable=not progress, leave=False)
        for found in bar:
            if found is None:
                counts.ok += 1
            else:
                report.bad.append(_bad(split, *found))
    return report


def _file_problem(split: str, problem: FileProblem) -> BadFile:
    err = problem.error
    message = str(err)
    file = getattr(err, "filename", None) or _file_in(message, problem.source)
    if isinstance(err, FileNotFoundError) and err.filename:
        message = "does not exist"
    return _bad(split, "-", str(file), message)


def _check_sequences(dm: Any, splits: Sequence[str], report: CheckReport) -> CheckReport:
    """Online datamodules: whole sequences, read into memory, then every window."""
    for split in splits:
        counts = report.splits.setdefault(split, SplitCounts())
        with collect_file_problems() as problems:
            try:
                sequences = dm.load_sequences(split)
            except (OSError, ValueError) as err:
                report.bad.append(_bad(split, "-", _file_in(str(err), str(dm.root)), str(err)))
                sequences = []
        report.bad += [_file_problem(split, p) for p in problems]
        counts.read = len(sequences)
        if not sequences:
            continue
        dataset = dm._dataset(split)
        for i in range(len(dataset)):
            try:
                dataset[i]
            except Exception as err:  # every failure is reported, none stops the check
                report.bad.append(BadFile(split, f"window {i}", "-", str(err)))
        counts.ok = counts.read
    return report


def check_main(argv: Sequence[str], cli: type) -> int:
    """Entry point of ``mgr check --config CONFIG [overrides]``.

    Args:
        argv: the arguments after ``mgr check``.
        cli: the command line's LightningCLI class (:class:`mgr.cli.MgrCLI`), which
            parses the config as ``mgr fit`` would; passed in because the command
            line imports this module, not the other way round.

    Returns:
        ``0`` if every clip loaded, ``1`` if anything is bad.
    """
    p = argparse.ArgumentParser(
        prog="mgr check",
        description="Read every clip of every split a config uses, as training and "
        "evaluation read it (keypoints, transforms, FG-Text, a full decode of each clip's "
        "video span); print one table of every bad file with the reason and the counts per "
        "split. Exit status 1 if anything is bad. Other options (--config, "
        "--data.init_args.root ...) are the config and overrides of `mgr fit`.",
    )
    p.add_argument("--splits", nargs="+", default=["train", "val", "test"])
    p.add_argument(
        "--workers",
        type=int,
        default=min(8, os.cpu_count() or 1),
        help="worker processes that load clips (default: the CPU count, at most 8)",
    )
    p.add_argument("--no-progress", action="store_true")
    a, rest = p.parse_known_args(argv)
    if not any(x == "--config" or x.startswith("--config=") or x == "-c" for x in rest):
        p.error("--config CONFIG is required (the config mgr fit would run)")
    dm = datamodule_from_cli(rest, cli)
    report = check_data(dm, a.splits, workers=a.workers, progress=not a.no_progress)
    print(report.format())
    if report.ok:
        print(f"mgr check: every clip of {', '.join(a.splits)} loads")
        return 0
    print(f"mgr check: {len(report.bad)} bad file(s) or clip(s)", file=sys.stderr)
    return 1


def datamodule_from_cli(args: Sequence[str], cli: type) -> Any:
    """The datamodule a ``mgr fit`` command line would build (the model is not built).

    Args:
        args: ``--config CONFIG`` and overrides, as given to ``mgr fit``.
        cli: the LightningCLI subclass of the command line (:class:`mgr.cli.MgrCLI`).
    """
    from lightning.pytorch import LightningDataModule
    from lightning.pytorch.cli import LightningArgumentParser

    class _DataOnly(cli):
        """Parse as ``mgr fit`` does, then instantiate only ``data``."""

        def _set_seed(self) -> None:  # nothing random is drawn by a check
            pass

        def instantiate_classes(self) -> None:
            parser = LightningArgumentParser()
            parser.add_lightning_class_args(LightningDataModule, "data", subclass_mode=True)
            config = parser.parse_object({"data": self.config["data"]})
            instantiate = getattr(parser, "instantiate", None) or parser.instantiate_classes
            self.datamodule = instantiate(config)["data"]
            self.model = self.trainer = None

    argv, sys.argv = sys.argv, sys.argv[:1]  # LightningCLI warns about args next to sys.argv
    try:
        return _DataOnly(args=list(args), run=False).datamodule
    finally:
        sys.argv = argv
