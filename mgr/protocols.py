"""Evaluation protocols of the benchmarks, and the numbers papers report under each.

Results on the micro-gesture benchmarks are reported under protocols that are not
comparable: iMiGUE on the closed MiGA challenge test server, on the paper's
cross-subject split or on a validation split; SMG classification on the MiGA split
(subjects 1-30 / 31-35 / 36-40) or the official one (1-35 / 36-40, where the
official code validates on the test subjects); MA-52 on its official lists, whose
train and val share participants. A number means little without its protocol, so
every metric ``mgr test`` and ``mgr fuse`` print carries one (:class:`Protocol`),
and :data:`REPORTED` lists the published numbers with the protocol they were
measured under (the README's "Benchmarks" table is this list).

A protocol is ``(dataset, scheme, split)``; the scheme is the datamodule option
that chose the splits: iMiGUE ``split_scheme`` (``folders`` / ``miga`` /
``subjects``), SMG ``split`` (``miga`` / ``official``), MA-52 ``official``.
This module imports nothing from mgr's data or models.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

__all__ = [
    "DATASET_NAMES",
    "REPORTED",
    "SCHEMES",
    "Protocol",
    "ReportedResult",
    "literature_line",
    "reported_for",
]

DATASET_NAMES: dict[str, str] = {"imigue": "iMiGUE", "smg": "SMG", "ma52": "MA-52"}
"""Display name of each dataset key."""

SCHEMES: dict[tuple[str, str], str] = {
    ("imigue", "folders"): "the release's own train / validate / test folders "
    "(MiGA challenge split; the challenge kept its test labels on a closed server)",
    ("imigue", "miga"): "MiGA'23 video-id lists (val: 10 videos, 777 clips; test: 104 videos, "
    "4,562 clips; train: the other videos)",
    ("imigue", "subjects"): "the paper's cross-subject protocol (37 train / 35 test subjects, "
    "evaluation protocol.pdf), validation subjects from the subject map",
    ("smg", "miga"): "MiGA split by subject: 1-30 train / 31-35 val / 36-40 test",
    ("smg", "official"): "official split by subject: 1-35 train / 36-40 test "
    "(val = test, as the official code validates on the test subjects)",
    ("ma52", "official"): "official list files (11,250 / 5,586 / 5,586 clips; train and val "
    "share participants: not cross-subject; test labels withheld by the challenge)",
}
"""Every ``(dataset, scheme)`` mgr implements, described in one line."""


@dataclass(frozen=True)
class Protocol:
    """Where a number was measured.

    Attributes:
        dataset: dataset key, ``"imigue"``, ``"smg"`` or ``"ma52"`` (``None``: unknown).
        scheme: how the splits were chosen (see :data:`SCHEMES`; ``None``: unknown).
        split: the evaluated split, e.g. ``"val"`` or ``"test"``.
        task: ``"classification"`` of trimmed clips or ``"online"`` detection in
            untrimmed sequences.
        synthetic: the data is SynthMG written in the dataset's layout (a release
            with ``synthmg.json``), not the real recordings: never comparable to a
            published number.
    """

    dataset: str | None
    scheme: str | None
    split: str
    task: str = "classification"
    synthetic: bool = False

    def describe(self) -> str:
        """One line: ``iMiGUE, split scheme 'subjects' (...), split 'test'``."""
        name = DATASET_NAMES.get(self.dataset or "", self.dataset or "unknown dataset")
        what = SCHEMES.get((self.dataset or "", self.scheme or ""))
        scheme = f"split scheme {self.scheme!r}" + (f" ({what})" if what else "")
        task = ", online detection" if self.task == "online" else ""
        if self.synthetic:
            name = f"SynthMG in the {name} layout (not the real data)"
        return f"{name}{task}, {scheme}, split {self.split!r}"

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form (stored in prediction sets' ``meta.json``)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Protocol:
        """Inverse of :meth:`as_dict`."""
        return cls(
            dataset=data.get("dataset"),
            scheme=data.get("scheme"),
            split=str(data.get("split", "?")),
            task=data.get("task", "classification"),
            synthetic=bool(data.get("synthetic", False)),
        )


@dataclass(frozen=True)
class ReportedResult:
    """A published number and the protocol it was measured under.

    Attributes:
        dataset: dataset key.
        task: ``"classification"`` or ``"online"``.
        method: method and modalities.
        metric: what the number is (``top1``, ``f1_mean``, ``online_f1`` ...).
        value: the number, in percent.
        protocol: where it was measured, in words.
        scheme: the mgr scheme that reproduces that protocol, ``None`` when mgr cannot
            (a closed test server).
        source: paper, table or repository it comes from.
    """

    dataset: str
    task: str
    method: str
    metric: str
    value: float
    protocol: str
    scheme: str | None
    source: str


REPORTED: tuple[ReportedResult, ...] = (
    ReportedResult(
        "smg", "classification", "FG-SGL (RGB, InternVL2.5-8B vision encoder + LoRA)", "top1",
        78.13, "SMG test subjects 36-40, MiGA-size train/val (2,452 / 637 / 610 clips)", "miga",
        "FG-SGL paper, Table I",
    ),
    ReportedResult(
        "imigue", "classification", "FG-SGL (RGB)", "top1", 62.58,
        "iMiGUE test split, 'standard evaluation protocol provided by the dataset' "
        "(cross-subject; the paper does not say which list)", "subjects",
        "FG-SGL paper, Table I",
    ),
    ReportedResult(
        "imigue", "classification", "MM-Gesture (PoseConv3D + Video Swin, J+L+R+T+F+D, "
        "MA-52 transfer)", "top1", 73.213, "MiGA'25 challenge test server (closed labels)",
        None, "MM-Gesture paper; MiGA'25 track 1, 1st",
    ),
    ReportedResult(
        "imigue", "classification", "Multi-modal framework with CMPL (ST-CNN + PoseC3D + "
        "Swin3D & R(2+1)D, J+H+R)", "top1", 68.13,
        "MiGA'26 challenge test server (closed labels); the abstract calls it F1, which equals "
        "top-1 (micro-F1) for single-label clips", None,
        "CMPL paper, Table 1; MiGA'26 track 1, 4th",
    ),
    ReportedResult(
        "imigue", "classification", "MiGA'26 winner (PoseConv3D + Video Swin + SMILE "
        "masked-video pretraining, J+L+R+D)", "top1", 74.419,
        "MiGA'26 challenge test server (closed labels); the CMPL paper's Table 1 lists it as "
        "74.66", None, "MiGA'26 track 1 leaderboard",
    ),
    ReportedResult(
        "smg", "online", "DyFADet + MSTA head (RGB, VideoMAEv2-g features)", "online_f1",
        38.03, "MiGA'25 track 2 Kaggle test set (SMG subjects 36-40); matching rule of the "
        "server not public (start kit: same label and tIoU > 0.3)", None,
        "online-recognition paper; MiGA'25 track 2, 1st",
    ),
    ReportedResult(
        "ma52", "classification", "Video Swin-S (MAC'24 baseline)", "top1", 58.88,
        "MA-52 official test list", "official", "MAC_2024_baseline README",
    ),
    ReportedResult(
        "ma52", "classification", "Video Swin-S (MAC'24 baseline)", "f1_mean", 65.64,
        "MA-52 official test list", "official", "MAC_2024_baseline README",
    ),
)  # fmt: skip
"""Published results the README's "Benchmarks" table lists; none is reproduced by mgr
on the real data yet (no real release or GPU has been available to this project)."""


def reported_for(dataset: str | None, task: str = "classification") -> list[ReportedResult]:
    """The published results of a dataset and task (empty for an unknown dataset)."""
    return [r for r in REPORTED if r.dataset == dataset and r.task == task]


def literature_line(protocol: Protocol) -> str | None:
    """Where the dataset's published numbers were measured, against this run's protocol.

    Returns:
        ``None`` when nothing is listed for the dataset; else one line naming each
        published number's protocol and saying whether it is the protocol of this run.
    """
    results = reported_for(protocol.dataset, protocol.task)
    if not results:
        return None
    parts = []
    for r in results:
        same = r.scheme is not None and r.scheme == protocol.scheme and protocol.split == "test"
        tag = (
            "same protocol" if same else "not comparable" if r.scheme is None else "other protocol"
        )
        if protocol.synthetic:
            tag = "real data; this run: SynthMG"
        parts.append(f"{r.method.split(' (')[0]} {r.metric} {r.value:g} on {r.protocol} [{tag}]")
    return "published: " + "; ".join(parts)
