"""Layout conversion of video keypoints and the pose-file lookup."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mgr.data.pose_estimation.files import convert_layout, find_pose_file
from mgr.errors import UserError
from mgr.skeletons import OPENPOSE_137


def test_convert_layout() -> None:
    rng = np.random.default_rng(0)
    wb = np.concatenate([rng.uniform(1, 99, (4, 133, 2)), rng.uniform(0.5, 1, (4, 133, 1))], -1)
    wb = wb.astype(np.float32)
    np.testing.assert_array_equal(convert_layout(wb, "coco_wholebody_133", "coco_17"), wb[:, :17])
    op = convert_layout(wb, "coco_wholebody_133", "openpose_137")
    assert op.shape == (4, 137, 3)
    body = convert_layout(wb, "coco_wholebody_133", "openpose_body_25")
    np.testing.assert_array_equal(body, op[:, :25])
    light = convert_layout(op, "openpose_137", "imigue_light_hand_35")
    # RightFinger1 = right thumb tip, LeftFinger5 = left pinky tip (OpenPose hand order).
    np.testing.assert_array_equal(light[:, 25], op[:, OPENPOSE_137.index("RHandThumb4")])
    np.testing.assert_array_equal(light[:, 34], op[:, OPENPOSE_137.index("LHandPinky4")])
    np.testing.assert_array_equal(light[:, :25], op[:, :25])
    with pytest.raises(UserError, match=r"cannot become 'kinect_v2_25'.*SMG"):
        convert_layout(wb, "coco_wholebody_133", "kinect_v2_25")
    with pytest.raises(KeyError, match="unknown skeleton layout"):
        convert_layout(op, "openpose_137", "nonsense")


def test_find_pose_file(tmp_path: Path) -> None:
    (tmp_path / "a.npz").write_bytes(b"")
    (tmp_path / "b_openpose.xlsx").write_bytes(b"")
    (tmp_path / "c_json").mkdir()
    assert find_pose_file(tmp_path, "a") == tmp_path / "a.npz"
    assert find_pose_file(tmp_path, "b") == tmp_path / "b_openpose.xlsx"
    assert find_pose_file(tmp_path, "c") == tmp_path / "c_json"
    assert find_pose_file(tmp_path / "a.npz", "whatever") == tmp_path / "a.npz"
    with pytest.raises(UserError, match=r"no pose file of video 'd' \(looked for d\.npz"):
        find_pose_file(tmp_path, "d")
    with pytest.raises(UserError, match=r"--pose .*nowhere does not exist"):
        find_pose_file(tmp_path / "nowhere", "a")
