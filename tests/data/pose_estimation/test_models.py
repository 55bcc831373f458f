"""ONNX person detectors and SimCC pose models: pre/post-processing against closed forms."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mgr.data.pose_estimation.models import (
    PersonDetector,
    WholeBodyPoseModel,
    bbox_to_center_scale,
    crop_person,
    decode_simcc,
    nms,
)
from mgr.errors import UserError
from tests.pose_models import (
    DET_SIZE,
    POSE_SIZE,
    export_bright_spot_pose,
    export_detector,
    export_raw_yolox,
    export_template_pose,
    template_bins,
)

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("onnx")
    boxes = np.array([[20, 5, 60, 45], [0, 0, 10, 10], [30, 10, 70, 40], [5, 5, 30, 30]])
    return {
        # person 0.9, person 0.8, a non-person (label 1) 0.95, a person below threshold
        "det": export_detector(
            d / "det.onnx", boxes, (48, 80), [0.9, 0.8, 0.95, 0.1], [0, 0, 1, 0]
        ),
        "raw": export_raw_yolox(
            d / "raw.onnx",
            {
                (8, 2, 3): [0.5, 0.5, np.log(2), np.log(3), 0.9, 0.9],  # box A, 0.81
                (8, 3, 3): [0.0, 0.5, np.log(2), np.log(3), 0.8, 0.9],  # overlaps A: suppressed
                (16, 0, 0): [0.5, 0.5, 0.0, 0.0, 0.9, 0.6],  # box B, 0.54
                (32, 1, 1): [0.5, 0.5, 0.0, 0.0, 0.9, 0.1],  # below threshold
            },
        ),
        "pose": export_template_pose(d / "pose.onnx"),
        "spot": export_bright_spot_pose(d / "spot.onnx"),
        "body17": export_template_pose(d / "body17.onnx", keypoints=17),
    }


def test_detector_keeps_persons_above_threshold_in_frame_pixels(models) -> None:
    det = PersonDetector(models["det"], score_threshold=0.3)
    assert det.mode == "dets" and det.input_size == DET_SIZE and det.kind == "yolox"
    frames = np.random.default_rng(0).integers(0, 256, (3, 48, 80, 3), dtype=np.uint8)
    out = det(frames)
    assert len(out) == 3
    # The frame was resized by 0.8 (80 -> 64 wide, 48 -> 38 high) and the boxes mapped back.
    np.testing.assert_allclose(out[1], [[20, 5, 60, 45, 0.9], [0, 0, 10, 10, 0.8]], atol=1e-4)


def test_raw_yolox_decoding_and_nms(models) -> None:
    det = PersonDetector(models["raw"], score_threshold=0.3, nms_threshold=0.45)
    assert det.mode == "raw"
    (out,) = det(np.zeros((1, 64, 64, 3), np.uint8))  # square frame: canvas = frame
    # Row (stride 8, cell (2, 3)): centre ((2 + .5) * 8, (3 + .5) * 8), size (2 * 8, 3 * 8).
    box_a = [20 - 8, 28 - 12, 20 + 8, 28 + 12, 0.81]
    box_b = [8 - 8, 8 - 8, 8 + 8, 8 + 8, 0.54]  # stride 16, cell (0, 0), size 16
    np.testing.assert_allclose(out, [box_a, box_b], atol=1e-4)


def test_nms_by_hand() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [20, 20, 30, 30], [0, 0, 10, 5]], float)
    scores = np.array([0.9, 0.95, 0.5, 0.8])
    # [1] wins; [0] overlaps it by 9/11 > 0.5; [3] overlaps [1] by 45/105 < 0.5: kept.
    assert nms(boxes, scores, 0.5).tolist() == [1, 3, 2]


def test_detector_preprocessing(models) -> None:
    frames = np.zeros((1, 48, 80, 3), np.uint8)
    frames[..., 0], frames[..., 1], frames[..., 2] = 200, 100, 50  # RGB
    x, _ = PersonDetector(models["det"], kind="yolox").preprocess(frames)
    assert x.shape == (1, 3, *DET_SIZE)
    bgr = np.broadcast_to(np.array([50.0, 100.0, 200.0])[:, None, None], (3, 38, 64))
    np.testing.assert_array_equal(x[0, :, :38, :], bgr)
    np.testing.assert_array_equal(x[0, :, 38:, :], 114)  # the pad below the resized frame
    x, _ = PersonDetector(models["det"], kind="rtmdet").preprocess(frames)
    bgr_mean, bgr_std = np.array([103.53, 116.28, 123.675]), np.array([57.375, 57.12, 58.395])
    np.testing.assert_allclose(
        x[0, :, 0, 0], (np.array([50, 100, 200]) - bgr_mean) / bgr_std, rtol=1e-5
    )
    np.testing.assert_allclose(x[0, :, -1, -1], (114 - bgr_mean) / bgr_std, rtol=1e-5)


def _warp_reference(frame: np.ndarray, center, scale, size) -> np.ndarray:
    """cv2.warpAffine(INTER_LINEAR, BORDER_CONSTANT 0) with mmpose's matrix, written plainly."""
    h, w = size
    height, width = frame.shape[:2]
    out = np.zeros((3, h, w))
    for i in range(h):
        for j in range(w):
            x = center[0] + (j - w / 2) * scale[0] / w
            y = center[1] + (i - h / 2) * scale[1] / h
            x0, y0 = int(np.floor(x)), int(np.floor(y))
            for yy, wy in ((y0, 1 - (y - y0)), (y0 + 1, y - y0)):
                for xx, wx in ((x0, 1 - (x - x0)), (x0 + 1, x - x0)):
                    if 0 <= yy < height and 0 <= xx < width:
                        out[:, i, j] += wy * wx * frame[yy, xx]
    return out


@pytest.mark.parametrize(
    ("center", "scale"),
    [((40.0, 24.0), (30.0, 40.0)), ((5.3, 3.1), (24.0, 32.0)), ((70.0, 44.0), (60.0, 80.0))],
)
def test_crop_matches_warp_affine(center, scale) -> None:
    frame = np.random.default_rng(1).integers(0, 256, (48, 80, 3), dtype=np.uint8)
    crop = crop_person(frame, np.array(center), np.array(scale), POSE_SIZE).numpy()
    expected = _warp_reference(frame, center, scale, POSE_SIZE)
    np.testing.assert_allclose(crop, expected, atol=1e-3)


def test_center_scale_fixes_the_aspect_ratio() -> None:
    center, scale = bbox_to_center_scale(np.array([[10, 20, 50, 40], [0, 0, 10, 100]]), 0.75)
    np.testing.assert_allclose(center, [[30, 30], [5, 50]])
    # 40x20 * 1.25 = 50x25: too wide for 3:4 -> height 50 / 0.75; 10x100 * 1.25: too tall.
    np.testing.assert_allclose(scale, [[50, 50 / 0.75], [125 * 0.75, 125]])


def test_decode_simcc_by_hand() -> None:
    sx = np.zeros((1, 2, 8))
    sy = np.zeros((1, 2, 6))
    sx[0, 0, 5], sy[0, 0, 2] = 0.8, 0.6
    sx[0, 1, 1], sy[0, 1, 4] = 0.3, 0.9
    locs, scores = decode_simcc(sx, sy, 2.0)
    np.testing.assert_allclose(locs, [[[2.5, 1.0], [0.5, 2.0]]])
    np.testing.assert_allclose(scores, [[0.6, 0.3]])  # the smaller axis maximum


def test_template_keypoints_land_where_the_box_puts_them(models) -> None:
    model = WholeBodyPoseModel(models["pose"])
    assert model.input_size == POSE_SIZE
    frames = np.zeros((2, 48, 80, 3), np.uint8)
    boxes = np.array([[20, 5, 60, 45], [2, 3, 12, 43]], float)
    kp, scores = model(frames, [1, 0], boxes)
    assert kp.shape == (2, 133, 2) and scores.shape == (2, 133)
    np.testing.assert_allclose(scores, 0.9)
    h, w = POSE_SIZE
    center, scale = bbox_to_center_scale(boxes, w / h)
    bx, by = template_bins()
    expected_x = center[:, :1] + (bx / 2 - w / 2) * scale[:, :1] / w
    expected_y = center[:, 1:] + (by / 2 - h / 2) * scale[:, 1:] / h
    np.testing.assert_allclose(kp[..., 0], expected_x, rtol=1e-5)
    np.testing.assert_allclose(kp[..., 1], expected_y, rtol=1e-5)


@pytest.mark.parametrize("spot", [(31, 17), (45, 30), (26, 8)])
def test_keypoints_find_a_bright_spot(models, spot) -> None:
    # Crop, inference and decoding together must send a keypoint back onto the one bright
    # pixel of the frame: within half a crop pixel (the SimCC bin), i.e. half the box scale.
    frame = np.zeros((1, 48, 80, 3), np.uint8)
    frame[0, spot[1], spot[0]] = 255
    box = np.array([[20, 5, 52, 37]], float)
    kp, _ = WholeBodyPoseModel(models["spot"])(frame, [0], box)
    _, scale = bbox_to_center_scale(box, POSE_SIZE[1] / POSE_SIZE[0])
    px = scale[0] / np.array(POSE_SIZE[::-1])  # frame pixels per crop pixel (x, y)
    err = np.abs(kp[0] - np.array(spot))
    assert (err <= px + 1e-6).all(), (kp[0, 0], spot, px)


def test_wrong_model_files_are_named(models, tmp_path) -> None:
    with pytest.raises(UserError, match=r"pose\.onnx: not a person detector: .*dets \(N, D, 5\)"):
        PersonDetector(models["pose"])
    with pytest.raises(UserError, match=r"det\.onnx: not a SimCC pose model: .*simcc_x"):
        WholeBodyPoseModel(models["det"])
    with pytest.raises(UserError, match=r"body17\.onnx: a pose model of \[17\] keypoints"):
        WholeBodyPoseModel(models["body17"])
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(UserError, match=r"junk\.onnx: not a readable ONNX model"):
        PersonDetector(junk)
    with pytest.raises(UserError, match=r"missing\.onnx does not exist"):
        WholeBodyPoseModel(tmp_path / "missing.onnx")
