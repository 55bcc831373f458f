"""IoU tracking and the main-subject rule on hand-written box sequences."""

from __future__ import annotations

import numpy as np

from mgr.data.pose_estimation.tracking import main_track, track_boxes


def box(x: float, y: float, w: float, h: float, s: float = 0.9) -> list[float]:
    return [x, y, x + w, y + h, s]


def test_two_people_keep_their_ids_through_a_gap() -> None:
    big = [box(10 + t, 10, 40, 80) for t in range(6)]  # drifts right 1 px per frame
    small = [box(100, 20 - t, 10, 20) for t in range(6)]
    frames = []
    for t in range(6):
        dets = [small[t], big[t]] if t % 2 else [big[t], small[t]]  # order changes per frame
        if t in (2, 3):
            dets = [small[t]]  # the big person is missed for two frames
        frames.append(np.array(dets, np.float32))
    tracks = track_boxes(frames, iou_threshold=0.3, max_gap=5)
    assert [k.id for k in tracks] == [0, 1]
    first, second = tracks
    assert first.frames == [0, 1, 4, 5] and second.frames == [0, 1, 2, 3, 4, 5]
    np.testing.assert_allclose(first.boxes[-1], big[5])
    assert main_track(tracks) is first  # 4 x 3200 px^2 > 6 x 200 px^2
    assert first.area == 4 * 40 * 80


def test_a_track_unseen_too_long_is_not_continued() -> None:
    frames = [np.array([box(0, 0, 10, 10)], np.float32)] + [np.zeros((0, 5), np.float32)] * 3
    frames.append(np.array([box(0, 0, 10, 10)], np.float32))
    assert [k.frames for k in track_boxes(frames, max_gap=3)] == [[0, 4]]
    assert [k.frames for k in track_boxes(frames, max_gap=2)] == [[0], [4]]


def test_one_box_joins_the_best_overlapping_track() -> None:
    frames = [
        np.array([box(0, 0, 10, 10), box(5, 0, 10, 10)], np.float32),
        np.array([box(4, 0, 10, 10)], np.float32),  # IoU 6/14 with track 0, 9/11 with 1
    ]
    tracks = track_boxes(frames)
    assert [k.frames for k in tracks] == [[0], [0, 1]]


def test_longer_smaller_person_can_be_the_main_subject() -> None:
    # Summed area: a person in every frame beats a bigger one seen briefly.
    frames = [np.array([box(0, 0, 20, 20)], np.float32) for _ in range(10)]
    frames[0] = np.array([box(0, 0, 20, 20), box(50, 0, 40, 40)], np.float32)
    tracks = track_boxes(frames)
    assert main_track(tracks).id == 0  # 10 x 400 > 1 x 1600
    assert main_track([]) is None
