"""Online detection on untrimmed SynthMG: the detector vs a naive sliding-window baseline.

The baseline is what one builds from a clip classifier alone: an ST-CNN
trained on the trimmed clips (the same finelabels) classifies windows of
``--window`` frames every ``--stride`` frames; a window whose top probability
is below ``--threshold`` is background; consecutive windows with the same class
merge into one detection spanning them. Both are scored with the SMG start-kit
F1 (label match, temporal IoU > 0.3; one-to-one and start-kit matching) and
temporal mAP@0.3:0.7 (the baseline's score = the mean top probability of its
windows) on the test sequences.

    mgr synth --layout smg --out data/synthmg_smg_untrimmed --seed 0 --clips-per-video 40 \\
        --gap-frames 30 150
    mgr fit --config experiments/synth/online_detector.yaml
    python benchmarks/detector_baselines.py --root data/synthmg_smg_untrimmed \\
        --detector runs/synth_online_detector/checkpoints/best.ckpt
"""

from __future__ import annotations

import argparse
import time

import lightning.pytorch as pl
import numpy as np
import torch

from mgr.data.readers.smg import find_smg_samples, load_smg_sequence
from mgr.data.transforms.pose import normalize_skeleton, uniform_sample_indices
from mgr.datamodules import SMGDataModule, SMGOnlineDataModule
from mgr.metrics import OnlineF1, TemporalMAP
from mgr.models import STCNN, OnlineDetector


def train_classifier(root: str, epochs: int, clip_len: int) -> tuple[STCNN, SMGDataModule]:
    """An ST-CNN on the trimmed clips of the same release (the demo's recipe)."""
    dm = SMGDataModule(root, clip_len=clip_len, batch_size=32, flip_prob=0.5)
    model = STCNN(
        dm.num_classes, in_channels=3, num_joints=25, channels=(32, 64, 64, 128),
        temporal_strides=(1, 2, 1, 2), dropout=0.2, label_smoothing=0.1,
        optimizer=lambda p: torch.optim.AdamW(p, lr=2e-3, weight_decay=0.01),
    )  # fmt: skip
    trainer = pl.Trainer(
        max_epochs=epochs, accelerator="cpu", logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
    )  # fmt: skip
    trainer.fit(model, dm)
    return model.eval(), dm


@torch.no_grad()
def sliding_window(
    model: STCNN, keypoint: np.ndarray, dm: SMGDataModule, window: int, stride: int,
    threshold: float,
) -> dict[str, torch.Tensor]:  # fmt: skip
    """Detections ``(start, end_exclusive)`` of the merged confident windows of one sequence."""
    cfg = dm.transform_config(train=False)
    starts = list(range(0, max(len(keypoint) - window, 0) + 1, stride))
    clips = []
    for s in starts:
        kp = normalize_skeleton(
            keypoint[s : s + window], cfg.center, score_channel=cfg.score_channel,
            scale_joints=cfg.scale_joints, center_mode=cfg.center_mode,
        )  # fmt: skip
        idx = uniform_sample_indices(len(kp), cfg.clip_len, test_mode=True)
        clips.append(kp[idx].transpose(2, 0, 1)[..., None])
    probs = torch.cat([
        model({"skeleton": torch.from_numpy(np.stack(clips[i : i + 256])).float()}).softmax(-1)
        for i in range(0, len(clips), 256)
    ])  # fmt: skip
    conf, label = probs.max(-1)
    segments, labels, scores = [], [], []
    run = None  # [label, first window, last window, confidences]
    for i, (c, p) in enumerate(zip(label.tolist(), conf.tolist(), strict=True)):
        if p >= threshold and run is not None and run[0] == c and run[2] == i - 1:
            run[2], run[3] = i, run[3] + [p]
            continue
        if run is not None:
            segments.append((starts[run[1]], starts[run[2]] + window))
            labels.append(run[0])
            scores.append(float(np.mean(run[3])))
        run = [c, i, i, [p]] if p >= threshold else None
    if run is not None:
        segments.append((starts[run[1]], starts[run[2]] + window))
        labels.append(run[0])
        scores.append(float(np.mean(run[3])))
    return {
        "segments": torch.tensor(segments, dtype=torch.long).reshape(-1, 2),
        "labels": torch.tensor(labels, dtype=torch.long),
        "scores": torch.tensor(scores),
    }


def score(preds: list[dict], targets: list[dict], min_score: float) -> dict[str, float]:
    """Start-kit F1 (one-to-one and start-kit matching) of the confident detections, and mAP."""
    f1, kit, tmap = OnlineF1(), OnlineF1(one_to_one=False), TemporalMAP()
    confident = [{k: v[p["scores"] >= min_score] for k, v in p.items()} for p in preds]
    f1.update(confident, targets)
    kit.update(confident, targets)
    tmap.update(preds, targets)
    a, b, m = f1.compute(), kit.compute(), tmap.compute()
    return {
        "F1": float(a["f1"]), "P": float(a["precision"]), "R": float(a["recall"]),
        "F1 start kit": float(b["f1"]), "mAP": float(m["mAP"]),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="data/synthmg_smg_untrimmed")
    parser.add_argument("--detector", default="runs/synth_online_detector/checkpoints/best.ckpt")
    parser.add_argument("--epochs", type=int, default=12, help="baseline classifier epochs")
    parser.add_argument("--window", type=int, default=32)
    parser.add_argument("--stride", type=int, default=8)
    parser.add_argument("--threshold", type=float, default=0.5)
    args = parser.parse_args()
    pl.seed_everything(0)
    online = SMGOnlineDataModule(args.root)
    tests = online.load_sequences("test")
    samples = find_smg_samples(args.root)  # unnormalised keypoints for the classifier
    raw = {s.video_id: load_smg_sequence(samples[s.subject]).keypoint for s in tests}
    targets = [
        {"segments": torch.from_numpy(s.segments) + torch.tensor([0, 1]),
         "labels": torch.from_numpy(s.labels)}
        for s in tests
    ]  # fmt: skip

    detector = OnlineDetector.load_from_checkpoint(args.detector, map_location="cpu").eval()
    t0 = time.perf_counter()
    det_preds = [p for batch in online.test_dataloader() for p in detector.detect(batch)]
    det_time = time.perf_counter() - t0

    t0 = time.perf_counter()
    clf, dm = train_classifier(args.root, args.epochs, clip_len=32)
    train_time = time.perf_counter() - t0
    t0 = time.perf_counter()
    base_preds = [
        sliding_window(clf, raw[s.video_id], dm, args.window, args.stride, args.threshold)
        for s in tests
    ]
    base_time = time.perf_counter() - t0

    frames = sum(s.num_frames for s in tests)
    rows = [
        ("OnlineDetector (raw skeleton)", score(det_preds, targets, detector.hparams.f1_min_score),
         det_time),
        (f"ST-CNN windows {args.window}/{args.stride} + merge", score(base_preds, targets, 0.0),
         base_time),
    ]  # fmt: skip
    n_gt = sum(len(t["labels"]) for t in targets)
    print(f"\n{len(tests)} test sequences, {frames} frames, {n_gt} instances; "
          f"baseline classifier trained in {train_time:.0f} s\n")  # fmt: skip
    keys = ["F1", "P", "R", "F1 start kit", "mAP"]
    print(f"{'method':<34}" + "".join(f"{k:>13}" for k in keys) + f"{'frames/s':>11}")
    for name, values, seconds in rows:
        cells = "".join(f"{values[k]:>13.3f}" for k in keys)
        print(f"{name:<34}{cells}{frames / seconds:>11.0f}")


if __name__ == "__main__":
    main()
