"""Leaderboards: CSV, JSON and Markdown files, and the two rich tables of the terminal."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from mrlbench import metrics
from mrlbench.store import write_json, write_text

FIXED = ["encoder", "dataset", "backend", "device", "strategy", "label", "dims", "shortlists"]
TAIL = ["mflops_per_query", "latency_ms_per_query", "qps", "build_s", "status", "error"]


def columns(ks: Sequence[int]) -> list[str]:
    return FIXED + metrics.metric_names(ks) + TAIL


def cost_columns(ks: Sequence[int]) -> list[str]:
    """The cost view: the headline metric next to MFLOPs, latency and build time."""
    return [
        "encoder",
        "backend",
        "device",
        "label",
        headline(ks),
        "mflops_per_query",
        "latency_ms_per_query",
        "qps",
        "build_s",
    ]


def single_shot(rec: dict[str, Any]) -> bool:
    """A row from one search at one dim, no rerank (flat, in the built-ins)."""
    return rec["dims"] != "" and "," not in rec["dims"]


def cost_order(records: Sequence[dict[str, Any]]) -> list[int]:
    """Row indices by encoder, backend, then MFLOPs: the cost view's order."""
    return sorted(
        range(len(records)),
        key=lambda i: (
            records[i]["encoder"],
            records[i]["backend"],
            records[i]["mflops_per_query"] or 0.0,
        ),
    )


def headline(ks: Sequence[int]) -> str:
    """The metric the views sort by: mAP@10, or mAP at the smallest cut-off."""
    return "mAP@10" if 10 in ks else f"mAP@{min(ks)}"


def pareto(points: Sequence[tuple[float, float]]) -> list[bool]:
    """For (cost, accuracy) points: whether each is on the frontier (no other point is
    at most as costly and strictly more accurate, or cheaper and as accurate)."""
    flags = []
    for cost, acc in points:
        dominated = any((c <= cost and a > acc) or (c < cost and a >= acc) for c, a in points)
        flags.append(not dominated)
    return flags


def frontier(records: Sequence[dict[str, Any]], metric: str) -> list[bool]:
    """Single-shot rows (one dim, no rerank) on the Pareto frontier, per encoder and backend."""
    flags = [False] * len(records)
    groups: dict[tuple[str, str], list[int]] = {}
    for i, rec in enumerate(records):
        if rec["status"] == "ok" and single_shot(rec) and rec.get(metric) is not None:
            groups.setdefault((rec["encoder"], rec["backend"]), []).append(i)
    for members in groups.values():
        pts = [(records[i]["mflops_per_query"], records[i][metric]) for i in members]
        for i, flag in zip(members, pareto(pts), strict=True):
            flags[i] = flag
    return flags


def cell(value: Any, key: str = "") -> str:
    """A value for a rich table (markup escaped)."""
    return escape(fmt(value, key))


def fmt(value: Any, key: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        if key in ("mflops_per_query", "latency_ms_per_query", "qps", "build_s"):
            return f"{value:.4g}"
        return f"{value:.4f}"
    return str(value)


def write(out: Path, records: list[dict[str, Any]], ks: Sequence[int]) -> None:
    """``leaderboard.csv``, ``leaderboard.json`` and ``leaderboard.md`` in ``out``."""
    cols = columns(ks)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    write_text(out / "leaderboard.csv", buf.getvalue())
    write_json(out / "leaderboard.json", records)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for rec in records:
        cells = [fmt(rec.get(c), c).replace("|", "\\|") for c in cols]
        lines.append("| " + " | ".join(cells) + " |")
    write_text(out / "leaderboard.md", "\n".join(lines) + "\n")


def _sorted(records: list[dict[str, Any]], metric: str) -> list[dict[str, Any]]:
    return sorted(records, key=lambda r: -(r.get(metric) if r.get(metric) is not None else -1))


def accuracy_table(records: list[dict[str, Any]], ks: Sequence[int]) -> Table:
    metric = headline(ks)
    table = Table(title=f"Accuracy (sorted by {metric})")
    shown = [
        "encoder",
        "backend",
        "label",
        "top1",
        *(f"mAP@{k}" for k in ks),
        *(f"recall@{k}" for k in ks),
        "status",
    ]
    for col in shown:
        table.add_column(col, justify="right" if col not in [*FIXED, "status"] else "left")
    for rec in _sorted(records, metric):
        table.add_row(*(cell(rec.get(c), c) for c in shown))
    return table


def cost_table(records: list[dict[str, Any]], ks: Sequence[int]) -> Table:
    metric = headline(ks)
    table = Table(title=f"Cost ({metric} against MFLOPs/query and latency; * = flat Pareto)")
    shown = cost_columns(ks)
    for col in [*shown, "pareto"]:
        table.add_column(col, justify="left" if col in FIXED else "right")
    flags = frontier(records, metric)
    order = cost_order(records)
    for i in order:
        rec = records[i]
        table.add_row(*(cell(rec.get(c), c) for c in shown), "*" if flags[i] else "")
    return table


def show(console: Console, records: list[dict[str, Any]], ks: Sequence[int]) -> None:
    console.print(accuracy_table(records, ks))
    console.print(cost_table(records, ks))
    failed = [r for r in records if r["status"] != "ok"]
    for rec in failed:
        console.print(
            f"[bold red]{rec['status']}[/]: {rec['encoder']} / {rec['backend']} / "
            f"{escape(rec['label'])}: {escape(rec['error'])}",
            highlight=False,
        )
