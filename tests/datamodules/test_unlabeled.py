"""UnlabeledDataModule: every split's clips, untrimmed windows and video folders, no labels."""

import numpy as np
import pytest
import torch

from mgr.data.datasets import VideoOptions
from mgr.data.readers.media import media_num_frames
from mgr.data.readers.video import write_video
from mgr.data.transforms.video import VIDEO_RECIPE_KEYS
from mgr.datamodules import (
    IMiGUEDataModule,
    MA52DataModule,
    SMGDataModule,
    UnlabeledDataModule,
)
from mgr.datamodules.unlabeled import video_windows

OPTS = VideoOptions(size=16, crop="saliency")
SUBJECTS = {"train_subjects": [1, 2], "val_subjects": [3], "test_subjects": [4]}


def imigue(root, **kwargs) -> IMiGUEDataModule:
    return IMiGUEDataModule(root, modalities=["video"], clip_len=4, video=OPTS, **kwargs)


def test_reads_every_split_without_labels(synth_imigue_rgb):
    source = imigue(synth_imigue_rgb)
    dm = UnlabeledDataModule(sources=[source], batch_size=3)
    dm.setup("fit")
    per_split = sum(source.num_samples(s) for s in ("train", "val", "test"))
    assert len(dm) == per_split
    batch = next(iter(dm.train_dataloader()))
    # uint8 frames and their recipe (no label), finished into float clips on the device
    assert set(batch) - {"sample_id", "video"} <= set(VIDEO_RECIPE_KEYS)
    assert "label" not in batch and batch["video"].dtype == torch.uint8
    batch = dm.on_after_batch_transfer(batch, 0)
    assert sorted(batch) == ["sample_id", "video"] and batch["video"].is_floating_point()
    assert batch["video"].shape == (3, 3, 4, 16, 16)
    # val/test clips are sampled as training clips are (random positions, flips)
    assert all(ds.train for ds in dm.parts.values())
    assert dm.supplies == ("video", "sample_id") and dm.num_classes is None


def test_video_windows_cover_a_long_video(tmp_path):
    path = tmp_path / "long.mp4"
    write_video(path, np.zeros((23, 16, 16, 3), np.uint8))
    windows = video_windows(path, 5)
    assert [(w.video_start, w.video_end) for w in windows] == [(s, s + 4) for s in range(0, 20, 5)]
    assert windows[0].sample_id == "long@0" and windows[0].label == -1
    kp = np.random.default_rng(0).random((7, 3, 3), dtype=np.float32)
    keyed = video_windows(path, 5, keypoint=kp)
    assert keyed[0].keypoint.shape == (5, 3, 3)  # resampled to the window
    assert video_windows(path, 50)[0].video_end == 22  # a short video is one window


def test_untrimmed_smg_windows(synth_smg_rgb):
    source = SMGDataModule(
        synth_smg_rgb, modalities=["video"], clip_len=4, coords="pixel", video=OPTS, **SUBJECTS
    )
    dm = UnlabeledDataModule(sources=[source], untrimmed=True, window=10, batch_size=2)
    dm.setup("fit")
    windows = dm.parts["0:SMGDataModule:untrimmed"].records
    videos = {w.video for w in windows}
    assert len(videos) == 4  # one long SampleXXXX_color.mp4 per subject
    for video in videos:
        frames = media_num_frames(video)
        starts = sorted(w.video_start for w in windows if w.video == video)
        assert starts == list(range(0, frames - 9, 10))
    batch = next(iter(dm.train_dataloader()))
    assert batch["video"].shape == (2, 3, 4, 16, 16)


def test_untrimmed_imigue_videos_from_a_folder(synth_imigue_rgb, tmp_path):
    for vid, frames in (("0001", 30), ("0003", 12)):  # a train and a val video
        write_video(tmp_path / f"{vid}.mp4", np.full((frames, 48, 80, 3), 90, np.uint8))
    dm = UnlabeledDataModule(
        sources=[imigue(synth_imigue_rgb)], untrimmed=True, untrimmed_root=tmp_path, window=6
    )
    dm.setup("fit")
    windows = dm.parts["0:IMiGUEDataModule:untrimmed"].records
    assert sorted((w.video_id, w.video_start) for w in windows) == [
        *[("0001", s) for s in range(0, 30, 6)],
        *[("0003", s) for s in range(0, 12, 6)],
    ]
    assert all(w.keypoint is not None for w in windows)  # the person box crops them
    item = dm.parts["0:IMiGUEDataModule:untrimmed"][0]
    assert item["video"].shape == (3, 4, 16, 16)


def test_untrimmed_without_long_videos_is_an_error(synth_imigue_rgb, tmp_path):
    dm = UnlabeledDataModule(
        sources=[imigue(synth_imigue_rgb)], untrimmed=True, untrimmed_root=tmp_path
    )
    with pytest.raises(FileNotFoundError, match="no source has long videos"):
        dm.setup("fit")


def test_folder_of_videos(tmp_path):
    for name, frames in (("a", 20), ("sub/b", 9)):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        write_video(tmp_path / f"{name}.mp4", np.zeros((frames, 24, 40, 3), np.uint8))
    dm = UnlabeledDataModule(
        tmp_path, window=8, clip_len=4, video=VideoOptions(size=16), batch_size=2
    )
    dm.setup("fit")
    assert len(dm) == 2 + 1
    batch = next(iter(dm.train_dataloader()))
    assert batch["video"].shape == (2, 3, 4, 16, 16)
    assert torch.isfinite(batch["video"]).all()


def test_three_datasets_together(synth_imigue_rgb, synth_smg_rgb, synth_ma52):
    center = VideoOptions(size=16)
    sources = [
        IMiGUEDataModule(synth_imigue_rgb, modalities=["video"], clip_len=4, video=center),
        SMGDataModule(synth_smg_rgb, modalities=["video"], clip_len=4, video=center, **SUBJECTS),
        MA52DataModule(synth_ma52, clip_len=4, video=center),
    ]
    dm = UnlabeledDataModule(sources=sources, splits=["train", "val", "test"], batch_size=4)
    dm.setup("fit")
    total = sum(s.num_samples(split) for s in sources for split in ("train", "val", "test"))
    assert len(dm) == total
    ids = {item["sample_id"] for item in (dm.dataset[i] for i in range(len(dm)))}
    assert len(ids) > len(sources)


def test_bad_settings(synth_imigue_rgb):
    with pytest.raises(ValueError, match="sources and/or root"):
        UnlabeledDataModule()
    skeleton = IMiGUEDataModule(synth_imigue_rgb, clip_len=4)
    with pytest.raises(ValueError, match="modalities: \\[video\\]"):
        UnlabeledDataModule(sources=[skeleton])
    with pytest.raises(ValueError, match="crop must be 'center'"):
        UnlabeledDataModule(synth_imigue_rgb, video=VideoOptions(crop="saliency"))
    with pytest.raises(ValueError, match="add sources"):
        UnlabeledDataModule(synth_imigue_rgb, untrimmed=True)
    short = IMiGUEDataModule(synth_imigue_rgb, modalities=["video"], clip_len=2, video=OPTS)
    dm = UnlabeledDataModule(sources=[imigue(synth_imigue_rgb), short])
    with pytest.raises(ValueError, match="same \\(frames, size\\)"):
        dm.setup("fit")
