"""Recognizer window features for online detection: extraction speed, and detector F1 on them.

1. Trains a small ST-CNN on the trimmed clips of an SMG-layout release (or loads
   ``--recognizer``), then times ``mgr extract-features`` (window ``--window``, stride
   ``--stride``) on CPU over every sequence of the chosen subjects: sequences/s,
   frames/s and windows/s, with and without reading the csv files.
2. With ``--detector-epochs N > 0``, trains the same small :class:`OnlineDetector` for N
   epochs on raw skeletons and on the ST-CNN features and prints both test F1 / mAP.

Without ``--root``, ``data/synthmg_smg_untrimmed`` is used when present, else a small
SynthMG untrimmed release is generated into a temp dir::

    OMP_NUM_THREADS=1 python benchmarks/features.py --detector-epochs 5
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import lightning.pytorch as pl
import torch

from mgr.datamodules import SMGDataModule, SMGOnlineDataModule
from mgr.features import (
    SequenceSource,
    SkeletonWindows,
    extract_features,
    extract_sequence_features,
    load_recognizer,
    window_starts,
)
from mgr.models import STCNN, OnlineDetector

DEFAULT_ROOT = Path(__file__).parents[1] / "data" / "synthmg_smg_untrimmed"
QUIET = {
    "accelerator": "cpu", "logger": False, "enable_progress_bar": False,
    "enable_model_summary": False, "num_sanity_val_steps": 0,
}  # fmt: skip


def train_recognizer(root: Path, subjects: dict, epochs: int, out: Path) -> Path:
    """A small ST-CNN (D = 64) trained on the trimmed training clips; its checkpoint."""
    pl.seed_everything(0, verbose=False)
    dm = SMGDataModule(root, clip_len=16, batch_size=32, **subjects)
    model = STCNN(
        num_classes=dm.num_classes, in_channels=3, num_joints=25, channels=[16, 32, 64],
        temporal_strides=[1, 2, 2], readout="mean",
    )  # fmt: skip
    trainer = pl.Trainer(max_epochs=epochs, enable_checkpointing=False, **QUIET)
    trainer.fit(model, dm)
    acc = trainer.validate(model, dm, verbose=False)[0].get("val/top1", float("nan"))
    print(f"recognizer: ST-CNN D=64, {epochs} epochs, val clip accuracy {acc:.3f}")
    trainer.save_checkpoint(out)
    return out


def train_detector(dm: SMGOnlineDataModule, epochs: int) -> dict[str, float]:
    """The benchmark's small detector, trained on the datamodule's input; test metrics."""
    pl.seed_everything(0, verbose=False)
    model = OnlineDetector(
        num_classes=dm.num_classes, class_names=dm.class_names, in_channels=dm.in_channels,
        input_key=dm.input_key, embed_dim=32, num_levels=5,
    )  # fmt: skip
    trainer = pl.Trainer(max_epochs=epochs, enable_checkpointing=False, **QUIET)
    t0 = time.perf_counter()
    trainer.fit(model, dm)
    seconds = time.perf_counter() - t0
    (metrics,) = trainer.test(model, dm, verbose=False)
    return {**{k: float(v) for k, v in metrics.items()}, "train_s": seconds}


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--root", default=None, help="SMG-layout release")
    p.add_argument("--recognizer", default=None, help="Recognizer checkpoint (default: train one)")
    p.add_argument("--rec-epochs", type=int, default=5)
    p.add_argument("--train", type=int, nargs="+", default=list(range(1, 13)))
    p.add_argument("--val", type=int, nargs="+", default=[31])
    p.add_argument("--test", type=int, nargs="+", default=[36, 37, 38, 39, 40])
    p.add_argument("--window", type=int, default=16)
    p.add_argument("--stride", type=int, default=4)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads for the timings")
    p.add_argument("--detector-epochs", type=int, default=0, help="0: skip the F1 comparison")
    a = p.parse_args()
    subjects = {"train_subjects": a.train, "val_subjects": a.val, "test_subjects": a.test}
    torch.set_num_threads(a.threads)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        root = Path(a.root) if a.root else DEFAULT_ROOT
        if not root.is_dir():
            from mgr.data.synthetic import generate_synthmg

            root = generate_synthmg(
                tmp / "synthmg", layout="smg", seed=0, subjects=(4, 1, 2),
                clips_per_video=20, gap_frames=(30, 150),
            )  # fmt: skip
            subjects = {"train_subjects": [1, 2, 3, 4], "val_subjects": [5],
                        "test_subjects": [6, 7]}  # fmt: skip
        ckpt = Path(a.recognizer) if a.recognizer else None
        if ckpt is None:
            ckpt = train_recognizer(root, subjects, a.rec_epochs, tmp / "stcnn.ckpt")

        # --- extraction speed -------------------------------------------------------
        dm = SMGDataModule(root, clip_len=16, **subjects)
        source = SequenceSource.of_datamodule(dm)
        transform = SkeletonWindows(dm.transform_config(train=False))
        wanted = {f"Sample{s:04d}" for s in a.train + a.val + a.test}
        found = {v: f for v, f in source.find().items() if v in wanted}
        model = load_recognizer(ckpt)
        sequences = [source.load(f) for f in found.values()]
        frames = sum(s.num_frames for s in sequences)
        windows = sum(len(window_starts(s.num_frames, a.window, a.stride)) for s in sequences)
        extract_sequence_features(model, sequences[0], transform, a.window, a.stride)  # warm-up
        t0 = time.perf_counter()
        for seq in sequences:
            extract_sequence_features(model, seq, transform, a.window, a.stride)
        compute_s = time.perf_counter() - t0
        feats = tmp / "features"
        t0 = time.perf_counter()
        extract_features(
            ckpt, feats, source=source, transform=transform, window=a.window, stride=a.stride,
            videos=sorted(found), progress=False,
        )  # fmt: skip
        total_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        extract_features(
            ckpt, feats, source=source, transform=transform, window=a.window, stride=a.stride,
            videos=sorted(found), progress=False,
        )  # fmt: skip
        cached_s = time.perf_counter() - t0

        print(
            f"\nFeature extraction: {len(sequences)} sequences, {frames} frames, {windows} windows "
            f"(window {a.window}, stride {a.stride}); ST-CNN D={model.feature_dim}, clip_len "
            f"{transform.config.clip_len}; CPU, {torch.get_num_threads()} thread(s)"
        )
        head = f"{'run':<28s} {'s':>7s} {'seq/s':>7s} {'frames/s':>9s} {'windows/s':>10s}"
        print(head + "\n" + "-" * len(head))
        for name, s in (
            ("compute (sequences loaded)", compute_s),
            ("extract-features (cold)", total_s),
            ("extract-features (cached)", cached_s),
        ):
            print(
                f"{name:<28s} {s:7.2f} {len(sequences) / s:7.2f} {frames / s:9.0f} "
                f"{windows / s:10.0f}"
            )

        # --- detector on raw skeletons vs on features ---------------------------------
        if a.detector_epochs > 0:
            common = {"window": 256, "windows_per_sequence": 8, "batch_size": 4, **subjects}
            rows = []
            for name, extra in (("raw skeleton", {}), ("ST-CNN features", {"features_dir": feats})):
                dm_det = SMGOnlineDataModule(root, **common, **extra)
                rows.append((name, dm_det.in_channels, train_detector(dm_det, a.detector_epochs)))
            print(
                f"\nOnlineDetector (embed_dim 32, 5 levels), {a.detector_epochs} epochs, "
                f"train subjects {a.train}, test {a.test}; F1 at score >= 0.3, tIoU > 0.3"
            )
            head = f"{'input':<16s} {'C':>4s} {'F1':>6s} {'F1 kit':>7s} {'mAP':>6s} {'train s':>8s}"
            print(head + "\n" + "-" * len(head))
            for name, channels, m in rows:
                print(
                    f"{name:<16s} {channels:4d} {m['test/f1']:6.3f} {m['test/f1_startkit']:7.3f} "
                    f"{m['test/mAP']:6.3f} {m['train_s']:8.1f}"
                )


if __name__ == "__main__":
    main()
