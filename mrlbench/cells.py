"""A pair's cells: their resume keys, their computing (the strategies' searches run
once for all of them), and the leaderboard rows they make; every library on ``[run]
threads`` threads while they run (BLAS through threadpoolctl, the rest through each
component's ``use_threads``)."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from mrlbench import metrics
from mrlbench.config import RunConfig, Spec
from mrlbench.context import Context
from mrlbench.cost import with_selection
from mrlbench.errors import WriteError, error_line
from mrlbench.leaderboard import Row
from mrlbench.timing import percentile_ms
from mrlbench.types import Backend, Encoder, Observer, Retrieval, SearchRequest, Strategy

P99_LEAST = 100  # a p99 of fewer samples is left blank (of 20 it is their maximum)
CELL_FORMAT = 4  # finished cells of an older format run again (4: effective keys, identity,
# knn_recall by distance)


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


@dataclass
class Cell:
    """One strategy's cell of a pair: where its result is kept, and its rows once known."""

    index: int  # the strategy's position in the config
    st: Spec[Strategy]
    path: Path
    key: list[Any]
    rows: list[Row] | None = None  # resumed, failed before running, or computed


def cell_key(
    cfg: RunConfig,
    data_key: str,
    enc: Spec[Encoder],
    be: Spec[Backend],
    st: Spec[Strategy],
    identity: dict[str, Any],
) -> list[Any]:
    """What a finished cell was computed from (its resume key): the format, the vectors
    and labels, every effective component setting, the cut-offs and metric mode, and
    what its timings depend on (repeats, threads, latency sample; executor and host)."""
    key = [CELL_FORMAT, data_key, enc.key(), be.key(), st.key(), cfg.ks, cfg.metrics]
    return [*key, cfg.timing(), identity]


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


def compute_cells(ctx: Context, cells: list[Cell], observer: Observer) -> None:
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
                _row(cfg, ctx, st, r, spread, latencies.get(r.label), ctx.session)
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
    """``knn_recall@k`` measured against exact search at a row's final dim (``Context.
    knn_recall``) for every row, exact ones too, but one whose only search is the truth's
    own computation (``Backend.truth_kernel``): 1 (NaN past its list) only because it is
    that same computation. Empty for a row without dims."""
    if not r.dims:
        return {}
    width = np.shape(r.ids)[1]
    if ctx.backend.truth_kernel and len(r.dims) == 1:
        return {f"knn_recall@{k}": 1.0 if k <= width else float("nan") for k in cfg.ks}
    try:
        return ctx.knn_recall(r.ids, r.dims[-1])
    except Exception as exc:  # the row stands without it
        warnings.warn(f"{r.label}: no knn_recall ({error_line(exc)})", stacklevel=2)
        return {}


def _row(
    cfg: RunConfig,
    ctx: Context,
    st: Spec[Strategy],
    r: Retrieval,
    spread: float,
    latencies: np.ndarray | None,
    session: str,
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
    samples = np.zeros((0, 0)) if latencies is None else np.atleast_2d(latencies)
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
        latency_ms_p50=percentile_ms(samples, 50),
        latency_ms_p99=percentile_ms(samples, 99, least=P99_LEAST),
        latency_ms_p50_best=percentile_ms(samples.min(axis=0), 50) if samples.size else None,
        build_s=r.build_seconds,
        latency_queries=samples.shape[1] if samples.size else 0,
        latency_samples=int(samples.size),
        session=session,
        timing_spread=spread,
        missing_ids=float((np.asarray(r.ids) < 0).mean()) if np.size(r.ids) else 0.0,
        neighbors=path,
    )
