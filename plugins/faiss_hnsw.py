"""Backend ``faiss-hnsw``: ``IndexHNSWFlat`` on the CPU; its cost is the measured number
of distance computations (``faiss.cvar.hnsw_stats.ndis``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from mrlbench.errors import ConfigError
from mrlbench.faiss_support import import_faiss, missing_reason
from mrlbench.hookspecs import hookimpl
from mrlbench.types import Backend


class FaissHNSW(Backend):
    name = "faiss-hnsw"

    def __init__(self, M: int = 32, ef_construction: int = 40, ef_search: int = 16) -> None:
        for key, value in (
            ("M", M),
            ("ef_construction", ef_construction),
            ("ef_search", ef_search),
        ):
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{key} must be a positive integer, not {value!r}")
        self.M, self.ef_construction, self.ef_search = M, ef_construction, ef_search

    @classmethod
    def availability(cls) -> str | None:
        return missing_reason()

    @classmethod
    def where(cls) -> str:
        return "CPU"

    @property
    def index_name(self) -> str:
        return f"hnsw{self.M}"

    def params(self) -> dict[str, Any]:
        return {"M": self.M, "ef_construction": self.ef_construction}

    def build(self, chunks: Iterable[np.ndarray], dim: int) -> Any:
        faiss = import_faiss()
        index = faiss.IndexHNSWFlat(dim, self.M)
        index.hnsw.efConstruction = self.ef_construction
        for chunk in chunks:
            index.add(chunk)
        return index

    def search(self, index: Any, queries: np.ndarray, k: int) -> tuple[np.ndarray, float]:
        faiss = import_faiss()
        index.hnsw.efSearch = self.ef_search
        stats = faiss.cvar.hnsw_stats
        stats.reset()
        _, ids = index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
        return ids, stats.ndis / max(len(queries), 1)

    def write(self, index: Any, path: str) -> None:
        import_faiss().write_index(index, path)

    def read(self, path: str) -> Any:
        return import_faiss().read_index(path)


@hookimpl
def mrlbench_register_backends(register):
    register(FaissHNSW)
