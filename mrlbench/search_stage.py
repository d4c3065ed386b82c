"""One k-NN search stage: build (or load) the index for a prefix size, search, time it."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mrlbench.cost import search_mflops
from mrlbench.errors import DataError
from mrlbench.index_cache import load_or_build
from mrlbench.types import Backend, Embeddings
from mrlbench.vectors import prefix

LATENCY_BUDGET_S = 2.0  # the first one-query-at-a-time pass of a stage stops after this long
LATENCY_MIN_QUERIES = 20  # ... but never with fewer queries than this


@dataclass(frozen=True)
class Timed:
    """The best wall-clock of repeated runs and their relative spread (max / min - 1)."""

    seconds: float
    spread: float


@dataclass(frozen=True)
class Searched:
    """Ids of one search and what it cost."""

    ids: np.ndarray
    seconds: float  # best wall-clock over the repeats, every query at once, search only
    spread: float  # relative spread of the repeats (batch, and one-query medians)
    mflops_per_query: float
    query_seconds: np.ndarray  # one query at a time (best of the repeats), first queries
    report: dict[str, Any] = field(default_factory=dict)  # the backend's index_report


def best_of(repeats: int, fn: Callable[[], Any]) -> tuple[Any, Timed]:
    """Run ``fn`` ``repeats`` times (after the caller's warm-up); its last result and
    the best wall-clock seconds with the spread of the repeats."""
    times, result = [], None
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return result, Timed(min(times), relative_spread(times))


def one_at_a_time(
    sample: Sequence[int], fn: Callable[[int], Any], repeats: int = 3
) -> tuple[np.ndarray, float]:
    """Seconds of ``fn(query)`` for each query of ``sample`` in turn, best of ``repeats``
    passes (after one untimed warm-up call), and the spread of the passes' medians
    (max / min - 1). The first pass stops early once ``LATENCY_BUDGET_S`` is spent (but
    not before ``LATENCY_MIN_QUERIES``): slow stages get a shorter sample, not a longer
    run; the other passes time the same queries."""
    if len(sample) == 0:
        return np.zeros(0), 0.0
    fn(int(sample[0]))
    passes: list[list[float]] = []
    count = len(sample)
    for _ in range(max(1, repeats)):
        times: list[float] = []
        for query in sample[:count]:
            start = time.perf_counter()
            fn(int(query))
            times.append(time.perf_counter() - start)
            if not passes and sum(times) > LATENCY_BUDGET_S and len(times) >= LATENCY_MIN_QUERIES:
                break
        count = len(times)
        passes.append(times)
    return np.min(np.array(passes), axis=0), relative_spread(np.median(passes, axis=1))


def relative_spread(values: Any) -> float:
    """max / min - 1 of positive values (0 when there are none)."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0 or values.min() <= 0:
        return 0.0
    return float(values.max() / values.min() - 1.0)


def check_request(
    emb: Embeddings, dim: int, ks: Sequence[int], backend: Backend | None = None
) -> None:
    """A dim wider than the arrays, a k larger than the database, or a search the
    backend cannot run (its ``check``) is a clear error, before any index is built."""
    width, rows = emb.database.shape[1], len(emb.database)
    if dim > width:
        raise DataError(f"dim {dim} is larger than the arrays ({width} dims)")
    if dim < 1:
        raise DataError(f"dim must be positive, not {dim}")
    for k in ks:
        if k > rows:
            raise DataError(f"k = {k} is larger than the database ({rows} rows)")
        if k < 1:
            raise DataError(f"k must be positive, not {k}")
        if backend is not None:
            backend.check(dim, k)


def search_dim(
    backend: Backend,
    emb: Embeddings,
    dim: int,
    ks: Sequence[int],
    cache: Path | None,
    repeats: int = 3,
    on_chunk: Callable[[int], None] | None = None,
    on_search: Callable[[int], None] | None = None,
    latency_sample: Sequence[int] = (),
    sink: Any = None,
) -> tuple[dict[int, Searched], float]:
    """Search every ``k`` at prefix size ``dim`` with one index; ({k: Searched}, build s).

    Each search is warmed up, then timed with every query at once (best of ``repeats``)
    and one query at a time on ``latency_sample`` (prefix normalisation included). A
    new index file goes to ``sink`` (``mrlbench.sink``)."""
    check_request(emb, dim, ks, backend)
    index, build_seconds = load_or_build(backend, emb, dim, cache, on_chunk, sink)
    queries = prefix(emb.queries, dim)
    found = {}
    for k in ks:
        if on_search:
            on_search(k)
        backend.search(index, queries[:8], k)  # untimed warm-up (threads, caches)
        (ids, per_query), timed = best_of(repeats, lambda k=k: backend.search(index, queries, k))
        report = backend.index_report(index)  # right after the batch searches
        single, single_spread = one_at_a_time(
            latency_sample,
            lambda q, k=k: backend.search(index, prefix(emb.queries[q : q + 1], dim), k),
            repeats,
        )
        found[k] = Searched(
            ids,
            timed.seconds,
            max(timed.spread, single_spread),
            search_mflops(per_query, dim),
            single,
            report,
        )
    return found, build_seconds  # the index is freed on return: one in memory at a time
