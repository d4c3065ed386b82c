"""pytest plugin (entry point ``pytest11``): the ``mrlbench_cell`` fixture, so that a
plugin author tracks the speed of their own cells with pytest-benchmark.

``mrlbench_cell(config, encoder=None, backend=None, strategy=None, label=None)`` runs
one cell of a run config (a TOML path, TOML text or a parsed dict; components picked by
their labels, the first of each kind by default): first as ``mrlbench run`` would, for
its leaderboard row; then its retrieval (every search at once over indexes in memory,
and the strategy's reranks; index building is not timed) under the ``benchmark``
fixture, with the row's accuracy and MFLOPs in ``benchmark.extra_info``. Returns the
leaderboard row (a dict); ``label`` picks the row of a strategy that makes several (the
timing is still the whole cell's: ``flat`` searches every dim it was given).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mrlbench import cells, runner
from mrlbench import config as configs
from mrlbench.config import C, Spec
from mrlbench.context import Context
from mrlbench.cost import search_mflops, selection_mflops
from mrlbench.errors import ConfigError
from mrlbench.index_cache import index_entry, load_or_build
from mrlbench.plugins import registry
from mrlbench.rerank import rerank
from mrlbench.timing import stopwatch
from mrlbench.types import Observer, SearchRequest, Shortlist
from mrlbench.vectors import prefix

ROUNDS = 5


def _raw(config: str | Path | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(config, Mapping):
        return dict(config)
    if isinstance(config, Path) or (isinstance(config, str) and "\n" not in config):
        return configs.read_toml(config)
    return configs.parse_toml(config, "the mrlbench_cell config")


def _pick(specs: list[Spec[C]], label: str | None, kind: str) -> Spec[C]:
    if label is None:
        return specs[0]
    for spec in specs:
        if spec.label == label:
            return spec
    known = ", ".join(s.label for s in specs)
    raise ConfigError(f"no {kind} called '{label}' in the config (known: {known})")


@pytest.fixture
def mrlbench_cell(benchmark: Any, tmp_path: Path) -> Callable[..., dict[str, Any]]:
    """Run one cell of an mrlbench config under pytest-benchmark; see the module."""

    def cell(
        config: str | Path | Mapping[str, Any],
        encoder: str | None = None,
        backend: str | None = None,
        strategy: str | None = None,
        label: str | None = None,
        rounds: int = ROUNDS,
    ) -> dict[str, Any]:
        base = (
            Path(config).parent
            if isinstance(config, Path) or (isinstance(config, str) and "\n" not in config)
            else None
        )  # a config file's relative paths are read from its folder
        cfg = configs.build(_raw(config), registry(), tmp_path / "mrlbench-cell", base=base)
        enc = _pick(cfg.encoders, encoder, "encoder")
        be = _pick(cfg.backends, backend, "backend")
        st = _pick(cfg.strategies, strategy, "strategy")
        one = replace(cfg, encoders=[enc], backends=[be], strategies=[st])
        rows = runner.run(one)
        if label is not None:
            rows = [r for r in rows if r.label == label]
        if len(rows) != 1:
            raise ConfigError(f"the cell makes {len(rows)} rows: pick one with label=")
        row = rows[0]
        if not row.ok:
            raise ConfigError(f"the cell {row.status}: {row.error}")
        with cells.threads(one):
            ctx = Context(one, enc, be, Observer())
            live = Live(ctx, set(st.component.searches(ctx.encoder.dims, ctx.n_database)))
            st.component.run(live)  # warm-up
            benchmark.pedantic(st.component.run, (live,), rounds=rounds, iterations=1)
        record = row.record(one.ks)
        benchmark.extra_info.update(
            {k: v for k, v in record.items() if isinstance(v, float) and k != "timing_spread"}
        )
        return record

    return cell


class Live:
    """A ``RetrievalContext`` that runs each search when the strategy asks for it, over
    indexes built (or loaded from the run's cache) beforehand and held in memory: one
    ``strategy.run(live)`` is exactly a cell's retrieval, every query at once."""

    def __init__(self, ctx: Context, requests: set[SearchRequest]) -> None:
        self.ctx = ctx
        self.model, self.dataset, self.index_name = ctx.model, ctx.dataset, ctx.index_name
        self.n_database, self.n_queries = ctx.n_database, ctx.n_queries
        self.indexes = {}
        for dim in sorted({r.dim for r in requests}):
            emb = ctx.embeddings(dim)
            path = index_entry(ctx.cfg.index_cache, ctx.backend, emb, dim)
            self.indexes[dim] = load_or_build(ctx.backend, emb, dim, path)[0]

    def search(self, dim: int, k: int | None = None) -> Shortlist:
        k = k or self.ctx.longest_k
        emb = self.ctx.embeddings(dim)
        queries = prefix(emb.queries, dim)
        (ids, per_query), seconds = stopwatch(
            lambda: self.ctx.backend.search(self.indexes[dim], queries, k)
        )
        device, selection = self.ctx.backend.device, selection_mflops(per_query, k)
        return Shortlist(
            ids, seconds, search_mflops(per_query, dim), 0.0, device, selection_mflops=selection
        )

    def rerank(self, ids: np.ndarray, dim: int, keep: int) -> tuple[np.ndarray, float]:
        emb = self.ctx.embeddings(dim)
        threads = self.ctx.cfg.threads
        return stopwatch(lambda: rerank(emb.database, emb.queries, ids, dim, keep, threads))
