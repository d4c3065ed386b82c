"""``mrlbench tune``: the candidate settings and their cost-model MFLOPs (against the
runner's own accounting), budget pruning, the front, and the files it writes."""

from __future__ import annotations

import csv
import tomllib

import pytest

from mrlbench import tune
from mrlbench.leaderboard import Row

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
    kept = tune.prune(found, 20.0, flat_mflops=1281167 * 2048 / 1e6)
    assert kept and all(c.mflops <= 20.0 for c in kept)
    assert len(kept) <= tune.MAX_CANDIDATES
    assert kept == tune.prune(found, 20.0, flat_mflops=0)  # seeded
    everything = tune.prune(found, None, flat_mflops=1281167 * 2048 / 1e6)
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
    within = [t for t in front if float(t["mflops_per_query"]) <= 0.04]
    top = max(within, key=lambda t: float(t["mAP@10"]))
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
