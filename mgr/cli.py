"""The ``mgr`` command line.

``mgr fit|validate|test|predict --config experiments/<dataset>/<model>.yaml``
runs Lightning's CLI with any :class:`~mgr.models.base.Recognizer` (or the
:class:`~mgr.models.detector.OnlineDetector`) as the model and any
:class:`~mgr.datamodules.base.MicroGestureDataModule` (or
:class:`~mgr.datamodules.online.SMGOnlineDataModule`) as the data
(subclass mode: ``class_path`` + ``init_args``); ``num_classes`` and the class
names are linked from the data to the model. Extra subcommands that are not
Lightning runs:

* ``mgr synth --layout imigue --out DIR --seed 0 [--video]``: write a SynthMG release.
* ``mgr check --config CONFIG [overrides]``: read every clip of every split as training
  would and list every bad file (``mgr.check``); ``mgr fit --check_data true`` runs it first.
* ``mgr prepare --dataset imigue --root RAW --out CACHE``: parse a raw release once
  into a fast cache (``cache_dir`` of the DataModules), or, with
  ``--format posec3d``, into PoseC3D/pyskl pickles; ``--video`` also stores every
  clip's RGB frames small and quick to read (:func:`mgr.data.cache.write_video_cache`).
* ``mgr detect --ckpt DET.ckpt --input SampleXXXX --out preds.csv [--recognizer REC.ckpt]``:
  online detection in one untrimmed sequence (``mgr.detect``).
* ``mgr extract-features --ckpt REC.ckpt --data CONFIG.yaml --window 16 --stride 4 --out DIR``:
  a recognizer's features over sliding windows of every long sequence (``mgr.features``),
  the input of a detector trained with ``features_dir``.
* ``mgr pose VIDEO_OR_FOLDER --det DET.onnx --pose POSE.onnx --out DIR``: whole-body
  keypoints of the people in raw videos with mmpose's ONNX models
  (``mgr.data.pose_estimation``).
* ``mgr recognize VIDEO --ckpt REC.ckpt [--pose DIR] --out DIR``: a trained recognizer
  over sliding windows of a raw video: probabilities, timeline, annotated video
  (``mgr.recognize``); ``mgr detect --video VIDEO`` does the same for the online detector.
* ``mgr fuse --preds A B ... --out DIR``: late fusion of prediction sets (``mgr.fusion``).
* ``mgr pseudo-label --preds DIR --out FILE``: cross-modal pseudo-labels (``mgr.pseudo_label``).

``mgr predict ... --prediction_writer.out_dir DIR`` writes a prediction set
(``mgr.predictions``) and the split's challenge submission file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lightning.pytorch import LightningDataModule, LightningModule
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.utilities import rank_zero_info

import mgr.datamodules
import mgr.models  # noqa: F401
from mgr.callbacks import StepSeeding
from mgr.data.synthetic import SynthMGConfig, generate_synthmg
from mgr.distributed import check_trainer_setup, global_batch_size
from mgr.errors import UserError, debug_enabled
from mgr.fusion import fuse_main
from mgr.predictions import PredictionWriter
from mgr.pseudo_label import pseudo_label_main

__all__ = ["MgrCLI", "main"]


class MgrCLI(LightningCLI):
    """LightningCLI over mgr's modules and datamodules, with data -> model links.

    Any LightningModule / LightningDataModule subclass is accepted (recognizers,
    the online detector and their datamodules); both must expose
    ``num_classes`` and ``class_names``, which are linked from the data to the model.
    Every run gets :class:`~mgr.callbacks.StepSeeding` (a resumed fit draws what
    the uninterrupted one drew) and the ``prediction_writer`` callback.
    """

    def __init__(self, args: Sequence[str] | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("save_config_kwargs", {"overwrite": True})
        super().__init__(
            LightningModule,
            LightningDataModule,
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
        # Every training step reseeded from (seed, epoch, batch): resumed runs reproduce.
        parser.add_lightning_class_args(StepSeeding, "step_seeding")
        parser.add_argument(
            "--check_data",
            type=bool,
            default=False,
            help="before the run, read every clip of the splits it uses as `mgr check` does "
            "and stop with the table of bad files if any",
        )

    def before_instantiate_classes(self) -> None:
        """Refuse devices or a strategy this machine cannot run, before any process starts."""
        config = self.config.get(self.subcommand) if self.subcommand else self.config
        if config is not None and config.get("trainer") is not None:
            check_trainer_setup(config["trainer"])

    def before_fit(self) -> None:
        """Say how large the global batch is; ``--check_data``: check train and val first."""
        self._check_data_first(("train", "val"))
        batch = getattr(self.datamodule, "batch_size", None)
        if isinstance(batch, int):
            t = self.trainer
            total = global_batch_size(batch, t.num_devices, t.num_nodes, t.accumulate_grad_batches)
            rank_zero_info(
                f"global batch {total} = {t.num_nodes} node(s) x {t.num_devices} device(s) x "
                f"batch_size {batch} x accumulate_grad_batches {t.accumulate_grad_batches}"
            )

    def before_validate(self) -> None:
        """``--check_data``: check the validation split first."""
        self._check_data_first(("val",))

    def before_test(self) -> None:
        """``--check_data``: check the test split first."""
        self._check_data_first(("test",))

    def before_predict(self) -> None:
        """``--check_data``: check the predicted split first."""
        self._check_data_first((getattr(self.datamodule, "predict_split", "test"),))

    def _check_data_first(self, splits: Sequence[str]) -> None:
        config = self.config.get(self.subcommand) or self.config
        if not config.get("check_data"):
            return
        if os.environ.get("LOCAL_RANK", "0") != "0" or os.environ.get("NODE_RANK", "0") != "0":
            return  # DDP children re-run the command line; the launching process checked
        from mgr.check import check_data

        workers = max(1, getattr(self.datamodule, "num_workers", 0) or (os.cpu_count() or 1))
        progress = getattr(self.trainer, "progress_bar_callback", None) is not None
        report = check_data(self.datamodule, splits, workers=min(8, workers), progress=progress)
        print(report.format())
        if not report.ok:
            raise UserError(
                f"--check_data: {len(report.bad)} bad file(s) or clip(s) in "
                f"{', '.join(splits)} (table above); fix them, or set "
                "data.init_args.on_bad_sample: skip to train without them"
            )

    def _parse_ckpt_path(self) -> None:
        """Check ``--ckpt_path`` before Lightning reads it.

        Lightning unpickles it with PyTorch's weights-only unpickler, whose
        failure on a file that is not a checkpoint is a multi-paragraph message
        advising ``weights_only=False``: exactly wrong for an untrusted file.
        :func:`~mgr.models.checkpoints.check_lightning_checkpoint` fails first, in
        one line naming the file. ``--weights_only false`` (Lightning's switch)
        trusts the file: it is then unpickled fully.
        """
        from mgr.models.checkpoints import check_lightning_checkpoint

        sub = self.config.get("subcommand")
        path = self.config[sub].get("ckpt_path") if sub else None
        named = path in ("last", "best", "hpc", "registry") or str(path).startswith("registry:")
        if not path or named or "://" in str(path):  # resolved (or fetched) by Lightning
            return super()._parse_ckpt_path()
        if not Path(path).exists():
            raise UserError(f"--ckpt_path {path} does not exist")
        trust = self.config[sub].get("weights_only") is False
        ckpt = check_lightning_checkpoint(path, trust=trust)
        self._check_ckpt_model(path, ckpt, self.config[sub].get("model"))
        if not trust:
            return super()._parse_ckpt_path()
        # Lightning's own parsing reads the file weights-only; a trusted file is read
        # fully above. The model's saved settings join the config as Lightning does.
        hparams = dict(ckpt.get("hyper_parameters") or {})
        hparams.pop("_instantiator", None)
        if not hparams:
            return None
        if "_class_path" in hparams:
            hparams = {"class_path": hparams.pop("_class_path"), "dict_kwargs": hparams}
        self.config = self.parser.parse_object({sub: {"model": hparams}}, self.config)
        return None

    @staticmethod
    def _check_ckpt_model(path: str, ckpt: Any, model: Any) -> None:
        """Refuse a checkpoint of another model before Lightning merges its settings in.

        Lightning rebuilds the model from the checkpoint's recorded class and the
        config's arguments; for another recognizer that fails deep in jsonargparse.
        """
        from mgr.models.checkpoints import checkpoint_class_mismatch

        class_path = model.get("class_path") if model is not None else None
        if not isinstance(class_path, str) or "." not in class_path:
            return
        module, _, name = class_path.rpartition(".")
        try:
            import importlib

            cls = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            return
        problem = checkpoint_class_mismatch(ckpt, cls)
        if problem is not None:
            raise UserError(f"--ckpt_path {path}: {problem}")


def _synth(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(
        prog="mgr synth",
        description="Write a SynthMG release in the "
        "real on-disk layout of iMiGUE (MiGA'23 csv or MiGA'25 xlsx), SMG or MA-52 (video only).",
    )
    p.add_argument("--layout", choices=["imigue", "smg", "ma52"], default="imigue")
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
    p.add_argument(
        "--clip-frames", type=int, nargs=2, default=d.clip_frames, metavar=("MIN", "MAX")
    )
    p.add_argument(
        "--gap-frames",
        type=int,
        nargs=2,
        default=d.gap_frames,
        metavar=("MIN", "MAX"),
        help="unannotated frames between clips; long gaps (e.g. 30 150) give untrimmed "
        "sequences for online detection",
    )
    p.add_argument("--video", action="store_true", help="also render RGB videos")
    p.add_argument("--video-size", type=int, nargs=2, default=d.video_size, metavar=("H", "W"))
    p.add_argument(
        "--untrimmed-video",
        action="store_true",
        help="iMiGUE layout: also write each whole sequence as imigue_rgb_untrimmed/<vid>.mp4 "
        "(unlabelled footage for self-supervised pretraining)",
    )
    p.add_argument(
        "--image-size",
        type=int,
        nargs=2,
        default=d.image_size,
        metavar=("H", "W"),
        help="pixel space of the keypoints (iMiGUE MiGA'25: 720 1280; SMG: fixed 1080 1920); "
        "--video-size equal to it renders the videos at that real resolution",
    )
    p.add_argument(
        "--source",
        choices=["miga23", "miga25"],
        default=d.source,
        help="iMiGUE skeleton files: MiGA'23 _light_hand.csv or MiGA'25 _openpose.xlsx",
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
        clip_frames=tuple(a.clip_frames),
        gap_frames=tuple(a.gap_frames),
        video=a.video,
        video_size=tuple(a.video_size),
        untrimmed_video=a.untrimmed_video,
        image_size=tuple(a.image_size),
        source=a.source,
    )
    meta = json.loads((out / "synthmg.json").read_text())
    counts = {k: sum(v) for k, v in meta["class_counts"].items()}
    print(f"SynthMG ({a.layout} layout, seed {a.seed}) written to {out}: clips per split {counts}")
    return 0


def _prepare(argv: Sequence[str]) -> int:
    from mgr.data.readers.posec3d import records_to_annotations, write_posec3d_pickle
    from mgr.datamodules import IMiGUEDataModule, MA52DataModule, SMGDataModule

    p = argparse.ArgumentParser(
        prog="mgr prepare",
        description="Parse a raw release once: a cache for `cache_dir` (npz, default) "
        "or PoseC3D/pyskl pickles (one per split) for other toolkits.",
    )
    p.add_argument("--dataset", choices=["imigue", "smg", "ma52"], required=True)
    p.add_argument("--root", required=True, help="raw release folder")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--format", choices=["npz", "posec3d"], default="npz")
    p.add_argument("--splits", nargs="+", default=["train", "val", "test"])
    p.add_argument("--split-scheme", choices=["folders", "miga", "subjects"], default="folders")
    p.add_argument("--subject-map", default=None, help="iMiGUE Video_id,Sub_id csv/xlsx")
    p.add_argument("--source", choices=["miga23", "miga25"], default="miga23")
    p.add_argument("--smg-split", choices=["miga", "official"], default="miga")
    p.add_argument("--coords", choices=["world", "pixel"], default="world")
    p.add_argument("--on-bad-sample", choices=["raise", "skip"], default="raise")
    p.add_argument(
        "--video",
        action="store_true",
        help="also store every clip's RGB frames once, small and quick to read, under "
        "OUT/video/ (read in place of the raw videos by datamodules with cache_dir OUT)",
    )
    p.add_argument("--video-root", default=None, help="folder of the RGB clips (default: --root)")
    p.add_argument("--video-short-side", type=int, default=256)
    p.add_argument("--video-format", choices=["mp4", "npy"], default="mp4")
    p.add_argument("--video-gop", type=int, default=1, help="keyframe interval of mp4 clips")
    a = p.parse_args(argv)
    common = {"root": a.root, "on_bad_sample": a.on_bad_sample}
    if a.video:
        from mgr.data.datasets import VideoOptions

        common["modalities"] = ["video"]
        common["video"] = VideoOptions(root=a.video_root)
    if a.dataset == "imigue":
        dm = IMiGUEDataModule(
            split_scheme=a.split_scheme, subject_map=a.subject_map, source=a.source, **common
        )
    elif a.dataset == "smg":
        dm = SMGDataModule(split=a.smg_split, coords=a.coords, **common)
    else:
        dm = MA52DataModule(**common)
    if a.format == "npz":
        out = dm.write_cache(a.out, a.splits)
        print(f"cache of {a.dataset} ({', '.join(a.splits)}) written to {out}")
        if a.video:
            _prepare_video(dm, a)
        return 0
    if dm.image_size is None:
        p.error(f"--format posec3d needs pixel keypoints ({a.dataset}: use --coords pixel)")
    score = dm.channels.index("confidence") if "confidence" in dm.channels else None
    from pathlib import Path

    Path(a.out).mkdir(parents=True, exist_ok=True)
    for split in a.splits:
        records = dm._get_records(split)
        annotations = records_to_annotations(records, image_size=dm.image_size, score_channel=score)
        path = Path(a.out) / f"{a.dataset}_{split}.pkl"
        write_posec3d_pickle(path, annotations, splits={split: [r.sample_id for r in records]})
        print(f"{split}: {len(records)} clips -> {path}")
    return 0


def _prepare_video(dm: Any, a: argparse.Namespace) -> None:
    from mgr.data.cache import VideoCacheOptions, write_video_cache

    try:
        options = VideoCacheOptions(
            short_side=a.video_short_side, format=a.video_format, gop=a.video_gop
        )
    except ValueError as err:
        raise UserError(f"mgr prepare --video: {err}") from err
    for split in a.splits:
        try:
            records = dm._get_records(split)
        except FileNotFoundError as err:
            print(f"{split}: no videos prepared ({err})")
            continue
        written, skipped = write_video_cache(a.out, records, options, progress=True)
        print(f"{split}: {written} clips prepared, {skipped} already there -> {a.out}/video")


def _detect(argv: Sequence[str]) -> int:
    from mgr.detect import detect_main

    return detect_main(argv)


def _check(argv: Sequence[str]) -> int:
    from mgr.check import check_main

    return check_main(argv, MgrCLI)


def _extract_features(argv: Sequence[str]) -> int:
    from mgr.features import extract_features_main

    return extract_features_main(argv)


def _pose(argv: Sequence[str]) -> int:
    from mgr.data.pose_estimation.run import pose_main

    return pose_main(argv)


def _recognize(argv: Sequence[str]) -> int:
    from mgr.recognize import recognize_main

    return recognize_main(argv)


_EXTRA = {
    "check": _check,
    "synth": _synth,
    "detect": _detect,
    "extract-features": _extract_features,
    "pose": _pose,
    "recognize": _recognize,
    "prepare": _prepare,
    "fuse": fuse_main,
    "pseudo-label": pseudo_label_main,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mgr`` console script and ``python -m mgr``.

    A :class:`~mgr.errors.UserError` ends the program with its one-line message on
    stderr and exit status 2; ``MGR_DEBUG=1`` or ``-v`` (anywhere in the arguments)
    shows the traceback instead.
    """
    from_sys = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = "-v" in argv
    if verbose:
        argv.remove("-v")
        os.environ["MGR_DEBUG"] = "1"  # DDP children re-run the command line: keep it set
        if from_sys:
            sys.argv = [sys.argv[0], *argv]
    try:
        return _run(argv, from_sys)
    except UserError as err:
        if verbose or debug_enabled():
            raise
        print(f"mgr: error: {_one_line(err)}", file=sys.stderr)
        return 2


def _one_line(err: BaseException) -> str:
    """The error's message on one line.

    An error raised in a DataLoader worker comes back as ``Caught X in DataLoader
    worker process N.`` followed by the worker's traceback, whose last line is
    ``module.X: message``: that message is the one line.
    """
    lines = [line for line in str(err).strip().splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].startswith("Caught ") and ": " in lines[-1]:
        return lines[-1].split(": ", 1)[1].strip()
    return " ".join(line.strip() for line in lines)


def _run(argv: list[str], from_sys: bool) -> int:
    if argv and argv[0] in _EXTRA:
        return _EXTRA[argv[0]](argv[1:])
    if argv and argv[0] in ("-h", "--help"):
        print(
            "usage: mgr {fit,validate,test,predict} --config CONFIG.yaml [options]\n"
            "       mgr synth --layout {imigue,smg,ma52} --out DIR [--seed N] [--video]\n"
            "       mgr prepare --dataset {imigue,smg,ma52} --root RAW --out CACHE\n"
            "       mgr check --config CONFIG.yaml [overrides]   (read every clip first)\n"
            "       mgr detect --ckpt DET.ckpt --input SampleXXXX --out preds.csv "
            "[--recognizer REC.ckpt]\n"
            "       mgr extract-features --ckpt REC.ckpt --data CONFIG.yaml --window 16 "
            "--stride 4 --out DIR\n"
            "       mgr pose VIDEO_OR_FOLDER --det DET.onnx --pose POSE.onnx --out DIR\n"
            "       mgr recognize VIDEO --ckpt REC.ckpt [--pose DIR] --window 32 --stride 8 "
            "--out DIR\n"
            "       mgr detect --ckpt DET.ckpt --video VIDEO --out DIR [--pose DIR]\n"
            "       mgr fuse --preds DIR [DIR ...] --out DIR\n"
            "       mgr pseudo-label --preds DIR --split test --alpha 0.65 --out FILE.json\n\n"
            "Lightning subcommands take every option of LightningCLI "
            "(`mgr fit --help`, `mgr fit --print_config`).\n"
            "Errors in your input print one line; -v or MGR_DEBUG=1 shows the traceback."
        )
        return 0
    # LightningCLI reads sys.argv itself; passing it again makes it warn.
    MgrCLI(None if from_sys else argv)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
