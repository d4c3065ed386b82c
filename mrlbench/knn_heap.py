"""The exact kernel's selection, compiled with numba: a max-heap of the best ``k`` per
query and the filter that merges a tile of products into it (``mrlbench.knn``). Its own
module so that importing mrlbench does not import numba (about 0.15 s of start-up a
command such as ``mrlbench metrics`` never uses); ``knn`` imports it on the first search."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(nogil=True, cache=True)
def replace_top(
    dist: np.ndarray, ids: np.ndarray, d: np.float32, i: int
) -> None:  # pragma: no cover
    """Replace the worst entry of a max-heap (``dist[0]``) by (d, i) and sift it down;
    ties order by id, so the smaller id of two equal distances is kept, as FAISS does."""
    k = dist.shape[0]
    pos = 0
    while True:
        child = 2 * pos + 1
        if child >= k:
            break
        right = child + 1
        if right < k and (
            dist[right] > dist[child] or (dist[right] == dist[child] and ids[right] > ids[child])
        ):
            child = right
        if dist[child] > d or (dist[child] == d and ids[child] > i):
            dist[pos] = dist[child]
            ids[pos] = ids[child]
            pos = child
        else:
            break
    dist[pos] = d
    ids[pos] = i


@njit(nogil=True, cache=True)
def merge_tile(
    dots: np.ndarray, scale: np.ndarray, offset: int, heap_d: np.ndarray, heap_i: np.ndarray
) -> None:  # pragma: no cover
    """Merge one tile (``dots[r, j] = q_r . x_j`` of raw rows, ``scale[j] = 1 / |x_j|``
    or 0 for a zero row, row ids from ``offset``) into the queries' heaps: a candidate
    enters only if it beats the worst kept. The distance is compared as it is kept
    (float32): compared unrounded, a row tied with the k-th in float32 but just below it
    in float64 would displace it, breaking the smaller-id rule."""
    for r in range(dots.shape[0]):
        worst = heap_d[r, 0]
        row = dots[r]
        hd = heap_d[r]
        hi = heap_i[r]
        for j in range(row.shape[0]):
            s = scale[j]
            d = np.float32((1.0 if s > 0 else 0.0) - 2.0 * s * row[j])
            if d < worst:
                replace_top(hd, hi, d, offset + j)
                worst = hd[0]
