"""Tests of mgr.metrics: temporal IoU, SMG online F1, ActivityNet temporal mAP."""

from __future__ import annotations

import math
import os
import random
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from mgr.metrics import (
    DEFAULT_TIOU_THRESHOLDS,
    OnlineF1,
    TemporalMAP,
    interpolated_average_precision,
    segment_iou,
    temporal_iou,
)

# ----------------------------------------------------------------------------- helpers

NOT_UPDATED = pytest.mark.filterwarnings("ignore:The ``compute`` method of metric")


def vid(segments, labels, scores=None):
    d = {
        "segments": torch.tensor(segments, dtype=torch.float32).reshape(-1, 2),
        "labels": torch.tensor(labels, dtype=torch.long),
    }
    if scores is not None:
        d["scores"] = torch.tensor(scores, dtype=torch.float32)
    return d


def f1_of(preds, targets, **kwargs):
    m = OnlineF1(**kwargs)
    m.update(preds, targets)
    return {k: v.item() for k, v in m.compute().items()}


def map_of(preds, targets, **kwargs):
    m = TemporalMAP(**kwargs)
    m.update(preds, targets)
    return {k: v.item() for k, v in m.compute().items()}


def random_videos(seed, n_videos=50, n_classes=4, max_gt=6, max_pred=8, length=200):
    """Integer frame segments (so IoU ties happen), float32 scores."""
    rng = random.Random(seed)
    preds, targets = [], []
    for _ in range(n_videos):
        gts = []
        for _ in range(rng.randint(0, max_gt)):
            s = rng.randint(0, length - 2)
            gts.append((s, min(length, s + rng.randint(1, 40)), rng.randrange(n_classes)))
        ps = []
        for _ in range(rng.randint(0, max_pred)):
            if gts and rng.random() < 0.6:  # jitter a GT (sometimes with a wrong label)
                s, e, c = rng.choice(gts)
                s = max(0, s + rng.randint(-8, 8))
                e = max(s + 1, e + rng.randint(-8, 8))
                c = c if rng.random() < 0.8 else rng.randrange(n_classes)
            else:
                s = rng.randint(0, length - 2)
                e, c = s + rng.randint(1, 40), rng.randrange(n_classes)
            ps.append((s, e, c))
        scores = torch.rand(len(ps), generator=torch.Generator().manual_seed(rng.randrange(10**9)))
        preds.append(vid([p[:2] for p in ps], [p[2] for p in ps], scores.tolist()))
        targets.append(vid([g[:2] for g in gts], [g[2] for g in gts]))
    return preds, targets


def as_lists(d):
    segs = [tuple(float(x) for x in row) for row in d["segments"].tolist()]
    labels = [int(x) for x in d["labels"].tolist()]
    scores = [float(x) for x in d["scores"].tolist()] if "scores" in d else None
    return segs, labels, scores


# ----------------------------------------------------------------------------- IoU


def test_temporal_iou_values():
    a = torch.tensor([[0.0, 10.0], [0.0, 10.0], [5.0, 5.0]])
    b = torch.tensor([[5.0, 15.0], [0.0, 3.0], [20.0, 30.0], [5.0, 5.0]])
    iou = temporal_iou(a, b)
    assert iou.shape == (3, 4)
    expected = torch.tensor(
        [
            [5 / 15, 3 / 10, 0.0, 0.0],  # overlap; contained (= 0.3); disjoint; zero-length
            [5 / 15, 3 / 10, 0.0, 0.0],
            [0.0, 0.0, 0.0, 0.0],  # zero-length vs anything, incl. itself (0/0 -> 0)
        ]
    )
    torch.testing.assert_close(iou, expected)
    assert not torch.isnan(iou).any()
    assert not torch.isnan(segment_iou(a, b)).any()
    # touching segments: 0; integer inputs computed in float64
    iou_int = temporal_iou(torch.tensor([[0, 10]]), torch.tensor([[10, 20], [0, 10]]))
    assert iou_int.dtype == torch.float64
    assert iou_int.tolist() == [[0.0, 1.0]]
    assert temporal_iou(torch.zeros(0, 2), b).shape == (0, 4)


def test_iou_definitions_agree_and_start_kit_formula():
    """Hull (start kit) vs union (ActivityNet): equal for overlapping segments."""
    g = torch.Generator().manual_seed(0)
    s = torch.randint(0, 100, (300, 1), generator=g)
    seg = torch.cat([s, s + torch.randint(0, 30, (300, 1), generator=g)], 1)
    a, b = seg[:150], seg[150:]
    # integer frames: exactly equal everywhere (disjoint: both 0)
    assert torch.equal(temporal_iou(a, b), segment_iou(a, b))
    # and equal to the start kit's raw alpha wherever segments overlap
    af, bf = a.double(), b.double()
    raw = (
        torch.minimum(af[:, None, 1], bf[None, :, 1])
        - torch.maximum(af[:, None, 0], bf[None, :, 0])
    ) / (
        torch.maximum(af[:, None, 1], bf[None, :, 1])
        - torch.minimum(af[:, None, 0], bf[None, :, 0])
    )
    overlap = raw >= 0
    assert overlap.any() and (~overlap).any()
    assert torch.equal(temporal_iou(a, b)[overlap], raw[overlap])
    # real-valued times: equal up to rounding
    x = torch.rand(200, 1, generator=g, dtype=torch.float64) * 10
    segf = torch.cat([x, x + torch.rand(200, 1, generator=g, dtype=torch.float64)], 1)
    torch.testing.assert_close(
        temporal_iou(segf[:100], segf[100:]), segment_iou(segf[:100], segf[100:])
    )


# ----------------------------------------------------------------------------- OnlineF1


def test_f1_exact_matches():
    preds = [vid([[0, 10], [20, 30], [40, 50]], [1, 2, 3], [0.9, 0.8, 0.7])]
    targets = [vid([[0, 10], [20, 30], [40, 50]], [1, 2, 3])]
    for one_to_one in (True, False):
        r = f1_of(preds, targets, one_to_one=one_to_one)
        assert (r["hits"], r["num_preds"], r["num_gts"]) == (3, 3, 3)
        assert r["f1"] == r["precision"] == r["recall"] == 1.0


def test_f1_iou_exactly_threshold_is_not_a_hit():
    targets = [vid([[0, 10]], [0])]
    preds = [vid([[0, 3]], [0], [1.0])]  # IoU = 3 / 10 = 0.3 exactly
    assert f1_of(preds, targets)["hits"] == 0
    assert f1_of(preds, targets, one_to_one=False)["hits"] == 0
    assert f1_of(preds, targets, iou_threshold=0.29)["hits"] == 1
    # int frame tensors behave the same (computed in float64)
    pi = [{"segments": torch.tensor([[0, 3]]), "labels": torch.tensor([0])}]
    ti = [{"segments": torch.tensor([[0, 10]]), "labels": torch.tensor([0])}]
    assert f1_of(pi, ti)["hits"] == 0
    assert f1_of([vid([[0, 4]], [0], [1.0])], targets)["hits"] == 1  # 0.4 > 0.3


def test_f1_label_mismatch():
    r = f1_of([vid([[0, 10]], [1], [1.0])], [vid([[0, 10]], [2])])
    assert r["hits"] == 0 and r["f1"] == 0.0 and r["num_preds"] == 1 and r["num_gts"] == 1


def test_f1_double_count_one_prediction_two_gts():
    # pred [1, 11] vs GT [0, 10]: 9/11; vs GT [2, 12]: 9/11 -> both > 0.3
    preds = [vid([[1, 11]], [0], [1.0])]
    targets = [vid([[0, 10], [2, 12]], [0, 0])]
    r = f1_of(preds, targets, one_to_one=True)
    assert r["hits"] == 1
    assert r["precision"] == pytest.approx(1.0)
    assert r["recall"] == pytest.approx(0.5)
    assert r["f1"] == pytest.approx(2 / 3)
    r = f1_of(preds, targets, one_to_one=False)  # start kit: counted for both GTs
    assert r["hits"] == 2
    assert r["precision"] == pytest.approx(2.0)  # can exceed 1
    assert r["recall"] == pytest.approx(1.0)
    assert r["f1"] == pytest.approx(4 / 3)


def test_f1_greedy_order_gts_in_order_highest_score_first():
    # GT1 [0,10], GT2 [6,16]; pa [0,10]: IoU 1 with GT1, 4/16 with GT2;
    # pb [4,14]: 6/14 with GT1, 8/12 with GT2.
    targets = [vid([[0, 10], [6, 16]], [0, 0])]
    seg, lab = [[0, 10], [4, 14]], [0, 0]
    # pb scores higher -> GT1 takes pb, GT2 has nothing left (greedy, not optimal)
    assert f1_of([vid(seg, lab, [0.1, 0.9])], targets)["hits"] == 1
    # pa scores higher -> GT1 takes pa, GT2 takes pb
    assert f1_of([vid(seg, lab, [0.9, 0.1])], targets)["hits"] == 2
    # no scores -> given order (pa first)
    assert f1_of([vid(seg, lab)], targets)["hits"] == 2
    # equal scores -> the earlier prediction
    assert f1_of([vid(seg[::-1], lab, [0.5, 0.5])], targets)["hits"] == 1


def test_f1_pooled_over_videos():
    preds = [
        vid([[0, 10]], [0], [0.9]),  # hits GT [0, 10]
        vid([[0, 10], [30, 40], [50, 60]], [1, 1, 2], [0.9, 0.8, 0.7]),  # 1 hit of 3
    ]
    targets = [vid([[0, 10], [20, 30]], [0, 0]), vid([[1, 10]], [1])]
    r = f1_of(preds, targets)
    p, rc = 2 / 4, 2 / 3
    assert (r["hits"], r["num_preds"], r["num_gts"]) == (2, 4, 3)
    assert r["precision"] == pytest.approx(p)
    assert r["recall"] == pytest.approx(rc)
    assert r["f1"] == pytest.approx(2 * p * rc / (p + rc))  # micro, not mean of per-video F1


@NOT_UPDATED
def test_f1_empty_cases_are_zero_not_nan():
    some = vid([[0, 10]], [0], [1.0])
    none = vid([], [], [])
    for preds, targets, counts in [
        ([none], [vid([[0, 10]], [0])], (0, 0, 1)),  # no predictions
        ([some], [vid([], [])], (0, 1, 0)),  # no GTs
        ([none], [vid([], [])], (0, 0, 0)),  # neither
        ([], [], (0, 0, 0)),  # no videos
    ]:
        r = f1_of(preds, targets)
        assert (r["hits"], r["num_preds"], r["num_gts"]) == counts
        assert r["f1"] == r["precision"] == r["recall"] == 0.0
    r = {k: v.item() for k, v in OnlineF1().compute().items()}  # never updated
    assert r["f1"] == 0.0 and not math.isnan(r["precision"])
    # empty segments given as shape (0,) are accepted
    r = f1_of([{"segments": torch.zeros(0), "labels": torch.zeros(0)}], [vid([[0, 1]], [0])])
    assert r["num_preds"] == 0 and r["num_gts"] == 1


def start_kit_counts(preds, targets, threshold=0.3):
    """The tester_SMG loop, from its description (datasets.md 1.5), in plain Python."""
    correct = n_gt = n_pred = 0
    for pred, target in zip(preds, targets, strict=True):
        p_segs, p_labels, _ = as_lists(pred)
        g_segs, g_labels, _ = as_lists(target)
        for (gb, ge), gl in zip(g_segs, g_labels, strict=True):
            for (pb, pe), pl in zip(p_segs, p_labels, strict=True):
                if pl == gl:
                    den = max(pe, ge) - min(pb, gb)
                    alpha = (min(pe, ge) - max(pb, gb)) / den if den else float("nan")
                    if alpha > threshold:
                        correct += 1
                        break  # the kit's numpy.delete is a no-op: nothing is removed
        n_gt += len(g_segs)
        n_pred += len(p_segs)
    recall = correct / n_gt
    precision = correct / n_pred
    return correct, n_pred, n_gt, 2 * recall * precision / (recall + precision + 1e-7)


def greedy_counts(preds, targets, threshold=0.3):
    """One-to-one greedy, plain Python: GTs in order, best-scoring free prediction."""
    hits = 0
    for pred, target in zip(preds, targets, strict=True):
        p_segs, p_labels, p_scores = as_lists(pred)
        g_segs, g_labels, _ = as_lists(target)
        order = sorted(range(len(p_segs)), key=lambda i: -p_scores[i])
        used = set()
        for (gb, ge), gl in zip(g_segs, g_labels, strict=True):
            for i in order:
                (pb, pe), pl = p_segs[i], p_labels[i]
                den = max(pe, ge) - min(pb, gb)
                if i in used or pl != gl or not den:
                    continue
                if (min(pe, ge) - max(pb, gb)) / den > threshold:
                    used.add(i)
                    hits += 1
                    break
    return hits


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_f1_matches_start_kit_and_greedy_reference(seed):
    preds, targets = random_videos(seed)
    correct, n_pred, n_gt, f1 = start_kit_counts(preds, targets)
    r = f1_of(preds, targets, one_to_one=False)
    assert (r["hits"], r["num_preds"], r["num_gts"]) == (correct, n_pred, n_gt)
    assert r["f1"] == pytest.approx(f1, abs=1e-6)
    r1 = f1_of(preds, targets, one_to_one=True)
    assert r1["hits"] == greedy_counts(preds, targets)
    assert r1["hits"] <= r["hits"]
    assert correct > 0 and n_gt > 0


@NOT_UPDATED
def test_f1_update_in_pieces_and_reset():
    preds, targets = random_videos(5, n_videos=20)
    for one_to_one in (True, False):
        whole = OnlineF1(one_to_one=one_to_one)
        whole.update(preds, targets)
        pieces = OnlineF1(one_to_one=one_to_one)
        for i in range(0, 20, 3):
            pieces.update(preds[i : i + 3], targets[i : i + 3])
        a, b = whole.compute(), pieces.compute()
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), k
        pieces.reset()
        assert pieces.compute()["num_gts"].item() == 0
        pieces.update(preds, targets)
        assert torch.equal(pieces.compute()["f1"], a["f1"])


def test_f1_input_validation():
    m = OnlineF1()
    with pytest.raises(ValueError, match="prediction dicts"):
        m.update([vid([[0, 1]], [0])], [])
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        m.update([{"segments": torch.zeros(3), "labels": torch.zeros(3)}], [vid([], [])])
    with pytest.raises(ValueError, match="ends before"):
        m.update([vid([[5, 1]], [0])], [vid([], [])])
    with pytest.raises(ValueError, match="labels"):
        m.update([vid([[0, 1]], [0, 1])], [vid([], [])])
    with pytest.raises(ValueError, match="iou_threshold"):
        OnlineF1(iou_threshold=1.5)


# ----------------------------------------------------------------------------- TemporalMAP


def test_interpolated_ap_by_hand():
    # ranks TP, FP, TP with 2 GTs: P = 1, 1/2, 2/3; R = 1/2, 1/2, 1
    prec = torch.tensor([1.0, 0.5, 2 / 3], dtype=torch.float64)
    rec = torch.tensor([0.5, 0.5, 1.0], dtype=torch.float64)
    # envelope 1, 2/3, 2/3 -> 0.5 * 1 + 0.5 * 2/3
    assert interpolated_average_precision(prec, rec).item() == pytest.approx(5 / 6)
    both = interpolated_average_precision(torch.stack([prec, prec], 1), torch.stack([rec, rec], 1))
    assert both.shape == (2,)


def test_map_hand_computed():
    targets = [vid([[0, 10], [20, 30]], [0, 0])]
    preds = [vid([[0, 10], [40, 50], [20, 30]], [0, 0, 0], [0.9, 0.8, 0.7])]  # TP, FP, TP
    r = map_of(preds, targets)
    assert set(r) == {"mAP", "mAP@0.3", "mAP@0.4", "mAP@0.5", "mAP@0.6", "mAP@0.7"}
    for k in r:
        assert r[k] == pytest.approx(5 / 6), k


def test_map_threshold_inclusive_and_duplicates():
    # IoU exactly 0.5: TP at 0.3, 0.4, 0.5 (>=), FP at 0.6, 0.7 -> mAP = 3/5
    r = map_of([vid([[0, 5]], [0], [1.0])], [vid([[0, 10]], [0])])
    assert [r[f"mAP@{t}"] for t in (0.3, 0.4, 0.5, 0.6, 0.7)] == [1, 1, 1, 0, 0]
    assert r["mAP"] == pytest.approx(0.6)
    # a duplicate on an already matched GT is a FP: TP then FP -> AP 1 (envelope)
    r = map_of([vid([[0, 10], [0, 10]], [0, 0], [0.9, 0.8])], [vid([[0, 10]], [0])])
    assert r["mAP"] == pytest.approx(1.0)
    # FP first then TP: P = 0, 1/2, R = 0, 1 -> AP 1/2
    r = map_of([vid([[50, 60], [0, 10]], [0, 0], [0.9, 0.8])], [vid([[0, 10]], [0])])
    assert r["mAP"] == pytest.approx(0.5)


def test_map_highest_iou_gt_is_taken():
    # pred1 [5,13] has IoU 5/13 = 0.385 with GT-a [0,10] and 8/10 with GT-b [5,15]: it
    # takes GT-b, so pred2 [5,15] (exact on GT-b, 5/15 = 0.333 < 0.35 with GT-a) is a FP.
    # Had pred1 taken GT-a, pred2 would be a TP and AP = 1.
    targets = [vid([[0, 10], [5, 15]], [0, 0])]
    preds = [vid([[5, 13], [5, 15]], [0, 0], [0.9, 0.8])]
    r = map_of(preds, targets, iou_thresholds=[0.35])
    # ranks TP, FP with 2 GTs: AP = 0.5 * 1 = 0.5
    assert r["mAP"] == pytest.approx(0.5)


def test_map_perfect_detector_and_classes():
    preds, targets = random_videos(3, n_videos=10)
    perfect = [
        {**t, "scores": torch.rand(len(t["labels"]), generator=torch.Generator().manual_seed(i))}
        for i, t in enumerate(targets)
    ]
    r = map_of(perfect, targets)
    for k in r:
        assert r[k] == pytest.approx(1.0), k
    # class 0 perfect, class 1 has a GT but no prediction -> mean of (1, 0);
    # class 2 has only predictions (no GT) -> ignored
    targets = [vid([[0, 10], [20, 30]], [0, 1])]
    preds = [vid([[0, 10], [20, 30]], [0, 2], [0.9, 0.95])]
    assert map_of(preds, targets)["mAP"] == pytest.approx(0.5)


def test_map_matching_stays_per_video():
    # the pred of video 1 lies on video 0's GT coordinates: a FP, not a hit
    targets = [vid([[0, 10]], [0]), vid([[50, 60]], [0])]
    preds = [vid([], [], []), vid([[0, 10], [50, 60]], [0, 0], [0.9, 0.1])]
    # ranks FP, TP with 2 GTs: P = 0, 1/2; R = 0, 1/2 -> AP = 0.5 * 0.5
    assert map_of(preds, targets)["mAP"] == pytest.approx(0.25)


@NOT_UPDATED
def test_map_empty_cases_are_zero_not_nan():
    for preds, targets in [
        ([vid([], [], [])], [vid([[0, 10]], [0])]),  # GTs, no predictions
        ([vid([[0, 10]], [0], [1.0])], [vid([], [])]),  # predictions, no GT
        ([], []),
    ]:
        r = map_of(preds, targets)
        assert all(v == 0.0 for v in r.values()), r
    r = TemporalMAP().compute()  # never updated
    assert all(v.item() == 0.0 for v in r.values())


def reference_map(preds, targets, thresholds):
    """Loop-based ActivityNet compute_average_precision_detection + interpolated_prec_rec."""
    videos = [(as_lists(p), as_lists(t)) for p, t in zip(preds, targets, strict=True)]
    classes = sorted({lab for _, (_, labs, _) in videos for lab in labs})

    def iou(a, b):
        inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
        union = (a[1] - a[0]) + (b[1] - b[0]) - inter
        return inter / union if union > 0 else 0.0

    per_thr = {t: [] for t in thresholds}
    for c in classes:
        gts = {
            v: [s for s, lab in zip(t[0], t[1], strict=True) if lab == c]
            for v, (_, t) in enumerate(videos)
        }
        npos = sum(len(g) for g in gts.values())
        dets = [
            (sc, v, s)
            for v, ((segs, labs, scs), _) in enumerate(videos)
            for s, lab, sc in zip(segs, labs, scs, strict=True)
            if lab == c
        ]
        dets = sorted(dets, key=lambda d: -d[0])
        for thr in thresholds:
            locked, tp, fp = set(), [], []
            for _, v, seg in dets:
                cands = sorted(
                    ((iou(seg, g), j) for j, g in enumerate(gts[v])), key=lambda x: -x[0]
                )
                hit = False
                for value, j in cands:
                    if value < thr:
                        break
                    if (v, j) in locked:
                        continue
                    locked.add((v, j))
                    hit = True
                    break
                tp.append(int(hit))
                fp.append(int(not hit))
            ctp = cfp = 0
            prec, rec = [], []
            for a, b in zip(tp, fp, strict=True):
                ctp, cfp = ctp + a, cfp + b
                prec.append(ctp / (ctp + cfp))
                rec.append(ctp / npos)
            mprec, mrec = [0.0, *prec, 0.0], [0.0, *rec, 1.0]
            for i in range(len(mprec) - 2, -1, -1):
                mprec[i] = max(mprec[i], mprec[i + 1])
            ap = sum(
                (mrec[i] - mrec[i - 1]) * mprec[i]
                for i in range(1, len(mrec))
                if mrec[i] != mrec[i - 1]
            )
            per_thr[thr].append(ap)
    means = {t: sum(v) / len(v) if v else 0.0 for t, v in per_thr.items()}
    return sum(means.values()) / len(means), means


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_map_matches_loop_reference(seed):
    preds, targets = random_videos(100 + seed)
    r = map_of(preds, targets)
    ref, ref_thr = reference_map(preds, targets, DEFAULT_TIOU_THRESHOLDS)
    assert 0.05 < ref < 0.95  # a non-trivial case
    assert r["mAP"] == pytest.approx(ref, abs=1e-6)
    for t in DEFAULT_TIOU_THRESHOLDS:
        assert r[f"mAP@{t}"] == pytest.approx(ref_thr[t], abs=1e-6)
    thr = [0.1, 0.25, 0.5, 0.75, 0.95]
    r = map_of(preds, targets, iou_thresholds=thr)
    assert r["mAP"] == pytest.approx(reference_map(preds, targets, thr)[0], abs=1e-6)
    assert "mAP@0.25" in r and "mAP@0.95" in r


@NOT_UPDATED
def test_map_update_in_pieces_merge_and_reset():
    preds, targets = random_videos(7, n_videos=30)
    whole = TemporalMAP()
    whole.update(preds, targets)
    a = whole.compute()
    pieces = TemporalMAP()
    for i in range(0, 30, 4):
        pieces.update(preds[i : i + 4], targets[i : i + 4])
    b = pieces.compute()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # merging two halves (what a DDP sync does with "cat" states) gives the same
    first, second = TemporalMAP(), TemporalMAP()
    first.update(preds[:13], targets[:13])
    second.update(preds[13:], targets[13:])
    first.merge_state(second)
    for k, v in first.compute().items():
        assert torch.equal(v, a[k]), k
    pieces.reset()
    assert pieces.pred_scores == [] and pieces.compute()["mAP"].item() == 0.0
    pieces.update(preds, targets)
    assert torch.equal(pieces.compute()["mAP"], a["mAP"])


def test_map_input_validation():
    with pytest.raises(ValueError, match="scores"):
        TemporalMAP().update([vid([[0, 1]], [0])], [vid([[0, 1]], [0])])
    with pytest.raises(ValueError, match="iou_thresholds"):
        TemporalMAP(iou_thresholds=[0.0])
    with pytest.raises(ValueError, match="duplicate"):
        TemporalMAP(iou_thresholds=[0.5, 0.5])
    with pytest.raises(ValueError, match="representable"):
        TemporalMAP().update([vid([[0, 1]], [2**24 + 1], [1.0])], [vid([], [])])


# ----------------------------------------------------------------------------- DDP


def _ddp_worker(rank, world_size, port, preds, targets, queue):
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    try:
        f1, tmap = OnlineF1(), TemporalMAP()
        if rank == 0:  # rank 1 sees no data at all
            f1.update(preds, targets)
            tmap.update(preds, targets)
        out = {k: v.item() for k, v in {**f1.compute(), **tmap.compute()}.items()}
        queue.put((rank, out))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow  # two spawned processes re-import torch: ~20 s here
def test_ddp_sync_gloo_with_an_empty_rank():
    """Real gloo all-gather; rank 1 never updates (torchmetrics pads its empty lists)."""
    preds, targets = random_videos(11, n_videos=12)
    expected = {**f1_of(preds, targets), **map_of(preds, targets)}
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    queue = ctx.SimpleQueue()
    mp.start_processes(
        _ddp_worker, args=(2, port, preds, targets, queue), nprocs=2, start_method="spawn"
    )
    results = dict(queue.get() for _ in range(2))
    for rank in (0, 1):
        for k, v in expected.items():
            assert results[rank][k] == pytest.approx(v), (rank, k)


@pytest.mark.parametrize("cls", [OnlineF1, TemporalMAP])
def test_forward_returns_batch_value_and_accumulates(cls):
    preds, targets = random_videos(21, n_videos=20)
    m = cls()
    batch = m(preds[:10], targets[:10])
    m(preds[10:], targets[10:])
    first, total = cls(), cls()
    first.update(preds[:10], targets[:10])
    total.update(preds, targets)
    for k, v in first.compute().items():
        assert torch.equal(batch[k], v), k
    for k, v in total.compute().items():
        assert torch.equal(m.compute()[k], v), k


# ----------------------------------------------------------------------------- SampleMean


@NOT_UPDATED
def test_sample_mean_is_the_mean_over_all_samples_of_all_processes():
    from mgr.metrics import SampleMean

    values = torch.rand(1001, generator=torch.Generator().manual_seed(0)) * 5  # float32
    reference = values.double().sum().item() / 1001
    one = SampleMean()
    for chunk in values.split(64):
        one.update(chunk)
    assert one.compute().dtype == torch.float64
    assert one.compute().item() == pytest.approx(reference, rel=1e-15)
    # Two processes with 700 and 301 samples: their states add up (torchmetrics' merge
    # applies the same "sum" reduction as a DDP sync); a mean of means would not.
    first, second = SampleMean(), SampleMean()
    first.update(values[:700])
    second.update(values[700:])
    mean_of_means = (values[:700].double().mean() + values[700:].double().mean()).item() / 2
    assert abs(mean_of_means - reference) > 1e-3
    first.merge_state(second)
    assert first.compute().item() == pytest.approx(reference, rel=1e-15)
    # Moving the metric (Lightning does) keeps float64; torchmetrics' MeanMetric would cast
    # its inputs to float32 after .to(device).
    moved = SampleMean().to("cpu")
    moved.update(torch.tensor([1.0, 2.0**-30]))
    assert moved.total.item() == 1.0 + 2.0**-30
    assert SampleMean().compute().item() == 0.0
