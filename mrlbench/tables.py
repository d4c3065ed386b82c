"""Leaderboard views for files and the terminal: ``leaderboard.csv``, ``.json`` and
``.md``, and the terminal's rich tables (accuracy, cost, two runs compared), fitted to
its width. Columns and rules come from ``mrlbench.leaderboard``."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from mrlbench import compare
from mrlbench import leaderboard as lb
from mrlbench.compare import Change
from mrlbench.console import Col, fitted_table, print_table
from mrlbench.leaderboard import Row
from mrlbench.store import write_json, write_text


def write(out: Path, rows: Sequence[Row], ks: Sequence[int]) -> None:
    """``leaderboard.csv``, ``leaderboard.json`` and ``leaderboard.md`` in ``out``."""
    cols = lb.names(ks)
    records = [row.record(ks) for row in rows]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    write_text(out / "leaderboard.csv", buf.getvalue())
    write_json(out / "leaderboard.json", records)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for rec in records:
        cells = [lb.fmt(rec[c], c).replace("|", "\\|") for c in cols]
        lines.append("| " + " | ".join(cells) + " |")
    write_text(out / "leaderboard.md", "\n".join(lines) + "\n")


# Terminal tables: which columns give way first when a table does not fit its width (0:
# never; higher: sooner). The row's key stays; then the headline metric, top-1 and cost.
KEY_COLUMNS = ("encoder", "backend", "label")
COST_PRIORITY = {
    "mflops_per_query": 1,
    "latency_ms_p50": 2,
    "qps": 3,
    "pareto": 4,
    "latency_ms_p99": 5,
    "latency_ms_p50_best": 6,
    "build_s": 7,
    "device": 8,
    "mflops_with_selection": 9,
}


def priority(name: str, ks: Sequence[int]) -> int:
    """How soon column ``name`` gives way in a terminal table that does not fit: the
    row's key never; then (last to go first) the headline metric, top-1, the cost
    columns (``COST_PRIORITY``), the other mAP cut-offs, ``status``, the other metric
    families; larger cut-offs before smaller ones."""
    if name in KEY_COLUMNS:
        return 0
    if name == lb.headline(ks):
        return 1
    if name == "top1":
        return 2
    if name in COST_PRIORITY:
        return COST_PRIORITY[name]
    if name == "status":
        return 30
    family, _, cut = name.partition("@")
    position = sorted(ks).index(int(cut)) if cut.isdigit() and int(cut) in ks else len(ks)
    if family == "mAP":
        return 10 + position
    if family in lb.METRIC_FAMILIES:
        return 40 + 10 * lb.METRIC_FAMILIES.index(family) + position
    return 100


def _columns(names: Sequence[str], ks: Sequence[int]) -> list[Col]:
    return [Col(n, lb.numeric(n), priority(n, ks)) for n in names]


def _cells(row: Row, cols: Sequence[str]) -> list[str]:
    return [lb.fmt(row.value(c), c) for c in cols]


def accuracy_table(rows: Sequence[Row], ks: Sequence[int], width: int | None = None) -> Table:
    """Top-1 and the mAP and recall cut-offs of every row, best first by the headline
    metric; fitted to ``width`` (``None``: every column)."""
    metric = lb.headline(ks)
    cols = lb.accuracy_view(ks)
    body = [_cells(row, cols) for row in lb.by_metric(rows, metric)]
    return fitted_table(f"Accuracy (sorted by {metric})", _columns(cols, ks), body, width)


def cost_table(rows: Sequence[Row], ks: Sequence[int], width: int | None = None) -> Table:
    """The headline metric against MFLOPs per query, latency and build time, by encoder,
    backend and cost, with the flat rows on the Pareto frontier starred; fitted to
    ``width`` (``None``: every column)."""
    metric = lb.headline(ks)
    cols = [*lb.cost_view(ks), "pareto"]
    flags = lb.frontier(rows, metric)
    body = [[*_cells(rows[i], cols[:-1]), "*" if flags[i] else ""] for i in lb.cost_order(rows)]
    title = f"Cost ({metric} against MFLOPs/query and latency; * = flat Pareto)"
    return fitted_table(title, _columns(cols, ks), body, width)


def compare_table(
    title: str,
    changes: Sequence[Change],
    cols: Sequence[str],
    bad: Sequence[Change],
    width: int | None = None,
) -> Table:
    """One row per shared (encoder, backend, label), the change in each column of
    ``cols``; regressions (``bad``) in bold red; fitted to ``width`` (``None``: every
    column)."""
    by_key: dict[tuple[str, ...], dict[str, Change]] = {}
    for ch in changes:
        by_key.setdefault(ch.key, {})[ch.column] = ch
    ks = sorted({int(c.split("@")[1]) for c in cols if "@" in c}) or [10]
    body: list[list[str | Text]] = []
    for key, found in by_key.items():
        cells: list[str | Text] = list(key)
        for col in cols:
            change = found.get(col)
            text = "" if change is None else change.text()
            cells.append(Text(text, style="bold red") if change in bad else text)
        body.append(cells)
    names = [*compare.KEY, *cols]
    latency = {"latency_ms_p50": 3, "qps": 4}
    spec = [Col(n, n not in compare.KEY, latency.get(n, priority(n, ks))) for n in names]
    return fitted_table(title, spec, body, width)


def show(console: Console, rows: Sequence[Row], ks: Sequence[int], wide: bool = False) -> None:
    """The accuracy and cost tables, fitted to the console (``wide``: every column, at
    full width), then one line per row that failed or was skipped."""
    width = None if wide else console.width
    print_table(console, accuracy_table(rows, ks, width))
    print_table(console, cost_table(rows, ks, width))
    for row in rows:
        if not row.ok:
            console.print(
                f"[bold red]{row.status}[/]: {row.encoder} / {row.backend} / "
                f"{escape(row.label)}: {escape(row.error)}",
                highlight=False,
            )
