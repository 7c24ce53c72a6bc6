"""Times distances and CMC/mAP on a Market-1501-sized problem (plain script, no asserts).

    python benchmarks/bench_evaluation.py [--queries 3368] [--gallery 15913] [--dim 1024]
        [--reference-queries 200]

Features: identity centre + camera offset + noise, L2-normalised, ~750 test ids over 6
cameras, distractors (id 0) in the gallery. The reference per-query loop runs on a
subset of queries and its time is extrapolated to all of them.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from reid_core.evaluation import compute_distance, evaluate


def make_problem(nq: int, ng: int, dim: int, ids: int = 750, cams: int = 6, distractors: int = 2793, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((ids + 1, dim)).astype(np.float32)
    # Noise and camera bias sized for a plausible trained model (rank-1 ~0.95, mAP ~0.7).
    cam_offsets = rng.standard_normal((cams, dim)).astype(np.float32) * 0.5
    q_pids = rng.integers(1, ids + 1, nq)
    q_cams = rng.integers(0, cams, nq)
    n_real = ng - distractors
    g_pids = np.concatenate([rng.integers(1, ids + 1, n_real), np.zeros(distractors, dtype=np.int64)])
    g_cams = rng.integers(0, cams, ng)

    def feats(pids: np.ndarray, camids: np.ndarray) -> np.ndarray:
        f = centres[pids] + cam_offsets[camids] + rng.standard_normal((len(pids), dim)).astype(np.float32) * 2.5
        f[pids == 0] = rng.standard_normal(((pids == 0).sum(), dim)).astype(np.float32) * 2.7
        return f / np.linalg.norm(f, axis=1, keepdims=True)

    return feats(q_pids, q_cams), feats(g_pids, g_cams), q_pids, g_pids, q_cams, g_cams


def reference_loop(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=50):
    """torchreid's eval_market1501 loop (with a stable sort)."""
    indices = np.argsort(distmat, axis=1, kind="stable")
    matches = (g_pids[indices] == q_pids[:, None]).astype(np.int32)
    aps, cmcs = [], []
    for q in range(distmat.shape[0]):
        order = indices[q]
        keep = ~((g_pids[order] == q_pids[q]) & (g_camids[order] == q_camids[q]))
        raw = matches[q][keep]
        if not raw.any():
            continue
        cmc = raw.cumsum()
        cmc[cmc > 1] = 1
        cmcs.append(cmc[:max_rank])
        tmp = raw.cumsum() / (np.arange(len(raw)) + 1.0) * raw
        aps.append(tmp.sum() / raw.sum())
    return np.mean(cmcs, axis=0), float(np.mean(aps))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--queries", type=int, default=3368)
    ap.add_argument("--gallery", type=int, default=15913)
    ap.add_argument("--dim", type=int, default=1024)
    ap.add_argument("--reference-queries", type=int, default=200, help="0 skips the reference loop")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    qf, gf, qp, gp, qc, gc = make_problem(args.queries, args.gallery, args.dim)
    print(
        f"problem: {args.queries} queries x {args.gallery} gallery, {args.dim}-d features, "
        f"torch threads {torch.get_num_threads()}"
    )

    times = []
    for _ in range(args.repeat):
        t = time.perf_counter()
        dist = compute_distance(qf, gf, metric="euclidean")
        times.append(time.perf_counter() - t)
    print(
        f"compute_distance (euclidean, float32 {dist.nbytes / 2**20:.0f} MiB): best {min(times):.3f} s of {args.repeat}"
    )

    times = []
    for _ in range(args.repeat):
        t = time.perf_counter()
        r = evaluate(dist, qp, gp, qc, gc, max_rank=50)
        times.append(time.perf_counter() - t)
    print(f"evaluate (CMC/mAP/mINP): best {min(times):.3f} s, mean {np.mean(times):.3f} s of {args.repeat}")
    print(
        f"  rank1 {r['rank1']:.4f}  rank5 {r['rank5']:.4f}  mAP {r['mAP']:.4f}  mINP {r['mINP']:.4f}  "
        f"valid queries {r['num_valid_queries']}"
    )

    n = min(args.reference_queries, args.queries)
    if n > 0:
        t = time.perf_counter()
        cmc, m_ap = reference_loop(dist[:n], qp[:n], gp, qc[:n], gc)
        dt = time.perf_counter() - t
        sub = evaluate(dist[:n], qp[:n], gp, qc[:n], gc)
        same = np.allclose(sub["cmc"], cmc) and abs(sub["mAP"] - m_ap) < 1e-12
        print(
            f"reference loop: {dt:.3f} s for {n} queries -> about {dt * args.queries / n:.1f} s for all "
            f"{args.queries}; same numbers on the subset: {same}"
        )


if __name__ == "__main__":
    main()
