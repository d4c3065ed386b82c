"""``mrlbench run`` end to end on arrays: every cell, numbers against brute force, the run
directory, failed cells, and resuming."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_exact, brute_force, funnel, normalized

from mrlbench import metrics
from mrlbench.leaderboard import names
from mrlbench.store import cache_dir

CONFIG = """
[run]
ks = [10, 25, 100]

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
    assert list(rows[0]) == names([10, 25, 100])
    for name in ("leaderboard.csv", "leaderboard.md", "config.toml", "env.json"):
        assert (out / name).is_file()
    assert "Accuracy (sorted by mAP@10)" in r.out and "Cost" in r.out

    exact = {row["label"]: row for row in rows if row["backend"] == "faiss-exact"}
    for dim in (8, 16, 32, 64):
        ids = np.load(out / f"neighbors/mrl/exactl2_{dim}dim_100shortlist_1K.npy")
        assert ids.shape == (200, 100) and ids.dtype == np.int64
        assert_exact(ids, arrays.xb, arrays.xq, dim)  # brute force's, float32 ties aside
        want = metrics.compute(ids, arrays.yb, arrays.yq, [10, 25])  # scored as defined
        assert exact[f"flat@{dim}"]["mAP@10"] == pytest.approx(want["mAP@10"])
        assert exact[f"flat@{dim}"]["mflops_per_query"] == pytest.approx(3000 * dim / 1e6)
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
    (tag,) = {p.name.split("_")[0] for p in (out / "neighbors/mrl").glob("hnsw16-*.npy")}
    assert re.fullmatch(r"hnsw16-[0-9a-f]{8}", tag)  # ef_search = 32: not the default
    assert (out / f"neighbors/reranked/mrl/8dim-reranked64_100shortlist_1K_{tag}.npy").is_file()
    entries = list((cache_dir() / "indexes").glob("hnsw16_64dim_*"))  # the default cache
    assert entries and all((e / "index").is_file() for e in entries)


def brute_recall(ids: np.ndarray, truth: np.ndarray, k: int) -> float:
    return float(
        np.mean([len(set(a[:k]) & set(b[:k])) / k for a, b in zip(ids, truth, strict=True)])
    )


def ann_recall(xb: np.ndarray, xq: np.ndarray, ids: np.ndarray, dim: int, k: int) -> float:
    """ann-benchmarks' k-NN recall by brute force in float64: a returned id counts when
    its euclidean distance is within the k-th true distance + 1e-3."""
    b, q = normalized(xb, dim), normalized(xq, dim)
    dist = np.sqrt(((q[:, None, :] - b[None, :, :]) ** 2).sum(-1))
    kth = np.sort(dist, axis=1)[:, k - 1 : k]
    return float((np.take_along_axis(dist, ids[:, :k], axis=1) <= kth + 1e-3).mean())


def test_knn_recall_against_exact_search_by_brute_force(cli, config, arrays, tmp_path):
    out = tmp_path / "out"
    assert cli("run", config, "--out", out).code == 0
    rows = {(r["backend"], r["label"]): r for r in load_board(out)}
    truth = {d: brute_force(arrays.xb, arrays.xq, d, 100) for d in (8, 16, 32, 64)}
    for dim in (8, 16, 32, 64):  # exact rows: 1 by definition, and the neighbours agree
        row = rows[("faiss-exact", f"flat@{dim}")]
        assert [row[f"knn_recall@{k}"] for k in (10, 25, 100)] == [1.0, 1.0, 1.0]
        ids = np.load(out / f"neighbors/mrl/exactl2_{dim}dim_100shortlist_1K.npy")
        assert_exact(ids, arrays.xb, arrays.xq, dim, truth[dim])
    for (backend, label), row in rows.items():
        if (backend, row["strategy"]) == ("faiss-exact", "flat"):
            continue
        path = next(
            e["path"]
            for e in json.loads((out / "neighbors.json").read_text())
            if (e["backend"], e["label"]) == (backend, label)
        )
        ids = np.load(out / path)
        final = int(row["dims"].split(",")[-1])
        for k in (10, 25):  # the distance rule: ties within 1e-3 of the k-th count
            want = ann_recall(arrays.xb, arrays.xq, ids, final, k)
            assert row[f"knn_recall@{k}"] == pytest.approx(want, abs=1e-9), (backend, label)
            assert row[f"knn_recall@{k}"] >= brute_recall(ids, truth[final], k) - 1e-9
        assert 0.0 < row["knn_recall@10"] <= 1.0
    funnel_row = rows[("faiss-exact", "funnel 8->16,32,64 @100,50,25")]
    assert funnel_row["knn_recall@100"] is None  # the funnel keeps 25


EXACT_PAIR = """
[run]
ks = [10]

[[encoders]]
plugin = "arrays"
name = "mrl"
path = "{path}"
dataset = "1K"
config = "mrl1_e0_ff64"
dims = [16, 64]

[[backends]]
plugin = "faiss-exact"
device = "cpu"

[[backends]]
plugin = "torch-exact"
device = "cpu"

[[strategies]]
plugin = "flat"
"""


def test_a_torch_exact_row_is_measured_and_only_the_truths_kernel_is_not(
    cli, arrays, tmp_path, monkeypatch
):
    pytest.importorskip("torch")
    cache = tmp_path / "cache"
    monkeypatch.setenv("MRLBENCH_CACHE", str(cache))
    config = tmp_path / "exact.toml"
    config.write_text(EXACT_PAIR.format(path=arrays.folder))
    assert cli("run", config, "--out", tmp_path / "a").code == 0
    rows = {(r["backend"], r["label"]): r for r in load_board(tmp_path / "a")}
    for dim in (16, 64):  # exact either way; torch-exact's is measured against the truth
        assert rows[("faiss-exact", f"flat@{dim}")]["knn_recall@10"] == 1.0
        assert rows[("torch-exact", f"flat@{dim}")]["knn_recall@10"] == 1.0
    stored = sorted((cache / "truth").glob("*-ids.npy"))
    assert len(stored) == 2  # one ground truth per dim, made for the torch-exact rows
    for ids_file in stored:  # a wrong truth: no id and no distance can match it
        ids = np.load(ids_file)
        np.save(ids_file, np.full_like(ids, -1))
        distances = ids_file.with_name(ids_file.name.replace("-ids", "-distances"))
        np.save(distances, np.zeros(ids.shape))
    assert cli("run", config, "--out", tmp_path / "b").code == 0
    rows = {(r["backend"], r["label"]): r for r in load_board(tmp_path / "b")}
    for dim in (16, 64):
        # the truth's own kernel (faiss-exact on the CPU, one search) is that computation
        assert rows[("faiss-exact", f"flat@{dim}")]["knn_recall@10"] == 1.0
        assert rows[("torch-exact", f"flat@{dim}")]["knn_recall@10"] == 0.0  # measured


def test_rerun_reuses_completed_work(cli, config, tmp_path):
    out = tmp_path / "out"
    assert cli("run", config, "--out", out).code == 0
    files = sorted(p for p in out.rglob("*") if p.is_file() and p.suffix in (".index", ".npy"))
    stamps = {p: p.stat().st_mtime_ns for p in files}
    before = load_board(out)
    assert cli("run", config, "--out", out).code == 0
    assert {p: p.stat().st_mtime_ns for p in files} == stamps  # nothing rebuilt or rewritten
    assert load_board(out) == before


def test_a_dim_the_arrays_lack_is_refused_before_any_work(cli, config, tmp_path):
    text = config.read_text().replace(
        "shortlist_dim = 8\nrerank_dim = 64", "shortlist_dim = 8\nrerank_dim = 512"
    )
    config.write_text(text)
    out = tmp_path / "out"
    r = cli("run", config, "--out", out)
    assert r.code == 2 and "Traceback" not in r.err
    assert r.err.strip().splitlines()[-1] == (
        "error: encoder 'mrl': dim 512 is larger than the arrays for mrl1_e0_ff64 (64 dims)"
    )
    assert not out.exists()  # nothing written, not even the folder


def test_a_failing_cell_keeps_its_row_and_the_run_goes_on(cli, config, tmp_path, monkeypatch):
    from mrlbench_plugins.adaptive import Adaptive

    # a strategy that does not report its list lengths: preflight cannot refuse it, the
    # search does, when its cell runs (a reported one is refused up front: test_run_checks)
    monkeypatch.setattr(Adaptive, "list_lengths", lambda self: {})
    text = config.read_text().replace("shortlist = 100", "shortlist = 5000")  # > 3000 rows
    config.write_text(text)
    out = tmp_path / "out"
    r = cli("run", config, "--out", out)
    assert r.code == 1
    rows = load_board(out)
    failed = [row for row in rows if row["status"] == "failed"]
    assert len(failed) == 2 and {row["strategy"] for row in failed} == {"adaptive"}
    assert "k = 5000 is larger than the database (3000 rows)" in failed[0]["error"]
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


TIMING = """
[run]
ks = [10]
latency_queries = 50

[[encoders]]
plugin = "synthetic"
n_database = 4000
n_queries = 200
dim = 64

[[backends]]
plugin = "faiss-hnsw"
name = "hnsw-ef{ef}"
M = 8
ef_search = {ef}

[[strategies]]
plugin = "flat"
dims = [16, 64]

[[strategies]]
plugin = "adaptive"
shortlist_dim = 16
rerank_dim = 64
shortlist = 200
"""


def timing_config(tmp_path: Path, ef: int, name: str = "run.toml") -> Path:
    path = tmp_path / name
    path.write_text(TIMING.format(ef=ef).replace(f'name = "hnsw-ef{ef}"\n', ""))
    return path


def test_timing_columns_threads_and_hnsw_beam(cli, tmp_path):
    out = tmp_path / "out"
    r = cli("run", timing_config(tmp_path, 16), "--out", out, "--threads", "1")
    assert r.code == 0, r.err
    rows = {row["label"]: row for row in load_board(out)}
    assert set(rows) == {"flat@16", "flat@64", "adaptive 16->64 @200"}  # flat k = max(ks)
    for row in rows.values():
        assert row["qps"] > 0 and 0 < row["latency_ms_p50"] <= row["latency_ms_p99"]
        assert row["latency_queries"] == 50 and row["timing_spread"] >= 0
    (stem,) = (out / "neighbors/synthetic").glob("hnsw8-*_16dim_10shortlist_synthetic.npy")
    assert np.load(stem).shape == (200, 10)  # hnsw8-{hash}: ef_search 16 is not the default
    # efSearch 16 runs as written for k = 200 (issue 20: no silent max(ef, k)): the
    # 16-wide walk visits fewer than 200 nodes for some queries, and the row says so
    assert rows["adaptive 16->64 @200"]["missing_ids"] > 0
    env = json.loads((out / "env.json").read_text())
    assert env["threads"] == 1 and env["components"]["backend faiss-hnsw"]["faiss_threads"] == 1


def test_compare_gates_accuracy_and_time_apart(cli, tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    assert cli("run", timing_config(tmp_path, 64), "--out", a).code == 0
    assert cli("run", timing_config(tmp_path, 64), "--out", b).code == 0
    same = cli("compare", a, b, "--fail-on-regression", "0", "--latency-tolerance", "25")
    assert same.code == 0, same.out  # two identical runs compare clean
    assert cli("run", timing_config(tmp_path, 8), "--out", c).code == 0
    worse = cli("compare", a, c, "--fail-on-regression", "1")
    text = " ".join(worse.out.split())
    assert worse.code == 1 and re.search(r"regressed: synthetic / faiss-hnsw / flat@\d+: \w", text)


def test_two_backends_of_one_index_kind_never_share_files(cli, tmp_path):
    text = TIMING.format(ef=16) + '\n[[backends]]\nplugin = "faiss-hnsw"\nM = 8\nef_search = 64\n'
    cfg = tmp_path / "run.toml"
    cfg.write_text(text)
    out = tmp_path / "out"
    assert cli("run", cfg, "--out", out).code == 0
    files = sorted(p.name for p in (out / "neighbors/synthetic").glob("*16dim_10shortlist*.npy"))
    assert len(files) == 2 and files[1] == "hnsw8_16dim_10shortlist_synthetic.npy"  # defaults
    assert re.fullmatch(r"hnsw8-hnsw-ef16-[0-9a-f]{8}_16dim_10shortlist_synthetic\.npy", files[0])
    narrow, wide = (np.load(out / "neighbors/synthetic" / name) for name in files)
    assert (narrow != wide).any()  # each backend's own search, not one overwriting the other
    assert {r["status"] for r in load_board(out)} == {"ok"}
