"""User-facing errors: the CLI prints their message as one line, without a traceback;
and ``requires``, the one way a component imports an optional dependency."""

from __future__ import annotations

import importlib
from types import ModuleType


class MrlbenchError(Exception):
    """Bad input or an unsatisfiable request; the message is meant for the user."""


class ConfigError(MrlbenchError):
    """A config file, config key or component argument is wrong."""


class DataError(MrlbenchError):
    """An array, label or neighbour file is missing, corrupt or inconsistent."""


class WriteError(MrlbenchError):
    """A file cannot be written (disk full, read-only, no permission): the run stops,
    since every later write would fail the same way."""


class UnavailableError(MrlbenchError):
    """A component cannot run here (missing optional dependency, no GPU, ...)."""


def requires(module: str, hint: str) -> ModuleType:
    """Import ``module``; when it is missing, an ``UnavailableError`` carrying ``hint``
    (the exact install command) instead of an ImportError."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise UnavailableError(hint) from None


def missing(module: str, hint: str) -> str | None:
    """``None`` when ``module`` imports, else ``hint``: a component's availability."""
    try:
        requires(module, hint)
    except UnavailableError as exc:
        return str(exc)
    return None


def error_line(exc: BaseException) -> str:
    """One clear line for a failed cell."""
    text = " ".join(str(exc).split())
    return text if isinstance(exc, MrlbenchError) else f"{type(exc).__name__}: {text}"
