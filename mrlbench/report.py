"""Leaderboard views for files and the terminal: ``leaderboard.csv``, ``.json`` and
``.md``, and the two rich tables (accuracy, cost). Columns and rules come from
``mrlbench.leaderboard``."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from mrlbench import leaderboard as lb
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


def _table(title: str, cols: Sequence[str]) -> Table:
    table = Table(title=title)
    for col in cols:
        table.add_column(col, justify="right" if lb.numeric(col) else "left")
    return table


def _cells(row: Row, cols: Sequence[str]) -> list[str]:
    return [escape(lb.fmt(row.value(c), c)) for c in cols]


def accuracy_table(rows: Sequence[Row], ks: Sequence[int]) -> Table:
    metric = lb.headline(ks)
    cols = lb.accuracy_view(ks)
    table = _table(f"Accuracy (sorted by {metric})", cols)
    for row in lb.by_metric(rows, metric):
        table.add_row(*_cells(row, cols))
    return table


def cost_table(rows: Sequence[Row], ks: Sequence[int]) -> Table:
    metric = lb.headline(ks)
    cols = lb.cost_view(ks)
    table = _table(f"Cost ({metric} against MFLOPs/query and latency; * = flat Pareto)", cols)
    table.add_column("pareto", justify="right")
    flags = lb.frontier(rows, metric)
    for i in lb.cost_order(rows):
        table.add_row(*_cells(rows[i], cols), "*" if flags[i] else "")
    return table


def show(console: Console, rows: Sequence[Row], ks: Sequence[int]) -> None:
    console.print(accuracy_table(rows, ks))
    console.print(cost_table(rows, ks))
    for row in rows:
        if not row.ok:
            console.print(
                f"[bold red]{row.status}[/]: {row.encoder} / {row.backend} / "
                f"{escape(row.label)}: {escape(row.error)}",
                highlight=False,
            )
