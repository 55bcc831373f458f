"""How much does SynthMG need motion modelling? Trivial baselines vs a trained recognizer.

Fits a multinomial logistic regression on each clip's *mean pose* (centre- and
shoulder-normalised joint coordinates averaged over time) and, for
reference, on mean + standard deviation over time, then prints test top-1
next to the majority-class rate and, if a checkpoint is given, the ST-CNN's.

    python benchmarks/synthmg_baselines.py --root data/synthmg_imigue \
        [--ckpt runs/synth_stcnn/checkpoints/best.ckpt]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from mgr.data.transforms.pose import normalize_skeleton
from mgr.datamodules import IMiGUEDataModule, SMGDataModule


def clip_features(dm, split: str, with_std: bool) -> tuple[np.ndarray, np.ndarray]:
    cfg = dm.transform_config(train=False)
    feats, labels = [], []
    for rec in dm._get_records(split):
        kp = rec.keypoint[:, list(cfg.joints)] if cfg.joints is not None else rec.keypoint
        kp = normalize_skeleton(
            kp, cfg.center, score_channel=cfg.score_channel, scale_joints=cfg.scale_joints
        )
        f = [kp.mean(0).ravel()]
        if with_std:
            f.append(kp.std(0).ravel())
        feats.append(np.concatenate(f))
        labels.append(rec.label)
    return np.stack(feats).astype(np.float32), np.array(labels)


def logistic_regression(
    x_tr, y_tr, x_te, num_classes: int, weight_decay: float = 1e-3
) -> np.ndarray:
    mu, sd = x_tr.mean(0), x_tr.std(0) + 1e-6
    xt = torch.from_numpy((x_tr - mu) / sd)
    xe = torch.from_numpy((x_te - mu) / sd)
    yt = torch.from_numpy(y_tr)
    lin = torch.nn.Linear(xt.shape[1], num_classes)
    opt = torch.optim.LBFGS(lin.parameters(), max_iter=500, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = (
            torch.nn.functional.cross_entropy(lin(xt), yt)
            + weight_decay * lin.weight.square().sum()
        )
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return lin(xe).argmax(1).numpy()


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--root", default="data/synthmg_imigue")
    p.add_argument("--layout", choices=["imigue", "smg"], default="imigue")
    p.add_argument("--ckpt", default=None, help="trained STCNN checkpoint to evaluate alongside")
    a = p.parse_args()
    dm = IMiGUEDataModule(a.root) if a.layout == "imigue" else SMGDataModule(a.root)
    rows = []
    y_tr = np.array([r.label for r in dm._get_records("train")])
    y_te = np.array([r.label for r in dm._get_records("test")])
    majority = np.bincount(y_tr, minlength=dm.num_classes).argmax()
    rows.append(("majority class", float((y_te == majority).mean())))
    for name, with_std in (("logreg on mean pose", False), ("logreg on mean+std pose", True)):
        x_tr, _ = clip_features(dm, "train", with_std)
        x_te, _ = clip_features(dm, "test", with_std)
        pred = logistic_regression(x_tr, y_tr, x_te, dm.num_classes)
        rows.append((name, float((pred == y_te).mean())))
    if a.ckpt:
        import lightning.pytorch as pl

        from mgr.models import STCNN

        model = STCNN.load_from_checkpoint(a.ckpt, map_location="cpu")
        dm.clip_len = 32
        res = pl.Trainer(logger=False, enable_progress_bar=False).test(
            model, datamodule=dm, verbose=False
        )
        rows.append(("ST-CNN (checkpoint)", float(res[0]["test/top1"])))
    print(f"\nSynthMG ({a.layout}) test top-1, {len(y_te)} test clips, {dm.num_classes} classes")
    print(f"{'method':<28s} {'top-1':>7s}")
    for name, acc in rows:
        print(f"{name:<28s} {acc:7.3f}")


if __name__ == "__main__":
    main()
