"""One k-NN search stage: build (or load) the index for a prefix size, search, time it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from mrlbench.cost import search_mflops
from mrlbench.errors import DataError
from mrlbench.index_cache import load_or_build
from mrlbench.timing import best_of, one_at_a_time, stopwatch
from mrlbench.types import Backend, Embeddings
from mrlbench.vectors import prefix


@dataclass(frozen=True)
class Searched:
    """Ids of one search and what it cost."""

    ids: np.ndarray
    seconds: float  # best wall-clock over the repeats, every query at once, search only
    spread: float  # relative spread of the repeats (batch, and one-query medians)
    mflops_per_query: float
    query_seconds: np.ndarray  # one query at a time: (passes, queries), every sample
    report: dict[str, Any] = field(default_factory=dict)  # the backend's index_report


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
    latency_sample: Sequence[int] | np.ndarray = (),
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
        (ids, per_query), timed = best_of(repeats, partial(backend.search, index, queries, k))
        report = backend.index_report(index)  # right after the batch searches
        one = _one_query(backend, index, emb, dim, k, latency_sample)
        single, single_spread = one_at_a_time(len(latency_sample), one, repeats)
        found[k] = Searched(
            ids,
            timed.seconds,
            max(timed.spread, single_spread),
            search_mflops(per_query, dim),
            single.get("", np.zeros((0, 0))),
            report,
        )
    return found, build_seconds  # the index is freed on return: one in memory at a time


def _one_query(
    backend: Backend,
    index: Any,
    emb: Embeddings,
    dim: int,
    k: int,
    sample: Sequence[int] | np.ndarray,
) -> Callable[[int, int], dict[str, float]]:
    """The search of the ``position``-th query of ``sample`` alone, timed."""

    def one(position: int, _pass: int) -> dict[str, float]:
        q = int(sample[position])
        _, seconds = stopwatch(
            lambda: backend.search(index, prefix(emb.queries[q : q + 1], dim), k)
        )
        return {"": seconds}

    return one
