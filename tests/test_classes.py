from __future__ import annotations

import numpy as np
import pytest

from mgr.classes import (
    IMIGUE,
    MA52,
    SMG,
    ClassList,
    get_classes,
    imigue_label_from_raw,
    imigue_label_to_raw,
    ma52_fine_to_coarse,
    smg_label_from_raw,
    smg_label_to_raw,
)

# iMiGUE paper Fig. 2a (datasets.md §2.1): 1-based C-ids per body-part group.
IMIGUE_GROUPS_C = {
    "Body": [20, 21, 31],
    "Head": [1, 2, 28, 29],
    "Hand": [22, 23, 24, 25, 26, 27, 30],
    "Body-Hand": [12, 13, 14, 15, 16, 17, 18, 19],
    "Head-Hand": [3, 4, 5, 6, 7, 8, 9, 10, 11],
    "Non-MG": [32],
}


def ma52_rule(x: int) -> int:
    # official ma52_fine2coarse, datasets.md §3.1
    if x <= 4:
        return 0
    if x <= 10:
        return 1
    if x <= 23:
        return 2
    if x <= 31:
        return 3
    if x <= 37:
        return 4
    if x <= 47:
        return 5
    return 6


def test_counts() -> None:
    assert len(SMG) == 17
    assert len(IMIGUE) == 32
    assert len(MA52) == 52
    assert len(IMIGUE.group_of) == 32
    assert len(MA52.groups) == 7


def test_non_mg() -> None:
    assert SMG.non_mg == 16
    assert SMG.name(16) == "Illustrative hand gestures"
    assert SMG.group(16) == "Non-MG"
    assert IMIGUE.non_mg == 31
    assert IMIGUE.name(31) == "Illustrative body language"
    assert IMIGUE.group(31) == "Non-MG"
    assert MA52.non_mg is None


def test_imigue_groups_match_figure() -> None:
    assert set(IMIGUE.groups) == set(IMIGUE_GROUPS_C)
    for group, cids in IMIGUE_GROUPS_C.items():
        got = [c + 1 for c in range(len(IMIGUE)) if IMIGUE.group(c) == group]
        assert got == sorted(cids), group


def test_imigue_names_spot_checks() -> None:
    assert IMIGUE.name(0) == "Turtle neck"
    assert IMIGUE.name(13) == "Buckle button, pulling shirt collar, adjusting tie"
    assert IMIGUE.name(17) == "Dustoffing clothes"
    assert IMIGUE.name(20) == "Sitting straightly"
    assert IMIGUE.name(24) == "Minaret gesture"
    assert IMIGUE.name(30) == "Shaking shoulders"
    assert IMIGUE.label_of("Pressing lips") == 28


def test_smg_names_and_groups() -> None:
    assert SMG.name(0) == "Turtling neck and shoulder"
    assert SMG.name(7) == "Rubbing hands and crossing fingers"
    assert SMG.name(15) == "Playing with jewelry, and manipulating other objects"
    assert SMG.group(4) == "Leg" and SMG.group(9) == "Leg"  # moving / crossing legs
    assert SMG.group(2) == "Body-Hand"  # folding arms, as iMiGUE C17
    assert "UNCERTAIN" in SMG.annotation_note
    assert "our own annotation" in SMG.annotation_note
    assert SMG.groups[SMG.group_of[SMG.non_mg]] == "Non-MG"


def test_ma52_coarse_rule_and_sizes() -> None:
    for x in range(52):
        assert ma52_fine_to_coarse(x) == ma52_rule(x)
        assert MA52.group_of[x] == ma52_rule(x)
    sizes = np.bincount(MA52.coarse(np.arange(52)), minlength=7)
    assert sizes.tolist() == [5, 6, 13, 8, 6, 10, 4]
    assert MA52.groups == (
        "body", "head", "upper limb", "lower limb", "body-hand", "head-hand", "leg-hand",
    )  # fmt: skip
    with pytest.raises(ValueError, match="52"):
        ma52_fine_to_coarse(52)
    with pytest.raises(ValueError, match="-1"):
        ma52_fine_to_coarse(-1)


def test_ma52_names_spot_checks() -> None:
    assert MA52.name(0) == "shaking body"
    assert MA52.name(9) == "nodding"
    assert MA52.name(23) == "illustrative gestures"
    assert MA52.name(31) == "tiptoe"
    assert MA52.name(37) == "crossing arms"
    assert MA52.name(47) == "pushing glasses"
    assert MA52.name(51) == "scratching feet"
    assert MA52.group(36) == "body-hand"  # arms akimbo


def test_coarse_shapes_and_errors() -> None:
    labels = np.array([[0, 31], [20, 2]])
    out = IMIGUE.coarse(labels)
    assert out.shape == (2, 2) and out.dtype == np.int64
    assert out.tolist() == [[1, 5], [0, 4]]
    assert IMIGUE.coarse([]).shape == (0,)
    with pytest.raises(ValueError, match="32"):
        IMIGUE.coarse([0, 32])
    with pytest.raises(ValueError, match="-1"):
        IMIGUE.coarse([-1])
    with pytest.raises(ValueError, match="integers"):
        IMIGUE.coarse([0.5])


def test_name_and_label_errors() -> None:
    with pytest.raises(IndexError):
        SMG.name(17)
    with pytest.raises(IndexError):
        SMG.group(-1)
    with pytest.raises(KeyError, match="Folding arms"):
        SMG.label_of("folding arms")


def test_get_classes() -> None:
    assert get_classes("smg") is SMG
    assert get_classes("imigue") is IMIGUE
    assert get_classes("ma52") is MA52
    with pytest.raises(KeyError, match="imigue"):
        get_classes("ntu")


def test_imigue_raw_round_trip() -> None:
    for raw in [*range(1, 32), 99]:
        label = imigue_label_from_raw(raw)
        assert 0 <= label < 32
        assert imigue_label_to_raw(label) == raw
    assert imigue_label_from_raw(99) == 31
    assert imigue_label_from_raw(1) == 0
    assert imigue_label_from_raw(np.int64(31)) == 30
    assert imigue_label_from_raw(5.0) == 4
    assert sorted(imigue_label_from_raw(r) for r in [*range(1, 32), 99]) == list(range(32))


@pytest.mark.parametrize("raw", [0, 32, 98, 100, -1, 2.5])
def test_imigue_raw_errors(raw) -> None:
    with pytest.raises(ValueError, match=str(raw)):
        imigue_label_from_raw(raw)


@pytest.mark.parametrize("label", [-1, 32, 99])
def test_imigue_to_raw_errors(label: int) -> None:
    with pytest.raises(ValueError, match=str(label)):
        imigue_label_to_raw(label)


def test_smg_raw_round_trip() -> None:
    for raw in range(1, 18):
        assert smg_label_to_raw(smg_label_from_raw(raw)) == raw
    assert smg_label_from_raw(17) == SMG.non_mg
    assert smg_label_from_raw(1) == 0


@pytest.mark.parametrize("raw", [0, 18, 99, -3])
def test_smg_raw_errors(raw: int) -> None:
    with pytest.raises(ValueError, match=str(raw)):
        smg_label_from_raw(raw)


@pytest.mark.parametrize("label", [-1, 17, 99])
def test_smg_to_raw_errors(label: int) -> None:
    with pytest.raises(ValueError, match=str(label)):
        smg_label_to_raw(label)


def test_classlist_validation() -> None:
    with pytest.raises(ValueError, match="group ids"):
        ClassList("x", ("a", "b"), ("g",), (0,), None)
    with pytest.raises(ValueError, match="out of range"):
        ClassList("x", ("a", "b"), ("g",), (0, 1), None)
    with pytest.raises(ValueError, match="non_mg"):
        ClassList("x", ("a", "b"), ("g",), (0, 0), 2)
    with pytest.raises(ValueError, match="duplicate"):
        ClassList("x", ("a", "a"), ("g",), (0, 0), None)
