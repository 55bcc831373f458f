"""``mgr extract-features``: window features of long sequences, caching, the detector on them."""

from __future__ import annotations

import json
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest
import torch

from mgr.cli import main
from mgr.data.transforms.pose import normalize_skeleton, uniform_sample_indices
from mgr.datamodules import SMGDataModule, SMGOnlineDataModule
from mgr.errors import UserError
from mgr.features import (
    frames_to_steps,
    load_recognizer,
    read_feature_meta,
    read_features,
    step_boundaries,
    steps_to_frames,
)
from mgr.models import STCNN, OnlineDetector

CONF = Path(__file__).parent / "conf" / "stcnn_smg.yaml"
SUBJECTS = {"train_subjects": [1, 2], "val_subjects": [3], "test_subjects": [4]}
QUIET = {
    "accelerator": "cpu", "logger": False, "enable_checkpointing": False,
    "enable_progress_bar": False, "enable_model_summary": False,
}  # fmt: skip


def _fit_and_save(model: pl.LightningModule, dm: pl.LightningDataModule, path: Path) -> Path:
    trainer = pl.Trainer(max_steps=2, limit_val_batches=0, **QUIET)
    trainer.fit(model, dm)
    trainer.save_checkpoint(path)
    return path


@pytest.fixture(scope="module")
def stcnn_ckpt(synth_smg: Path, tmp_path_factory) -> Path:
    """A tiny ST-CNN (the twin of tests/conf/stcnn_smg.yaml), two training steps."""
    pl.seed_everything(0, verbose=False)
    dm = SMGDataModule(synth_smg, clip_len=8, batch_size=4, **SUBJECTS)
    model = STCNN(
        num_classes=17, in_channels=3, num_joints=25, channels=[8, 16],
        temporal_strides=[1, 2], readout="mean",
    )  # fmt: skip
    return _fit_and_save(model, dm, tmp_path_factory.mktemp("rec") / "stcnn.ckpt")


@pytest.fixture(scope="module")
def features_dir(synth_smg: Path, stcnn_ckpt: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("features")
    args = ["extract-features", "--ckpt", str(stcnn_ckpt), "--data", str(CONF)]
    args += ["--root", str(synth_smg), "--window", "16", "--stride", "4", "--out", str(out)]
    assert main([*args, "--no-progress"]) == 0
    return out


def test_features_match_a_plain_window_loop(
    synth_smg: Path, stcnn_ckpt: Path, features_dir: Path, one_thread
) -> None:
    meta = read_feature_meta(features_dir)
    assert meta["window"] == 16 and meta["stride"] == 4 and meta["dim"] == 16
    assert meta["recognizer_class"] == "mgr.models.stcnn.STCNN"
    assert meta["ckpt"] == str(stcnn_ckpt.resolve()) and meta["source"]["dataset"] == "smg"
    names = sorted(p.stem for p in features_dir.glob("*.npz"))
    assert names == [f"Sample000{i}" for i in (1, 2, 3, 4)]
    # Reference: the csv read plainly, each window normalised as the training clips
    # (tests/conf/stcnn_smg.yaml: clip centring on SpineMid, shoulder scale, 8 frames).
    model = STCNN.load_from_checkpoint(stcnn_ckpt, map_location="cpu").eval()
    raw = np.loadtxt(synth_smg / "Sample0004" / "Sample0004_skeleton.csv", delimiter=",")
    kp = raw.reshape(len(raw), 25, 11)[..., :3].astype(np.float32)
    cfg = SMGDataModule(synth_smg, clip_len=8, **SUBJECTS).transform_config(train=False)
    expected, centers = [], []
    for start in range(0, len(kp) - 16 + 1, 4):
        clip = normalize_skeleton(
            kp[start : start + 16], cfg.center, scale_joints=cfg.scale_joints, center_mode="clip"
        )[uniform_sample_indices(16, 8, test_mode=True)]
        x = torch.from_numpy(clip).permute(2, 0, 1)[None, ..., None]
        with torch.no_grad():
            expected.append(model.forward_features({"skeleton": x})[0].numpy())
        centers.append(start + 8)
    with np.load(features_dir / "Sample0004.npz") as f:
        assert f["features"].dtype == np.float32 and f["features"].shape == (len(centers), 16)
        np.testing.assert_allclose(f["features"], np.stack(expected), rtol=1e-4, atol=1e-5)
        assert f["centers"].tolist() == centers
        assert int(f["num_frames"]) == len(kp)


def test_resume_skips_cached_videos_and_recomputes_on_meta_change(
    synth_smg: Path, stcnn_ckpt: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "feats"
    args = ["extract-features", "--ckpt", str(stcnn_ckpt), "--data", str(CONF), "--root"]
    args += [str(synth_smg), "--out", str(out), "--window", "16", "--no-progress"]
    assert main([*args, "--stride", "4", "--videos", "Sample0003", "Sample0004"]) == 0
    first = {p.name: p.stat().st_mtime_ns for p in out.glob("*.npz")}
    assert sorted(first) == ["Sample0003.npz", "Sample0004.npz"]
    capsys.readouterr()
    # Interrupted run resumed: the two finished videos are kept, the rest computed.
    assert main([*args, "--stride", "4"]) == 0
    assert "(2 computed, 2 cached)" in capsys.readouterr().out
    assert all(out.joinpath(n).stat().st_mtime_ns == t for n, t in first.items())
    assert not list(out.glob(".*"))  # no temporary files left behind
    # Another stride: the meta differs, every video is recomputed.
    assert main([*args, "--stride", "8"]) == 0
    assert "(4 computed, 0 cached)" in capsys.readouterr().out
    with np.load(out / "Sample0004.npz") as f:
        assert np.diff(f["centers"]).tolist() == [8] * (len(f["centers"]) - 1)
    assert json.loads((out / "meta.json").read_text())["stride"] == 8


def test_interrupted_re_extraction_is_never_read_as_current(
    synth_smg: Path, stcnn_ckpt: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    import mgr.features

    out = tmp_path / "feats"
    args = ["extract-features", "--ckpt", str(stcnn_ckpt), "--data", str(CONF), "--root"]
    args += [str(synth_smg), "--out", str(out), "--window", "16", "--no-progress"]
    assert main([*args, "--stride", "4"]) == 0
    real, calls = mgr.features.extract_sequence_features, []

    def killed_on_second_video(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise OSError("killed")
        return real(*a, **k)

    with monkeypatch.context() as m:  # a re-extraction with another stride dies half-way
        m.setattr(mgr.features, "extract_sequence_features", killed_on_second_video)
        with pytest.raises(OSError, match="killed"):
            main([*args, "--stride", "8"])
    meta = read_feature_meta(out)
    assert meta["stride"] == 8
    centers = read_features(out, "Sample0001")[1]  # recomputed: stride 8
    assert np.diff(centers).tolist() == [8] * (len(centers) - 1)
    with pytest.raises(ValueError, match="other settings"):  # still the stride-4 file
        read_features(out, "Sample0002", meta)
    capsys.readouterr()
    assert main([*args, "--stride", "8"]) == 0  # the rerun recomputes what is stale
    assert "(3 computed, 1 cached)" in capsys.readouterr().out
    for vid in ("Sample0002", "Sample0003", "Sample0004"):
        assert np.diff(read_features(out, vid)[1]).tolist()[:1] == [8]


def test_bad_checkpoints_are_named(synth_smg: Path, tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"missing\.ckpt does not exist"):
        load_recognizer(tmp_path / "missing.ckpt")
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match=r"junk\.ckpt is a text file"):
        load_recognizer(junk)
    dm = SMGOnlineDataModule(synth_smg, window=32, **SUBJECTS)
    detector = _fit_and_save(
        OnlineDetector(num_classes=17, embed_dim=8, num_levels=2), dm, tmp_path / "det.ckpt"
    )
    message = r"det\.ckpt: a checkpoint of OnlineDetector.*not a Recognizer"
    with pytest.raises(TypeError, match=message):
        load_recognizer(detector)


def test_steps_and_frames() -> None:
    centers = np.array([8, 12, 16, 20])
    assert step_boundaries(centers, 30).tolist() == [0, 10, 14, 18, 30]
    frames = np.array([[0, 3], [11, 15], [19, 29], [9, 10]])
    assert frames_to_steps(frames, centers, 30).tolist() == [[0, 0], [1, 2], [3, 3], [0, 1]]
    steps = torch.tensor([[1.0, 3.0], [0.0, 4.0], [0.5, 1.0]])
    back = steps_to_frames(steps, torch.tensor(centers), 30)
    assert back.tolist() == [[10.0, 18.0], [0.0, 30.0], [5.0, 10.0]]


def test_detector_on_features_fits_and_tests(
    synth_smg: Path, features_dir: Path, one_thread
) -> None:
    dm = SMGOnlineDataModule(
        synth_smg, window=64, windows_per_sequence=2, batch_size=2, features_dir=features_dir,
        **SUBJECTS,
    )  # fmt: skip
    assert dm.input_key == "features" and dm.in_channels == 16 and dm.steps_window == 16
    (batch,) = list(dm.test_dataloader())
    seq = dm.load_sequences("test")[0]
    assert batch["features"].shape == (1, 16, len(seq.centers))
    raw = SMGOnlineDataModule(synth_smg, **SUBJECTS).load_sequences("test")[0]
    assert torch.equal(batch["frame_segments"][0], torch.from_numpy(raw.segments))
    assert int(batch["num_frames"][0]) == raw.num_frames
    model = OnlineDetector(
        num_classes=17, in_channels=16, input_key="features", embed_dim=16, num_levels=3,
        min_score=0.0, f1_min_score=0.0,
    )  # fmt: skip
    trainer = pl.Trainer(fast_dev_run=True, **QUIET)
    trainer.fit(model, dm)
    (metrics,) = trainer.test(model, dm, verbose=False)
    assert {"test/f1", "test/mAP"} <= set(metrics)
    assert model.feature_meta is not None and model.feature_meta["dim"] == 16
    (det,) = model.detect(batch)  # detections in frames, not steps
    assert det["segments"].numel() and int(det["segments"].max()) <= raw.num_frames
    assert int(det["segments"][:, 1].max()) > len(seq.centers)
    with pytest.raises(ValueError, match="input_key='skeleton'"):
        pl.Trainer(fast_dev_run=True, **QUIET).fit(OnlineDetector(num_classes=17), dm)


def test_detect_with_recognizer_end_to_end(
    synth_smg: Path, stcnn_ckpt: Path, features_dir: Path, tmp_path: Path, capsys
) -> None:
    pl.seed_everything(0, verbose=False)
    dm = SMGOnlineDataModule(synth_smg, window=64, features_dir=features_dir, **SUBJECTS)
    model = OnlineDetector(
        num_classes=17, in_channels=16, input_key="features", embed_dim=16, num_levels=3
    )
    det_ckpt = _fit_and_save(model, dm, tmp_path / "det.ckpt")
    out = tmp_path / "Sample0004_prediction.csv"
    args = ["detect", "--ckpt", str(det_ckpt), "--input", str(synth_smg / "Sample0004")]
    args += ["--out", str(out), "--min-score", "0"]
    assert main([*args, "--recognizer", str(stcnn_ckpt)]) == 0
    length = sum(1 for _ in open(synth_smg / "Sample0004" / "Sample0004_skeleton.csv"))
    rows = [line.split(",") for line in out.read_text().splitlines()]
    assert rows
    for label, start, end, score in rows:
        assert int(label) in range(1, 18)
        assert int(start) in range(int(end)) and int(end) in range(length + 1)
        assert 0.0 <= float(score) <= 1.0
    assert any(int(r[2]) > length // 4 for r in rows)  # frames, not feature steps
    assert "F1" in capsys.readouterr().out
    # The features came from this recognizer: another one is refused, and so is none.
    other = tmp_path / "other.ckpt"
    state = torch.load(stcnn_ckpt, weights_only=False)
    state["state_dict"] = {k: v + 1 for k, v in state["state_dict"].items()}
    torch.save(state, other)
    with pytest.raises(ValueError, match="not the recognizer checkpoint"):
        main([*args, "--recognizer", str(other)])
    with pytest.raises(SystemExit):
        main(args)


def test_video_recognizer_windows_match_a_plain_decode(synth_smg_rgb: Path, tmp_path: Path) -> None:
    """ClipWindows: a Video Swin's window features = decode + centre crop + resize by hand."""
    import torchvision.transforms.v2.functional as TF

    from mgr.data.datasets import VideoOptions
    from mgr.data.readers.video import read_frames
    from mgr.data.transforms.video import resize
    from mgr.features import ClipWindows, SequenceSource, extract_features
    from mgr.models import VideoSwin

    pl.seed_everything(0, verbose=False)
    dm = SMGDataModule(
        synth_smg_rgb, modalities=["video"], coords="pixel", clip_len=4, batch_size=2,
        video=VideoOptions(size=16, crop="center"), **SUBJECTS,
    )  # fmt: skip
    model = VideoSwin(
        17, embed_dim=8, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2], window_size=[2, 4, 4]
    )
    ckpt = _fit_and_save(model, dm, tmp_path / "swin.ckpt")
    out = tmp_path / "feats"
    source = SequenceSource.of_datamodule(dm)
    status = extract_features(
        ckpt, out, source=source, transform=ClipWindows(dm), window=12, stride=6,
        videos=["Sample0001"], batch_size=8, progress=False,
    )  # fmt: skip
    assert status == {"Sample0001": "computed"}
    data = np.load(out / "Sample0001.npz")
    feats, centers = data["features"], data["centers"]
    video = synth_smg_rgb / "smg_rgb" / "Sample0001" / "Sample0001_color.mp4"
    rec = load_recognizer(ckpt).eval()
    mean = torch.tensor(VideoOptions().mean).view(3, 1, 1, 1)
    std = torch.tensor(VideoOptions().std).view(3, 1, 1, 1)
    for i in (0, len(centers) // 2, len(centers) - 1):
        start = int(centers[i]) - 6
        idx = start + uniform_sample_indices(12, 4, test_mode=True)
        frames = torch.as_tensor(read_frames(video, idx))
        if frames.shape[-1] == 3:  # (T, H, W, C) -> (T, C, H, W)
            frames = frames.permute(0, 3, 1, 2)
        side = min(frames.shape[-2:])
        clip = TF.center_crop(frames, [side, side])
        # mgr's uint8 resize (checked against torchvision in its own tests) rounds like this:
        clip = resize(clip, (16, 16)).float() / 255.0
        clip = (clip.permute(1, 0, 2, 3) - mean) / std  # (C, T, H, W)
        with torch.no_grad():
            want = rec.forward_features({"video": clip[None]})[0].numpy()
        np.testing.assert_allclose(feats[i], want, atol=1e-4)
    assert read_feature_meta(out)["transform"]["kind"] == "clip"
