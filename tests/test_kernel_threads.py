"""``threads = N`` is N workers for the exact kernel (``mrlbench.knn``) whatever the batch
size, one query included; and the thread count changes nothing in the result: the same
ids and distances, bit for bit, as one thread and as a brute force with the kernel's tie
rule (smaller id first), -1 past the rows."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from mrlbench import knn
from mrlbench.vectors import PrefixBlocks, prefix

ROWS = 140_000  # one query's tile at 8 dims is the whole database: 4 pieces of MIN_PIECE
K = 100
TIED = slice(69_500, 70_000)  # copies of row 123 across the shares of 2 and 4 workers


@pytest.fixture(scope="module")
def integers() -> tuple[knn.ExactIndex, np.ndarray]:
    """Small integers: every product is exact in float32 whatever the shape of the BLAS
    call, so a brute force gives the kernel's distances bit for bit; many exact ties
    (repeated rows, equal products), a zero row, and query 0 is row 123, copied 500
    times: its top-k is a tie of 501 rows."""
    rng = np.random.default_rng(5)
    xb = rng.integers(-3, 4, size=(ROWS, 8)).astype(np.float32)
    xb[10] = 0
    xb[TIED] = xb[123]
    xq = rng.integers(-3, 4, size=(1024, 8)).astype(np.float32)
    xq[0] = xb[123]
    return knn.ExactIndex.build([xb], 8), xq  # rows as they are (not normalised)


def brute_force(index: knn.ExactIndex, xq: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """For every query, the k rows of smallest ``1 - 2 (x.q) / |x|`` (0 for a zero row)
    as float32, ties to the smaller id, then ``|q|^2`` added; inf and -1 past the rows.
    Products in float64, exact on small integers."""
    x = np.asarray(index.database, dtype=np.float64)
    scale = index.scale.astype(np.float64)
    dist = np.full((len(xq), k), np.inf, dtype=np.float32)
    ids = np.full((len(xq), k), -1, dtype=np.int64)
    take = min(k, len(x))
    for r, q in enumerate(xq.astype(np.float64)):
        d = ((scale > 0) - 2.0 * scale * (x @ q)).astype(np.float32)
        kth = np.partition(d, take - 1)[take - 1]
        near = np.flatnonzero(d <= kth)  # ascending ids
        best = near[np.lexsort((near, d[near]))][:take]
        dist[r, :take] = d[best] + np.float32(q @ q)
        ids[r, :take] = best
    return dist, ids


@pytest.fixture(scope="module")
def expected(integers) -> tuple[np.ndarray, np.ndarray]:
    index, xq = integers
    return brute_force(index, xq, K)


@pytest.mark.parametrize("m", [1, 7, 600, 1024])
@pytest.mark.parametrize("threads", [1, 2, 4])
def test_threads_workers_score_whatever_the_batch(integers, expected, monkeypatch, m, threads):
    """Every tile the kernel scores is recorded with the thread that scored it: exactly
    ``threads`` threads score, each some of the work, every (query, row) pair once."""
    index, xq = integers
    scored: dict[threading.Thread, int] = {}  # the objects, never a reused thread id
    lock = threading.Lock()
    merge = knn.TopK.merge

    def recorded(self, queries, block, scale, start, rows, tile_queries, tile_rows, *part):
        lo, hi, _ = (part or [slice(None)])[0].indices(len(block))
        with lock:
            me = threading.current_thread()
            scored[me] = scored.get(me, 0) + len(queries[rows]) * (hi - lo)
        merge(self, queries, block, scale, start, rows, tile_queries, tile_rows, *part)

    monkeypatch.setattr(knn.TopK, "merge", recorded)
    dist, ids = knn.exact_knn(index, xq[:m], K, threads)
    assert len(scored) == threads and min(scored.values()) > 0
    assert sum(scored.values()) == m * ROWS
    np.testing.assert_array_equal(ids, expected[1][:m])
    np.testing.assert_array_equal(dist, expected[0][:m])
    if m == 1:  # the tie: row 123, then its first copies, shared between workers
        assert list(ids[0]) == [123, *range(TIED.start, TIED.start + K - 1)]


def test_plan_gives_every_worker_work_for_one_query_or_many():
    assert knn.plan(1, 4, 256) == ([slice(0, 1)], 4)  # one group, rows in 4 shares
    assert knn.plan(1024, 4, 256) == ([slice(s, s + 256) for s in range(0, 1024, 256)], 1)
    assert knn.plan(1000, 2, 512) == ([slice(0, 512), slice(512, 1000)], 1)  # within SLACK
    assert knn.plan(600, 2, 256) == ([slice(0, 600)], 2)  # 512 + 88 queries: too uneven
    assert knn.plan(1000, 3, 512) == ([slice(0, 1000)], 3)  # 3 workers, 2 query tiles
    # shares at tile boundaries (one thread's products) or pieces of MIN_PIECE rows
    assert knn.cuts(200_000, 8192, 8192, 2) == [0, 98_304, 200_000]
    assert knn.cuts(200_000, 262_144, 262_144, 2) == [0, 99_840, 200_000]
    assert knn.cuts(40_000, 262_144, 262_144, 4) == [0, 0, 0, 40_000, 40_000]  # one tile


@pytest.mark.parametrize("dim", [8, 64])
@pytest.mark.parametrize("m", [1, 7, 600])
def test_floats_give_one_threads_bits_with_any_thread_count(dim, m):
    """Random (normalised) floats, compact copy and raw rows: any thread count gives
    one thread's distances and ids, bit for bit."""
    rng = np.random.default_rng(dim + m)
    xb = rng.standard_normal((ROWS, 80), dtype=np.float32)
    xb[ROWS // 2 : ROWS // 2 + 300] = xb[4]  # exact ties across the shares
    xq = prefix(rng.standard_normal((m, 80), dtype=np.float32), dim)
    xq[0] = prefix(xb[4:5], dim)[0]
    raw = knn.ExactIndex(xb, dim, knn.inverse_norms(xb, dim))
    for index in (knn.ExactIndex.build(PrefixBlocks(xb, dim), dim), raw):
        one = knn.exact_knn(index, xq, K, threads=1)
        for threads in (2, 3, 4):
            dist, ids = knn.exact_knn(index, xq, K, threads)
            np.testing.assert_array_equal(ids, one[1])
            np.testing.assert_array_equal(dist, one[0])


def test_fewer_rows_than_k_and_more_workers_than_rows(integers):
    index, xq = integers
    small = knn.ExactIndex.build([np.asarray(index.database[:5])], 8)
    want = brute_force(small, xq[:3], 8)
    for threads in (1, 4):
        dist, ids = knn.exact_knn(small, xq[:3], 8, threads)
        np.testing.assert_array_equal(ids, want[1])
        np.testing.assert_array_equal(dist, want[0])
        assert (ids[:, 5:] == -1).all() and np.isinf(dist[:, 5:]).all()
