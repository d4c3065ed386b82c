"""Exact search: mrlbench's own path against raw FAISS on the same raw arrays (100k x
2048 database, 1,000 queries, k = 100, the flat default for ks up to 100). Both sides
start from the raw (un-normalised, float32) queries:

- raw FAISS: ``normalize_L2`` of the contiguous prefix, ``IndexFlatL2.search`` over an
  in-memory normalised copy of the database (the reference pipeline's search);
- mrlbench: ``vectors.prefix`` (prefix normalisation) and ``FaissExact.search`` (result
  handling included) over its out-of-core index of the memory-mapped ``.npy`` arrays
  (``FaissExact.build``, untimed like FAISS's ``add``), as a run's search stage does;

5 rounds after 1 warm-up round on both sides, on every core and on one thread. Then a
whole ``mrlbench run`` (flat, exact, on every core and with ``--threads 1``): its
leaderboard row's batch time (``n / qps``, best of the run's 3 repeats after a warm-up)
against raw FAISS at the same k and threads."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from reference_pipeline import assert_same_neighbours_up_to_ties
from threadpoolctl import threadpool_limits

from mrlbench.vectors import PrefixBlocks, prefix
from mrlbench_plugins.faiss.exact import FaissExact

N, M, D, K = 100_000, 1_000, 2048, 100
ROUNDS, WARMUP = 5, 1


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


@pytest.fixture(scope="module")
def reference_ids(data, indexes):
    """Raw FAISS's answer at k = 100, each dim (untimed): what every timed side returns."""
    _, _, xq = data
    return {dim: raw_faiss(indexes[dim], xq, dim, K) for dim in indexes}


@pytest.fixture(scope="module")
def ours(data):
    """mrlbench's exact indexes over the memory-mapped database file."""
    folder, _, _ = data
    xb = np.load(folder / "1K_train_mrl1_e0_ff2048-X.npy", mmap_mode="r")
    backend = FaissExact(device="cpu")
    return {dim: backend.build(PrefixBlocks(xb, dim), dim) for dim in (16, 2048)}


def mrlbench_search(backend: FaissExact, index, xq: np.ndarray, dim: int, k: int):
    return backend.search(index, prefix(xq, dim), k)[0]


@pytest.mark.parametrize("threads", ["all", 1])
@pytest.mark.parametrize("impl", ["raw-faiss", "mrlbench"])
@pytest.mark.parametrize("dim", [16, 2048])
def test_search(benchmark, record, data, indexes, reference_ids, ours, impl, dim, threads):
    import faiss

    _, xb, xq = data
    group = f"search-{dim}d" + ("-1thread" if threads == 1 else "")
    benchmark.group = group
    n = os.cpu_count() if threads == "all" else 1
    faiss.omp_set_num_threads(n)
    with threadpool_limits(limits=n):
        if impl == "raw-faiss":
            ids = benchmark.pedantic(
                raw_faiss, (indexes[dim], xq, dim, K), rounds=ROUNDS, warmup_rounds=WARMUP
            )
        else:
            backend = FaissExact(device="cpu")
            backend.use_threads(n)
            args = (backend, ours[dim], xq, dim, K)
            ids = benchmark.pedantic(mrlbench_search, args, rounds=ROUNDS, warmup_rounds=WARMUP)
    faiss.omp_set_num_threads(os.cpu_count())
    benchmark.extra_info["threads"] = n
    # the same neighbours as raw FAISS on every core, float32 near-ties aside
    benchmark.extra_info["rows_identical"] = float((ids == reference_ids[dim]).all(1).mean())
    assert_same_neighbours_up_to_ties(ids, reference_ids[dim], xb, xq, dim)
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


@pytest.mark.parametrize("threads", ["all", 1])
def test_flat_row_qps_against_raw_faiss(
    benchmark, record, data, indexes, reference_ids, tmp_path, threads
):
    """The leaderboard's qps of a flat row (best of 3 after a warm-up) against raw FAISS
    timed the same way, at the same k = max(ks) = 100 and threads; the row's neighbours
    file holds raw FAISS's neighbours."""
    import faiss

    from mrlbench.cli import main

    folder, xb, xq = data
    config = tmp_path / "run.toml"
    config.write_text(RUN.format(path=folder))
    n = os.cpu_count() if threads == "all" else 1
    try:
        main(["run", str(config), "--out", str(tmp_path / "run"), "--threads", str(n)])
    except SystemExit as exc:
        assert not exc.code
    (row,) = json.loads((tmp_path / "run" / "leaderboard.json").read_text())
    (written,) = (tmp_path / "run" / "neighbors").rglob("*.npy")
    assert_same_neighbours_up_to_ties(np.load(written), reference_ids[16], xb, xq, 16)
    group = "flat-row" + ("-1thread" if threads == 1 else "")
    benchmark.group = group
    faiss.omp_set_num_threads(n)
    with threadpool_limits(limits=n):
        ids = benchmark.pedantic(raw_faiss, (indexes[16], xq, 16, K), rounds=3, warmup_rounds=1)
    faiss.omp_set_num_threads(os.cpu_count())
    assert_same_neighbours_up_to_ties(ids, reference_ids[16], xb, xq, 16)
    record(group, "raw-faiss", benchmark)
    record(group, "mrlbench-run", M / row["qps"])
    benchmark.extra_info.update({"row_qps": row["qps"], "raw_qps": M / benchmark.stats.stats.min})
