"""Importing FAISS on demand, with the exact install hint when it is missing."""

from __future__ import annotations

from types import ModuleType

from mrlbench.errors import UnavailableError

INSTALL_HINT = (
    "FAISS is not installed: run `pip install -e '.[faiss-cpu]'` "
    "(or `.[faiss-gpu]` on a CUDA machine; the two cannot be installed together)"
)


def import_faiss() -> ModuleType:
    try:
        import faiss
    except ImportError:
        raise UnavailableError(INSTALL_HINT) from None
    return faiss


def missing_reason() -> str | None:
    try:
        import_faiss()
    except UnavailableError as exc:
        return str(exc)
    return None


def gpu_count() -> int:
    faiss = import_faiss()
    if not hasattr(faiss, "StandardGpuResources"):
        return 0
    return int(faiss.get_num_gpus())
