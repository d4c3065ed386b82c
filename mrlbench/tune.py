"""``mrlbench tune``: search adaptive and funnel settings for one encoder and backend.

1. ``candidates``: every adaptive (shortlist dim, rerank dim, shortlist) and funnel
   (shortlist dim, cascade of rerank dims ending at the largest, shortlists shrinking by
   a factor per stage) setting over the encoder's dims: a few hundred.
2. ``prune``: the cost model drops, before anything runs, every setting whose MFLOPs
   exceed the budget (for an ANN backend the search's cost is only known once measured,
   so the rerank stages' cost, a lower bound, is what is pruned on) and, without an
   MFLOPs budget, every setting dearer than the flat search at the largest dim.
3. The rest run as one ordinary run on a seeded sample of the queries (``sample/``,
   resumable like ``run``); the Pareto front of accuracy against MFLOPs and against
   measured latency is kept.
4. The front, the config's own adaptive and funnel strategies and flat at every dim run
   again on every query (``front/``). ``best.toml`` is the most accurate front setting
   within the budget on every query; ``tune.csv`` lists every tried setting and
   ``pareto.png`` draws the front against the flat curve.

The functions above the line ``# I/O`` are pure."""

from __future__ import annotations

import csv
import io
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from mrlbench import config, plots, run_directory
from mrlbench.config import RunConfig, Spec
from mrlbench.errors import ConfigError
from mrlbench.leaderboard import Row, headline, pareto, single_shot
from mrlbench.plugins import Registry
from mrlbench.store import write_text
from mrlbench.types import Observer

SHORTLISTS = (10, 25, 50, 100, 200, 400, 800)  # first shortlist sizes tried
FACTORS = (2, 4)  # a funnel stage keeps 1/factor of the one before
MAX_STAGES = 5  # rerank stages of a funnel (the MRL README's has 5)
LOW_RATIO = 8  # a shortlist dim is at most 1/8 of the largest dim ...
MAX_LOW_DIMS = 4  # ... and one of the 4 smallest
MAX_CANDIDATES = 400  # more are cut to a seeded sample (every adaptive setting kept)
SAMPLE_LATENCY_QUERIES = 50  # one-query timings per setting on the sample


@dataclass(frozen=True)
class Candidate:
    """One strategy setting: its config table (with a unique ``name``) and the cost
    model's MFLOPs per query (exact backend: the cost; ANN: the reranks' part only)."""

    table: dict[str, Any]
    mflops: float

    @property
    def name(self) -> str:
        return str(self.table["name"])


def rerank_cost(stages: Sequence[tuple[int, int]]) -> float:
    """MFLOPs of rerank stages (candidates, dim): DESIGN.md's s * d each."""
    return sum(s * d for s, d in stages) / 1e6


def adaptive(shortlist_dim: int, rerank_dim: int, shortlist: int, search: float) -> Candidate:
    table = {
        "plugin": "adaptive",
        "name": f"adaptive {shortlist_dim}->{rerank_dim} @{shortlist}",
        "shortlist_dim": shortlist_dim,
        "rerank_dim": rerank_dim,
        "shortlist": shortlist,
    }
    return Candidate(table, search + rerank_cost([(shortlist, rerank_dim)]))


def funnel(
    shortlist_dim: int, rerank_dims: Sequence[int], shortlists: Sequence[int], search: float
) -> Candidate:
    cascade, sizes = ",".join(map(str, rerank_dims)), ",".join(map(str, shortlists))
    table = {
        "plugin": "funnel",
        "name": f"funnel {shortlist_dim}->{cascade} @{sizes}",
        "shortlist_dim": shortlist_dim,
        "rerank_dims": list(rerank_dims),
        "shortlists": list(shortlists),
    }
    return Candidate(table, search + rerank_cost(list(zip(shortlists, rerank_dims, strict=True))))


def search_cost(n_database: int, dim: int, exact: bool) -> float:
    """The cost model's search MFLOPs: N * d for exact search; 0 (unknown before it is
    measured, a lower bound) for an ANN backend."""
    return n_database * dim / 1e6 if exact else 0.0


def candidates(
    dims: Sequence[int], n_database: int, final: int, exact: bool = True
) -> list[Candidate]:
    """Every adaptive and funnel setting over ``dims`` whose final list holds at least
    ``final`` neighbours (the headline metric's cut-off) and whose shortlists fit the
    database."""
    dims = sorted(set(dims))
    sizes = [s for s in SHORTLISTS if final <= s <= n_database]
    found: list[Candidate] = []
    lows = [d for d in dims[:-1] if d * LOW_RATIO <= dims[-1]][:MAX_LOW_DIMS] or dims[:1]
    for i, low in enumerate(lows):
        search = search_cost(n_database, low, exact)
        for high, size in itertools.product(dims[i + 1 :], sizes):
            found.append(adaptive(low, high, size, search))
        middle, top = dims[i + 1 : -1], dims[-1]
        for count in range(1, MAX_STAGES):
            for chain in itertools.combinations(middle, count):
                cascade = [*chain, top]
                for first, factor in itertools.product(sizes, FACTORS):
                    for shortlists in _shrinking(first, factor, len(cascade), final):
                        found.append(funnel(low, cascade, shortlists, search))
    return list({c.name: c for c in found}.values())  # two factors can give one setting


def _shrinking(first: int, factor: int, stages: int, final: int) -> list[list[int]]:
    """Shortlists from ``first``, each stage keeping 1/``factor`` of the one before (at
    least ``final``); and the same with the last stage keeping exactly ``final`` (as the
    MRL README's 200, 100, 50, 25, 10). Settings where a stage keeps every candidate of
    the one before are not funnels and are left out."""
    sizes = [max(final, first // factor**j) for j in range(stages)]
    found = []
    for variant in (sizes, [*sizes[:-1], final]):
        if len(set(variant)) == len(variant) and variant not in found:
            found.append(variant)
    return found


def prune(
    found: Sequence[Candidate], budget_mflops: float | None, flat_mflops: float
) -> list[Candidate]:
    """The settings the cost model allows: within the MFLOPs budget, or, without one,
    cheaper than the flat search at the largest dim (nothing dearer can pay off)."""
    limit = budget_mflops if budget_mflops is not None else flat_mflops
    return cap([c for c in found if c.mflops <= limit])


def cap(found: Sequence[Candidate], most: int = MAX_CANDIDATES) -> list[Candidate]:
    """At most ``most`` settings: every adaptive one, and a seeded sample of the funnels
    (in their original order) when there are more."""
    if len(found) <= most:
        return list(found)
    fixed = [c for c in found if c.table["plugin"] == "adaptive"][:most]
    funnels = [c for c in found if c.table["plugin"] != "adaptive"]
    rng = np.random.default_rng(0)
    keep = set(rng.choice(len(funnels), size=most - len(fixed), replace=False).tolist())
    return fixed + [c for i, c in enumerate(funnels) if i in keep]


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
    if budget_mflops is not None and (row.mflops_per_query or math.inf) > budget_mflops:
        return False
    return budget_ms is None or (row.latency_ms_p50 or math.inf) <= budget_ms


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
    emb = enc.component.embeddings(enc.component.dims[0])  # type: ignore[attr-defined]
    dims = list(enc.component.dims)  # type: ignore[attr-defined]
    n, metric = len(emb.database), headline(cfg.ks)
    exact = bool(be.component.exact)  # type: ignore[attr-defined]
    final = int(metric.split("@")[1])
    tried = prune(candidates(dims, n, final, exact), budget_mflops, search_cost(n, max(dims), True))
    if not tried:
        raise ConfigError(
            f"no adaptive or funnel setting fits {budget_mflops} MFLOPs/query "
            f"(the cheapest search alone costs {search_cost(n, min(dims), exact):.4g})"
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
    own = [s for s in cfg.strategies if s.component.name in ("adaptive", "funnel")]
    second = replace(
        cfg,
        out=cfg.out / "tune" / "front",
        encoders=[enc],
        backends=[be],
        strategies=[
            strategy({"plugin": "flat"}),
            *own,
            *(strategy(c.table) for c in tried if c.name in front),
        ],
        index_cache=cfg.index_cache,
    )
    full_rows = run_directory.execute(second, observer, checked=True).rows
    chosen = best(full_rows, front, metric, budget_mflops, budget_ms)
    write_csv(cfg.out / "tune.csv", tried, sample_rows, full_rows, front, metric)
    draw(cfg.out, full_rows, front, chosen, metric)
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
    tried: Sequence[Candidate],
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
                (f or s).status if (f or s) else "not run",
            ]
        )
    write_text(path, buf.getvalue())


def _num(row: Row | None, name: str) -> str:
    value = None if row is None else row.value(name)
    return "" if value is None else f"{value:.6g}"


def write_best(
    path: Path,
    chosen: Row | None,
    tried: Sequence[Candidate],
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
    chosen: Row | None,
    metric: str,
) -> Path:
    """``pareto.png``: accuracy against MFLOPs and against latency; the flat curve, the
    tuned front, the config's own settings and the best one."""
    ok = [r for r in rows if r.ok and r.value(metric) is not None]
    flat = [r for r in ok if single_shot(r)]
    tuned = [r for r in ok if r.strategy in front]
    own = [r for r in ok if not single_shot(r) and r.strategy not in front]
    panels = []
    for key, title in (("mflops_per_query", "MFLOPs / query"), ("latency_ms_p50", "ms / query")):

        def series(
            label: str, members: Sequence[Row], line: bool, kind: str, key: str = key
        ) -> plots.Series:
            members = sorted((r for r in members if r.value(key) is not None), key=_by(key))
            return plots.Series(
                label,
                tuple(float(r.value(key)) for r in members),
                tuple(float(r.value(metric)) for r in members),
                line=line,
                group=label,
                kind=kind,
                notes=tuple(r.dims if kind == "flat" else "" for r in members),
            )

        joined = key == "mflops_per_query"  # a measured time need not grow with MFLOPs
        parts = [
            series("flat", flat, joined, "flat"),
            series("tuned front", tuned, joined, "funnel"),
            series("config's own", own, False, "adaptive"),
        ]
        if chosen is not None:
            parts.append(series("best within budget", [chosen], False, "best"))
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
