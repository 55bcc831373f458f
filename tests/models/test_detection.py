import math

import pytest
import torch
import torchvision

from mgr.models.backbones.temporal import TemporalDetectionNet
from mgr.models.detection import (
    DEFAULT_REGRESSION_RANGES,
    assign_targets,
    batched_nms_1d,
    decode,
    detection_loss,
    diou_loss_1d,
    encode,
    make_points,
    postprocess,
    segment_iou,
    sigmoid_focal_loss,
    soft_nms,
)

pytestmark = pytest.mark.usefixtures("one_thread")

INF = 1e4
RANGES_3 = ((0.0, 8.0), (8.0, 16.0), (16.0, INF))


def _points(t=96, levels=3, ranges=RANGES_3):
    lengths = [math.ceil(t / 2**lvl) for lvl in range(levels)]
    return make_points(lengths, [2**lvl for lvl in range(levels)], ranges)


# ---------------------------------------------------------------- points


def test_make_points_rows():
    pts = make_points([4, 2], [1, 2], DEFAULT_REGRESSION_RANGES)
    expected = [
        [0, 0, 4, 1],
        [1, 0, 4, 1],
        [2, 0, 4, 1],
        [3, 0, 4, 1],
        [0, 4, 8, 2],
        [2, 4, 8, 2],
    ]
    torch.testing.assert_close(pts, torch.tensor(expected, dtype=torch.float32))
    with pytest.raises(ValueError, match="strides"):
        make_points([4, 2], [1], RANGES_3)
    with pytest.raises(ValueError, match="regression ranges"):
        make_points([4, 2, 1, 1], [1, 2, 4, 8], RANGES_3)


# ---------------------------------------------------------------- assignment


def test_assign_targets_hand_made_case():
    pts = _points()  # levels 96, 48, 24 points; strides 1, 2, 4
    gts = torch.tensor([[10.0, 18.0], [40.0, 76.0]])
    labels = torch.tensor([2, 0])
    cls_t, reg_t = assign_targets(pts, gts, labels, num_classes=3, center_sample_radius=1.5)
    assert cls_t.shape == (96 + 48 + 24, 3) and reg_t.shape == (96 + 48 + 24, 2)
    pos = torch.nonzero(cls_t.sum(-1) > 0).squeeze(1)
    got = {(int(pts[i, 3]), int(pts[i, 0])): i for i in pos.tolist()}
    # GT of length 8: centre 14, radius 1.5 at stride 1 -> t in (12.5, 15.5); level 0 range [0, 8].
    # GT of length 36: centre 58, only level 2 (range >= 16): t in (52, 64) at stride 4.
    assert sorted(got) == [(1, 13), (1, 14), (1, 15), (4, 56), (4, 60)]
    expected = {
        (1, 13): ([3.0, 5.0], 2),
        (1, 14): ([4.0, 4.0], 2),
        (1, 15): ([5.0, 3.0], 2),
        (4, 56): ([16 / 4, 20 / 4], 0),
        (4, 60): ([20 / 4, 16 / 4], 0),
    }
    for key, (offsets, label) in expected.items():
        i = got[key]
        torch.testing.assert_close(reg_t[i], torch.tensor(offsets))
        assert cls_t[i].tolist() == [float(k == label) for k in range(3)]
    negatives = torch.ones(len(pts), dtype=torch.bool)
    negatives[pos] = False
    assert (reg_t[negatives] == 0).all() and (cls_t[negatives] == 0).all()


def test_assign_targets_without_centre_sampling_uses_whole_segment():
    pts = _points()
    cls_t, _ = assign_targets(pts, torch.tensor([[10.0, 18.0]]), torch.tensor([1]), 3, 0.0)
    pos_t = pts[cls_t.sum(-1) > 0]
    # strictly inside (10, 18) at stride 1, max distance <= 8: all of 11..17
    assert pos_t[:, 0].tolist() == [11, 12, 13, 14, 15, 16, 17]


def test_assign_targets_shortest_gt_wins_and_ties_are_multilabel():
    pts = make_points([40], [1], [(0.0, INF)])
    gts = torch.tensor([[0.0, 30.0], [12.0, 18.0], [12.0, 18.0]])
    cls_t, reg_t = assign_targets(pts, gts, torch.tensor([0, 1, 2]), 3, center_sample_radius=-1)
    assert cls_t[15].tolist() == [0.0, 1.0, 1.0]  # the two identical short GTs
    torch.testing.assert_close(reg_t[15], torch.tensor([3.0, 3.0]))
    assert cls_t[5].tolist() == [1.0, 0.0, 0.0]


def test_assign_targets_no_gt():
    pts = _points(t=16)
    cls_t, reg_t = assign_targets(pts, torch.zeros(0, 2), torch.zeros(0, dtype=torch.long), 4)
    assert cls_t.shape == (16 + 8 + 4, 4) and (cls_t == 0).all() and (reg_t == 0).all()


def test_decode_encode_identity():
    pts = _points(t=32)
    g = torch.Generator().manual_seed(0)
    segs = torch.rand(len(pts), 2, generator=g) * 40
    segs = torch.sort(segs, dim=-1).values
    torch.testing.assert_close(decode(pts, encode(pts, segs)), segs)
    offs = torch.rand(2, len(pts), 2, generator=g) * 5  # batched offsets
    torch.testing.assert_close(encode(pts, decode(pts, offs)), offs)


def test_decoding_assigned_targets_recovers_the_gt():
    pts = _points()
    gts = torch.tensor([[10.0, 18.0], [40.0, 76.0]])
    cls_t, reg_t = assign_targets(pts, gts, torch.tensor([2, 0]), 3)
    pos = cls_t.sum(-1) > 0
    segs = decode(pts[pos], reg_t[pos])
    labels = cls_t[pos].argmax(-1)
    for seg, lab in zip(segs, labels, strict=True):
        torch.testing.assert_close(seg, gts[0] if lab == 2 else gts[1])


# ---------------------------------------------------------------- losses


def test_focal_loss_matches_torchvision():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 30, 5, generator=g) * 3
    targets = (torch.rand(2, 30, 5, generator=g) > 0.9).float()
    num_pos = (targets.sum(-1) > 0).sum().clamp(min=1)
    ref = torchvision.ops.sigmoid_focal_loss(logits, targets, 0.25, 2.0, reduction="sum") / num_pos
    torch.testing.assert_close(sigmoid_focal_loss(logits, targets), ref)
    # alpha disabled, explicit normaliser, validity mask
    valid = torch.rand(2, 30, generator=g) > 0.3
    ref = torchvision.ops.sigmoid_focal_loss(logits[valid], targets[valid], -1, 1.5, "sum") / 7.0
    got = sigmoid_focal_loss(logits, targets, alpha=-1, gamma=1.5, valid=valid, normalizer=7.0)
    torch.testing.assert_close(got, ref)


def test_diou_closed_form():
    # pred [t-1, t+3], gt [t-2, t+2]: IoU 3/5, centres 1 apart, enclosure 5 -> 1 - 0.6 + 0.04
    pred = torch.tensor([[1.0, 3.0], [2.0, 2.0], [1.0, 1.0]])
    gt = torch.tensor([[2.0, 2.0], [2.0, 2.0], [0.5, 3.0]])
    # third: pred [-1, 1], gt [-0.5, 3]: inter 1.5, union 4, centres 0 vs 1.25, enclosure 4
    expected = torch.tensor([0.44, 0.0, 1 - 1.5 / 4 + (1.25 / 4) ** 2])
    torch.testing.assert_close(diou_loss_1d(pred, gt, reduction="none"), expected)
    torch.testing.assert_close(diou_loss_1d(pred, gt), expected.sum())
    torch.testing.assert_close(diou_loss_1d(pred, gt, reduction="mean"), expected.mean())


def test_diou_agrees_with_absolute_segment_formula():
    g = torch.Generator().manual_seed(1)
    pred, gt = torch.rand(50, 2, generator=g) * 4, torch.rand(50, 2, generator=g) * 4
    ps, pe, gs, ge = -pred[:, 0], pred[:, 1], -gt[:, 0], gt[:, 1]
    inter = (torch.minimum(pe, ge) - torch.maximum(ps, gs)).clamp(min=0)
    iou = inter / ((pe - ps) + (ge - gs) - inter)
    rho = (ps + pe) / 2 - (gs + ge) / 2
    c = torch.maximum(pe, ge) - torch.minimum(ps, gs)
    torch.testing.assert_close(diou_loss_1d(pred, gt, "none"), 1 - iou + (rho / c) ** 2)


def test_detection_loss_is_finite_with_zero_offsets_and_counts_positives():
    pts = _points(t=32)
    cls_t, reg_t = assign_targets(pts, torch.tensor([[4.0, 12.0]]), torch.tensor([1]), 2)
    n = len(pts)
    logits = torch.zeros(1, n, 2, requires_grad=True)
    offsets = torch.zeros(1, n, 2, requires_grad=True)
    valid = torch.ones(1, n, dtype=torch.bool)
    out = detection_loss(logits, offsets, valid, cls_t[None], reg_t[None], label_smoothing=0.1)
    out["loss"].backward()
    assert out["num_pos"] == (cls_t.sum(-1) > 0).sum()
    assert torch.isfinite(logits.grad).all() and torch.isfinite(offsets.grad).all()
    torch.testing.assert_close(out["loss"], out["cls_loss"] + out["reg_loss"])


# ---------------------------------------------------------------- NMS


def _python_soft_nms(segs, scores, labels, sigma, min_score, max_det):
    """Gaussian soft-NMS per class, written from the formula with plain lists."""
    out = []
    for c in sorted(set(labels)):
        items = [[s, sc] for s, sc, lab in zip(segs, scores, labels, strict=True) if lab == c]
        items = [it for it in items if it[1] >= min_score]
        while items:
            best = max(range(len(items)), key=lambda i: items[i][1])
            (bs, be), bsc = items.pop(best)
            out.append(((bs, be), bsc, c))
            for it in items:
                (s, e) = it[0]
                inter = max(0.0, min(be, e) - max(bs, s))
                iou = inter / ((be - bs) + (e - s) - inter)
                it[1] *= math.exp(-(iou**2) / sigma)
            items = [it for it in items if it[1] >= min_score]
    out.sort(key=lambda r: -r[1])
    return out[:max_det]


@pytest.mark.parametrize(("min_score", "max_det"), [(0.001, 100), (0.2, 100), (0.001, 7)])
def test_soft_nms_matches_python_loop(min_score, max_det):
    g = torch.Generator().manual_seed(3)
    n = 40
    starts = torch.rand(n, generator=g, dtype=torch.float64) * 50
    segs = torch.stack(
        [starts, starts + 2 + torch.rand(n, generator=g, dtype=torch.float64) * 10], 1
    )
    scores = torch.rand(n, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 3, (n,), generator=g)
    got_s, got_sc, got_l = soft_nms(
        segs, scores, labels, sigma=0.5, min_score=min_score, max_detections=max_det
    )
    ref = _python_soft_nms(segs.tolist(), scores.tolist(), labels.tolist(), 0.5, min_score, max_det)
    assert len(got_sc) == len(ref)
    torch.testing.assert_close(got_s, torch.tensor([r[0] for r in ref], dtype=torch.float64))
    torch.testing.assert_close(got_sc, torch.tensor([r[1] for r in ref], dtype=torch.float64))
    assert got_l.tolist() == [r[2] for r in ref]
    assert (got_sc[:-1] >= got_sc[1:]).all()


def test_soft_nms_other_methods_and_empty():
    segs = torch.tensor([[0.0, 10.0], [1.0, 10.0], [20.0, 30.0]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    labels = torch.tensor([0, 0, 0])
    iou = 9.0 / 10.0
    _, sc, _ = soft_nms(segs, scores, labels, method="linear", iou_threshold=0.5)
    torch.testing.assert_close(sc, torch.tensor([0.9, 0.7, 0.8 * (1 - iou)]))
    s, sc, _ = soft_nms(segs, scores, labels, method="hard", iou_threshold=0.5)
    torch.testing.assert_close(sc, torch.tensor([0.9, 0.7]))
    # other class: untouched
    _, sc, _ = soft_nms(segs, scores, torch.tensor([0, 1, 0]))
    torch.testing.assert_close(sc, scores)
    s, sc, lab = soft_nms(torch.zeros(0, 2), torch.zeros(0), torch.zeros(0, dtype=torch.long))
    assert s.shape == (0, 2) and sc.shape == (0,) and lab.shape == (0,)


def test_batched_nms_1d_is_per_class_hard_nms():
    segs = torch.tensor([[0.0, 10.0], [1.0, 10.0], [0.0, 10.0], [5.0, 15.0], [30.0, 31.0]])
    scores = torch.tensor([0.9, 0.8, 0.85, 0.7, 0.01])
    labels = torch.tensor([0, 0, 1, 0, 0])
    s, sc, lab = batched_nms_1d(segs, scores, labels, iou_threshold=0.5, min_score=0.05)
    # [1, 10] overlaps [0, 10] with IoU 0.9 (same class) -> removed; [5, 15] IoU 1/3 -> kept;
    # class 1 duplicate kept; the low score dropped by min_score.
    torch.testing.assert_close(sc, torch.tensor([0.9, 0.85, 0.7]))
    assert lab.tolist() == [0, 1, 0]
    torch.testing.assert_close(s, segs[[0, 2, 3]])
    assert len(batched_nms_1d(segs, scores, labels, 0.5, max_detections=2)[0]) == 2


def test_segment_iou():
    a = torch.tensor([[0.0, 10.0], [5.0, 6.0]])
    b = torch.tensor([[5.0, 15.0], [20.0, 30.0]])
    torch.testing.assert_close(segment_iou(a, b), torch.tensor([[5 / 15, 0.0], [0.1, 0.0]]))


def test_postprocess_decodes_the_confident_point():
    pts = _points(t=16, ranges=RANGES_3)
    n = len(pts)
    logits = torch.full((n, 2), -10.0)
    offsets = torch.ones(n, 2)
    logits[5, 1] = 3.0  # level 0, t=5 -> [4, 6]
    logits[16 + 3, 0] = 2.0  # level 1, t=6, stride 2 -> [4, 8]
    valid = torch.ones(n, dtype=torch.bool)
    valid[16 + 3] = False  # ... but padded
    segs, scores, labels = postprocess(pts, logits, offsets, valid, nms="soft")
    torch.testing.assert_close(segs, torch.tensor([[4.0, 6.0]]))
    torch.testing.assert_close(scores, torch.sigmoid(torch.tensor([3.0])))
    assert labels.tolist() == [1]
    segs, _, _ = postprocess(pts, logits, offsets, None, nms="hard", iou_threshold=0.5)
    assert segs.tolist() == [[4.0, 6.0], [4.0, 8.0]]


# ---------------------------------------------------------------- overfitting


def test_heads_and_losses_overfit_one_sequence():
    # Full net (DynE pyramid + MSTA + heads) + focal/DIoU, 60 AdamW steps: ~3 s on one thread.
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    x = 0.1 * torch.randn(1, 16, 64, generator=g)
    gt = torch.tensor([[20.0, 36.0]])
    bump = torch.sin(torch.linspace(0, math.pi, 16))
    x[0, :8, 20:36] += 2.0 * bump  # the instance: a bump on half the channels
    net = TemporalDetectionNet(16, 3, embed_dim=16, num_levels=3, arch="dyn", msta=True)
    ranges = ((0.0, 4.0), (4.0, 8.0), (8.0, INF))
    out = net(x)
    pts = make_points(out["lengths"], net.strides, ranges)
    cls_t, reg_t = assign_targets(pts, gt, torch.tensor([1]), 3)
    assert (cls_t.sum(-1) > 0).sum() > 0
    opt = torch.optim.AdamW(net.parameters(), lr=1e-2)
    for _ in range(60):
        out = net(x)
        loss = detection_loss(
            out["cls_logits"], out["offsets"], out["mask"], cls_t[None], reg_t[None]
        )["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    with torch.no_grad():
        out = net(x)
    segs, _, labels = postprocess(pts, out["cls_logits"][0], out["offsets"][0], out["mask"][0])
    assert labels[0] == 1
    assert segment_iou(segs[:1], gt)[0, 0] > 0.5
