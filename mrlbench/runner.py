"""The runner: every encoder x backend x strategy cell, searches shared between the
strategies of a pair, finished cells resumed; a failed cell keeps its row. The run's
executor runs the pairs (``Pair``: a ``WorkUnit``) here or elsewhere (``mrlbench.worker``);
the cells themselves are ``mrlbench.cells``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mrlbench.cells import Cell, blank, cell_key, compute_cells, threads
from mrlbench.config import RunConfig, Spec
from mrlbench.context import Context
from mrlbench.env import session_id
from mrlbench.errors import MrlbenchError, WriteError, error_line
from mrlbench.execution import Executor
from mrlbench.leaderboard import Row
from mrlbench.plugins import loaded_dirs, registry, worker_env
from mrlbench.resume import cached
from mrlbench.sink import replay
from mrlbench.store import digest
from mrlbench.types import Backend, Encoder, Observer, Strategy
from mrlbench.worker import Outcome, Task, compute


def run(cfg: RunConfig, observer: Observer | None = None, session: str = "") -> list[Row]:
    """Every encoder x backend x strategy; failed cells keep their row and the run goes on.
    The run's executor (``[run] executor``) runs the pairs; rows come back in config order.
    Rows computed now carry ``session`` (``mrlbench.env.session_id``); resumed ones
    keep the session that timed them."""
    observer = observer or Observer()
    session = session or session_id()
    executor = executor_of(cfg)
    for spec in cfg.specs():
        spec.component.observer = observer
    units = [Pair(cfg, enc, be, observer, session) for enc in cfg.encoders for be in cfg.backends]
    with threads(cfg):
        executor.run(cfg, units)
    rows: list[Row] = []
    for unit in units:
        if unit.rows is None:
            raise MrlbenchError(f"executor {executor.name} left {unit.label} unfinished")
        rows += unit.rows
    return rows


def executor_of(cfg: RunConfig) -> Executor:
    """The run's executor (``[run] executor``; ``local`` when the config names none)."""
    if cfg.executor is not None:
        return cfg.executor.component
    local = registry().create("executor", {"plugin": "local"})[1]
    if not isinstance(local, Executor):
        raise MrlbenchError("the local executor plugin is not an Executor")
    return local


class Pair:
    """One encoder x backend pair of a run (a ``WorkUnit``): its cells share the pair's
    searches. ``run_here`` computes and writes in this process; ``prepare`` decides here
    which cells are finished and gives the task that computes the rest anywhere
    (``compute``), whose recorded files ``finish`` writes here."""

    def __init__(
        self,
        cfg: RunConfig,
        enc: Spec[Encoder],
        be: Spec[Backend],
        observer: Observer,
        session: str = "",
    ) -> None:
        self.cfg, self.enc, self.be, self.observer = cfg, enc, be, observer
        self.session = session or session_id()
        self.label = f"{enc.label}/{be.label}"
        self.rows: list[Row] | None = None
        self.identity = cfg.identity()  # this process's: the driver's, for every cell
        self._cells: list[Cell] = []
        self._ctx: Context | None = None
        self._dataset = ""

    # ------------------------------------------------------------------------ planning
    def _blank(
        self, st: Spec[Strategy], status: str, error: str, dataset: str = "", device: str = ""
    ):
        return blank(self.enc, self.be, st, status, error, dataset, device)

    def _give_up(self, status: str, error: str) -> None:
        for _ in self.cfg.strategies:
            self.observer.cell_done()
        self.rows = [self._blank(st, status, error) for st in self.cfg.strategies]

    def _plan(self) -> bool:
        """The pair's context and cells, finished ones resumed; False when there is no
        context (the pair is skipped or failed: its rows are set)."""
        cfg, enc, be = self.cfg, self.enc, self.be
        reason = type(enc.component).availability() or type(be.component).availability()
        if reason:
            self._give_up("skipped", reason)
            return False
        try:
            self._ctx = Context(
                cfg, enc, be, self.observer, identity=self.identity, session=self.session
            )
            self._ctx.backend.device  # noqa: B018 (a GPU backend without a GPU raises here)
        except WriteError:
            raise
        except Exception as exc:
            self._give_up("failed", error_line(exc))
            return False
        self._cells = []
        for i, st in enumerate(cfg.strategies):
            key = cell_key(cfg, self._ctx.data_key, enc, be, st, self.identity)
            path = cfg.out / "cells" / f"{digest(key)}.json"
            done = cached(path, key)
            labels = {"backend": be.label, "strategy": st.label}  # this config's (a sweep's)
            rows = [Row.from_record(r | labels) for r in done] if isinstance(done, list) else None
            self._cells.append(Cell(i, st, path, key, rows))
        return True

    # ---------------------------------------------------------------------- one process
    def run_here(self) -> None:
        if not self._plan():
            return
        assert self._ctx is not None
        compute_cells(self._ctx, self._cells, self.observer)
        self.rows = [row for cell in self._cells for row in cell.rows or []]
        self._ctx = None  # its searches and arrays are freed before the next pair

    # ------------------------------------------------------------------------ elsewhere
    def prepare(self) -> tuple[Callable[[Any], Any], Any] | None:
        if not self._plan():
            return None
        assert self._ctx is not None
        pending = [cell for cell in self._cells if cell.rows is None]
        for cell in self._cells:
            if cell.rows is not None:
                self.observer.cell_done()
        if not pending:
            self.rows = [row for cell in self._cells for row in cell.rows or []]
            return None
        raw = self.cfg.resolved()
        raw["encoders"] = [self.enc.table]
        raw["backends"] = [self.be.table]
        raw["strategies"] = [cell.st.table for cell in pending]
        task = Task(
            raw=raw,
            strategies=[cell.index for cell in pending],
            data_key=self._ctx.data_key,
            identity=self.identity,
            session=self.session,
            label=self.label,
            plugins_dirs=loaded_dirs(),
            env=worker_env(),
        )
        self._dataset, self._ctx = self._ctx.dataset, None  # the task makes its own
        return compute, task

    def resources(self) -> dict[str, Any]:
        backend = self.be.component
        gpu = backend.wants_gpu if isinstance(backend, Backend) else False  # sharded: False
        return {"cpus": self.cfg.threads, "gpu": gpu}

    def finish(self, outcome: Outcome) -> None:
        replay(outcome.ops)  # the files first: a row never points at a missing file
        computed = dict(zip(outcome.strategies, outcome.rows, strict=True))
        for cell in self._cells:
            if cell.rows is None:
                cell.rows = computed[cell.index]
                self.observer.cell_done()
        self.rows = [row for cell in self._cells for row in cell.rows or []]

    def fail(self, error: str) -> None:
        dataset = self._dataset
        for cell in self._cells:
            if cell.rows is None:
                cell.rows = [self._blank(cell.st, "failed", error, dataset)]
                self.observer.cell_done()
        if not self._cells:
            self._give_up("failed", error)
            return
        self.rows = [row for cell in self._cells for row in cell.rows or []]
