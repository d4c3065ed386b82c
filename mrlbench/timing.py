"""The timing procedure, in one place: every query at once, best of ``repeats`` runs
(``best_of``); one query at a time over a seeded sample, best of ``repeats`` passes
after one untimed warm-up (``one_at_a_time``). Search stages, the strategies' whole
pipelines (``Context.latencies``) and the reference commands all time through here."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

LATENCY_BUDGET_S = 2.0  # the first one-query-at-a-time pass stops after this long
LATENCY_MIN_QUERIES = 20  # ... but never with fewer queries than this


@dataclass(frozen=True)
class Timed:
    """The best wall-clock of repeated runs and their relative spread (max / min - 1)."""

    seconds: float
    spread: float


class Untimed(Exception):
    """The query at this position of the sample has no single-query timing: every pass
    ends before it (a search stage that stopped its own sample early)."""


def best_of(repeats: int, fn: Callable[[], Any]) -> tuple[Any, Timed]:
    """Run ``fn`` ``repeats`` times (after the caller's warm-up); its last result and
    the best wall-clock seconds with the spread of the repeats."""
    times, result = [], None
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return result, Timed(min(times), relative_spread(times))


def stopwatch(fn: Callable[[], Any]) -> tuple[Any, float]:
    """``fn()`` and the wall-clock seconds it took."""
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def one_at_a_time(
    count: int, time_one: Callable[[int, int], Mapping[str, float]], repeats: int = 3
) -> tuple[dict[str, np.ndarray], float]:
    """Seconds of each label that ``time_one(position, pass)`` reports for one query of
    a sample (``position`` in ``range(count)``) in pass ``pass`` of ``repeats``, after one
    untimed warm-up call ``time_one(0, 0)``: every sample kept, an array (passes,
    queries) per label; and the largest spread (max / min - 1) of the passes' medians.
    The first pass stops early once ``LATENCY_BUDGET_S`` of wall-clock is spent (but not
    before ``LATENCY_MIN_QUERIES``): slow work gets a shorter sample, not a longer run;
    the other passes time the same queries. A position that raises ``Untimed`` ends the
    sample there (nothing at all when it is the first)."""
    if count == 0:
        return {}, 0.0
    try:
        time_one(0, 0)
    except Untimed:
        return {}, 0.0
    passes: list[dict[str, list[float]]] = []
    spent = 0.0
    for round_ in range(max(1, repeats)):
        times: dict[str, list[float]] = {}
        for position in range(count):
            start = time.perf_counter()
            try:
                seconds = time_one(position, round_)
            except Untimed:
                count = position
                break
            spent += time.perf_counter() - start
            for label, value in seconds.items():
                times.setdefault(label, []).append(value)
            if not passes and spent > LATENCY_BUDGET_S and position + 1 >= LATENCY_MIN_QUERIES:
                count = position + 1
                break
        passes.append(times)
    samples = {label: np.array([p[label][:count] for p in passes]) for label in passes[0]}
    spread = max(
        (relative_spread(np.median(s, axis=1)) for s in samples.values() if s.size),
        default=0.0,
    )
    return samples, spread


def percentile_ms(samples: np.ndarray, q: float, least: int = 0) -> float | None:
    """The ``q``-th percentile of every sample, in milliseconds; ``None`` without samples
    or with fewer than ``least`` (a p99 of 20 samples is their maximum, not a p99)."""
    values = np.asarray(samples, dtype=np.float64).ravel()
    if values.size == 0 or values.size < least:
        return None
    return float(1000 * np.percentile(values, q))


def relative_spread(values: Any) -> float:
    """max / min - 1 of positive values (0 when there are none)."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0 or values.min() <= 0:
        return 0.0
    return float(values.max() / values.min() - 1.0)
