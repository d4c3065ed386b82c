"""mrlbench: a plugin-based benchmark harness for Matryoshka (MRL) embedding retrieval."""

from __future__ import annotations

__version__ = "0.1.0"

from mrlbench.hookspecs import hookimpl

__all__ = ["__version__", "hookimpl"]
