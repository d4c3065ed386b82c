"""FAISS backends against a numpy brute force; the index cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import brute_force

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
    expected = brute_force(emb.database, emb.queries, dim, 50)
    # identical sets; order identical except where float32 distances tie
    assert overlap(found[50].ids, expected) > 0.999
    assert (found[50].ids[:, 0] == expected[:, 0]).mean() > 0.99
    assert found[50].mflops_per_query == pytest.approx(4000 * dim / 1e6)


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
