"""What a run ran on (``env.json``): versions, device, threads."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from typing import Any


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def describe() -> dict[str, Any]:
    env: dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpu_count": os.cpu_count(),
        "packages": {
            name: _version(name)
            for name in ("mrlbench", "numpy", "faiss-cpu", "faiss-gpu", "pluggy", "torch")
            if _version(name)
        },
    }
    try:
        import faiss

        env["faiss_threads"] = faiss.omp_get_max_threads()
        env["faiss_gpus"] = faiss.get_num_gpus() if hasattr(faiss, "StandardGpuResources") else 0
    except ImportError:
        env["faiss"] = "not installed"
    env["device"] = f"GPU x{env['faiss_gpus']}" if env.get("faiss_gpus") else "CPU"
    return env
