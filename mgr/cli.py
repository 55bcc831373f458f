"""The ``mgr`` command line.

``mgr fit|validate|test|predict --config experiments/<dataset>/<model>.yaml``
runs Lightning's CLI with any :class:`~mgr.models.base.Recognizer` as the model
and any :class:`~mgr.datamodules.base.MicroGestureDataModule` as the data
(subclass mode: ``class_path`` + ``init_args``); ``num_classes`` and the class
names are linked from the data to the model. Extra subcommands that are not
Lightning runs:

* ``mgr synth --layout imigue --out DIR --seed 0``: write a SynthMG release.
* ``mgr fuse --preds A B ... --out DIR``: late fusion of prediction sets (``mgr.fusion``).
* ``mgr pseudo-label --preds DIR --out FILE``: cross-modal pseudo-labels (``mgr.pseudo_label``).

``mgr predict ... --prediction_writer.out_dir DIR`` writes a prediction set
(``mgr.predictions``) and the split's challenge submission file.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from mgr.data.synthetic import SynthMGConfig, generate_synthmg
from mgr.datamodules.base import MicroGestureDataModule
from mgr.fusion import fuse_main
from mgr.models.base import Recognizer
from mgr.predictions import PredictionWriter
from mgr.pseudo_label import pseudo_label_main

__all__ = ["MgrCLI", "main"]


class MgrCLI(LightningCLI):
    """LightningCLI over every Recognizer and MicroGestureDataModule, with data -> model links."""

    def __init__(self, args: Sequence[str] | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("save_config_kwargs", {"overwrite": True})
        super().__init__(
            Recognizer,
            MicroGestureDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            args=list(args) if args is not None else None,
            auto_configure_optimizers=False,
            **kwargs,
        )

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        """Link the datamodule's class list into the model; add the prediction writer."""
        parser.link_arguments(
            "data.num_classes", "model.init_args.num_classes", apply_on="instantiate"
        )
        parser.link_arguments(
            "data.class_names", "model.init_args.class_names", apply_on="instantiate"
        )
        # `mgr predict ... --prediction_writer.out_dir DIR` writes a prediction set.
        parser.add_lightning_class_args(PredictionWriter, "prediction_writer")


def _synth(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(
        prog="mgr synth",
        description="Write a SynthMG release in the "
        "real on-disk layout of iMiGUE (MiGA'23 csv) or SMG.",
    )
    p.add_argument("--layout", choices=["imigue", "smg"], default="imigue")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--seed", type=int, default=0)
    d = SynthMGConfig()
    p.add_argument(
        "--subjects",
        type=int,
        nargs=3,
        default=None,
        metavar=("TRAIN", "VAL", "TEST"),
        help="subjects per split (disjoint); default 30 6 10 (iMiGUE), 30 5 5 (SMG)",
    )
    p.add_argument("--videos-per-subject", type=int, default=d.videos_per_subject)
    p.add_argument("--clips-per-video", type=int, default=d.clips_per_video)
    p.add_argument(
        "--difficulty",
        type=float,
        default=d.difficulty,
        help="0 (easy) .. 1 (hard): distinguishing motion vs noise",
    )
    a = p.parse_args(argv)
    subjects = tuple(a.subjects) if a.subjects else None
    out = generate_synthmg(
        a.out,
        layout=a.layout,
        seed=a.seed,
        subjects=subjects,
        videos_per_subject=a.videos_per_subject,
        clips_per_video=a.clips_per_video,
        difficulty=a.difficulty,
    )
    meta = json.loads((out / "synthmg.json").read_text())
    counts = {k: sum(v) for k, v in meta["class_counts"].items()}
    print(f"SynthMG ({a.layout} layout, seed {a.seed}) written to {out}: clips per split {counts}")
    return 0


_EXTRA = {"synth": _synth, "fuse": fuse_main, "pseudo-label": pseudo_label_main}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mgr`` console script and ``python -m mgr``."""
    from_sys = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in _EXTRA:
        return _EXTRA[argv[0]](argv[1:])
    if argv and argv[0] in ("-h", "--help"):
        print(
            "usage: mgr {fit,validate,test,predict} --config CONFIG.yaml [options]\n"
            "       mgr synth --layout {imigue,smg} --out DIR [--seed N]\n"
            "       mgr fuse --preds DIR [DIR ...] --out DIR\n"
            "       mgr pseudo-label --preds DIR --split test --alpha 0.65 --out FILE.json\n\n"
            "Lightning subcommands take every option of LightningCLI "
            "(`mgr fit --help`, `mgr fit --print_config`)."
        )
        return 0
    # LightningCLI reads sys.argv itself; passing it again makes it warn.
    MgrCLI(None if from_sys else argv)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
