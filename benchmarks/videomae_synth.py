"""VideoMAE pretraining on SynthMG RGB without labels, then fine-tuning vs. from scratch.

Measures whether masked video modelling on the unlabelled clips of a release
(every split, labels dropped, plus windows of its untrimmed videos) helps the
same :class:`mgr.models.VideoViT` fine-tuned on the labelled training split,
against that recognizer trained from scratch with the same fine-tuning budget
(epochs, batch, learning rate, augmentation, seed). Prints the pretraining cost
per clip, a table of test top-1 / macro-F1 at the best validation epoch, and the
learning curves (validation top-1 per epoch).

To fit a CPU budget the clips are decoded **once** through the library's own
datasets (:class:`~mgr.datamodules.UnlabeledDataModule` over an
:class:`~mgr.datamodules.IMiGUEDataModule`: saliency crop with 20% margin,
32x32, evaluation sampling of 16 frames per clip and per 32-frame untrimmed
window) and kept in memory. Training draws 8 of the 16 frames (one of each
consecutive pair, at random) and flips at random; evaluation takes every
second frame. Models, losses, masking, schedules are the library's own;
``experiments/synth/videomae_pretrain.yaml`` and ``videovit_finetune.yaml`` run
the same models through ``mgr fit`` with on-line decoding.

    mgr synth --layout imigue --out data/synthmg_imigue_rgb --seed 0 --subjects 16 4 6 \
        --video --untrimmed-video
    python benchmarks/videomae_synth.py --data data/synthmg_imigue_rgb
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback, LightningDataModule, Trainer, seed_everything
from lightning.pytorch.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader, Dataset

from mgr.data.datasets import VideoOptions
from mgr.data.transforms.video import finish_video_batch
from mgr.datamodules import IMiGUEDataModule, UnlabeledDataModule
from mgr.datamodules.base import collate
from mgr.models import VideoMAE, VideoViT
from mgr.models.backbones.video_vit import patchify, pixel_targets, tube_mask

#: a CPU-sized video ViT: 8 frames of 32x32, tubelets 2x4x4 (256 tokens), 4 blocks of width 96.
ARCH = {
    "img_size": 32,
    "num_frames": 8,
    "tubelet_size": 2,
    "patch_size": 4,
    "embed_dim": 96,
    "depth": 4,
    "num_heads": 3,
}
#: VideoMAE's light decoder at the same proportions (ViT-S: width 192 of 384): width 48, 1 block.
DECODER = {"decoder_embed_dim": 48, "decoder_depth": 1, "decoder_num_heads": 2}
CACHED_FRAMES = 16


def decode_all(args: argparse.Namespace, cache: Path) -> dict[str, Any]:
    """Decode every clip (all splits) and untrimmed window once: ``(3, 16, 32, 32)`` float16,
    normalised as the models' input."""
    if cache.is_file():
        return torch.load(cache, weights_only=False)
    source = IMiGUEDataModule(
        args.data,
        modalities=["video"],
        clip_len=CACHED_FRAMES,
        video=VideoOptions(size=32, crop="saliency", margin=0.2, train_scale=(1.0, 1.0)),
    )
    dm = UnlabeledDataModule(sources=[source], untrimmed=True, window=32)
    dm.setup("fit")
    out: dict[str, Any] = {}
    t0 = time.perf_counter()
    for name, ds in dm.parts.items():
        ds.train = False  # deterministic sampling, no flip: decoded once
        ds.config = source.transform_config(train=False)
        part = name.rsplit(":", 1)[1]
        # Loaders yield uint8 frames plus a recipe; finish them (scale, normalise) as the
        # datamodule's on_after_batch_transfer does, or the models would see 0..255.
        finished = [finish_video_batch(collate([ds[i]]))["video"][0] for i in range(len(ds))]
        out[part] = {
            "video": torch.stack(finished).half(),
            "label": torch.tensor([r.label for r in ds.records]),
            "sample_id": [r.sample_id for r in ds.records],
        }
        print(f"  decoded {part}: {len(ds)} clips", flush=True)
    out["decode_s"] = time.perf_counter() - t0
    cache.parent.mkdir(parents=True, exist_ok=True)
    torch.save(out, cache)
    return out


class Clips(Dataset):
    """Cached 16-frame clips: training takes one frame of each pair at random and flips."""

    def __init__(self, video: torch.Tensor, labels: torch.Tensor | None, train: bool) -> None:
        self.video, self.labels, self.train = video, labels, train

    def __len__(self) -> int:
        return len(self.video)

    def __getitem__(self, index: int) -> dict[str, Any]:
        clip = self.video[index].float()  # (3, 16, 32, 32)
        if self.train:
            pick = torch.arange(0, CACHED_FRAMES, 2) + torch.randint(0, 2, (CACHED_FRAMES // 2,))
            clip = clip[:, pick]
            if torch.rand(()) < 0.5:
                clip = clip.flip(-1)
        else:
            clip = clip[:, 1::2]
        item: dict[str, Any] = {"video": clip}
        if self.labels is not None:
            item["label"] = int(self.labels[index])
        return item


class CachedData(LightningDataModule):
    def __init__(self, train: Dataset, val: Dataset | None, test: Dataset | None, batch: int):
        super().__init__()
        self.sets, self.batch = {"train": train, "val": val, "test": test}, batch

    def _loader(self, split: str) -> DataLoader:
        train = split == "train"
        return DataLoader(
            self.sets[split], self.batch, shuffle=train, drop_last=train, collate_fn=collate
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")


class Curve(Callback):
    """Validation top-1 and training loss per epoch, and wall time."""

    def __init__(self) -> None:
        self.val, self.loss, self.seconds = [], [], []
        self._t0, self._losses = 0.0, []

    def on_train_epoch_start(self, trainer, module) -> None:
        self._t0, self._losses = time.perf_counter(), []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        self._losses.append(float(outputs["loss"]))

    def on_train_epoch_end(self, trainer, module) -> None:
        self.seconds.append(round(time.perf_counter() - self._t0, 1))
        self.loss.append(round(sum(self._losses) / max(1, len(self._losses)), 4))
        if "val/top1" in trainer.callback_metrics:
            self.val.append(round(float(trainer.callback_metrics["val/top1"]), 4))
        val = f" val/top1 {self.val[-1]:.4f}" if self.val else ""
        print(
            f"  epoch {trainer.current_epoch}: loss {self.loss[-1]:.4f}{val} "
            f"({self.seconds[-1]:.0f} s)",
            flush=True,
        )


def trainer(out: Path, epochs: int, callbacks: list, clip: float | None = 1.0) -> Trainer:
    return Trainer(
        accelerator="cpu",
        default_root_dir=out,
        max_epochs=epochs,
        gradient_clip_val=clip,
        logger=False,
        callbacks=callbacks,
        enable_checkpointing=any(isinstance(c, ModelCheckpoint) for c in callbacks),
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )


def pretrain(data: dict[str, Any], args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """VideoMAE on every clip and window, labels dropped."""
    videos = torch.cat([data[p]["video"] for p in ("train", "val", "test", "untrimmed")])
    seed_everything(0, workers=True)
    model = VideoMAE(
        **ARCH,
        **DECODER,
        mask_ratio=args.mask_ratio,
        warmup_ratio=0.05,
        optimizer=lambda p: torch.optim.AdamW(
            p, lr=args.pretrain_lr, betas=(0.9, 0.95), weight_decay=0.05
        ),
    )
    curve = Curve()
    run = trainer(out, args.pretrain_epochs, [curve], clip=None)
    loader = DataLoader(
        Clips(videos, None, train=True),
        args.pretrain_batch,
        shuffle=True,
        drop_last=True,
        collate_fn=collate,
    )
    t0 = time.perf_counter()
    run.fit(model, train_dataloaders=loader)
    fit_s = time.perf_counter() - t0
    per_epoch = (len(videos) // args.pretrain_batch) * args.pretrain_batch
    steady = sorted(curve.seconds[1:] or curve.seconds)[len(curve.seconds[1:]) // 2]
    path = out / "pretrain.ckpt"
    run.save_checkpoint(path)
    return {
        "clips": len(videos),
        "epochs": args.pretrain_epochs,
        "fit_s": fit_s,
        "s_per_clip": steady / per_epoch,  # median epoch after the first, per clip
        "loss": curve.loss,
        "epoch_s": curve.seconds,
        "ckpt": str(path),
    }


def finetune(
    data: dict[str, Any], args: argparse.Namespace, out: Path, init_from: str | None, **extra
) -> dict[str, Any]:
    """VideoViT on the labelled training split; test at the best validation epoch."""
    seed_everything(0, workers=True)
    model = VideoViT(
        32,
        **ARCH,
        init_from=init_from,
        drop_path_rate=0.1,
        label_smoothing=0.1,
        warmup_ratio=0.1,
        optimizer=lambda p: torch.optim.AdamW(p, lr=args.finetune_lr, weight_decay=0.05),
        **extra,
    )
    sets = {
        s: Clips(data[s]["video"], data[s]["label"], train=s == "train")
        for s in ("train", "val", "test")
    }
    dm = CachedData(sets["train"], sets["val"], sets["test"], args.finetune_batch)
    curve = Curve()
    ckpt = ModelCheckpoint(dirpath=out, filename="best", monitor="val/top1", mode="max")
    run = trainer(out, args.finetune_epochs, [curve, ckpt])
    t0 = time.perf_counter()
    run.fit(model, datamodule=dm)
    fit_s = time.perf_counter() - t0
    (metrics,) = run.test(model, datamodule=dm, ckpt_path=ckpt.best_model_path, verbose=False)
    return {
        **{k: float(v) for k, v in metrics.items()},
        "val/top1_best": float(ckpt.best_model_score),
        "best_epoch": curve.val.index(max(curve.val)),
        "val_curve": curve.val,
        "loss_curve": curve.loss,
        "epoch_s": curve.seconds,
        "fit_s": fit_s,
    }


def cost(data: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """CPU time per clip (process time: robust to other jobs) of a pretraining step at each
    mask ratio and of a fine-tuning step, medians of 5 steps after 2 warm-up steps, and of
    decoding one clip through the datamodule."""
    out: dict[str, Any] = {"threads": torch.get_num_threads()}
    video = data["train"]["video"][: args.pretrain_batch].float()[:, :, ::2]

    def median_step(step, n: int = 7) -> float:
        times = []
        for _ in range(n):
            t0 = time.process_time()
            step()
            times.append(time.process_time() - t0)
        return sorted(times[2:])[len(times[2:]) // 2]

    for ratio in (0.9, 0.75):
        torch.manual_seed(0)
        model = VideoMAE(**ARCH, **DECODER, mask_ratio=ratio)
        opt = torch.optim.AdamW(model.parameters())

        def pre_step(model=model, opt=opt, ratio=ratio) -> None:
            mask = tube_mask(len(video), model.encoder.grid, ratio)
            opt.zero_grad()
            model.reconstruction_loss(video, mask).backward()
            opt.step()

        out[f"pretrain_mask{ratio}_ms_per_clip"] = 1000 * median_step(pre_step) / len(video)
    model = VideoViT(32, **ARCH)
    opt = torch.optim.AdamW(model.parameters())
    labels = data["train"]["label"][: len(video)]

    def fine_step() -> None:
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model({"video": video}), labels).backward()
        opt.step()

    out["finetune_ms_per_clip"] = 1000 * median_step(fine_step) / len(video)
    source = IMiGUEDataModule(
        args.data,
        modalities=["video"],
        clip_len=ARCH["num_frames"],
        video=VideoOptions(size=32, crop="saliency", margin=0.2, train_scale=(1.0, 1.0)),
    )
    source.setup("fit")
    ds = source.datasets["train"]
    out["decode_ms_per_clip"] = 1000 * median_step(lambda: ds[int(torch.randint(len(ds), ()))])
    return out


def reconstruction(data: dict[str, Any], ckpt: str) -> dict[str, Any]:
    """Where the pretraining's loss comes from: masked-tubelet MSE of the checkpoint on the
    test clips (mask 0.9, seeded) against the trivial predictor (0 = the tubelet's mean after
    per-patch normalisation), by tubelet structure (std of its pixels: lowest 50%, next 30%,
    top 20%), and how much of a tubelet's normalised pattern repeats between its two frames
    (correlation; per-frame noise, which no context predicts, lowers it)."""
    video = data["test"]["video"].float()[:, :, 1::2]
    state = torch.load(ckpt, weights_only=False)
    model = VideoMAE(**state["hyper_parameters"])
    model.load_state_dict(state["state_dict"])
    model.eval()
    ts, p = ARCH["tubelet_size"], ARCH["patch_size"]
    spread = patchify(video, ts, p).std(dim=-2).mean(-1)  # (B, N)
    target = pixel_targets(video, ts, p)
    pairs = target.view(*target.shape[:2], ts, p * p, -1)
    corr = (pairs[:, :, 0] * pairs[:, :, 1]).mean((-1, -2))
    corr = corr / pairs.pow(2).mean((-1, -2, -3)).clamp_min(1e-6)
    gen = torch.Generator().manual_seed(0)
    err, zero, where = [], [], []
    with torch.no_grad():
        for i in range(0, len(video), 64):
            mask = tube_mask(len(video[i : i + 64]), model.encoder.grid, 0.9, generator=gen)
            pred = model(video[i : i + 64], mask)
            t = target[i : i + 64][mask].reshape(pred.shape)
            err.append((pred - t).pow(2).mean(-1).flatten())
            zero.append(t.pow(2).mean(-1).flatten())
            where.append(
                mask.nonzero()[:, 0] * mask.shape[1] + mask.nonzero()[:, 1] + i * mask.shape[1]
            )
    err, zero, where = torch.cat(err), torch.cat(zero), torch.cat(where)
    s, c = spread.flatten()[where], corr.flatten()[where]
    lo, hi = torch.quantile(s, torch.tensor([0.5, 0.8]))
    out: dict[str, Any] = {"all": {"model": float(err.mean()), "trivial": float(zero.mean())}}
    for name, sel in (("flat", s <= lo), ("middle", (s > lo) & (s <= hi)), ("structured", s > hi)):
        out[name] = {
            "model": float(err[sel].mean()),
            "trivial": float(zero[sel].mean()),
            "frame_corr": float(c[sel].mean()),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data/synthmg_imigue_rgb")
    parser.add_argument("--out", default="runs/synth_videomae_bench")
    parser.add_argument("--pretrain-epochs", type=int, default=80)
    parser.add_argument("--pretrain-batch", type=int, default=64)
    parser.add_argument("--pretrain-lr", type=float, default=1e-3)
    parser.add_argument("--mask-ratio", type=float, default=0.9)
    parser.add_argument("--finetune-epochs", type=int, default=25)
    parser.add_argument("--finetune-batch", type=int, default=16)
    parser.add_argument("--finetune-lr", type=float, default=5e-4)
    parser.add_argument(
        "--runs",
        nargs="+",
        default=["pretrain", "scratch", "pretrained"],
        choices=["pretrain", "scratch", "pretrained", "pretrained_no_decay", "cost", "recon"],
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="torch intra-op threads (1: no sync on a busy CPU)"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    t0 = time.perf_counter()
    data = decode_all(args, out / "clips16x32_normalised.pt")
    sizes = {p: len(data[p]["video"]) for p in ("train", "val", "test", "untrimmed")}
    print(f"clips decoded/loaded in {time.perf_counter() - t0:.0f} s: {sizes}", flush=True)
    results_path = out / "results.json"

    def saved() -> dict[str, Any]:  # re-read: several runs may share the folder
        return json.loads(results_path.read_text()) if results_path.is_file() else {}

    results = saved()
    test = data["test"]["label"]
    floor = torch.bincount(test).max().item() / len(test)
    results["config"] = {**vars(args), "arch": ARCH, "decoder": DECODER, "sizes": sizes}
    results["config"]["majority_test_top1"] = floor
    for run in args.runs:
        if run == "pretrain":
            results[run] = pretrain(data, args, out / "pretrain")
        elif run == "cost":
            results[run] = cost(data, args)
        elif run == "recon":
            results[run] = reconstruction(data, saved()["pretrain"]["ckpt"])
        else:
            ckpt = saved().get("pretrain", {}).get("ckpt")
            if run != "scratch" and ckpt is None:
                raise SystemExit("run 'pretrain' first (its checkpoint starts the fine-tuning)")
            extra = {"layer_decay": 0.75}
            if run in ("scratch", "pretrained_no_decay"):
                extra = {"layer_decay": None}
            init = None if run == "scratch" else ckpt
            results[run] = finetune(data, args, out / run, init, **extra)
        results = {**saved(), "config": results["config"], run: results[run]}
        results_path.write_text(json.dumps(results, indent=1))
        print(run, {k: v for k, v in results[run].items() if "curve" not in k}, flush=True)
    report(results)


def report(results: dict[str, Any]) -> None:
    cfg = results["config"]
    if "pretrain" in results:
        p = results["pretrain"]
        print(
            f"\npretraining: {p['clips']} unlabelled clips x {p['epochs']} epochs in "
            f"{p['fit_s']:.0f} s; {1000 * p['s_per_clip']:.1f} ms per clip and epoch "
            f"(mask {cfg['mask_ratio']}); loss per epoch {p['loss']}"
        )
    if "recon" in results:
        print("masked-tubelet MSE on test (mask 0.9) vs. the trivial predictor:", results["recon"])
    if "cost" in results:
        print("CPU time per clip (process time, 1 thread):", results["cost"])
    rows = [r for r in ("scratch", "pretrained", "pretrained_no_decay") if r in results]
    print(f"\nVideoViT on SynthMG RGB ({cfg['data']}), {cfg['finetune_epochs']} epochs, seed 0")
    cols = ("val best", "epoch", "top-1", "top-5", "macro-F1", "fit s")
    print(f"{'run':<22s} " + " ".join(f"{c:>8s}" for c in cols))
    for r in rows:
        m = results[r]
        print(
            f"{r:<22s} {m['val/top1_best']:8.4f} {m['best_epoch']:8d} {m['test/top1']:8.4f} "
            f"{m['test/top5']:8.4f} {m['test/macro_f1']:8.4f} {m['fit_s']:8.0f}"
        )
    print(f"{'majority class (floor)':<22s} {'':8s} {'':8s} {cfg['majority_test_top1']:8.4f}")
    print("\nvalidation top-1 per epoch")
    for r in rows:
        print(f"{r:<22s} " + " ".join(f"{v:.3f}" for v in results[r]["val_curve"]))


if __name__ == "__main__":
    main()
