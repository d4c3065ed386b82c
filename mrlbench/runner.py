"""The runner: every encoder x backend x strategy cell, searches shared, results resumable."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mrlbench import metrics, neighbors
from mrlbench.config import RunConfig, Spec
from mrlbench.errors import DataError, MrlbenchError
from mrlbench.index_cache import index_path
from mrlbench.naming import flat_stem
from mrlbench.rerank import rerank
from mrlbench.search import best_of, check_request, search_dim
from mrlbench.store import read_json, scan, write_json
from mrlbench.types import (
    Backend,
    Embeddings,
    Encoder,
    Observer,
    Retrieval,
    SearchRequest,
    Shortlist,
)


@dataclass(frozen=True)
class Row:
    """One leaderboard row."""

    encoder: str
    dataset: str
    backend: str
    device: str
    strategy: str
    label: str
    dims: str = ""
    shortlists: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    mflops_per_query: float | None = None
    latency_ms_per_query: float | None = None
    qps: float | None = None
    build_s: float | None = None
    status: str = "ok"
    error: str = ""
    neighbors: str = ""  # the neighbours file, relative to the run directory (not a column)

    def record(self, ks: tuple[int, ...]) -> dict[str, Any]:
        """The row as leaderboard columns, in order."""
        rec: dict[str, Any] = {
            k: getattr(self, k)
            for k in ("encoder", "dataset", "backend", "device", "strategy", "label")
        }
        rec["dims"], rec["shortlists"] = self.dims, self.shortlists
        for name in metrics.metric_names(ks):
            value = self.metrics.get(name)
            rec[name] = None if value is None or math.isnan(value) else value
        for key in ("mflops_per_query", "latency_ms_per_query", "qps", "build_s"):
            rec[key] = getattr(self, key)
        rec["status"], rec["error"] = self.status, self.error
        return rec

    @classmethod
    def from_record(cls, rec: dict[str, Any], ks: tuple[int, ...]) -> Row:
        names = metrics.metric_names(ks)
        values = {k: v for k, v in rec.items() if k not in names}
        values.setdefault("neighbors", "")
        return cls(**values, metrics={n: rec[n] for n in names if rec.get(n) is not None})


def error_line(exc: BaseException) -> str:
    """One clear line for a failed cell."""
    text = " ".join(str(exc).split())
    return text if isinstance(exc, MrlbenchError) else f"{type(exc).__name__}: {text}"


def digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:20]


class Context:
    """Searches and reranks for one (encoder, backend) pair; what strategies see."""

    def __init__(self, cfg: RunConfig, enc: Spec, be: Spec, observer: Observer) -> None:
        self.cfg, self.enc, self.be, self.observer = cfg, enc, be, observer
        self.encoder: Encoder = enc.component  # type: ignore[assignment]
        self.backend: Backend = be.component  # type: ignore[assignment]
        first = self.encoder.embeddings(self.encoder.dims[0])
        self.model = enc.label
        self.dataset = first.query_dataset
        self.index_name = self.backend.index_name
        self.n_database = len(first.database)
        self.n_queries = len(first.queries)
        self.labels = (first.database_labels, first.query_labels)
        unique = {id(e): e for e in (self.encoder.embeddings(d) for d in self.encoder.dims)}
        self.data_key = digest([self._fingerprint(e) for e in unique.values()])
        self._found: dict[tuple[int, int], Shortlist | Exception] = {}

    @staticmethod
    def _fingerprint(emb: Embeddings) -> str:
        return f"{emb.fingerprint}:{scan(emb.queries, finite=False)}"

    def embeddings(self, dim: int) -> Embeddings:
        emb = self.encoder.embeddings(dim)
        check_request(emb, dim, [])
        return emb

    # -------------------------------------------------------------------------- searches
    def prepare(self, requests: set[SearchRequest]) -> None:
        """Run every requested search, one index per dim, resuming finished ones."""
        for dim in sorted({r.dim for r in requests}):
            pending = [k for k in sorted({r.k for r in requests if r.dim == dim})]
            pending = [k for k in pending if not self._resume(dim, k)]
            if pending:
                self._search_dim(dim, pending)

    def _meta_key(self, dim: int, k: int) -> dict[str, Any]:
        return {"data": self.data_key, "backend": self.be.table, "dim": dim, "k": k}

    def _stem(self, dim: int, k: int) -> Path:
        return (
            self.cfg.out
            / "neighbors"
            / flat_stem(self.model, self.index_name, dim, k, self.dataset)
        )

    def _resume(self, dim: int, k: int) -> bool:
        stem = self._stem(dim, k)
        meta = read_json(stem.with_name(stem.name + ".json"))
        npy = stem.with_name(stem.name + ".npy")
        if not meta or meta.get("key") != self._meta_key(dim, k) or not npy.is_file():
            return False
        try:
            ids = neighbors.load(npy)
        except DataError:
            return False
        if self.cfg.csv and not stem.with_name(stem.name + ".csv").is_file():
            neighbors.save(stem, ids, csv=True)
        self._found[(dim, k)] = Shortlist(
            ids,
            meta["seconds"],
            meta["mflops_per_query"],
            meta["build_seconds"],
            meta["device"],
            str(npy.relative_to(self.cfg.out)),
        )
        return True

    def _search_dim(self, dim: int, ks: list[int]) -> None:
        try:
            emb = self.embeddings(dim)
            path = index_path(self.cfg.index_cache, self.model, emb.dataset, dim, self.index_name)
            label = f"{self.model}/{self.be.label}"
            self.observer.begin(f"{label}: index {dim}d", len(emb.database))
            found, build_s = search_dim(
                self.backend,
                emb,
                dim,
                ks,
                path,
                self.cfg.repeats,
                self.observer.advance,
                lambda k: self.observer.begin(f"{label}: search {dim}d k={k}", 1),
            )
        except Exception as exc:
            for k in ks:
                self._found[(dim, k)] = exc
            return
        for k, result in found.items():
            meta = {
                "key": self._meta_key(dim, k),
                "seconds": result.seconds,
                "mflops_per_query": result.mflops_per_query,
                "build_seconds": build_s,
                "device": self.backend.device,
            }
            stem = self._stem(dim, k)
            npy = neighbors.save(stem, result.ids, csv=self.cfg.csv)
            write_json(stem.with_name(stem.name + ".json"), meta)
            self._found[(dim, k)] = Shortlist(
                neighbors.load(npy),
                result.seconds,
                result.mflops_per_query,
                build_s,
                self.backend.device,
                str(npy.relative_to(self.cfg.out)),
            )

    def search(self, dim: int, k: int) -> Shortlist:
        found = self._found.get((dim, k))
        if found is None:
            raise MrlbenchError(f"search {dim}d k={k} was not planned by the strategy")
        if isinstance(found, Exception):
            raise found
        return found

    def rerank(self, ids: np.ndarray, dim: int, keep: int) -> tuple[np.ndarray, float]:
        emb = self.embeddings(dim)
        return best_of(self.cfg.repeats, lambda: rerank(emb.database, emb.queries, ids, dim, keep))


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

    reason = type(enc.component).availability() or type(be.component).availability()
    if reason:
        for _ in cfg.strategies:
            observer.cell_done()
        return [blank(st, "skipped", reason) for st in cfg.strategies]
    try:
        ctx = Context(cfg, enc, be, observer)
        device = ctx.backend.device
    except Exception as exc:
        for _ in cfg.strategies:
            observer.cell_done()
        return [blank(st, "failed", error_line(exc)) for st in cfg.strategies]

    plans: list[tuple[Spec, Path, list[dict[str, Any]] | None]] = []
    requests: set[SearchRequest] = set()
    for st in cfg.strategies:
        key = digest([ctx.data_key, enc.table, be.table, st.table, cfg.ks, cfg.metrics])
        cell = cfg.out / "cells" / f"{key}.json"
        done = read_json(cell)
        if isinstance(done, list):
            plans.append((st, cell, done))
            continue
        try:
            requests |= set(st.component.searches(ctx.encoder.dims, ctx.n_database))
            plans.append((st, cell, None))
        except Exception as exc:
            plans.append(
                (
                    st,
                    cell,
                    [blank(st, "failed", error_line(exc), ctx.dataset, device).record(cfg.ks)],
                )
            )
    ctx.prepare(requests)

    rows: list[Row] = []
    for st, cell, done in plans:
        if done is not None:
            rows += [Row.from_record(rec, cfg.ks) for rec in done]
            observer.cell_done()
            continue
        observer.begin(f"{enc.label}/{be.label}: {st.label}", 1)
        try:
            found = [_row(cfg, ctx, st, r) for r in st.component.run(ctx)]
            write_json(cell, [row.record(cfg.ks) | {"neighbors": row.neighbors} for row in found])
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
