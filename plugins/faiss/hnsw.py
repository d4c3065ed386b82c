"""Backend ``faiss-hnsw``: ``IndexHNSWFlat`` on the CPU; its cost is the measured number
of distance computations (``faiss.cvar.hnsw_stats.ndis``).

A search runs ``efSearch = ef_search`` as written, whatever ``k`` is (as ann-benchmarks
sets it). FAISS (``HNSW.cpp``, ``search_impl``) gives its candidate queue room for
``max(efSearch, k)`` entries but stops the level-0 walk on ``efSearch``, so the walk, its
distance computations and its time are the same for every ``k``, and the list is the
best ``k`` of the nodes that walk visited: a beam narrower than ``k`` can leave -1 ids
(the row's ``missing_ids``) and costs recall, which is what that setting does."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from mrlbench import ConfigError, hookimpl
from mrlbench_plugins.faiss import FaissBackend, load

DEFAULT_EF_CONSTRUCTION = 40
DEFAULT_EF_SEARCH = 64  # the same default for configs and `mrlbench search --ef-search`


class FaissHNSW(FaissBackend):
    """Approximate search over an HNSW graph (``IndexHNSWFlat``, CPU); its cost is the
    measured number of distance computations.

    Args:
        M: Graph neighbours per node (the index file's ``hnswM`` name).
        ef_construction: Beam width while the graph is built (index cached per value).
        ef_search: Beam width while searching (FAISS's efSearch), as written, also when
            smaller than ``k``; a list sweeps it.
    """

    name = "faiss-hnsw"
    named = ("M",)  # hnsw{M}

    def __init__(
        self,
        M: int = 32,
        ef_construction: int = DEFAULT_EF_CONSTRUCTION,
        ef_search: int = DEFAULT_EF_SEARCH,
    ) -> None:
        for key, value in (
            ("M", M),
            ("ef_construction", ef_construction),
            ("ef_search", ef_search),
        ):
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{key} must be a positive integer, not {value!r}")
        self.M, self.ef_construction, self.ef_search = M, ef_construction, ef_search

    @property
    def index_name(self) -> str:
        return f"hnsw{self.M}"

    @property
    def cache_name(self) -> str:
        default = self.ef_construction == DEFAULT_EF_CONSTRUCTION
        return self.index_name if default else f"{self.index_name}_efc{self.ef_construction}"

    def params(self) -> dict[str, Any]:
        return {"M": self.M, "ef_construction": self.ef_construction}

    def build(self, chunks: Iterable[np.ndarray], dim: int) -> Any:
        faiss = load()
        index = faiss.IndexHNSWFlat(dim, self.M)
        index.hnsw.efConstruction = self.ef_construction
        for chunk in chunks:
            index.add(chunk)
        return index

    def search(self, index: Any, queries: np.ndarray, k: int) -> tuple[np.ndarray, float]:
        faiss = load()
        index.hnsw.efSearch = self.ef_search  # as written: no silent max(ef, k)
        stats = faiss.cvar.hnsw_stats
        stats.reset()
        _, ids = index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
        return ids, stats.ndis / max(len(queries), 1)


@hookimpl
def mrlbench_register_backends(register):
    register(FaissHNSW)
