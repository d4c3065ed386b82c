"""Exact ground truth for ``knn_recall@k``, and the distances the rule compares.

The truth of one prefix size is the exact top-k of every query (``mrlbench.knn``, fp32,
out of core) with each neighbour's distance, computed once per (data, dim, k) and kept
in the user cache (``$MRLBENCH_CACHE/truth``), so every backend and every later run of
the same arrays reuses it. It is never part of a row's time.

Distances are euclidean (not squared, as ann-benchmarks compares them) between the
normalised ``dim``-prefixes, ``||x/|x| - q/|q|||``, computed in float64 from the stored
vectors: for the truth's own ids and, by ``neighbour_distances``, for a row's returned
ids the same way, so the two sides of the comparison are one computation. The kernel's
fp32 distances only choose the truth's ids; they are then ordered by the float64
distance (ties by id). A cache entry's key holds ``TRUTH_FORMAT``: an entry of an older
format (ids only, or another distance) is never read, it is computed again."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

import numpy as np

from mrlbench.errors import DataError, WriteError
from mrlbench.knn import ExactIndex, exact_knn
from mrlbench.metrics import positions
from mrlbench.resume import MISSING, cached, remember
from mrlbench.store import cache_dir, digest, load_npy, save_npy
from mrlbench.types import Embeddings
from mrlbench.vectors import PrefixBlocks, prefix, scattered_reads

TRUTH_FORMAT = 2  # 1: ids only; 2: ids and float64 euclidean distances, ascending
CHUNK_ELEMENTS = 1 << 20  # float64 elements gathered per chunk of queries (8 MB)


class Truth(NamedTuple):
    """The exact neighbours of every query at one prefix size, best first."""

    ids: np.ndarray  # (m, k) int64; -1 where the database has fewer than k rows
    distances: np.ndarray  # (m, k) float64 euclidean, ascending; inf for -1


def ground_truth(
    emb: Embeddings,
    dim: int,
    k: int,
    data: str,
    threads: int | None = None,
    on_block: Callable[[int], None] | None = None,
) -> Truth:
    """The exact ``k`` nearest database rows of every query at the ``dim``-prefix, with
    their distances. ``data`` identifies the arrays (their content fingerprints)."""
    key: dict[str, Any] = {"format": TRUTH_FORMAT, "data": data, "dim": int(dim), "k": int(k)}
    folder, name = cache_dir() / "truth", digest(key)
    paths = folder / f"{name}-ids.npy", folder / f"{name}-distances.npy"
    sidecar = folder / f"{name}.json"
    if cached(sidecar, key) is not MISSING:
        with contextlib.suppress(DataError):
            ids, dist = (load_npy(p, mmap=False) for p in paths)
            if ids.shape == dist.shape == (len(emb.queries), k):
                return Truth(ids, dist)
    index = ExactIndex.build(PrefixBlocks(emb.database, dim, on_block=on_block), dim)
    _, ids = exact_knn(index, prefix(emb.queries, dim), k, threads)
    dist = neighbour_distances(emb.database, emb.queries, ids, dim, threads=threads)
    order = np.lexsort((ids, dist), axis=1)
    truth = Truth(np.take_along_axis(ids, order, 1), np.take_along_axis(dist, order, 1))
    with contextlib.suppress(OSError, WriteError):  # a read-only cache: computed again
        for path, array in zip(paths, truth, strict=True):
            save_npy(path, array)
        remember(sidecar, key, {"shape": list(ids.shape)})
    return truth


def _unit(x: np.ndarray) -> np.ndarray:
    """Rows of ``x`` L2-normalised in float64; zero rows stay zero."""
    x = np.asarray(x, dtype=np.float64)
    norms = np.sqrt(np.einsum("...d,...d->...", x, x))
    return np.divide(x, norms[..., None], out=np.zeros_like(x), where=norms[..., None] > 0)


def neighbour_distances(
    database: np.ndarray,
    queries: np.ndarray,
    ids: np.ndarray,
    dim: int,
    known: Truth | None = None,
    threads: int | None = None,
) -> np.ndarray:
    """(m, n) float64: the euclidean distance between the normalised ``dim``-prefixes of
    each query and each of its ``ids`` (inf for -1), computed as the truth's are.

    Only the listed rows are read from the (memory-mapped) ``database``, never the whole
    of it; an id that is one of ``known``'s for that query takes the distance stored
    there (the same computation), so a row close to exact reads few rows. Chunks of
    queries run on ``threads`` threads (default: every core)."""
    ids = np.asarray(ids, dtype=np.int64)
    m, n = ids.shape
    out = np.full((m, n), np.inf, dtype=np.float64)
    if m == 0 or n == 0:
        return out
    if known is not None:
        at = positions(ids, known.ids)
        have = (at >= 0) & (ids >= 0)
        out[have] = np.take_along_axis(known.distances, np.where(have, at, 0), axis=1)[have]
        wanted = (ids >= 0) & ~have
    else:
        wanted = ids >= 0
    view = database[:, :dim]
    step = max(1, CHUNK_ELEMENTS // (n * dim))

    def chunk(start: int) -> None:
        need = wanted[start : start + step]
        rows, cols = np.nonzero(need)
        if len(rows) == 0:
            return
        chosen = ids[start : start + step][need]
        x = _unit(view[chosen])  # only the rows asked for: a gather from the mapping
        q = _unit(queries[start : start + step, :dim])[rows]
        diff = x - q
        out[start + rows, cols] = np.sqrt(np.einsum("pd,pd->p", diff, diff))

    starts = range(0, m, step)
    workers = min(len(starts), threads or os.cpu_count() or 1)
    with scattered_reads(database):
        if workers == 1:
            for start in starts:
                chunk(start)
        else:  # numpy releases the GIL in gathers and products: chunks run in parallel
            with ThreadPoolExecutor(max_workers=workers) as pool:
                list(pool.map(chunk, starts))
    return out
