"""Exact k-NN out of core: the database streams from its (memory-mapped) arrays in row
blocks, every query is scored against each block in cache-sized tiles (one BLAS product
per tile), and a running top-k per query keeps the best.

Normalisation is folded into the distance: for a unit query q and a raw row x,
``||x/|x| - q||^2 = 1 - 2 (x.q) / |x| + 1``, so a search needs the raw prefix and one
inverse norm per row (``inverse_norms``, 4 bytes a row, computed once per dim), never
a normalised copy of the database, and a single query reads only the prefix it scores.

Selection, not arithmetic, is what costs at small dims (1.28M candidates per query for
16 multiply-adds each), so each tile is filtered against every query's running k-th
best distance before anything is selected: after the first tiles almost nothing passes.
The filter and the heap are compiled with numba (numpy cannot express a per-row early
exit); tiles of different query chunks run on parallel threads. Peak memory is the
running lists, one tile per thread and, for a prefix of at most ``COMPACT_BYTES``, its
compact copy: bounded, whatever the database size.

Distances are squared L2 between normalised prefixes, as FAISS's ``IndexFlatL2``
computes them on normalised vectors (``|x|^2 - 2 x.q``, plus the constant ``|q|^2``
added at the end; zero rows stay zero, at distance ``|q|^2``).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from threadpoolctl import ThreadpoolController

from mrlbench.vectors import PrefixBlocks, block_rows

TILE_ROWS = 4096  # database rows per tile
TILE_QUERIES = 256  # queries per tile: a tile's distances (4 MB) stay in cache
WIDE_DIM = 256  # from this prefix size the products dominate: larger tiles run BLAS faster


def tiles(dim: int) -> tuple[int, int]:
    """(queries, database rows) of a tile at prefix size ``dim``."""
    return (TILE_QUERIES, TILE_ROWS) if dim < WIDE_DIM else (2 * TILE_QUERIES, 2 * TILE_ROWS)


@functools.cache
def _blas() -> ThreadpoolController:
    """The BLAS/OpenMP thread pools, found once (``threadpool_limits`` would scan the
    loaded libraries at every call: half the time of a single-query search)."""
    return ThreadpoolController()


class TopK:
    """The running best ``k`` (squared L2, ids) of ``m`` queries, as max-heaps."""

    def __init__(self, m: int, k: int) -> None:
        self.dist = np.full((m, k), np.inf, dtype=np.float32)
        self.ids = np.full((m, k), -1, dtype=np.int64)

    def merge(
        self,
        queries: np.ndarray,
        block: np.ndarray,
        scale: np.ndarray,
        start: int,
        rows: slice,
        tile_queries: int = TILE_QUERIES,
        tile_rows: int = TILE_ROWS,
    ) -> None:
        """Score ``queries[rows]`` against the raw ``block`` (database rows from ``start``,
        inverse norms ``scale``), tile by tile."""
        from mrlbench.knn_heap import merge_tile  # numba: imported when first searched

        heap_d, heap_i = self.dist[rows], self.ids[rows]
        q = queries[rows]
        for q0 in range(0, len(q), tile_queries):
            part = slice(q0, q0 + tile_queries)
            for t0 in range(0, len(block), tile_rows):
                tile = slice(t0, t0 + tile_rows)
                dots = q[part] @ np.asarray(block[tile], dtype=np.float32).T
                merge_tile(dots, scale[tile], start + t0, heap_d[part], heap_i[part])

    def result(self, query_norms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(distances, ids), best first; ids of -1 where fewer than k rows were seen."""
        order = np.lexsort((self.ids, self.dist), axis=1)
        dist = np.take_along_axis(self.dist, order, axis=1) + query_norms[:, None]
        return dist, np.take_along_axis(self.ids, order, axis=1)


COMPACT_BYTES = 2 << 30  # a prefix this small is kept as a contiguous normalised copy


def inverse_norms(
    database: np.ndarray, dim: int, on_block: Callable[[int], None] | None = None
) -> np.ndarray:
    """``1 / |x[:dim]|`` of every row (0 for a zero row), float32, in one streamed pass."""
    out = np.empty(len(database), dtype=np.float32)
    step = block_rows(dim)
    for s in range(0, len(database), step):
        x = np.asarray(database[s : s + step, :dim], dtype=np.float32)
        norms = np.sqrt(np.einsum("ij,ij->i", x, x))
        np.divide(1.0, norms, out=out[s : s + step], where=norms > 0)
        out[s : s + step][norms == 0] = 0.0
        if on_block:
            on_block(len(x))
    return out


@dataclass(frozen=True)
class ExactIndex:
    """What exact search needs of a database prefix: the raw (memory-mapped) rows and
    their inverse norms at ``dim``; no copy of the rows."""

    database: np.ndarray
    dim: int
    scale: np.ndarray  # inverse_norms(database, dim)

    @classmethod
    def build(cls, chunks: Iterable[np.ndarray], dim: int) -> ExactIndex:
        """From a backend's ``build`` argument (``PrefixBlocks``): the raw database and
        its inverse norms, no copy; but a prefix of at most ``COMPACT_BYTES`` (16 dims of
        1.28M rows: 82 MB; 64 dims of 4.2M: 1.1 GB) is copied, normalised and contiguous,
        so that a query reads its few bytes a row instead of a page of each 8 KB row.
        Chunks given in memory (not ``PrefixBlocks``) are kept as they are."""
        if not isinstance(chunks, PrefixBlocks):
            rows = np.concatenate(list(chunks))
            return cls(rows, dim, inverse_norms(rows, dim))
        n = len(chunks.database)
        if n * dim * 4 > COMPACT_BYTES:
            return cls(chunks.database, dim, inverse_norms(chunks.database, dim, chunks.on_block))
        rows = np.empty((n, dim), dtype=np.float32)  # filled in place: no growing buffer
        start = 0
        for block in chunks:
            rows[start : start + len(block)] = block
            start += len(block)
        return cls(rows, dim, inverse_norms(rows, dim))

    def __len__(self) -> int:
        return len(self.database)


def exact_knn(
    index: ExactIndex,
    queries: np.ndarray,
    k: int,
    threads: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The exact ``k`` nearest database rows (squared L2 between normalised prefixes) of
    every normalised float32 query (m, dim).

    Each block of rows is scored in tiles, query chunks on ``threads`` threads (default
    every core) with BLAS single-threaded inside each, so the cores are never
    oversubscribed. Returns (distances, ids), (m, k), best first; ties keep the smaller
    id; -1 where the database has fewer than k rows."""
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    m = len(queries)
    top = TopK(m, k)
    query_norms = np.einsum("ij,ij->i", queries, queries)
    tile_queries, tile_rows = tiles(index.dim)
    workers = max(1, min(threads or os.cpu_count() or 1, -(-m // tile_queries)))
    step = -(-m // workers) if m else 1
    chunks = [slice(s, s + step) for s in range(0, m, step)]
    rows = block_rows(index.dim)
    # few queries: longer tiles hold as many distances (one query: one tile per block)
    tile_rows = min(
        rows, max(tile_rows, tile_queries * tile_rows // max(1, min(step, tile_queries)))
    )
    pool = ThreadPoolExecutor(max_workers=workers) if workers > 1 else None
    try:
        with _blas().limit(limits=1):
            for start in range(0, len(index), rows):
                block = index.database[start : start + rows, : index.dim]
                scale = index.scale[start : start + rows]
                jobs = [
                    (queries, block, scale, start, part, tile_queries, tile_rows) for part in chunks
                ]
                if pool is None:
                    for job in jobs:
                        top.merge(*job)
                else:
                    list(pool.map(lambda job: top.merge(*job), jobs))
    finally:
        if pool is not None:
            pool.shutdown()
    return top.result(query_norms)
