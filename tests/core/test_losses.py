"""Losses against hand-derived values on tiny batches.

Batch A (2 ids x 2 images, 2-d):
    x0 = (0, 0), x1 = (1, 0)   id 0
    x2 = (0, 2), x3 = (3, 0)   id 1
Distances: d01 = 1, d02 = 2, d03 = 3, d12 = sqrt(5), d13 = 2, d23 = sqrt(13).
Per anchor (one positive each, two negatives):
    a0: d_p = 1,        d_n = (2, 3)        [d02, d03]
    a1: d_p = 1,        d_n = (sqrt5, 2)    [d12, d13]
    a2: d_p = sqrt13,   d_n = (2, sqrt5)    [d02, d12]
    a3: d_p = sqrt13,   d_n = (3, 2)        [d03, d13]
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from reid_core.config import LossConfig
from reid_core.losses import (
    ReIDLoss,
    batch_hard_triplet_loss,
    margin_triplet_loss,
    pairwise_distances,
    triplet_loss,
    weighted_soft_triplet_loss,
    weighted_triplet_diff,
    weighted_triplet_loss,
)
from reid_core.models.output import ReIDOutput

S5, S13 = math.sqrt(5.0), math.sqrt(13.0)
FEATS_A = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [3.0, 0.0]])
LABELS_A = torch.tensor([0, 0, 1, 1])
ANCHORS_A = [(1.0, (2.0, 3.0)), (1.0, (S5, 2.0)), (S13, (2.0, S5)), (S13, (3.0, 2.0))]


def relu(v: float) -> float:
    return max(v, 0.0)


def softplus(v: float) -> float:
    return math.log1p(math.exp(v))


def soft_neg(dn: tuple[float, ...]) -> float:
    """sum_n softmax(-d_n) * d_n, written out."""
    ws = [math.exp(-d) for d in dn]
    return sum(w * d for w, d in zip(ws, dn)) / sum(ws)


def test_distances_by_hand() -> None:
    d = pairwise_distances(FEATS_A)
    expected = torch.tensor([[0.0, 1.0, 2.0, 3.0], [1.0, 0.0, S5, 2.0], [2.0, S5, 0.0, S13], [3.0, 2.0, S13, 0.0]])
    off = ~torch.eye(4, dtype=torch.bool)
    assert torch.allclose(d[off], expected[off], atol=1e-5)
    assert torch.allclose(d.diagonal(), torch.full((4,), 1e-6), atol=1e-6)  # sqrt of the clamp


def test_margin_eq1_mean_over_all_triplets() -> None:
    m = 0.3
    # 8 valid triplets (1 positive x 2 negatives per anchor); a0, a1 are all inactive.
    terms = [relu(m + dp - dn) for dp, dns in ANCHORS_A for dn in dns]
    expected = sum(terms) / 8
    # By hand: a2: 0.3+sqrt13-2, 0.3+sqrt13-sqrt5; a3: 0.3+sqrt13-3, 0.3+sqrt13-2.
    assert expected == pytest.approx((4 * (0.3 + S13) - 2 - S5 - 3 - 2) / 8)
    got = margin_triplet_loss(FEATS_A, LABELS_A, margin=m)
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_margin_eq1_counts_all_triplets_not_anchors() -> None:
    # 3 images of id 0 on a line, one of id 1: anchor a0 has 2 positives, 1 negative.
    x = torch.tensor([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0], [0.0, 4.0]])
    y = torch.tensor([0, 0, 0, 1])
    m = 0.5
    d = {(0, 1): 1.0, (0, 2): 3.0, (1, 2): 2.0, (0, 3): 4.0, (1, 3): math.sqrt(17.0), (2, 3): 5.0}
    dd = lambda i, j: d[(min(i, j), max(i, j))]  # noqa: E731
    terms = []
    for a in range(3):  # anchors of id 0; each positive with the single negative 3
        for p in range(3):
            if p != a:
                terms.append(relu(m + dd(a, p) - dd(a, 3)))
    # anchor 3 has no positive: no triplet
    expected = sum(terms) / 6
    assert margin_triplet_loss(x, y, margin=m).item() == pytest.approx(expected, rel=1e-5)


def test_batch_hard_eq2() -> None:
    m = 0.3
    expected = sum(relu(m + dp - min(dns)) for dp, dns in ANCHORS_A) / 4
    # = (0 + 0 + (0.3+sqrt13-2) + (0.3+sqrt13-2)) / 4
    assert expected == pytest.approx(2 * (0.3 + S13 - 2) / 4)
    assert batch_hard_triplet_loss(FEATS_A, LABELS_A, margin=m).item() == pytest.approx(expected, rel=1e-5)


def test_weighted_eq3_and_soft_eq4() -> None:
    m = 0.3
    diffs = [dp - soft_neg(dns) for dp, dns in ANCHORS_A]  # single positive: w_p = 1
    exp3 = sum(relu(x + m) for x in diffs) / 4
    exp4 = sum(softplus(x) for x in diffs) / 4
    assert weighted_triplet_loss(FEATS_A, LABELS_A, margin=m).item() == pytest.approx(exp3, rel=1e-5)
    assert weighted_soft_triplet_loss(FEATS_A, LABELS_A).item() == pytest.approx(exp4, rel=1e-5)
    diff, valid = weighted_triplet_diff(FEATS_A, LABELS_A)
    assert valid.all()
    assert diff.tolist() == pytest.approx(diffs, rel=1e-5)


def test_weighted_softmax_over_positives_excludes_anchor() -> None:
    # id 0: (0,0), (1,0), (3,0); id 1: (0,4). Anchor 0: positives d = 1, 3; negative d = 4.
    x = torch.tensor([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0], [0.0, 4.0]])
    y = torch.tensor([0, 0, 0, 1])
    e1, e3 = math.exp(1.0), math.exp(3.0)
    wp_dp = (e1 * 1.0 + e3 * 3.0) / (e1 + e3)  # softmax of POSITIVE distances (hard positive weighs more)
    diff, valid = weighted_triplet_diff(x, y)
    assert diff[0].item() == pytest.approx(wp_dp - 4.0, rel=1e-5)
    assert valid.tolist() == [True, True, True, False]  # anchor 3 has no positive


def test_eq4_is_softplus_of_eq3_diff_and_margin0_is_relu() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(12, 8, generator=g)
    y = torch.arange(4).repeat_interleave(3)
    diff, _ = weighted_triplet_diff(x, y)
    assert weighted_soft_triplet_loss(x, y).item() == pytest.approx(F.softplus(diff).mean().item(), rel=1e-6)
    assert weighted_triplet_loss(x, y, margin=0.0).item() == pytest.approx(diff.clamp(min=0).mean().item(), rel=1e-6)


@pytest.mark.parametrize("kind", ["margin", "batch_hard", "weighted", "weighted_soft"])
def test_gradients_finite_even_with_duplicate_features(kind: str) -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(8, 4, generator=g)
    x[1] = x[0]  # same id, identical features: distance 0
    x[5] = x[4]
    x[2] = x[0] * 1.0  # a third copy
    x.requires_grad_(True)
    y = torch.tensor([0, 0, 0, 1, 2, 2, 3, 3])
    loss = triplet_loss(x, y, kind, margin=0.3)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(x.grad).all()


def test_all_identical_features_finite() -> None:
    x = torch.ones(4, 3, requires_grad=True)
    y = torch.tensor([0, 0, 1, 1])
    for kind in ("margin", "batch_hard", "weighted", "weighted_soft"):
        x.grad = None
        loss = triplet_loss(x, y, kind)
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(x.grad).all(), kind


def test_no_valid_anchor_gives_zero_with_graph() -> None:
    x = torch.randn(4, 3, requires_grad=True)
    y = torch.tensor([0, 1, 2, 3])  # no positives
    for kind in ("margin", "batch_hard", "weighted", "weighted_soft"):
        loss = triplet_loss(x, y, kind)
        assert loss.item() == 0.0
        loss.backward()


def test_large_distances_do_not_overflow() -> None:
    # Unnormalised features far apart: exp of excluded entries must never be taken.
    x = torch.tensor([[0.0, 0.0], [1.0, 0.0], [500.0, 0.0], [501.0, 0.0]], requires_grad=True)
    y = torch.tensor([0, 0, 1, 1])
    loss = weighted_soft_triplet_loss(x, y)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(x.grad).all()
    assert loss.item() == pytest.approx(0.0, abs=1e-12)  # softplus(about 1 - 499.5) underflows to 0


def test_label_smoothing_matches_explicit_formula() -> None:
    g = torch.Generator().manual_seed(2)
    n, k, eps = 6, 5, 0.1
    logits = torch.randn(n, k, generator=g)
    y = torch.tensor([0, 1, 2, 3, 4, 0])
    target = (1 - eps) * F.one_hot(y, k).float() + eps / k
    expected = -(target * F.log_softmax(logits, dim=1)).sum(dim=1).mean()
    loss = ReIDLoss(LossConfig(label_smoothing=eps, triplet="none"))
    total, parts = loss(ReIDOutput(logits=(logits,), features=(torch.randn(n, 3),)), y)
    assert total.item() == pytest.approx(expected.item(), rel=1e-6)
    assert parts["loss_ce"].item() == pytest.approx(expected.item(), rel=1e-6)
    assert parts["loss_triplet"].item() == 0.0


def _two_branch_batch() -> tuple[torch.Tensor, tuple, tuple]:
    g = torch.Generator().manual_seed(3)
    n, k = 8, 4
    y = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    logits = tuple(torch.randn(n, k, generator=g, requires_grad=True) for _ in range(2))
    feats = tuple(F.normalize(torch.randn(n, d, generator=g), dim=1).requires_grad_(True) for d in (6, 5))
    return y, logits, feats


def test_reid_loss_sums_branches_and_weights() -> None:
    y, logits, feats = _two_branch_batch()
    cfg = LossConfig(
        label_smoothing=0.1, triplet="weighted_soft", ce_weight=0.5, triplet_weight=2.0, branch_reduction="sum"
    )
    total, parts = ReIDLoss(cfg)(ReIDOutput(logits, feats), y)
    ce = sum(F.cross_entropy(lg, y, label_smoothing=0.1) for lg in logits)
    tri = sum(weighted_soft_triplet_loss(f, y) for f in feats)
    assert set(parts) == {"loss_ce", "loss_triplet", "loss"}
    assert parts["loss_ce"].item() == pytest.approx(ce.item(), rel=1e-6)
    assert parts["loss_triplet"].item() == pytest.approx(tri.item(), rel=1e-6)
    assert total.item() == pytest.approx(0.5 * ce.item() + 2.0 * tri.item(), rel=1e-6)
    assert parts["loss"] is total
    total.backward()
    assert all(torch.isfinite(t.grad).all() for t in logits + feats)


def torchreid_deep_supervision(criterion, xs, y) -> torch.Tensor:
    """torchreid.losses.DeepSupervision, written out: the MEAN of the criterion over outputs."""
    loss = 0.0
    for x in xs:
        loss += criterion(x, y)
    return loss / len(xs)


def test_reid_loss_averages_branches_like_torchreid() -> None:
    """branch_reduction='mean' (the hacnn and a presets): loss and gradients equal torchreid's;
    'sum' (the Compact-ReID default) doubles them."""
    from reid_core.presets import preset_config

    y, logits, feats = _two_branch_batch()
    assert preset_config("hacnn").loss.branch_reduction == "mean" and LossConfig().branch_reduction == "sum"
    cfg = LossConfig(
        label_smoothing=0.1, triplet="weighted_soft", ce_weight=0.5, triplet_weight=2.0, branch_reduction="mean"
    )
    total, parts = ReIDLoss(cfg)(ReIDOutput(logits, feats), y)
    ce = torchreid_deep_supervision(lambda lg, t: F.cross_entropy(lg, t, label_smoothing=0.1), logits, y)
    tri = torchreid_deep_supervision(weighted_soft_triplet_loss, feats, y)
    reference = 0.5 * ce + 2.0 * tri
    assert parts["loss_ce"].item() == pytest.approx(ce.item(), rel=1e-6)
    assert parts["loss_triplet"].item() == pytest.approx(tri.item(), rel=1e-6)
    assert total.item() / reference.item() == pytest.approx(1.0, rel=1e-6)
    grads = torch.autograd.grad(total, logits + feats)
    ref_grads = torch.autograd.grad(reference, logits + feats)
    assert all(torch.allclose(a, b, rtol=1e-5, atol=1e-8) for a, b in zip(grads, ref_grads))
    summed, _ = ReIDLoss(
        LossConfig(
            label_smoothing=0.1, triplet="weighted_soft", ce_weight=0.5, triplet_weight=2.0, branch_reduction="sum"
        )
    )(ReIDOutput(logits, feats), y)
    assert summed.item() / reference.item() == pytest.approx(2.0, rel=1e-6)


def test_reid_loss_rejects_eval_output() -> None:
    with pytest.raises(TypeError):
        ReIDLoss(LossConfig())(torch.randn(4, 8), torch.tensor([0, 0, 1, 1]))


def test_unknown_kind() -> None:
    with pytest.raises(ValueError):
        triplet_loss(torch.randn(4, 2), torch.tensor([0, 0, 1, 1]), "bogus")  # type: ignore[arg-type]
