"""Rank a gallery for each query: Euclidean distance on the embeddings
(`reid_core.evaluation.compute_distance`, the evaluation's metric), stable order (ties go
to the lower gallery index, as in the evaluation protocol)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..data.layout import FILE_NAME_PATTERN
from ..errors import DataError
from ..evaluation import compute_distance, evaluate
from .features import FeatureSet, check_compatible

__all__ = ["Match", "QueryResult", "search", "parse_person_id", "evaluate_features"]


def parse_person_id(path: str) -> tuple[int, int] | None:
    """(person id, camera) from a Market-1501-style name (`0001_c1s1_...`), else None."""
    match = FILE_NAME_PATTERN.match(Path(path).name)
    return (int(match.group(1)), int(match.group(2))) if match else None


@dataclass
class Match:
    rank: int  # 1-based
    path: str
    distance: float
    same_id: bool | None  # None when either name carries no id, or the match is junk (-1) / a distractor (0)


@dataclass
class QueryResult:
    path: str
    matches: list[Match]


def search(
    query: FeatureSet, gallery: FeatureSet, top_k: int = 10, what_query: str = "query", what_gallery: str = "gallery"
) -> list[QueryResult]:
    """The top_k gallery items of every query, nearest first."""
    if top_k < 1:
        raise DataError(f"--top-k: must be >= 1, got {top_k}")
    check_compatible(query.info, gallery.info, what_query, what_gallery)
    dist = compute_distance(query.features, gallery.features)
    shown = min(top_k, dist.shape[1])
    order = np.argsort(dist, axis=1, kind="stable")[:, :shown]
    g_ids = [parse_person_id(p) for p in gallery.paths]
    out = []
    for qi, qpath in enumerate(query.paths):
        qid = parse_person_id(qpath)
        matches = []
        for r, gi in enumerate(order[qi]):
            gid = g_ids[gi]
            # junk (-1) and distractors (0) are nobody's id: neither right nor wrong
            same = None if qid is None or gid is None or gid[0] <= 0 else qid[0] == gid[0]
            matches.append(Match(r + 1, gallery.paths[gi], float(dist[qi, gi]), same))
        out.append(QueryResult(qpath, matches))
    return out


def _ids(fs: FeatureSet, what: str, drop_distractors: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows kept and their (pid, camera); junk (-1) is always dropped, like load_dataset."""
    rows, pids, cams = [], [], []
    for i, p in enumerate(fs.paths):
        pc = parse_person_id(p)
        if pc is None:
            raise DataError(f"{what}: {Path(p).name} carries no person id (expected '<pid>_c<camera>...' names)")
        if pc[0] == -1 or (drop_distractors and pc[0] == 0):
            continue
        rows.append(i), pids.append(pc[0]), cams.append(pc[1])
    return np.asarray(rows, dtype=np.int64), np.asarray(pids), np.asarray(cams)


def evaluate_features(
    query: FeatureSet, gallery: FeatureSet, what_query: str = "query", what_gallery: str = "gallery"
) -> dict[str, Any]:
    """Rank-1/5/10, mAP, mINP of features files whose names carry Market-1501 ids, under the
    protocol of `compact-reid evaluate`: junk (-1) dropped, distractors (0) kept in the gallery
    only, same id + same camera removed, Euclidean distance."""
    check_compatible(query.info, gallery.info, what_query, what_gallery)
    qr, qp, qc = _ids(query, what_query, drop_distractors=True)
    gr, gp, gc = _ids(gallery, what_gallery, drop_distractors=False)
    dist = compute_distance(query.features[qr], gallery.features[gr])
    return evaluate(dist, qp, gp, qc, gc)
