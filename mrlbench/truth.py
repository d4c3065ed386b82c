"""Exact ground truth for ``knn_recall@k``: the exact top-k of every query at one prefix
size (``mrlbench.knn``, fp32, out of core), computed once per (data, dim, k) and kept in
the user cache (``$MRLBENCH_CACHE/truth``), so every backend and every later run of the
same arrays reuses it. It is never part of a row's time."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import numpy as np

from mrlbench.errors import DataError, WriteError
from mrlbench.knn import ExactIndex, exact_knn
from mrlbench.resume import MISSING, cached, remember
from mrlbench.store import cache_dir, digest, load_npy, save_npy
from mrlbench.types import Embeddings
from mrlbench.vectors import PrefixBlocks, prefix


def ground_truth(
    emb: Embeddings,
    dim: int,
    k: int,
    data: str,
    threads: int | None = None,
    on_block: Callable[[int], None] | None = None,
) -> np.ndarray:
    """(m, k) int64 ids of the exact ``k`` nearest database rows of every query at the
    ``dim``-prefix. ``data`` identifies the arrays (their content fingerprints)."""
    key: dict[str, Any] = {"data": data, "dim": int(dim), "k": int(k)}
    path = cache_dir() / "truth" / f"{digest(key)}.npy"
    sidecar = path.with_name(path.name + ".json")
    if cached(sidecar, key) is not MISSING:
        with contextlib.suppress(DataError):
            ids = load_npy(path, mmap=False)
            if ids.shape == (len(emb.queries), k):
                return ids
    index = ExactIndex.build(PrefixBlocks(emb.database, dim, on_block=on_block), dim)
    _, ids = exact_knn(index, prefix(emb.queries, dim), k, threads)
    with contextlib.suppress(OSError, WriteError):  # a read-only cache: computed again
        save_npy(path, ids)
        remember(sidecar, key, {"shape": list(ids.shape)})
    return ids
