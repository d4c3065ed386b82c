"""Executor ``local``: every encoder x backend pair in this process, one after the other
(the default, ``[run] executor = "local"``; it takes no options); sharded indexes search
their shards here, one after the other."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mrlbench import Executor, WorkUnit, hookimpl


class LocalExecutor(Executor):
    """Runs every cell in this process, pair after pair, writing as it goes (the default)."""

    name = "local"

    def __init__(self) -> None:  # no options: any key of [run.executor] is an unknown key
        super().__init__()

    @classmethod
    def where(cls) -> str:
        return "this process"

    def run(self, cfg: Any, units: Sequence[WorkUnit]) -> None:
        for unit in units:
            unit.run_here()


@hookimpl
def mrlbench_register_executors(register):
    register(LocalExecutor)
