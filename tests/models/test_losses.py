import math

import pytest
import torch
import torch.nn.functional as F

from mgr.models.losses import (
    OrthogonalSemanticLoss,
    SoftmaxFocalLoss,
    class_log_prior,
    logit_adjusted,
    sqrt_smoothed_weights,
)

# 2 samples, 3 classes; sample 0 is misclassified, sample 1 well classified.
LOGITS = [[1.0, 2.0, 0.5], [0.2, -1.0, 1.5]]
TARGET = [0, 2]
WEIGHT = [0.5, 2.0, 1.0]


def _log_softmax(row: list[float]) -> list[float]:
    log_z = math.log(sum(math.exp(v) for v in row))
    return [v - log_z for v in row]


def _focal_by_hand(gamma: float, weight=None, eps: float = 0.0) -> list[float]:
    """Per-sample focal loss: (1 - p_y)^gamma * smoothed, weighted CE (torch's CE definition)."""
    k = len(LOGITS[0])
    w = weight or [1.0] * k
    out = []
    for row, y in zip(LOGITS, TARGET, strict=True):
        logp = _log_softmax(row)
        ce = (1 - eps) * w[y] * -logp[y] + eps / k * sum(w[c] * -logp[c] for c in range(k))
        out.append((1 - math.exp(logp[y])) ** gamma * ce)
    return out


def _inputs():
    return torch.tensor(LOGITS, dtype=torch.float64), torch.tensor(TARGET)


# ---------------------------------------------------------------- sqrt weights
def test_sqrt_weights_raw_and_normalised():
    counts = torch.tensor([0, 3, 8])
    raw = sqrt_smoothed_weights(counts, normalize=False)
    torch.testing.assert_close(raw, torch.tensor([1.0, 1 / 2, 1 / 3]))
    # Sample-weighted mean of one: scale = sum N / sum N w = 11 / (3/2 + 8/3) = 66/25.
    w = sqrt_smoothed_weights(counts)
    torch.testing.assert_close(w, torch.tensor([1.0, 1 / 2, 1 / 3]) * 66 / 25)
    assert float((counts * w).sum() / counts.sum()) == pytest.approx(1.0)
    assert w.dtype == torch.get_default_dtype()
    torch.testing.assert_close(sqrt_smoothed_weights([0, 3, 8]), w)


def test_sqrt_weights_reject_bad_counts():
    with pytest.raises(ValueError, match="non-negative"):
        sqrt_smoothed_weights(torch.tensor([3, -1]))
    with pytest.raises(ValueError, match="all zero"):
        sqrt_smoothed_weights(torch.zeros(4))
    with pytest.raises(ValueError, match=r"\(K,\)"):
        sqrt_smoothed_weights(torch.ones(2, 2))


# ---------------------------------------------------------------- focal loss
def test_focal_matches_hand_computation_unweighted():
    logits, y = _inputs()
    ref = _focal_by_hand(2.0)
    loss = SoftmaxFocalLoss(gamma=2.0)
    assert float(loss(logits, y)) == pytest.approx(sum(ref) / 2, rel=1e-12)
    per_sample = SoftmaxFocalLoss(gamma=2.0, reduction="none")(logits, y)
    torch.testing.assert_close(per_sample, torch.tensor(ref, dtype=torch.float64))
    # The well-classified sample is down-weighted far more than the misclassified one.
    assert ref[1] / -_log_softmax(LOGITS[1])[2] < ref[0] / -_log_softmax(LOGITS[0])[0]


def test_focal_weighted_mean_divides_by_batch_size():
    logits, y = _inputs()
    ref = _focal_by_hand(2.0, WEIGHT)
    loss = SoftmaxFocalLoss(gamma=2.0, weight=torch.tensor(WEIGHT, dtype=torch.float64))
    # Pinned: mean over the B=2 samples, not over the targets' weights (0.5 + 1.0).
    assert float(loss(logits, y)) == pytest.approx(sum(ref) / 2, rel=1e-12)
    assert float(loss(logits, y)) != pytest.approx(sum(ref) / 1.5)
    summed = SoftmaxFocalLoss(2.0, torch.tensor(WEIGHT), reduction="sum")(logits.float(), y)
    assert float(summed) == pytest.approx(sum(ref), rel=1e-6)


def test_focal_weighted_with_label_smoothing():
    logits, y = _inputs()
    ref = _focal_by_hand(2.0, WEIGHT, eps=0.1)
    loss = SoftmaxFocalLoss(2.0, torch.tensor(WEIGHT, dtype=torch.float64), label_smoothing=0.1)
    assert float(loss(logits, y)) == pytest.approx(sum(ref) / 2, rel=1e-12)
    # Smoothing enters the CE term only: p_y of the modulating factor is unsmoothed.
    unsmoothed = _focal_by_hand(2.0, WEIGHT)
    assert sum(ref) != pytest.approx(sum(unsmoothed))


def test_focal_gamma_zero_is_cross_entropy():
    torch.manual_seed(0)
    logits, y = torch.randn(16, 5), torch.randint(0, 5, (16,))
    torch.testing.assert_close(SoftmaxFocalLoss(gamma=0.0)(logits, y), F.cross_entropy(logits, y))
    torch.testing.assert_close(
        SoftmaxFocalLoss(gamma=0.0, label_smoothing=0.2)(logits, y),
        F.cross_entropy(logits, y, label_smoothing=0.2),
    )
    w = torch.rand(5) + 0.5
    weighted = SoftmaxFocalLoss(gamma=0.0, weight=w, label_smoothing=0.2)
    ref = F.cross_entropy(logits, y, weight=w, label_smoothing=0.2, reduction="none")
    torch.testing.assert_close(weighted(logits, y), ref.mean())
    torch.testing.assert_close(weighted(logits, y), ref.sum() / len(y))


def test_focal_weight_is_a_saved_buffer():
    loss = SoftmaxFocalLoss(weight=torch.tensor(WEIGHT))
    assert list(loss.parameters()) == []
    torch.testing.assert_close(loss.state_dict()["weight"], torch.tensor(WEIGHT))
    assert loss.to(torch.float64).weight.dtype == torch.float64
    assert "weight" not in SoftmaxFocalLoss().state_dict()


def test_focal_gradient_is_finite_on_saturated_logits():
    logits = torch.tensor([[60.0, 0.0, 0.0], [0.0, 1.0, 0.0]], requires_grad=True)
    for gamma in (0.5, 2.0):
        SoftmaxFocalLoss(gamma)(logits, torch.tensor([0, 1])).backward()
        assert torch.isfinite(logits.grad).all()
        logits.grad = None


def test_focal_rejects_bad_arguments():
    with pytest.raises(ValueError, match="gamma"):
        SoftmaxFocalLoss(gamma=-1.0)
    with pytest.raises(ValueError, match="reduction"):
        SoftmaxFocalLoss(reduction="max")
    with pytest.raises(ValueError, match="label_smoothing"):
        SoftmaxFocalLoss(label_smoothing=1.0)


# ---------------------------------------------------------------- logit adjustment
def test_logit_adjustment_closed_form():
    counts = [6, 3, 1]
    log_prior = class_log_prior(torch.tensor(counts))
    torch.testing.assert_close(log_prior, torch.tensor([math.log(c / 10) for c in counts]))
    z = torch.tensor([[0.3, -0.2, 1.0], [2.0, 0.0, -1.0]])
    out = logit_adjusted(z, log_prior, tau=1.5)
    shift = [1.5 * math.log(c / 10) for c in counts]
    ref = torch.tensor([[v + d for v, d in zip(row, shift, strict=True)] for row in z.tolist()])
    torch.testing.assert_close(out, ref)
    # softmax(z + tau log pi) is proportional to pi^tau exp(z).
    prior = torch.tensor(counts) / 10
    expected = prior**1.5 * z.exp()
    torch.testing.assert_close(out.softmax(1), expected / expected.sum(1, keepdim=True))
    torch.testing.assert_close(logit_adjusted(z, log_prior, tau=0.0), z)


def test_log_prior_counts_absent_classes_once():
    ref = torch.tensor([math.log(4 / 8), math.log(1 / 8), math.log(3 / 8)])
    torch.testing.assert_close(class_log_prior([4, 0, 3]), ref)


# ---------------------------------------------------------------- semantic anchors
def test_orthogonal_anchors_are_orthonormal_rows():
    sem = OrthogonalSemanticLoss(num_classes=5, dim=12, seed=3)
    m = sem.anchors
    assert m.shape == (5, 12)
    torch.testing.assert_close(m @ m.T, torch.eye(5), atol=1e-6, rtol=0)
    # Square case: also a full orthonormal basis.
    sq = OrthogonalSemanticLoss(4, 4).anchors
    torch.testing.assert_close(sq.T @ sq, torch.eye(4), atol=1e-6, rtol=0)


def test_orthogonal_anchors_are_seeded():
    a = OrthogonalSemanticLoss(5, 12, seed=3).anchors
    torch.testing.assert_close(OrthogonalSemanticLoss(5, 12, seed=3).anchors, a, rtol=0, atol=0)
    assert not torch.allclose(OrthogonalSemanticLoss(5, 12, seed=4).anchors, a)
    # The global RNG is neither used nor advanced.
    state = torch.random.get_rng_state()
    OrthogonalSemanticLoss(5, 12, seed=3)
    assert torch.equal(torch.random.get_rng_state(), state)


def test_orthogonal_anchors_are_a_buffer_not_a_parameter():
    sem = OrthogonalSemanticLoss(3, 8)
    assert list(sem.parameters()) == []
    assert not sem.anchors.requires_grad
    assert "anchors" in dict(sem.named_buffers())
    assert "anchors" in sem.state_dict()


def test_orthogonal_anchors_need_dim_at_least_classes():
    with pytest.raises(ValueError, match="d=4 < 5"):
        OrthogonalSemanticLoss(num_classes=5, dim=4)


def test_semantic_loss_is_mean_squared_difference():
    sem = OrthogonalSemanticLoss(3, 4, seed=1)
    m = sem.anchors.tolist()
    f = torch.tensor([[0.1, -0.2, 0.3, 0.0], [1.0, 0.5, -0.5, 0.2]])
    y = [2, 0]
    rows = f.tolist()
    ref = sum((rows[b][i] - m[y[b]][i]) ** 2 for b in range(2) for i in range(4)) / 8
    assert float(sem(f, torch.tensor(y))) == pytest.approx(ref, rel=1e-6)
    # Features on their anchors cost nothing.
    assert float(sem(sem.anchors[[1, 2]], torch.tensor([1, 2]))) == 0.0
    with pytest.raises(ValueError, match=r"\(B, 4\)"):
        sem(torch.zeros(2, 5), torch.tensor(y))
