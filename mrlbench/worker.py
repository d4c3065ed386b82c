"""What runs on a worker of an executor: a pair's unfinished cells as a picklable
``Task``, computed by ``compute`` from the config alone (the components built again
there, by the registry) into an ``Outcome``: the rows and the recorded writes of the
run directory, which the driver replays."""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from mrlbench.cells import Cell, cell_key, compute_cells, threads
from mrlbench.context import Context
from mrlbench.errors import DataError, UnavailableError
from mrlbench.leaderboard import Row
from mrlbench.plugins import load as load_plugins
from mrlbench.plugins import registry
from mrlbench.sink import Recorder
from mrlbench.store import digest
from mrlbench.types import Observer


@dataclass(frozen=True)
class Task:
    """What a worker needs to compute a pair's unfinished cells (picklable): the config
    of that pair alone (resolved: absolute paths), the cells' strategy positions, the
    data key the driver saw, and the plugin folders and environment to load."""

    raw: dict[str, Any]
    strategies: list[int]
    data_key: str
    identity: dict[str, Any]
    session: str
    label: str
    plugins_dirs: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    """What a worker computed: the rows of each cell (by strategy position) and the
    writes of the run directory it recorded, for the driver to replay."""

    strategies: list[int]
    rows: list[list[Row]]
    ops: list[tuple[Any, ...]]


def compute(task: Task) -> Outcome:
    """A pair's unfinished cells, computed in this process (a worker's), writing nothing
    of the run directory: its files are recorded in the outcome. The components are
    built again here from the config, by the registry, so plugin code runs here."""
    from mrlbench import config

    with _environment(task.env):
        for folder in task.plugins_dirs:
            load_plugins(folder)
        if not task.plugins_dirs:
            registry()
        cfg = config.build(task.raw, registry())
        enc, be = cfg.encoders[0], cfg.backends[0]
        observer = Observer()
        sink = Recorder(cfg.out)
        with threads(cfg):
            reason = type(enc.component).availability() or type(be.component).availability()
            if reason:
                raise UnavailableError(f"{task.label} cannot run on this worker: {reason}")
            ctx = Context(cfg, enc, be, observer, sink, task.identity, task.session)
            if ctx.data_key != task.data_key:
                raise DataError(
                    f"{task.label}: this worker ({socket.gethostname()}) reads other arrays "
                    "than the driver: the arrays (and image folders, checkpoints, "
                    "$MRLBENCH_CACHE) must be the same files at the same path on every node"
                )
            cells = []
            for i, st in zip(task.strategies, cfg.strategies, strict=True):
                key = cell_key(cfg, ctx.data_key, enc, be, st, task.identity)
                cells.append(Cell(i, st, cfg.out / "cells" / f"{digest(key)}.json", key))
            compute_cells(ctx, cells, observer)
    return Outcome(task.strategies, [cell.rows or [] for cell in cells], sink.ops)


@contextlib.contextmanager
def _environment(env: dict[str, str]) -> Iterator[None]:
    """``env`` set for the block (a worker process serves many tasks), then put back."""
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
