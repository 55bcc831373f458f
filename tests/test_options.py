import warnings

import pytest
from jsonargparse import ArgumentParser

from mgr.data.datasets import HeatmapOptions, VideoOptions
from mgr.datamodules import IMiGUEDataModule, MA52DataModule, UnlabeledDataModule
from mgr.errors import UserError
from mgr.options import coerce_options

# Dicts a notebook user might write: the CLI's parser (jsonargparse) is the reference.
CASES = [
    (VideoOptions, {"size": 224, "crop": "center"}),
    (VideoOptions, {"train_scale": [0.5, 1.0], "mean": [0.5, 0.5, 0.5], "margin": 1}),
    (VideoOptions, {"keypoint_image_size": [720, 1280], "clip_len": None}),
    (VideoOptions, {"size": "big"}),
    (VideoOptions, {"size": 2.5}),
    (VideoOptions, {"size": True}),
    (VideoOptions, {"crop": "middle"}),
    (VideoOptions, {"sise": 224}),
    (VideoOptions, {"train_scale": [0.5]}),
    (HeatmapOptions, {"size": 40, "test_size": 40, "compact_unscored": "drop"}),
    (HeatmapOptions, {"img_shape": [1080, 1920, 3]}),
    (HeatmapOptions, {"sigma": "wide"}),
]


def _cli_parse(cls, value):
    parser = ArgumentParser(exit_on_error=False)
    parser.add_argument("--options", type=cls)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return parser.instantiate_classes(parser.parse_object({"options": value})).options


@pytest.mark.parametrize(("cls", "value"), CASES, ids=[str(v) for _, v in CASES])
def test_dicts_are_checked_as_the_cli_checks_them(cls, value):
    try:
        expected = _cli_parse(cls, value)
    except Exception:
        expected = None
    if expected is None:
        with pytest.raises(UserError):
            coerce_options(cls, value, "options")
    else:
        assert coerce_options(cls, value, "options") == expected


def test_datamodule_takes_video_options_as_a_dict(tmp_path):
    dm = MA52DataModule(tmp_path, modalities=["video"], video={"size": 224, "crop": "center"})
    assert dm.video == VideoOptions(size=224, crop="center")
    dm = IMiGUEDataModule(tmp_path, heatmap={"size": 40, "area_range": [0.5, 1.0]})
    assert dm.heatmap == HeatmapOptions(size=40, area_range=(0.5, 1.0))
    assert dm.supplies[0] == "heatmap"
    pre = UnlabeledDataModule(tmp_path, video={"size": 32})
    assert pre.video == VideoOptions(size=32, crop="center")


def test_a_wrong_key_names_the_valid_ones(tmp_path):
    with pytest.raises(UserError, match=r"unknown key 'sise' \(did you mean 'size'\?\)") as err:
        MA52DataModule(tmp_path, modalities=["video"], video={"sise": 224})
    assert "crop" in str(err.value) and "decode_threads" in str(err.value)
    with pytest.raises(UserError, match=r"^video: video std must be non-zero"):
        MA52DataModule(tmp_path, modalities=["video"], video={"crop": "saliency", "std": [0, 1, 1]})


def test_objects_and_none_pass_through():
    options = VideoOptions(size=32)
    assert coerce_options(VideoOptions, options, "video") is options
    assert coerce_options(VideoOptions, None, "video") is None
    with pytest.raises(TypeError, match="VideoOptions or a dict"):
        coerce_options(VideoOptions, 224, "video")
