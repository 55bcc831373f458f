"""``mgr detect``: run a trained online detector on one untrimmed sequence.

A detector trained on recognizer features (``input_key="features"``) needs
``--recognizer REC.ckpt``: the same recognizer checkpoint (checked by its sha256
against the detector's ``feature_meta``), whose window features are extracted
on the fly with the window, stride, reader and transforms of that meta.

Writes the SMG start kit's prediction format (``label,start,end`` rows, raw
label ids 1..17, end exclusive like ``_finelabels.csv``) with the score as a
fourth column, and, when the sequence has ground-truth finelabels, a timeline
PNG (ground truth above, predictions below) and the start-kit F1.

``mgr detect --video VIDEO --out DIR`` runs the detector on a raw video instead: its
keypoints come from ``mgr pose`` files (``--pose``) or the pose models on the fly
(``--det``, ``--pose-model``), converted to the layout the detector was trained on (the
online datamodule of its training config for raw-skeleton detectors, the recorded
feature source for detectors on recognizer features). It writes
``<video>_detections.csv`` (``class,name,start,end,score``: 0-based class, frames with
an exclusive end), ``<video>_timeline.png`` and ``<video>_annotated.mp4`` (the skeleton
and the three best-scoring segments running through each frame).
"""

from __future__ import annotations

import argparse
import csv
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
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


def _feature_recognizer(
    model: OnlineDetector, recognizer: str | Path, trust: bool = False
) -> tuple[Any, dict]:
    """The recognizer checkpoint whose window features the detector was trained on, checked.

    Returns:
        The recognizer (eval mode) and the detector's ``feature_meta``.
    """
    from mgr.features import _file_sha256, load_recognizer

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
    if meta["transform"].get("kind") != "skeleton":
        raise NotImplementedError(
            f"{rec_path}: mgr detect --recognizer rebuilds skeleton windows only; features of "
            f"{meta['transform'].get('kind')} windows (video recognizers): run mgr "
            "extract-features on the sequence and detect on the features folder"
        )
    return rec, meta


def _features_of(rec: Any, meta: dict, seq: SequenceRecord, batch_size: int) -> dict[str, Any]:
    """The detector batch (``features (1, D, N)``, ``mask``, ``centers``, ``num_frames``)."""
    from mgr.features import SkeletonWindows, extract_sequence_features

    transform = SkeletonWindows.from_dict(meta["transform"])
    features, centers = extract_sequence_features(
        rec, seq, transform, meta["window"], meta["stride"], batch_size=batch_size
    )
    return {
        "features": torch.from_numpy(features).T[None],
        "mask": torch.ones(1, len(features), dtype=torch.bool),
        "centers": torch.from_numpy(centers)[None],
        "num_frames": torch.tensor([seq.num_frames]),
    }


def _feature_batch(
    model: OnlineDetector, recognizer: str, folder: Path, batch_size: int, trust: bool = False
) -> tuple[dict[str, Any], SequenceRecord, str]:
    """Extract the input folder's window features with the recognizer the detector was trained on.

    Returns:
        The detector batch (``features (1, D, N)``, ``mask``, ``centers``,
        ``num_frames``), the raw sequence and its dataset (``"smg"``/``"imigue"``).
    """
    from mgr.features import SequenceSource

    rec, meta = _feature_recognizer(model, recognizer, trust)
    source = SequenceSource(**{**meta["source"], "root": str(folder.parent)})
    seq = source.load(folder)
    return _features_of(rec, meta, seq, batch_size), seq, source.dataset


def _detections(
    model: OnlineDetector, batch: dict[str, Any], threshold: float
) -> list[tuple[int, int, int, float]]:
    """``(class, start, end_exclusive, score)`` of the detections scoring ``>= threshold``."""
    (det,) = model.detect(batch)
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
    return sorted(rows, key=lambda r: r[1])


#: Parent keypoint layout of the long sequences of each feature source.
_SOURCE_LAYOUT = {
    ("smg", None): "kinect_v2_25",
    ("imigue", "miga23"): "imigue_light_hand_35",
    ("imigue", "miga25"): "openpose_137",
}


def _detect_video(a: argparse.Namespace, model: OnlineDetector, threshold: float) -> int:
    """``mgr detect --video``: detections, timeline and annotated video of a raw video."""
    from mgr.annotate import write_annotated_video
    from mgr.data.pose_estimation.files import convert_layout
    from mgr.data.pose_estimation.run import video_info, video_keypoints
    from mgr.errors import UserError
    from mgr.features import _default_config, datamodule_from_config

    video, out = Path(a.video), Path(a.out)
    num_frames, _, _ = video_info(video)
    out.mkdir(parents=True, exist_ok=True)
    keypoints = video_keypoints(
        video, pose=a.pose, det=a.det, pose_model=a.pose_model, out=out,
        device="cuda" if a.device.startswith("cuda") else "cpu", progress=not a.no_progress,
    )  # fmt: skip
    if keypoints is None:
        raise UserError(
            "mgr detect --video needs the video's keypoints: pass --pose DIR (from mgr pose) or "
            "--det DET.onnx --pose-model POSE.onnx"
        )
    if not keypoints.keypoint[..., 2].any():
        raise UserError(
            f"{keypoints.source}: no person was detected in {video} (its keypoints are all "
            "zero); nothing to detect"
        )
    if model.hparams.input_key == "features":
        if a.recognizer is None:
            raise UserError(
                "this detector was trained on recognizer features: pass --recognizer REC.ckpt"
            )
        try:
            rec, meta = _feature_recognizer(model, a.recognizer, a.trust_checkpoint)
        except (FileNotFoundError, ValueError, TypeError, NotImplementedError) as err:
            raise UserError(str(err).splitlines()[0]) from err
        src, dataset = meta["source"], meta["source"]["dataset"]
        parent = _SOURCE_LAYOUT[(dataset, src.get("source") if dataset == "imigue" else None)]
        kp = convert_layout(keypoints.keypoint, keypoints.layout, parent)
        seq = SequenceRecord(
            video_id=video.stem, keypoint=kp.astype(np.float32), segments=np.zeros((0, 2), int),
            labels=np.zeros(0, int), source=str(keypoints.source), video=str(video),
        )  # fmt: skip
        batch = _features_of(rec, meta, seq, a.batch_size)
    else:
        config = Path(a.data) if a.data else _default_config(Path(a.ckpt).resolve())
        if config is None:
            raise UserError(
                f"no config.yaml next to {a.ckpt}: pass the detector's training config with "
                "--data (its datamodule gives the keypoint layout and normalisation)"
            )
        try:
            dm = datamodule_from_config(config)
        except (FileNotFoundError, ValueError) as err:
            raise UserError(str(err).splitlines()[0]) from err
        parent = dm.layout.parent or dm.layout.name
        kp = dm.normalize(convert_layout(keypoints.keypoint, keypoints.layout, parent))
        if kp.shape[1] * kp.shape[2] != model.hparams.in_channels:
            raise UserError(
                f"{config}: its datamodule gives {kp.shape[1]} joints x {kp.shape[2]} channels "
                f"per frame, but {a.ckpt} takes {model.hparams.in_channels}: not the detector's "
                "training config"
            )
        batch = {
            "skeleton": torch.from_numpy(kp).permute(2, 0, 1)[None, ..., None].float(),
            "mask": torch.ones(1, len(kp), dtype=torch.bool),
        }
    rows = _detections(model, batch, threshold)
    names = list(model.hparams.class_names or [])
    names += [f"class {k}" for k in range(len(names), model.hparams.num_classes)]
    stem = video.stem
    csv_path = out / f"{stem}_detections.csv"
    with open(csv_path, "w", newline="") as f:  # class names hold commas: quote them
        writer = csv.writer(f)
        writer.writerow(["class", "name", "start", "end", "score"])
        writer.writerows([c, names[c], s, e, f"{score:.4f}"] for c, s, e, score in rows)
    plot_timeline(out / f"{stem}_timeline.png", num_frames, [], rows, model.hparams.num_classes)
    written = [csv_path.name, f"{stem}_timeline.png"]
    if not a.no_video:

        def captions(t: int) -> list[str]:
            now = sorted((r for r in rows if r[1] <= t < r[2]), key=lambda r: -r[3])[:3]
            if not now:
                return ["no micro-gesture detected"]
            return [f"{names[c]}  {score:.2f}  (frames {s}-{e - 1})" for c, s, e, score in now]

        kp_draw, layout = keypoints.drawable()
        write_annotated_video(
            video, out / f"{stem}_annotated.mp4", kp_draw, layout, captions,
            progress=not a.no_progress,
        )  # fmt: skip
        written.append(f"{stem}_annotated.mp4")
    print(f"{len(rows)} detections (score >= {threshold}) -> {out}: {', '.join(written)}")
    return 0


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
    p.add_argument("--input", default=None, help="SampleXXXX (or iMiGUE <vid>) folder")
    p.add_argument(
        "--video",
        default=None,
        help="a raw video instead of --input: keypoints from --pose (mgr pose) or --det and "
        "--pose-model; writes <video>_detections.csv (class,name,start,end exclusive,score), "
        "<video>_timeline.png and <video>_annotated.mp4 into --out",
    )
    p.add_argument(
        "--out",
        required=True,
        help="prediction csv (label,start,end,score) with --input; output folder with --video",
    )
    p.add_argument("--pose", default=None, help="--video: pose files (mgr pose --out DIR)")
    p.add_argument("--det", default=None, help="--video: person detector .onnx (pose on the fly)")
    p.add_argument("--pose-model", default=None, help="--video: whole-body pose .onnx")
    p.add_argument(
        "--data",
        default=None,
        help="--video with a raw-skeleton detector: its training config (the online datamodule "
        "gives the keypoint layout and normalisation); default: the config.yaml next to the "
        "checkpoint's folder",
    )
    p.add_argument("--device", default="cpu", help="--video: cuda runs the pose models on GPU")
    p.add_argument("--no-video", action="store_true", help="--video: skip the annotated mp4")
    p.add_argument("--no-progress", action="store_true")
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
    if (a.input is None) == (a.video is None):
        p.error("give --input FOLDER (a release sequence) or --video VIDEO (a raw video)")
    from mgr.models.checkpoints import check_lightning_checkpoint

    check_lightning_checkpoint(a.ckpt, trust=a.trust_checkpoint, switch="pass --trust-checkpoint")
    model = OnlineDetector.load_from_checkpoint(
        a.ckpt, map_location="cpu", weights_only=not a.trust_checkpoint
    ).eval()
    threshold = model.hparams.f1_min_score if a.min_score is None else a.min_score
    if a.video is not None:
        return _detect_video(a, model, threshold)
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
    rows = _detections(model, batch, threshold)
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
