"""What a run ran on (``env.json``): the machine, core library versions, and what each
configured component reports about itself (its libraries, threads, devices)."""

from __future__ import annotations

import contextlib
import os
import platform
import sys
from collections.abc import Mapping
from importlib import metadata
from typing import Any

from mrlbench.errors import error_line
from mrlbench.types import Backend, Component

CORE_PACKAGES = ("mrlbench", "numpy", "numba", "pluggy", "click", "rich")


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
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
        "cpu_count": os.cpu_count(),
        "packages": packages,
        "device": ", ".join(sorted(devices)) or "CPU",
        "components": reported,
    }
