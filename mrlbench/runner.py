"""The runner: every encoder x backend x strategy cell, searches shared between the
strategies of a pair, finished cells resumed; a failed cell keeps its row. Every cell
runs on ``[run] threads`` threads (BLAS through threadpoolctl, the rest through each
component's ``use_threads``)."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from mrlbench import metrics, neighbors
from mrlbench.config import RunConfig, Spec
from mrlbench.context import Context
from mrlbench.errors import WriteError, error_line
from mrlbench.leaderboard import Row
from mrlbench.resume import cached, remember
from mrlbench.store import digest
from mrlbench.types import Observer, Retrieval, SearchRequest

CELL_FORMAT = 2  # finished cells of an older format (before knn_recall) run again


@contextlib.contextmanager
def threads(cfg: RunConfig) -> Iterator[None]:
    """Every library on ``cfg.threads`` threads: BLAS and OpenMP through threadpoolctl,
    and each available component's own pool (``use_threads``)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=cfg.threads):
        for spec in (*cfg.encoders, *cfg.backends, *cfg.strategies):
            if type(spec.component).availability() is None:
                spec.component.use_threads(cfg.threads)
        yield


def run(cfg: RunConfig, observer: Observer | None = None) -> list[Row]:
    """Every encoder x backend x strategy; failed cells keep their row and the run goes on."""
    observer = observer or Observer()
    for spec in (*cfg.encoders, *cfg.backends, *cfg.strategies):
        spec.component.observer = observer
    rows: list[Row] = []
    with threads(cfg):
        for enc in cfg.encoders:
            for be in cfg.backends:
                rows += _pair(cfg, enc, be, observer)
    return rows


def _pair(cfg: RunConfig, enc: Spec, be: Spec, observer: Observer) -> list[Row]:
    def blank(st: Spec, status: str, error: str, dataset: str = "", device: str = "") -> Row:
        return Row(
            enc.label, dataset, be.label, device, st.label, st.label, status=status, error=error
        )

    def give_up(status: str, error: str) -> list[Row]:
        for _ in cfg.strategies:
            observer.cell_done()
        return [blank(st, status, error) for st in cfg.strategies]

    reason = type(enc.component).availability() or type(be.component).availability()
    if reason:
        return give_up("skipped", reason)
    try:
        ctx = Context(cfg, enc, be, observer)
        device = ctx.backend.device
    except WriteError:
        raise
    except Exception as exc:
        return give_up("failed", error_line(exc))

    plans: list[tuple[Spec, Path, Any, list[Row] | None]] = []
    requests: set[SearchRequest] = set()
    for st in cfg.strategies:
        key = [CELL_FORMAT, ctx.data_key, enc.table, be.table, st.table, cfg.ks, cfg.metrics]
        key.append(cfg.timing())
        cell = cfg.out / "cells" / f"{digest(key)}.json"
        done = cached(cell, key)
        if isinstance(done, list):
            plans.append((st, cell, key, [Row.from_record(rec) for rec in done]))
            continue
        try:
            requests |= set(st.component.searches(ctx.encoder.dims, ctx.n_database))
            plans.append((st, cell, key, None))
        except Exception as exc:
            failed = blank(st, "failed", error_line(exc), ctx.dataset, device)
            plans.append((st, cell, key, [failed]))
    ctx.prepare(requests)

    rows: list[Row] = []
    for st, cell, key, done in plans:
        if done is not None:
            rows += done
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
                else replace(blank(st, "failed", r.error, ctx.dataset, device), label=r.label)
                for r in retrieved
            ]
            records = [row.record(cfg.ks) | {"neighbors": row.neighbors} for row in found]
            remember(cell, key, records)
        except WriteError:
            raise  # a full disk fails every later write too: stop the run
        except Exception as exc:
            found = [blank(st, "failed", error_line(exc), ctx.dataset, device)]
        observer.advance()
        observer.cell_done()
        rows += found
    return rows


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
    st: Spec,
    r: Retrieval,
    spread: float,
    latencies: np.ndarray | None,
) -> Row:
    path = r.saved
    if r.stem is not None:
        kept = r.ids[:, : cfg.keep_neighbors]
        npy = neighbors.save(cfg.out / "neighbors" / r.stem, kept, csv=cfg.csv)
        path = str(npy.relative_to(cfg.out))
    db_labels, q_labels = ctx.labels
    values = metrics.compute(r.ids, db_labels, q_labels, cfg.ks, cfg.metrics)
    values |= _knn_recall(cfg, ctx, r)
    m = len(q_labels)
    timed = latencies is not None and len(latencies) > 0
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
        qps=m / r.seconds if r.seconds > 0 else None,
        latency_ms_p50=float(1000 * np.percentile(latencies, 50)) if timed else None,
        latency_ms_p99=float(1000 * np.percentile(latencies, 99)) if timed else None,
        build_s=r.build_seconds,
        latency_queries=len(latencies) if timed else 0,
        timing_spread=spread,
        missing_ids=float((np.asarray(r.ids) < 0).mean()) if np.size(r.ids) else 0.0,
        neighbors=path,
    )
