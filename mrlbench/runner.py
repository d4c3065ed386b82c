"""The runner: every encoder x backend x strategy cell, searches shared between the
strategies of a pair, finished cells resumed; a failed cell keeps its row."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mrlbench import metrics, neighbors
from mrlbench.config import RunConfig, Spec
from mrlbench.context import Context
from mrlbench.errors import error_line
from mrlbench.leaderboard import Row
from mrlbench.resume import cached, remember
from mrlbench.store import digest
from mrlbench.types import Observer, Retrieval, SearchRequest


def run(cfg: RunConfig, observer: Observer | None = None) -> list[Row]:
    """Every encoder x backend x strategy; failed cells keep their row and the run goes on."""
    observer = observer or Observer()
    for spec in (*cfg.encoders, *cfg.backends, *cfg.strategies):
        spec.component.observer = observer
    rows: list[Row] = []
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
    except Exception as exc:
        return give_up("failed", error_line(exc))

    plans: list[tuple[Spec, Path, Any, list[Row] | None]] = []
    requests: set[SearchRequest] = set()
    for st in cfg.strategies:
        key = [ctx.data_key, enc.table, be.table, st.table, cfg.ks, cfg.metrics]
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
            found = [_row(cfg, ctx, st, r) for r in st.component.run(ctx)]
            records = [row.record(cfg.ks) | {"neighbors": row.neighbors} for row in found]
            remember(cell, key, records)
        except Exception as exc:
            found = [blank(st, "failed", error_line(exc), ctx.dataset, device)]
        observer.advance()
        observer.cell_done()
        rows += found
    return rows


def _row(cfg: RunConfig, ctx: Context, st: Spec, r: Retrieval) -> Row:
    path = r.saved
    if r.stem is not None:
        npy = neighbors.save(cfg.out / "neighbors" / r.stem, r.ids, csv=cfg.csv)
        path = str(npy.relative_to(cfg.out))
    db_labels, q_labels = ctx.labels
    values = metrics.compute(r.ids, db_labels, q_labels, cfg.ks, cfg.metrics)
    m = len(q_labels)
    return Row(
        encoder=ctx.model,
        dataset=ctx.dataset,
        backend=ctx.be.label,
        device=ctx.backend.device,
        strategy=st.label,
        label=r.label,
        dims=",".join(map(str, r.dims)),
        shortlists=",".join(map(str, r.shortlists)),
        metrics=values,
        mflops_per_query=r.mflops_per_query,
        latency_ms_per_query=1000 * r.seconds / m,
        qps=m / r.seconds if r.seconds > 0 else None,
        build_s=r.build_seconds,
        neighbors=path,
    )
