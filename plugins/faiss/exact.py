"""Backend ``faiss-exact``: exact L2 over normalised prefixes, as ``IndexFlatL2`` defines
it; on every GPU when the installed FAISS has GPU support and a GPU is present (a GPU
flat index, filled block by block), else on the CPU out of core.

On the CPU the database is not copied: the index is the raw rows with one inverse norm
each (a prefix of at most 2 GiB is kept as a compact normalised copy), and each search
streams the rows from the memory-mapped arrays in blocks into a running top-k, with
``mrlbench.knn``'s tile kernel (BLAS products, candidates filtered against each query's
running k-th best). FAISS's own CPU ``IndexFlatL2`` needs the whole database in RAM (a
10.5 GB copy at ImageNet-1K size; ImageNet-4K does not fit); against it, on the same
neighbours up to float ties, the kernel is 1.4-1.5x faster at 16 dims (100k rows) and
2-5% slower at 2048 (BENCHMARKS.md).

It declares ``nearest``, so it takes the harness's ``shards = N`` (``mrlbench.shards``:
row ranges searched apart and merged, one after the other here or one per Ray actor
under the Ray executor; the same neighbours as one search)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from mrlbench import ConfigError, ExactIndex, MrlbenchError, exact_knn, hookimpl
from mrlbench_plugins.faiss import FaissBackend, gpu_count, load

GPU_MAX_K = 2048  # FAISS GPU k-selection limit


class FaissExact(FaissBackend):
    """Exact L2 search (``IndexFlatL2``): on the GPU when FAISS has one, else on the CPU,
    streaming the database in blocks.

    Args:
        device: ``auto`` (GPU when FAISS sees one), ``cpu`` or ``gpu``.
    """

    name = "faiss-exact"
    cached = False  # nothing costly to keep: the blocks are the index
    threads: int | None = None

    def __init__(self, device: str = "auto") -> None:
        if device not in ("auto", "cpu", "gpu"):
            raise ConfigError(f"device must be auto, cpu or gpu, not '{device}'")
        self._device = device

    @property
    def exact(self) -> bool:
        return True

    @property
    def truth_kernel(self) -> bool:
        # on the CPU a search is mrlbench.knn's exact_knn, as the ground truth runs it
        return not self.use_gpu

    @classmethod
    def where(cls) -> str:
        n = gpu_count()
        return f"GPU x{n}" if n else "CPU"

    @property
    def use_gpu(self) -> bool:
        if self._device == "cpu":
            return False
        n = gpu_count()
        if self._device == "gpu" and n == 0:
            raise MrlbenchError("faiss-exact: device = 'gpu' but FAISS sees no GPU")
        return n > 0

    @property
    def index_name(self) -> str:
        return "exactl2"

    @property
    def device(self) -> str:
        return "GPU" if self.use_gpu else "CPU"

    @property
    def wants_gpu(self) -> bool | None:
        return {"gpu": True, "cpu": False}.get(self._device)

    def use_threads(self, threads: int) -> None:
        super().use_threads(threads)
        self.threads = threads

    def check(self, dim: int, k: int) -> None:
        if self.use_gpu and k > GPU_MAX_K:
            raise MrlbenchError(
                f"faiss-exact on GPU supports k <= {GPU_MAX_K} (asked {k}); "
                "lower k or set device = 'cpu'"
            )

    def build(self, chunks: Iterable[np.ndarray], dim: int) -> Any:
        if self.use_gpu:
            faiss = load()
            index = faiss.index_cpu_to_all_gpus(faiss.IndexFlatL2(dim))
            for chunk in chunks:  # filled block by block: no host copy of the database
                index.add(chunk)
            return index
        return ExactIndex.build(chunks, dim)

    def search(self, index: Any, queries: np.ndarray, k: int) -> tuple[np.ndarray, float]:
        _, ids = self.nearest(index, queries, k)
        return ids, float(index.ntotal if not isinstance(index, ExactIndex) else len(index))

    def nearest(self, index: Any, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(squared L2 distances, ids) of the ``k`` nearest rows, best first (what a
        shard returns for the merge)."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if not isinstance(index, ExactIndex):  # a GPU index
            self.check(queries.shape[1], k)
            return index.search(queries, k)
        return exact_knn(index, queries, k, self.threads)

    def write(self, index: Any, path: str) -> None:
        raise MrlbenchError("faiss-exact keeps no index files (nothing costly to build)")

    def read(self, path: str) -> Any:
        raise MrlbenchError("faiss-exact keeps no index files (nothing costly to build)")


@hookimpl
def mrlbench_register_backends(register):
    register(FaissExact)
