"""CLEAR-MOT and identity metrics with motmetrics 1.4.0, on ground-plane positions.

motmetrics under NumPy 2 / pandas 2+: `mm.distances.iou_matrix` (np.asfarray) and
`merge_event_dataframes` (DataFrame.append) are broken, so the distance matrix is built
here (Euclidean distance in metres, NaN = may not pair beyond `max_distance`) and one
accumulator is used per sequence. motmetrics is imported inside the functions: it is
only needed for evaluation (it pulls pandas and scipy).

MOTA = 1 - (FN + FP + IDSW) / #gt; IDF1 = 2 IDTP / (#gt + #predictions) under the best
global one-to-one matching of ground-truth and predicted identities. MOTP here is the
mean distance of matched pairs in metres (lower is better).
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

__all__ = ["distance_matrix", "compute_mot_metrics", "METRICS", "accumulate"]

# The standard motchallenge summary, in its usual order.
METRICS = (
    "num_frames",
    "mota",
    "motp",
    "idf1",
    "idp",
    "idr",
    "recall",
    "precision",
    "num_objects",
    "num_predictions",
    "num_unique_objects",
    "mostly_tracked",
    "partially_tracked",
    "mostly_lost",
    "num_false_positives",
    "num_misses",
    "num_switches",
    "num_fragmentations",
)
_INT_METRICS = {
    m for m in METRICS if m.startswith("num_") or m in ("mostly_tracked", "partially_tracked", "mostly_lost")
}


def distance_matrix(gt_xy: object, hyp_xy: object, max_distance: float = 0.5) -> np.ndarray:
    """[n_gt, n_hyp] Euclidean distances; NaN where larger than `max_distance` (no pairing)."""
    gt = np.asarray(gt_xy, dtype=np.float64).reshape(-1, 2)
    hyp = np.asarray(hyp_xy, dtype=np.float64).reshape(-1, 2)
    dist = np.sqrt(((gt[:, None, :] - hyp[None, :, :]) ** 2).sum(axis=2))
    dist[dist > max_distance] = np.nan
    return dist


def accumulate(
    frames: Iterable[tuple[Sequence[int], object, Sequence[int], object]], max_distance: float = 0.5
):  # -> mm.MOTAccumulator
    """A motmetrics accumulator fed with (gt_ids, gt_xy, hyp_ids, hyp_xy) per frame."""
    import motmetrics as mm

    acc = mm.MOTAccumulator(auto_id=True)
    for gt_ids, gt_xy, hyp_ids, hyp_xy in frames:
        gt_ids = [int(i) for i in gt_ids]
        hyp_ids = [int(i) for i in hyp_ids]
        if len(set(gt_ids)) != len(gt_ids) or len(set(hyp_ids)) != len(hyp_ids):
            raise ValueError("accumulate: an id appears twice in one frame")
        acc.update(gt_ids, hyp_ids, distance_matrix(gt_xy, hyp_xy, max_distance))
    return acc


def compute_mot_metrics(
    frames: Iterable[tuple[Sequence[int], object, Sequence[int], object]],
    max_distance: float = 0.5,
    metrics: Sequence[str] = METRICS,
) -> dict[str, float | int]:
    """Summary metrics (motchallenge set by default) of one sequence, as plain numbers."""
    import motmetrics as mm

    acc = accumulate(frames, max_distance)
    summary = mm.metrics.create().compute(acc, metrics=list(metrics), name="seq")
    out: dict[str, float | int] = {}
    for m in metrics:
        value = summary[m].iloc[0]
        out[m] = int(value) if m in _INT_METRICS else float(value)
    return out
