"""Names of the metrics a training run produces (docs/CONTRACTS.md), and the `final_*` rule.

Orchestration (Ray reports, MLflow, spec validation, tables) imports these instead of
writing the tuples again.
"""

from __future__ import annotations

from typing import Any, Mapping

# One evaluation under the standard protocol (reid_core.evaluation.evaluate).
EVAL_KEYS = ("rank1", "rank5", "rank10", "mAP", "mINP")
# Losses of a training epoch.
LOSS_KEYS = ("loss", "loss_ce", "loss_triplet")
# What the paper's column reports: `final_<key>`.
FINAL_KEYS = ("rank1", "rank5", "mAP", "mINP")
SWA_PREFIX, SWAG_PREFIX = "swa_", "swag_"


def final_metrics(latest: Mapping[str, Any]) -> dict[str, float]:
    """The `final_*` rule: the SWAG model's evaluation when there is one, else the current
    weights'. `latest`: the newest value of each evaluated key (plain and `swag_` ones)."""
    out = {}
    for k in FINAL_KEYS:
        value = latest.get(SWAG_PREFIX + k, latest.get(k))
        if value is not None:
            out[f"final_{k}"] = float(value)
    return out
