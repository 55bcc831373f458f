"""Every paper config of ``experiments/{ma52,imigue,smg}`` at its real size, on CPU.

For each config this writes a small SynthMG release in that dataset's real layout,
file format and resolution, then runs the config *unchanged* except the data root,
batch size, workers and accelerator/precision/devices/strategy:

* ``mgr fit``: 2 training steps and 1 validation step (``--steps``);
* ``mgr test`` on the checkpoint that fit saved (the whole test split, or the first
  ``--eval-batches`` batches);
* ``mgr predict`` with the prediction writer (the same).

Each runs in its own process (``nice -n 10``), from its own working folder (the
configs' relative ``runs/...`` land there), and the table gives per config:

* parameters (trainable) of the LightningModule;
* the input of one training sample as the model sees it (after the on-device
  heatmap rendering of the PoseConv3D configs);
* CPU seconds per training step: the median over the timed steps of the process
  time (all threads) from ``on_train_batch_start`` to ``on_train_batch_end`` (forward,
  backward, optimizer); wall times, inflated by ``nice`` on a shared machine, are in
  the details;
* peak RSS (``ru_maxrss``) of the fit, test and predict processes (no loader workers);
* loader CPU ms per sample: the median over up to 3 training batches of fetching one
  batch from the training DataLoader (decode, transforms, collate) plus
  ``on_after_batch_transfer`` (on-device heatmaps, video finishing), divided by the
  batch size;
* forward FLOPs of one training sample, counted by ``torch.utils.flop_counter``
  (``FlopCounterMode``; a multiply-add is 2 FLOPs) on the meta device, and, where a
  published count exists for the same input, the ratio of our multiply-adds to it.

Releases (``--work``/data, written once and reused): iMiGUE MiGA'23 csv and MiGA'25
xlsx keypoints in 1280x720 pixels with 1280x720 RGB clips, SMG Kinect csv with
1920x1080 ``SampleXXXX_color.mp4``, MA-52 lists and 1920x1080 clips (MA-52's
resolution is not in our sources: full HD is the assumption), depth videos and
float16 flow arrays at 1280x720 for the depth/flow configs.

Files a user supplies are written with random weights in their real format
(``--work``/files): torchvision ``swin3d_t`` / ``r2plus1d_18`` state dicts, an
mmaction2-named RGBPoseConv3D checkpoint, InternViT-300M-448px as a HuggingFace
directory (transformers' native ``InternVLVisionModel``, bf16 as released), a text
encoder directory and, for ``videoswin_rgb_from_ma52``, the MA-52 run's own
checkpoint. Nothing is downloaded.

    python benchmarks/real_size.py                      # all 19 configs (hours on 2 cores)
    python benchmarks/real_size.py --configs smg/stcnn imigue/posec3d_joint
    python benchmarks/real_size.py --report             # print the table of finished runs
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = ROOT / "experiments"
#: MA-52 first: ``imigue/videoswin_rgb_from_ma52`` starts from its checkpoint.
DATASETS = ("ma52", "imigue", "smg")

# ----------------------------------------------------------------------------- data
#: SynthMG releases, each in the real layout, format and resolution of its dataset.
_TRIMMED = {"clip_frames": (24, 72), "gap_frames": (2, 8), "seed": 0}
RELEASES: dict[str, dict[str, Any]] = {
    "imigue_miga23": {
        "layout": "imigue",
        "source": "miga23",
        "image_size": (720, 1280),
        "subjects": (2, 1, 1),
        "videos_per_subject": 1,
        "clips_per_video": 8,
        **_TRIMMED,
    },
    "imigue_miga25": {
        "layout": "imigue",
        "source": "miga25",
        "image_size": (720, 1280),
        "video": True,
        "video_size": (720, 1280),
        "subjects": (2, 1, 1),
        "videos_per_subject": 1,
        "clips_per_video": 6,
        **_TRIMMED,
    },
    # SMG's split presets name all 40 subjects (MiGA 1-30 / 31-35 / 36-40, official
    # 1-35 / 36-40) and the reader refuses a release that lacks one: all 40, few clips each.
    "smg": {
        "layout": "smg",
        "video": True,
        "video_size": (1080, 1920),
        "clips_per_video": 2,
        **_TRIMMED,
    },
    "smg_untrimmed": {  # online detection: long sequences, skeleton only
        "layout": "smg",
        "clips_per_video": 10,
        "clip_frames": (24, 72),
        "gap_frames": (30, 120),
        "seed": 0,
    },
    "ma52": {
        "layout": "ma52",
        "image_size": (1080, 1920),
        "video_size": (1080, 1920),
        "subjects": (2, 0, 1),
        "clips_per_video": 6,
        **_TRIMMED,
    },
}
#: Smaller releases of the same layouts and resolutions (tests, ``--small``).
SMALL = {
    "imigue_miga23": {"clips_per_video": 5},
    "imigue_miga25": {"subjects": (1, 1, 1), "clips_per_video": 5, "clip_frames": (16, 40)},
    "smg": {"clips_per_video": 1, "clip_frames": (16, 40)},
    "smg_untrimmed": {"clips_per_video": 4},
    "ma52": {"subjects": (1, 0, 1), "clips_per_video": 5, "clip_frames": (16, 40)},
}


def release_of(data: dict[str, Any]) -> str:
    """The SynthMG release a datamodule entry of a config reads (its class and ``source``).

    Args:
        data: a ``class_path``/``init_args`` entry (the config's ``data`` or one of
            an ``UnlabeledDataModule``'s ``sources``).
    """
    cls = data["class_path"].rsplit(".", 1)[-1]
    if cls == "MA52DataModule":
        return "ma52"
    if cls == "SMGOnlineDataModule":
        return "smg_untrimmed"
    if cls == "SMGDataModule":
        return "smg"
    if cls == "IMiGUEDataModule":
        source = (data.get("init_args") or {}).get("source", "miga23")
        return "imigue_miga25" if source == "miga25" else "imigue_miga23"
    raise ValueError(f"no SynthMG release for {cls}")


def datamodules(config: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """``(dotted key, entry)`` of every datamodule that reads a release.

    The config's ``data``, or the ``sources`` of an ``UnlabeledDataModule`` (VideoMAE
    pretraining reads iMiGUE, SMG and MA-52 together).
    """
    data = config["data"]
    if data["class_path"].endswith(".UnlabeledDataModule"):
        sources = (data.get("init_args") or {}).get("sources") or []
        return [(f"data.init_args.sources.{i}", s) for i, s in enumerate(sources)]
    return [("data", data)]


#: What a real-size run may change in a config (issue 15): data roots, batch size,
#: workers, and where it runs. Everything else reaches mgr as written.
ALLOWED = (
    "trainer.accelerator",
    "trainer.devices",
    "trainer.strategy",
    "trainer.precision",
    "data.init_args.batch_size",
    "data.init_args.num_workers",
    r"data(\.init_args\.sources\.\d+)?\.init_args\.root",
    r"data(\.init_args\.sources\.\d+)?\.init_args\.video\.root",
)


def cpu_has_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively (AVX512-BF16 or AMX; Linux' flags).

    Without it PyTorch emulates bf16 matmuls on the CPU at a small fraction of fp32's
    speed (measured here on an AVX2-only AMD EPYC: VideoMAE-B's training step 228 s in
    ``bf16-mixed``), so a real-size run of a bf16 config would take hours per step.
    """
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return bool(re.search(r"\b(avx512_bf16|amx_bf16)\b", flags))


def rewrite_config(
    config: dict[str, Any],
    roots: dict[str, Path],
    batch_size: int,
    *,
    bf16: bool = True,
) -> tuple[dict[str, Any], list[str]]:
    """The config for one CPU process, changed only in :data:`ALLOWED` keys.

    Args:
        config: the parsed YAML.
        roots: release name (:func:`release_of`) -> its folder.
        batch_size: clips per batch.
        bf16: whether the CPU has native bf16 (:func:`cpu_has_bf16`). With it precision
            stays as configured (``bf16-mixed`` runs on CPU under autocast); without it
            ``bf16*`` becomes ``32-true`` (the same network and input, in fp32).

    Returns:
        ``(new config, dotted keys that changed)``.
    """
    out = copy.deepcopy(config)
    changed: list[str] = []

    def put(node: dict[str, Any], key: str, value: Any, dotted: str) -> None:
        if node.get(key) != value:
            node[key] = value
            changed.append(dotted)

    trainer = out.setdefault("trainer", {})
    for key, value in (("accelerator", "cpu"), ("devices", 1), ("strategy", "auto")):
        put(trainer, key, value, f"trainer.{key}")
    if not bf16 and str(trainer.get("precision", "")).startswith("bf16"):
        put(trainer, "precision", "32-true", "trainer.precision")
    init = out["data"].setdefault("init_args", {})
    put(init, "batch_size", batch_size, "data.init_args.batch_size")
    put(init, "num_workers", 0, "data.init_args.num_workers")
    for dotted, entry in datamodules(out):
        root = roots[release_of(entry)]
        args = entry.setdefault("init_args", {})
        put(args, "root", str(root), f"{dotted}.init_args.root")
        video = args.get("video") or {}
        if video.get("root") is not None:  # depth/flow folders; SMG's RGB folder
            modality = video.get("modality", "rgb")
            folder = modality_root(root, modality) if modality in ("depth", "flow") else root
            put(video, "root", str(folder), f"{dotted}.init_args.video.root")
    return out, changed


def config_diff(a: Any, b: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two parsed configs (lists by index)."""
    if isinstance(a, dict) and isinstance(b, dict):
        keys = sorted(set(a) | set(b), key=str)
        return [
            d
            for k in keys
            for d in config_diff(a.get(k, _MISSING), b.get(k, _MISSING), f"{prefix}{k}.")
        ]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        pairs = enumerate(zip(a, b, strict=True))
        return [d for i, (x, y) in pairs for d in config_diff(x, y, f"{prefix}{i}.")]
    return [] if a == b else [prefix.rstrip(".")]


_MISSING = object()


def write_release(name: str, out: Path, small: bool = False) -> Path:
    """Write (once) the SynthMG release ``name`` under ``out``; returns its folder."""
    from mgr.data.synthetic import generate_synthmg

    kwargs = {**RELEASES[name], **(SMALL[name] if small else {})}
    folder = out / (name + ("_small" if small else ""))
    stamp = folder / "real_size.json"
    if stamp.is_file() and json.loads(stamp.read_text()) == _jsonable(kwargs):
        return folder
    t0 = time.perf_counter()
    # Clip counts are Poisson: take the first seed that gives every split enough clips.
    # They come from the generator's main stream, so a skeleton-only csv probe has the
    # counts of the full release (MA-52 splits train/val while writing: no probe there).
    probe = {"video": False, "source": "miga23"} if kwargs["layout"] != "ma52" else {}
    for seed in range(kwargs["seed"], kwargs["seed"] + 10):
        shutil.rmtree(folder, ignore_errors=True)
        generate_synthmg(folder, **{**kwargs, **probe, "seed": seed})
        counts = json.loads((folder / "synthmg.json").read_text())["class_counts"]
        sizes = {split: sum(c) for split, c in counts.items()}
        if name == "smg_untrimmed" or (sizes["train"] >= 4 and min(sizes.values()) >= 1):
            break
    else:
        raise RuntimeError(f"release {name} too small for 2 steps of batch 2: {sizes}")
    if probe:
        shutil.rmtree(folder)
        generate_synthmg(folder, **{**kwargs, "seed": seed})
    if name == "imigue_miga25":
        _write_depth_and_flow(folder)
    stamp.write_text(json.dumps(_jsonable(kwargs)))
    _log(f"release {folder.name}: clips {sizes} in {time.perf_counter() - t0:.0f} s")
    return folder


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj))


def modality_root(release: Path, modality: str) -> Path:
    """Folder of a release's depth or flow clips: beside the release, not inside it.

    Inside, the readers' recursive media index would see ``depth/<split>/<clip>.mp4``
    and ``flow/<split>/<clip>.npy`` as second media files of the RGB clips (an error).
    """
    return release.parent / f"{release.name}_{modality}"


def _write_depth_and_flow(root: Path) -> None:
    """Per-clip depth videos and flow arrays at the RGB clips' resolution, named like them.

    Depth (Video-Depth-Anything in MM-Gesture) as grey-level videos; flow (MemFlow) as
    ``(T - 1, H, W, 2)`` float16 arrays: the temporal gradient of the grey frames times
    their spatial gradients (a cheap stand-in with the right shape and alignment).
    """
    import numpy as np

    from mgr.data.readers.video import read_video, write_video

    for clip in sorted(root.glob("imigue_rgb_*/*.mp4")):
        split = clip.parent.name.removeprefix("imigue_rgb_")
        frames = read_video(clip)  # (T, H, W, 3) uint8
        grey = frames.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        depth_dir = modality_root(root, "depth") / split
        depth_dir.mkdir(parents=True, exist_ok=True)
        write_video(depth_dir / clip.name, np.repeat(grey.astype(np.uint8)[..., None], 3, -1))
        flow_dir = modality_root(root, "flow") / split
        flow_dir.mkdir(parents=True, exist_ok=True)
        dt = np.diff(grey, axis=0) / 255.0
        gy, gx = np.gradient(grey[:-1], axis=(1, 2))
        flow = np.stack([dt * gx / 16.0, dt * gy / 16.0], -1).astype(np.float16)
        np.save(flow_dir / f"{clip.stem}.npy", flow)


# ----------------------------------------------------------------------------- user files
@dataclass
class Files:
    """Random-weight stand-ins for the files a user supplies, in their real formats."""

    root: Path
    made: dict[str, str] = field(default_factory=dict)

    def path(self, key: str) -> str:
        if key not in self.made:
            self.made[key] = str(getattr(self, "_" + key)(self.root / key))
        return self.made[key]

    def _swin3d_t(self, out: Path) -> Path:
        """torchvision ``swin3d_t`` state dict (``swin3d_t-7615ae03.pth``'s format)."""
        import torch
        from torchvision.models.video import swin3d_t

        path = out.with_suffix(".pth")
        if not path.is_file():
            torch.manual_seed(0)
            torch.save(swin3d_t(weights=None).state_dict(), path)
        return path

    def _r2plus1d_18(self, out: Path) -> Path:
        """torchvision ``r2plus1d_18`` state dict (``r2plus1d_18-91a641e6.pth``'s format)."""
        import torch
        from torchvision.models.video import r2plus1d_18

        path = out.with_suffix(".pth")
        if not path.is_file():
            torch.manual_seed(0)
            torch.save(r2plus1d_18(weights=None).state_dict(), path)
        return path

    def _rgbpose_36(self, out: Path) -> Path:
        return self._rgbpose(out, 36)

    def _rgbpose_38(self, out: Path) -> Path:
        return self._rgbpose(out, 38)

    def _rgbpose(self, out: Path, channels: int) -> Path:
        """An mmaction2 ``Recognizer3D`` checkpoint of RGBPoseConv3D (``cls_head.fc_rgb`` ...).

        mmaction2's own ``rgbpose_conv3d_init`` is for 17 COCO keypoints, 60 NTU classes and
        lacks the laterals: it does not fit MM-Gesture's 36 keypoints (see the configs).
        """
        import torch

        from mgr.models import RGBPoseConv3D

        path = out.with_suffix(".pth")
        if not path.is_file():
            torch.manual_seed(0)
            model = RGBPoseConv3D(num_classes=32, in_channels=channels, class_counts=[1] * 32)
            heads = {"head_rgb.1.": "cls_head.fc_rgb.", "head_pose.1.": "cls_head.fc_pose."}
            state = {}
            for key, value in model.state_dict().items():
                if key.startswith("backbone."):
                    state[key] = value
                for ours, theirs in heads.items():
                    if key.startswith(ours):
                        state[theirs + key.removeprefix(ours)] = value
            torch.save({"meta": {"mmaction_version": "1.2.0"}, "state_dict": state}, path)
        return path

    def _internvit(self, out: Path) -> Path:
        """InternViT-300M-448px-V2_5 as transformers' native ``InternVLVisionModel``.

        The released directory uses InternVL's own modelling code (``trust_remote_code``);
        transformers ships the same architecture as ``InternVLVisionModel``. Its default
        config is InternViT-300M-448px (1024 wide, 24 layers, 16 heads, MLP 4096, 448 px,
        patch 14, layer scale 0.1) plus the release's ``qkv_bias``; stored in bf16 as released.
        """
        import torch
        import transformers

        if not (out / "config.json").is_file():
            torch.manual_seed(0)
            config = transformers.InternVLVisionConfig(attention_bias=True)
            model = transformers.InternVLVisionModel(config).to(torch.bfloat16)
            model.save_pretrained(out)
        return out

    def _text_encoder(self, out: Path) -> Path:
        """A frozen text encoder with InternVL2.5-8B's LLM width (4096), 1 layer, bf16.

        InternLM2.5-7B (the LLM of InternVL2.5-8B) is a Llama-architecture decoder:
        hidden 4096, 32 layers, 32 heads (8 KV heads), MLP 14336; 7.4B parameters, ~15 GB
        in bf16, more than this shared machine allows one process (see the report). We
        keep its width, so FG-SGL's text-side projections have their real size, and
        1 of its 32 layers, with the packaged MiniLM's WordPiece tokenizer (vocab 30522).
        """
        import torch
        import transformers

        from mgr.models.backbones.vl import minilm_path

        if not (out / "config.json").is_file():
            torch.manual_seed(0)
            tokenizer = transformers.AutoTokenizer.from_pretrained(str(minilm_path()))
            config = transformers.LlamaConfig(
                vocab_size=tokenizer.vocab_size,
                hidden_size=4096,
                intermediate_size=14336,
                num_hidden_layers=1,
                num_attention_heads=32,
                num_key_value_heads=8,
                max_position_embeddings=4096,
                pad_token_id=tokenizer.pad_token_id,
            )
            model = transformers.LlamaModel(config).to(torch.bfloat16)
            model.save_pretrained(out)
            tokenizer.save_pretrained(out)
        return out

    def _ma52_checkpoint(self, out: Path) -> Path:
        """The MA-52 Video Swin run's checkpoint (``state_dict`` of a 52-class VideoSwin)."""
        import torch

        from mgr.models import VideoSwin

        path = out.with_suffix(".ckpt")
        if not path.is_file():
            torch.manual_seed(0)
            model = VideoSwin(num_classes=52, variant="t", class_counts=[1] * 52)
            torch.save({"state_dict": model.state_dict()}, path)
        return path


#: ``--model.init_args.<key> FILE`` in a config's usage comment -> the file to write.
_USAGE = re.compile(r"--model\.init_args\.(pretrained|init_from|visual_path|text_path)\s+(\S+)")


def user_files(
    path: Path, config: dict[str, Any], files: Files, checkpoints: dict[str, str]
) -> tuple[list[str], list[str]]:
    """``--model.init_args.*`` arguments with stand-ins for the files a config asks for.

    Read from the config's usage comment (``--model.init_args.pretrained FILE`` ...) and its
    ``init_from``; optional files (``[...]`` in the comment) are supplied too. An
    ``init_from`` that names another config's run folder (``runs/imigue_videomae/...``)
    gets that run's checkpoint when it ran first (``checkpoints``: run folder -> file).

    Returns:
        ``(arguments, notes)``.
    """
    model = config["model"]
    cls = model["class_path"].rsplit(".", 1)[-1]
    init = model.get("init_args", {})
    wanted = dict(_USAGE.findall(path.read_text()))
    if init.get("init_from"):
        wanted["init_from"] = init["init_from"]
    args: list[str] = []
    notes: list[str] = []
    for key in sorted(wanted):
        if key == "init_from":
            run = next((d for d in checkpoints if wanted[key].startswith(d + "/")), None)
            if run is not None:
                value = checkpoints[run]
                notes.append(f"init_from the {run} run of this benchmark")
            elif cls == "VideoSwin":
                value = files.path("ma52_checkpoint")
            else:
                raise ValueError(f"{path}: init_from {wanted[key]}: run its config first")
        elif key == "visual_path":
            value = files.path("internvit")
        elif key == "text_path":
            value = files.path("text_encoder")
        elif cls == "RGBPoseConv3D":
            value = files.path(f"rgbpose_{init['in_channels']}")
        elif cls == "R2Plus1D":
            value = files.path("r2plus1d_18")
        elif cls == "VideoSwin":
            value = files.path("swin3d_t")
        elif cls == "VideoMAE":
            # Optional continued pretraining from Kinetics; the config trains from scratch.
            notes.append("optional pretrained (Kinetics VideoMAE) not supplied")
            continue
        else:
            raise ValueError(f"{path}: no stand-in for {key} of {cls}")
        args += [f"--model.init_args.{key}", value]
    return args, notes


# ----------------------------------------------------------------------------- runs
#: Published forward cost of the same network on the same input, in multiply-adds.
REFERENCE_GMACS = {
    # Video-Swin README (Kinetics-400, Swin-T, 32x224x224, one view): 87.9 GFLOPs (MACs).
    ("VideoSwin", (3, 32, 224, 224)): 87.9,
    # torchvision r2plus1d_18 meta: 40.519 GFLOPs at its 16x112x112 input; conv nets
    # scale with T*H*W, so 32x224x224 is 8 times that.
    ("R2Plus1D", (3, 32, 224, 224)): 8 * 40.519,
}


def plan(path: Path, batch_size: int) -> dict[str, Any]:
    """What to change for a CPU run of one config, and why."""
    config = yaml.safe_load(path.read_text())
    trainer = config.get("trainer", {})
    model_cls = config["model"]["class_path"].rsplit(".", 1)[-1]
    batch = 1 if model_cls == "FGSGL" else batch_size  # ViT-L at 8x448^2: one clip per step
    notes = []
    if trainer.get("strategy", "auto") != "auto" or trainer.get("devices") not in (None, "auto", 1):
        strategy = trainer.get("strategy")
        if isinstance(strategy, dict):
            strategy = strategy["class_path"].rsplit(".", 1)[-1]
        notes.append(f"strategy {strategy} x {trainer.get('devices')} devices -> 1 CPU process")
    # Run length (not the recipe): 2 optimizer steps, 1 validation batch.
    fit = ["--trainer.num_sanity_val_steps", "0"]
    if trainer.get("accumulate_grad_batches", 1) != 1:
        # A step is one optimizer step; on CPU one micro-batch is the step.
        fit += ["--trainer.accumulate_grad_batches", "1"]
        notes.append(f"accumulate_grad_batches {trainer['accumulate_grad_batches']} -> 1")
    if trainer.get("check_val_every_n_epoch", 1) != 1:
        fit += ["--trainer.check_val_every_n_epoch", "1"]  # the 1 validation step
        notes.append(f"check_val_every_n_epoch {trainer['check_val_every_n_epoch']} -> 1")
    return {
        "config": config,
        "model": model_cls,
        "batch": batch,
        "precision": trainer.get("precision", "32-true"),
        "fit": fit,
        "notes": notes,
    }


def run_config(
    path: Path,
    work: Path,
    files: Files,
    args: argparse.Namespace,
    checkpoints: dict[str, str],
) -> dict[str, Any]:
    """Fit, test and predict one config in child processes; returns its measurements."""
    name = f"{path.parent.name}/{path.stem}"
    p = plan(path, args.batch_size)
    roots = {
        release_of(entry): write_release(release_of(entry), work / "data", small=args.small)
        for _, entry in datamodules(p["config"])
    }
    native_bf16 = cpu_has_bf16()
    config, changed = rewrite_config(p["config"], roots, p["batch"], bf16=native_bf16)
    if "trainer.precision" in changed:
        p["notes"].append(f"{p['precision']} -> 32-true (no native bf16 on this CPU)")
        p["precision"] = "32-true"
    extra, file_notes = user_files(path, p["config"], files, checkpoints)
    run_dir = work / "runs" / name.replace("/", "__")
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    rewritten = run_dir / path.name
    rewritten.write_text(yaml.safe_dump(config, sort_keys=False))
    base = ["--config", str(rewritten), *extra, "--trainer.enable_progress_bar", "false"]
    result: dict[str, Any] = {
        "config": name,
        "release": ", ".join(sorted(r.name for r in roots.values())),
        "batch": p["batch"],
        "precision": p["precision"],
        "changed": changed,
        "notes": p["notes"] + file_notes,
        "user_files": [a for a in extra if a.startswith(str(work / "files"))],
        "default_root_dir": (p["config"].get("trainer") or {}).get("default_root_dir"),
    }
    steps = args.steps
    fit = [
        *base,
        *p["fit"],
        "--trainer.max_steps",
        str(steps),
        "--trainer.limit_train_batches",
        str(steps),
        "--trainer.limit_val_batches",
        "1",
    ]
    result["fit"] = _child(["fit", *fit], run_dir / "fit", args)
    ckpt = result["fit"].get("checkpoint")
    if not result["fit"]["ok"] or not ckpt:
        result["error"] = result["fit"].get("error", "fit saved no checkpoint")
        return result
    if p["model"] == "VideoMAE":  # self-supervised: no labels to test or predict
        result["notes"].append("no test/predict: pretraining has no labels")
        return result
    limit = str(args.eval_batches or 1.0)  # 0: the whole split
    if args.eval_batches:
        result["notes"].append(f"test/predict: first {args.eval_batches} batch(es)")
    test = [*base, "--ckpt_path", ckpt, "--trainer.limit_test_batches", limit]
    result["test"] = _child(["test", *test], run_dir / "test", args)
    preds = run_dir / "predictions"
    predict = [*base, "--ckpt_path", ckpt, "--trainer.limit_predict_batches", limit]
    if p["model"] != "OnlineDetector":  # detections, not class scores per sample
        predict += ["--prediction_writer.out_dir", str(preds)]
    result["predict"] = _child(["predict", *predict], run_dir / "predict", args)
    result["predict"]["written"] = sorted(p.name for p in preds.glob("*")) if preds.is_dir() else []
    sets = list(preds.glob("*.npz")) if preds.is_dir() else []
    if sets:
        import numpy as np

        with np.load(sets[0]) as npz:
            key = "sample_id" if "sample_id" in npz.files else "video_id"
            ids = [str(i) for i in npz[key]] if key in npz.files else []
        result["predict"]["samples"] = len(ids)
        result["predict"]["unique_samples"] = len(set(ids))
    for stage in ("test", "predict"):
        if not result[stage]["ok"]:
            result["error"] = f"{stage}: {result[stage].get('error')}"
    return result


def _child(argv: list[str], folder: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Run ``mgr <argv>`` in a fresh process (cwd ``folder``) and read its report."""
    folder.mkdir(parents=True, exist_ok=True)
    report = folder / "report.json"
    cmd = [sys.executable, str(Path(__file__).resolve()), "_child", str(report), *argv]
    if args.nice:
        cmd = ["nice", "-n", str(args.nice), *cmd]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    t0 = time.perf_counter()
    with open(folder / "log.txt", "w") as log:
        try:
            rc = subprocess.run(
                cmd, cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=args.timeout
            ).returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
    out = json.loads(report.read_text()) if report.is_file() else {}
    out["ok"] = rc == 0 and out.get("ok", False)
    out["rc"] = rc
    out["wall_s"] = time.perf_counter() - t0
    if not out["ok"]:
        tail = (folder / "log.txt").read_text().strip().splitlines()[-15:]
        out.setdefault("error", "\n".join(tail))
    _log(f"  {argv[0]}: {'ok' if out['ok'] else 'FAILED'} in {out['wall_s']:.0f} s")
    return out


# ----------------------------------------------------------------------------- child
def _child_main(report: Path, argv: list[str]) -> int:
    """In the child: run the mgr subcommand, measure, write ``report``."""
    import resource

    out: dict[str, Any] = {"ok": False}
    try:
        if argv[0] == "fit":
            out.update(_fit_and_measure(argv))
        else:
            from mgr.cli import main

            if main(argv) != 0:
                raise RuntimeError(f"mgr {argv[0]} returned non-zero")
        out["ok"] = True
    except BaseException as err:  # report, then fail the process
        import traceback

        out["error"] = "".join(traceback.format_exception(err))[-3000:]
        raise
    finally:
        out["peak_rss_gib"] = _peak_rss_gib(resource)
        report.write_text(json.dumps(out, indent=1))
    return 0


def _peak_rss_gib(resource: Any) -> float:
    """This process's peak resident set size.

    ``VmHWM`` of the current address space: ``ru_maxrss`` survives fork and exec, so a
    child would report its parent's peak (here: the release writer's) when larger.
    """
    with contextlib.suppress(OSError, StopIteration, ValueError):
        status = Path("/proc/self/status").read_text().splitlines()
        kib = int(next(line for line in status if line.startswith("VmHWM:")).split()[1])
        return kib / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _fit_and_measure(argv: list[str]) -> dict[str, Any]:
    import torch
    from lightning.pytorch import Callback

    from mgr.cli import MgrCLI

    class Probe(Callback):
        """Times training steps; keeps the first training sample as the model sees it."""

        def __init__(self) -> None:
            self.times: list[float] = []
            self.cpu: list[float] = []
            self.sample: dict[str, Any] | None = None
            self._t0 = self._c0 = 0.0

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            if self.sample is None:
                self.sample = _first_sample(batch)
            self._t0, self._c0 = time.perf_counter(), time.process_time()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            self.times.append(time.perf_counter() - self._t0)
            self.cpu.append(time.process_time() - self._c0)

    probe = Probe()
    cli = MgrCLI(argv, trainer_defaults={"callbacks": [probe]})
    model, dm, trainer = cli.model, cli.datamodule, cli.trainer
    best = getattr(trainer.checkpoint_callback, "best_model_path", "")
    keys = list(getattr(model, "input_keys", ())) or [
        k for k, v in (probe.sample or {}).items() if torch.is_tensor(v)
    ]
    out: dict[str, Any] = {
        "checkpoint": str(Path(best).resolve()) if best else "",
        "step_s": probe.times,
        "step_s_median": statistics.median(probe.times) if probe.times else None,
        "step_cpu_s": probe.cpu,
        "step_cpu_s_median": statistics.median(probe.cpu) if probe.cpu else None,
        "threads": torch.get_num_threads(),
        "params": sum(p.numel() for p in model.parameters()),
        "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "input": {k: list(probe.sample[k].shape[1:]) for k in keys if k in (probe.sample or {})},
    }
    text = getattr(model, "_text_encoder", None)
    if text is not None:
        out["text_params"] = sum(p.numel() for p in text.encoder.model.parameters())
    out["loader_ms_per_sample"], out["loader_cpu_ms_per_sample"] = _loader_ms(dm)
    out["gflops"], out["flops_on"] = _forward_flops(model, probe.sample)
    return out


def _first_sample(batch: dict[str, Any]) -> dict[str, Any]:
    import torch

    return {
        k: v[:1].detach().clone() if torch.is_tensor(v) else v[:1] if isinstance(v, list) else v
        for k, v in batch.items()
    }


def _loader_ms(dm: Any, batches: int = 3) -> tuple[float | None, float | None]:
    """Median (wall, CPU) ms per sample of fetching a training batch (+ on-device finishing).

    Fetching runs in this process (``num_workers: 0``): decode, transforms, collate, then
    ``on_after_batch_transfer`` (heatmap rendering, video normalisation).
    """
    loader = dm.train_dataloader()
    it = iter(loader)
    wall, cpu = [], []
    for _ in range(min(batches, len(loader))):
        t0, c0 = time.perf_counter(), time.process_time()
        batch = next(it)
        batch = dm.on_after_batch_transfer(batch, 0)
        size = _batch_size(batch)
        wall.append((time.perf_counter() - t0) * 1000 / size)
        cpu.append((time.process_time() - c0) * 1000 / size)
    if not wall:
        return None, None
    return statistics.median(wall), statistics.median(cpu)


def _batch_size(batch: dict[str, Any]) -> int:
    """Samples in a batch: its ``sample_id`` list, else the first tensor's leading size."""
    import torch

    if "sample_id" in batch:
        return max(len(batch["sample_id"]), 1)
    return next(v.shape[0] for v in batch.values() if torch.is_tensor(v) and v.ndim)


def _forward_flops(model: Any, sample: dict[str, Any] | None) -> tuple[float | None, str]:
    """Forward GFLOPs of one sample: on the meta device, else (data-dependent ops) on CPU.

    The meta pass runs on a copy: ``Module.to("meta")`` drops the weights, and the CPU
    fallback needs them.
    """

    if sample is None:
        return None, "-"
    model.eval()
    try:
        return count_flops(copy.deepcopy(model).to("meta"), sample, "meta") / 1e9, "meta"
    except (NotImplementedError, RuntimeError):  # meta lacks data-dependent ops
        return count_flops(model.to("cpu"), sample, "cpu") / 1e9, "cpu"


def count_flops(model: Any, batch: dict[str, Any], device: str = "cpu") -> int:
    """FLOPs of ``model(batch)`` by ``torch.utils.flop_counter.FlopCounterMode``.

    A multiply-add is 2 FLOPs; only matmuls, convolutions and attention are counted.

    Args:
        model: a module called with the batch dict (mgr's LightningModules are).
        batch: tensors (and lists) of the sample(s); moved to ``device``.
        device: where to run (``"meta"``: shapes only, no arithmetic).
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        if hasattr(model, "reconstruction_loss"):  # VideoMAE: encoder + decoder on a tube mask
            from mgr.models.backbones.video_vit import tube_mask

            video = batch["video"].float()
            mask = tube_mask(len(video), model.encoder.grid, model.hparams.mask_ratio)
            model(video, mask.to(device))
        else:
            model(batch)
    return counter.get_total_flops()


# ----------------------------------------------------------------------------- report
def _fmt_params(r: dict[str, Any]) -> str:
    fit = r["fit"]
    total, trainable = fit["params"] / 1e6, fit["trainable"] / 1e6
    text = f" +{fit['text_params'] / 1e6:.0f}M text" if fit.get("text_params") else ""
    return f"{total:.2f}M ({trainable:.2f}M){text}"


def _fmt_input(r: dict[str, Any]) -> str:
    return ", ".join(f"{k} {'x'.join(map(str, s))}" for k, s in r["fit"]["input"].items())


def table(results: list[dict[str, Any]]) -> str:
    """The real-size table, one row per config."""
    head = (
        "| config | params (trainable) | input per sample | batch | precision | CPU s/step "
        "| peak RSS fit/test/predict GiB | loader CPU ms/sample | fwd GFLOPs/sample | MACs/ref "
        "| test | predict |"
    )
    lines = [head, "|" + "---|" * 12]
    for r in results:
        fit = r.get("fit", {})
        if not fit.get("ok"):
            lines.append(f"| {r['config']} | FAILED: {r.get('error', '?').splitlines()[-1]} |")
            continue
        rss = "/".join(
            f"{r[s]['peak_rss_gib']:.1f}" if s in r and "peak_rss_gib" in r[s] else "-"
            for s in ("fit", "test", "predict")
        )
        gflops = fit.get("gflops")
        shape = next(iter(fit["input"].values()), None)
        ref = REFERENCE_GMACS.get((r.get("model", ""), tuple(shape or ())))
        ratio = f"{gflops / 2 / ref:.3f}" if gflops and ref else "-"
        loader = fit.get("loader_cpu_ms_per_sample", fit.get("loader_ms_per_sample"))
        step = fit.get("step_cpu_s_median", fit.get("step_s_median"))
        cells = [
            r["config"],
            _fmt_params(r),
            _fmt_input(r),
            str(r["batch"]),
            r["precision"],
            f"{step:.2f}" if step is not None else "-",
            rss,
            f"{loader:.1f}" if loader is not None else "-",
            f"{gflops:.2f}" if gflops is not None else "-",
            ratio,
            _stage(r, "test"),
            _stage(r, "predict"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _stage(r: dict[str, Any], stage: str) -> str:
    s = r.get(stage)
    if s is None:
        return "-"
    return f"ok {s['wall_s']:.0f} s" if s["ok"] else "FAILED"


def details(results: list[dict[str, Any]]) -> str:
    """What each row changed and supplied."""
    lines = []
    for r in results:
        bits = [f"data {r['release']}", *r.get("notes", [])]
        fit = r.get("fit", {})
        if fit.get("step_s"):
            bits.append("step wall " + ", ".join(f"{t:.2f}" for t in fit["step_s"]) + " s")
        if fit.get("loader_ms_per_sample") is not None:
            bits.append(f"loader wall {fit['loader_ms_per_sample']:.0f} ms/sample")
        for stage in ("fit", "test", "predict"):
            if stage in r:
                bits.append(f"{stage} {r[stage]['wall_s']:.0f} s")
        if "samples" in r.get("predict", {}):
            bits.append(f"predicted {r['predict']['samples']} samples")
        if r.get("user_files"):
            bits.append("files " + ", ".join(Path(f).name for f in r["user_files"]))
        if r.get("fit", {}).get("flops_on") == "cpu":
            bits.append("FLOPs counted on CPU (data-dependent ops)")
        lines.append(f"- {r['config']}: " + "; ".join(bits))
        if r.get("error"):
            lines.append("  error: " + r["error"].strip().splitlines()[-1])
    return "\n".join(lines)


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def configs(patterns: list[str] | None) -> list[Path]:
    """The configs to run, MA-52 first; ``patterns`` like ``smg/stcnn`` or ``imigue/*``."""
    found = [p for d in DATASETS for p in sorted((EXPERIMENTS / d).glob("*.yaml"))]
    if not patterns:
        return found
    keep = [p for p in found if any(Path(f"{p.parent.name}/{p.stem}").match(x) for x in patterns)]
    if not keep:
        raise SystemExit(f"no config matches {patterns}")
    return keep


def _checkpoints(results: Path) -> dict[str, str]:
    """Run folder (the config's ``default_root_dir``) -> checkpoint of the runs so far."""
    out = {}
    for stored in sorted(results.glob("*.json")):
        r = json.loads(stored.read_text())
        ckpt = r.get("fit", {}).get("checkpoint")
        if r.get("default_root_dir") and ckpt and Path(ckpt).is_file():
            out[r["default_root_dir"]] = ckpt
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_child":
        return _child_main(Path(argv[1]), argv[2:])
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--configs", nargs="*", help="e.g. smg/stcnn imigue/posec3d_*")
    p.add_argument("--work", type=Path, default=Path("/tmp/mgr_real_size"))
    p.add_argument("--steps", type=int, default=2, help="training steps per config")
    p.add_argument(
        "--eval-batches", type=int, default=0, help="test/predict batches (0: the whole split)"
    )
    p.add_argument("--batch-size", type=int, default=2, help="clips per batch (FG-SGL: 1)")
    p.add_argument("--small", action="store_true", help="fewer, shorter clips (same resolution)")
    p.add_argument("--nice", type=int, default=10)
    p.add_argument("--timeout", type=float, default=4 * 3600, help="seconds per child process")
    p.add_argument("--redo", action="store_true", help="rerun configs that have a result")
    p.add_argument("--report", action="store_true", help="only print the stored results")
    args = p.parse_args(argv)
    work = args.work.resolve()
    (work / "results").mkdir(parents=True, exist_ok=True)
    files = Files(work / "files")
    files.root.mkdir(parents=True, exist_ok=True)
    results = []
    t0 = time.perf_counter()
    for path in configs(args.configs):
        name = f"{path.parent.name}/{path.stem}"
        stored = work / "results" / (name.replace("/", "__") + ".json")
        if args.report or (stored.is_file() and not args.redo):
            if stored.is_file():
                results.append(json.loads(stored.read_text()))
            continue
        _log(f"{name}")
        result = run_config(path, work, files, args, _checkpoints(work / "results"))
        result["model"] = plan(path, args.batch_size)["model"]
        stored.write_text(json.dumps(result, indent=1))
        results.append(result)
    _log(f"done in {time.perf_counter() - t0:.0f} s")
    print(table(results))
    print()
    print(details(results))
    return 0 if all(r.get("fit", {}).get("ok") and not r.get("error") for r in results) else 1


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
