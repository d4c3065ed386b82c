"""Resuming work: one JSON sidecar format for everything that is kept between runs
(cached indexes, searched neighbours, finished cells, partly encoded arrays).

A sidecar holds ``{"key": ..., "value": ...}``; the value counts only when the key (what
the work was done on, with which settings) equals the key asked for now.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mrlbench.store import jsonable, read_json, write_json

MISSING: Any = object()


def cached(path: str | Path, key: Any) -> Any:
    """The value stored at ``path`` under ``key``, or ``MISSING`` (absent, unreadable,
    or written for another key)."""
    stored = read_json(path)
    if not isinstance(stored, dict) or "value" not in stored:
        return MISSING
    if stored.get("key") != _plain(key):
        return MISSING
    return stored["value"]


def remember(path: str | Path, key: Any, value: Any) -> None:
    """Store ``value`` under ``key`` at ``path`` (atomically)."""
    write_json(path, {"key": key, "value": value})


def _plain(obj: Any) -> Any:
    """``obj`` as it reads back from JSON (tuples become lists, ...)."""
    return json.loads(json.dumps(obj, default=jsonable))
