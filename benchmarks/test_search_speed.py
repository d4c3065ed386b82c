"""Exact search: mrlbench's own path against raw FAISS on the same raw arrays and the
same index (100k x 2048 database, 1,000 queries, k = 100, the flat default for
ks up to 100). Both sides start from the raw (un-normalised, float32) queries:

- raw FAISS: ``normalize_L2`` of the contiguous prefix, ``IndexFlatL2.search``;
- mrlbench: ``vectors.prefix`` (prefix normalisation), ``FaissExact.search`` (result
  handling included), as a run's search stage does;

3 rounds after 1 warm-up round on both sides, on every core and on one thread. Then a
whole ``mrlbench run`` (flat, exact): its leaderboard row's batch time (``n / qps``)
against raw FAISS at the same k and threads."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from mrlbench_plugins.faiss.exact import FaissExact
from threadpoolctl import threadpool_limits

from mrlbench.vectors import prefix

N, M, D, K = 100_000, 1_000, 2048, 100
ROUNDS, WARMUP = 3, 1


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    rng = np.random.default_rng(0)
    folder = tmp_path_factory.mktemp("arrays")
    xb = rng.standard_normal((N, D), dtype=np.float32)
    xq = rng.standard_normal((M, D), dtype=np.float32)
    for split, x in (("train", xb), ("val", xq)):
        np.save(folder / f"1K_{split}_mrl1_e0_ff2048-X.npy", x)
        np.save(folder / f"1K_{split}_mrl1_e0_ff2048-y.npy", (np.arange(len(x)) % 10)[:, None])
    return folder, xb, xq


@pytest.fixture(scope="module")
def indexes(data):
    import faiss

    _, xb, _ = data
    built = {}
    for dim in (16, 2048):
        b = np.ascontiguousarray(xb[:, :dim])
        faiss.normalize_L2(b)
        index = faiss.IndexFlatL2(dim)
        index.add(b)
        built[dim] = index
    return built


def raw_faiss(index, xq: np.ndarray, dim: int, k: int):
    import faiss

    q = np.ascontiguousarray(xq[:, :dim])
    faiss.normalize_L2(q)
    return index.search(q, k)[1]


def mrlbench_search(backend: FaissExact, index, xq: np.ndarray, dim: int, k: int):
    return backend.search(index, prefix(xq, dim), k)[0]


@pytest.mark.parametrize("threads", ["all", 1])
@pytest.mark.parametrize("impl", ["raw-faiss", "mrlbench"])
@pytest.mark.parametrize("dim", [16, 2048])
def test_search(benchmark, record, data, indexes, impl, dim, threads):
    import faiss

    _, _, xq = data
    index = indexes[dim]
    group = f"search-{dim}d" + ("-1thread" if threads == 1 else "")
    benchmark.group = group
    n = os.cpu_count() if threads == "all" else 1
    faiss.omp_set_num_threads(n)
    with threadpool_limits(limits=n):
        if impl == "raw-faiss":
            ids = benchmark.pedantic(
                raw_faiss, (index, xq, dim, K), rounds=ROUNDS, warmup_rounds=WARMUP
            )
        else:
            backend = FaissExact(device="cpu")
            ids = benchmark.pedantic(
                mrlbench_search, (backend, index, xq, dim, K), rounds=ROUNDS, warmup_rounds=WARMUP
            )
    faiss.omp_set_num_threads(os.cpu_count())
    benchmark.extra_info["threads"] = n
    assert ids.shape == (M, K)
    record(group, impl, benchmark)


RUN = """
[run]
ks = [10, 100]
repeats = 3
latency_queries = 20

[[encoders]]
plugin = "arrays"
path = "{path}"
config = "mrl1_e0_ff2048"
dims = [16]

[[backends]]
plugin = "faiss-exact"

[[strategies]]
plugin = "flat"
"""


def test_flat_row_qps_against_raw_faiss(benchmark, record, data, indexes, tmp_path):
    """The leaderboard's qps of a flat row (best of 3 after a warm-up, every core) against
    raw FAISS timed the same way, at the same k = max(ks) = 100 and threads."""
    from mrlbench.cli import main

    folder, _, xq = data
    config = tmp_path / "run.toml"
    config.write_text(RUN.format(path=folder))
    try:
        main(["run", str(config), "--out", str(tmp_path / "run")])
    except SystemExit as exc:
        assert not exc.code
    (row,) = json.loads((tmp_path / "run" / "leaderboard.json").read_text())
    benchmark.group = "flat-row"
    benchmark.pedantic(raw_faiss, (indexes[16], xq, 16, K), rounds=ROUNDS, warmup_rounds=WARMUP)
    record("flat-row", "raw-faiss", benchmark)
    record("flat-row", "mrlbench-run", M / row["qps"])
    benchmark.extra_info.update({"row_qps": row["qps"], "raw_qps": M / benchmark.stats.stats.min})
