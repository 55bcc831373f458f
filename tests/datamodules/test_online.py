"""Untrimmed SMG sequences for detection: windows, instances, non-MG handling."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from mgr.data.readers.common import DataFormatError
from mgr.data.readers.smg import load_smg_sequence
from mgr.datamodules.online import SMG_NON_MG, SMGOnlineDataModule

SUBJECTS = {"train_subjects": [1, 2], "val_subjects": [3], "test_subjects": [4]}


def finelabels(root: Path, subject: int) -> list[tuple[int, int, int]]:
    """``(label 0-based, start, inclusive end)`` read plainly (the file's end is exclusive)."""
    name = f"Sample{subject:04d}"
    with open(root / name / f"{name}_finelabels.csv") as f:
        return [(int(a) - 1, int(b), int(c) - 1) for a, b, c in csv.reader(f) if a]


def test_sequence_holds_every_instance(synth_smg: Path) -> None:
    seq = load_smg_sequence(synth_smg / "Sample0003")
    rows = finelabels(synth_smg, 3)
    assert seq.segments.tolist() == [[s, e] for _, s, e in rows]
    assert seq.labels.tolist() == [c for c, _, _ in rows]
    raw = np.loadtxt(synth_smg / "Sample0003" / "Sample0003_skeleton.csv", delimiter=",")
    np.testing.assert_allclose(seq.keypoint, raw.reshape(len(raw), 25, 11)[..., :3], rtol=1e-6)


def test_instance_past_the_end_names_the_row(synth_smg: Path, tmp_path: Path) -> None:
    import shutil

    folder = Path(shutil.copytree(synth_smg / "Sample0001", tmp_path / "Sample0001"))
    label = folder / "Sample0001_finelabels.csv"
    label.write_text(label.read_text() + "3,10,999999\n")
    with pytest.raises(DataFormatError, match=r"Sample0001_finelabels\.csv, row \d+"):
        load_smg_sequence(folder)


def test_training_windows_cut_sequences_and_instances(synth_smg: Path) -> None:
    torch.manual_seed(0)
    dm = SMGOnlineDataModule(synth_smg, window=40, windows_per_sequence=20, **SUBJECTS)
    sequences = {s.video_id: s for s in dm.load_sequences("train")}
    n_items = 0
    for batch in dm.train_dataloader():
        for i, vid in enumerate(batch["video_id"]):
            n_items += 1
            seq, offset = sequences[vid], int(batch["offset"][i])
            window = batch["skeleton"][i, :, :, :, 0].permute(1, 2, 0).numpy()  # (T, V, C)
            np.testing.assert_array_equal(window, seq.keypoint[offset : offset + 40])
            assert batch["mask"][i].all()
            # Every instance with at least half of it inside the window, clipped to it.
            expected = []
            for (s, e), c in zip(seq.segments.tolist(), seq.labels.tolist(), strict=True):
                cs, ce = max(s, offset), min(e, offset + 39)
                if ce >= cs and ce - cs + 1 >= 0.5 * (e - s + 1):
                    expected.append((cs - offset, ce - offset, c))
            segments, labels = batch["segments"][i].tolist(), batch["labels"][i].tolist()
            got = [(*seg, c) for seg, c in zip(segments, labels, strict=True)]
            assert got == expected
    assert n_items == 2 * 20


def test_evaluation_serves_whole_sequences(synth_smg: Path) -> None:
    dm = SMGOnlineDataModule(synth_smg, **SUBJECTS)
    (batch,) = list(dm.test_dataloader())
    seq = dm.load_sequences("test")[0]
    assert batch["skeleton"].shape == (1, 3, seq.num_frames, 25, 1)
    assert batch["segments"][0].tolist() == [[s, e] for _, s, e in finelabels(synth_smg, 4)]
    # Normalised: SpineMid at the origin in every frame, shoulder width ~1.
    spine = batch["skeleton"][0, :, :, 1, 0]
    assert spine.abs().max() < 1e-5


def test_non_mg_as_background(synth_smg: Path) -> None:
    detect = SMGOnlineDataModule(synth_smg, **SUBJECTS)
    background = SMGOnlineDataModule(synth_smg, non_mg="background", **SUBJECTS)
    assert (detect.num_classes, background.num_classes) == (17, 16)
    rows = [r for s in (1, 2) for r in finelabels(synth_smg, s)]
    kept = [s for s in background.load_sequences("train")]
    assert sum(len(s.labels) for s in kept) == sum(c != SMG_NON_MG for c, _, _ in rows)
    assert all(SMG_NON_MG not in s.labels for s in kept)


def test_rare_class_repetition_centres_windows_on_rare_instances(synth_smg: Path) -> None:
    dm = SMGOnlineDataModule(synth_smg, window=24, repeat_alpha=8, **SUBJECTS)
    sequences = dm.load_sequences("train")
    weights = dm._instance_weights(sequences)
    labels = np.concatenate([s.labels for s in sequences])
    counts = np.bincount(labels, minlength=17)
    for seq, w in zip(sequences, weights, strict=True):
        for c, wc in zip(seq.labels, w, strict=True):
            z = counts[c]
            expected = int(np.ceil(np.log2(8 / z))) + 1 if z < 8 else 1
            assert wc == expected


def test_eval_sequences_are_sharded_without_repeats(synth_smg: Path) -> None:
    from types import SimpleNamespace

    from mgr.data.samplers import EvalShardSampler

    dm = SMGOnlineDataModule(
        synth_smg, train_subjects=[4], val_subjects=[4], test_subjects=[1, 2, 3]
    )
    seen = []
    for rank in range(2):  # 3 sequences on 2 processes: one sequence per batch
        dm.trainer = SimpleNamespace(distributed_sampler_kwargs={"num_replicas": 2, "rank": rank})
        loader = dm.test_dataloader()
        assert isinstance(loader.sampler, EvalShardSampler)
        seen.append([vid for batch in loader for vid in batch["video_id"]])
    assert [len(s) for s in seen] == [2, 1]
    assert sorted(seen[0] + seen[1]) == ["Sample0001", "Sample0002", "Sample0003"]
