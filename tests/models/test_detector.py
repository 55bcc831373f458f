"""OnlineDetector: losses, decoding to frames, metrics, a tiny overfit."""

from __future__ import annotations

import pytest
import torch

from mgr.models import OnlineDetector


def bump_batch(length: int = 64, segments=((20, 35),), labels=(2,)) -> dict:
    """One sequence whose skeleton is 1 inside the instances (inclusive ends) and 0 elsewhere."""
    skeleton = torch.zeros(1, 3, length, 25, 1)
    for s, e in segments:
        skeleton[:, :, s : e + 1] = 1.0
    return {
        "skeleton": skeleton,
        "mask": torch.ones(1, length, dtype=torch.bool),
        "segments": [torch.tensor(segments, dtype=torch.long)],
        "labels": [torch.tensor(labels, dtype=torch.long)],
        "video_id": ["Sample0001"],
        "offset": torch.tensor([0]),
    }


def test_overfits_one_sequence_and_reports_start_kit_frames() -> None:
    torch.manual_seed(0)
    model = OnlineDetector(
        num_classes=4, embed_dim=16, num_levels=4, drop_path=0.0, f1_min_score=0.2
    )
    batch = bump_batch()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(80):
        loss = model.training_step(batch, 0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    (det,) = model.detect(batch)
    best = det["scores"].argmax()
    assert int(det["labels"][best]) == 2
    start, end = det["segments"][best].tolist()  # end exclusive: the instance is [20, 36)
    inter = max(0, min(end, 36) - max(start, 20))
    assert inter / (max(end, 36) - min(start, 20)) > 0.5
    assert (det["segments"][:, 0] >= 0).all() and (det["segments"][:, 1] <= 64).all()
    # The validation path scores it as a hit of the start-kit F1.
    model._evaluate(batch, "val")
    f1 = model.metrics["f1"].compute()
    assert f1["hits"] == 1 and f1["recall"] == 1.0


def test_padding_does_not_change_detections() -> None:
    torch.manual_seed(0)
    model = OnlineDetector(num_classes=3, embed_dim=16, num_levels=3, min_score=0.0).eval()
    short = bump_batch(48, segments=((10, 20),), labels=(1,))
    padded = bump_batch(64, segments=((10, 20),), labels=(1,))
    padded["skeleton"][:, :, 48:] = 7.0  # garbage in the padding
    padded["mask"][:, 48:] = False
    a, b = model.detect(short)[0], model.detect(padded)[0]
    torch.testing.assert_close(a["scores"], b["scores"])
    assert torch.equal(a["segments"], b["segments"]) and torch.equal(a["labels"], b["labels"])


def test_wrong_input_size_is_named() -> None:
    model = OnlineDetector(num_classes=3, in_channels=50, embed_dim=16, num_levels=3)
    with pytest.raises(ValueError, match="in_channels=50"):
        model(bump_batch())
    with pytest.raises(ValueError, match="regression ranges"):
        OnlineDetector(num_classes=3, num_levels=3, regression_ranges=[(0, 4), (4, 1e4)])


def test_test_summary_states_matching_rules_tiou_and_protocol():
    from mgr.metrics import OnlineF1, TemporalMAP
    from mgr.models.detector import format_detection_summary
    from mgr.protocols import Protocol

    metrics = {
        "f1": OnlineF1(0.3, one_to_one=True),
        "f1_startkit": OnlineF1(0.3, one_to_one=False),
        "map": TemporalMAP(),
    }
    values = {"test/f1": 0.5, "test/f1_startkit": 0.55, "test/mAP": 0.4}
    text = format_detection_summary(values, metrics, Protocol("smg", "miga", "test", "online"))
    lines = text.splitlines()
    assert "SMG, online detection, split scheme 'miga'" in lines[2]
    assert lines[3].endswith("(same label and tIoU > 0.3 (intersection over hull), "
                             "one-to-one greedy matching by score)")  # fmt: skip
    assert "start-kit matching (one prediction may hit several instances)" in lines[4]
    assert "tIoU >= 0.3, 0.4, 0.5, 0.6, 0.7" in lines[5]
    assert "38.03" in lines[6] and "[not comparable]" in lines[6]
