"""Vectorised reranking against the reference notebook's per-query loop."""

from __future__ import annotations

import numpy as np
from conftest import brute_force, funnel
from reference_pipeline import normalize, reference_rerank

from mrlbench.rerank import rerank


def data(n=2000, m=50, d=256, seed=3):
    rng = np.random.default_rng(seed)
    xb = rng.standard_normal((n, d)).astype(np.float32)
    xq = rng.standard_normal((m, d)).astype(np.float32)
    return xb, xq


def test_adaptive_rerank_matches_the_reference_loop():
    xb, xq = data()
    shortlist = brute_force(xb, xq, 8, 200)
    ours = rerank(xb, xq, shortlist, 256, 200)
    ref = reference_rerank(normalize(xb), normalize(xq), False, [256], [200], shortlist)
    np.testing.assert_array_equal(ours, ref)


def test_funnel_matches_the_reference_loop():
    xb, xq = data()
    dims, sizes = [16, 32, 64, 128, 256], [200, 100, 50, 25, 10]
    shortlist = brute_force(xb, xq, 8, 400)
    ours = funnel(xb, xq, shortlist, dims, sizes)
    ref = reference_rerank(normalize(xb), normalize(xq), True, dims, sizes, shortlist)
    assert ours.shape == (len(xq), 10)
    np.testing.assert_array_equal(ours, ref)


def test_rerank_of_the_full_database_is_exact_search():
    xb, xq = data(n=300, m=20)
    everything = np.tile(np.arange(len(xb)), (len(xq), 1))
    np.testing.assert_array_equal(rerank(xb, xq, everything, 64, 10), brute_force(xb, xq, 64, 10))


def test_missing_ids_sort_last_and_stay_missing():
    xb, xq = data(n=100, m=3)
    candidates = np.array([[-1, 5, 7, -1]] * 3)
    out = rerank(xb, xq, candidates, 32)
    assert (out[:, 2:] == -1).all()
    assert {tuple(sorted(row[:2])) for row in out} == {(5, 7)}


def test_small_chunks_give_the_same_result(monkeypatch):
    import mrlbench.rerank as module

    xb, xq = data(m=37)
    shortlist = brute_force(xb, xq, 8, 50)
    expected = rerank(xb, xq, shortlist, 128, 20)
    monkeypatch.setattr(module, "CHUNK_ELEMENTS", 50 * 128 * 3)  # 3 queries per chunk
    np.testing.assert_array_equal(rerank(xb, xq, shortlist, 128, 20), expected)
