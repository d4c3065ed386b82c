"""Sweeps: a numeric backend or strategy key given a list is one row per value, labelled
with it; a swept value is the same component as that value written by hand; lists in
one-value keys are refused; HNSW's ef_search runs as written, also below k."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_cli_errors import assert_one_line_error

from mrlbench import config
from mrlbench.cells import cell_key
from mrlbench_plugins.faiss.hnsw import FaissHNSW

ENCODER = """
[run]
ks = [10, 20]
repeats = 1
latency_queries = 5
index_cache = "{cache}"

[[encoders]]
plugin = "synthetic"
n_database = 2000
n_queries = 100
dim = 32
"""
SWEEP = """
[[backends]]
plugin = "faiss-hnsw"
M = 8
ef_search = [8, 64]

[[backends]]
plugin = "faiss-ivf"
name = "ivf"
nlist = 16
nprobe = [1, 4]

[[strategies]]
plugin = "flat"
dims = [8, 32]

[[strategies]]
plugin = "adaptive"
shortlist_dim = 8
rerank_dim = 32
shortlist = [20, 50]

[[strategies]]
plugin = "funnel"
shortlist_dim = 8
rerank_dims = [16, 32]
shortlists = [40, 20]
"""
SCALAR = """
[[backends]]
plugin = "faiss-hnsw"
M = 8
ef_search = 8

[[strategies]]
plugin = "flat"
dims = [8, 32]
"""


def write(tmp_path: Path, body: str, name: str = "run.toml") -> Path:
    path = tmp_path / name
    path.write_text(ENCODER.format(cache=tmp_path / "index-cache") + body)
    return path


def board(out: Path) -> list[dict]:
    return json.loads((out / "leaderboard.json").read_text())


def test_lists_expand_in_the_order_written_each_label_saying_its_values(registry):
    raw = {
        "encoders": [{"plugin": "synthetic"}],
        "backends": [
            {"plugin": "faiss-hnsw", "M": [8, 16], "ef_search": [32, 16]},
            {"plugin": "faiss-ivf", "name": "ivf", "nlist": 16, "nprobe": [1, 4]},
        ],
        "strategies": [
            {"plugin": "adaptive", "shortlist": [100, 200]},
            {"plugin": "funnel", "rerank_dims": [16, 32], "shortlists": [20, 10]},  # no sweep
        ],
    }
    cfg = config.build(raw, registry)
    assert [s.label for s in cfg.backends] == [
        "faiss-hnsw M=8 ef_search=32",
        "faiss-hnsw M=8 ef_search=16",
        "faiss-hnsw M=16 ef_search=32",
        "faiss-hnsw M=16 ef_search=16",
        "ivf nprobe=1",  # a name given gets the value appended
        "ivf nprobe=4",
    ]
    hnsw = [s.component for s in cfg.backends[:4]]
    assert [(b.M, b.ef_search) for b in hnsw] == [(8, 32), (8, 16), (16, 32), (16, 16)]
    assert [s.label for s in cfg.strategies] == [
        "adaptive shortlist=100",
        "adaptive shortlist=200",
        "funnel",  # lists that are the key's own value, not a sweep
    ]
    assert cfg.strategies[2].component.rerank_dims == [16, 32]
    # the resolved config holds one table per value, and builds the same components again
    resolved = cfg.resolved()
    assert resolved["backends"][1] == {
        "plugin": "faiss-hnsw",
        "name": "faiss-hnsw M=8 ef_search=16",
        "M": 8,
        "ef_search": 16,
    }
    again = config.build(config.parse_toml(config.dumps(resolved), "config.toml"), registry)
    assert [s.label for s in again.specs()] == [s.label for s in cfg.specs()]
    assert [s.key() for s in again.specs()] == [s.key() for s in cfg.specs()]


def test_a_swept_value_has_the_resume_key_of_the_same_value_written_by_hand(registry):
    def built(backend: dict, strategy: dict):
        raw = {"encoders": [{"plugin": "synthetic"}], "backends": [backend]}
        return config.build({**raw, "strategies": [strategy]}, registry)

    swept = built(
        {"plugin": "faiss-hnsw", "ef_search": [16, 32]}, {"plugin": "adaptive", "shortlist": [50]}
    )
    by_hand = built(
        {"plugin": "faiss-hnsw", "ef_search": 32}, {"plugin": "adaptive", "shortlist": 50}
    )
    assert swept.backends[1].label == "faiss-hnsw ef_search=32"
    assert by_hand.backends[0].label == "faiss-hnsw"
    who = swept.identity()  # the executor and host: the same for both configs here
    same = cell_key(swept, "data", swept.encoders[0], swept.backends[1], swept.strategies[0], who)
    assert same == cell_key(
        by_hand, "data", by_hand.encoders[0], by_hand.backends[0], by_hand.strategies[0], who
    )
    other = cell_key(swept, "data", swept.encoders[0], swept.backends[0], swept.strategies[0], who)
    assert other != same  # ef_search 16: another key


def test_a_sweep_runs_one_row_per_value_and_draws_recall_against_qps(cli, tmp_path):
    out = tmp_path / "out"
    r = cli("run", write(tmp_path, SWEEP), "--out", out)
    assert r.code == 0, r.err
    rows = board(out)
    assert {row["status"] for row in rows} == {"ok"}
    assert sorted({row["backend"] for row in rows}) == [
        "faiss-hnsw ef_search=64",
        "faiss-hnsw ef_search=8",
        "ivf nprobe=1",
        "ivf nprobe=4",
    ]
    assert sorted({row["label"] for row in rows}) == [
        "adaptive 8->32 @20",
        "adaptive 8->32 @50",
        "flat@32",
        "flat@8",
        "funnel 8->16,32 @40,20",
    ]
    assert len(rows) == 4 * (2 + 2 + 1)
    assert {row["strategy"] for row in rows if row["label"].startswith("adaptive")} == {
        "adaptive shortlist=20",
        "adaptive shortlist=50",
    }
    narrow, wide = (
        next(
            r
            for r in rows
            if r["backend"] == f"faiss-hnsw ef_search={ef}" and r["label"] == "flat@8"
        )
        for ef in (8, 64)
    )
    assert narrow["knn_recall@10"] < wide["knn_recall@10"]  # each ran its own beam
    paths = json.loads((out / "neighbors.json").read_text())
    assert len({p["path"] for p in paths}) == len(paths)  # no two rows share a file
    resolved = config.read_toml(out / "config.toml")
    assert [t.get("name") for t in resolved["backends"]] == [
        "faiss-hnsw ef_search=8",
        "faiss-hnsw ef_search=64",
        "ivf nprobe=1",
        "ivf nprobe=4",
    ]
    assert [t["ef_search"] for t in resolved["backends"][:2]] == [8, 64]
    report = (out / "report.html").read_text()
    assert "<img src='plot_recall_vs_qps.png'" in report and "knn_recall@10 against" in report
    assert (out / "plot_recall_vs_qps.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_sweep_and_a_value_by_hand_share_their_cells(cli, tmp_path):
    out = tmp_path / "out"
    assert cli("run", write(tmp_path, SCALAR, "scalar.toml"), "--out", out).code == 0
    scalar = board(out)
    cells = set((out / "cells").iterdir())
    assert len(cells) == 1 and "plot_recall_vs_qps" not in (out / "report.html").read_text()
    sweep = SCALAR.replace("ef_search = 8", "ef_search = [8, 64]")
    assert cli("run", write(tmp_path, sweep, "sweep.toml"), "--out", out).code == 0
    assert len(set((out / "cells").iterdir()) - cells) == 1  # only ef_search 64 was run
    rows = board(out)
    resumed = [r for r in rows if r["backend"] == "faiss-hnsw ef_search=8"]
    assert len(resumed) == 2  # the hand-written rows, under the sweep's label
    for mine, theirs in zip(resumed, scalar, strict=True):
        assert {k: v for k, v in mine.items() if k != "backend"} == {
            k: v for k, v in theirs.items() if k != "backend"
        }
    # the other way round, in a fresh folder sharing the index cache: the same ids
    again = tmp_path / "again"
    assert cli("run", write(tmp_path, sweep, "sweep.toml"), "--out", again).code == 0
    assert cli("run", write(tmp_path, SCALAR, "scalar.toml"), "--out", again).code == 0
    assert len(list((again / "cells").iterdir())) == 2
    assert [r["backend"] for r in board(again)] == ["faiss-hnsw", "faiss-hnsw"]
    for label in ("flat@8", "flat@32"):
        mine = neighbours(again, "faiss-hnsw", label)
        np.testing.assert_array_equal(mine, neighbours(out, "faiss-hnsw ef_search=8", label))


def neighbours(out: Path, backend: str, label: str) -> np.ndarray:
    index = json.loads((out / "neighbors.json").read_text())
    (path,) = [r["path"] for r in index if (r["backend"], r["label"]) == (backend, label)]
    return np.load(out / path)


@pytest.mark.parametrize(
    ("table", "fragments"),
    [
        ('plugin = "faiss-exact"\ndevice = ["cpu", "auto"]', ("'device'", "not a list", "str")),
        (
            'plugin = "faiss-ivfpq"\nnlist = 16\nm = 4\nopq = [true, false]',
            ("'opq'", "not a list", "nprobe"),
        ),
        ('plugin = "faiss-hnsw"\nef_search = []', ("'ef_search'", "empty list")),
        ('plugin = "faiss-hnsw"\nef_search = [16, "a"]', ("'ef_search'", "numbers only")),
        ('plugin = "faiss-hnsw"\nef_search = [16, 32, 16]', ("'ef_search'", "16 twice")),
    ],
)
def test_a_list_that_is_no_sweep_is_refused_before_any_work(cli, tmp_path, table, fragments):
    body = SCALAR.replace('plugin = "faiss-hnsw"\nM = 8\nef_search = 8', table)
    out = tmp_path / "out"
    r = cli("run", write(tmp_path, body), "--out", out)
    assert r.code == 2
    assert_one_line_error(r, *fragments)
    assert not out.exists()


def test_ef_search_runs_as_written_below_k():
    """efSearch is what the config says: FAISS walks the same 16-wide beam for k = 10
    and k = 200 (the short list is the long one's head, at the same cost), and a wider
    ef_search is another search, not the same rows under a new label."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4000, 16)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    queries = x[:100] + 0.05 * rng.standard_normal((100, 16)).astype(np.float32)
    narrow, wide = FaissHNSW(M=8, ef_search=16), FaissHNSW(M=8, ef_search=200)
    index = narrow.build([x], 16)
    short, short_cost = narrow.search(index, queries, 10)
    long, long_cost = narrow.search(index, queries, 200)
    np.testing.assert_array_equal(long[:, :10], short)
    assert long_cost == short_cost  # one walk, whatever k
    assert (long < 0).any()  # a 16-wide walk can visit fewer than 200 nodes: -1 ids
    widened, widened_cost = wide.search(index, queries, 200)
    assert widened_cost > long_cost and (widened >= 0).all()
    assert not np.array_equal(widened, long)
