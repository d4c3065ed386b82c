"""``mrlbench tune``: the candidate settings and their cost-model MFLOPs (against the
runner's own accounting), budget pruning, the front, and the files it writes."""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
from conftest import brute_force

from mrlbench import tune
from mrlbench.errors import ConfigError, DataError
from mrlbench.leaderboard import Row
from mrlbench.plugins import Registry
from mrlbench.tune_space import TuneCandidate, TuneSpace
from mrlbench.types import Strategy

CONFIG = """
[run]
out = "{out}"
ks = [10, 25]
repeats = 1
latency_queries = 20

[[encoders]]
plugin = "arrays"
name = "mrl"
path = "{path}"
config = "mrl1_e0_ff64"
dims = [8, 16, 32, 64]

[[backends]]
plugin = "faiss-exact"

[[strategies]]
plugin = "funnel"                 # the hand-picked setting tune is held against
shortlist_dim = 8
rerank_dims = [16, 32, 64]
shortlists = [100, 50, 25]
"""


def test_candidates_cover_adaptive_and_funnel_settings_with_the_cost_model():
    found = tune.candidates([8, 16, 32, 64, 128, 256], 60000, final=10)
    assert len(found) >= 100 and len(tune.prune(found, None, 15.36)) <= tune.MAX_CANDIDATES
    assert "funnel 8->16,32,64,128,256 @200,100,50,25,10" in [c.name for c in found]
    names = [c.name for c in found]
    assert len(set(names)) == len(names)
    by_name = {c.name: c for c in found}
    # DESIGN.md's cost model by hand: N * d for the search, s * d per rerank stage
    assert by_name["adaptive 8->256 @200"].mflops == pytest.approx((60000 * 8 + 200 * 256) / 1e6)
    assert by_name["funnel 8->16,32,64,256 @200,100,50,25"].mflops == pytest.approx(
        (60000 * 8 + 200 * 16 + 100 * 32 + 50 * 64 + 25 * 256) / 1e6
    )
    for c in found:
        sizes = c.table.get("shortlists", [c.table.get("shortlist")])
        assert min(sizes) >= 10 and sizes == sorted(sizes, reverse=True)
    # an ANN backend: the search's cost is unknown before it runs, the reranks bound it
    ann = {c.name: c for c in tune.candidates([8, 16, 256], 60000, final=10, exact=False)}
    assert ann["adaptive 8->256 @200"].mflops == pytest.approx(200 * 256 / 1e6)


def test_prune_keeps_the_budget_and_caps_the_count_deterministically():
    found = tune.candidates([8, 16, 32, 64, 128, 256, 512, 1024, 2048], 1281167, final=10)
    kept = tune.prune(found, 20.0, ceiling_mflops=1281167 * 2048 / 1e6)
    assert kept and all(c.mflops <= 20.0 for c in kept)
    assert len(kept) <= tune.MAX_CANDIDATES
    assert kept == tune.prune(found, 20.0, ceiling_mflops=0)  # seeded
    everything = tune.prune(found, None, ceiling_mflops=1281167 * 2048 / 1e6)
    assert all(c.table["plugin"] == "adaptive" for c in everything[:10])


def test_best_is_the_most_accurate_within_budget():
    def row(name, acc, mflops, ms):
        return Row(
            "e",
            "d",
            "b",
            "CPU",
            name,
            name,
            "8,64",
            metrics={"mAP@10": acc},
            mflops_per_query=mflops,
            latency_ms_p50=ms,
        )

    rows = [row("a", 0.5, 1.0, 1.0), row("b", 0.7, 3.0, 0.5), row("c", 0.6, 2.0, 2.0)]
    assert tune.best(rows, {"a", "b", "c"}, "mAP@10", 2.5, None).strategy == "c"
    assert tune.best(rows, {"a", "b", "c"}, "mAP@10", None, 1.5).strategy == "b"
    assert tune.best(rows, {"a"}, "mAP@10", 0.5, None) is None
    assert tune.fronts(rows, "mAP@10") == {"a", "b", "c"}  # each wins on one axis


def test_tune_end_to_end(cli, arrays, tmp_path):
    config = tmp_path / "tune.toml"
    out = tmp_path / "run"
    config.write_text(CONFIG.format(out=out, path=arrays.folder))
    r = cli("tune", config, "--budget-mflops", "0.04", "--sample", "100")
    assert r.code == 0, r.err
    assert "best within budget" in r.out
    with open(out / "tune.csv") as f:
        tried = list(csv.DictReader(f))
    expected = tune.prune(tune.candidates([8, 16, 32, 64], 3000, 10), 0.04, 0)
    assert [t["strategy"] for t in tried] == [c.name for c in expected]
    # the runner's measured MFLOPs equal the cost model the candidates were pruned with
    for t in tried:
        assert float(t["sample_mflops_per_query"]) == pytest.approx(float(t["model_mflops"]))
    best = tomllib.loads((out / "best.toml").read_text())["strategies"][0]
    front = [t for t in tried if t["front"] == "yes"]
    # chosen on the selection split (the sample_* columns), not on the reported figures
    within = [t for t in front if float(t["sample_mflops_per_query"]) <= 0.04]
    top = max(within, key=lambda t: float(t["sample_mAP@10"]))
    assert best["name"] == top["strategy"]
    assert (out / "pareto.png").stat().st_size > 10_000
    # the hand-picked funnel ran on every query next to the front
    with open(out / "tune" / "front" / "leaderboard.csv") as f:
        own = [row for row in csv.DictReader(f) if row["strategy"] == "funnel"]
    assert len(own) == 1 and own[0]["status"] == "ok"
    # resumable: a rerun reuses every finished cell
    again = cli("tune", config, "--budget-mflops", "0.04", "--sample", "100")
    assert again.code == 0 and (out / "best.toml").read_text().startswith("# mrlbench tune")


def test_tune_needs_a_budget(cli, arrays, tmp_path):
    config = tmp_path / "tune.toml"
    config.write_text(CONFIG.format(out=tmp_path / "run", path=arrays.folder))
    r = cli("tune", config)
    assert r.code == 2 and "--budget-mflops" in r.err


def _digest(found) -> tuple[int, str]:
    """How many settings and a digest of the set: name, table and exact MFLOPs of each."""
    lines = sorted(f"{c.name}|{json.dumps(c.table, sort_keys=True)}|{c.mflops!r}" for c in found)
    return len(lines), hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]


def test_builtin_candidates_are_those_the_tuner_had_before_strategies_offered_them():
    # by hand: dims 8, 64, 256 over 100 vectors; 8 is the only shortlist dim (64 * 8 > 256),
    # shortlists 10, 25, 50, 100; the search costs 100 * 8; funnels 8 -> 64, 256 shrink
    # by 2 or 4 (or end at 10), a stage never keeping all of the one before
    found = {c.name: c for c in tune.candidates([8, 64, 256], 100, final=10)}
    search = 100 * 8
    expected = {
        f"adaptive 8->{d} @{s}": search + s * d for d in (64, 256) for s in (10, 25, 50, 100)
    }
    for a, b in [(25, 12), (25, 10), (50, 25), (50, 12), (50, 10), (100, 50), (100, 25), (100, 10)]:
        expected[f"funnel 8->64,256 @{a},{b}"] = search + a * 64 + b * 256
    assert found.keys() == expected.keys()
    for name, flops in expected.items():
        assert found[name].mflops == pytest.approx(flops / 1e6, rel=1e-12)
    assert found["funnel 8->64,256 @50,12"].table == {
        "plugin": "funnel",
        "name": "funnel 8->64,256 @50,12",
        "shortlist_dim": 8,
        "rerank_dims": [64, 256],
        "shortlists": [50, 12],
    }
    assert {c.role for c in found.values() if c.table["plugin"] == "adaptive"} == {"kept"}
    # without a budget the flat search at 256 dims (100 * 256) is the ceiling
    assert [
        c.name for c in found.values() if c not in tune.prune(found.values(), None, 0.0256)
    ] == ["adaptive 8->256 @100"]
    # the whole sets (names, tables, exact MFLOPs) the tuner produced before strategies
    # offered their candidates, and what its pruning and seeded cap kept of them
    assert _digest(tune.candidates([8, 16, 32, 64], 3000, 10)) == (74, "255a160595c8d863")
    ann = tune.candidates([8, 16, 32, 64, 128, 256], 60000, 10, exact=False)
    assert _digest(ann) == (500, "f5a7f021aaa9167e")
    assert _digest(tune.prune(ann, 0.04, 60000 * 256 / 1e6)) == (361, "e826d93162c7ebe7")
    assert _digest(tune.prune(ann, None, 60000 * 256 / 1e6)) == (400, "6b85cd0b018d5e0a")
    big = tune.candidates([8, 16, 32, 64, 128, 256, 512, 1024, 2048], 1281167, 10)
    assert _digest(big) == (2889, "76a4b6922438018c")
    assert _digest(tune.prune(big, 20.0, 1281167 * 2048 / 1e6)) == (400, "7ff45a5638565479")


def test_the_reference_is_offered_by_a_strategy_not_named_by_tune():
    space = TuneSpace((64, 8, 16, 16), 3000, 10, exact=False)
    assert space.dims == (8, 16, 64)
    references = [c for c in tune.offers(space) if c.role == "reference"]
    # flat's own (a test's plugin folder may have registered a subclass offering its own)
    (flat,) = [c for c in references if c.table == {"plugin": "flat"}]
    assert flat.name == "flat"
    assert flat.mflops == pytest.approx(3000 * 64 / 1e6)  # on exact search
    assert all(c.role != "reference" for c in tune.candidates([8, 16, 64], 3000, 10))
    source = Path(tune.__file__).read_text()
    for plugin in ("flat", "adaptive", "funnel"):
        assert plugin not in source


class _Silent(Strategy):
    """A strategy that keeps the base class's default: nothing to tune."""

    name = "silent"

    def searches(self, dims, n_database):
        return []

    def run(self, ctx):
        return []


class _Offers(_Silent):
    name = "offers"

    @classmethod
    def tune_candidates(cls, space):
        return [TuneCandidate({"plugin": cls.name, "name": "same"}, 0.0)]


class _AlsoOffers(_Offers):
    name = "also-offers"


def test_offers_asks_every_strategy_and_names_must_be_unique():
    reg = Registry()
    reg.register("strategy", "pkg")(_Offers)
    reg.register("strategy", "pkg")(_Silent)
    space = TuneSpace((8, 64), 100, 10)
    assert [(c.name, c.role) for c in tune.offers(space, reg)] == [("same", "sampled")]
    reg.register("strategy", "pkg")(_AlsoOffers)
    with pytest.raises(ConfigError, match=r"'also-offers' and 'offers' both offer .* named 'same'"):
        tune.offers(space, reg)


# ------------------------------------------------------------ the two query splits
def test_the_splits_are_disjoint_seeded_and_sized_as_documented():
    from mrlbench.sampling import QuerySplit, query_rows, sampled_rows

    selection, report = tune.splits(200, 100)
    assert (selection.queries, selection.size) == (100, 100)
    assert (report.queries, report.size) == (QuerySplit(100), 100)
    chosen, rest = query_rows(200, selection.queries), query_rows(200, report.queries)
    assert np.array_equal(chosen, sampled_rows(200, 100))  # what queries = 100 runs
    assert not set(chosen) & set(rest) and len(set(chosen) | set(rest)) == 200
    # the sample is at most half of what tune may use; an encoder's queries = N limits it
    selection, report = tune.splits(5000, 1000, limit=600)
    assert (selection.size, report.size, report.queries) == (300, 300, QuerySplit(300, 300))
    rest = query_rows(5000, report.queries)
    assert len(rest) == 300 and not set(rest) & set(sampled_rows(5000, 300))
    assert np.array_equal(rest, query_rows(5000, report.queries))  # seeded
    assert selection.describe() == "selection: 300 queries (queries = 300)"
    assert report.describe() == "report: 300 queries (queries = {excluding = 300, size = 300})"
    with pytest.raises(ConfigError, match="at least 2 queries"):
        tune.splits(1, 1000)


def test_the_query_split_key_is_read_and_bad_values_refused():
    from mrlbench.sampling import QuerySplit, parse_queries

    assert parse_queries(7) == 7
    assert parse_queries({"excluding": 5}) == QuerySplit(5)
    assert parse_queries({"excluding": 5, "size": 3}) == QuerySplit(5, 3)
    for bad in (0, True, {"size": 3}, {"excluding": 0}, {"excluding": 2, "other": 1}, "5"):
        with pytest.raises(ConfigError, match="encoder key 'queries'"):
            parse_queries(bad)
    with pytest.raises(DataError, match="leaves no query"):
        QuerySplit(10).rows(10)


def _tune(cli, arrays, tmp_path, *extra):
    config = tmp_path / "tune.toml"
    out = tmp_path / "run"
    config.write_text(CONFIG.format(out=out, path=arrays.folder))
    return out, cli("tune", config, "--budget-mflops", "0.0245", "--sample", "100", *extra)


def _error_line(err: str) -> str:
    """The one ``error:`` line on stderr (the progress bars draw there too)."""
    assert "Traceback" not in err
    (line,) = [line for line in err.splitlines() if line.startswith("error:")]
    return line


def _searched(run: Path, dim: int, k: int) -> np.ndarray:
    return np.load(run / "neighbors" / "mrl" / f"exactl2_{dim}dim_{k}shortlist_1K.npy")


def test_tune_chooses_on_one_split_and_reports_on_a_disjoint_one(cli, arrays, tmp_path):
    from mrlbench.sampling import QuerySplit, query_rows

    out, r = _tune(cli, arrays, tmp_path)
    assert r.code == 0, r.err
    assert "chosen on the selection split, 100 queries" in r.out
    with open(out / "tune.csv") as f:
        tried = list(csv.DictReader(f))
    assert {t["sample_split"] for t in tried} == {"selection: 100 queries (queries = 100)"}
    front = [t for t in tried if t["front"] == "yes"]
    assert front and {t["report_split"] for t in front} == {
        "report: 100 queries (queries = {excluding = 100})"
    }
    # each run searched exactly its split's queries (brute force on those rows), and
    # no query is in both
    chosen, rest = query_rows(200, 100), query_rows(200, QuerySplit(100))
    assert not set(chosen) & set(rest)
    for run, rows, dim, k in (
        (out / "tune/sample", chosen, 8, 10),
        (out / "tune/front", rest, 64, 25),
    ):
        ids = _searched(run, dim, k)
        truth = brute_force(arrays.xb, arrays.xq[rows], dim, k)
        assert ids.shape == (100, k) and (ids[:, 0] == truth[:, 0]).mean() > 0.97
    # the best is the selection split's; its reported figures are the report split's
    best = tomllib.loads((out / "best.toml").read_text())["strategies"][0]
    top = max(
        front, key=lambda t: (float(t["sample_mAP@10"]), -float(t["sample_mflops_with_selection"]))
    )
    assert best["name"] == top["strategy"]
    with open(out / "tune" / "front" / "leaderboard.csv") as f:
        reported = {row["label"]: row for row in csv.DictReader(f)}
    assert float(top["mAP@10"]) == pytest.approx(float(reported[top["strategy"]]["mAP@10"]))
    # the runner's MFLOPs with selection are the cost model's: the candidates' ...
    for t in tried:
        model = float(t["model_mflops_with_selection"])
        assert float(t["sample_mflops_with_selection"]) == pytest.approx(model, rel=1e-5)
    # ... and a flat row's: N * d, 125 per candidate, k ln(N / k) heap entries of log2 k
    heap = 950 * 25 * math.log(3000 / 25) * math.log2(25)
    flat = float(reported["flat@8"]["mflops_with_selection"])
    assert flat == pytest.approx((3000 * 8 + 125 * 3000 + heap) / 1e6)


def test_best_toml_is_a_complete_config_that_runs(cli, arrays, tmp_path):
    out, r = _tune(cli, arrays, tmp_path)
    assert r.code == 0, r.err
    best = tomllib.loads((out / "best.toml").read_text())
    assert set(best) == {"run", "encoders", "backends", "strategies"}
    assert best["run"]["ks"] == [10, 25] and best["encoders"][0]["dims"] == [8, 16, 32, 64]
    done = cli("run", out / "best.toml")
    assert done.code == 0, done.err
    with open(out / "best" / "leaderboard.csv") as f:
        (row,) = csv.DictReader(f)
    chosen = best["strategies"][0]
    assert row["strategy"] == chosen["name"] and row["status"] == "ok"
    shortlist, high = chosen["shortlist"], chosen["rerank_dim"]
    assert float(row["mflops_per_query"]) == pytest.approx((3000 * 8 + shortlist * high) / 1e6)
    (stem,) = (out / "best" / "neighbors" / "reranked" / "mrl").glob("*.npy")
    assert np.load(stem).shape[0] == 200  # every query of the encoder, not a split


def test_nothing_within_the_budget_exits_1_with_one_line(cli, arrays, tmp_path):
    out, r = _tune(cli, arrays, tmp_path, "--budget-ms", "0.000001")
    assert r.code == 1
    line = _error_line(r.err)
    assert line.startswith("error: no tried setting on the front fits 0.0245 MFLOPs/query")
    assert (out / "tune.csv").is_file() and not (out / "best.toml").exists()
    before = cli("tune", tmp_path / "tune.toml", "--budget-mflops", "0.0245", "--sample", "100")
    assert before.code == 0 and (out / "best.toml").is_file()  # resumed: a best again
    again = cli("tune", tmp_path / "tune.toml", "--budget-mflops", "0.0245", "--budget-ms", "1e-6")
    assert again.code == 1 and not (out / "best.toml").exists()  # a stale best is removed


BROKEN = """
from mrlbench import MrlbenchError, Strategy, TuneCandidate, hookimpl


class Broken(Strategy):
    name = "broken"

    def searches(self, dims, n_database):
        return []

    @classmethod
    def tune_candidates(cls, space):
        return [TuneCandidate({"plugin": cls.name, "name": "broken"}, 0.0, "kept")]

    def run(self, ctx):
        raise MrlbenchError("broken on purpose")


@hookimpl
def mrlbench_register_strategies(register):
    register(Broken)
"""


def test_failed_rows_exit_1_with_one_line_saying_how_many_and_where(arrays, tmp_path):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "broken.py").write_text(BROKEN)
    config = tmp_path / "tune.toml"
    out = tmp_path / "run"
    config.write_text(CONFIG.format(out=out, path=arrays.folder))
    args = ["--plugins-dir", plugins, "tune", config, "--budget-mflops", "0.0245", "--sample", "50"]
    env = {k: v for k, v in os.environ.items() if k != "MRLBENCH_PLUGINS_DIR"}
    done = subprocess.run(
        [sys.executable, "-m", "mrlbench", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert done.returncode == 1, done.stderr
    line = _error_line(done.stderr)
    assert line.startswith("error: 1 of ") and "rows failed" in line
    assert f"{out}/tune/sample/leaderboard.csv" in line and "tune.csv" in line
    with open(out / "tune.csv") as f:
        status = {t["strategy"]: t["status"] for t in csv.DictReader(f)}
    assert status["broken"] == "failed" and (out / "best.toml").is_file()  # the rest stand


# ------------------------------------------------------- the cost of top-k selection
def test_the_selection_cost_by_hand():
    from mrlbench import cost

    # 1000 candidates, k = 10: 125 per candidate, and 10 ln(100) entries of the heap at
    # log2(10) levels, 950 each: 125,000 + 950 * 10 * 4.60517 * 3.32193 = 270,331
    assert cost.selection_mflops(1000, 10) == pytest.approx(0.270331, rel=1e-5)
    assert cost.selection_mflops(1000, 1) == pytest.approx(125 * 1000 / 1e6)  # no heap
    assert cost.selection_mflops(50, 50) == pytest.approx(125 * 50 / 1e6)  # keeps them all
    assert cost.selection_mflops(0, 10) == 0.0
    assert cost.rerank_selection_mflops([(50, 50), (20, 20)]) == pytest.approx(125 * 70 / 1e6)
    assert cost.with_selection(1.0, None) is None and cost.with_selection(1.0, 0.5) == 1.5
    # the candidates' second figure: the paper's MFLOPs plus the search's selection (N =
    # 100 candidates, k = its shortlist) and each rerank stage's (its candidates, kept)
    found = {c.name: c for c in tune.candidates([8, 64, 256], 100, final=10)}
    heap = 950 * 10 * math.log(100 / 10) * math.log2(10)
    adaptive = found["adaptive 8->64 @10"]
    assert adaptive.mflops == pytest.approx((100 * 8 + 10 * 64) / 1e6)
    assert (
        adaptive.cost
        == adaptive.mflops_with_selection
        == pytest.approx((100 * 8 + 10 * 64 + 125 * 100 + heap + 125 * 10) / 1e6)
    )
    funnel = found["funnel 8->64,256 @50,12"]
    heap = 950 * 50 * math.log(100 / 50) * math.log2(50)
    assert funnel.mflops_with_selection == pytest.approx(
        (100 * 8 + 50 * 64 + 12 * 256 + 125 * 100 + heap + 125 * 50 + 125 * 12) / 1e6
    )
    # an ANN backend: the search's selection is unknown before it runs (0), the reranks'
    ann = {c.name: c for c in tune.candidates([8, 16, 256], 60000, final=10, exact=False)}
    assert ann["adaptive 8->256 @200"].mflops_with_selection == pytest.approx(
        (200 * 256 + 125 * 200) / 1e6
    )
    # a third-party candidate without the figure is pruned on its MFLOPs (a lower bound)
    assert TuneCandidate({"plugin": "x"}, 0.5).cost == 0.5


def test_without_an_mflops_budget_tune_prunes_on_the_mflops_with_selection():
    space = TuneSpace((8, 64, 256), 100, 10)
    offered = tune.offers(space)
    # flat's own reference (plugin folders loaded by other tests may register Flat again)
    flats = [c for c in offered if c.table == {"plugin": "flat"}]
    flat = flats[0]
    assert all(f == flat for f in flats)
    found = [c for c in offered if c.role != "reference"]
    heap = 950 * 10 * math.log(100 / 10) * math.log2(10)
    assert flat.cost == pytest.approx((100 * 256 + 125 * 100 + heap) / 1e6)
    kept = tune.prune(found, None, flat.cost, charged=True)
    assert kept and all(c.cost <= flat.cost for c in kept)
    assert all(c.cost > flat.cost for c in found if c not in kept)
    # the paper's model keeps settings whose selection makes them dearer than flat@256:
    # an 8-dim search for 50 selects through a heap of 50, the reference's through 10
    plain = tune.prune(found, None, flat.mflops)
    assert "adaptive 8->64 @50" in [c.name for c in plain]
    assert "adaptive 8->64 @50" not in [c.name for c in kept]
    # with an MFLOPs budget, the budget (the paper's figure, as the leaderboard shows it)
    assert tune.prune(found, 0.01, flat.cost, charged=True) == tune.prune(found, 0.01, 0)
