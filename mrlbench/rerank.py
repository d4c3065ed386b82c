"""Reranking: re-order shortlists by L2 distance between normalised prefixes (vectorised)."""

from __future__ import annotations

import numpy as np

from mrlbench.vectors import normalize_rows

# Elements gathered per chunk (float32): bounds memory whatever the query count.
CHUNK_ELEMENTS = 1 << 22


def rerank(
    database: np.ndarray,
    queries: np.ndarray,
    candidates: np.ndarray,
    dim: int,
    keep: int | None = None,
) -> np.ndarray:
    """Order each query's candidate ids by L2 distance between the normalised
    ``dim``-prefixes of query and candidate, and keep the best ``keep``.

    ``database``/``queries`` are raw (un-normalised, possibly memory-mapped) arrays;
    only the candidate rows are read. Ids of -1 sort last and stay -1. Ties keep the
    shortlist order (stable sort).
    """
    m, s = candidates.shape
    keep = s if keep is None else min(keep, s)
    out = np.empty((m, keep), dtype=np.int64)
    if m == 0 or s == 0:
        return out
    step = max(1, CHUNK_ELEMENTS // (s * dim))
    for start in range(0, m, step):
        ids = np.asarray(candidates[start : start + step], dtype=np.int64)
        valid = ids >= 0
        rows = np.where(valid, ids, 0)
        x = normalize_rows(database[rows.ravel(), :dim]).reshape(len(ids), s, dim)
        q = normalize_rows(queries[start : start + step, :dim])
        x -= q[:, None, :]
        dist = np.einsum("qsd,qsd->qs", x, x)
        dist[~valid] = np.inf
        order = np.argsort(dist, axis=1, kind="stable")[:, :keep]
        out[start : start + len(ids)] = np.take_along_axis(ids, order, axis=1)
    return out


def cascade(
    database: np.ndarray,
    queries: np.ndarray,
    candidates: np.ndarray,
    dims: list[int],
    shortlists: list[int],
) -> np.ndarray:
    """Funnel retrieval: stage i re-orders the first ``shortlists[i]`` candidates at
    ``dims[i]``. With one dim and one shortlist this is adaptive retrieval."""
    ids = candidates
    for dim, keep in zip(dims, shortlists, strict=True):
        ids = rerank(database, queries, ids[:, :keep], dim, keep)
    return ids
