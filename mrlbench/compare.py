"""Comparing two runs: every shared row, the change in each accuracy column and in
latency, and which changes are regressions beyond a threshold (each column's direction
comes from the leaderboard's column table)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mrlbench import leaderboard as lb
from mrlbench.leaderboard import Row

KEY = ("encoder", "backend", "label")


@dataclass(frozen=True)
class Change:
    key: tuple[str, str, str]
    column: str
    before: float
    after: float

    @property
    def percent(self) -> float:
        """Relative change in percent (0 when both are 0)."""
        if self.before == 0:
            return 0.0 if self.after == 0 else float("inf")
        return 100.0 * (self.after - self.before) / abs(self.before)

    def regressed(self, threshold: float) -> bool:
        """Worse, in the column's direction, by more than ``threshold`` percent."""
        return lb.column(self.column).worsened(self.percent, threshold)

    def text(self) -> str:
        """The change as shown: percent for costs, the difference for accuracy."""
        if lb.column(self.column).group == "cost":
            return f"{self.percent:+.1f}%"
        return f"{self.after - self.before:+.4f}"


def columns(rows: Sequence[Row]) -> list[str]:
    """Accuracy columns present (with a value in some row), in leaderboard order, then
    latency."""
    present = {name for row in rows for name in row.metrics}
    every = [c.name for c in lb.accuracy(sorted(_cutoffs(present)))]
    return [*(c for c in every if c in present), lb.LATENCY]


def _cutoffs(names: set[str]) -> set[int]:
    return {int(n.split("@")[1]) for n in names if "@" in n}


def changes(before: Sequence[Row], after: Sequence[Row]) -> list[Change]:
    """A change for every (shared ok row, shared column with values on both sides)."""
    a = {_key(r): r for r in before if r.ok}
    b = {_key(r): r for r in after if r.ok}
    shared_cols = [c for c in columns(before) if c in set(columns(after))]
    out = []
    for key in [k for k in a if k in b]:
        for col in shared_cols:
            x, y = a[key].value(col), b[key].value(col)
            if x is not None and y is not None:
                out.append(Change(key, col, float(x), float(y)))
    return out


def regressions(found: Sequence[Change], threshold: float | None) -> list[Change]:
    """The changes that are worse than ``threshold`` percent (none without one)."""
    if threshold is None:
        return []
    return [ch for ch in found if ch.regressed(threshold)]


def _key(row: Row) -> tuple[str, str, str]:
    return (row.encoder, row.backend, row.label)
