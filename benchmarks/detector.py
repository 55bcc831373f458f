"""Online micro-gesture detection: offline vs streaming accuracy, latency and throughput.

Evaluates an :class:`~mgr.models.OnlineDetector` on the test sequences of an SMG-layout
release, once offline (whole sequence in one forward pass) and once streamed through
:class:`~mgr.models.streaming.StreamingDetector` per look-ahead, and prints:

* F1 (one-to-one and start-kit matching, tIoU > 0.3, detections with score >= the
  model's ``f1_min_score``) and mAP (tIoU 0.3:0.7, all detections);
* latency of the streamed detections, ``emitted_at - end`` in frames (median and max over
  those the F1 scores, and max over all emitted ones);
* throughput on CPU with ``--threads`` threads (sequences/s and frames/s).

Without ``--root`` a small SynthMG untrimmed release is generated into a temp dir
(7 subjects: train 1-4, val 5, test 6-7); without ``--checkpoint`` a small detector
(``embed_dim=32``, ``num_levels=5``) is trained on it for ``--epochs`` epochs on CPU.
With ``--root`` the ``"miga"`` split is used (test subjects 36-40)::

    OMP_NUM_THREADS=1 python benchmarks/detector.py \\
        --checkpoint runs/synth_online_detector/checkpoints/best.ckpt \\
        --root data/synthmg_smg_untrimmed
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from mgr.datamodules.online import SMGOnlineDataModule
from mgr.metrics import OnlineF1, TemporalMAP
from mgr.models import OnlineDetector
from mgr.models.streaming import Detection, detections_to_dict, stream_sequence

Prediction = dict[str, Tensor]


def synthetic_datamodule(tmp: Path) -> SMGOnlineDataModule:
    """Generate a small SynthMG release (7 subjects) and its datamodule."""
    from mgr.data.synthetic import generate_synthmg

    root = generate_synthmg(
        tmp / "synthmg", layout="smg", seed=0, subjects=(4, 1, 2), clips_per_video=20,
        gap_frames=(30, 150),
    )  # fmt: skip
    return SMGOnlineDataModule(
        root, train_subjects=[1, 2, 3, 4], val_subjects=[5], test_subjects=[6, 7], window=256
    )


def train(dm: SMGOnlineDataModule, epochs: int) -> OnlineDetector:
    """A small detector trained for a few epochs on CPU."""
    import lightning.pytorch as pl

    pl.seed_everything(0, workers=True, verbose=False)
    model = OnlineDetector(
        num_classes=dm.num_classes, class_names=dm.class_names, embed_dim=32, num_levels=5
    )
    trainer = pl.Trainer(
        max_epochs=epochs, accelerator="cpu", logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
    )  # fmt: skip
    trainer.fit(model, datamodule=dm)
    return model.eval()


def scores(model: OnlineDetector, preds: list[Prediction], targets: list[Prediction]) -> dict:
    """F1 (one-to-one, start kit) on confident detections and mAP on all of them."""
    f1, kit, tmap = OnlineF1(0.3, one_to_one=True), OnlineF1(0.3, one_to_one=False), TemporalMAP()
    min_score = float(model.hparams.f1_min_score)
    confident = [{k: v[p["scores"] >= min_score] for k, v in p.items()} for p in preds]
    f1.update(confident, targets)
    kit.update(confident, targets)
    tmap.update(preds, targets)
    return {
        "f1": float(f1.compute()["f1"]),
        "f1_startkit": float(kit.compute()["f1"]),
        "mAP": float(tmap.compute()["mAP"]),
    }


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    """``fn()`` and its wall time in seconds."""
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--checkpoint", default=None, help="trained OnlineDetector checkpoint")
    p.add_argument("--root", default=None, help="SMG-layout release (default: generate SynthMG)")
    p.add_argument("--epochs", type=int, default=3, help="training epochs without --checkpoint")
    p.add_argument("--chunk", type=int, default=64)
    p.add_argument("--context", type=int, default=512)
    p.add_argument("--lookaheads", type=int, nargs="+", default=[32, 64, 128])
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads for the timings")
    a = p.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        if a.root is None:
            dm = synthetic_datamodule(Path(tmp))
        else:
            dm = SMGOnlineDataModule(a.root, split="miga")
        if a.checkpoint is None:
            model = train(dm, a.epochs)
        else:
            model = OnlineDetector.load_from_checkpoint(a.checkpoint, map_location="cpu").eval()
        torch.set_num_threads(a.threads)
        batches = list(dm.test_dataloader())

    targets = [
        {"segments": b["segments"][0] + torch.tensor([0, 1]), "labels": b["labels"][0]}
        for b in batches
    ]
    frames = sum(int(b["mask"].sum()) for b in batches)
    model.detect(batches[0])  # warm-up
    rows: list[tuple[str, dict, dict | None, float]] = []

    preds, seconds = timed(lambda: [model.detect(b)[0] for b in batches])
    rows.append(("offline", scores(model, preds, targets), None, seconds))
    for lookahead in a.lookaheads:
        kw = {"chunk": a.chunk, "context": a.context, "lookahead": lookahead}

        def run(kw: dict = kw) -> list[list[Detection]]:
            return [stream_sequence(model, b["skeleton"][0], **kw)[0] for b in batches]

        streamed, seconds = timed(run)
        min_score = float(model.hparams.f1_min_score)
        latency = [d.latency for dets in streamed for d in dets if d.score >= min_score]
        lat = None
        if latency:
            every = max(d.latency for dets in streamed for d in dets)
            lat = {"median": statistics.median(latency), "max": max(latency), "all": every}
        res = scores(model, [detections_to_dict(d) for d in streamed], targets)
        rows.append((f"stream la={lookahead}", res, lat, seconds))

    hp = model.hparams
    print(
        f"\nOnline detection, {len(batches)} test sequences, {frames} frames, "
        f"{hp.num_classes} classes; model embed_dim={hp.embed_dim} num_levels={hp.num_levels}; "
        f"streaming chunk={a.chunk} context={a.context}; CPU, {torch.get_num_threads()} thread(s)"
    )
    print(
        f"F1 at score >= {hp.f1_min_score}, tIoU > 0.3; mAP over tIoU 0.3:0.7; latency "
        f"(frames, emitted_at - end) of the detections scored by the F1, max all: of every one"
    )
    head = (
        f"{'mode':<14s} {'F1':>6s} {'F1 kit':>7s} {'mAP':>6s} {'dF1':>7s} "
        f"{'lat med':>8s} {'lat max':>8s} {'max all':>8s} {'seq/s':>7s} {'frames/s':>9s}"
    )
    print(head)
    print("-" * len(head))
    offline_f1 = rows[0][1]["f1"]
    for name, res, lat, seconds in rows:
        lat_s = (
            f"{lat['median']:8.1f} {lat['max']:8d} {lat['all']:8d}" if lat else f"{'-':>8s} " * 3
        ).rstrip()
        print(
            f"{name:<14s} {res['f1']:6.3f} {res['f1_startkit']:7.3f} {res['mAP']:6.3f} "
            f"{res['f1'] - offline_f1:+7.3f} {lat_s} {len(batches) / seconds:7.2f} "
            f"{frames / seconds:9.0f}"
        )


if __name__ == "__main__":
    main()
