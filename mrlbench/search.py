"""One k-NN search stage: build (or load) the index for a prefix size, search, time it."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mrlbench.cost import search_mflops
from mrlbench.errors import DataError
from mrlbench.index_cache import load_or_build
from mrlbench.types import Backend, Embeddings
from mrlbench.vectors import prefix


@dataclass(frozen=True)
class Searched:
    """Ids of one search and what it cost."""

    ids: np.ndarray
    seconds: float  # best wall-clock over the repeats, search only
    mflops_per_query: float


def best_of(repeats: int, fn: Callable[[], Any]) -> tuple[Any, float]:
    """Run ``fn`` ``repeats`` times; its last result and the best wall-clock seconds."""
    best, result = float("inf"), None
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return result, best


def check_request(emb: Embeddings, dim: int, ks: Sequence[int]) -> None:
    """A dim wider than the arrays or a k larger than the database is a clear error."""
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


def search_dim(
    backend: Backend,
    emb: Embeddings,
    dim: int,
    ks: Sequence[int],
    cache: Path | None,
    repeats: int = 1,
    on_chunk: Callable[[int], None] | None = None,
    on_search: Callable[[int], None] | None = None,
) -> tuple[dict[int, Searched], float]:
    """Search every ``k`` at prefix size ``dim`` with one index; ({k: Searched}, build s)."""
    check_request(emb, dim, ks)
    index, build_seconds = load_or_build(backend, emb, dim, cache, on_chunk)
    queries = prefix(emb.queries, dim)
    found = {}
    for k in ks:
        if on_search:
            on_search(k)
        backend.search(index, queries[:8], k)  # untimed warm-up (threads, caches)
        (ids, per_query), seconds = best_of(repeats, lambda k=k: backend.search(index, queries, k))
        found[k] = Searched(ids, seconds, search_mflops(per_query, dim))
    return found, build_seconds  # the index is freed on return: one in memory at a time
