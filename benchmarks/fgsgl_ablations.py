"""FG-SGL ablations (Tables II and III of fg-sgl.txt) on SynthMG RGB: same seed, same budget.

Every row trains :class:`mgr.models.FGSGL` from the same initialisation (seed 0)
for the same number of epochs and differs only in its switches; the table
reports the test split of the checkpoint with the best validation top-1, and the
majority-class rate as the floor a model must beat.

To fit a CPU budget, the clips are decoded **once** (the evaluation transform
of :class:`~mgr.datamodules.IMiGUEDataModule`: 4 uniformly sampled frames,
saliency crop, 32x32) and kept in memory; training augmentation is a random
horizontal flip of the cached clip with its FG-Text mirrored
(:meth:`mgr.data.fgtext.FGAttributes.flipped`), as the datamodule does. The
model, the losses and the ML-CO schedule are the library's own;
``experiments/synth/fgsgl.yaml`` runs the same model through the full pipeline
with ``mgr fit``.

    mgr synth --layout imigue --out data/synthmg_imigue_rgb --seed 0 --subjects 16 4 6 --video
    python benchmarks/fgsgl_ablations.py [--epochs 40] [--rows full no_fg_sa ...]

On a VideoMAE-pretrained video ViT (``benchmarks/videomae_synth.py`` or
``experiments/synth/videomae_pretrain.yaml``) instead of the frame-wise ViT from scratch:

    python benchmarks/fgsgl_ablations.py --visual mgr --visual-path PRETRAIN.ckpt --clip-len 8
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import LightningDataModule, Trainer, seed_everything
from lightning.pytorch.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader, Dataset

from mgr.data.datasets import VideoOptions
from mgr.datamodules import IMiGUEDataModule
from mgr.datamodules.base import collate
from mgr.models import FGSGL

ROWS: dict[str, tuple[str, dict[str, Any]]] = {
    "full": ("FG-SA + CP-A + ML-CO, FG-Text (full)", {}),
    "no_fg_sa": ("w/o FG-SA (Table II)", {"use_fg": False}),
    "no_cp_a": ("w/o CP-A (Table II)", {"use_cp": False}),
    "no_mlco": ("w/o ML-CO: all losses from epoch 0 (Table II)", {"mlco": False}),
    "class_text": ("class-level text in FG-SA (Table III)", {"fg_text_source": "class"}),
    "cls_only": ("classifier only, no text (reference)", {"use_fg": False, "use_cp": False}),
}

# A CPU-sized frame-wise ViT: 32x32 frames, 4x4 patches (64 tokens), 4 blocks of width 64.
VIT = {"img_size": 32, "patch_size": 4, "embed_dim": 64, "depth": 4, "num_heads": 2}
# ``--visual mgr`` without a checkpoint: the video ViT of benchmarks/videomae_synth.py.
VIDEO_VIT = {"img_size": 32, "tubelet_size": 2, "patch_size": 4, "embed_dim": 96, "depth": 4}
VIDEO_VIT |= {"num_heads": 3}


class _Cached(Dataset):
    """Decoded clips in memory; training flips mirror the video and the FG-Text."""

    def __init__(self, items: list[dict], dm: IMiGUEDataModule, train: bool) -> None:
        self.items, self.dm, self.train = items, dm, train

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        item = dict(self.items[index])
        if self.train and torch.rand(()) < 0.5:
            item["video"] = item["video"].flip(-1)
            item["fg_text"] = self.dm.fgtext.sentence(item["sample_id"], item["label"], True)
        return item


class CachedClips(LightningDataModule):
    """The splits of an ``IMiGUEDataModule`` (video + FG-Text), decoded once."""

    def __init__(self, dm: IMiGUEDataModule, cache: Path, batch_size: int) -> None:
        super().__init__()
        self.dm, self.batch_size = dm, batch_size
        if cache.is_file():
            self.splits = torch.load(cache, weights_only=False)
        else:
            dm.setup("fit")
            dm.setup("test")
            self.splits = {}
            for split in ("train", "val", "test"):
                ds = dm.datasets[split]
                ds.train = False  # deterministic sampling and crop: decoded once
                self.splits[split] = [ds[i] for i in range(len(ds))]
            cache.parent.mkdir(parents=True, exist_ok=True)
            torch.save(self.splits, cache)
        self.supplies = dm.supplies
        self.num_classes = dm.num_classes
        self.class_texts = dm.class_texts

    def class_histogram(self, split: str = "train") -> torch.Tensor:
        labels = torch.tensor([it["label"] for it in self.splits[split]])
        return torch.bincount(labels, minlength=self.num_classes)

    def _loader(self, split: str) -> DataLoader:
        train = split == "train"
        return DataLoader(
            _Cached(self.splits[split], self.dm, train),
            batch_size=self.batch_size,
            shuffle=train,
            collate_fn=collate,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")


def run_row(switches: dict[str, Any], data: CachedClips, args: argparse.Namespace, out: Path):
    """Train one row from seed 0; test the best-validation checkpoint."""
    seed_everything(0, workers=True)
    visual: dict[str, Any] = {"visual_kwargs": VIT}
    if args.visual == "mgr":  # the video ViT: architecture from the pretraining checkpoint
        visual = {"visual": "mgr", "visual_path": args.visual_path}
        visual["visual_kwargs"] = {"drop_path_rate": 0.1}
        if args.visual_path is None:  # from scratch: the pretraining's architecture
            visual["visual_kwargs"] |= VIDEO_VIT | {"num_frames": args.clip_len}
    model = FGSGL(
        data.num_classes,
        class_names=data.dm.class_names,
        **visual,
        mid_layer=1,
        text_dim=384,
        finetune="full",
        fg_start_epoch=args.epochs // 3,
        warmup_ratio=0.05,
        label_smoothing=0.1,
        optimizer=lambda p: torch.optim.AdamW(p, lr=args.lr, weight_decay=0.05),
        **switches,
    )
    ckpt = ModelCheckpoint(dirpath=out, filename="best", monitor="val/top1", mode="max")
    trainer = Trainer(
        accelerator="cpu",
        default_root_dir=out,  # the test's confusion matrix and per-class csv go here
        max_epochs=args.epochs,
        gradient_clip_val=1.0,
        logger=False,
        callbacks=[ckpt],
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    t0 = time.perf_counter()
    trainer.fit(model, datamodule=data)
    fit_s = time.perf_counter() - t0
    best_val = float(ckpt.best_model_score)
    (metrics,) = trainer.test(model, datamodule=data, ckpt_path=ckpt.best_model_path, verbose=False)
    return {**{k: float(v) for k, v in metrics.items()}, "val/top1_best": best_val, "fit_s": fit_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data/synthmg_imigue_rgb")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    parser.add_argument("--out", default="runs/synth_fgsgl_ablations")
    parser.add_argument(
        "--visual",
        choices=["timm", "mgr"],
        default="timm",
        help="frame-wise timm ViT from scratch, or mgr's video ViT (VideoMAE encoder)",
    )
    parser.add_argument("--visual-path", help="mgr: a VideoMAE / VideoViT checkpoint")
    parser.add_argument("--clip-len", type=int, default=4, help="frames per clip")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (busy CPU: 1)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    dm = IMiGUEDataModule(
        args.data,
        modalities=["video"],
        fg_text=True,
        clip_len=args.clip_len,
        video=VideoOptions(size=32, crop="saliency", margin=0.2),
    )
    t0 = time.perf_counter()
    data = CachedClips(dm, out / f"clips_{args.clip_len}x32.pt", args.batch_size)
    print(f"clips decoded/loaded in {time.perf_counter() - t0:.0f} s")
    results_path = out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    for name in args.rows:
        results[name] = run_row(ROWS[name][1], data, args, out / name)
        results_path.write_text(json.dumps(results, indent=1))
        print(name, results[name], flush=True)
    test = torch.tensor([it["label"] for it in data.splits["test"]])
    floor = torch.bincount(test).max().item() / len(test)
    encoder = args.visual_path or f"{args.visual} from scratch"
    print(
        f"\nFG-SGL ablations, {args.data}, {args.clip_len} frames, encoder {encoder}, "
        f"{args.epochs} epochs, lr {args.lr}, seed 0, test split"
    )
    cols = ("val best", "top-1", "macro-F1", "mean-cls", "fit s")
    print(f"{'row':<48s} " + " ".join(f"{c:>8s}" for c in cols))
    for name in args.rows:
        m = results[name]
        print(
            f"{ROWS[name][0]:<48s} {m['val/top1_best']:8.4f} {m['test/top1']:8.4f} "
            f"{m['test/macro_f1']:8.4f} {m['test/mean_class_acc']:8.4f} {m['fit_s']:8.0f}"
        )
    print(f"{'majority class (floor)':<48s} {'':8s} {floor:8.4f}")


if __name__ == "__main__":
    main()
