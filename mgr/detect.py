"""``mgr detect``: run a trained online detector on one untrimmed sequence.

A detector trained on recognizer features (``input_key="features"``) needs
``--recognizer REC.ckpt``: the same recognizer checkpoint (checked by its sha256
against the detector's ``feature_meta``), whose window features are extracted
on the fly with the window, stride, reader and transforms of that meta.

Writes the SMG start kit's prediction format (``label,start,end`` rows, raw
label ids 1..17, end exclusive like ``_finelabels.csv``) with the score as a
fourth column, and, when the sequence has ground-truth finelabels, a timeline
PNG (ground truth above, predictions below) and the start-kit F1.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from mgr.data.readers.common import SequenceRecord
from mgr.data.readers.smg import load_smg_sequence
from mgr.datamodules.online import normalize_sequence
from mgr.fileio import write_text
from mgr.metrics import OnlineF1

if TYPE_CHECKING:
    from mgr.models.detector import OnlineDetector

__all__ = ["detect_main", "plot_timeline"]


def plot_timeline(
    path: Path,
    num_frames: int,
    gt: Sequence[tuple[int, int, int]],
    pred: Sequence[tuple[int, int, int, float]],
    num_classes: int,
) -> None:
    """Ground truth and predictions as coloured bars over the frame axis.

    Args:
        path: PNG to write.
        num_frames: length of the sequence.
        gt: ``(label, start, end_exclusive)`` of the annotated instances.
        pred: ``(label, start, end_exclusive, score)`` of the detections.
        num_classes: number of classes (colour map size).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cmap = plt.get_cmap("tab20", num_classes)
    fig, ax = plt.subplots(figsize=(14, 2.2))
    for row, items in ((1, gt), (0, pred)):
        for item in items:
            label, start, end = item[:3]
            alpha = 1.0 if len(item) == 3 else max(0.25, float(item[3]))
            ax.barh(row, end - start, left=start, color=cmap(label), alpha=alpha, height=0.8)
            ax.text((start + end) / 2, row, str(label + 1), ha="center", va="center", fontsize=6)
    ax.set_yticks([0, 1], ["predicted", "ground truth"])
    ax.set_xlim(0, num_frames)
    ax.set_xlabel("frame")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _feature_batch(
    model: OnlineDetector, recognizer: str, folder: Path, batch_size: int, trust: bool = False
) -> tuple[dict[str, Any], SequenceRecord, str]:
    """Extract the input folder's window features with the recognizer the detector was trained on.

    Returns:
        The detector batch (``features (1, D, N)``, ``mask``, ``centers``,
        ``num_frames``), the raw sequence and its dataset (``"smg"``/``"imigue"``).
    """
    from mgr.features import (
        SequenceSource,
        SkeletonWindows,
        _file_sha256,
        extract_sequence_features,
        load_recognizer,
    )

    meta = model.feature_meta
    if meta is None:
        raise ValueError(
            "the detector was trained on features but its checkpoint has no feature_meta "
            "(train it with a datamodule whose features_dir is set)"
        )
    rec_path = Path(recognizer)
    rec = load_recognizer(rec_path, trust=trust)
    name = f"{type(rec).__module__}.{type(rec).__qualname__}"
    if name != meta["recognizer_class"] or rec.feature_dim != model.hparams.in_channels:
        raise ValueError(
            f"{rec_path}: a {name} with {rec.feature_dim} features, but the detector was "
            f"trained on {meta['recognizer_class']} features of size {model.hparams.in_channels}"
        )
    if _file_sha256(rec_path) != meta["ckpt_sha256"]:
        raise ValueError(
            f"{rec_path} is not the recognizer checkpoint whose features the detector was "
            f"trained on ({meta['ckpt']}, sha256 {meta['ckpt_sha256'][:12]}...)"
        )
    source = SequenceSource(**{**meta["source"], "root": str(folder.parent)})
    seq = source.load(folder)
    if meta["transform"].get("kind") != "skeleton":
        raise NotImplementedError(
            f"{rec_path}: mgr detect --recognizer rebuilds skeleton windows only; features of "
            f"{meta['transform'].get('kind')} windows (video recognizers): run mgr "
            "extract-features on the sequence and detect on the features folder"
        )
    transform = SkeletonWindows.from_dict(meta["transform"])
    features, centers = extract_sequence_features(
        rec, seq, transform, meta["window"], meta["stride"], batch_size=batch_size
    )
    batch = {
        "features": torch.from_numpy(features).T[None],
        "mask": torch.ones(1, len(features), dtype=torch.bool),
        "centers": torch.from_numpy(centers)[None],
        "num_frames": torch.tensor([seq.num_frames]),
    }
    return batch, seq, source.dataset


def detect_main(argv: Sequence[str]) -> int:
    """Entry point of ``mgr detect``."""
    from mgr.classes import imigue_label_to_raw
    from mgr.models.detector import OnlineDetector

    p = argparse.ArgumentParser(
        prog="mgr detect",
        description="Detect (start, end, class) micro-gestures in one untrimmed sequence with a "
        "trained OnlineDetector: an SMG SampleXXXX folder (raw-skeleton detectors), or, for "
        "a detector trained on recognizer features, a folder of the release it was trained "
        "on (SMG SampleXXXX or iMiGUE <vid>) and --recognizer.",
    )
    p.add_argument("--ckpt", required=True, help="OnlineDetector checkpoint (mgr fit)")
    p.add_argument("--input", required=True, help="SampleXXXX (or iMiGUE <vid>) folder")
    p.add_argument("--out", required=True, help="prediction csv (label,start,end,score)")
    p.add_argument("--coords", choices=["world", "pixel"], default="world")
    p.add_argument(
        "--min-score", type=float, default=None, help="default: the model's f1_min_score"
    )
    p.add_argument("--timeline", default=None, help="PNG path (default: next to --out)")
    p.add_argument(
        "--recognizer",
        default=None,
        help="the Recognizer checkpoint whose window features the detector was trained on "
        "(mgr extract-features): features are extracted on the fly with the windows and "
        "transforms recorded in the detector's checkpoint",
    )
    p.add_argument("--batch-size", type=int, default=64, help="windows per recognizer pass")
    p.add_argument(
        "--trust-checkpoint",
        action="store_true",
        help="unpickle the checkpoints fully (runs code they hold: only for files you trust)",
    )
    a = p.parse_args(argv)
    from mgr.models.checkpoints import check_lightning_checkpoint

    check_lightning_checkpoint(a.ckpt, trust=a.trust_checkpoint, switch="pass --trust-checkpoint")
    model = OnlineDetector.load_from_checkpoint(
        a.ckpt, map_location="cpu", weights_only=not a.trust_checkpoint
    ).eval()
    folder = Path(a.input)
    dataset = "smg"
    if model.hparams.input_key == "features":
        if a.recognizer is None:
            p.error("this detector was trained on recognizer features: pass --recognizer REC.ckpt")
        batch, seq, dataset = _feature_batch(
            model, a.recognizer, folder, a.batch_size, a.trust_checkpoint
        )
    else:
        if a.recognizer is not None:
            p.error("--recognizer: this detector reads raw skeletons, not recognizer features")
        seq = load_smg_sequence(folder, coords=a.coords)
        kp = torch.from_numpy(normalize_sequence(seq.keypoint))  # (T, V, C)
        batch = {
            "skeleton": kp.permute(2, 0, 1)[None, ..., None],
            "mask": torch.ones(1, len(kp), dtype=torch.bool),
        }
    (det,) = model.detect(batch)
    threshold = model.hparams.f1_min_score if a.min_score is None else a.min_score
    keep = det["scores"] >= threshold
    rows = [
        (int(c), int(s), int(e), float(score))
        for (s, e), c, score in zip(
            det["segments"][keep].tolist(),
            det["labels"][keep].tolist(),
            det["scores"][keep],
            strict=True,
        )
    ]
    rows.sort(key=lambda r: r[1])
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    # Raw label ids of the release: SMG 1..17; iMiGUE 1..31 and 99 for non-MG.
    raw = imigue_label_to_raw if dataset == "imigue" else (lambda c: c + 1)
    write_text(out, "".join(f"{raw(c)},{s},{e},{score:.4f}\n" for c, s, e, score in rows))
    print(f"{len(rows)} detections (score >= {threshold}) -> {out}")
    gt = [(int(c), int(s), int(e) + 1) for (s, e), c in zip(seq.segments, seq.labels, strict=True)]
    if gt:
        f1 = OnlineF1()
        f1.update(
            [{"segments": torch.tensor([r[1:3] for r in rows]).reshape(-1, 2),
              "labels": torch.tensor([r[0] for r in rows], dtype=torch.long),
              "scores": torch.tensor([r[3] for r in rows])}],
            [{"segments": torch.tensor([g[1:] for g in gt]).reshape(-1, 2),
              "labels": torch.tensor([g[0] for g in gt], dtype=torch.long)}],
        )  # fmt: skip
        scores = {k: float(v) for k, v in f1.compute().items()}
        print(
            f"vs {len(gt)} annotated instances: F1 {scores['f1']:.3f} "
            f"(precision {scores['precision']:.3f}, recall {scores['recall']:.3f}; "
            f"{f1.rule})"
        )
        timeline = Path(a.timeline) if a.timeline else out.with_suffix(".png")
        plot_timeline(timeline, seq.num_frames, gt, rows, model.hparams.num_classes)
        print(f"timeline -> {timeline}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    import sys

    sys.exit(detect_main(sys.argv[1:]))
