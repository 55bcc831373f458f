"""Broken releases: every bad clip is either refused by name ("raise") or skipped and counted."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mgr.data.datasets import VideoOptions
from mgr.data.readers.common import DataFormatError
from mgr.data.readers.miga import write_openpose_xlsx
from mgr.data.readers.video import read_video, write_video
from mgr.datamodules import IMiGUEDataModule, MA52DataModule, SMGDataModule

SPLITS = ("train", "val", "test")
SKELETON_DIRS = {
    "train": "imigue_skeleton_train",
    "val": "imigue_skeleton_validate",
    "test": "imigue_skeleton_test",
}
RGB_DIRS = {"train": "imigue_rgb_train", "val": "imigue_rgb_validate", "test": "imigue_rgb_test"}
VIDEO_KINDS = ("missing", "empty", "text", "truncated")
KINDS = (*VIDEO_KINDS, "past_end")


def imigue_clips(root: Path) -> dict[str, list[str]]:
    """Split -> clip ids, from the label csv files (one row per clip, ids ``<vid>_<row>``)."""
    clips = {}
    for split, folder in SKELETON_DIRS.items():
        clips[split] = [
            f"{label.parent.name}_{k}"
            for label in sorted((root / folder).glob("*/*_label.csv"))
            for k, line in enumerate(label.read_text().splitlines())
            if line.strip()
        ]
    return clips


def break_clip(root: Path, split: str, clip: str, kind: str) -> tuple[str, Path]:
    """Break one clip of an iMiGUE release in place.

    Returns:
        ``(id of the broken clip, the file that is broken)``; ``past_end`` adds a new label
        row (a new clip id) whose frames run past the end of the skeleton file.
    """
    mp4 = root / RGB_DIRS[split] / f"{clip}.mp4"
    if kind == "missing":
        mp4.unlink()
    elif kind == "empty":
        mp4.write_bytes(b"")
    elif kind == "text":
        mp4.write_bytes(b"gesture,start,end\n1,2,3\nthis is not a video at all\n" * 4)
    elif kind == "truncated":
        data = mp4.read_bytes()
        mp4.write_bytes(data[: len(data) // 2])
    elif kind == "past_end":
        vid = clip.split("_")[0]
        folder = root / SKELETON_DIRS[split] / vid
        label = folder / f"{vid}_label.csv"
        rows = [line for line in label.read_text().splitlines() if line.strip()]
        frames = len((folder / f"{vid}_light_hand.csv").read_text().splitlines())
        rows.append(f"5,{frames - 3},{frames + 20}")
        label.write_text("\n".join(rows) + "\n")
        return f"{vid}_{len(rows) - 1}", label
    else:
        raise AssertionError(kind)
    return clip, mp4


def datamodule(root: Path, on_bad_sample: str, **kwargs) -> IMiGUEDataModule:
    return IMiGUEDataModule(
        root,
        modalities=["skeleton", "video"],
        video=VideoOptions(size=16, crop="saliency"),
        clip_len=4,
        batch_size=8,
        on_bad_sample=on_bad_sample,
        **kwargs,
    )


def load_everything(dm) -> dict[str, list[str]]:
    """Set every split up and iterate every loader fully; split -> sample ids served."""
    dm.setup("fit")
    dm.setup("test")
    served = {}
    loaders = {"train": dm.train_dataloader, "val": dm.val_dataloader, "test": dm.test_dataloader}
    for split, loader in loaders.items():
        served[split] = [s for batch in loader() for s in batch["sample_id"]]
    return served


@pytest.fixture
def release(synth_imigue_rgb: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(synth_imigue_rgb, tmp_path / "release"))


# --- on_bad_sample="raise" -----------------------------------------------------------------


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("kind", KINDS)
def test_raise_names_the_file_and_the_clip(release: Path, kind: str, split: str) -> None:
    clip = imigue_clips(release)[split][1]
    bad_id, bad_file = break_clip(release, split, clip, kind)
    dm = datamodule(release, "raise")
    with pytest.raises(Exception) as info:  # the type differs per failure, checked below
        load_everything(dm)
    message = str(info.value)
    assert bad_id in message
    if kind == "missing":  # the file is gone: its name (any media suffix) is what is given
        assert isinstance(info.value, FileNotFoundError)
        assert f"{bad_id}.*" in message and str(release) in message
    else:
        assert str(bad_file) in message
    if kind == "past_end":
        assert isinstance(info.value, DataFormatError)


# --- on_bad_sample="skip" (fuzz) -----------------------------------------------------------


@pytest.mark.parametrize("seed", range(4))
def test_skip_drops_and_counts_random_breakage(release: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    clips = imigue_clips(release)
    broken: dict[str, set[str]] = {s: set() for s in SPLITS}
    for split in SPLITS:
        # Break up to half of the split's clips (at least one), each in a random way.
        chosen = rng.choice(clips[split], size=int(rng.integers(1, len(clips[split]) // 2 + 1)))
        for clip in sorted(set(chosen.tolist())):
            kind = str(rng.choice(KINDS))
            bad_id, _ = break_clip(release, split, clip, kind)
            broken[split].add(bad_id)
    dm = datamodule(release, "skip", flip_prob=0.5, test_clips=2, test_flip=True)
    served = load_everything(dm)
    assert dm.skipped == {s: len(broken[s]) for s in SPLITS}
    for split in SPLITS:
        kept = {r.sample_id for r in dm.datasets[split].records}
        assert kept == set(clips[split]) - broken[split]
        assert not kept & broken[split]
        if split == "train":
            assert sorted(served[split]) == sorted(kept)  # every kept clip loads, once
        else:
            assert served[split] == [r.sample_id for r in dm.records[split]]


def test_skip_with_a_clean_release_skips_nothing(release: Path) -> None:
    dm = datamodule(release, "skip")
    served = load_everything(dm)
    assert dm.skipped == {"train": 0, "val": 0, "test": 0}
    clips = imigue_clips(release)
    assert {s: sorted(ids) for s, ids in served.items()} == {s: sorted(c) for s, c in clips.items()}


def test_skip_survives_a_truncated_faststart_video(release: Path) -> None:
    # With its index (moov) at the front, a truncated MP4 passes the header probe of setup;
    # it fails only when decoded. "skip" then serves the next clip and names the bad one.
    clip = imigue_clips(release)["test"][0]
    mp4 = release / RGB_DIRS["test"] / f"{clip}.mp4"
    write_video(mp4, read_video(mp4), faststart=True)
    data = mp4.read_bytes()
    mp4.write_bytes(data[: len(data) // 2])
    dm = datamodule(release, "skip")
    with pytest.warns(UserWarning, match=f"skipping bad sample.*{clip}"):
        served = load_everything(dm)
    assert dm.skipped["test"] == 0  # the header looked fine at setup
    assert clip not in served["test"]
    assert len(served["test"]) == len(dm.datasets["test"])  # the epoch still has every slot
    assert dm.datasets["test"].failed == {clip}
    with pytest.raises(RuntimeError, match=clip):  # and "raise" stops, naming it
        load_everything(datamodule(release, "raise"))


# --- SMG: a long video shorter than its clips ----------------------------------------------


def test_smg_video_shorter_than_the_skeleton(synth_smg_rgb: Path, tmp_path: Path) -> None:
    root = Path(shutil.copytree(synth_smg_rgb, tmp_path / "smg"))
    mp4 = root / "smg_rgb" / "Sample0003" / "Sample0003_color.mp4"
    frames = read_video(mp4)
    cut = len(frames) // 2
    write_video(mp4, frames[:cut])
    kwargs = {
        "coords": "pixel",
        "train_subjects": [1, 2],
        "val_subjects": [3],
        "test_subjects": [4],
        "modalities": ["skeleton", "video"],
        "video": VideoOptions(size=16, crop="saliency"),
        "clip_len": 4,
    }
    dm = SMGDataModule(root, on_bad_sample="skip", **kwargs)
    dm.setup("validate")
    clean = SMGDataModule(synth_smg_rgb, **kwargs)
    clean.setup("validate")
    beyond = {r.sample_id for r in clean.records["val"] if r.end >= cut}
    assert beyond and dm.skipped["val"] == len(beyond)
    assert {r.sample_id for r in dm.records["val"]} == {
        r.sample_id for r in clean.records["val"]
    } - beyond
    for i in range(len(dm.datasets["val"])):
        dm.datasets["val"][i]
    # "raise": the clip that runs past the video fails when loaded, naming clip and file.
    dm = SMGDataModule(root, on_bad_sample="raise", **kwargs)
    dm.setup("validate")
    index = next(i for i, r in enumerate(dm.records["val"]) if r.sample_id in beyond)
    with pytest.raises(RuntimeError) as info:
        dm.datasets["val"][index]
    assert dm.records["val"][index].sample_id in str(info.value)
    assert str(mp4) in str(info.value)


# --- MA-52: a listed video is missing ------------------------------------------------------


@pytest.mark.parametrize("split", ["train", "test"])
def test_ma52_missing_video(synth_ma52: Path, tmp_path: Path, split: str) -> None:
    root = Path(shutil.copytree(synth_ma52, tmp_path / "ma52"))
    name = (root / f"{split}_list_videos.txt").read_text().split()[2]  # second line's file
    gone = root / f"videos_{split}" / name
    gone.unlink()
    clip = name.removesuffix(".mp4")
    dm = MA52DataModule(root, video=VideoOptions(size=16), clip_len=4, on_bad_sample="raise")
    with pytest.raises(FileNotFoundError) as info:
        load_everything(dm)
    assert clip in str(info.value) and str(gone) in str(info.value)
    dm = MA52DataModule(root, video=VideoOptions(size=16), clip_len=4, on_bad_sample="skip")
    served = load_everything(dm)
    assert dm.skipped == {s: int(s == split) for s in SPLITS}
    assert clip not in served[split]
    lines = (root / f"{split}_list_videos.txt").read_text().splitlines()
    listed = [line.split()[0] for line in lines if line.strip()]
    assert sorted(served[split]) == sorted(n.removesuffix(".mp4") for n in listed if n != name)


# --- MiGA'25: a malformed xlsx -------------------------------------------------------------


@pytest.mark.parametrize("on_bad_sample", ["raise", "skip"])
def test_miga25_xlsx_with_410_columns(tmp_path: Path, on_bad_sample: str) -> None:
    folder = tmp_path / "imigue_skeleton_train" / "0001"
    folder.mkdir(parents=True)
    frames = np.random.default_rng(0).uniform(1, 100, (6, 137, 3))
    path = folder / "0001_openpose.xlsx"
    write_openpose_xlsx(path, frames)
    # Rewrite it with one column fewer, as a corrupt export would be.
    table = pd.read_excel(path, header=None, engine="openpyxl").iloc[:, :410]
    table.to_excel(path, header=False, index=False, engine="openpyxl")
    (folder / "0001_label.csv").write_text("3,0,5\n")
    dm = IMiGUEDataModule(tmp_path, source="miga25", clip_len=4, on_bad_sample=on_bad_sample)
    with pytest.raises(DataFormatError, match=re.escape(str(path))) as info:
        dm.setup("fit")
    assert "410" in str(info.value)
