"""FAISS backends against a numpy brute force; the index cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import assert_exact, brute_force, distances

from mrlbench.errors import DataError, MrlbenchError
from mrlbench.index_cache import index_path, load_or_build
from mrlbench.search_stage import search_dim
from mrlbench.store import scan
from mrlbench.types import Embeddings
from mrlbench_plugins.faiss.exact import FaissExact
from mrlbench_plugins.faiss.hnsw import FaissHNSW
from mrlbench_plugins.synthetic import synthetic_arrays


@pytest.fixture(scope="module")
def emb() -> Embeddings:
    xb, xq, yb, yq = synthetic_arrays(4000, 100, 128, 20, 5, 0.7, 0.8)
    return Embeddings(xb, xq, yb, yq, "toy", "toy", scan(xb))


def overlap(a: np.ndarray, b: np.ndarray) -> float:
    return np.mean([len(set(x) & set(y)) / len(x) for x, y in zip(a, b, strict=True)])


@pytest.mark.parametrize("dim", [8, 32, 128])
def test_exact_search_equals_brute_force(emb, dim):
    found, _ = search_dim(FaissExact(), emb, dim, [50], None)
    assert_exact(found[50].ids, emb.database, emb.queries, dim)
    assert found[50].mflops_per_query == pytest.approx(4000 * dim / 1e6)


def test_one_wrong_neighbour_fails_the_exactness_check(emb):
    """The check has no mismatch allowance: one query's k-th neighbour replaced by the
    (k+1)-th fails it (a 0.1% tolerance let such a row pass), and so does a swap of
    two neighbours that are not tied; a swap within a float32 tie passes."""
    xb, xq = emb.database, emb.queries
    truth = brute_force(xb, xq, 32, 51)
    wrong = truth[:, :50].copy()
    wrong[7, 49] = truth[7, 50]
    assert overlap(wrong, truth[:, :50]) > 0.999
    with pytest.raises(AssertionError, match="query 7 holds other ids"):
        assert_exact(wrong, xb, xq, 32)
    swapped = truth[:, :50].copy()
    swapped[3, [0, 1]] = swapped[3, [1, 0]]
    with pytest.raises(AssertionError, match="query 3 is out of order"):
        assert_exact(swapped, xb, xq, 32)
    tied = np.concatenate([xb, xb[truth[5, :1]] * 2])  # row 4000: row truth[5, 0] doubled
    assert distances(tied, xq[5:6], 32)[0, 4000] == distances(tied, xq[5:6], 32)[0, truth[5, 0]]
    ids = brute_force(tied, xq, 32, 50)
    assert ids[5, 0] == truth[5, 0] and ids[5, 1] == 4000  # equal distance: smaller id first
    ids[5, [0, 1]] = ids[5, [1, 0]]
    assert_exact(ids, tied, xq, 32)


def test_hnsw_is_close_and_counts_its_work(emb):
    found, build_s = search_dim(FaissHNSW(M=16, ef_search=64), emb, 32, [10], None)
    assert overlap(found[10].ids, brute_force(emb.database, emb.queries, 32, 10)) > 0.9
    work = found[10].mflops_per_query
    assert 0 < work < 4000 * 32 / 1e6  # measured distance computations, fewer than exact
    assert build_s > 0


def test_cpu_device_and_k_limits(emb):
    backend = FaissExact()
    assert backend.device == "CPU"
    with pytest.raises(DataError, match="larger than the database"):
        search_dim(backend, emb, 8, [4001], None)
    with pytest.raises(DataError, match="larger than the arrays"):
        search_dim(backend, emb, 256, [5], None)


def test_index_cache_reuses_rebuilds_and_recovers(emb, tmp_path: Path):
    backend = FaissHNSW(M=8)
    path = index_path(tmp_path, "mrl", "toy", 16, backend.index_name)
    assert path == tmp_path / "mrl" / "toy_16dim_hnsw8.index"
    built = []
    _, seconds = load_or_build(backend, emb, 16, path, on_chunk=built.append)
    assert built and path.is_file() and seconds > 0
    built.clear()
    index, cached_seconds = load_or_build(backend, emb, 16, path, on_chunk=built.append)
    assert not built and cached_seconds == seconds and index.ntotal == 4000

    changed = Embeddings(
        emb.database * 2,
        emb.queries,
        emb.database_labels,
        emb.query_labels,
        "toy",
        "toy",
        scan(emb.database * 2),
    )
    with pytest.warns(UserWarning, match="does not match the data"):
        load_or_build(backend, changed, 16, path, on_chunk=built.append)
    assert built

    built.clear()
    path.write_bytes(b"not an index")
    with pytest.warns(UserWarning, match="unreadable"):
        index, _ = load_or_build(backend, changed, 16, path, on_chunk=built.append)
    assert built and index.ntotal == 4000
    assert not list(tmp_path.rglob("*.tmp"))


def test_gpu_search_refuses_k_above_2048(emb, monkeypatch):
    import mrlbench_plugins.faiss.exact as module

    monkeypatch.setattr(module, "gpu_count", lambda: 1)  # as if FAISS saw a GPU
    backend = FaissExact()
    assert backend.device == "GPU"
    with pytest.raises(MrlbenchError, match=r"GPU supports k <= 2048 \(asked 4000\)"):
        backend.search(object(), emb.queries[:, :8], 4000)
    assert FaissExact(device="cpu").device == "CPU"
