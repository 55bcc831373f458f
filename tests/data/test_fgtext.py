"""FG-Text: sentences, class tables, annotation files, SynthMG's true attributes, batches."""

from pathlib import Path

import pytest

from mgr.classes import get_classes
from mgr.data.fgtext import (
    CLASS_ATTRIBUTES,
    FGAttributes,
    FGTextTable,
    class_sentence,
    compose_sentence,
    read_fgtext_csv,
    write_fgtext_csv,
)
from mgr.data.readers.common import ClipRecord
from mgr.data.synthetic import GESTURES, synth_attributes
from mgr.datamodules import IMiGUEDataModule, MA52DataModule, SMGDataModule

SMG_SUBJECTS = {"train_subjects": [1, 2], "val_subjects": [3], "test_subjects": [4]}


def test_sentence_template():
    a = FGAttributes("right hand", "neck", "upward", "scratching")
    assert (
        compose_sentence(a) == "The right hand moves upward to the neck with a scratching motion."
    )
    b = FGAttributes("shoulders", "none", "up and down", "shaking")
    assert compose_sentence(b) == "The shoulders move up and down with a shaking motion."
    assert class_sentence("Touching Or Scratching Neck", a) == (
        "A micro-gesture of touching or scratching neck: "
        "The right hand moves upward to the neck with a scratching motion."
    )


def test_flip_swaps_sides_only_as_words():
    a = FGAttributes("left hand", "hair above the right ear", "to the left", "circling")
    assert a.flipped() == FGAttributes(
        "right hand", "hair above the left ear", "to the right", "circling"
    )
    assert a.flipped().flipped() == a
    # "leftover"/"bright" are not sides.
    b = FGAttributes("bright hand", "leftover", "upward", "holding")
    assert b.flipped() == b


def test_empty_attribute_is_an_error():
    with pytest.raises(ValueError, match="receiver"):
        FGAttributes("hand", " ", "upward", "touching")


@pytest.mark.parametrize("dataset", ["smg", "imigue", "ma52"])
def test_class_tables_cover_every_class(dataset):
    names = get_classes(dataset).names
    table = FGTextTable(dataset, names)
    assert len(CLASS_ATTRIBUTES[dataset]) == len(names)
    sentences = table.class_sentences
    assert len(sentences) == len(names)
    # Each class sentence names its class: prototypes are distinct.
    assert len(set(sentences)) == len(names)
    for name, s in zip(names, sentences, strict=True):
        assert s.startswith(f"A micro-gesture of {name.lower()}: The ")


def test_csv_round_trip_and_blank_cells(tmp_path):
    rows = {
        "0001_0": FGAttributes("left hand", "left eye", "upward", "rubbing"),
        "0001_1": FGAttributes("head", "none", "downward", "sinking"),
    }
    path = write_fgtext_csv(tmp_path / "fg.csv", rows)
    read = read_fgtext_csv(path)
    assert {k: FGAttributes(**v) for k, v in read.items()} == rows
    # A blank cell keeps the class default.
    path.write_text(
        "sample_id,initiator,receiver,direction,motion_type\n0002_0,left hand,,,tapping\n"
    )
    table = FGTextTable("imigue", get_classes("imigue").names, read_fgtext_csv(path))
    got = table.attributes("0002_0", 6)  # class 6: rubbing eyes
    assert got == FGAttributes("left hand", "eyes", "upward", "tapping")
    assert table.attributes("unknown", 6) == CLASS_ATTRIBUTES["imigue"][6]
    assert table.sentence("0002_0", 6, flipped=True) == (
        "The right hand moves upward to the eyes with a tapping motion."
    )


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("sample,initiator,receiver,direction,motion_type\n", "header"),
        ("sample_id,initiator,receiver,direction,motion_type\na,b,c\n", "line 2: expected 5"),
        ("sample_id,initiator,receiver,direction,motion_type\n,b,c,d,e\n", "empty sample_id"),
        (
            "sample_id,initiator,receiver,direction,motion_type\na,b,c,d,e\na,b,c,d,e\n",
            "line 3: sample 'a' annotated twice",
        ),
    ],
)
def test_bad_annotation_files_name_file_and_line(tmp_path, text, match):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=match) as err:
        read_fgtext_csv(path)
    assert str(path) in str(err.value)


def test_missing_annotation_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.csv"):
        read_fgtext_csv(tmp_path / "nope.csv")


# ----------------------------------------------------------------------------- SynthMG
def test_synth_attributes_follow_the_generator():
    specs = GESTURES["imigue"]
    # class 6 rubbing eyes: the dominant hand rubs its own side's eye.
    assert synth_attributes(specs[6], "l") == FGAttributes(
        "left hand", "left eye", "upward", "rubbing"
    )
    # class 21 scratching arms: the right hand scratches the left upper arm.
    assert synth_attributes(specs[21], "r").receiver == "left upper arm"
    # class 16 folding arms: both hands, both elbows.
    assert synth_attributes(specs[16], "r") == FGAttributes(
        "both hands", "opposite elbows", "inward", "holding"
    )
    # MA-52 head turn: a positive yaw moves the nose to the person's left.
    turn = GESTURES["ma52"][8]
    assert synth_attributes(turn, "r", {"turn": 1.0}).direction == "to the left"
    assert synth_attributes(turn, "r", {"turn": -1.0}).direction == "to the right"
    for table in GESTURES.values():  # every spec has attributes
        for spec in table:
            synth_attributes(spec, "r", {})


def _check_release(root: Path, dm) -> None:
    rows = read_fgtext_csv(root / "fgtext.csv")
    ids = {r.sample_id: r for split in ("train", "val", "test") for r in dm._get_records(split)}
    assert set(ids) == set(rows), "fgtext.csv must name exactly the release's samples"
    specs = GESTURES[dm.dataset]
    for sid, attrs in rows.items():
        spec = specs[ids[sid].label]
        if spec.part == "hand":  # the side of a one-handed gesture is the subject's hand
            assert attrs["initiator"] in ("right hand", "left hand")
        elif spec.part == "hands":
            assert attrs["initiator"] == "both hands"


def test_synthmg_writes_fgtext_for_every_layout(synth_imigue, synth_smg, synth_ma52):
    _check_release(synth_imigue, IMiGUEDataModule(synth_imigue))
    _check_release(synth_smg, SMGDataModule(synth_smg, **SMG_SUBJECTS))
    _check_release(synth_ma52, MA52DataModule(synth_ma52))


# ----------------------------------------------------------------------------- batches
def test_datamodule_puts_fg_text_in_batches(synth_imigue):
    dm = IMiGUEDataModule(synth_imigue, fg_text=True, clip_len=8, batch_size=4)
    assert {"fg_text", "class_text"} <= set(dm.supplies)
    dm.setup("fit")
    rows = read_fgtext_csv(synth_imigue / "fgtext.csv")
    batch = next(iter(dm.val_dataloader()))
    table = dm.fgtext
    for sid, label, text, ctext in zip(
        batch["sample_id"],
        batch["label"].tolist(),
        batch["fg_text"],
        batch["class_text"],
        strict=True,
    ):
        assert text == compose_sentence(FGAttributes(**rows[sid]))
        assert ctext == table.class_sentence(label)
    assert len(dm.class_texts) == dm.num_classes


def test_flipped_training_clips_get_mirrored_text(synth_imigue):
    dm = IMiGUEDataModule(synth_imigue, fg_text=True, clip_len=8, batch_size=64, flip_prob=1.0)
    dm.setup("fit")
    rows = read_fgtext_csv(synth_imigue / "fgtext.csv")
    batch = next(iter(dm.train_dataloader()))
    sided = 0
    for sid, text in zip(batch["sample_id"], batch["fg_text"], strict=True):
        attrs = FGAttributes(**rows[sid])
        assert text == compose_sentence(attrs.flipped())
        sided += attrs.flipped() != attrs
    assert sided > 0, "the release should have one-handed clips"


def test_video_batches_carry_fg_text(synth_imigue_rgb):
    dm = IMiGUEDataModule(
        synth_imigue_rgb,
        modalities=["video"],
        fg_text=True,
        clip_len=4,
        batch_size=2,
        flip_prob=1.0,
    )
    dm.setup("fit")
    rows = read_fgtext_csv(synth_imigue_rgb / "fgtext.csv")
    batch = next(iter(dm.train_dataloader()))
    assert batch["video"].shape[:3] == (2, 3, 4)
    for sid, text in zip(batch["sample_id"], batch["fg_text"], strict=True):
        assert text == compose_sentence(FGAttributes(**rows[sid]).flipped())


def test_annotations_for_another_dataset_are_refused(synth_imigue, tmp_path):
    path = write_fgtext_csv(
        tmp_path / "other.csv", {"Sample00010": FGAttributes("head", "none", "upward", "raising")}
    )
    dm = IMiGUEDataModule(synth_imigue, fg_text=True, fg_text_file=path, clip_len=8)
    with pytest.raises(ValueError, match="name none of the"):
        dm.setup("fit")


def test_table_rejects_wrong_class_count():
    with pytest.raises(ValueError, match="FG-Text class entries"):
        FGTextTable("smg", ["a", "b"])
    with pytest.raises(ValueError, match="no FG-Text class table"):
        FGTextTable("kinetics", ["a"])


def test_record_sample_ids_are_what_the_table_keys(synth_smg):
    # Annotation keys are the readers' sample ids (SMG: "Sample%04d" + k, no separator).
    dm = SMGDataModule(synth_smg, **SMG_SUBJECTS)
    rec: ClipRecord = dm._get_records("train")[0]
    rows = read_fgtext_csv(synth_smg / "fgtext.csv")
    assert rec.sample_id in rows and rec.sample_id.startswith("Sample")
