from __future__ import annotations

import re

import numpy as np
import pytest

from mgr.skeletons import (
    COCO_17,
    COCO_WHOLEBODY_133,
    IMIGUE_LIGHT_HAND_35,
    IMIGUE_LIGHT_HAND_35_FROM_137,
    IMIGUE_MIGA_22,
    KINECT_V2_25,
    LAYOUTS,
    MMGESTURE_36,
    OPENPOSE_68,
    OPENPOSE_137,
    OPENPOSE_BODY_25,
    SkeletonLayout,
    derive_flip_pairs,
    get_layout,
    openpose_137_from_coco_wholebody,
)


def undirected(edges) -> set[frozenset[int]]:
    return {frozenset(e) for e in edges}


def components(num: int, edges) -> list[set[int]]:
    nbrs: dict[int, set[int]] = {i: set() for i in range(num)}
    for i, j in edges:
        nbrs[i].add(j)
        nbrs[j].add(i)
    left = set(range(num))
    comps = []
    while left:
        todo = [left.pop()]
        comp = set(todo)
        while todo:
            for v in nbrs[todo.pop()]:
                if v not in comp:
                    comp.add(v)
                    todo.append(v)
        left -= comp
        comps.append(comp)
    return comps


def side(name: str) -> str | None:
    """The person side a joint name claims, read from the name alone."""
    low = name.lower()
    if "left" in low:
        return "L"
    if "right" in low:
        return "R"
    if re.match(r"^[LR][A-Z]", name):  # OpenPose style: LShoulder, RHandWrist
        return name[0]
    return None


def unsided(name: str) -> str:
    name = re.sub(r"(?i)left|right", "", name)
    return name[1:] if re.match(r"^[LR][A-Z]", name) else name


# --- published references -------------------------------------------------

# momiji-bit/MMN feeders/feeder_imigue.py, datasets.md §2.7
MMN_IMIGUE22_EDGES = [
    (1, 0), (1, 2), (2, 3), (3, 4), (1, 5), (5, 6), (6, 7), (0, 8), (8, 10), (0, 9), (9, 11),
    (4, 12), (4, 13), (4, 14), (4, 15), (4, 16), (7, 17), (7, 18), (7, 19), (7, 20), (7, 21),
]  # fmt: skip

# momiji-bit/MM-Gesture pyskl config, datasets.md §2.6
WINNER_LEFT_KP = [17, 8, 10, 12, 13, 20, 2, 3, 4, 30, 31, 32, 33, 34, 35]
WINNER_RIGHT_KP = [18, 9, 11, 16, 15, 22, 5, 6, 7, 24, 25, 26, 27, 28, 29]

EXPECTED_SIZES = {
    "kinect_v2_25": 25,
    "openpose_body_25": 25,
    "openpose_137": 137,
    "imigue_light_hand_35": 35,
    "imigue_miga_22": 22,
    "mmgesture_36": 36,
    "openpose_68": 68,
    "coco_17": 17,
    "coco_wholebody_133": 133,
}
# Layouts documented as not connected: none.
DISCONNECTED: set[str] = set()


def test_miga22_limbs_match_mmn_edges() -> None:
    assert undirected(IMIGUE_MIGA_22.limbs) == undirected(MMN_IMIGUE22_EDGES)
    assert len(IMIGUE_MIGA_22.limbs) == len(MMN_IMIGUE22_EDGES)


def test_miga22_joints_match_official_selection() -> None:
    assert IMIGUE_MIGA_22.parent == "imigue_light_hand_35"
    assert IMIGUE_MIGA_22.parent_indices == (0, 1, 2, 3, 4, 5, 6, 7, 15, 16, 17, 18, *range(25, 35))
    assert IMIGUE_MIGA_22.joints[12:] == (
        *(f"RightFinger{k}" for k in range(1, 6)),
        *(f"LeftFinger{k}" for k in range(1, 6)),
    )


def test_mmgesture36_flip_pairs_match_winner() -> None:
    winner = {frozenset(p) for p in zip(WINNER_LEFT_KP, WINNER_RIGHT_KP, strict=True)}
    assert undirected(MMGESTURE_36.flip_pairs) == winner
    # Orientation: the winner's "left_kp" holds RShoulder (2), REye (8) and the
    # right hand (30..35), i.e. the person's right; ours are (left, right).
    assert set(MMGESTURE_36.flip_pairs) == set(zip(WINNER_RIGHT_KP, WINNER_LEFT_KP, strict=True))


def test_openpose137_face_flip_pairs() -> None:
    face = [(i, 16 - i) for i in range(8)]  # jaw
    face += [(17 + i, 26 - i) for i in range(5)]  # brows
    face += [(31, 35), (32, 34)]
    face += [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]
    face += [(48, 54), (49, 53), (50, 52), (55, 59), (56, 58), (60, 64), (61, 63), (65, 67)]
    face += [(68, 69)]
    got = {p for p in undirected(OPENPOSE_137.flip_pairs) if min(p) >= 25 and max(p) < 95}
    assert got == {frozenset((a + 25, b + 25)) for a, b in face}
    # Person's left = image right of a frontal face: the higher 300-W indices.
    left_eye_outer = OPENPOSE_137.index("FaceEyeLeftOuter")
    assert left_eye_outer == 25 + 45
    assert (25 + 45, 25 + 36) in OPENPOSE_137.flip_pairs


def test_openpose137_blocks_and_bridges() -> None:
    j = OPENPOSE_137.joints
    assert j[:25] == OPENPOSE_BODY_25.joints
    assert all(n.startswith("Face") for n in j[25:95])
    assert all(n.startswith("LHand") for n in j[95:116])
    assert all(n.startswith("RHand") for n in j[116:137])
    edges = undirected(OPENPOSE_137.limbs)
    assert frozenset((0, 25 + 30)) in edges  # Nose - face nose tip
    assert frozenset((7, 95)) in edges  # LWrist - left hand wrist
    assert frozenset((4, 116)) in edges  # RWrist - right hand wrist
    hand = [(0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (0, 9), (9, 10),
            (10, 11), (11, 12), (0, 13), (13, 14), (14, 15), (15, 16), (0, 17), (17, 18),
            (18, 19), (19, 20)]  # fmt: skip
    for base in (95, 116):
        inside = {e for e in edges if min(e) >= base and max(e) < base + 21}
        assert inside == {frozenset((a + base, b + base)) for a, b in hand}


def test_openpose68_composition() -> None:
    face = [4, 8, 12, 17, 19, 21, 22, 24, 26, 27, 30, 36, 39, 42, 45, 48, 51, 54, 57]
    hand = [0, 1, 2, 4, 5, 8, 9, 12, 13, 16, 17, 20]
    expected = (
        list(range(25)) + [25 + f for f in face] + [95 + h for h in hand] + [116 + h for h in hand]
    )
    assert OPENPOSE_68.parent == "openpose_137"
    assert list(OPENPOSE_68.parent_indices) == expected
    assert OPENPOSE_68.joints == tuple(OPENPOSE_137.joints[i] for i in expected)
    # Contraction through dropped thumb joint 3: thumb 2 - thumb 4.
    assert frozenset((OPENPOSE_68.index("LHandThumb2"), OPENPOSE_68.index("LHandThumb4"))) in (
        undirected(OPENPOSE_68.limbs)
    )


def path(n: int) -> list[tuple[int, int]]:
    return [(i, i + 1) for i in range(n - 1)]


def toy(limbs, n: int, flips=(), center: int = 0) -> SkeletonLayout:
    return SkeletonLayout(
        name="toy", joints=tuple(f"j{i}" for i in range(n)), limbs=limbs, flip_pairs=flips,
        center=center,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("limbs", "n", "keep", "expected"),
    [
        # path 0-1-2-3-4, keep every other joint: 0-2, 2-4 collapse to new 0-1, 1-2
        (path(5), 5, [0, 2, 4], {(0, 1), (1, 2)}),
        # the same path, kept in a different order: new ids follow `keep`
        (path(5), 5, [4, 0, 2], {(1, 2), (0, 2)}),
        # keeping both ends only: one limb through the dropped middle
        (path(5), 5, [0, 4], {(0, 1)}),
        # star with hub 0 kept: leaves stay attached to the hub
        ([(0, 1), (0, 2), (0, 3), (0, 4)], 5, [0, 2, 4], {(0, 1), (0, 2)}),
        # star with the hub dropped: every pair of kept leaves becomes linked
        ([(0, 1), (0, 2), (0, 3), (0, 4)], 5, [1, 2, 3], {(0, 1), (0, 2), (1, 2)}),
        # a kept joint blocks the path: 0-1-2 keep {0,1,2}: no 0-2 shortcut
        (path(3), 3, [0, 1, 2], {(0, 1), (1, 2)}),
        # dropped dead end 3 hanging off 1 adds nothing
        ([(0, 1), (1, 2), (1, 3)], 4, [0, 1, 2], {(0, 1), (1, 2)}),
        # dropped hub 2 between two kept chains 0-1 and 3-4: 1-3 appear linked
        ([(0, 1), (1, 2), (2, 3), (3, 4), (2, 5)], 6, [0, 1, 3, 4], {(0, 1), (1, 2), (2, 3)}),
        # disconnected parent stays disconnected
        ([(0, 1), (2, 3)], 4, [0, 3], set()),
    ],
)
def test_subset_contraction(limbs, n, keep, expected) -> None:
    sub = toy(limbs, n).subset(keep, name="sub", center=keep[0])
    assert undirected(sub.limbs) == undirected(expected)
    assert sub.joints == tuple(f"j{i}" for i in keep)
    assert sub.parent == "toy"
    assert sub.parent_indices == tuple(keep)


def test_subset_flip_pairs_and_center() -> None:
    parent = toy(path(5), 5, flips=[(0, 4), (1, 3)], center=2)
    sub = parent.subset([4, 2, 0, 1], name="sub")
    assert sub.flip_pairs == ((2, 0),)  # (0, 4) -> new (2, 0); (1, 3) loses 3
    assert sub.center == 1  # parent centre 2 is new index 1
    assert parent.subset([0, 2, 4], name="s2", center=4).center == 2


def test_subset_errors() -> None:
    parent = toy(path(4), 4, center=1)
    with pytest.raises(ValueError, match="out of range"):
        parent.subset([0, 4], name="bad")
    with pytest.raises(ValueError, match="out of range"):
        parent.subset([-1, 1], name="bad")
    with pytest.raises(ValueError, match="duplicate"):
        parent.subset([1, 2, 1], name="bad")
    with pytest.raises(ValueError, match="centre"):
        parent.subset([0, 2, 3], name="bad")
    with pytest.raises(ValueError, match="center"):
        parent.subset([1, 2], name="bad", center=3)
    with pytest.raises(ValueError, match="no joints"):
        parent.subset([], name="bad")
    # dropped centre with an explicit one is fine
    assert parent.subset([0, 2, 3], name="ok", center=2).center == 1


def test_layout_validation() -> None:
    names = ("a", "b", "c")
    with pytest.raises(ValueError, match="self loop"):
        SkeletonLayout("x", names, ((0, 0),), (), 0)
    with pytest.raises(ValueError, match="out of range"):
        SkeletonLayout("x", names, ((0, 3),), (), 0)
    with pytest.raises(ValueError, match="twice"):
        SkeletonLayout("x", names, ((0, 1), (1, 0)), (), 0)
    with pytest.raises(ValueError, match="more than one"):
        SkeletonLayout("x", names, (), ((0, 1), (1, 2)), 0)
    with pytest.raises(ValueError, match="itself"):
        SkeletonLayout("x", names, (), ((1, 1),), 0)
    with pytest.raises(ValueError, match="center"):
        SkeletonLayout("x", names, (), (), 3)
    with pytest.raises(ValueError, match="duplicate joint"):
        SkeletonLayout("x", ("a", "a"), (), (), 0)
    with pytest.raises(ValueError, match="together"):
        SkeletonLayout("x", names, (), (), 0, parent="p")


@pytest.mark.parametrize("name", sorted(EXPECTED_SIZES))
def test_sizes_and_registry(name: str) -> None:
    layout = get_layout(name)
    assert layout.name == name
    assert layout.num_joints == EXPECTED_SIZES[name] == len(layout.joints)
    assert LAYOUTS[name] is layout


def test_registry_is_complete() -> None:
    assert set(LAYOUTS) == set(EXPECTED_SIZES)


@pytest.mark.parametrize("name", sorted(EXPECTED_SIZES))
def test_connected(name: str) -> None:
    layout = get_layout(name)
    n_comp = len(components(layout.num_joints, layout.limbs))
    assert (n_comp == 1) == (name not in DISCONNECTED)


@pytest.mark.parametrize("layout", [KINECT_V2_25, OPENPOSE_BODY_25, IMIGUE_LIGHT_HAND_35])
def test_trees(layout: SkeletonLayout) -> None:
    assert len(layout.limbs) == layout.num_joints - 1


def test_kinect_bones() -> None:
    # Kinect v2 SDK bone list, by name.
    bones = [
        ("Head", "Neck"), ("Neck", "SpineShoulder"), ("SpineShoulder", "SpineMid"),
        ("SpineMid", "SpineBase"), ("SpineShoulder", "ShoulderRight"),
        ("SpineShoulder", "ShoulderLeft"), ("SpineBase", "HipRight"), ("SpineBase", "HipLeft"),
    ]  # fmt: skip
    for s in ("Left", "Right"):
        bones += [(f"Shoulder{s}", f"Elbow{s}"), (f"Elbow{s}", f"Wrist{s}"),
                  (f"Wrist{s}", f"Hand{s}"), (f"Hand{s}", f"HandTip{s}"),
                  (f"Wrist{s}", f"Thumb{s}"), (f"Hip{s}", f"Knee{s}"),
                  (f"Knee{s}", f"Ankle{s}"), (f"Ankle{s}", f"Foot{s}")]  # fmt: skip
    k = KINECT_V2_25
    assert undirected(k.limbs) == {frozenset((k.index(a), k.index(b))) for a, b in bones}
    assert k.joints[1] == "SpineMid" and k.center == 1
    assert k.joints[20] == "SpineShoulder"


def test_coco_skeleton() -> None:
    one_based = [(16, 14), (14, 12), (17, 15), (15, 13), (12, 13), (6, 12), (7, 13), (6, 7),
                 (6, 8), (7, 9), (8, 10), (9, 11), (2, 3), (1, 2), (1, 3), (2, 4), (3, 5),
                 (4, 6), (5, 7)]  # fmt: skip
    assert undirected(COCO_17.limbs) == undirected((a - 1, b - 1) for a, b in one_based)
    assert COCO_17.joints[COCO_17.center] == "nose"


@pytest.mark.parametrize("name", sorted(EXPECTED_SIZES))
def test_mirror_consistency(name: str) -> None:
    layout = get_layout(name)
    perm = layout.flip_permutation()
    assert sorted(perm) == list(range(layout.num_joints))
    assert all(perm[perm[i]] == i for i in range(layout.num_joints))
    paired = set()
    for left, right in layout.flip_pairs:
        ln, rn = layout.joints[left], layout.joints[right]
        assert side(ln) == "L", (ln, rn)
        assert side(rn) == "R", (ln, rn)
        assert unsided(ln) == unsided(rn), (ln, rn)
        paired |= {left, right}
    for i, joint in enumerate(layout.joints):
        if i not in paired:
            assert side(joint) is None, joint  # midline joints claim no side
    # Mirroring the person must map the limb graph onto itself.
    mirrored = {frozenset((perm[i], perm[j])) for i, j in layout.limbs}
    assert mirrored == undirected(layout.limbs)
    assert perm[layout.center] == layout.center


def test_flip_permutation_mirrors_keypoints() -> None:
    kp = np.arange(OPENPOSE_BODY_25.num_joints)[None, :]
    flipped = kp[:, list(OPENPOSE_BODY_25.flip_permutation())]
    assert flipped[0, OPENPOSE_BODY_25.index("LShoulder")] == OPENPOSE_BODY_25.index("RShoulder")
    assert flipped[0, OPENPOSE_BODY_25.index("Nose")] == OPENPOSE_BODY_25.index("Nose")


@pytest.mark.parametrize("name", sorted(EXPECTED_SIZES))
def test_limbs_canonical_and_adjacency(name: str) -> None:
    layout = get_layout(name)
    assert all(i < j for i, j in layout.limbs)
    assert list(layout.limbs) == sorted(layout.limbs)
    adj = layout.adjacency()
    assert adj.shape == (layout.num_joints,) * 2
    assert np.array_equal(adj, adj.T)
    assert not adj.diagonal().any()
    assert set(np.unique(adj).tolist()) <= {0.0, 1.0}
    assert int(adj.sum()) == 2 * len(layout.limbs)


def test_oriented_limbs_tree() -> None:
    k = KINECT_V2_25
    bones = k.oriented_limbs()
    children = [c for _, c in bones]
    assert sorted(children) == sorted(set(range(k.num_joints)) - {k.center})
    assert (k.index("ShoulderLeft"), k.index("ElbowLeft")) in bones
    assert (k.index("SpineMid"), k.index("SpineBase")) in bones


def test_centers() -> None:
    for layout in (OPENPOSE_BODY_25, OPENPOSE_137, IMIGUE_LIGHT_HAND_35, IMIGUE_MIGA_22,
                   MMGESTURE_36, OPENPOSE_68):  # fmt: skip
        assert layout.joints[layout.center] == "Neck"


def test_lookup_errors() -> None:
    with pytest.raises(KeyError, match="openpose_body_25"):
        get_layout("openpose_18")
    with pytest.raises(KeyError, match="RShoulder"):
        OPENPOSE_BODY_25.index("Shoulder")
    assert OPENPOSE_BODY_25.index("LWrist") == 7


# --- COCO-WholeBody 133 ------------------------------------------------------

# mmpose configs/_base_/datasets/coco_wholebody.py, written out: flip partners of the
# body, feet and hands (0-based), and the face's by its 300-W numbering.
MMPOSE_WB_BODY_FEET_FLIPS = [(1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14),
                             (15, 16), (17, 20), (18, 21), (19, 22)]  # fmt: skip
FACE_300W_FLIPS = [(k, 16 - k) for k in range(8)] + [(17 + k, 26 - k) for k in range(5)]
FACE_300W_FLIPS += [(31, 35), (32, 34), (36, 45), (37, 44), (38, 43), (39, 42), (40, 47),
                    (41, 46), (48, 54), (49, 53), (50, 52), (55, 59), (56, 58), (60, 64),
                    (61, 63), (65, 67)]  # fmt: skip


def test_wholebody_flip_pairs_are_mmposes() -> None:
    expected = {frozenset(p) for p in MMPOSE_WB_BODY_FEET_FLIPS}
    expected |= {frozenset((23 + a, 23 + b)) for a, b in FACE_300W_FLIPS}
    expected |= {frozenset((91 + k, 112 + k)) for k in range(21)}
    assert {frozenset(p) for p in COCO_WHOLEBODY_133.flip_pairs} == expected
    assert COCO_WHOLEBODY_133.joints[:17] == COCO_17.joints
    assert COCO_WHOLEBODY_133.joints[91] == "left_hand_root"
    assert COCO_WHOLEBODY_133.joints[132] == "right_pinky_finger4"


def test_derive_flip_pairs() -> None:
    assert derive_flip_pairs(["nose", "left_eye", "right_eye"]) == ((1, 2),)
    assert derive_flip_pairs(COCO_17.joints) == COCO_17.flip_pairs
    with pytest.raises(ValueError, match=r"left_toe.*no mirror joint 'right_toe'"):
        derive_flip_pairs(["left_toe", "nose"])


def _wholebody_case() -> np.ndarray:
    """Joint k at (k, 1000 + k) with score 0.5 + k / 1000: every value names its joint."""
    k = np.arange(133, dtype=np.float32)
    return np.stack([k, 1000 + k, 0.5 + k / 1000], -1)


def test_openpose_137_mapping_by_hand() -> None:
    wb = _wholebody_case()
    op = openpose_137_from_coco_wholebody(wb)
    assert op.shape == (137, 3) and op.dtype == np.float32

    def point(k: int) -> list[float]:
        return [k, 1000 + k, 0.5 + k / 1000]

    # BODY_25 by name (COCO: 5/6 shoulders, 9/10 wrists, 11/12 hips, 17-22 feet).
    np.testing.assert_allclose(op[0], point(0))  # Nose
    np.testing.assert_allclose(op[2], point(6))  # RShoulder <- right_shoulder
    np.testing.assert_allclose(op[7], point(9))  # LWrist <- left_wrist
    np.testing.assert_allclose(op[9], point(12))  # RHip
    np.testing.assert_allclose(op[15], point(2))  # REye
    np.testing.assert_allclose(op[18], point(3))  # LEar
    np.testing.assert_allclose(op[19], point(17))  # LBigToe
    np.testing.assert_allclose(op[24], point(22))  # RHeel
    # Neck and MidHip: midpoints, the smaller score.
    np.testing.assert_allclose(op[1], [5.5, 1005.5, 0.505], rtol=1e-6)
    np.testing.assert_allclose(op[8], [11.5, 1011.5, 0.511], rtol=1e-6)
    # Face: same order; pupils = eye-contour centres (face 36-41 -> 23+36.. = 59..64).
    np.testing.assert_allclose(op[25], point(23))
    np.testing.assert_allclose(op[25 + 67], point(90))
    np.testing.assert_allclose(op[25 + 68], [61.5, 1061.5, 0.559], rtol=1e-6)
    np.testing.assert_allclose(op[25 + 69], [67.5, 1067.5, 0.565], rtol=1e-6)
    # Hands: left 91-111 -> 95-115, right 112-132 -> 116-136.
    np.testing.assert_allclose(op[95], point(91))
    np.testing.assert_allclose(op[115], point(111))
    np.testing.assert_allclose(op[116], point(112))
    np.testing.assert_allclose(op[136], point(132))


def test_openpose_137_mapping_missing_points() -> None:
    wb = np.stack([_wholebody_case()] * 2)  # (2, 133, 3): any leading axes
    wb[0, 6] = 0  # right shoulder not detected -> no neck
    wb[1, 23 + 38, 2] = 0.1  # an eye point below min_score -> no right pupil
    op = openpose_137_from_coco_wholebody(wb, min_score=0.3)
    assert op.shape == (2, 137, 3)
    np.testing.assert_array_equal(op[0, 1], 0)
    np.testing.assert_array_equal(op[0, 2], 0)
    assert op[1, 1, 2] > 0
    np.testing.assert_array_equal(op[1, 25 + 68], 0)
    np.testing.assert_array_equal(op[1, 25 + 38], 0)
    assert op[1, 25 + 69, 2] > 0
    with pytest.raises(ValueError, match=r"\(\.\.\., 133, 3\)"):
        openpose_137_from_coco_wholebody(np.zeros((137, 3)))


def test_openpose_137_mapping_commutes_with_mirroring() -> None:
    # Mirroring the person then converting = converting then mirroring: the two
    # layouts' flip tables and the mapping agree on every side.
    rng = np.random.default_rng(0)
    wb = np.concatenate([rng.uniform(0, 100, (5, 133, 2)), rng.uniform(0.2, 1, (5, 133, 1))], -1)
    wb = wb.astype(np.float32)
    mirror_wb = wb[:, list(COCO_WHOLEBODY_133.flip_permutation())]
    mirror_op = openpose_137_from_coco_wholebody(wb)[:, list(OPENPOSE_137.flip_permutation())]
    np.testing.assert_allclose(openpose_137_from_coco_wholebody(mirror_wb), mirror_op, rtol=1e-6)


def test_light_hand_35_from_137_takes_fingertips() -> None:
    names = [OPENPOSE_137.joints[i] for i in IMIGUE_LIGHT_HAND_35_FROM_137]
    assert names[:25] == list(OPENPOSE_BODY_25.joints)
    assert names[25:] == [f"RHand{f}4" for f in ("Thumb", "Index", "Middle", "Ring", "Pinky")] + [
        f"LHand{f}4" for f in ("Thumb", "Index", "Middle", "Ring", "Pinky")
    ]
    assert IMIGUE_LIGHT_HAND_35.joints[25] == "RightFinger1"
