"""Ray start-up, the one of mrlbench (a library module, not a plugin): the Ray executor
(``[run.executor] name = "ray"``) and ``mrlbench encode --executor ray`` both join the
running Ray, the cluster at an address (or ``$RAY_ADDRESS``), or start a local Ray with
``connect``. Ray is an optional dependency: nothing here imports it before it is needed."""

from __future__ import annotations

import os
import re
from typing import Any

from mrlbench import ConfigError, MrlbenchError, error_line, requires

INSTALL_HINT = "Ray is not installed: run `pip install -e '.[ray]'` (or `pip install 'ray[data]'`)"
_ADDRESS = re.compile(r"^(ray://)?([A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\]):(\d{1,5})$")


def load_ray() -> Any:
    """The ``ray`` module, or an UnavailableError with the install hint."""
    return requires("ray", INSTALL_HINT)


def check_address(address: Any) -> str:
    """A Ray cluster address as ``ray.init`` takes it (``host:port``, ``ray://host:port``
    or ``auto``; empty: ``$RAY_ADDRESS``, else a local Ray), or a ``ConfigError``."""
    if not isinstance(address, str):
        raise ConfigError(f'address must be a string ("host:port"), not {address!r}')
    match = _ADDRESS.match(address)
    if address in ("", "auto") or (match and 0 < int(match.group(3)) < 65536):
        return address
    raise ConfigError(
        f'address must be "host:port", "ray://host:port" or "auto" (empty: $RAY_ADDRESS, '
        f"else a local Ray), not {address!r}"
    )


def connect(threads: int, address: str = "") -> bool:
    """Ray for this process, the one start-up of every Ray user of mrlbench (the
    executor, ``encode --executor ray``): the running Ray as it is, else the cluster at
    ``address`` (or ``$RAY_ADDRESS``), else a local Ray with ``threads`` CPUs. True when
    started here (the caller shuts it down)."""
    ray = load_ray()
    if ray.is_initialized():
        return False
    quiet = {"log_to_driver": False, "logging_level": "ERROR"}
    address = address or os.environ.get("RAY_ADDRESS", "")
    try:
        if address:
            ray.init(address=address, **quiet)
        else:
            ray.init(num_cpus=threads, include_dashboard=False, **quiet)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = address or "a local Ray"
        raise MrlbenchError(f"cannot start Ray ({where}): {error_line(exc)}") from None
    return True
