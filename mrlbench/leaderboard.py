"""The leaderboard: its ``Row``, the one table of its columns (group, direction, format)
that every view reads, and its rules (headline metric, single-shot rows, Pareto frontier,
orders). Pure: files and terminals are the views' business (``report``, ``html_report``,
``plots``, ``compare``); dicts appear only at the file edges (``record``/``from_record``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from mrlbench.metrics import metric_names

METRIC_FAMILIES = ("mAP", "precision", "recall", "topk_acc", "knn_recall")


# ----------------------------------------------------------------------------- columns
@dataclass(frozen=True)
class Column:
    """One leaderboard column: its group (``key``, ``accuracy``, ``cost``, ``status``),
    which direction is better (``higher``, ``lower`` or ``""``), and its number format."""

    name: str
    group: str
    better: str = ""
    spec: str = ""

    def format(self, value: Any) -> str:
        """The value as text: empty when missing, floats by the column's format."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return ""
        if isinstance(value, float) and self.spec:
            return format(value, self.spec)
        return str(value)

    def best(self, values: Sequence[float]) -> float:
        """The best of ``values`` in this column's direction."""
        return min(values) if self.better == "lower" else max(values)

    def worsened(self, percent: float, tolerance: float) -> bool:
        """Whether a relative change of ``percent`` is worse than ``tolerance`` percent."""
        if self.better == "lower":
            return percent > tolerance
        if self.better == "higher":
            return percent < -tolerance
        return False


KEY_NAMES = ("encoder", "dataset", "backend", "device", "strategy", "label", "dims", "shortlists")
KEY = tuple(Column(name, "key") for name in KEY_NAMES)
COST = (
    Column("mflops_per_query", "cost", "lower", ".4g"),
    Column("mflops_with_selection", "cost", "lower", ".4g"),  # + top-k selection (cost.py)
    Column("qps", "cost", "higher", ".4g"),
    Column("latency_ms_p50", "cost", "lower", ".4g"),
    Column("latency_ms_p99", "cost", "lower", ".4g"),
    Column("latency_ms_p50_best", "cost", "lower", ".4g"),
    Column("build_s", "cost", "lower", ".4g"),
)
# How the timings were taken: the queries timed one at a time and the (query, pass)
# samples the percentiles are over, the relative spread of the repeated batch timings
# (max / min - 1), the fraction of -1 ids (ANN lists too short), and the session that
# timed the row (its machine and load: sessions/{session}.json).
TIMING = (
    Column("latency_queries", "timing"),
    Column("latency_samples", "timing"),
    Column("timing_spread", "timing", spec=".3f"),
    Column("missing_ids", "timing", spec=".4f"),
    Column("session", "timing"),
)
STATUS = (Column("status", "status"), Column("error", "status"))
LATENCY = ("latency_ms_p50", "qps")  # the timings a run-to-run comparison gates on
_FIXED = {c.name: c for c in (*KEY, *COST, *TIMING, *STATUS)}


def accuracy(ks: Sequence[int]) -> tuple[Column, ...]:
    """The accuracy columns for cut-offs ``ks``, in leaderboard order: the label metrics,
    then ``knn_recall@k`` (against exact search at the row's final dim)."""
    knn = [f"knn_recall@{k}" for k in sorted(set(ks))]
    return tuple(column(name) for name in (*metric_names(ks), *knn))


def columns(ks: Sequence[int]) -> tuple[Column, ...]:
    """Every leaderboard column, in order."""
    return (*KEY, *accuracy(ks), *COST, *TIMING, *STATUS)


def names(ks: Sequence[int]) -> list[str]:
    return [c.name for c in columns(ks)]


def column(name: str) -> Column:
    """The column called ``name`` (metric columns for any cut-off)."""
    if name in _FIXED:
        return _FIXED[name]
    if name == "top1" or name.split("@")[0] in METRIC_FAMILIES:
        return Column(name, "accuracy", "higher", ".4f")
    raise KeyError(f"no leaderboard column '{name}'")


def _group(name: str) -> str:
    try:
        return column(name).group
    except KeyError:
        return ""


def is_accuracy(name: str) -> bool:
    return _group(name) == "accuracy"


def fmt(value: Any, name: str = "") -> str:
    """A value as the leaderboard shows it in column ``name``."""
    try:
        return column(name).format(value)
    except KeyError:
        return Column(name, "", spec=".4f").format(value)


# ---------------------------------------------------------------------------------- rows
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
    metrics: Mapping[str, float] = field(default_factory=dict)
    mflops_per_query: float | None = None
    mflops_with_selection: float | None = None
    qps: float | None = None
    latency_ms_p50: float | None = None
    latency_ms_p99: float | None = None
    latency_ms_p50_best: float | None = None
    build_s: float | None = None
    latency_queries: int | None = None
    latency_samples: int | None = None
    session: str = ""
    timing_spread: float | None = None
    missing_ids: float | None = None
    status: str = "ok"
    error: str = ""
    neighbors: str = ""  # the neighbours file, relative to the run directory (not a column)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def value(self, name: str) -> Any:
        """The value in column ``name`` (``None`` where missing or NaN)."""
        if name in _FIXED:
            return getattr(self, name)
        value = self.metrics.get(name)
        return None if value is None or math.isnan(value) else value

    def record(self, ks: Sequence[int]) -> dict[str, Any]:
        """The row as leaderboard columns, in order (the files' form)."""
        return {name: self.value(name) for name in names(ks)}

    @classmethod
    def from_record(cls, rec: Mapping[str, Any]) -> Row:
        """A row read back from a leaderboard file (or a resumed cell)."""
        known = {f.name for f in fields(cls)} - {"metrics"}
        values = {k: v for k, v in rec.items() if k in known}
        metrics = {k: float(v) for k, v in rec.items() if is_accuracy(k) and v is not None}
        return cls(**values, metrics=metrics)


# --------------------------------------------------------------------------------- rules
def headline(ks: Sequence[int]) -> str:
    """The metric the views sort by: mAP@10, or mAP at the smallest cut-off."""
    return "mAP@10" if 10 in ks else f"mAP@{min(ks)}"


def single_shot(row: Row) -> bool:
    """A row from one search at one dim, no rerank (flat, in the built-ins)."""
    return row.dims != "" and "," not in row.dims


def pareto(points: Sequence[tuple[float, float]]) -> list[bool]:
    """For (cost, accuracy) points: whether each is on the frontier (no other point is
    at most as costly and strictly more accurate, or cheaper and as accurate)."""
    flags = []
    for cost, acc in points:
        dominated = any((c <= cost and a > acc) or (c < cost and a >= acc) for c, a in points)
        flags.append(not dominated)
    return flags


def frontier(rows: Sequence[Row], metric: str) -> list[bool]:
    """Single-shot rows (one dim, no rerank) on the Pareto frontier of MFLOPs against
    ``metric``, per encoder and backend."""
    flags = [False] * len(rows)
    groups: dict[tuple[str, str], list[int]] = {}
    for i, row in enumerate(rows):
        if row.ok and single_shot(row) and row.value(metric) is not None:
            groups.setdefault((row.encoder, row.backend), []).append(i)
    for members in groups.values():
        pts = [(rows[i].mflops_per_query or 0.0, rows[i].value(metric)) for i in members]
        for i, flag in zip(members, pareto(pts), strict=True):
            flags[i] = flag
    return flags


def cost_order(rows: Sequence[Row]) -> list[int]:
    """Row indices by encoder, backend, then MFLOPs: the cost view's order."""
    return sorted(
        range(len(rows)),
        key=lambda i: (rows[i].encoder, rows[i].backend, rows[i].mflops_per_query or 0.0),
    )


def by_metric(rows: Sequence[Row], metric: str) -> list[Row]:
    """Rows best first by ``metric``; rows without it last."""
    return sorted(rows, key=lambda r: -(r.value(metric) if r.value(metric) is not None else -1))


# --------------------------------------------------------------------------------- views
def accuracy_view(ks: Sequence[int], families: Sequence[str] = ("mAP", "recall")) -> list[str]:
    """The accuracy view's columns: the row's key, top-1 and the metric ``families``."""
    return [
        "encoder",
        "backend",
        "label",
        "top1",
        *(f"{family}@{k}" for family in families for k in ks),
        "status",
    ]


def cost_view(ks: Sequence[int]) -> list[str]:
    """The cost view's columns: the headline metric next to MFLOPs, latency and build."""
    return ["encoder", "backend", "device", "label", headline(ks), *(c.name for c in COST)]


def numeric(name: str) -> bool:
    """Accuracy, cost and timing columns hold numbers (right-aligned in tables)."""
    return _group(name) in ("accuracy", "cost", "timing")
