"""Losses: label-smoothed cross-entropy and the triplet losses of eq. 1-4 of the paper.

All triplet losses work on one feature batch [N, D] with integer labels [N] (a PK batch)
and Euclidean distances sqrt(max(d2, 1e-12)); the clamp keeps the gradient finite when
two features coincide (distance 0, e.g. an anchor with itself or duplicated images).

Anchors that have no positive (an identity with one image in the batch) or no negative
(a batch of one identity) cannot form a triplet: they are left out of the mean. A batch
with no valid anchor gives 0 (still attached to the graph, so `backward()` works).

Losses are computed in float32 whatever the autocast dtype: exp/softplus of distances and
the 1e-12 clamp are not safe in half precision.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import TRIPLET_KINDS, LossConfig
from .models.output import ReIDOutput

__all__ = [
    "TripletKind",
    "pairwise_distances",
    "triplet_loss",
    "margin_triplet_loss",
    "batch_hard_triplet_loss",
    "weighted_triplet_loss",
    "weighted_soft_triplet_loss",
    "weighted_triplet_diff",
    "ReIDLoss",
]

TripletKind = Literal["none", "margin", "batch_hard", "weighted", "weighted_soft"]

_D2_MIN = 1e-12


def pairwise_distances(x: torch.Tensor) -> torch.Tensor:
    """Euclidean distance matrix [N, N] of the rows of `x`: sqrt(max(d2, 1e-12)).

    d2 = |a|^2 + |b|^2 - 2 a.b (memory O(N^2), not O(N^2 D)); rounding can make it
    slightly negative, the clamp also takes care of that.
    """
    x = x.float()
    sq = x.pow(2).sum(dim=1)
    d2 = sq[:, None] + sq[None, :] - 2.0 * (x @ x.t())
    return d2.clamp(min=_D2_MIN).sqrt()


def _masks(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(positive mask without the anchor itself, negative mask), both [N, N] bool."""
    labels = labels.reshape(-1)
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(labels.numel(), dtype=torch.bool, device=labels.device)
    return same & ~eye, ~same


def _check_inputs(features: torch.Tensor, labels: torch.Tensor) -> None:
    if features.dim() != 2:
        raise ValueError(f"triplet loss expects features [N, D], got shape {tuple(features.shape)}")
    if labels.numel() != features.shape[0]:
        raise ValueError(f"{labels.numel()} labels for {features.shape[0]} features")


def _mean_over_valid(per_anchor: torch.Tensor, valid: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    if bool(valid.any()):
        return per_anchor[valid].mean()
    # No anchor has both a positive and a negative: zero loss that still has a graph.
    return features.sum() * 0.0


def margin_triplet_loss(features: torch.Tensor, labels: torch.Tensor, margin: float = 0.3) -> torch.Tensor:
    """Eq. 1, the original triplet loss: mean over ALL valid (a, p, n) of [m + d_ap - d_an]_+.

    Builds an [N, N, N] tensor: fine for PK batches (32 -> 32k triplets).
    """
    _check_inputs(features, labels)
    dist = pairwise_distances(features)
    pos, neg = _masks(labels)
    valid = pos[:, :, None] & neg[:, None, :]  # [a, p, n]
    if not bool(valid.any()):
        return features.sum() * 0.0
    hinge = F.relu(margin + dist[:, :, None] - dist[:, None, :])
    return hinge[valid].mean()


def batch_hard_triplet_loss(features: torch.Tensor, labels: torch.Tensor, margin: float = 0.3) -> torch.Tensor:
    """Eq. 2 (Hermans et al.): per anchor, hardest positive and hardest negative, hinge with margin."""
    _check_inputs(features, labels)
    dist = pairwise_distances(features)
    pos, neg = _masks(labels)
    valid = pos.any(dim=1) & neg.any(dim=1)
    # Masked max / min: fill the excluded entries with values that can never win.
    d_ap = dist.masked_fill(~pos, float("-inf")).max(dim=1).values
    d_an = dist.masked_fill(~neg, float("inf")).min(dim=1).values
    per_anchor = F.relu(margin + d_ap - d_an)
    return _mean_over_valid(per_anchor, valid, features)


def _masked_softmax(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax over the masked entries of each row, 0 elsewhere.

    Subtracts the masked max (stability) and never exponentiates an excluded entry (they
    could overflow to inf and give inf * 0 = NaN). Rows with no entry give all zeros.
    """
    lowest = torch.finfo(values.dtype).min
    row_max = values.masked_fill(~mask, lowest).max(dim=1, keepdim=True).values
    shifted = torch.where(mask, values - row_max, torch.zeros_like(values))
    exps = torch.where(mask, shifted.exp(), torch.zeros_like(values))
    # A non-empty row has Z >= 1 (its max gives exp(0)); the clamp only protects empty rows.
    return exps / exps.sum(dim=1, keepdim=True).clamp(min=1e-12)


def weighted_triplet_diff(features: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-anchor sum(w_p d_p) - sum(w_n d_n) of batch-soft (Ristani & Tomasi), and the valid mask.

    w_p = softmax of the positive distances over the positives (anchor itself excluded),
    w_n = softmax of the NEGATED negative distances over the negatives. The weights are
    not detached, as in the reference.
    """
    _check_inputs(features, labels)
    dist = pairwise_distances(features)
    pos, neg = _masks(labels)
    valid = pos.any(dim=1) & neg.any(dim=1)
    w_p = _masked_softmax(dist, pos)
    w_n = _masked_softmax(-dist, neg)
    diff = (w_p * dist).sum(dim=1) - (w_n * dist).sum(dim=1)
    return diff, valid


def weighted_triplet_loss(features: torch.Tensor, labels: torch.Tensor, margin: float = 0.3) -> torch.Tensor:
    """Eq. 3 (batch soft, with margin): mean over anchors of max(diff + m, 0)."""
    diff, valid = weighted_triplet_diff(features, labels)
    return _mean_over_valid(F.relu(diff + margin), valid, features)


def weighted_soft_triplet_loss(features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Eq. 4, the paper's: mean over anchors of softplus(diff); no margin parameter."""
    diff, valid = weighted_triplet_diff(features, labels)
    return _mean_over_valid(F.softplus(diff), valid, features)


def triplet_loss(features: torch.Tensor, labels: torch.Tensor, kind: TripletKind, margin: float = 0.3) -> torch.Tensor:
    """Dispatch on `kind` (LossConfig.triplet). 'none' gives a zero tensor attached to the graph.

    `margin` is ignored by 'weighted_soft' (eq. 4 has none).
    """
    if kind == "none":
        return features.sum() * 0.0
    if kind == "margin":
        return margin_triplet_loss(features, labels, margin)
    if kind == "batch_hard":
        return batch_hard_triplet_loss(features, labels, margin)
    if kind == "weighted":
        return weighted_triplet_loss(features, labels, margin)
    if kind == "weighted_soft":
        return weighted_soft_triplet_loss(features, labels)
    raise ValueError(f"unknown triplet kind {kind!r}; allowed: {', '.join(TRIPLET_KINDS)}")


class ReIDLoss(nn.Module):
    """CE on every branch's logits + triplet on every branch's features.

    total = ce_weight * R_b CE_b + triplet_weight * R_b triplet_b, where R_b is the SUM
    over the branches (global and local) by default (`LossConfig.branch_reduction`, the
    Compact-ReID columns), or their MEAN with 'mean', as torchreid's DeepSupervision does
    for HA-CNN (the `hacnn` and `a` presets).

    `forward` returns (total, parts) with parts = {'loss_ce': R_b CE_b,
    'loss_triplet': R_b triplet_b (0 when triplet is 'none'), 'loss': total}: the two
    components are UNWEIGHTED, `loss` is the weighted total; all are tensors (the caller
    detaches / converts to floats for logging).
    """

    def __init__(self, cfg: LossConfig) -> None:
        super().__init__()
        self.cfg = cfg
        # Bag of Tricks' label smoothing: target (1-e)*onehot + e/K, mean over the batch.
        self.ce = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)

    def forward(self, output: ReIDOutput, labels: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if not isinstance(output, ReIDOutput):
            raise TypeError(
                f"ReIDLoss expects the train-mode ReIDOutput of the model, got {type(output).__name__} "
                "(is the model in eval mode?)"
            )
        if len(output.logits) == 0:
            raise ValueError("ReIDOutput has no logits")
        labels = labels.long()
        loss_ce = self._reduce([self.ce(lg.float(), labels) for lg in output.logits])
        if self.cfg.triplet == "none" or len(output.features) == 0:
            loss_tri = loss_ce.new_zeros(())
        else:
            loss_tri = self._reduce(
                [triplet_loss(f, labels, self.cfg.triplet, self.cfg.margin) for f in output.features]
            )
        total = self.cfg.ce_weight * loss_ce + self.cfg.triplet_weight * loss_tri
        return total, {"loss_ce": loss_ce, "loss_triplet": loss_tri, "loss": total}

    def _reduce(self, per_branch: list[torch.Tensor]) -> torch.Tensor:
        total = torch.stack(per_branch).sum()
        return total / len(per_branch) if self.cfg.branch_reduction == "mean" else total
