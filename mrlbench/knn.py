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
exit). ``threads`` workers run in parallel whatever the batch size: each takes a group of
query tiles and, when there are fewer groups than workers (one query, a few hundred), a
contiguous share of the rows, into its own running lists, merged at the end (``plan``,
``cuts``). Every product is one a single thread computes, or a piece of at least
``MIN_PIECE`` rows of one (a single query's tile is a whole block), on which BLAS gives
the same bits, so the thread count changes nothing but the time. Peak memory is the
running lists (one per worker sharing a group's rows), one tile per worker and, for a
prefix of at most ``COMPACT_BYTES``, its compact copy: bounded, whatever the database
size.

Distances are squared L2 between normalised prefixes, as FAISS's ``IndexFlatL2``
computes them on normalised vectors (``|x|^2 - 2 x.q``, plus the constant ``|q|^2``
added at the end; zero rows stay zero, at distance ``|q|^2``).
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import pairwise

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
        part: slice = slice(None),
    ) -> None:
        """Score ``queries[rows]`` against the rows ``part`` of the raw ``block``
        (database rows from ``start``, inverse norms ``scale``), tile by tile: the tiles
        the whole block is cut into (``tile_rows`` rows from its first), cut at the
        part's ends, so that a part scores what the whole block would."""
        from mrlbench.knn_heap import merge_tile  # numba: imported when first searched

        heap_d, heap_i = self.dist[rows], self.ids[rows]
        q = queries[rows]
        lo, hi, _ = part.indices(len(block))
        for q0 in range(0, len(q), tile_queries):
            qs = slice(q0, q0 + tile_queries)
            for t0 in range(lo - lo % tile_rows, hi, tile_rows):
                tile = slice(max(t0, lo), min(t0 + tile_rows, hi))
                dots = q[qs] @ np.asarray(block[tile], dtype=np.float32).T
                merge_tile(dots, scale[tile], start + tile.start, heap_d[qs], heap_i[qs])

    def take(self, rows: slice, others: list[TopK]) -> None:
        """Keep, for ``queries[rows]``, the best ``k`` of the lists ``others`` kept
        for them (each over its own rows; ties to the smaller id)."""
        dist = np.concatenate([o.dist for o in others], axis=1)
        ids = np.concatenate([o.ids for o in others], axis=1)
        best = np.lexsort((ids, dist), axis=1)[:, : self.dist.shape[1]]
        self.dist[rows] = np.take_along_axis(dist, best, axis=1)
        self.ids[rows] = np.take_along_axis(ids, best, axis=1)

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


SLACK = 1 / 8  # query groups are kept while no worker gets this much above an even share
MIN_PIECE = 32_768  # rows: BLAS takes other paths on narrower products (other last bits)
ALIGN = 256  # a cut inside a tile falls on a multiple of this from the tile's start


@dataclass(frozen=True)
class Share:
    """One worker's work: ``queries`` (whole query tiles) against the database ``rows``."""

    queries: slice
    rows: slice


def plan(m: int, workers: int, tile_queries: int) -> tuple[list[slice], int]:
    """Split the work of ``m`` queries among ``workers``: (query groups, workers per
    group). The query tiles go into as many contiguous groups as divide ``workers``
    while no worker gets more than ``SLACK`` above an even share; each group's rows are
    shared among ``workers // groups`` workers (a single query: one group, all of them)."""
    tiles_q = -(-m // tile_queries)

    def bounds(groups: int) -> list[int]:
        return [min(m, g * tiles_q // groups * tile_queries) for g in range(groups + 1)]

    def load(groups: int) -> float:  # the busiest worker's queries x rows (rows = 1)
        b = bounds(groups)
        return max(hi - lo for lo, hi in pairwise(b)) * groups / workers

    groups = max(
        g
        for g in range(1, max(1, min(workers, tiles_q)) + 1)
        if workers % g == 0 and load(g) <= (1 + SLACK) * m / workers
    )
    b = bounds(groups)
    return [slice(lo, hi) for lo, hi in pairwise(b)], workers // groups


def cuts(n: int, rows: int, tile_rows: int, parts: int) -> list[int]:
    """Where each of ``parts`` workers' share of ``n`` rows begins, then ``n``: an even
    share each, moved to the nearest tile boundary (blocks of ``rows`` rows, tiles of
    ``tile_rows`` from each block's start), so that a worker scores the very products
    one thread would; a tile is cut inside only into pieces of ``MIN_PIECE`` rows or
    more (one query's tile is a whole block). A share may be empty on a tiny database."""
    out = [0]
    for p in range(1, parts):
        even = p * n // parts
        block = even // rows * rows
        start = block + (even - block) // tile_rows * tile_rows
        end = min(start + tile_rows, block + rows, n)
        lo = max(start, out[-1])
        cut = lo + (even - lo) // ALIGN * ALIGN
        if cut - lo < MIN_PIECE or end - cut < MIN_PIECE:
            cut = lo if even - lo <= end - even else end
        out.append(cut)
    return [*out, n]


def run_each(jobs: list[Callable[[], None]]) -> None:
    """Run every job on a thread of its own (a single job inline); re-raise the first
    failure once all have ended."""
    if len(jobs) <= 1:
        for job in jobs:
            job()
        return
    errors: list[BaseException] = []

    def run(job: Callable[[], None]) -> None:
        try:
            job()
        except BaseException as error:  # re-raised on the calling thread
            errors.append(error)

    workers = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if errors:
        raise errors[0]


def exact_knn(
    index: ExactIndex,
    queries: np.ndarray,
    k: int,
    threads: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The exact ``k`` nearest database rows (squared L2 between normalised prefixes) of
    every normalised float32 query (m, dim).

    Exactly ``threads`` workers (default every core) score the tiles, whatever ``m``:
    groups of query tiles, each group's rows shared among several workers when there
    are fewer groups than workers (``plan``, ``cuts``), BLAS single-threaded inside
    each, so the cores are never oversubscribed. The tiles are one thread's, so
    ``threads`` changes the time, not the result. Returns (distances, ids), (m, k), best
    first; ties keep the smaller id; -1 where the database has fewer than k rows."""
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    m = len(queries)
    top = TopK(m, k)
    query_norms = np.einsum("ij,ij->i", queries, queries)
    if not m:
        return top.result(query_norms)
    tile_queries, tile_rows = tiles(index.dim)
    rows = block_rows(index.dim)
    # few queries: longer tiles hold as many distances (one query: one tile per block)
    tile_rows = min(rows, max(tile_rows, tile_queries * tile_rows // min(m, tile_queries)))
    groups, parts = plan(m, threads or os.cpu_count() or 1, tile_queries)
    at = cuts(len(index), rows, tile_rows, parts)
    shares = [Share(g, slice(at[p], at[p + 1])) for g in groups for p in range(parts)]
    # one worker to a group fills ``top``; workers sharing a group's rows, lists of their own
    tops = [top if parts == 1 else TopK(s.queries.stop - s.queries.start, k) for s in shares]

    def score(share: Share, own: TopK) -> None:
        q, mine = (queries, share.queries) if parts == 1 else (queries[share.queries], slice(None))
        lo, hi = share.rows.start, share.rows.stop
        for start in range(lo // rows * rows, hi, rows):
            block = index.database[start : start + rows, : index.dim]
            part = slice(max(lo - start, 0), min(hi - start, len(block)))
            scale = index.scale[start : start + rows]
            own.merge(q, block, scale, start, mine, tile_queries, tile_rows, part)

    jobs: list[Callable[[], None]] = [  # a share without rows (a tiny database): no thread
        functools.partial(score, s, t)
        for s, t in zip(shares, tops, strict=True)
        if s.rows.start < s.rows.stop
    ]
    with _blas().limit(limits=1):
        run_each(jobs)
    if parts > 1:
        for first in range(0, len(shares), parts):
            top.take(shares[first].queries, tops[first : first + parts])
    return top.result(query_norms)
