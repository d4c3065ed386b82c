"""The FAISS backends (``exact``: ``faiss-exact``; ``hnsw``: ``faiss-hnsw``; ``ivf``:
``faiss-ivf``, ``ivfpq``: ``faiss-ivfpq``, rigid or AdANNS IVF, both registered by ``ivf``'s
hook) and what they share: importing
FAISS with the install hint, what it can use here, and ``FaissBackend`` (availability,
``env.json`` facts, index files)."""

from __future__ import annotations

from types import ModuleType
from typing import Any

from mrlbench import Backend, missing, requires

INSTALL_HINT = (
    "FAISS is not installed: run `pip install -e '.[faiss-cpu]'` "
    "(or `.[faiss-gpu]` on a CUDA machine; the two cannot be installed together)"
)


def load() -> ModuleType:
    """The ``faiss`` module, or an UnavailableError with the install hint."""
    return requires("faiss", INSTALL_HINT)


def missing_reason() -> str | None:
    return missing("faiss", INSTALL_HINT)


def gpu_count() -> int:
    faiss = load()
    if not hasattr(faiss, "StandardGpuResources"):
        return 0
    return int(faiss.get_num_gpus())


def environment() -> dict[str, Any]:
    """FAISS's version, OpenMP threads and GPUs, for ``env.json``."""
    faiss = load()
    return {
        "packages": {"faiss": faiss.__version__},
        "faiss_threads": faiss.omp_get_max_threads(),
        "faiss_gpus": gpu_count(),
    }


class FaissBackend(Backend):
    """A backend on FAISS: unavailable (with the install hint) without it; its indexes
    are written and read with FAISS's own files."""

    @classmethod
    def availability(cls) -> str | None:
        return missing_reason()

    @classmethod
    def where(cls) -> str:
        return "CPU"

    def environment(self) -> dict[str, Any]:
        return environment()

    def use_threads(self, threads: int) -> None:
        load().omp_set_num_threads(threads)

    def write(self, index: Any, path: str) -> None:
        load().write_index(index, path)

    def read(self, path: str) -> Any:
        return load().read_index(path)
