"""Comparing two runs: every shared row, the change in each accuracy column and in the
timings, and which changes are regressions. Accuracy and time are separate gates: an
accuracy that drops by more than a threshold, and a timing (median latency, throughput)
that worsens by more than a tolerance plus the noise both runs recorded (their timing
spreads), so that two runs of the same config compare clean. Each column's direction
comes from the leaderboard's column table."""

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
    noise: float = 0.0  # percent of change the runs' own timing spread explains

    @property
    def percent(self) -> float:
        """Relative change in percent (0 when both are 0)."""
        if self.before == 0:
            return 0.0 if self.after == 0 else float("inf")
        return 100.0 * (self.after - self.before) / abs(self.before)

    @property
    def timing(self) -> bool:
        return lb.column(self.column).group == "cost"

    def regressed(self, threshold: float) -> bool:
        """Worse, in the column's direction, by more than ``threshold`` percent (plus the
        recorded noise, for timings)."""
        return lb.column(self.column).worsened(self.percent, threshold + self.noise)

    def text(self) -> str:
        """The change as shown: percent for timings, the difference for accuracy."""
        if self.timing:
            return f"{self.percent:+.1f}%"
        return f"{self.after - self.before:+.4f}"

    def describe(self) -> str:
        """One line naming the row, the column and both values."""
        where = " / ".join(self.key)
        noise = f", noise allowance {self.noise:.0f}%" if self.noise else ""
        return (
            f"{where}: {self.column} {lb.fmt(self.before, self.column)} -> "
            f"{lb.fmt(self.after, self.column)} ({self.percent:+.1f}%{noise})"
        )


def columns(rows: Sequence[Row]) -> list[str]:
    """Accuracy columns present (with a value in some row), in leaderboard order, then
    the gated timings."""
    present = {name for row in rows for name in row.metrics}
    every = [c.name for c in lb.accuracy(sorted(_cutoffs(present)))]
    return [*(c for c in every if c in present), *lb.LATENCY]


def headline(names: Sequence[str]) -> str:
    """The headline metric among accuracy columns ``names`` (mAP@10 when there)."""
    return lb.headline(sorted(_cutoffs(set(names))) or [10])


def _cutoffs(names: set[str]) -> set[int]:
    return {int(n.split("@")[1]) for n in names if "@" in n}


def changes(before: Sequence[Row], after: Sequence[Row]) -> list[Change]:
    """A change for every (shared ok row, shared column with values on both sides)."""
    a = {_key(r): r for r in before if r.ok}
    b = {_key(r): r for r in after if r.ok}
    shared_cols = [c for c in columns(before) if c in set(columns(after))]
    out = []
    for key in [k for k in a if k in b]:
        noise = 100.0 * ((a[key].timing_spread or 0.0) + (b[key].timing_spread or 0.0))
        for col in shared_cols:
            x, y = a[key].value(col), b[key].value(col)
            if x is not None and y is not None:
                timing = lb.column(col).group == "cost"
                out.append(Change(key, col, float(x), float(y), noise if timing else 0.0))
    return out


def regressions(
    found: Sequence[Change], accuracy: float | None, latency: float | None
) -> list[Change]:
    """Accuracy changes worse than ``accuracy`` percent and timing changes worse than
    ``latency`` percent plus their noise (a gate left ``None`` is off)."""
    out = []
    for ch in found:
        threshold = latency if ch.timing else accuracy
        if threshold is not None and ch.regressed(threshold):
            out.append(ch)
    return out


def _key(row: Row) -> tuple[str, str, str]:
    return (row.encoder, row.backend, row.label)
