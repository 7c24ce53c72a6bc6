"""CMC / mAP / mINP under the standard protocol, distances and feature extraction."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reid_core.errors import DataError
from reid_core.evaluation import compute_distance, evaluate, evaluate_model, extract_features


def reference_loop(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=50):
    """The per-query loop of torchreid / fast-reid, with a stable sort (ties by index)."""
    distmat = np.asarray(distmat)
    q_pids, g_pids = np.asarray(q_pids), np.asarray(g_pids)
    q_camids, g_camids = np.asarray(q_camids), np.asarray(g_camids)
    max_rank = min(max_rank, distmat.shape[1])
    indices = np.argsort(distmat, axis=1, kind="stable")
    cmcs, aps, inps, firsts = [], [], [], []
    for q in range(distmat.shape[0]):
        order = indices[q]
        keep = ~((g_pids[order] == q_pids[q]) & (g_camids[order] == q_camids[q]))
        raw = (g_pids[order][keep] == q_pids[q]).astype(np.int64)
        if not raw.any():
            continue
        cum = raw.cumsum()
        last = np.nonzero(raw)[0].max()
        inps.append(cum[last] / (last + 1.0))
        cmc = np.minimum(cum, 1)
        full = np.ones(max_rank)  # stays 1 after the first match, even past the valid items
        full[: min(max_rank, len(cmc))] = cmc[:max_rank]
        cmcs.append(full)
        aps.append((cum / (np.arange(len(raw)) + 1.0) * raw).sum() / raw.sum())
        firsts.append(np.nonzero(raw)[0][0])
    firsts = np.array(firsts)
    return {
        "cmc": np.mean(cmcs, axis=0),
        "mAP": float(np.mean(aps)),
        "mINP": float(np.mean(inps)),
        "rank1": float(np.mean(firsts < 1)),
        "rank5": float(np.mean(firsts < 5)),
        "rank10": float(np.mean(firsts < 10)),
        "num_valid_queries": len(aps),
    }


def assert_same(r: dict, ref: dict) -> None:
    assert r["num_valid_queries"] == ref["num_valid_queries"]
    np.testing.assert_allclose(r["cmc"], ref["cmc"], rtol=0, atol=1e-12)
    for k in ("mAP", "mINP", "rank1", "rank5", "rank10"):
        assert r[k] == pytest.approx(ref[k], abs=1e-12), k


def test_hand_computed_with_distractor_and_same_camera_removal():
    # Gallery: 0 = true match (other camera), 1 = other id, 2 = same id same camera
    # (removed), 3 = distractor. Sorted: 2 (removed), 1, 3, 0 -> first match at rank 3.
    d = np.array([[0.3, 0.1, 0.05, 0.2]], dtype=np.float32)
    r = evaluate(d, [1], [1, 2, 1, 0], [0], [1, 1, 0, 2], max_rank=5)
    assert r["num_valid_queries"] == 1
    np.testing.assert_array_equal(r["cmc"], [0, 0, 1, 1])  # gallery smaller than max_rank
    assert r["rank1"] == 0.0 and r["rank5"] == 1.0
    assert r["mAP"] == pytest.approx(1 / 3)
    assert r["mINP"] == pytest.approx(1 / 3)
    assert all(isinstance(r[k], float) for k in ("rank1", "rank5", "rank10", "mAP", "mINP"))


def test_ties_are_broken_by_gallery_index():
    # All distances equal: order = gallery order; matches at positions 2 and 3.
    d = np.full((1, 4), 0.5, dtype=np.float32)
    r = evaluate(d, [1], [2, 1, 1, 3], [0], [1, 1, 2, 1])
    assert r["rank1"] == 0.0
    np.testing.assert_array_equal(r["cmc"][:3], [0, 1, 1])
    assert r["mAP"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert r["mINP"] == pytest.approx(2 / 3)


def test_queries_without_cross_camera_match_are_skipped():
    g_pids, g_cams = [1, 2, 3, 3], [1, 1, 0, 1]
    q_pids, q_cams = [1, 2, 4], [0, 1, 0]  # q0 valid; q1's only match is in its camera; q2 no match
    d = np.array([[0.1, 0.2, 0.3, 0.4], [0.5, 0.1, 0.2, 0.3], [0.1, 0.2, 0.3, 0.4]], dtype=np.float32)
    r = evaluate(d, q_pids, g_pids, q_cams, g_cams)
    assert r["num_valid_queries"] == 1 and r["num_queries"] == 3
    assert r["rank1"] == 1.0 and r["mAP"] == 1.0 and r["mINP"] == 1.0


def test_no_valid_query_raises():
    d = np.zeros((2, 2), dtype=np.float32)
    with pytest.raises(DataError, match="no valid query"):
        evaluate(d, [1, 2], [1, 2], [0, 0], [0, 0])


def test_nan_and_bad_shapes_raise():
    d = np.array([[np.nan, 1.0]], dtype=np.float32)
    with pytest.raises(DataError, match="NaN"):
        evaluate(d, [1], [1, 1], [0], [1, 2])
    with pytest.raises(ValueError, match="shape mismatch"):
        evaluate(np.zeros((1, 3)), [1], [1, 1], [0], [1, 2])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("seed", range(6))
def test_equals_reference_loop_on_random_problems_with_ties(seed, dtype):
    rng = np.random.default_rng(seed)
    nq, ng = int(rng.integers(20, 300)), int(rng.integers(30, 700))
    n_ids, n_cams = int(rng.integers(3, 40)), int(rng.integers(2, 7))
    q_pids, g_pids = rng.integers(0, n_ids, nq), rng.integers(0, n_ids, ng)
    q_cams, g_cams = rng.integers(0, n_cams, nq), rng.integers(0, n_cams, ng)
    # Few distinct values -> many ties; plus -0.0 vs 0.0 which must tie too.
    d = rng.integers(0, 6, (nq, ng)).astype(dtype) / 4
    d[rng.random((nq, ng)) < 0.05] = -0.0
    for max_rank in (1, 10, 50, ng + 10):
        assert_same(
            evaluate(d, q_pids, g_pids, q_cams, g_cams, max_rank),
            reference_loop(d, q_pids, g_pids, q_cams, g_cams, max_rank),
        )


def test_equals_reference_on_float64_not_exact_in_float32():
    rng = np.random.default_rng(7)
    d = rng.random((80, 400)) * 1e-3 + 1.0  # float32 would merge neighbours: fallback path
    d[:, ::7] = d[:, 3:4]  # and exact ties
    q_pids, g_pids = rng.integers(0, 10, 80), rng.integers(0, 10, 400)
    q_cams, g_cams = rng.integers(0, 3, 80), rng.integers(0, 3, 400)
    assert_same(evaluate(d, q_pids, g_pids, q_cams, g_cams), reference_loop(d, q_pids, g_pids, q_cams, g_cams))


def test_many_chunks_and_torch_inputs():
    rng = np.random.default_rng(3)
    nq, ng = 700, 300  # several 256-row chunks
    d = rng.random((nq, ng)).astype(np.float32)
    q_pids, g_pids = rng.integers(0, 30, nq), rng.integers(0, 30, ng)
    q_cams, g_cams = rng.integers(0, 4, nq), rng.integers(0, 4, ng)
    r = evaluate(torch.from_numpy(d), torch.from_numpy(q_pids), torch.from_numpy(g_pids), q_cams.tolist(), g_cams)
    assert_same(r, reference_loop(d, q_pids, g_pids, q_cams, g_cams))
    assert len(r["cmc"]) == 50 and np.all(np.diff(r["cmc"]) >= 0)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_compute_distance_chunked_equals_unchunked(metric):
    rng = np.random.default_rng(0)
    qf, gf = rng.standard_normal((37, 16)).astype(np.float32), rng.standard_normal((53, 16)).astype(np.float32)
    full = compute_distance(qf, gf, metric=metric, chunk_size=1000)
    chunked = compute_distance(torch.from_numpy(qf), torch.from_numpy(gf), metric=metric, chunk_size=5)
    assert full.dtype == np.float32 and full.shape == (37, 53)
    np.testing.assert_allclose(chunked, full, rtol=1e-5, atol=1e-5)
    if metric == "euclidean":
        expect = np.sqrt(((qf[:, None, :].astype(np.float64) - gf[None]) ** 2).sum(-1))
    else:
        qn = qf / np.linalg.norm(qf, axis=1, keepdims=True)
        gn = gf / np.linalg.norm(gf, axis=1, keepdims=True)
        expect = 1 - qn @ gn.T
    np.testing.assert_allclose(full, expect, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError):
        compute_distance(qf, gf, metric="manhattan")


class _RowMean(torch.nn.Module):
    """Embedding = mean over rows of the image (depends on left/right), [N, C*W]."""

    def __init__(self) -> None:
        super().__init__()
        self.bn = torch.nn.BatchNorm1d(1)  # something with a train/eval mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=2).flatten(1)


def _batches(images: torch.Tensor, pids, camids, bs=3):
    return [
        (
            images[i : i + bs],
            torch.tensor(pids[i : i + bs]),
            torch.tensor(camids[i : i + bs]),
            torch.arange(i, min(i + bs, len(pids))),
        )
        for i in range(0, len(pids), bs)
    ]


def test_extract_features_with_flip_and_mode_restored():
    torch.manual_seed(0)
    images = torch.rand(7, 3, 8, 4)
    pids, camids = list(range(7)), [0, 1] * 3 + [0]
    model = _RowMean().train()
    f, p, c = extract_features(model, _batches(images, pids, camids), "cpu")
    assert model.training  # restored
    assert f.shape == (7, 12) and f.dtype == torch.float32
    np.testing.assert_array_equal(p, pids)
    np.testing.assert_array_equal(c, camids)
    ff, _, _ = extract_features(model, _batches(images, pids, camids), "cpu", flip=True)
    expect = torch.nn.functional.normalize((f + images.flip(3).mean(dim=2).flatten(1)) / 2, dim=1)
    torch.testing.assert_close(ff, expect)


def test_evaluate_model_end_to_end():
    torch.manual_seed(0)
    # Identity k's images are k + small noise: a perfect ranking.
    base = torch.rand(5, 3, 8, 4) * 10
    q = base + 0.01 * torch.rand(5, 3, 8, 4)
    g = torch.cat([base, base]) + 0.01 * torch.rand(10, 3, 8, 4)
    r = evaluate_model(
        _RowMean(), _batches(q, list(range(5)), [0] * 5), _batches(g, list(range(5)) * 2, [1] * 10), "cpu"
    )
    assert r["rank1"] == 1.0 and r["mAP"] == 1.0 and r["num_valid_queries"] == 5


@pytest.mark.parametrize("noise", [0.05, 0.5, 5.0])
def test_equals_reference_from_good_to_poor_rankings(noise):
    # Good rankings take the "sort only up to the last match" path, poor ones the full sort.
    rng = np.random.default_rng(11)
    centres = rng.standard_normal((40, 8))
    q_pids, g_pids = rng.integers(0, 40, 150), rng.integers(0, 40, 900)
    g_pids[:50] = -1  # junk-like ids that match nothing
    q_cams, g_cams = rng.integers(0, 5, 150), rng.integers(0, 5, 900)
    qf = centres[q_pids] + noise * rng.standard_normal((150, 8))
    gf = centres[g_pids] + noise * rng.standard_normal((900, 8))
    d = compute_distance(qf, gf)
    r = evaluate(d, q_pids, g_pids, q_cams, g_cams)
    assert_same(r, reference_loop(d, q_pids, g_pids, q_cams, g_cams))
    if noise < 0.1:
        assert r["mAP"] > 0.99


def test_distances_of_huge_features_do_not_overflow():
    """Unnormalised embeddings of a barely trained network reached 1e18 in a rehearsal: their
    squares overflow float32. The distances come out finite, and exactly as before elsewhere."""
    import torch

    from reid_core.evaluation import compute_distance

    query, gallery = torch.randn(5, 16), torch.randn(7, 16)
    plain = compute_distance(query, gallery)
    huge = compute_distance(query * 2.0**70, gallery * 2.0**70)
    assert np.isfinite(huge).all() and np.allclose(huge / 2.0**70, plain, rtol=1e-6)
    assert np.array_equal(compute_distance(query, gallery), plain)  # bit for bit where nothing overflowed
