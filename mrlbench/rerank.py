"""Reranking: re-order shortlists by L2 distance between normalised prefixes (vectorised).
Strategies chain it (adaptive: one stage; funnel: a cascade)."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from mrlbench.vectors import normalize_rows, scattered_reads

# float32 elements gathered per chunk (~1 MB): a chunk's rows stay in cache while they
# are scored, and small buffers are reused instead of page-faulting fresh memory.
CHUNK_ELEMENTS = 1 << 18


def rerank(
    database: np.ndarray,
    queries: np.ndarray,
    candidates: np.ndarray,
    dim: int,
    keep: int | None = None,
    threads: int | None = None,
) -> np.ndarray:
    """Order each query's candidate ids by L2 distance between the normalised
    ``dim``-prefixes of query and candidate, and keep the best ``keep``.

    ``database``/``queries`` are raw (un-normalised, possibly memory-mapped) arrays;
    only the candidate rows are read. For unit q, ||x/|x| - q||^2 = 2 - 2 x.q / |x|, so
    one dot product and one norm per candidate give the distance without normalised
    copies. Ids of -1 sort last and stay -1; ties keep the shortlist order. Chunks of
    queries run on ``threads`` threads (default: every core); one chunk runs inline.
    """
    m, s = candidates.shape
    keep = s if keep is None else min(keep, s)
    out = np.empty((m, keep), dtype=np.int64)
    if m == 0 or s == 0:
        return out
    view = database[:, :dim]
    step = max(1, CHUNK_ELEMENTS // (s * dim))

    def score(start: int) -> None:
        ids = np.asarray(candidates[start : start + step], dtype=np.int64)
        valid = ids >= 0
        x = np.asarray(view[np.where(valid, ids, 0)], dtype=np.float32)  # (chunk, s, dim)
        q = normalize_rows(queries[start : start + step, :dim])
        dots = np.matmul(x, q[:, :, None])[..., 0]
        norms = np.sqrt(np.einsum("qsd,qsd->qs", x, x))
        dist = np.full(ids.shape, np.inf, dtype=np.float32)
        np.divide(dots, norms, out=dots, where=norms > 0)
        dots[norms == 0] = 0.5  # a zero row stays zero: distance 1 from a unit query
        np.subtract(2.0, 2.0 * dots, out=dist, where=valid)
        order = np.argsort(dist, axis=1, kind="stable")[:, :keep]
        out[start : start + len(ids)] = np.take_along_axis(ids, order, axis=1)

    starts = range(0, m, step)
    workers = min(len(starts), threads or os.cpu_count() or 1)
    with scattered_reads(database):
        if workers == 1:
            for start in starts:
                score(start)
            return out
        # numpy releases the GIL in gathers, products and sorts: chunks run in parallel
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(score, starts))
    return out
