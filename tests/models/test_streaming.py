"""StreamingDetector: chunked inference with a bounded look-ahead emits each instance once."""

from __future__ import annotations

import pytest
import torch

from mgr.metrics import temporal_iou
from mgr.models import OnlineDetector
from mgr.models.streaming import (
    Detection,
    StreamingDetector,
    detections_to_dict,
    stream_sequence,
)

pytestmark = pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")

LENGTH = 128
INSTANCES = ((20, 35), (70, 90))  # inclusive ends -> [20, 36) and [70, 91)
LABELS = (2, 1)


def bump_batch() -> dict:
    """One sequence whose skeleton is the class id + 1 inside each instance, 0 elsewhere."""
    skeleton = torch.zeros(1, 3, LENGTH, 25, 1)
    for (s, e), label in zip(INSTANCES, LABELS, strict=True):
        skeleton[:, :, s : e + 1] = float(label + 1)
    return {
        "skeleton": skeleton,
        "mask": torch.ones(1, LENGTH, dtype=torch.bool),
        "segments": [torch.tensor(INSTANCES, dtype=torch.long)],
        "labels": [torch.tensor(LABELS, dtype=torch.long)],
    }


@pytest.fixture(scope="module")
def trained() -> tuple[OnlineDetector, torch.Tensor]:
    torch.manual_seed(0)
    model = OnlineDetector(num_classes=4, embed_dim=16, num_levels=4, drop_path=0.0)
    batch = bump_batch()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(60):
        loss = model.training_step(batch, 0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval(), batch["skeleton"][0]


def best_iou(dets: list[Detection], start: int, end: int, label: int) -> tuple[float, Detection]:
    same = [d for d in dets if d.label == label]
    assert same, f"no detection of label {label}"
    iou = temporal_iou(torch.tensor([[start, end]]), torch.tensor([[d.start, d.end] for d in same]))
    j = int(iou[0].argmax())
    return float(iou[0, j]), same[j]


def assert_no_duplicates(dets: list[Detection]) -> None:
    for i, a in enumerate(dets):
        for b in dets[i + 1 :]:
            if a.label == b.label:
                iou = temporal_iou(
                    torch.tensor([[a.start, a.end]]), torch.tensor([[b.start, b.end]])
                )
                assert float(iou) <= 0.5, (a, b)


@pytest.mark.parametrize("chunk", [32, 24])  # 24 does not divide 128: the last frames go by flush
def test_streaming_finds_both_instances_with_bounded_latency(trained, chunk: int) -> None:
    model, skeleton = trained
    lookahead = 16
    dets, stats = stream_sequence(
        model, skeleton, chunk=chunk, context=LENGTH, lookahead=lookahead, min_score=0.2
    )
    for (s, e), label in zip(INSTANCES, LABELS, strict=True):
        iou, det = best_iou(dets, s, e + 1, label)
        assert iou > 0.5, (label, det)
        assert lookahead <= det.latency <= lookahead + chunk, det
        assert det.emitted_at <= LENGTH
    assert_no_duplicates(dets)
    assert stats["count"] == len(dets) and stats["max"] <= lookahead + chunk
    assert all(0 <= d.start < d.end <= LENGTH for d in dets)
    pred = detections_to_dict(dets)
    assert pred["segments"].shape == (len(dets), 2) and pred["labels"].dtype == torch.long


def test_pushes_of_any_size_give_the_same_detections(trained) -> None:
    model, skeleton = trained
    kw = {"chunk": 24, "context": LENGTH, "lookahead": 16, "min_score": 0.2}
    whole, _ = stream_sequence(model, skeleton, **kw)
    streamer = StreamingDetector(model, **kw)
    pieces = []
    for a, b in ((0, 7), (7, 7), (7, 57), (57, 100), (100, LENGTH)):
        pieces += streamer.push(skeleton[:, a:b])
    pieces += streamer.flush()
    assert pieces == whole
    assert streamer.flush() == []  # a second flush emits nothing


def test_flush_emits_what_the_lookahead_held_back(trained) -> None:
    model, skeleton = trained
    streamer = StreamingDetector(model, chunk=32, context=LENGTH, lookahead=40, min_score=0.2)
    pushed = streamer.push(skeleton)
    # The second instance ends at 91: final only after frame 131 > 128.
    assert all(d.end <= LENGTH - 40 and d.emitted_at % 32 == 0 for d in pushed)
    assert all(best_iou([d], 70, 91, 1)[0] <= 0.5 for d in pushed if d.label == 1)
    flushed = streamer.flush()
    iou, det = best_iou(flushed, 70, 91, 1)
    assert iou > 0.5 and det.emitted_at == LENGTH and det.latency == LENGTH - det.end
    assert_no_duplicates(pushed + flushed)
    with pytest.raises(ValueError, match="flushed"):
        streamer.push(skeleton[:, :4])
    streamer.reset()
    assert streamer.frames_seen == 0 and streamer.push(skeleton[:, :4]) == []


def test_rolling_buffer_keeps_only_the_context(trained) -> None:
    model, skeleton = trained
    long = torch.cat([skeleton, skeleton], dim=1)  # instances again at 148.. and 198..
    dets, _ = stream_sequence(model, long, chunk=32, context=96, lookahead=16, min_score=0.2)
    for offset in (0, LENGTH):
        for (s, e), label in zip(INSTANCES, LABELS, strict=True):
            assert best_iou(dets, s + offset, e + 1 + offset, label)[0] > 0.5
    assert_no_duplicates(dets)


def test_wrong_shapes_are_named(trained) -> None:
    model, skeleton = trained
    streamer = StreamingDetector(model, chunk=16, context=64, lookahead=8)
    with pytest.raises(ValueError, match=r"expected frames \(C, t, V, 1\)"):
        streamer.push(skeleton[None])
    with pytest.raises(ValueError, match="in_channels=75"):
        streamer.push(torch.zeros(2, 10, 25, 1))
    streamer.push(skeleton[:, :5])
    with pytest.raises(ValueError, match="changed"):
        streamer.push(torch.zeros(25, 5, 3, 1))
    with pytest.raises(ValueError, match="context=64"):
        StreamingDetector(model, chunk=32, context=64, lookahead=16)
    with pytest.raises(ValueError, match="chunk >= 1"):
        StreamingDetector(model, chunk=0)
