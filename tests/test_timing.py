"""The one timing procedure (``mrlbench.timing``): best of the passes per query and
label, the warm-up left out, a sample cut where a query has no timing, the first pass
cut by its budget (the budget set to zero here, so no wall-clock decides the test)."""

from __future__ import annotations

import numpy as np
import pytest

from mrlbench import timing


def recorder(values: dict[int, list[float]], calls: list[int]):
    """A ``time_one`` that reports, for each position, the next of its given seconds."""
    seen: dict[int, int] = {}

    def time_one(position: int) -> dict[str, float]:
        calls.append(position)
        n = seen.get(position, 0)
        seen[position] = n + 1
        return {"a": values[position][n], "b": 2 * values[position][n]}

    return time_one


def test_best_of_passes_per_query_and_label_after_one_warm_up():
    calls: list[int] = []
    values = {0: [9.0, 3.0, 4.0, 5.0], 1: [2.0, 1.0, 6.0], 2: [7.0, 8.0, 0.5]}
    best, spread = timing.one_at_a_time(3, recorder(values, calls), repeats=3)
    assert calls == [0, 0, 1, 2, 0, 1, 2, 0, 1, 2]  # warm-up at 0, then three passes
    np.testing.assert_array_equal(best["a"], [3.0, 1.0, 0.5])  # the warm-up's 9 not counted
    np.testing.assert_array_equal(best["b"], [6.0, 2.0, 1.0])
    medians = [np.median([3.0, 2.0, 7.0]), np.median([4.0, 1.0, 8.0]), np.median([5, 6, 0.5])]
    assert spread == pytest.approx(max(medians) / min(medians) - 1)


def test_an_untimed_query_ends_the_sample_there():
    def time_one(position: int) -> dict[str, float]:
        if position >= 2:
            raise timing.Untimed
        return {"a": 1.0 + position}

    best, _ = timing.one_at_a_time(5, time_one, repeats=2)
    np.testing.assert_array_equal(best["a"], [1.0, 2.0])

    def never(position: int) -> dict[str, float]:
        raise timing.Untimed

    assert timing.one_at_a_time(5, never) == ({}, 0.0)
    assert timing.one_at_a_time(0, never) == ({}, 0.0)


def test_the_first_pass_stops_at_its_budget_and_the_others_time_the_same_queries(monkeypatch):
    monkeypatch.setattr(timing, "LATENCY_BUDGET_S", 0.0)
    monkeypatch.setattr(timing, "LATENCY_MIN_QUERIES", 3)
    calls: list[int] = []
    best, _ = timing.one_at_a_time(10, lambda p: calls.append(p) or {"a": 1.0}, repeats=2)
    assert len(best["a"]) == 3 and calls == [0, 0, 1, 2, 0, 1, 2]


def test_best_of_keeps_the_last_result_and_the_best_time():
    results = iter([1, 2, 3])
    result, timed = timing.best_of(3, lambda: next(results))
    assert result == 3 and timed.seconds >= 0 and timed.spread >= 0
    assert timing.relative_spread([2.0, 3.0]) == pytest.approx(0.5)
    assert timing.relative_spread([]) == 0.0
