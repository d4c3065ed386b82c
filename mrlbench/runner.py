"""The runner: every encoder x backend x strategy cell, searches shared between the
strategies of a pair, finished cells resumed; a failed cell keeps its row. Every cell
runs on ``[run] threads`` threads (BLAS through threadpoolctl, the rest through each
component's ``use_threads``)."""

from __future__ import annotations

import contextlib
import os
import socket
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from mrlbench import metrics
from mrlbench.config import RunConfig, Spec
from mrlbench.context import Context
from mrlbench.cost import with_selection
from mrlbench.errors import DataError, MrlbenchError, UnavailableError, WriteError, error_line
from mrlbench.leaderboard import Row
from mrlbench.plugins import load as load_plugins
from mrlbench.plugins import loaded_dirs, registry, worker_env
from mrlbench.resume import cached
from mrlbench.sink import Recorder, replay
from mrlbench.store import digest
from mrlbench.types import Backend, Encoder, Executor, Observer, Retrieval, SearchRequest, Strategy

CELL_FORMAT = 2  # finished cells of an older format (before knn_recall) run again


@contextlib.contextmanager
def threads(cfg: RunConfig) -> Iterator[None]:
    """Every library on ``cfg.threads`` threads: BLAS and OpenMP through threadpoolctl,
    and each available component's own pool (``use_threads``)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=cfg.threads):
        for spec in cfg.specs():
            if type(spec.component).availability() is None:
                spec.component.use_threads(cfg.threads)
        yield


def run(cfg: RunConfig, observer: Observer | None = None) -> list[Row]:
    """Every encoder x backend x strategy; failed cells keep their row and the run goes on.
    The run's executor (``[run] executor``) runs the pairs; rows come back in config order."""
    observer = observer or Observer()
    executor = executor_of(cfg)
    for spec in cfg.specs():
        spec.component.observer = observer
    units = [Pair(cfg, enc, be, observer) for enc in cfg.encoders for be in cfg.backends]
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


@dataclass
class _Cell:
    """One strategy's cell of a pair: where its result is kept, and its rows once known."""

    index: int  # the strategy's position in the config
    st: Spec[Strategy]
    path: Path
    key: list[Any]
    rows: list[Row] | None = None  # resumed, failed before running, or computed


class Pair:
    """One encoder x backend pair of a run (a ``WorkUnit``): its cells share the pair's
    searches. ``run_here`` computes and writes in this process; ``prepare`` decides here
    which cells are finished and gives the task that computes the rest anywhere
    (``compute``), whose recorded files ``finish`` writes here."""

    def __init__(
        self, cfg: RunConfig, enc: Spec[Encoder], be: Spec[Backend], observer: Observer
    ) -> None:
        self.cfg, self.enc, self.be, self.observer = cfg, enc, be, observer
        self.label = f"{enc.label}/{be.label}"
        self.rows: list[Row] | None = None
        self._cells: list[_Cell] = []
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
            self._ctx = Context(cfg, enc, be, self.observer)
            self._ctx.backend.device  # noqa: B018 (a GPU backend without a GPU raises here)
        except WriteError:
            raise
        except Exception as exc:
            self._give_up("failed", error_line(exc))
            return False
        self._cells = []
        for i, st in enumerate(cfg.strategies):
            key = cell_key(cfg, self._ctx.data_key, enc, be, st)
            path = cfg.out / "cells" / f"{digest(key)}.json"
            done = cached(path, key)
            rows = [Row.from_record(rec) for rec in done] if isinstance(done, list) else None
            self._cells.append(_Cell(i, st, path, key, rows))
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


@dataclass(frozen=True)
class Task:
    """What a worker needs to compute a pair's unfinished cells (picklable): the config
    of that pair alone (resolved: absolute paths), the cells' strategy positions, the
    data key the driver saw, and the plugin folders and environment to load."""

    raw: dict[str, Any]
    strategies: list[int]
    data_key: str
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
            ctx = Context(cfg, enc, be, observer, sink)
            if ctx.data_key != task.data_key:
                raise DataError(
                    f"{task.label}: this worker ({socket.gethostname()}) reads other arrays "
                    "than the driver: the arrays (and image folders, checkpoints, "
                    "$MRLBENCH_CACHE) must be the same files at the same path on every node"
                )
            cells = []
            for i, st in zip(task.strategies, cfg.strategies, strict=True):
                key = cell_key(cfg, ctx.data_key, enc, be, st)
                cells.append(_Cell(i, st, cfg.out / "cells" / f"{digest(key)}.json", key))
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


def cell_key(
    cfg: RunConfig, data_key: str, enc: Spec[Encoder], be: Spec[Backend], st: Spec[Strategy]
) -> list[Any]:
    """What a finished cell was computed from (its resume key)."""
    key = [CELL_FORMAT, data_key, enc.table, be.table, st.table, cfg.ks, cfg.metrics]
    key.append(cfg.timing())
    return key


def blank(
    enc: Spec[Encoder],
    be: Spec[Backend],
    st: Spec[Strategy],
    status: str,
    error: str,
    dataset: str = "",
    device: str = "",
) -> Row:
    """A row without results: skipped, or failed with ``error``."""
    return Row(enc.label, dataset, be.label, device, st.label, st.label, status=status, error=error)


def compute_cells(ctx: Context, cells: list[_Cell], observer: Observer) -> None:
    """Run the cells of one pair that have no rows yet, their searches once for all;
    a cell that fails keeps a failed row. Files go to ``ctx.sink``."""
    cfg, enc, be = ctx.cfg, ctx.enc, ctx.be
    device = ctx.backend.device
    requests: set[SearchRequest] = set()
    for cell in cells:
        if cell.rows is not None:
            continue
        try:
            requests |= set(cell.st.component.searches(ctx.encoder.dims, ctx.n_database))
        except Exception as exc:
            cell.rows = [blank(enc, be, cell.st, "failed", error_line(exc), ctx.dataset, device)]
    ctx.prepare(requests)

    for cell in cells:
        st = cell.st
        if cell.rows is not None:
            observer.cell_done()
            continue
        observer.begin(f"{enc.label}/{be.label}: {st.label}", 1)
        try:
            ctx.spreads.clear()
            retrieved = st.component.run(ctx)
            latencies, latency_spread = ctx.latencies(st.component)
            spread = max([*ctx.spreads, latency_spread], default=0.0)
            found = [
                _row(cfg, ctx, st, r, spread, latencies.get(r.label))
                if not r.error
                else replace(
                    blank(enc, be, st, "failed", r.error, ctx.dataset, device), label=r.label
                )
                for r in retrieved
            ]
            records = [row.record(cfg.ks) | {"neighbors": row.neighbors} for row in found]
            ctx.sink.remember(cell.path, cell.key, records)
        except WriteError:
            raise  # a full disk fails every later write too: stop the run
        except Exception as exc:
            found = [blank(enc, be, st, "failed", error_line(exc), ctx.dataset, device)]
        observer.advance()
        observer.cell_done()
        cell.rows = found


def _knn_recall(cfg: RunConfig, ctx: Context, r: Retrieval) -> dict[str, float]:
    """``knn_recall@k`` of a row against exact search at its final dim: 1 for a row
    of one exact search (by definition; NaN past its list's length); computed for every
    other row (ANN searches, reranked rows); empty for a row without dims."""
    if not r.dims:
        return {}
    width = np.shape(r.ids)[1]
    if ctx.backend.exact and len(r.dims) == 1:
        return {f"knn_recall@{k}": 1.0 if k <= width else float("nan") for k in cfg.ks}
    try:
        truth = ctx.truth(r.dims[-1])
    except Exception as exc:  # the row stands without it
        warnings.warn(f"{r.label}: no knn_recall ({error_line(exc)})", stacklevel=2)
        return {}
    return metrics.knn_recall(r.ids, truth, cfg.ks)


def _row(
    cfg: RunConfig,
    ctx: Context,
    st: Spec[Strategy],
    r: Retrieval,
    spread: float,
    latencies: np.ndarray | None,
) -> Row:
    path = r.saved
    if r.stem is not None:
        kept = r.ids[:, : cfg.keep_neighbors]
        npy = ctx.sink.save_neighbors(cfg.out / "neighbors" / r.stem, kept, csv=cfg.csv)
        path = str(npy.relative_to(cfg.out))
    db_labels, q_labels = ctx.labels
    values = metrics.compute(r.ids, db_labels, q_labels, cfg.ks, cfg.metrics)
    values |= _knn_recall(cfg, ctx, r)
    m = len(q_labels)
    latencies = np.zeros(0) if latencies is None else latencies
    timed = len(latencies) > 0
    device = ctx.backend.device
    if len(r.dims) > 1 and device != "CPU":  # reranks run in numpy on the CPU
        device = f"{device} search, CPU rerank"
    return Row(
        encoder=ctx.model,
        dataset=ctx.dataset,
        backend=ctx.be.label,
        device=device,
        strategy=st.label,
        label=r.label,
        dims=",".join(map(str, r.dims)),
        shortlists=",".join(map(str, r.shortlists)),
        metrics=values,
        mflops_per_query=r.mflops_per_query,
        mflops_with_selection=with_selection(r.mflops_per_query, r.selection_mflops),
        qps=m / r.seconds if r.seconds > 0 else None,
        latency_ms_p50=float(1000 * np.percentile(latencies, 50)) if timed else None,
        latency_ms_p99=float(1000 * np.percentile(latencies, 99)) if timed else None,
        build_s=r.build_seconds,
        latency_queries=len(latencies) if timed else 0,
        timing_spread=spread,
        missing_ids=float((np.asarray(r.ids) < 0).mean()) if np.size(r.ids) else 0.0,
        neighbors=path,
    )
