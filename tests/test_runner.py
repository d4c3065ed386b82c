"""``mrlbench run`` end to end on arrays: every cell, numbers against brute force, the run
directory, failed cells, and resuming."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import brute_force, funnel

from mrlbench import metrics
from mrlbench.leaderboard import names

CONFIG = """
[run]
ks = [10, 25]

[[encoders]]
plugin = "arrays"
name = "mrl"
path = "{path}"
dataset = "1K"
config = "mrl1_e0_ff64"
dims = [8, 16, 32, 64]

[[backends]]
plugin = "faiss-exact"

[[backends]]
plugin = "faiss-hnsw"
M = 16
ef_search = 32

[[strategies]]
plugin = "flat"
k = 100

[[strategies]]
plugin = "adaptive"
shortlist_dim = 8
rerank_dim = 64
shortlist = 100

[[strategies]]
plugin = "funnel"
shortlist_dim = 8
rerank_dims = [16, 32, 64]
shortlists = [100, 50, 25]
"""


@pytest.fixture
def config(arrays, tmp_path) -> Path:
    path = tmp_path / "run.toml"
    path.write_text(CONFIG.format(path=arrays.folder))
    return path


def load_board(out: Path) -> list[dict]:
    return json.loads((out / "leaderboard.json").read_text())


def test_run_every_cell_matches_brute_force(cli, config, arrays, tmp_path):
    out = tmp_path / "out"
    r = cli("run", config, "--out", out, "--csv")
    assert r.code == 0, r.err
    rows = load_board(out)
    assert len(rows) == 2 * (4 + 1 + 1)
    assert all(row["status"] == "ok" for row in rows)
    assert list(rows[0]) == names([10, 25])
    for name in ("leaderboard.csv", "leaderboard.md", "config.toml", "env.json"):
        assert (out / name).is_file()
    assert "Accuracy (sorted by mAP@10)" in r.out and "Cost" in r.out

    exact = {row["label"]: row for row in rows if row["backend"] == "faiss-exact"}
    for dim in (8, 16, 32, 64):
        expected = brute_force(arrays.xb, arrays.xq, dim, 100)
        want = metrics.compute(expected, arrays.yb, arrays.yq, [10, 25])
        assert exact[f"flat@{dim}"]["mAP@10"] == pytest.approx(want["mAP@10"], abs=2e-3)
        assert exact[f"flat@{dim}"]["mflops_per_query"] == pytest.approx(3000 * dim / 1e6)
        ids = np.load(out / f"neighbors/mrl/exactl2_{dim}dim_100shortlist_1K.npy")
        assert ids.shape == (200, 100) and ids.dtype == np.int64
        csv = np.loadtxt(
            out / f"neighbors/mrl/exactl2_{dim}dim_100shortlist_1K.csv",
            delimiter=",",
            dtype=np.int64,
        )
        np.testing.assert_array_equal(csv, ids)

    cascade = np.load(
        out / "neighbors/funnel_retrieval/mrl/"
        "8dim-cascade[16,32,64]_shortlist[100,50,25]_1K_exactl2.npy"
    )
    shortlist = np.load(out / "neighbors/mrl/exactl2_8dim_100shortlist_1K.npy")
    np.testing.assert_array_equal(
        cascade, funnel(arrays.xb, arrays.xq, shortlist, [16, 32, 64], [100, 50, 25])
    )
    row = next(r for r in rows if r["strategy"] == "funnel" and r["backend"] == "faiss-exact")
    assert row["mflops_per_query"] == pytest.approx((3000 * 8 + 100 * 16 + 50 * 32 + 25 * 64) / 1e6)
    assert row["mAP@25"] is not None and row["dims"] == "8,16,32,64"
    assert (out / "neighbors/reranked/mrl/8dim-reranked64_100shortlist_1K_hnsw16.npy").is_file()
    assert (out / "index_files/mrl/1K_64dim_hnsw16.index").is_file()


def test_rerun_reuses_completed_work(cli, config, tmp_path):
    out = tmp_path / "out"
    assert cli("run", config, "--out", out).code == 0
    files = sorted(p for p in out.rglob("*") if p.is_file() and p.suffix in (".index", ".npy"))
    stamps = {p: p.stat().st_mtime_ns for p in files}
    before = load_board(out)
    assert cli("run", config, "--out", out).code == 0
    assert {p: p.stat().st_mtime_ns for p in files} == stamps  # nothing rebuilt or rewritten
    assert load_board(out) == before


def test_a_failing_cell_keeps_its_row_and_the_run_goes_on(cli, config, tmp_path):
    text = config.read_text().replace(
        "shortlist_dim = 8\nrerank_dim = 64", "shortlist_dim = 8\nrerank_dim = 512"
    )
    config.write_text(text)
    out = tmp_path / "out"
    r = cli("run", config, "--out", out)
    assert r.code == 1
    rows = load_board(out)
    failed = [row for row in rows if row["status"] == "failed"]
    assert len(failed) == 2 and {row["strategy"] for row in failed} == {"adaptive"}
    assert "dim 512 is larger than the arrays" in failed[0]["error"]
    assert sum(row["status"] == "ok" for row in rows) == 10
    assert "Traceback" not in r.out + r.err


def test_unavailable_backend_is_skipped(cli, config, tmp_path, monkeypatch):
    from mrlbench_plugins.faiss.hnsw import FaissHNSW

    monkeypatch.setattr(FaissHNSW, "availability", classmethod(lambda cls: "no HNSW today"))
    out = tmp_path / "out"
    assert cli("run", config, "--out", out).code == 0
    skipped = [row for row in load_board(out) if row["status"] == "skipped"]
    assert len(skipped) == 3 and skipped[0]["error"] == "no HNSW today"


def test_unavailable_encoder_is_skipped(cli, config, tmp_path, monkeypatch):
    from mrlbench_plugins.arrays import ArraysEncoder

    monkeypatch.setattr(ArraysEncoder, "availability", classmethod(lambda cls: "no arrays"))
    out = tmp_path / "out"
    assert cli("run", config, "--out", out).code == 0
    rows = load_board(out)
    assert len(rows) == 6 and {row["status"] for row in rows} == {"skipped"}
    assert {row["error"] for row in rows} == {"no arrays"}
