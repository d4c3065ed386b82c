"""User-facing errors: the CLI prints their message as one line, without a traceback."""

from __future__ import annotations


class MrlbenchError(Exception):
    """Bad input or an unsatisfiable request; the message is meant for the user."""


class ConfigError(MrlbenchError):
    """A config file, config key or component argument is wrong."""


class DataError(MrlbenchError):
    """An array, label or neighbour file is missing, corrupt or inconsistent."""


class UnavailableError(MrlbenchError):
    """A component cannot run here (missing optional dependency, no GPU, ...)."""
