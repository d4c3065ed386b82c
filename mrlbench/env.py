"""What a run ran on (``env.json``): the machine, core library versions, and what each
configured component reports about itself (its libraries, threads, devices)."""

from __future__ import annotations

import contextlib
import os
import platform
import secrets
import sys
import time
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from mrlbench.errors import error_line
from mrlbench.types import Backend, Component

CORE_PACKAGES = ("mrlbench", "numpy", "numba", "pluggy", "click", "rich")


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def session_id() -> str:
    """A new session's name: when it started (UTC) and a random tag (two sessions of
    one process within a second are still two)."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(3)


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``; ``platform.processor()`` elsewhere)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


def blas() -> dict[str, str]:
    """The BLAS and OpenMP libraries loaded in this process (threadpoolctl): each
    library's file name, its version, threading layer and threads."""
    from threadpoolctl import threadpool_info

    found: dict[str, str] = {}
    for lib in threadpool_info():
        name = str(lib.get("prefix") or lib.get("internal_api") or "library")
        what = [lib.get("internal_api"), lib.get("version"), lib.get("threading_layer")]
        text = " ".join(str(x) for x in what if x) + f", {lib.get('num_threads')} threads"
        key, n = name, 2
        while key in found:
            key, n = f"{name} ({n})", n + 1
        found[key] = text
    return found


def load_average() -> list[float] | None:
    with contextlib.suppress(OSError, AttributeError):
        return [round(x, 2) for x in os.getloadavg()]
    return None


def describe(components: Mapping[str, Component] | None = None) -> dict[str, Any]:
    """The environment; ``components`` maps a label (``backend exact``) to a component
    whose ``environment()`` is recorded under ``components`` (its ``packages`` merged
    into the run's)."""
    packages = {name: _version(name) for name in CORE_PACKAGES if _version(name)}
    reported: dict[str, Any] = {}
    for label, component in (components or {}).items():
        try:
            info = dict(component.environment())
        except Exception as exc:  # an unavailable component says why instead
            info = {"unavailable": error_line(exc)}
        packages.update(info.pop("packages", {}))
        reported[label] = info
    devices: set[str] = set()
    for component in (components or {}).values():
        if isinstance(component, Backend):
            with contextlib.suppress(Exception):  # a GPU backend without a GPU raises
                devices.add(component.device)
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "load_average": load_average(),
        "blas": blas(),
        "packages": packages,
        "device": ", ".join(sorted(devices)) or "CPU",
        "components": reported,
    }
