"""Funnel and adaptive reranking: the built-in strategies (as ``mrlbench rerank`` runs
them) against the reference notebook's per-query loop; 100k x 2048 database, 5,000
queries; the same neighbour order. One round each (the loop takes tens of seconds), no
warm-up on either side; mrlbench on every core and on one thread (the loop's one)."""

from __future__ import annotations

import numpy as np
import pytest
from reference_pipeline import (
    assert_same_funnel_up_to_ties,
    assert_same_order_up_to_ties,
    normalize,
    reference_rerank,
)
from threadpoolctl import threadpool_limits

from mrlbench_plugins.adaptive import Adaptive
from mrlbench_plugins.funnel import Funnel
from mrlbench_plugins.reference.rerank import GivenShortlist

N, M, D = 100_000, 5_000, 2048
FUNNEL = ([16, 32, 64, 128, 2048], [200, 100, 50, 25, 10])
ADAPTIVE = ([2048], [200])
REFERENCE: dict[str, np.ndarray] = {}  # the reference's output, to check the same order


@pytest.fixture(scope="module")
def data():
    import faiss

    rng = np.random.default_rng(0)
    xb = rng.standard_normal((N, D), dtype=np.float32)
    xq = rng.standard_normal((M, D), dtype=np.float32)
    shortlists = {}
    for dim in (8, 16):
        b = np.ascontiguousarray(xb[:, :dim])
        q = np.ascontiguousarray(xq[:, :dim])
        faiss.normalize_L2(b)
        faiss.normalize_L2(q)
        index = faiss.IndexFlatL2(dim)
        index.add(b)
        shortlists[dim] = index.search(q, 200)[1]
    # the notebook normalises the whole arrays once before its loops (not timed)
    return xb, xq, normalize(xb), normalize(xq), shortlists


def strategy_ids(xb, xq, shortlist, dim, dims, sizes, threads=None):
    """mrlbench's own path: the built-in strategy run on the shortlist (``mrlbench rerank``)."""
    if len(dims) == 1:
        built = Adaptive(shortlist_dim=dim, rerank_dim=dims[0], shortlist=sizes[0])
    else:
        built = Funnel(shortlist_dim=dim, rerank_dims=dims, shortlists=sizes)
    with threadpool_limits(limits=threads):
        ctx = GivenShortlist(xb, xq, shortlist, dim, threads=threads)
        (row,) = built.run(ctx)
    return row.ids


@pytest.mark.parametrize("impl", ["reference-loop", "mrlbench", "mrlbench-1thread"])
@pytest.mark.parametrize(
    ("group", "dim", "cfg"), [("funnel-rerank", 8, FUNNEL), ("adaptive-rerank", 16, ADAPTIVE)]
)
def test_rerank(benchmark, record, data, impl, group, dim, cfg):
    xb, xq, xb_n, xq_n, shortlists = data
    dims, sizes = cfg
    benchmark.group = group
    if impl != "reference-loop":  # the same single round as the reference's slow loop
        threads = 1 if impl == "mrlbench-1thread" else None
        out = benchmark.pedantic(
            strategy_ids, (xb, xq, shortlists[dim], dim, dims, sizes, threads), rounds=1
        )
    else:
        out = benchmark.pedantic(
            reference_rerank, (xb_n, xq_n, len(dims) > 1, dims, sizes, shortlists[dim]), rounds=1
        )
    if impl == "reference-loop":
        REFERENCE[group] = out
        record(group, impl, benchmark)
        return
    ref = REFERENCE.get(group)
    if ref is None:
        ref = reference_rerank(xb_n, xq_n, len(dims) > 1, dims, sizes, shortlists[dim])
    benchmark.extra_info["rows_identical"] = float((out == ref).all(axis=1).mean())
    if len(dims) == 1:
        assert_same_order_up_to_ties(out, ref, xb, xq, dims[0])
    else:
        assert_same_funnel_up_to_ties(out, ref, xb, xq, shortlists[dim], dims, sizes)
    record(group, impl, benchmark)  # only once its result is the reference's
