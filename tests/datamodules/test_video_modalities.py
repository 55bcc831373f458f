"""iMiGUE / SMG datamodules with video and pose, samplers, the subjects split and MiGA'25 input."""

from __future__ import annotations

import csv
import math
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from mgr.classes import smg_label_from_raw
from mgr.data.datasets import HeatmapOptions, VideoOptions
from mgr.data.readers.miga import write_openpose_xlsx
from mgr.data.transforms.pose import uniform_sample_indices
from mgr.datamodules import IMiGUEDataModule, SMGDataModule
from mgr.datamodules.base import collate
from mgr.datamodules.imigue import IMIGUE_TEST_SUBJECTS, IMIGUE_TRAIN_SUBJECTS
from mgr.skeletons import MMGESTURE_36

SMALL = VideoOptions(size=32, crop="saliency")
ALL = ["skeleton", "video", "pose"]


def check_batch(batch: dict, dm, views: int | None, clip_len: int) -> None:
    """Keys, shapes and dtypes of a batch against the datamodule's contract."""
    if "video" in batch:  # loaders ship uint8; the float work runs after the transfer
        assert batch["video"].dtype == torch.uint8
        assert batch["video_flip"].shape == batch["video"].shape[: batch["video"].ndim - 4]
    batch = dm.on_after_batch_transfer(batch, 0)
    assert set(batch) == set(dm.supplies)
    b = len(batch["sample_id"])
    v = (views,) if views else ()
    assert batch["label"].shape == (b,) and batch["label"].dtype == torch.int64
    shapes = {
        "skeleton": (b, *v, dm.num_channels, clip_len, dm.num_joints, 1),
        "video": (b, *v, 3, clip_len, dm.video.size, dm.video.size),
        "keypoint": (b, *v, 1, clip_len, dm.num_joints, 2),
        "keypoint_score": (b, *v, 1, clip_len, dm.num_joints),
    }
    for key, shape in shapes.items():
        if key in batch:
            assert batch[key].shape == shape, key
            assert batch[key].dtype == torch.float32, key
            assert torch.isfinite(batch[key]).all(), key
    if "img_shape" in batch:
        assert batch["img_shape"].dtype == torch.int64
        assert batch["img_shape"].tolist() == [list(dm.image_size)] * b


def clip_list_labels(root: Path) -> dict[str, int]:
    """Sample id -> label from SynthMG's MiGA'25-style ``iMiGUE_*_clips_list.txt`` files."""
    labels = {}
    for path in root.glob("iMiGUE_*_clips_list.txt"):
        for line in path.read_text().splitlines():
            name, label = line.split()
            labels[name.removesuffix(".mp4")] = int(label)
    return labels


# --- iMiGUE with skeleton + video + pose ---------------------------------------------------


def test_imigue_video_and_pose_batches(synth_imigue_rgb: Path) -> None:
    dm = IMiGUEDataModule(
        synth_imigue_rgb,
        modalities=ALL,
        video=SMALL,
        clip_len=6,
        batch_size=4,
        flip_prob=0.5,
        test_clips=2,
        test_flip=True,
    )
    assert dm.supplies == (
        "skeleton",
        "video",
        "keypoint",
        "keypoint_score",
        "img_shape",
        "label",
        "sample_id",
    )
    dm.setup("fit")
    dm.setup("test")
    truth = clip_list_labels(synth_imigue_rgb)
    rgb_dir = {"train": "imigue_rgb_train", "val": "imigue_rgb_validate", "test": "imigue_rgb_test"}
    for split, rgb in rgb_dir.items():
        for rec in dm.records[split]:
            assert Path(rec.video).name == f"{rec.sample_id}.mp4"
            assert Path(rec.video).parent.name == rgb
    torch.manual_seed(0)
    seen = []
    for batch in dm.train_dataloader():
        check_batch(batch, dm, None, 6)
        seen += batch["sample_id"]
        assert batch["label"].tolist() == [truth[s] for s in batch["sample_id"]]
    assert sorted(seen) == sorted(r.sample_id for r in dm.records["train"])
    for loader in (dm.val_dataloader(), dm.test_dataloader()):
        for batch in loader:
            check_batch(batch, dm, 4, 6)
            assert batch["label"].tolist() == [truth[s] for s in batch["sample_id"]]


def test_imigue_video_with_heatmaps(synth_imigue_rgb: Path) -> None:
    dm = IMiGUEDataModule(
        synth_imigue_rgb,
        modalities=["video", "heatmap"],
        video=VideoOptions(size=32, clip_len=3),
        heatmap=HeatmapOptions(size=16),
        clip_len=6,
        batch_size=4,
        test_clips=2,
        test_flip=True,
    )
    assert dm.supplies == ("video", "heatmap", "label", "sample_id")
    dm.setup("validate")
    batch = dm.on_after_batch_transfer(next(iter(dm.val_dataloader())), 0)
    assert set(batch) == set(dm.supplies)
    b = len(batch["sample_id"])
    assert batch["video"].shape == (b, 4, 3, 3, 32, 32)  # its own clip length
    assert batch["heatmap"].shape == (b, 4, dm.num_joints, 6, 16, 16)
    with pytest.raises(ValueError, match="video"):
        IMiGUEDataModule(synth_imigue_rgb, modalities=["heatmap"], heatmap=HeatmapOptions())


def test_imigue_pose_matches_the_skeleton_file(synth_imigue_rgb: Path) -> None:
    dm = IMiGUEDataModule(synth_imigue_rgb, modalities=["pose"], clip_len=5)
    dm.setup("validate")
    rec = dm.records["val"][1]
    item = dm.datasets["val"][1]
    idx = uniform_sample_indices(rec.num_frames, 5, test_mode=True)
    kp = rec.keypoint[idx][:, list(dm.layout.parent_indices)]
    np.testing.assert_allclose(item["keypoint"][0].numpy(), kp[..., :2])
    np.testing.assert_allclose(item["keypoint_score"][0].numpy(), kp[..., 2])


def _spatial_structure(dm: IMiGUEDataModule) -> float:
    dm.setup("validate")
    items = collate([dm.datasets["val"][i] for i in range(3)])
    video = dm.on_after_batch_transfer(items, 0)["video"]
    return video.std(dim=(-2, -1)).mean().item()  # per-frame spatial std, averaged


@pytest.mark.parametrize("keypoint_image_size", [(1080, 1920), None])
def test_imigue_saliency_crop_holds_the_figure(
    synth_imigue_rgb: Path, keypoint_image_size: tuple | None
) -> None:
    # SynthMG's keypoints are in the 1080x1920 frame, its videos 48x80. Given explicitly or
    # taken from the datamodule's image_size, the keypoints are rescaled to the video; if
    # they were not, the box would collapse to the bottom-right pixel (a flat crop).
    opts = VideoOptions(size=32, crop="saliency", keypoint_image_size=keypoint_image_size)
    dm = IMiGUEDataModule(synth_imigue_rgb, modalities=["video"], video=opts, clip_len=4)
    assert _spatial_structure(dm) > 0.3  # figure edges and texture, not a flat patch
    wrong = VideoOptions(size=32, crop="saliency", keypoint_image_size=(48, 80))
    dm = IMiGUEDataModule(synth_imigue_rgb, modalities=["video"], video=wrong, clip_len=4)
    assert _spatial_structure(dm) < 0.05


# --- SMG -----------------------------------------------------------------------------------


def test_smg_pixel_video_and_pose(synth_smg_rgb: Path) -> None:
    dm = SMGDataModule(
        synth_smg_rgb,
        coords="pixel",
        train_subjects=[1, 2],
        val_subjects=[3],
        test_subjects=[4],
        modalities=ALL,
        video=VideoOptions(size=32, crop="saliency", keypoint_image_size=(1080, 1920)),
        clip_len=6,
        batch_size=5,
        test_clips=2,
    )
    dm.setup("fit")
    dm.setup("test")
    assert (dm.num_channels, dm.num_joints) == (2, 25)
    for split, subjects in (("train", {1, 2}), ("val", {3}), ("test", {4})):
        recs = dm.records[split]
        assert {r.subject for r in recs} == subjects
        for rec in recs:
            name = f"Sample{rec.subject:04d}"
            assert Path(rec.video).parts[-3:] == ("smg_rgb", name, f"{name}_color.mp4")
            assert (rec.video_start, rec.video_end) == (rec.start, rec.end)
            # The finelabels file (end exclusive) says which frames and label the clip has.
            rows = list(csv.reader((synth_smg_rgb / name / f"{name}_finelabels.csv").open()))
            raw, start, end = map(int, rows[int(rec.sample_id[len(name) :])])
            assert (rec.label, rec.start, rec.end) == (smg_label_from_raw(raw), start, end - 1)
    for batch in dm.train_dataloader():
        check_batch(batch, dm, None, 6)
    for batch in dm.test_dataloader():
        check_batch(batch, dm, 2, 6)


def test_smg_world_coordinates_refuse_saliency_and_pose(synth_smg_rgb: Path) -> None:
    subjects = {"train_subjects": [1, 2], "val_subjects": [3], "test_subjects": [4]}
    with pytest.raises(ValueError, match=re.escape("coords='pixel'")):  # refused up front
        SMGDataModule(
            synth_smg_rgb, modalities=["skeleton", "video"], video=SMALL, clip_len=4, **subjects
        )
    with pytest.raises(ValueError, match="pixels"):
        SMGDataModule(synth_smg_rgb, modalities=["skeleton", "pose"], **subjects)
    # World coordinates with a centre crop are fine.
    dm = SMGDataModule(
        synth_smg_rgb,
        modalities=["skeleton", "video"],
        video=VideoOptions(size=16),
        clip_len=4,
        **subjects,
    )
    dm.setup("validate")
    assert dm.datasets["val"][0]["video"].shape == (3, 4, 16, 16)  # uint8, finished on the device


# --- samplers ------------------------------------------------------------------------------


def test_sqrt_balanced_sampler_frequencies(synth_imigue: Path) -> None:
    dm = IMiGUEDataModule(synth_imigue, clip_len=4, batch_size=256, sampler="sqrt_balanced")
    dm.setup("fit")
    labels = [r.label for r in dm.records["train"]]
    counts = Counter(labels)
    assert len(set(counts.values())) > 1  # otherwise balancing changes nothing
    weight = {c: n / math.sqrt(n + 1) for c, n in counts.items()}  # N_c samples of 1/sqrt(N_c+1)
    expected = {c: w / sum(weight.values()) for c, w in weight.items()}
    natural = {c: n / len(labels) for c, n in counts.items()}
    loader = dm.train_dataloader()
    assert len(loader.sampler) == len(labels)
    drawn: Counter = Counter()
    epochs = 150
    for epoch in range(epochs):
        loader.sampler.set_epoch(epoch)  # as Lightning does every epoch
        for batch in loader:
            drawn.update(batch["label"].tolist())
    total = sum(drawn.values())
    assert total == epochs * len(labels)
    assert set(drawn) == set(counts)
    for c, p in expected.items():
        sigma = math.sqrt(p * (1 - p) / total)
        assert abs(drawn[c] / total - p) < 4 * sigma + 1e-3, c
    l1_sqrt = sum(abs(drawn[c] / total - expected[c]) for c in counts)
    l1_natural = sum(abs(drawn[c] / total - natural[c]) for c in counts)
    assert l1_sqrt < l1_natural / 3


def test_sqrt_balanced_draws_follow_the_global_seed_and_epoch(
    synth_imigue: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dm = IMiGUEDataModule(synth_imigue, clip_len=4, batch_size=256, sampler="sqrt_balanced")
    dm.setup("fit")

    def draw(seed: str, epoch: int) -> list[str]:
        monkeypatch.setenv("PL_GLOBAL_SEED", seed)  # what seed_everything sets
        loader = dm.train_dataloader()
        loader.sampler.set_epoch(epoch)
        return [s for b in loader for s in b["sample_id"]]

    assert draw("7", 0) == draw("7", 0)
    assert draw("7", 0) != draw("7", 1)
    assert draw("7", 0) != draw("8", 0)


def repetition(z: int, alpha: float) -> int:
    """Eq. (1): ``ceil(log2(alpha / Z_c)) + 1`` for ``Z_c < alpha``, else 1."""
    return math.ceil(math.log2(alpha / z)) + 1 if z < alpha else 1


@pytest.mark.parametrize("alpha", [5.0, 4.0, 2.5])
@pytest.mark.parametrize("sampler", ["random", "sqrt_balanced"])
def test_repeat_alpha_loader_length(synth_imigue: Path, alpha: float, sampler: str) -> None:
    dm = IMiGUEDataModule(
        synth_imigue, clip_len=4, batch_size=1, repeat_alpha=alpha, sampler=sampler
    )
    dm.setup("fit")
    labels = [r.label for r in dm.records["train"]]
    counts = Counter(labels)
    want = sum(repetition(counts[c], alpha) for c in labels)
    assert want > len(labels)
    loader = dm.train_dataloader()
    assert len(loader) == want
    ids = [b["sample_id"][0] for b in loader]
    assert len(ids) == want
    known = {r.sample_id for r in dm.records["train"]}
    assert set(ids) <= known
    if sampler == "random":  # each clip exactly R_c times per epoch
        label_of = {r.sample_id: r.label for r in dm.records["train"]}
        for sid, n in Counter(ids).items():
            assert n == repetition(counts[label_of[sid]], alpha)
        assert set(ids) == known


def test_sampler_arguments_are_checked(synth_imigue: Path) -> None:
    with pytest.raises(ValueError, match="sampler"):
        IMiGUEDataModule(synth_imigue, sampler="balanced")
    with pytest.raises(ValueError, match="repeat_alpha"):
        IMiGUEDataModule(synth_imigue, repeat_alpha=0)


# --- split_scheme="subjects" ---------------------------------------------------------------

# SynthMG videos 0001-0004 mapped to subjects of the paper's train and test lists.
SUBJECT_OF = {
    "0001": IMIGUE_TRAIN_SUBJECTS[0],
    "0002": IMIGUE_TEST_SUBJECTS[0],
    "0003": IMIGUE_TRAIN_SUBJECTS[5],
    "0004": IMIGUE_TEST_SUBJECTS[3],
}


def write_subject_map(path: Path) -> Path:
    lines = ["Video_id,Link,Sub_id"]
    lines += [f"{int(v)},https://example.invalid/{v},{s}" for v, s in SUBJECT_OF.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_subjects_split_follows_the_map(synth_imigue_rgb: Path, tmp_path: Path) -> None:
    subject_map = write_subject_map(tmp_path / "Link_V2.csv")
    dm = IMiGUEDataModule(
        synth_imigue_rgb,
        split_scheme="subjects",
        subject_map=subject_map,
        modalities=["skeleton", "video"],
        video=VideoOptions(size=16),
        clip_len=4,
        batch_size=32,
    )
    dm.setup("fit")
    dm.setup("test")
    train_videos = {v for v, s in SUBJECT_OF.items() if s in IMIGUE_TRAIN_SUBJECTS}
    test_videos = {v for v, s in SUBJECT_OF.items() if s in IMIGUE_TEST_SUBJECTS}
    assert train_videos == {"0001", "0003"} and test_videos == {"0002", "0004"}
    assert {r.video_id for r in dm.records["train"]} == train_videos
    assert {r.video_id for r in dm.records["test"]} == test_videos
    # The paper has no validation split: val = test.
    assert [r.sample_id for r in dm.records["val"]] == [r.sample_id for r in dm.records["test"]]
    for split in ("train", "test"):
        for rec in dm.records[split]:
            assert rec.subject == SUBJECT_OF[rec.video_id]
    # Video 0003 is in the release's validation folders; its clips are found all the same.
    batch = dm.on_after_batch_transfer(next(iter(dm.train_dataloader())), 0)
    assert any(s.startswith("0003_") for s in batch["sample_id"])
    assert batch["video"].shape[1:] == (3, 4, 16, 16)


def test_subjects_split_needs_a_subject_map(synth_imigue_rgb: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="subject_map"):
        IMiGUEDataModule(synth_imigue_rgb, split_scheme="subjects")
    bad = tmp_path / "map.csv"
    bad.write_text("video,subject\n1,2\n")
    dm = IMiGUEDataModule(synth_imigue_rgb, split_scheme="subjects", subject_map=bad)
    with pytest.raises(ValueError, match=re.escape(str(bad))):
        dm.setup("fit")


# --- source="miga25" -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def miga25_release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three videos of 14 frames (one per split), 2 clips each, as OpenPose-137 xlsx files."""
    root = tmp_path_factory.mktemp("miga25")
    rng = np.random.default_rng(25)
    folders = {"0001": "imigue_skeleton_train", "0002": "imigue_skeleton_validate"}
    folders["0003"] = "imigue_skeleton_test"
    for vid, folder in folders.items():
        d = root / folder / vid
        d.mkdir(parents=True)
        frames = np.zeros((14, 137, 3))
        frames[..., 0] = rng.uniform(100, 1200, (14, 137))
        frames[..., 1] = rng.uniform(50, 700, (14, 137))
        frames[..., 2] = rng.uniform(0.1, 1.0, (14, 137))
        write_openpose_xlsx(d / f"{vid}_openpose.xlsx", frames.round(2))
        (d / f"{vid}_label.csv").write_text("5,0,6\n99,7,13\n")
    return root


def test_miga25_source_reads_openpose_xlsx(miga25_release: Path) -> None:
    dm = IMiGUEDataModule(
        miga25_release, source="miga25", clip_len=5, normalize=False, image_size=(720, 1280)
    )
    assert dm.keypoints == "mmgesture_36"
    assert (dm.num_joints, dm.num_channels) == (36, 3)
    dm.setup("fit")
    dm.setup("test")
    assert [r.sample_id for r in dm.records["test"]] == ["0003_0", "0003_1"]
    assert [r.label for r in dm.records["train"]] == [4, 31]  # raw 5 -> 4, raw 99 -> 31
    rec = dm.records["test"][1]
    assert rec.keypoint.shape == (7, 137, 3)
    batch = dm.on_after_batch_transfer(next(iter(dm.test_dataloader())), 0)
    assert batch["skeleton"].shape == (2, 3, 5, 36, 1)
    idx = uniform_sample_indices(7, 5, test_mode=True)
    want = rec.keypoint[idx][:, list(MMGESTURE_36.parent_indices)]  # (T, 36, 3)
    np.testing.assert_allclose(
        batch["skeleton"][1, :, :, :, 0].permute(1, 2, 0).numpy(), want, rtol=1e-6
    )


def test_miga25_pose_uses_the_given_image_size(miga25_release: Path) -> None:
    dm = IMiGUEDataModule(
        miga25_release, source="miga25", modalities=["pose"], clip_len=4, image_size=(720, 1280)
    )
    dm.setup("validate")
    item = dm.datasets["val"][0]
    assert item["keypoint"].shape == (1, 4, 36, 2)
    assert item["img_shape"].tolist() == [720, 1280]
