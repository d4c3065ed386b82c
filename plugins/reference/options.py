"""The options the three commands share: the arrays folder and which arrays in it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

ARRAYS_OPTIONS = (
    click.option("--arrays", required=True, type=click.Path(), help="Arrays folder."),
    click.option(
        "--dataset",
        default=None,
        help="Database dataset, e.g. 1K (default: read from the --neighbors file name, else 1K).",
    ),
    click.option(
        "--config",
        "config",
        default="mrl1_e0_ff2048",
        show_default=True,
        help="Array config string, e.g. mrl1_e0_ff2048.",
    ),
    click.option(
        "--query-dataset",
        default=None,
        help="Query set searched against DATASET's database (e.g. V2).",
    ),
)


def arrays_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--arrays``, ``--dataset``, ``--config`` and ``--query-dataset``, in that
    order, to a command."""
    for option in reversed(ARRAYS_OPTIONS):
        fn = option(fn)
    return fn
