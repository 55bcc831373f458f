"""Class lists of the micro-gesture datasets (SMG, iMiGUE, MA-52).

Labels are 0-based everywhere in ``mgr``. The release files use other ids; the
``*_label_from_raw`` / ``*_label_to_raw`` helpers convert at the reader boundary:

* SMG ``_finelabels.csv``: 1..17, 17 is the non-micro-gesture class.
* iMiGUE ``_label.csv``: 1..31 for micro-gestures and 99 for the non-MG class
  (C32), which the official MiGA access code maps to 32 before subtracting 1.
* MA-52 list files already use the 0-based ids of ``label_name.txt``.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "IMIGUE",
    "MA52",
    "SMG",
    "ClassList",
    "get_classes",
    "imigue_label_from_raw",
    "imigue_label_to_raw",
    "ma52_fine_to_coarse",
    "smg_label_from_raw",
    "smg_label_to_raw",
]


@dataclass(frozen=True)
class ClassList:
    """The classes of one dataset and their body-part (coarse) groups.

    Attributes:
        dataset: dataset key, ``"smg"``, ``"imigue"`` or ``"ma52"``.
        names: class names; the position is the 0-based label.
        groups: body-part group names; the position is the coarse id.
        group_of: coarse id of every 0-based class id.
        non_mg: 0-based id of the non-micro-gesture class, ``None`` if the
            dataset has none.
        annotation_note: where the names and groups come from, and which parts
            are our own annotation.
    """

    dataset: str
    names: tuple[str, ...]
    groups: tuple[str, ...]
    group_of: tuple[int, ...]
    non_mg: int | None
    annotation_note: str = ""

    def __post_init__(self) -> None:
        where = f"class list {self.dataset!r}"
        if len(self.group_of) != len(self.names):
            raise ValueError(
                f"{where}: {len(self.group_of)} group ids for {len(self.names)} classes"
            )
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"{where} has duplicate class names")
        bad = [g for g in self.group_of if not 0 <= g < len(self.groups)]
        if bad:
            raise ValueError(f"{where}: group ids {bad} out of range for {len(self.groups)}")
        if self.non_mg is not None and not 0 <= self.non_mg < len(self.names):
            raise ValueError(f"{where}: non_mg {self.non_mg} out of range")

    def __len__(self) -> int:
        return len(self.names)

    def _check(self, label: int) -> int:
        label = operator.index(label)
        # No negative indexing: a -1 label is a bug upstream, not the last class.
        if not 0 <= label < len(self.names):
            raise IndexError(
                f"label {label} out of range for {self.dataset!r} ({len(self.names)} classes)"
            )
        return label

    def name(self, label: int) -> str:
        """Return the name of a 0-based label.

        Raises:
            IndexError: if the label is out of range.
        """
        return self.names[self._check(label)]

    def group(self, label: int) -> str:
        """Return the body-part group name of a 0-based label.

        Raises:
            IndexError: if the label is out of range.
        """
        return self.groups[self.group_of[self._check(label)]]

    def label_of(self, name: str) -> int:
        """Return the 0-based label of a class name (exact match).

        Raises:
            KeyError: if the name is unknown; the message lists the valid names.
        """
        try:
            return self.names.index(name)
        except ValueError:
            raise KeyError(
                f"{self.dataset!r} has no class {name!r}; valid names: {list(self.names)}"
            ) from None

    def coarse(self, labels: Sequence[int] | np.ndarray) -> np.ndarray:
        """Map fine 0-based labels to coarse (body-part group) ids.

        Args:
            labels: integer labels of any shape.

        Returns:
            int64 array of the same shape.

        Raises:
            ValueError: if a label is not an integer in range.
        """
        arr = np.asarray(labels)
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"labels must be integers, got dtype {arr.dtype}")
        arr = arr.astype(np.int64)
        bad = arr[(arr < 0) | (arr >= len(self.names))]
        if bad.size:
            raise ValueError(
                f"labels {sorted(set(bad.tolist()))} out of range for {self.dataset!r} "
                f"({len(self.names)} classes)"
            )
        return np.asarray(self.group_of, dtype=np.int64)[arr]


def _groups_from_members(
    groups: Sequence[str], members: dict[str, Sequence[int]], num: int, base: int
) -> tuple[int, ...]:
    """Invert ``{group: [class ids]}`` into a per-class group id, checking it is a partition."""
    group_of: list[int | None] = [None] * num
    for gid, group in enumerate(groups):
        for cid in members[group]:
            if group_of[cid - base] is not None:
                raise ValueError(f"class {cid} is in two groups")
            group_of[cid - base] = gid
    missing = [i + base for i, g in enumerate(group_of) if g is None]
    if missing:
        raise ValueError(f"classes {missing} have no group")
    return tuple(g for g in group_of if g is not None)


# ---------------------------------------------------------------------------
# SMG (Chen et al., IJCV 2023): 16 micro-gestures + non-MG, raw ids 1..17.
# ---------------------------------------------------------------------------
_SMG_NAMES = (
    "Turtling neck and shoulder",
    "Rubbing eyes and forehead",
    "Folding arms",
    "Touching or covering suprasternal notch",
    "Moving legs",
    "Touching or scratching neck",
    "Folding arms behind body",
    "Rubbing hands and crossing fingers",
    "Arms akimbo",
    "Crossing legs",
    "Scratching some part of body",
    "Scratching or touching facial parts other than eyes",
    "Playing or adjusting hair",
    "Holding arms",
    "Pulling shirt collar",
    "Playing with jewelry, and manipulating other objects",
    "Illustrative hand gestures",
)
_SMG_GROUPS = ("Head", "Head-Hand", "Body-Hand", "Hand", "Leg", "Non-MG")
# Ours, by analogy with iMiGUE's Fig. 2a where a class exists there
# (turtle neck -> Head, folding arms / collar -> Body-Hand, arms akimbo /
# objects -> Hand). Hair goes to Head-Hand by anatomy, as in MA-52, although
# iMiGUE files "Playing or adjusting hair" under Body-Hand.
_SMG_MEMBERS = {  # 0-based labels
    "Head": (0,),
    "Head-Hand": (1, 11, 12),
    "Body-Hand": (2, 3, 5, 6, 10, 14),
    "Hand": (7, 8, 13, 15),
    "Leg": (4, 9),
    "Non-MG": (16,),
}

SMG = ClassList(
    dataset="smg",
    names=_SMG_NAMES,
    groups=_SMG_GROUPS,
    group_of=_groups_from_members(_SMG_GROUPS, _SMG_MEMBERS, len(_SMG_NAMES), base=0),
    non_mg=16,
    annotation_note=(
        "UNCERTAIN names: the class count (16 micro-gestures + non-MG, raw ids 1..17) is "
        "from the official SMG repository, but the names come from a third-party MiGA "
        "participant (gutzcha/human_micro_gesture_classifier, miga/const.py), not an "
        "official file. The body-part groups are our own annotation; SMG publishes none."
    ),
)

# ---------------------------------------------------------------------------
# iMiGUE (Liu et al., CVPR 2021): 31 micro-gestures + non-MG (C32).
# ---------------------------------------------------------------------------
_IMIGUE_NAMES = (
    "Turtle neck",
    "Bulging face, deep breath",
    "Touching hat",
    "Touching or scratching head",
    "Touching or scratching forehead",
    "Covering face",
    "Rubbing eyes",
    "Touching or scratching facial parts",
    "Touching ears",
    "Biting nails",
    "Touching jaw",
    "Touching or scratching neck",
    "Playing or adjusting hair",
    "Buckle button, pulling shirt collar, adjusting tie",
    "Touching or covering suprasternal notch",
    "Scratching back",
    "Folding arms",
    "Dustoffing clothes",
    "Putting arms behind body",
    "Moving torso",
    "Sitting straightly",
    "Scratching or touching arms",
    "Rubbing or holding hands",
    "Crossing fingers",
    "Minaret gesture",
    "Playing or manipulating objects",
    "Hold back arms",
    "Head up",
    "Pressing lips",
    "Arms akimbo",
    "Shaking shoulders",
    "Illustrative body language",
)
_IMIGUE_NON_MG = 31  # C32
_IMIGUE_RAW_NON_MG = 99  # how the MiGA label csv files write C32
_IMIGUE_GROUPS = ("Body", "Head", "Hand", "Body-Hand", "Head-Hand", "Non-MG")
_IMIGUE_MEMBERS = {  # 1-based C-ids, as printed in the paper's Fig. 2a
    "Body": (20, 21, 31),
    "Head": (1, 2, 28, 29),
    "Hand": (22, 23, 24, 25, 26, 27, 30),
    "Body-Hand": (12, 13, 14, 15, 16, 17, 18, 19),
    "Head-Hand": (3, 4, 5, 6, 7, 8, 9, 10, 11),
    "Non-MG": (32,),
}

IMIGUE = ClassList(
    dataset="imigue",
    names=_IMIGUE_NAMES,
    groups=_IMIGUE_GROUPS,
    group_of=_groups_from_members(_IMIGUE_GROUPS, _IMIGUE_MEMBERS, len(_IMIGUE_NAMES), base=1),
    non_mg=_IMIGUE_NON_MG,
    annotation_note=(
        "Names, order and body-part groups from the official iMiGUE repository "
        "(linuxsino/iMiGUE pictures/Fig2.png, paper Fig. 2a); label = C-id - 1. "
        "Printed typos 'Siting' and 'botton' are corrected; 'Dustoffing' is kept as "
        "printed. C32 is the non-MG class ('Illustrative BLs'), raw id 99 in MiGA csv files."
    ),
)

# ---------------------------------------------------------------------------
# MA-52 (Guo et al., TCSVT 2024): 52 actions in 7 body-part groups.
# ---------------------------------------------------------------------------
_MA52_NAMES = (
    "shaking body", "sitting straightly", "shrugging", "turning around", "rising up",
    "bowing head", "head up", "tilting head", "turning head", "nodding", "shaking head",
    "scratching arms", "playing objects", "putting hands together", "rubbing hands",
    "pointing oneself", "clenching fist", "stretching arms", "retracting arms", "waving",
    "spreading hands", "hands touching fingers", "other finger movements",
    "illustrative gestures",
    "shaking legs", "curling legs", "spread legs", "closing legs", "crossing legs",
    "stretching feet", "retracting feet", "tiptoe",
    "scratching or touching neck", "scratching or touching chest",
    "scratching or touching back", "scratching or touching shoulder", "arms akimbo",
    "crossing arms",
    "playing or tidying hair", "scratching or touching hindbrain",
    "scratching or touching forehead", "scratching or touching face", "rubbing eyes",
    "touching nose", "touching ears", "covering face", "covering mouth", "pushing glasses",
    "patting legs", "touching legs", "scratching legs", "scratching feet",
)  # fmt: skip
_MA52_GROUPS = ("body", "head", "upper limb", "lower limb", "body-hand", "head-hand", "leg-hand")
# Last fine id of each coarse group: the official label file lists the classes
# grouped by body part, so the map is piecewise constant.
_MA52_GROUP_ENDS = (4, 10, 23, 31, 37, 47, 51)


def ma52_fine_to_coarse(label: int) -> int:
    """Map an MA-52 action id (0..51) to its body-part id (0..6).

    Same rule as the official evaluation script (``ma52_fine2coarse``).

    Raises:
        ValueError: if the label is not in 0..51.
    """
    label = operator.index(label)
    if not 0 <= label <= _MA52_GROUP_ENDS[-1]:
        raise ValueError(f"MA-52 label must be in 0..51, got {label}")
    return next(g for g, end in enumerate(_MA52_GROUP_ENDS) if label <= end)


MA52 = ClassList(
    dataset="ma52",
    names=_MA52_NAMES,
    groups=_MA52_GROUPS,
    group_of=tuple(ma52_fine_to_coarse(i) for i in range(len(_MA52_NAMES))),
    non_mg=None,
    annotation_note=(
        "Names and ids from the official label_name.txt (VUT-HFUT/Micro-Action); "
        "body-part groups from the official ma52_fine2coarse rule. The annotation "
        "manual's letter codes (A1..G4) use a different within-group order."
    ),
)

_CLASS_LISTS = {c.dataset: c for c in (SMG, IMIGUE, MA52)}


def get_classes(dataset: str) -> ClassList:
    """Return the class list of a dataset.

    Args:
        dataset: ``"smg"``, ``"imigue"`` or ``"ma52"``.

    Raises:
        KeyError: if the dataset is unknown; the message lists the valid names.
    """
    try:
        return _CLASS_LISTS[dataset]
    except KeyError:
        raise KeyError(
            f"unknown dataset {dataset!r}; valid names: {sorted(_CLASS_LISTS)}"
        ) from None


def _as_int(value: object, what: str) -> int:
    """Return ``value`` as an int; integral floats (e.g. from a float csv) are accepted."""
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        if isinstance(value, float | np.floating) and float(value).is_integer():
            return int(value)
        raise ValueError(f"{what} must be an integer, got {value!r}") from None


def imigue_label_from_raw(raw: int) -> int:
    """Convert an iMiGUE release class id (1..31, or 99 for non-MG) to a 0-based label.

    Raises:
        ValueError: for any other value; the message names it.
    """
    value = _as_int(raw, "iMiGUE raw label")
    if value == _IMIGUE_RAW_NON_MG:
        return _IMIGUE_NON_MG
    if 1 <= value <= 31:
        return value - 1
    raise ValueError(f"iMiGUE raw label must be 1..31 or 99, got {raw!r}")


def imigue_label_to_raw(label: int) -> int:
    """Convert a 0-based iMiGUE label back to the release id (inverse of the above).

    Raises:
        ValueError: if the label is not in 0..31.
    """
    value = _as_int(label, "iMiGUE label")
    if value == _IMIGUE_NON_MG:
        return _IMIGUE_RAW_NON_MG
    if 0 <= value < 31:
        return value + 1
    raise ValueError(f"iMiGUE label must be in 0..31, got {label!r}")


def smg_label_from_raw(raw: int) -> int:
    """Convert an SMG release class id (1..17) to a 0-based label.

    Raises:
        ValueError: for any other value; the message names it.
    """
    value = _as_int(raw, "SMG raw label")
    if 1 <= value <= len(SMG):
        return value - 1
    raise ValueError(f"SMG raw label must be 1..{len(SMG)}, got {raw!r}")


def smg_label_to_raw(label: int) -> int:
    """Convert a 0-based SMG label back to the release id (1..17).

    Raises:
        ValueError: if the label is not in 0..16.
    """
    value = _as_int(label, "SMG label")
    if 0 <= value < len(SMG):
        return value + 1
    raise ValueError(f"SMG label must be in 0..{len(SMG) - 1}, got {label!r}")
