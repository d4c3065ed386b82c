"""Comparing two runs: every shared row, the change in each metric and in latency, and
which changes are regressions beyond a threshold."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mrlbench.errors import DataError

KEY = ("encoder", "backend", "label")
LATENCY = "latency_ms_per_query"
ACCURACY_PREFIXES = ("top1", "mAP@", "precision@", "recall@", "topk_acc@")


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
        """An accuracy that dropped, or a latency that grew, by more than ``threshold`` %."""
        if self.column == LATENCY:
            return self.percent > threshold
        return self.percent < -threshold


def load_board(run: str | Path) -> list[dict[str, Any]]:
    path = Path(run) / "leaderboard.json"
    if not path.is_file():
        raise DataError(f"no leaderboard in {run} (expected {path})")
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from None


def columns(records: Sequence[dict[str, Any]]) -> list[str]:
    """Accuracy columns present, in leaderboard order, then latency."""
    if not records:
        return []
    cols = [c for c in records[0] if c.startswith(ACCURACY_PREFIXES)]
    return [*cols, LATENCY]


def changes(before: Sequence[dict[str, Any]], after: Sequence[dict[str, Any]]) -> list[Change]:
    """A change for every (shared ok row, shared column with values on both sides)."""
    a = {tuple(r[k] for k in KEY): r for r in before if r["status"] == "ok"}
    b = {tuple(r[k] for k in KEY): r for r in after if r["status"] == "ok"}
    shared_cols = [c for c in columns(before) if c in set(columns(after))]
    out = []
    for key in [k for k in a if k in b]:
        for col in shared_cols:
            x, y = a[key].get(col), b[key].get(col)
            if x is not None and y is not None:
                out.append(Change(key, col, float(x), float(y)))  # type: ignore[arg-type]
    return out
