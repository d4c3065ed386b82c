"""``mrlbench tune``: search the strategies' settings for one encoder and backend.

1. ``offers``: every registered strategy offers its candidate settings for the encoder's
   dims, the database size and the headline cut-off (``Strategy.tune_candidates``, each
   a config table and its cost-model MFLOPs from ``mrlbench.cost``, without and with
   top-k selection; see ``mrlbench.tune_space``); tune names no strategy.
   ``"reference"`` candidates are the baseline, the others are tried.
2. ``prune``: the cost model drops, before anything runs, every setting whose MFLOPs
   exceed the budget (for an ANN backend the search's cost is only known once measured,
   so the rerank stages' cost, a lower bound, is what is pruned on) and, without an
   MFLOPs budget, every setting dearer than the dearest reference by the MFLOPs with
   selection (the model that ranks the stages as measured time does: BENCHMARKS.md).
3. ``splits``: the queries are split in two disjoint seeded parts, the selection split
   (``queries = S``: the seeded sample of S = min(--sample, Q // 2) of the Q queries
   tune may use) and the report split (``queries = {excluding = S}``: the other Q - S,
   every query outside the selection split; ``mrlbench.sampling``).
4. The candidates run as one ordinary run on the selection split (``tune/sample/``,
   resumable like ``run``); the Pareto front of accuracy against MFLOPs with selection
   and against measured latency is kept, and the best setting (the most accurate front
   setting within the budget) is chosen there, on the selection split only.
5. The front, the references and the config's own strategies of the tuned plugins run
   on the report split (``tune/front/``): every figure tune reports comes from there.
   ``best.toml`` is a complete config of the best setting (``mrlbench run best.toml``);
   ``tune.csv`` lists every tried setting (the split of each figure named) and
   ``pareto.png`` draws the front against the references' curve.

The functions above the line ``# I/O`` are pure, but for ``offers`` and ``candidates``,
which ask the registry's strategy classes."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from mrlbench import run_directory, tune_files
from mrlbench.config import RunConfig, Spec
from mrlbench.errors import ConfigError
from mrlbench.leaderboard import Row, headline, pareto
from mrlbench.plugins import Registry
from mrlbench.plugins import registry as loaded_registry
from mrlbench.sampling import Queries, QuerySplit
from mrlbench.tune_space import TuneCandidate, TuneSpace
from mrlbench.types import Observer

MAX_CANDIDATES = 400  # more are cut to a seeded sample (every "kept" setting kept)
SAMPLE_LATENCY_QUERIES = 50  # one-query timings per setting on the selection split


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
    found: Sequence[TuneCandidate],
    budget_mflops: float | None,
    ceiling_mflops: float,
    charged: bool = False,
) -> list[TuneCandidate]:
    """The settings the cost model allows: within the MFLOPs budget, or, without one, at
    most ``ceiling_mflops`` (the dearest reference: nothing dearer can pay off), by
    their MFLOPs or, ``charged``, by their MFLOPs with selection (``TuneCandidate.cost``,
    what ``run`` prunes on; the ceiling then in the same model)."""
    if budget_mflops is not None:
        return cap([c for c in found if c.mflops <= budget_mflops])
    return cap([c for c in found if (c.cost if charged else c.mflops) <= ceiling_mflops])


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


def charged(row: Row) -> float | None:
    """A row's cost for the front: its MFLOPs with selection, or its MFLOPs where its
    strategy does not count selection (a lower bound)."""
    value = row.value("mflops_with_selection")
    return row.value("mflops_per_query") if value is None else value


def fronts(rows: Sequence[Row], metric: str) -> set[str]:
    """Strategy names of the ok rows on the Pareto front of ``metric`` against MFLOPs
    with selection (``charged``) or against median latency."""
    ok = [r for r in rows if r.ok and r.value(metric) is not None]
    names: set[str] = set()
    for cost in (charged, lambda r: r.value("latency_ms_p50")):
        timed: list[tuple[Row, float]] = []
        for r in ok:
            c = cost(r)
            if c is not None:
                timed.append((r, float(c)))
        flags = pareto([(c, float(r.value(metric))) for r, c in timed])
        names |= {r.strategy for (r, _), flag in zip(timed, flags, strict=True) if flag}
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
    """The most accurate ok row among ``names`` within the budget (the cheapest by
    MFLOPs with selection on ties)."""
    fits = [
        r
        for r in rows
        if r.ok and r.strategy in names and r.value(metric) is not None
        if within(r, budget_mflops, budget_ms)
    ]
    return max(fits, key=lambda r: (r.value(metric), -(charged(r) or 0.0)), default=None)


@dataclass(frozen=True)
class Split:
    """One of tune's two query splits: its name, the encoder key ``queries`` that
    takes it (``mrlbench.sampling``) and how many queries it holds."""

    name: str
    queries: Queries
    size: int

    def describe(self) -> str:
        """How ``tune.csv`` names it, e.g. ``selection: 100 queries (queries = 100)``."""
        key = self.queries.table() if isinstance(self.queries, QuerySplit) else self.queries
        text = str(key).replace("'", "").replace(":", " =")
        return f"{self.name}: {self.size} queries (queries = {text})"


def splits(total: int, sample: int, limit: int | None = None) -> tuple[Split, Split]:
    """The selection and report splits of ``total`` queries, of which tune may use
    Q = ``min(total, limit)`` (``limit``: the encoder's own ``queries = N``): the
    selection split is the seeded sample of S = ``min(sample, Q // 2)`` (what
    ``queries = S`` runs), the report split the other Q - S queries, drawn (seeded)
    from the queries outside it, all of them without a ``limit``. No query is in both."""
    usable = min(total, limit or total)
    if usable < 2:
        raise ConfigError(
            f"tune needs at least 2 queries (one split to choose on, one to report on); "
            f"the encoder has {usable}"
        )
    chosen = min(sample, usable // 2)
    rest = usable - chosen
    report = QuerySplit(chosen, None if rest >= total - chosen else rest)
    return Split("selection", chosen, chosen), Split("report", report, rest)


def verdict(tuned: Tuned, budget: str) -> str | None:
    """The one line tune exits non-zero with: rows that failed (how many, where to
    look) and/or nothing within the budget; ``None`` when all is well."""
    rows = [*tuned.sample, *tuned.full]
    failed = [r for r in rows if not r.ok]
    parts = []
    if failed:
        parts.append(
            f"{len(failed)} of {len(rows)} rows failed (status and error in "
            f"{tuned.out}/tune/sample/leaderboard.csv and tune/front/leaderboard.csv; "
            "tune.csv's status column)"
        )
    if tuned.best is None:
        parts.append(f"no tried setting on the front fits {budget} on the selection split")
    return "; ".join(parts) or None


def describe_budget(budget_mflops: float | None, budget_ms: float | None) -> str:
    """``"0.04 MFLOPs/query and 2 ms/query (p50)"``, as far as given."""
    return " and ".join(
        text
        for text in (
            f"{budget_mflops:g} MFLOPs/query" if budget_mflops is not None else "",
            f"{budget_ms:g} ms/query (p50)" if budget_ms is not None else "",
        )
        if text
    )


# ------------------------------------------------------------------------------------ I/O
@dataclass(frozen=True)
class Tuned:
    """What ``tune`` found: every row on the selection split (``sample``) and on the
    report split (``full``), the front's names, the best row on the selection split
    (``None``: nothing within the budget) and its row on the report split
    (``reported``), the two splits and the folder the files are in."""

    sample: list[Row]
    full: list[Row]
    front: set[str]
    best: Row | None
    out: Path
    reported: Row | None = None
    splits: tuple[Split, ...] = ()


def pick(specs: list[Spec], label: str | None, kind: str) -> Spec:
    if label is None:
        return specs[0]
    for spec in specs:
        if spec.label == label:
            return spec
    known = ", ".join(s.label for s in specs)
    raise ConfigError(f"no {kind} called '{label}' in the config (known: {known})")


def on_split(enc: Spec, split: Split) -> Spec:
    """The encoder spec that runs ``split``'s queries."""
    key = split.queries.table() if isinstance(split.queries, QuerySplit) else split.queries
    return replace(enc, queries=split.queries, table={**enc.table, "queries": key})


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
    if isinstance(enc.queries, QuerySplit):
        raise ConfigError(
            f"encoder '{enc.label}': tune splits the queries itself; give it "
            "queries = N (or no 'queries' key), not a split"
        )
    reason = type(enc.component).availability() or type(be.component).availability()
    if reason:
        raise ConfigError(f"cannot tune here: {reason}")
    emb = enc.component.embeddings(enc.component.dims[0])
    dims = tuple(enc.component.dims)
    n, metric = len(emb.database), headline(cfg.ks)
    selection, report = splits(len(emb.queries), sample, enc.queries)
    exact = bool(be.component.exact)
    offered = offers(TuneSpace(dims, n, int(metric.split("@")[1]), exact), registry)
    references = [c for c in offered if c.role == "reference"]
    found = [c for c in offered if c.role != "reference"]
    if not found:
        raise ConfigError("no strategy plugin offers tune candidates (Strategy.tune_candidates)")
    ceiling = max((c.cost for c in references), default=math.inf)
    tried = prune(found, budget_mflops, ceiling, charged=True)
    if not tried and budget_mflops is not None:
        raise ConfigError(
            f"no tune candidate fits {budget_mflops:g} MFLOPs/query "
            f"(the cheapest costs {min(c.mflops for c in found):.4g})"
        )
    if not tried:
        raise ConfigError(
            f"no tune candidate costs less than the dearest reference ({ceiling:.4g} "
            f"MFLOPs/query with selection; the cheapest costs {min(c.cost for c in found):.4g})"
        )

    def strategy(table: dict[str, Any]) -> Spec:
        label, component = registry.create("strategy", table)
        return Spec(label, component, dict(table))

    first = replace(
        cfg,
        out=cfg.out / "tune" / "sample",
        encoders=[on_split(enc, selection)],
        backends=[be],
        strategies=[strategy(c.table) for c in tried],
        latency_queries=min(cfg.latency_queries, SAMPLE_LATENCY_QUERIES),
        index_cache=cfg.index_cache,
    )
    sample_rows = run_directory.execute(first, observer).rows
    front = fronts(sample_rows, metric)
    chosen = best(sample_rows, front, metric, budget_mflops, budget_ms)  # selection split
    tuned_plugins = {c.table["plugin"] for c in found}
    own = [s for s in cfg.strategies if s.component.name in tuned_plugins]
    second = replace(
        cfg,
        out=cfg.out / "tune" / "front",
        encoders=[on_split(enc, report)],
        backends=[be],
        strategies=[
            *(strategy(c.table) for c in references),
            *own,
            *(strategy(c.table) for c in tried if c.name in front),
        ],
        index_cache=cfg.index_cache,
    )
    full_rows = run_directory.execute(second, observer, checked=True).rows
    reported = next((r for r in full_rows if chosen and r.strategy == chosen.strategy), None)
    names = (selection.describe(), report.describe())
    tune_files.write_csv(cfg.out / "tune.csv", tried, sample_rows, full_rows, front, metric, names)
    refs = {c.name for c in references}
    tune_files.draw(cfg.out, full_rows, front, refs, reported, metric)
    table = next((c.table for c in tried if chosen and c.name == chosen.strategy), None)
    lines = best_lines(chosen, reported, metric, describe_budget(budget_mflops, budget_ms))
    tune_files.write_best(cfg.out / "best.toml", cfg, enc, be, table, [*lines, *names])
    return Tuned(sample_rows, full_rows, front, chosen, cfg.out, reported, (selection, report))


def best_lines(chosen: Row | None, reported: Row | None, metric: str, budget: str) -> list[str]:
    """``best.toml``'s comment: what was chosen where, and its figures on each split."""
    if chosen is None:
        return []

    def figures(row: Row | None) -> str:
        if row is None or row.value(metric) is None:
            return "not run"
        return (
            f"{metric} {row.value(metric):.4f}, {row.mflops_per_query:.4g} MFLOPs/query "
            f"({tune_files.num(row, 'mflops_with_selection') or '-'} with selection), "
            f"p50 {tune_files.num(row, 'latency_ms_p50') or '-'} ms"
        )

    return [
        f"mrlbench tune: the most accurate setting within {budget}, chosen on the "
        f"selection split ({chosen.encoder} / {chosen.backend}):",
        f"  on the selection split: {figures(chosen)}",
        f"  on the report split:    {figures(reported)}",
        "`mrlbench run best.toml` runs it on the encoder's queries, into best/ here.",
    ]
