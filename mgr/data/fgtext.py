"""FG-Text: fine-grained attribute descriptions of micro-gestures (FG-SGL §III-B).

FG-SGL describes each clip by four attributes, composed into one sentence that
its fine-grained alignment loss (FG-SA) pulls the clip's mid-level visual
feature towards:

* **initiator**: the body part that starts the motion (``"right hand"``),
* **receiver**: the body part or object it acts on (``"neck"``; ``"none"``
  when the motion acts on nothing, e.g. swaying the torso),
* **direction**: the main direction of the movement (``"upward"``),
* **motion type**: the motion pattern (``"scratching"``).

The paper's per-clip annotations are not public. mgr ships **class-level
attribute tables** for SMG (17), iMiGUE (32) and MA-52 (52 classes), written by
us from the class names (our annotation, not the paper's), and reads per-sample
annotations from a CSV file ``sample_id,initiator,receiver,direction,motion_type``
that override them (blank cells keep the class default). SynthMG writes such a
file (``fgtext.csv``) with the true attributes of every clip: its generator
knows which hand moved, where to and how.

Sentence template (ours; the paper does not publish one)::

    The {initiator} move(s) {direction} to the {receiver} with a {motion_type} motion.

without ``to the {receiver}`` when the receiver is ``"none"``. The class-level
text (CP-A prototypes and the "class-level text" ablation of Table III) is
``"A micro-gesture of {class name}: "`` + the sentence of the class's default
attributes.

A horizontal flip of the clip swaps the sides the sentence names
(:meth:`FGAttributes.flipped`), so a flipped training clip keeps a true
description.
"""

from __future__ import annotations

import csv
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path

__all__ = [
    "CLASS_ATTRIBUTES",
    "FGAttributes",
    "FGTextTable",
    "class_sentence",
    "compose_sentence",
    "read_fgtext_csv",
    "write_fgtext_csv",
]

log = logging.getLogger(__name__)

FIELDS = ("initiator", "receiver", "direction", "motion_type")
_SIDE = re.compile(r"\b(left|right)\b")


@dataclass(frozen=True)
class FGAttributes:
    """The four FG-Text attributes of one clip or class."""

    initiator: str
    receiver: str
    direction: str
    motion_type: str

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"FG-Text attribute {f.name!r} must be a non-empty string")

    def flipped(self) -> FGAttributes:
        """The attributes of the horizontally mirrored clip (left and right swapped)."""

        def swap(text: str) -> str:
            return _SIDE.sub(lambda m: "right" if m.group(1) == "left" else "left", text)

        return FGAttributes(*(swap(getattr(self, f)) for f in FIELDS))


def compose_sentence(attrs: FGAttributes) -> str:
    """One natural-language sentence from the four attributes (see the module docstring).

    Example:
        >>> compose_sentence(FGAttributes("right hand", "neck", "upward", "scratching"))
        'The right hand moves upward to the neck with a scratching motion.'
    """
    initiator = attrs.initiator.strip()
    # Plural initiators ("both hands", "shoulders", "legs") take "move".
    verb = "move" if initiator.split()[-1].endswith("s") else "moves"
    target = "" if attrs.receiver.strip() == "none" else f" to the {attrs.receiver.strip()}"
    return (
        f"The {initiator} {verb} {attrs.direction.strip()}{target} "
        f"with a {attrs.motion_type.strip()} motion."
    )


def class_sentence(name: str, attrs: FGAttributes) -> str:
    """The class-level description: class name + the sentence of the class defaults."""
    return f"A micro-gesture of {name.strip().lower()}: {compose_sentence(attrs)}"


def _table(rows: Sequence[tuple[str, str, str, str]]) -> tuple[FGAttributes, ...]:
    return tuple(FGAttributes(*row) for row in rows)


# Class-level defaults (our annotation, from the class names), in mgr.classes order.
# The initiator names no side: the side varies from clip to clip.
CLASS_ATTRIBUTES: dict[str, tuple[FGAttributes, ...]] = {
    "smg": _table(
        [
            ("head", "shoulders", "downward", "sinking"),  # 0 turtling neck and shoulder
            ("hand", "eyes", "upward", "rubbing"),  # 1 rubbing eyes and forehead
            ("both hands", "opposite elbows", "inward", "folding"),  # 2 folding arms
            ("hand", "suprasternal notch", "upward", "touching"),  # 3 notch
            ("legs", "none", "sideways", "shaking"),  # 4 moving legs
            ("hand", "neck", "upward", "scratching"),  # 5 neck
            ("both hands", "back", "backward", "folding"),  # 6 folding arms behind body
            ("both hands", "other hand", "inward", "rubbing"),  # 7 rubbing hands
            ("both hands", "hips", "outward", "holding"),  # 8 arms akimbo
            ("leg", "other knee", "upward", "crossing"),  # 9 crossing legs
            ("hand", "arm", "inward", "scratching"),  # 10 scratching some part of body
            ("hand", "cheek", "upward", "touching"),  # 11 facial parts other than eyes
            ("hand", "hair", "upward", "circling"),  # 12 playing or adjusting hair
            ("hand", "other arm", "inward", "holding"),  # 13 holding arms
            ("both hands", "shirt collar", "upward", "pulling"),  # 14 pulling collar
            ("fingers", "object", "in place", "fidgeting"),  # 15 playing with objects
            ("hands", "none", "outward", "gesturing"),  # 16 illustrative gestures
        ]
    ),
    "imigue": _table(
        [
            ("head", "shoulders", "downward", "sinking"),  # 0 turtle neck
            ("shoulders", "none", "upward", "breathing"),  # 1 bulging face, deep breath
            ("hand", "hat", "upward", "touching"),  # 2 touching hat
            ("hand", "side of the head", "upward", "scratching"),  # 3 head
            ("hand", "forehead", "upward", "scratching"),  # 4 forehead
            ("both hands", "face", "upward", "covering"),  # 5 covering face
            ("hand", "eyes", "upward", "rubbing"),  # 6 rubbing eyes
            ("hand", "face", "upward", "touching"),  # 7 facial parts
            ("hand", "ear", "upward", "touching"),  # 8 touching ears
            ("fingers", "mouth", "upward", "biting"),  # 9 biting nails
            ("hand", "jaw", "upward", "touching"),  # 10 touching jaw
            ("hand", "neck", "upward", "scratching"),  # 11 neck
            ("hand", "hair", "upward", "circling"),  # 12 hair
            ("both hands", "shirt collar", "upward", "pulling"),  # 13 collar, button, tie
            ("hand", "suprasternal notch", "upward", "touching"),  # 14 notch
            ("hand", "back", "backward", "scratching"),  # 15 scratching back
            ("both hands", "opposite elbows", "inward", "folding"),  # 16 folding arms
            ("hand", "other forearm", "sideways", "sweeping"),  # 17 dusting off clothes
            ("both hands", "back", "backward", "holding"),  # 18 arms behind body
            ("upper body", "none", "sideways", "swaying"),  # 19 moving torso
            ("upper body", "none", "upward", "straightening"),  # 20 sitting straightly
            ("hand", "other arm", "inward", "scratching"),  # 21 arms
            ("both hands", "other hand", "inward", "rubbing"),  # 22 rubbing or holding hands
            ("fingers", "other hand", "inward", "interlocking"),  # 23 crossing fingers
            ("fingertips", "other fingertips", "upward", "steepling"),  # 24 minaret
            ("fingers", "object", "in place", "fidgeting"),  # 25 objects
            ("both arms", "sides of the body", "downward", "holding"),  # 26 hold back arms
            ("head", "none", "upward", "raising"),  # 27 head up
            ("lips", "none", "inward", "pressing"),  # 28 pressing lips
            ("both hands", "hips", "outward", "holding"),  # 29 arms akimbo
            ("shoulders", "none", "up and down", "shaking"),  # 30 shaking shoulders
            ("hands", "none", "outward", "gesturing"),  # 31 illustrative body language
        ]
    ),
    "ma52": _table(
        [
            ("whole body", "none", "sideways", "shaking"),  # 0 shaking body
            ("upper body", "none", "upward", "straightening"),  # 1 sitting straightly
            ("shoulders", "none", "upward", "shrugging"),  # 2 shrugging
            ("upper body", "none", "sideways", "turning"),  # 3 turning around
            ("whole body", "none", "upward", "rising"),  # 4 rising up
            ("head", "none", "downward", "bowing"),  # 5 bowing head
            ("head", "none", "upward", "raising"),  # 6 head up
            ("head", "none", "sideways", "tilting"),  # 7 tilting head
            ("head", "none", "sideways", "turning"),  # 8 turning head
            ("head", "none", "up and down", "nodding"),  # 9 nodding
            ("head", "none", "left and right", "shaking"),  # 10 shaking head
            ("hand", "other arm", "inward", "scratching"),  # 11 scratching arms
            ("fingers", "object", "in place", "fidgeting"),  # 12 playing objects
            ("both hands", "other hand", "inward", "joining"),  # 13 putting hands together
            ("both hands", "other hand", "inward", "rubbing"),  # 14 rubbing hands
            ("hand", "chest", "inward", "pointing"),  # 15 pointing oneself
            ("fingers", "palm", "inward", "clenching"),  # 16 clenching fist
            ("both arms", "none", "forward", "stretching"),  # 17 stretching arms
            ("both arms", "sides of the body", "backward", "retracting"),  # 18 retracting arms
            ("hand", "none", "upward", "waving"),  # 19 waving
            ("both hands", "none", "outward", "spreading"),  # 20 spreading hands
            ("fingertips", "other fingertips", "upward", "touching"),  # 21 hands touching fingers
            ("fingers", "none", "in place", "fidgeting"),  # 22 other finger movements
            ("hands", "none", "outward", "gesturing"),  # 23 illustrative gestures
            ("legs", "none", "sideways", "shaking"),  # 24 shaking legs
            ("legs", "chair", "backward", "curling"),  # 25 curling legs
            ("legs", "none", "outward", "spreading"),  # 26 spread legs
            ("legs", "other leg", "inward", "closing"),  # 27 closing legs
            ("leg", "other knee", "upward", "crossing"),  # 28 crossing legs
            ("feet", "none", "forward", "stretching"),  # 29 stretching feet
            ("feet", "chair", "backward", "retracting"),  # 30 retracting feet
            ("heels", "none", "upward", "tiptoeing"),  # 31 tiptoe
            ("hand", "neck", "upward", "scratching"),  # 32 neck
            ("hand", "chest", "inward", "scratching"),  # 33 chest
            ("hand", "back", "backward", "scratching"),  # 34 back
            ("hand", "other shoulder", "upward", "scratching"),  # 35 shoulder
            ("both hands", "hips", "outward", "holding"),  # 36 arms akimbo
            ("both hands", "opposite elbows", "inward", "folding"),  # 37 crossing arms
            ("hand", "hair", "upward", "circling"),  # 38 hair
            ("hand", "back of the head", "upward", "scratching"),  # 39 hindbrain
            ("hand", "forehead", "upward", "scratching"),  # 40 forehead
            ("hand", "cheek", "upward", "scratching"),  # 41 face
            ("hand", "eyes", "upward", "rubbing"),  # 42 rubbing eyes
            ("hand", "nose", "upward", "tapping"),  # 43 touching nose
            ("hand", "ear", "upward", "touching"),  # 44 touching ears
            ("both hands", "face", "upward", "covering"),  # 45 covering face
            ("hand", "mouth", "upward", "covering"),  # 46 covering mouth
            ("hand", "glasses", "upward", "pushing"),  # 47 pushing glasses
            ("hand", "knee", "downward", "patting"),  # 48 patting legs
            ("hand", "knee", "downward", "touching"),  # 49 touching legs
            ("hand", "knee", "downward", "scratching"),  # 50 scratching legs
            ("hand", "shin", "downward", "scratching"),  # 51 scratching feet
        ]
    ),
}


def read_fgtext_csv(path: str | Path) -> dict[str, dict[str, str]]:
    """Read per-sample FG-Text annotations.

    The file has the header ``sample_id,initiator,receiver,direction,motion_type``;
    a blank cell keeps the class default for that attribute.

    Returns:
        ``sample_id -> {attribute: value}`` with the non-blank cells.

    Raises:
        FileNotFoundError: naming the file.
        ValueError: naming the file and line, for a wrong header, a row with
            another number of cells, an empty or duplicated sample id.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"FG-Text annotation file not found: {path}")
    out: dict[str, dict[str, str]] = {}
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = [h.strip() for h in next(reader, [])]
        if header != ["sample_id", *FIELDS]:
            raise ValueError(
                f"{path}: header must be 'sample_id,{','.join(FIELDS)}', got {','.join(header)!r}"
            )
        for line, row in enumerate(reader, start=2):
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) != 1 + len(FIELDS):
                raise ValueError(f"{path}, line {line}: expected 5 cells, got {len(row)}")
            sample = row[0].strip()
            if not sample:
                raise ValueError(f"{path}, line {line}: empty sample_id")
            if sample in out:
                raise ValueError(f"{path}, line {line}: sample {sample!r} annotated twice")
            out[sample] = {k: v.strip() for k, v in zip(FIELDS, row[1:], strict=True) if v.strip()}
    return out


def write_fgtext_csv(path: str | Path, rows: Mapping[str, FGAttributes]) -> Path:
    """Write per-sample annotations in the format :func:`read_fgtext_csv` reads."""
    path = Path(path)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["sample_id", *FIELDS])
        for sample, attrs in rows.items():
            writer.writerow([sample, *(getattr(attrs, k) for k in FIELDS)])
    return path


class FGTextTable:
    """The FG-Text of every sample of one dataset: class defaults + per-sample overrides.

    Args:
        dataset: ``"smg"``, ``"imigue"`` or ``"ma52"`` (selects the class table).
        class_names: the dataset's class names (for the class-level sentences).
        annotations: per-sample overrides, as :func:`read_fgtext_csv` returns.
    """

    def __init__(
        self,
        dataset: str,
        class_names: Sequence[str],
        annotations: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        if dataset not in CLASS_ATTRIBUTES:
            raise ValueError(f"no FG-Text class table for dataset {dataset!r}")
        self.defaults = CLASS_ATTRIBUTES[dataset]
        if len(class_names) != len(self.defaults):
            raise ValueError(
                f"{dataset}: {len(class_names)} class names but {len(self.defaults)} "
                "FG-Text class entries"
            )
        self.class_names = list(class_names)
        self.annotations = dict(annotations or {})

    def attributes(self, sample_id: str, label: int) -> FGAttributes:
        """The attributes of one sample: its annotation over its class defaults."""
        base = self.defaults[label]
        override = self.annotations.get(sample_id)
        return replace(base, **override) if override else base

    def sentence(self, sample_id: str, label: int, flipped: bool = False) -> str:
        """The FG-Text sentence of one sample (sides swapped for a flipped clip)."""
        attrs = self.attributes(sample_id, label)
        return compose_sentence(attrs.flipped() if flipped else attrs)

    def class_sentence(self, label: int) -> str:
        """The class-level sentence of one class."""
        return class_sentence(self.class_names[label], self.defaults[label])

    @property
    def class_sentences(self) -> list[str]:
        """``K`` class-level sentences, in label order (the CP-A prototypes)."""
        return [self.class_sentence(k) for k in range(len(self.defaults))]

    def coverage(self, sample_ids: Sequence[str]) -> int:
        """How many of ``sample_ids`` carry a per-sample annotation."""
        return sum(s in self.annotations for s in sample_ids)
