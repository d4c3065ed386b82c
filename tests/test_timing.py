"""The one timing procedure (``mrlbench.timing``): every (query, pass) sample per label,
the warm-up left out, a sample cut where a query has no timing, the first pass cut by
its budget (the budget set to zero here, so no wall-clock decides the test), and the
percentiles over every sample (a p99 left blank below its least sample count)."""

from __future__ import annotations

import numpy as np
import pytest

from mrlbench import timing


def recorder(values: dict[int, list[float]], calls: list[int]):
    """A ``time_one`` that reports, for each position, the next of its given seconds."""
    seen: dict[int, int] = {}

    def time_one(position: int, round_: int) -> dict[str, float]:
        calls.append(position)
        n = seen.get(position, 0)
        seen[position] = n + 1
        return {"a": values[position][n], "b": 2 * values[position][n]}

    return time_one


def test_every_sample_per_pass_query_and_label_after_one_warm_up():
    calls: list[int] = []
    values = {0: [9.0, 3.0, 4.0, 5.0], 1: [2.0, 1.0, 6.0], 2: [7.0, 8.0, 0.5]}
    samples, spread = timing.one_at_a_time(3, recorder(values, calls), repeats=3)
    assert calls == [0, 0, 1, 2, 0, 1, 2, 0, 1, 2]  # warm-up at 0, then three passes
    want = [[3.0, 2.0, 7.0], [4.0, 1.0, 8.0], [5.0, 6.0, 0.5]]  # the warm-up's 9 left out
    np.testing.assert_array_equal(samples["a"], want)  # (passes, queries)
    np.testing.assert_array_equal(samples["b"], 2 * np.array(want))
    medians = [np.median([3.0, 2.0, 7.0]), np.median([4.0, 1.0, 8.0]), np.median([5, 6, 0.5])]
    assert spread == pytest.approx(max(medians) / min(medians) - 1)


def test_an_untimed_query_ends_the_sample_there():
    def time_one(position: int, round_: int) -> dict[str, float]:
        if position >= 2:
            raise timing.Untimed
        return {"a": 1.0 + position}

    samples, _ = timing.one_at_a_time(5, time_one, repeats=2)
    np.testing.assert_array_equal(samples["a"], [[1.0, 2.0], [1.0, 2.0]])

    def never(position: int, round_: int) -> dict[str, float]:
        raise timing.Untimed

    assert timing.one_at_a_time(5, never) == ({}, 0.0)
    assert timing.one_at_a_time(0, never) == ({}, 0.0)


def test_the_first_pass_stops_at_its_budget_and_the_others_time_the_same_queries(monkeypatch):
    monkeypatch.setattr(timing, "LATENCY_BUDGET_S", 0.0)
    monkeypatch.setattr(timing, "LATENCY_MIN_QUERIES", 3)
    calls: list[int] = []
    samples, _ = timing.one_at_a_time(10, lambda p, r: calls.append(p) or {"a": 1.0}, repeats=2)
    assert samples["a"].shape == (2, 3) and calls == [0, 0, 1, 2, 0, 1, 2]


def test_best_of_keeps_the_last_result_and_the_best_time():
    results = iter([1, 2, 3])
    result, timed = timing.best_of(3, lambda: next(results))
    assert result == 3 and timed.seconds >= 0 and timed.spread >= 0
    assert timing.relative_spread([2.0, 3.0]) == pytest.approx(0.5)
    assert timing.relative_spread([]) == 0.0


def test_percentiles_are_over_every_sample_and_a_p99_needs_its_samples():
    samples = np.array([[1.0, 2.0, 3.0], [10.0, 20.0, 30.0]])  # (passes, queries), seconds
    assert timing.percentile_ms(samples, 50) == pytest.approx(1000 * np.median(samples))
    assert timing.percentile_ms(samples, 99, least=100) is None  # 6 samples: no p99
    many = np.arange(1.0, 201.0).reshape(2, 100)
    assert timing.percentile_ms(many, 99, least=100) == pytest.approx(
        1000 * np.percentile(many, 99)
    )
    assert timing.percentile_ms(np.zeros((0, 0)), 50) is None


RUN = """
[run]
ks = [10]
repeats = 3
latency_queries = {latency}

[[encoders]]
plugin = "synthetic"
n_database = 2000
n_queries = 100
dim = 32

[[backends]]
plugin = "faiss-exact"

[[strategies]]
plugin = "flat"
dims = [16]

[[strategies]]
plugin = "adaptive"
shortlist_dim = 16
rerank_dim = 32
shortlist = 50
"""


def test_rows_time_every_sample_and_keep_the_session_that_timed_them(cli, tmp_path):
    import json

    cfg = tmp_path / "run.toml"
    cfg.write_text(RUN.format(latency=40))
    out = tmp_path / "out"
    assert cli("run", cfg, "--out", out).code == 0
    first = json.loads((out / "env.json").read_text())["session"]
    rows = json.loads((out / "leaderboard.json").read_text())
    for row in rows:  # 40 queries x 3 passes: 120 samples, enough for a p99
        assert row["latency_queries"] == 40 and row["latency_samples"] == 120
        assert 0 < row["latency_ms_p50_best"] <= row["latency_ms_p50"] <= row["latency_ms_p99"]
        assert row["session"] == first
    assert (out / "sessions" / f"{first}.json").is_file()
    assert cli("run", cfg, "--out", out).code == 0  # resumed: the rows keep their session
    again = json.loads((out / "env.json").read_text())["session"]
    assert again != first and (out / "sessions" / f"{again}.json").is_file()
    assert {r["session"] for r in json.loads((out / "leaderboard.json").read_text())} == {first}
    env = json.loads((out / "sessions" / f"{again}.json").read_text())
    assert env["cpu_model"] and env["load_average"] is not None and env["blas"]

    cfg.write_text(RUN.format(latency=20))  # 60 samples: p50 kept, p99 left blank
    short = tmp_path / "short"
    assert cli("run", cfg, "--out", short).code == 0
    for row in json.loads((short / "leaderboard.json").read_text()):
        assert row["latency_samples"] == 60 and row["latency_ms_p99"] is None
        assert row["latency_ms_p50"] > 0
