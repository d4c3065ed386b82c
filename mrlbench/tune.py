"""``mrlbench tune``: search the strategies' settings for one encoder and backend.

1. ``offers``: every registered strategy offers its candidate settings for the encoder's
   dims, the database size and the headline cut-off (``Strategy.tune_candidates``, each
   a config table and its cost-model MFLOPs from ``mrlbench.cost``; see
   ``mrlbench.tune_space``); tune names no strategy. ``"reference"`` candidates are the
   baseline, the others are tried.
2. ``prune``: the cost model drops, before anything runs, every setting whose MFLOPs
   exceed the budget (for an ANN backend the search's cost is only known once measured,
   so the rerank stages' cost, a lower bound, is what is pruned on) and, without an
   MFLOPs budget, every setting dearer than the dearest reference.
3. The rest run as one ordinary run on a seeded sample of the queries (``sample/``,
   resumable like ``run``); the Pareto front of accuracy against MFLOPs and against
   measured latency is kept.
4. The front, the references and the config's own strategies of the tuned plugins run
   again on every query (``front/``). ``best.toml`` is the most accurate front setting
   within the budget on every query; ``tune.csv`` lists every tried setting and
   ``pareto.png`` draws the front against the references' curve.

The functions above the line ``# I/O`` are pure, but for ``offers`` and ``candidates``,
which ask the registry's strategy classes."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from mrlbench import config, plots, run_directory
from mrlbench.config import RunConfig, Spec
from mrlbench.errors import ConfigError
from mrlbench.leaderboard import Row, headline, pareto
from mrlbench.plugins import Registry
from mrlbench.plugins import registry as loaded_registry
from mrlbench.store import write_text
from mrlbench.tune_space import TuneCandidate, TuneSpace
from mrlbench.types import Observer

MAX_CANDIDATES = 400  # more are cut to a seeded sample (every "kept" setting kept)
SAMPLE_LATENCY_QUERIES = 50  # one-query timings per setting on the sample


def offers(space: TuneSpace, registry: Registry | None = None) -> list[TuneCandidate]:
    """Every candidate the registered strategies offer in ``space`` (by strategy name,
    each strategy's in its own order); a name two candidates share is an error."""
    registry = loaded_registry() if registry is None else registry
    found: dict[str, tuple[str, TuneCandidate]] = {}
    for plugin in registry.names("strategy"):
        strategy: Any = registry.get("strategy", plugin).cls
        for c in strategy.tune_candidates(space):
            if c.name in found:
                raise ConfigError(
                    f"strategy plugins '{found[c.name][0]}' and '{plugin}' both offer a "
                    f"tune candidate named '{c.name}'"
                )
            found[c.name] = (plugin, c)
    return [c for _, c in found.values()]


def candidates(
    dims: Sequence[int],
    n_database: int,
    final: int,
    exact: bool = True,
    registry: Registry | None = None,
) -> list[TuneCandidate]:
    """The settings tune tries over ``dims`` (every offered one but the references):
    their final lists hold at least ``final`` neighbours (the headline metric's cut-off)
    and their shortlists fit the database."""
    space = TuneSpace(tuple(dims), n_database, final, exact)
    return [c for c in offers(space, registry) if c.role != "reference"]


def prune(
    found: Sequence[TuneCandidate], budget_mflops: float | None, ceiling_mflops: float
) -> list[TuneCandidate]:
    """The settings the cost model allows: within the MFLOPs budget, or, without one, at
    most ``ceiling_mflops`` (the dearest reference: nothing dearer can pay off)."""
    limit = budget_mflops if budget_mflops is not None else ceiling_mflops
    return cap([c for c in found if c.mflops <= limit])


def cap(found: Sequence[TuneCandidate], most: int = MAX_CANDIDATES) -> list[TuneCandidate]:
    """At most ``most`` settings: every ``"kept"`` one, and a seeded sample of the others
    (in their original order) when there are more."""
    if len(found) <= most:
        return list(found)
    fixed = [c for c in found if c.role == "kept"][:most]
    others = [c for c in found if c.role != "kept"]
    rng = np.random.default_rng(0)
    keep = set(rng.choice(len(others), size=most - len(fixed), replace=False).tolist())
    return fixed + [c for i, c in enumerate(others) if i in keep]


def fronts(rows: Sequence[Row], metric: str) -> set[str]:
    """Strategy names of the ok rows on the Pareto front of ``metric`` against MFLOPs
    or against median latency."""
    ok = [r for r in rows if r.ok and r.value(metric) is not None]
    names: set[str] = set()
    for cost in ("mflops_per_query", "latency_ms_p50"):
        timed = [r for r in ok if r.value(cost) is not None]
        flags = pareto([(r.value(cost), r.value(metric)) for r in timed])
        names |= {r.strategy for r, flag in zip(timed, flags, strict=True) if flag}
    return names


def within(row: Row, budget_mflops: float | None, budget_ms: float | None) -> bool:
    """Whether ``row`` fits the budget (a figure it lacks does not; 0 MFLOPs does)."""
    mflops, ms = row.mflops_per_query, row.latency_ms_p50
    if budget_mflops is not None and (math.inf if mflops is None else mflops) > budget_mflops:
        return False
    return budget_ms is None or (math.inf if ms is None else ms) <= budget_ms


def best(
    rows: Sequence[Row],
    names: set[str],
    metric: str,
    budget_mflops: float | None,
    budget_ms: float | None,
) -> Row | None:
    """The most accurate ok row among ``names`` within the budget (fewest MFLOPs on ties)."""
    fits = [
        r
        for r in rows
        if r.ok and r.strategy in names and r.value(metric) is not None
        if within(r, budget_mflops, budget_ms)
    ]
    return max(fits, key=lambda r: (r.value(metric), -(r.mflops_per_query or 0.0)), default=None)


# ------------------------------------------------------------------------------------ I/O
@dataclass(frozen=True)
class Tuned:
    """What ``tune`` found: every row on the sample and on every query, the front's
    names, the best row (``None``: nothing within the budget) and the files written."""

    sample: list[Row]
    full: list[Row]
    front: set[str]
    best: Row | None
    out: Path


def pick(specs: list[Spec], label: str | None, kind: str) -> Spec:
    if label is None:
        return specs[0]
    for spec in specs:
        if spec.label == label:
            return spec
    known = ", ".join(s.label for s in specs)
    raise ConfigError(f"no {kind} called '{label}' in the config (known: {known})")


def run(
    cfg: RunConfig,
    registry: Registry,
    budget_mflops: float | None = None,
    budget_ms: float | None = None,
    sample: int = 1000,
    encoder: str | None = None,
    backend: str | None = None,
    observer: Observer | None = None,
) -> Tuned:
    """Tune on ``cfg``'s encoder and backend (the first, or those named) and write
    ``tune.csv``, ``pareto.png`` and ``best.toml`` into ``cfg.out``."""
    if budget_mflops is None and budget_ms is None:
        raise ConfigError("give a budget: --budget-mflops X or --budget-ms Y")
    enc, be = pick(cfg.encoders, encoder, "encoder"), pick(cfg.backends, backend, "backend")
    reason = type(enc.component).availability() or type(be.component).availability()
    if reason:
        raise ConfigError(f"cannot tune here: {reason}")
    emb = enc.component.embeddings(enc.component.dims[0])
    dims = tuple(enc.component.dims)
    n, metric = len(emb.database), headline(cfg.ks)
    exact = bool(be.component.exact)
    offered = offers(TuneSpace(dims, n, int(metric.split("@")[1]), exact), registry)
    references = [c for c in offered if c.role == "reference"]
    found = [c for c in offered if c.role != "reference"]
    if not found:
        raise ConfigError("no strategy plugin offers tune candidates (Strategy.tune_candidates)")
    ceiling = max((c.mflops for c in references), default=math.inf)
    tried = prune(found, budget_mflops, ceiling)
    if not tried:
        raise ConfigError(
            f"no tune candidate fits {budget_mflops} MFLOPs/query "
            f"(the cheapest costs {min(c.mflops for c in found):.4g})"
        )

    def strategy(table: dict[str, Any]) -> Spec:
        label, component = registry.create("strategy", table)
        return Spec(label, component, dict(table))

    queries = min(sample, enc.queries or sample)
    on_sample = replace(enc, queries=queries, table={**enc.table, "queries": queries})
    first = replace(
        cfg,
        out=cfg.out / "tune" / "sample",
        encoders=[on_sample],
        backends=[be],
        strategies=[strategy(c.table) for c in tried],
        latency_queries=min(cfg.latency_queries, SAMPLE_LATENCY_QUERIES),
        index_cache=cfg.index_cache,
    )
    sample_rows = run_directory.execute(first, observer).rows
    front = fronts(sample_rows, metric)
    tuned = {c.table["plugin"] for c in found}
    own = [s for s in cfg.strategies if s.component.name in tuned]
    second = replace(
        cfg,
        out=cfg.out / "tune" / "front",
        encoders=[enc],
        backends=[be],
        strategies=[
            *(strategy(c.table) for c in references),
            *own,
            *(strategy(c.table) for c in tried if c.name in front),
        ],
        index_cache=cfg.index_cache,
    )
    full_rows = run_directory.execute(second, observer, checked=True).rows
    chosen = best(full_rows, front, metric, budget_mflops, budget_ms)
    write_csv(cfg.out / "tune.csv", tried, sample_rows, full_rows, front, metric)
    draw(cfg.out, full_rows, front, {c.name for c in references}, chosen, metric)
    write_best(cfg.out / "best.toml", chosen, tried, metric, budget_mflops, budget_ms)
    return Tuned(sample_rows, full_rows, front, chosen, cfg.out)


CSV_COLUMNS = (
    "strategy",
    "model_mflops",
    "sample_{metric}",
    "sample_mflops_per_query",
    "sample_latency_ms_p50",
    "front",
    "{metric}",
    "mflops_per_query",
    "latency_ms_p50",
    "knn_recall@{k}",
    "status",
)


def write_csv(
    path: Path,
    tried: Sequence[TuneCandidate],
    sample: Sequence[Row],
    full: Sequence[Row],
    front: set[str],
    metric: str,
) -> None:
    """``tune.csv``: every tried setting, its cost-model MFLOPs, its sample figures and,
    for the front, its figures on every query."""
    k = metric.split("@")[1]
    names = [c.format(metric=metric, k=k) for c in CSV_COLUMNS]
    on_sample = {r.strategy: r for r in sample}
    on_all = {r.strategy: r for r in full}
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(names)
    for c in tried:
        s, f = on_sample.get(c.name), on_all.get(c.name)
        writer.writerow(
            [
                c.name,
                f"{c.mflops:.6g}",
                _num(s, metric),
                _num(s, "mflops_per_query"),
                _num(s, "latency_ms_p50"),
                "yes" if c.name in front else "",
                _num(f, metric),
                _num(f, "mflops_per_query"),
                _num(f, "latency_ms_p50"),
                _num(f, f"knn_recall@{k}"),
                _status(f or s),
            ]
        )
    write_text(path, buf.getvalue())


def _status(row: Row | None) -> str:
    return row.status if row is not None else "not run"


def _num(row: Row | None, name: str) -> str:
    value = None if row is None else row.value(name)
    return "" if value is None else f"{value:.6g}"


def write_best(
    path: Path,
    chosen: Row | None,
    tried: Sequence[TuneCandidate],
    metric: str,
    budget_mflops: float | None,
    budget_ms: float | None,
) -> None:
    """``best.toml``: the chosen setting as a ``[[strategies]]`` table, its figures in
    comments; a comment saying so when nothing fits the budget."""
    budget = " and ".join(
        text
        for text in (
            f"{budget_mflops:g} MFLOPs/query" if budget_mflops is not None else "",
            f"{budget_ms:g} ms/query (p50)" if budget_ms is not None else "",
        )
        if text
    )
    if chosen is None:
        write_text(path, f"# mrlbench tune: no setting on the front fits {budget}\n")
        return
    table = next(c.table for c in tried if c.name == chosen.strategy)
    lines = [
        f"# mrlbench tune: the most accurate setting within {budget}, on every query:",
        f"# {metric} {chosen.value(metric):.4f}, {chosen.mflops_per_query:.4g} MFLOPs/query, "
        f"p50 {_num(chosen, 'latency_ms_p50')} ms ({chosen.encoder} / {chosen.backend})",
        "",
    ]
    text = config.dumps({"run": {}, "strategies": [table]}).split("\n", 1)[1].lstrip("\n")
    write_text(path, "\n".join(lines) + text)


def draw(
    out: Path,
    rows: Sequence[Row],
    front: set[str],
    references: set[str],
    chosen: Row | None,
    metric: str,
) -> Path:
    """``pareto.png``: accuracy against MFLOPs and against latency (log axes: a row that
    costs 0 is left out); the references' curve, the tuned front, the config's own
    settings and the best one."""
    ok = [r for r in rows if r.ok and r.value(metric) is not None]
    reference = [r for r in ok if r.strategy in references]
    tuned = [r for r in ok if r.strategy in front]
    own = [r for r in ok if r.strategy not in references | front]
    panels = []
    for key, title in (("mflops_per_query", "MFLOPs / query"), ("latency_ms_p50", "ms / query")):

        def series(
            label: str, members: Sequence[Row], line: bool, notes: bool = False, key: str = key
        ) -> plots.Series:
            members = sorted((r for r in members if (r.value(key) or 0) > 0), key=_by(key))
            return plots.Series(
                label,
                tuple(float(r.value(key)) for r in members),
                tuple(float(r.value(metric)) for r in members),
                line=line,
                group=label,
                kind=label,
                notes=tuple(r.dims if notes else "" for r in members),
            )

        joined = key == "mflops_per_query"  # a measured time need not grow with MFLOPs
        parts = [
            series(", ".join(sorted(references)) or "reference", reference, joined, True),
            series("tuned front", tuned, joined),
            series("config's own", own, False),
        ]
        if chosen is not None:
            parts.append(series("best within budget", [chosen], False))
        panels.append(
            plots.Plot(
                f"{metric} against {title}",
                title,
                metric,
                tuple(p for p in parts if p.x),
                logx=True,
            )
        )
    return plots.draw(plots.Figure("pareto", tuple(panels)), out)


def _by(key: str):
    return lambda row: row.value(key)
