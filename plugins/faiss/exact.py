"""Backend ``faiss-exact``: exact L2 (``IndexFlatL2``) over normalised prefixes; on every
GPU when the installed FAISS has GPU support and a GPU is present, else on the CPU."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
from mrlbench_plugins.faiss import FaissBackend, gpu_count, load

from mrlbench.errors import ConfigError, MrlbenchError
from mrlbench.hookspecs import hookimpl

GPU_MAX_K = 2048  # FAISS GPU k-selection limit


class FaissExact(FaissBackend):
    name = "faiss-exact"

    def __init__(self, device: str = "auto") -> None:
        if device not in ("auto", "cpu", "gpu"):
            raise ConfigError(f"device must be auto, cpu or gpu, not '{device}'")
        self._device = device

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

    def build(self, chunks: Iterable[np.ndarray], dim: int) -> Any:
        faiss = load()
        index = faiss.IndexFlatL2(dim)
        for chunk in chunks:
            index.add(chunk)
        return faiss.index_cpu_to_all_gpus(index) if self.use_gpu else index

    def search(self, index: Any, queries: np.ndarray, k: int) -> tuple[np.ndarray, float]:
        if self.use_gpu and k > GPU_MAX_K:
            raise MrlbenchError(
                f"faiss-exact on GPU supports k <= {GPU_MAX_K} (asked {k}); "
                "lower k or set device = 'cpu'"
            )
        _, ids = index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
        return ids, float(index.ntotal)

    def write(self, index: Any, path: str) -> None:
        faiss = load()
        faiss.write_index(faiss.index_gpu_to_cpu(index) if self.use_gpu else index, path)

    def read(self, path: str) -> Any:
        faiss = load()
        index = faiss.read_index(path)
        return faiss.index_cpu_to_all_gpus(index) if self.use_gpu else index


@hookimpl
def mrlbench_register_backends(register):
    register(FaissExact)
