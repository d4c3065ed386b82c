"""Metrics for 50,000 queries at k = 100: vectorised against the reference notebook's
per-query loop, the same numbers in ``mrl-paper`` mode."""

from __future__ import annotations

import numpy as np
import pytest
from test_metrics import reference_notebook

from mrlbench import metrics

N, M, K, CLASSES = 1_281_167, 50_000, 100, 1000


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    yb = rng.integers(0, CLASSES, N)
    yq = rng.integers(0, CLASSES, M)
    # neighbours that share the query's class about 60% of the time, like a good embedding
    by_class = np.argsort(yb, kind="stable")
    starts = np.searchsorted(yb[by_class], np.arange(CLASSES))
    counts = np.bincount(yb, minlength=CLASSES)
    same = by_class[starts[yq][:, None] + rng.integers(0, counts[yq][:, None], (M, K))]
    ids = np.where(rng.random((M, K)) < 0.6, same, rng.integers(0, N, (M, K)))
    # labels as the reference stored them: float16, shape (n, 1)
    return ids, yb, yq, yb.astype(np.float16).reshape(-1, 1), yq.astype(np.float16).reshape(-1, 1)


@pytest.mark.parametrize("impl", ["reference-loop", "mrlbench", "mrlbench-1thread"])
def test_metrics(benchmark, record, data, impl):
    ids, yb, yq, yb16, yq16 = data
    benchmark.group = "metrics"
    if impl == "reference-loop":
        result = benchmark.pedantic(reference_notebook, (yq16, yb16, ids, K), rounds=3)
        REFERENCE["k100"] = result
    else:
        threads = 1 if impl == "mrlbench-1thread" else None
        got = benchmark.pedantic(
            metrics.compute, (ids, yb, yq, [K], "mrl-paper", threads), rounds=3
        )
        result = (got[f"mAP@{K}"], got[f"precision@{K}"], got[f"recall@{K}"], got[f"topk_acc@{K}"])
        want = REFERENCE.get("k100") or reference_notebook(yq16, yb16, ids, K)
        for ours, ref in zip(result, want, strict=True):
            assert f"{ours:f}" == f"{ref:f}" and ours == pytest.approx(ref, rel=1e-12)
    record("metrics", impl, benchmark)  # 3 rounds, no warm-up, on both sides


REFERENCE: dict[str, tuple] = {}
