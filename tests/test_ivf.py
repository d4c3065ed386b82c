"""``faiss-ivf`` and ``faiss-ivfpq`` (rigid and AdANNS IVF) on real FAISS: exactness at full
probe, the coarse-prefix assignment, the counted cost, index files, config errors, and a run
through the harness."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import brute_force, normalized

from mrlbench.errors import ConfigError, DataError
from mrlbench.index_cache import index_path, load_or_build
from mrlbench.search_stage import search_dim
from mrlbench.store import cache_dir, scan
from mrlbench.types import Embeddings
from mrlbench.vectors import PrefixBlocks, prefix
from mrlbench_plugins.faiss.ivf import FaissIVF
from mrlbench_plugins.faiss.ivf_index import IVFIndex
from mrlbench_plugins.faiss.ivfpq import KSUB, FaissIVFPQ
from mrlbench_plugins.synthetic import synthetic_arrays

faiss = pytest.importorskip("faiss")
DIM = 32


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """FAISS on one OpenMP thread: on a busy small machine its spinning threads make OPQ
    training ten times slower."""
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(threads)


@pytest.fixture(scope="module")
def emb() -> Embeddings:
    xb, xq, yb, yq = synthetic_arrays(3000, 100, 64, 20, 5, 0.7, 0.8)
    return Embeddings(xb, xq, yb, yq, "toy", "toy", scan(xb))


@pytest.fixture(scope="module")
def gaussian() -> tuple[np.ndarray, np.ndarray]:
    """Continuous random rows: no distance ties."""
    rng = np.random.default_rng(1)
    return rng.standard_normal((3000, DIM)).astype(np.float32), rng.standard_normal(
        (50, DIM)
    ).astype(np.float32)


def build(backend, xb: np.ndarray, dim: int = DIM) -> IVFIndex:
    return backend.build(PrefixBlocks(xb, dim), dim)


def recall(found: np.ndarray, expected: np.ndarray) -> float:
    return float(
        np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(found, expected, strict=True)])
    )


def nearest(x: np.ndarray, centroids: np.ndarray, count: int) -> np.ndarray:
    """The ``count`` nearest centroids of each row, float64 numpy (ties as
    ``brute_force``'s: the smaller id first)."""
    x, c = x.astype(np.float64), centroids.astype(np.float64)
    dist = (x**2).sum(1)[:, None] - 2 * x @ c.T + (c**2).sum(1)[None, :]
    return np.argsort(dist, axis=1, kind="stable")[:, :count]


@pytest.fixture(scope="module")
def adanns(emb) -> tuple[FaissIVF, IVFIndex]:
    backend = FaissIVF(nlist=16, nprobe=3, coarse_dim=8)
    return backend, build(backend, emb.database)


@pytest.fixture(scope="module")
def pq_opq(emb) -> tuple[FaissIVFPQ, IVFIndex]:
    backend = FaissIVFPQ(nlist=16, nprobe=4, m=4, opq=True, coarse_dim=8, train_size=1000)
    return backend, build(backend, emb.database)


# ------------------------------------------------------------------------------ faiss-ivf
def test_full_probe_is_exact_search(gaussian):
    xb, xq = gaussian
    backend = FaissIVF(nlist=16, nprobe=16)
    ids, per_query = backend.search(build(backend, xb), prefix(xq, DIM), 10)
    np.testing.assert_array_equal(ids, brute_force(xb, xq, DIM, 10))
    assert per_query == pytest.approx(16 + 3000)  # every centroid, every vector


def test_rigid_is_faiss_ivf_and_coarse_dim_at_or_above_dim_is_rigid(emb):
    queries = prefix(emb.queries, DIM)
    rigid = FaissIVF(nlist=16, nprobe=4)
    ids, work = rigid.search(build(rigid, emb.database), queries, 20)
    reference = faiss.IndexIVFFlat(faiss.IndexFlatL2(DIM), DIM, 16)
    reference.train(prefix(emb.database, DIM))  # the whole database: the default sample
    reference.add(prefix(emb.database, DIM))
    reference.nprobe = 4
    np.testing.assert_array_equal(ids, reference.search(queries, 20)[1])
    for coarse_dim in (DIM, 2 * DIM):
        backend = FaissIVF(nlist=16, nprobe=4, coarse_dim=coarse_dim)
        index = build(backend, emb.database)
        assert index.coarse is None and index.coarse_dim == DIM
        same, same_work = backend.search(index, queries, 20)
        np.testing.assert_array_equal(same, ids)
        assert same_work == work


def test_adanns_assigns_by_the_coarse_prefix(emb, adanns):
    from faiss.contrib.inspect_tools import get_invlist

    backend, index = adanns
    assert index.coarse.d == 8 and index.ivf.d == DIM
    centroids = index.coarse.reconstruct_n(0, 16)
    expected = nearest(normalized(emb.database, 8), centroids, 1)[:, 0]
    database = prefix(emb.database, DIM)
    for lst in range(16):
        ids, codes = get_invlist(index.ivf.invlists, lst)
        np.testing.assert_array_equal(expected[ids], lst)  # every row in its nearest list
        np.testing.assert_array_equal(codes.view(np.float32), database[ids])  # d-dim rows
    assert index.sizes.sum() == 3000
    queries = prefix(emb.queries, DIM)
    _, lists = backend.probe(index, queries, queries)
    want = nearest(normalized(emb.queries, 8), centroids, 3)
    np.testing.assert_array_equal(np.sort(lists, axis=1), np.sort(want, axis=1))
    rigid = FaissIVF(nlist=16, nprobe=3)
    rigid_ids, _ = rigid.search(build(rigid, emb.database), queries, 10)
    adanns_ids, _ = backend.search(index, queries, 10)
    assert not np.array_equal(rigid_ids, adanns_ids)  # a different index ...
    exact = brute_force(emb.database, emb.queries, DIM, 10)
    assert recall(adanns_ids, exact) > 0.5  # ... that still finds neighbours


def test_counted_cost_is_the_probed_list_sizes(emb, adanns):
    backend, index = adanns
    queries = prefix(emb.queries, DIM)
    centroids = index.coarse.reconstruct_n(0, 16)
    sizes = np.bincount(nearest(normalized(emb.database, 8), centroids, 1)[:, 0], minlength=16)
    for q in (0, 1, 2):
        probed = nearest(normalized(emb.queries[q : q + 1], 8), centroids, 3)[0]
        _, work = backend.search(index, queries[q : q + 1], 10)
        assert work == pytest.approx((16 * 8 + sizes[probed].sum() * DIM) / DIM, abs=DIM)
        assert work == pytest.approx((16 * 8 + index.sizes[probed].sum() * DIM) / DIM)
    stats = faiss.cvar.indexIVF_stats
    stats.reset()
    _, work = backend.search(index, queries, 10)
    assert work == pytest.approx(16 * 8 / DIM + stats.ndis / stats.nq)  # FAISS's own count
    found, _ = search_dim(backend, emb, DIM, [10], None, repeats=1)
    assert found[10].mflops_per_query == pytest.approx(work * DIM / 1e6)
    assert 0 < found[10].mflops_per_query < 3000 * DIM / 1e6


def test_ivfpq_cost_counts_rotation_tables_and_look_ups(emb, pq_opq):
    backend, index = pq_opq
    assert index.ivf.use_precomputed_table == 1 and index.opq is not None
    queries = prefix(emb.queries, DIM)
    _, lists = backend.probe(index, queries[:1], index.rotate(queries[:1]))
    probed = index.sizes[lists[0]]
    _, work = backend.search(index, queries[:1], 10)
    d, m = DIM, 4
    expected = (
        d * d  # OPQ rotation
        + 16 * 8  # coarse step at coarse_dim
        + 4 * d  # d-dim distances to the probed centroids (residual PQ, c < d)
        + KSUB * d  # the query's inner-product table
        + (probed > 0).sum() * KSUB * m  # one list table per non-empty probed list
        + probed.sum() * m  # m look-ups per scanned code
    )
    assert work * d == pytest.approx(expected)


def test_adanns_ivfpq_distances_are_to_the_decoded_vectors(emb, pq_opq):
    """The residual PQ's first term (the d-dim distance to each probed centroid) is
    computed for the lists the coarse prefix picked: distances are exact to the codes."""
    backend, index = pq_opq
    queries = prefix(emb.queries[:20], DIM)
    rotated = index.rotate(queries)
    distances, lists = backend.probe(index, queries, rotated)
    index.ivf.nprobe = lists.shape[1]
    found, ids = index.ivf.search_preassigned(rotated, 5, lists, distances)
    index.ivf.make_direct_map()
    decoded = np.stack([index.ivf.reconstruct(int(i)) for i in ids.ravel()])
    true = ((rotated[:, None, :] - decoded.reshape(*ids.shape, DIM)) ** 2).sum(-1)
    np.testing.assert_allclose(found, true, atol=1e-5)


def test_write_read_round_trip(emb, adanns, pq_opq, tmp_path: Path):
    queries = prefix(emb.queries, DIM)
    for backend, index in (adanns, pq_opq):
        path = tmp_path / f"{backend.cache_name}.index"
        backend.write(index, str(path))
        again = backend.read(str(path))
        assert again.coarse_dim == 8 and again.ntotal == 3000
        np.testing.assert_array_equal(again.sizes, index.sizes)
        ids, work = backend.search(index, queries, 25)
        ids_again, work_again = backend.search(again, queries, 25)
        np.testing.assert_array_equal(ids_again, ids)
        assert work_again == work
    path.write_bytes(b"not an index")
    with pytest.raises(Exception):  # noqa: B017 - whatever numpy or FAISS raises
        backend.read(str(path))


def test_index_cache_names_and_reuse(emb, tmp_path: Path):
    assert FaissIVF(nlist=1024).index_name == "ivf1024"
    assert FaissIVF(nlist=1024).cache_name == "ivf1024"
    assert FaissIVF(nlist=1024, coarse_dim=64).cache_name == "ivf1024_c64"
    assert FaissIVF(nlist=64, train_size=5000, seed=3).cache_name == "ivf64_t5000_s3"
    assert FaissIVFPQ(nlist=256, m=16).index_name == "ivf256pq16"
    assert FaissIVFPQ(nlist=256, m=16, opq=True, coarse_dim=8).cache_name == "ivf256opq16_c8"
    params = FaissIVFPQ(nlist=256, m=16, opq=True, coarse_dim=8).params()
    assert {"kind", "nlist", "coarse_dim", "train_size", "seed", "m", "opq"} <= set(params)

    backend = FaissIVF(nlist=16, nprobe=4, coarse_dim=8)
    path = index_path(tmp_path, "mrl", "toy", DIM, backend.cache_name)
    assert path.name == "toy_32dim_ivf16_c8.index"
    built: list[int] = []
    first, seconds = load_or_build(backend, emb, DIM, path, on_chunk=built.append)
    assert built and path.is_file() and seconds > 0
    built.clear()
    cached, cached_seconds = load_or_build(backend, emb, DIM, path, on_chunk=built.append)
    assert not built and cached_seconds == seconds
    queries = prefix(emb.queries, DIM)
    np.testing.assert_array_equal(
        backend.search(cached, queries, 10)[0], backend.search(first, queries, 10)[0]
    )
    path.write_bytes(b"not an index")
    with pytest.warns(UserWarning, match="unreadable"):
        rebuilt, _ = load_or_build(backend, emb, DIM, path, on_chunk=built.append)
    assert built and rebuilt.ntotal == 3000


# ---------------------------------------------------------------------------- faiss-ivfpq
@pytest.mark.parametrize("opq", [False, True])
def test_ivfpq_recall_is_well_above_chance(emb, opq):
    backend = FaissIVFPQ(nlist=16, nprobe=4, m=8 if opq else 16, opq=opq, train_size=1000)
    index = build(backend, emb.database)
    assert (index.opq is not None) == opq and index.ivf.code_size == (8 if opq else 16)
    queries = prefix(emb.queries, DIM)
    ids, work = backend.search(index, queries, 10)
    assert recall(ids, brute_force(emb.database, emb.queries, DIM, 10)) > 0.3  # chance 0.003
    assert 0 < work < 3000
    if not opq:  # rigid IVF-PQ: coarse step, query table, list tables, look-ups
        _, lists = backend.probe(index, queries, queries)
        probed = index.sizes[lists]
        m, d = 16, DIM
        expected = (16 * d + KSUB * d + (probed > 0).sum(1) * KSUB * m + probed.sum(1) * m).mean()
        assert work * d == pytest.approx(expected)


def test_ivfpq_m_must_divide_the_dim(emb):
    backend = FaissIVFPQ(nlist=16, m=12)
    with pytest.raises(ConfigError, match="m = 12 sub-quantisers must divide the search dim 32"):
        backend.check(32, 10)
    with pytest.raises(ConfigError, match="must divide"):
        search_dim(backend, emb, 32, [10], None)
    backend.check(48, 10)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"nlist": 0}, "nlist must be a positive integer"),
        ({"nlist": True}, "nlist must be a positive integer"),
        ({"nprobe": 1.5}, "nprobe must be a positive integer"),
        ({"nlist": 8, "nprobe": 16}, r"nprobe \(16\) cannot be larger than nlist \(8\)"),
        ({"coarse_dim": 0}, "coarse_dim must be a positive integer"),
        ({"nlist": 64, "train_size": 10}, r"train_size \(10\) must be at least nlist"),
        ({"seed": -1}, "seed must be a non-negative integer"),
        ({"m": 0, "plugin": "faiss-ivfpq"}, "m must be a positive integer"),
        ({"opq": "yes", "plugin": "faiss-ivfpq"}, "opq must be true or false"),
        ({"M": 16}, "M"),
    ],
)
def test_bad_keys_are_config_errors(registry, table, message):
    table = {"plugin": "faiss-ivf", **table}
    with pytest.raises(ConfigError, match=message) as info:
        registry.create("backend", table)
    assert table["plugin"] in str(info.value)


def test_nlist_larger_than_the_database_is_a_data_error(emb):
    with pytest.raises(DataError, match=r"nlist = 4096 is larger than the database \(3000"):
        build(FaissIVF(nlist=4096, nprobe=1), emb.database)


# ------------------------------------------------------------------------------- harness
RUN = """
[run]
ks = [10]
repeats = 1
threads = 1
latency_queries = 10

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

[[backends]]
plugin = "faiss-ivf"
name = "ivf"
nlist = 16
nprobe = 4

[[backends]]
plugin = "faiss-ivf"
name = "adanns"
nlist = 16
nprobe = 4
coarse_dim = 16

[[backends]]
plugin = "faiss-ivfpq"
name = "opq"
nlist = 16
nprobe = 4
m = 4
opq = true
train_size = 1000

[[strategies]]
plugin = "flat"
dims = [32, 64]
"""


def test_run_with_ivf_backends(cli, arrays, tmp_path: Path):
    """One config: exact, HNSW, IVF, AdANNS-IVF and IVF-OPQ rows side by side."""
    config = tmp_path / "run.toml"
    config.write_text(RUN.format(path=arrays.folder))
    out = tmp_path / "out"
    result = cli("run", config, "--out", out)
    assert result.code == 0, result.err
    rows = json.loads((out / "leaderboard.json").read_text())
    assert len(rows) == 5 * 2 and all(row["status"] == "ok" for row in rows)
    for row in rows:  # every row has accuracy, k-NN recall, cost and latency
        for key in ("mAP@10", "knn_recall@10", "mflops_per_query", "latency_ms_p50", "qps"):
            assert row[key] is not None and row[key] > 0, (row["backend"], key)
    exact = {r["label"]: r["mflops_per_query"] for r in rows if r["backend"] == "faiss-exact"}
    for row in rows:
        if row["backend"] != "faiss-exact":
            assert 0 < row["mflops_per_query"] < exact[row["label"]], row
            assert row["knn_recall@10"] > 0.3, row
    cache = cache_dir() / "indexes"  # the default [run] index_cache: content-addressed entries
    for entry in ("ivf16_32dim_", "ivf16_c16_32dim_", "ivf16opq4_t1000_64dim_"):
        assert any((e / "index").is_file() for e in cache.glob(f"{entry}*")), entry
