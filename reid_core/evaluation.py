"""Features, distances and CMC / mAP / mINP under the standard ReID protocol.

Protocol (Market-1501 / DukeMTMC-reID, as in torchreid and fast-reid): for each query,
rank the gallery by distance (stable: ties go to the lower gallery index), remove the
gallery items with the same person id AND the same camera as the query, keep
distractors; a query left without any true match is skipped (not counted as zero).

`evaluate` is vectorised: no Python loop over queries. The same-id pairs come from the
gallery grouped by id (no Q x G comparison); per chunk of query rows, distances become
packed uint64 keys (distance bits | gallery index, so ties break exactly like a stable
argsort), only the items ranked up to each row's last true match are sorted (one 1-D
sort per chunk), and the positions of the true matches come from one `searchsorted`.
Chunks run on a small thread pool (numpy releases the GIL).
The numbers are identical to the reference per-query loop (see tests/core/test_evaluation.py).
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Iterable

import numpy as np
import torch
import torch.nn.functional as F

from .errors import DataError

__all__ = ["evaluate", "extract_features", "compute_distance", "evaluate_model", "embed_tensor", "evaluate_features"]

# Rows per chunk: 256 x 16k gallery x 8 bytes = 32 MB of keys per chunk and thread.
_CHUNK_ROWS = 256


def _num_threads() -> int:
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(4, cpus))


def _as_numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


# ---------------------------------------------------------------------------------
# CMC / mAP / mINP


def _ordered_bits(d32: np.ndarray) -> np.ndarray:
    """Map float32 to uint32 so that unsigned order == float order (-0.0 == +0.0)."""
    d32 = d32 + np.float32(0.0)  # -0.0 + 0.0 = +0.0: the reference sort sees them equal
    bits = d32.view(np.uint32)
    # negative floats: flip every bit; positive: set the sign bit.
    flip = np.where(bits >= np.uint32(0x80000000), np.uint32(0xFFFFFFFF), np.uint32(0x80000000))
    return bits ^ flip


def _same_pid_pairs(
    q_pids: np.ndarray, g_order: np.ndarray, g_sorted_pids: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(query row, gallery index) of every pair with the same id, without a Q x G pass.

    Within a row the gallery indices are increasing (g_order is a stable sort by id).
    """
    lo = np.searchsorted(g_sorted_pids, q_pids, side="left")
    counts = np.searchsorted(g_sorted_pids, q_pids, side="right") - lo
    rows = np.repeat(np.arange(len(q_pids)), counts)
    offsets = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    return rows, g_order[np.repeat(lo, counts) + offsets]


def _match_positions_packed(
    d: np.ndarray, mr: np.ndarray, mc: np.ndarray, ir: np.ndarray, ic: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(row, 0-based position among the row's valid items) of every true match.

    Key = distance bits | gallery index: unique per row, and its order is the order of a
    stable argsort by distance. Only the items ranked at or before a row's LAST true
    match can change a metric, so only those are sorted (with the row in the high bits,
    one 1-D sort for the chunk); a true match's position is then one searchsorted,
    minus the removed (same id, same camera) items ranked before it.
    """
    c, g = d.shape
    ib = max(1, int(g - 1).bit_length())
    sh = np.uint64(32 + ib)
    key = _ordered_bits(d).astype(np.uint64)
    key <<= np.uint64(ib)
    key |= np.arange(g, dtype=np.uint64)
    mkey = key[mr, mc]
    last = np.zeros(c, dtype=np.uint64)  # 0 < every key: rows without a match select nothing
    np.maximum.at(last, mr, mkey)
    sel = key <= last[:, None]
    count = sel.sum(axis=1)
    row_hi = np.arange(c, dtype=np.uint64) << sh
    removed = np.sort(key[ir, ic] | row_hi[ir])  # before `key` is sorted in place
    if count.sum() < 0.3 * c * g:  # the usual case for a trained model
        ranked = key[sel]
        ranked |= np.repeat(row_hi, count)
        ranked.sort()
        start = np.cumsum(count) - count
    else:  # poor rankings (e.g. an untrained model): sorting each full row is cheaper
        key |= row_hi[:, None]
        key.sort(axis=1)
        ranked = key.reshape(-1)
        start = np.arange(c) * g
    full = mkey | row_hi[mr]
    order = np.argsort(full)
    full, mr = full[order], mr[order]
    pos = np.searchsorted(ranked, full) - start[mr]
    pos -= np.searchsorted(removed, full) - np.searchsorted(removed, row_hi[mr])
    return mr, pos


def _match_positions_argsort(
    d: np.ndarray, mr: np.ndarray, mc: np.ndarray, ir: np.ndarray, ic: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Same result via a stable argsort (used when the distances are not float32-exact)."""
    c, g = d.shape
    match = np.zeros((c, g), dtype=bool)
    match[mr, mc] = True
    valid = np.ones((c, g), dtype=bool)
    valid[ir, ic] = False
    order = np.argsort(d, axis=1, kind="stable")
    row_index = np.arange(c)[:, None]
    cum_valid = np.cumsum(valid[row_index, order], axis=1)
    rows, cols = np.nonzero(match[row_index, order])
    return rows, cum_valid[rows, cols] - 1


def _chunk_metrics(
    d: np.ndarray,
    q_pids: np.ndarray,
    q_camids: np.ndarray,
    g_camids: np.ndarray,
    g_order: np.ndarray,
    g_sorted_pids: np.ndarray,
    packed: bool,
) -> dict[str, np.ndarray]:
    rows, cols = _same_pid_pairs(q_pids, g_order, g_sorted_pids)
    same_cam = q_camids[rows] == g_camids[cols]
    mr, mc, ir, ic = rows[~same_cam], cols[~same_cam], rows[same_cam], cols[same_cam]
    find = _match_positions_packed if packed else _match_positions_argsort
    rows, pos = find(d, mr, mc, ir, ic)  # sorted by row, then position
    return _row_metrics(rows, pos, d.shape[0])


def _row_metrics(rows: np.ndarray, pos: np.ndarray, c: int) -> dict[str, np.ndarray]:
    """Per-query AP, INP and first-match position from the true matches' (row, position)
    among the row's valid items, sorted by row then position."""
    matches = np.bincount(rows, minlength=c)
    start = np.concatenate(([0], np.cumsum(matches)[:-1]))
    rank_in_row = np.arange(len(rows)) - start[rows] + 1  # i-th true match of its query
    ap_sum = np.bincount(rows, weights=rank_in_row / (pos + 1.0), minlength=c)
    has = matches > 0
    first = np.full(c, -1, dtype=np.int64)
    last = np.full(c, -1, dtype=np.int64)
    first[has] = pos[start[has]]
    last[has] = pos[start[has] + matches[has] - 1]
    ap = np.zeros(c)
    inp = np.zeros(c)
    ap[has] = ap_sum[has] / matches[has]
    inp[has] = matches[has] / (last[has] + 1.0)
    return {"valid": has, "ap": ap, "inp": inp, "first": first}


def evaluate(
    distmat: Any,
    q_pids: Any,
    g_pids: Any,
    q_camids: Any,
    g_camids: Any,
    max_rank: int = 50,
) -> dict[str, Any]:
    """CMC, mAP and mINP of a [num_query, num_gallery] distance matrix.

    Returns `rank1`, `rank5`, `rank10`, `mAP`, `mINP` (Python floats in [0, 1]), `cmc`
    (numpy array of length min(max_rank, num_gallery)), `num_valid_queries` and
    `num_queries`. Raises DataError when no query has a true match in another camera.
    """
    dist = _as_numpy(distmat)
    qp, gp = _as_numpy(q_pids).astype(np.int64).ravel(), _as_numpy(g_pids).astype(np.int64).ravel()
    qc, gc = _as_numpy(q_camids).astype(np.int64).ravel(), _as_numpy(g_camids).astype(np.int64).ravel()
    if dist.ndim != 2:
        raise ValueError(f"distmat must be 2-D [num_query, num_gallery], got shape {dist.shape}")
    nq, ng = dist.shape
    _check_problem(nq, ng, (len(qp), len(qc), len(gp), len(gc)), max_rank, f"distmat {dist.shape}")
    if np.issubdtype(dist.dtype, np.floating) and np.isnan(dist).any():
        raise DataError("the distance matrix contains NaN (non-finite features?)")

    # Fast path when float32 holds every distance exactly (always for compute_distance's
    # output); otherwise a stable argsort on the original values gives the same ranking.
    if dist.dtype == np.float32:
        d_used, packed = dist, True
    else:
        d32 = dist.astype(np.float32)
        if np.array_equal(d32, dist):
            d_used, packed = d32, True
        else:
            d_used, packed = dist, False
    if packed and 32 + max(1, int(ng - 1).bit_length()) + int(_CHUNK_ROWS - 1).bit_length() > 64:
        packed = False  # gallery too large to pack index + row into the key (> 2^23 items)

    bounds = [(s, min(s + _CHUNK_ROWS, nq)) for s in range(0, nq, _CHUNK_ROWS)]
    g_order = np.argsort(gp, kind="stable")
    g_sorted_pids = gp[g_order]

    def work(b: tuple[int, int]) -> dict[str, np.ndarray]:
        s, e = b
        return _chunk_metrics(d_used[s:e], qp[s:e], qc[s:e], gc, g_order, g_sorted_pids, packed)

    threads = min(_num_threads(), len(bounds))
    if threads > 1:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            parts = list(pool.map(work, bounds))
    else:
        parts = [work(b) for b in bounds]

    return _summarise(parts, nq, ng, max_rank)


def _summarise(parts: list[dict[str, np.ndarray]], nq: int, ng: int, max_rank: int) -> dict[str, Any]:
    valid = np.concatenate([p["valid"] for p in parts])
    nvalid = int(valid.sum())
    if nvalid == 0:
        raise DataError(f"no valid query: none of the {nq} queries has a true match in the gallery from another camera")
    first = np.concatenate([p["first"] for p in parts])[valid]
    ap = np.concatenate([p["ap"] for p in parts])[valid]
    inp = np.concatenate([p["inp"] for p in parts])[valid]
    length = min(max_rank, ng)
    # cmc[k] = fraction of valid queries whose first true match is at position <= k.
    hist = np.bincount(np.minimum(first, length), minlength=length + 1)[:length]
    cmc = np.cumsum(hist) / nvalid

    def rank(k: int) -> float:
        return float(np.mean(first < k))

    return {
        "rank1": rank(1),
        "rank5": rank(5),
        "rank10": rank(10),
        "mAP": float(ap.mean()),
        "mINP": float(inp.mean()),
        "cmc": cmc.astype(np.float64),
        "num_valid_queries": nvalid,
        "num_queries": nq,
    }


def _check_problem(nq: int, ng: int, label_lens: tuple[int, int, int, int], max_rank: int, shape: str) -> None:
    """The checks `evaluate` and `evaluate_features` share. label_lens: q_pids, q_camids,
    g_pids, g_camids."""
    lq, lqc, lg, lgc = label_lens
    if lq != nq or lqc != nq or lg != ng or lgc != ng:
        raise ValueError(f"shape mismatch: {shape}, q_pids {lq}, q_camids {lqc}, g_pids {lg}, g_camids {lgc}")
    if max_rank < 1:
        raise ValueError(f"max_rank must be >= 1, got {max_rank}")
    if nq == 0 or ng == 0:
        raise DataError(f"cannot evaluate an empty problem ({nq} queries, {ng} gallery items)")


# ---------------------------------------------------------------------------------
# Features and distances


def _embed_batch(model: torch.nn.Module, images: torch.Tensor, flip: bool, who: str) -> torch.Tensor:
    """[B, D] embeddings of one batch; with `flip`, averaged with the mirror's, re-L2-normalised."""
    embeddings = model(images)
    if not isinstance(embeddings, torch.Tensor) or embeddings.dim() != 2:
        shape = tuple(embeddings.shape) if isinstance(embeddings, torch.Tensor) else ""
        raise TypeError(
            f"{who}: the model in eval mode must return a [N, D] tensor, got {type(embeddings).__name__}{shape}"
        )
    if flip:
        embeddings = F.normalize((embeddings + model(torch.flip(images, dims=[3]))) * 0.5, dim=1)
    return embeddings


def _euclidean(q: torch.Tensor, g: torch.Tensor, g_sq: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """sqrt(max(|q|^2 + |g|^2 - 2 q.g, 0)), one formula for every path so that ranks agree."""
    dist = torch.addmm((q * q).sum(dim=1, keepdim=True) + g_sq[None, :], q, g.T, beta=1.0, alpha=-2.0, out=out)
    return dist.clamp_(min=0.0).sqrt_()


@torch.inference_mode()
def extract_features(
    model: torch.nn.Module,
    loader: Iterable,
    device: torch.device | str,
    flip: bool = False,
) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """Embeddings of every image of `loader` (batches of (images, pids, camids, ...)).

    The model in eval mode must return a [N, D] tensor. With `flip`, the embedding of the
    image and of its horizontal mirror are averaged and the result re-L2-normalised.
    Returns (features [N, D] float32 on CPU, pids, camids). The model's train/eval mode is
    restored afterwards.
    """
    was_training = model.training
    model.eval()
    feats: list[torch.Tensor] = []
    pids: list[np.ndarray] = []
    camids: list[np.ndarray] = []
    try:
        for batch in loader:
            images = batch[0].to(device, non_blocking=True)
            feats.append(_embed_batch(model, images, flip, "extract_features").float().cpu())
            pids.append(_as_numpy(batch[1]).astype(np.int64).ravel())
            camids.append(_as_numpy(batch[2]).astype(np.int64).ravel())
    finally:
        model.train(was_training)
    if not feats:
        raise DataError("extract_features: the loader yielded no batch (empty dataset?)")
    return torch.cat(feats), np.concatenate(pids), np.concatenate(camids)


def compute_distance(
    qf: Any,
    gf: Any,
    metric: str = "euclidean",
    chunk_size: int = 1024,
    device: torch.device | str | None = None,
) -> np.ndarray:
    """[num_query, num_gallery] float32 distances, computed `chunk_size` queries at a time.

    euclidean: sqrt(max(|q|^2 + |g|^2 - 2 q.g, 0)) (same ranking as the squared distance
    torchreid returns); cosine: 1 - cos(q, g). Peak extra memory is one chunk
    (chunk_size x num_gallery floats) besides the float32 result.
    """
    if metric not in ("euclidean", "cosine"):
        raise ValueError(f"metric must be 'euclidean' or 'cosine', got {metric!r}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    q = torch.as_tensor(qf).float()
    g = torch.as_tensor(gf).float()
    if q.dim() != 2 or g.dim() != 2 or q.shape[1] != g.shape[1]:
        raise ValueError(f"features must be [N, D] with the same D, got {tuple(q.shape)} and {tuple(g.shape)}")
    scale = _overflow_scale(q, g) if metric == "euclidean" else 1.0
    if scale != 1.0:
        q, g = q / scale, g / scale
    dev = torch.device(device) if device is not None else g.device
    g = g.to(dev)
    if metric == "cosine":
        g = F.normalize(g, dim=1)
    else:
        g_sq = (g * g).sum(dim=1)
    out = np.empty((q.shape[0], g.shape[0]), dtype=np.float32)
    with torch.inference_mode():
        for s in range(0, q.shape[0], chunk_size):
            qc = q[s : s + chunk_size].to(dev)
            # On CPU the result is written straight into `out` (no extra copy).
            target = torch.from_numpy(out[s : s + chunk_size]) if dev.type == "cpu" else None
            if metric == "cosine":
                dc = torch.addmm(
                    torch.ones((), device=dev), F.normalize(qc, dim=1), g.T, beta=1.0, alpha=-1.0, out=target
                )
            else:
                dc = _euclidean(qc, g, g_sq, out=target)
            if target is None:
                out[s : s + chunk_size] = dc.cpu().numpy()
    if scale != 1.0:
        out *= scale
    return out


def _overflow_scale(q: torch.Tensor, g: torch.Tensor) -> float:
    """A power of two that brings features whose squares would overflow float32 (above
    2**60: unnormalised embeddings of a barely trained network) into range; 1 otherwise.
    Dividing by a power of two is exact, so the distances only change where they overflowed."""
    largest = max(float(q.abs().max()) if q.numel() else 0.0, float(g.abs().max()) if g.numel() else 0.0)
    if not math.isfinite(largest) or largest < 2.0**60:  # non-finite: left for the caller's check to name
        return 1.0
    return 2.0 ** math.ceil(math.log2(largest))


def evaluate_model(
    model: torch.nn.Module,
    query_loader: Iterable,
    gallery_loader: Iterable,
    device: torch.device | str,
    flip: bool = False,
    max_rank: int = 50,
    metric: str = "euclidean",
) -> dict[str, Any]:
    """Extract query and gallery features, compute distances and `evaluate` them."""
    qf, q_pids, q_camids = extract_features(model, query_loader, device, flip=flip)
    gf, g_pids, g_camids = extract_features(model, gallery_loader, device, flip=flip)
    distmat = compute_distance(qf, gf, metric=metric, device=device)
    return evaluate(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=max_rank)


# ---------------------------------------------------------------------------------
# Device-side helpers (data.pipeline=device): embeddings from uint8 tensors, ranking on
# the features' device. Same protocol and numbers as `evaluate(compute_distance(...))`.


@torch.inference_mode()
def embed_tensor(
    model: torch.nn.Module,
    images: torch.Tensor,
    batch_size: int = 1024,
    flip: bool = False,
    prepare: Any = None,
) -> torch.Tensor:
    """Eval-mode embeddings [N, D] (float32, on the images' device) of a uint8 [N, 3, H, W]
    tensor, `batch_size` images at a time. `prepare(batch) -> float batch` defaults to the
    ImageNet normalisation of the test transform; with `flip`, as in `extract_features`.
    The model's train/eval mode is restored afterwards."""
    if prepare is None:
        from .data.device_augment import normalise

        prepare = normalise
    was_training = model.training
    model.eval()
    out: list[torch.Tensor] = []
    try:
        for s in range(0, images.shape[0], batch_size):
            out.append(_embed_batch(model, prepare(images[s : s + batch_size]), flip, "embed_tensor").float())
    finally:
        model.train(was_training)
    if not out:
        raise DataError("embed_tensor: no image to embed")
    return torch.cat(out)


def _positions_torch(
    d: torch.Tensor, qp: torch.Tensor, qc: torch.Tensor, gp: torch.Tensor, gc: torch.Tensor
) -> tuple[np.ndarray, np.ndarray]:
    """(row, position among valid items) of the true matches of a distance chunk, by a
    stable sort on the chunk's device (ties: lower gallery index first, as `evaluate`)."""
    order = torch.sort(d + 0.0, dim=1, stable=True).indices  # + 0.0: -0.0 == +0.0
    same = gp[order] == qp[:, None]
    junk = same & (gc[order] == qc[:, None])
    valid_pos = (~junk).cumsum(dim=1) - 1
    rows, cols = torch.nonzero(same & ~junk, as_tuple=True)  # row-major: by row, then rank
    return rows.cpu().numpy(), valid_pos[rows, cols].cpu().numpy()


@torch.inference_mode()
def evaluate_features(
    qf: torch.Tensor,
    gf: torch.Tensor,
    q_pids: Any,
    g_pids: Any,
    q_camids: Any,
    g_camids: Any,
    max_rank: int = 50,
    chunk_size: int = 1024,
) -> dict[str, Any]:
    """`evaluate(compute_distance(qf, gf), ...)` with the distances and the ranking on the
    features' device (a GPU sorts a Market-sized problem in well under a second); only
    the positions of the true matches come back to the CPU. Same dict, same numbers."""
    qf, gf = torch.as_tensor(qf).float(), torch.as_tensor(gf).float()
    dev = gf.device
    qf = qf.to(dev)
    nq, ng = qf.shape[0], gf.shape[0]

    def lab(x: Any) -> torch.Tensor:
        return torch.as_tensor(_as_numpy(x).astype(np.int64).ravel(), device=dev)

    qp, gp, qc, gc = lab(q_pids), lab(g_pids), lab(q_camids), lab(g_camids)
    _check_problem(nq, ng, (len(qp), len(qc), len(gp), len(gc)), max_rank, f"features {nq} x {ng}")
    g_sq = (gf * gf).sum(dim=1)
    parts = []
    for s in range(0, nq, chunk_size):
        dist = _euclidean(qf[s : s + chunk_size], gf, g_sq)  # compute_distance's formula: same ranks
        if torch.isnan(dist).any():
            raise DataError("the distance matrix contains NaN (non-finite features?)")
        rows, pos = _positions_torch(dist, qp[s : s + chunk_size], qc[s : s + chunk_size], gp, gc)
        parts.append(_row_metrics(rows, pos, dist.shape[0]))
    return _summarise(parts, nq, ng, max_rank)
