"""Sharded exact search (``shards = N`` on faiss-exact and torch-exact) in this process:
the same ids as one search and as numpy brute force; the merge's order; the per-shard
report a run keeps with each search. (Under Ray: tests/test_ray.py.)"""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import assert_exact, brute_force

from mrlbench import shards
from mrlbench.errors import ConfigError
from mrlbench.plugins import Registry
from mrlbench.types import Backend
from mrlbench.vectors import PrefixBlocks, prefix
from mrlbench_plugins.synthetic import synthetic_arrays

XB, XQ, _, _ = synthetic_arrays(5000, 120, 48, 20, 3, 0.7, 0.8)


def backend(registry, plugin: str, n: int):
    return registry.create("backend", {"plugin": plugin, "device": "cpu", "shards": n})[1]


def ids_of(be, dim: int, k: int, database=XB) -> np.ndarray:
    index = be.build(PrefixBlocks(database, dim), dim)
    ids, per_query = be.search(index, prefix(XQ, dim), k)
    assert per_query == len(database)  # the cost model's N * d, sharded or not
    return ids


@pytest.mark.parametrize("plugin", ["faiss-exact", "torch-exact"])
def test_sharded_ids_equal_one_search_and_brute_force(registry, plugin):
    for dim in (8, 48):
        one = ids_of(backend(registry, plugin, 1), dim, 60)
        for n in (2, 3, 7):
            np.testing.assert_array_equal(ids_of(backend(registry, plugin, n), dim, 60), one)
        assert_exact(one, XB, XQ, dim)


def test_shards_smaller_than_k_and_more_shards_than_rows(registry):
    small = XB[:30]
    one = ids_of(backend(registry, "faiss-exact", 1), 16, 50, small)
    assert (one[:, 30:] == -1).all() and (one[:, :30] >= 0).all()
    for n in (4, 40):  # shards of 7-8 rows each; more shards than rows: one row each
        np.testing.assert_array_equal(
            ids_of(backend(registry, "faiss-exact", n), 16, 50, small), one
        )


def test_merge_orders_by_distance_then_smaller_id_padding_last():
    a = (np.array([[0.1, 0.5, np.inf]]), np.array([[7, 3, -1]]))
    b = (np.array([[0.5, 0.2, 0.1]]), np.array([[1, 9, 4]]))
    dist, ids = shards.merge([a, b], 5)
    assert ids.tolist() == [[4, 7, 9, 1, 3]]  # 0.1 ties: id 4 before 7; 0.5: 1 before 3
    dist, ids = shards.merge([a], 4)
    assert ids.tolist() == [[7, 3, -1, -1]] and np.isinf(dist[0, 2:]).all()
    assert shards.row_ranges(10, 3) == [(0, 3), (3, 7), (7, 10)]
    assert shards.row_ranges(2, 5) == [(0, 1), (1, 2)]


def test_a_remote_shard_reads_its_rows_from_the_npy_file(tmp_path):
    np.save(tmp_path / "x.npy", XB)
    mapped = np.load(tmp_path / "x.npy", mmap_mode="r")
    part = shards.portable(mapped, 100, 250)
    assert isinstance(part, shards.MappedRows) and part.path == str(tmp_path / "x.npy")
    np.testing.assert_array_equal(part.load(), XB[100:250])
    inline = shards.portable(XB, 100, 250)  # in memory: the rows themselves travel
    assert isinstance(inline, np.ndarray) and np.array_equal(inline, XB[100:250])


RUN = """
[run]
ks = [10, 50]
latency_queries = 10
repeats = 1

[[encoders]]
plugin = "arrays"
name = "mrl"
path = "{path}"
config = "mrl1_e0_ff64"
dims = [8, 64]

[[backends]]
plugin = "faiss-exact"
name = "{name}"
shards = {shards}

[[strategies]]
plugin = "flat"

[[strategies]]
plugin = "adaptive"
shortlist_dim = 8
rerank_dim = 64
shortlist = 100
"""


def test_a_sharded_run_gives_the_one_search_leaderboard_and_reports_each_shard(
    cli, arrays, tmp_path
):
    boards = {}
    for n in (1, 3):
        cfg = tmp_path / f"s{n}.toml"
        cfg.write_text(RUN.format(path=arrays.folder, name="exact", shards=n))
        out = tmp_path / f"out{n}"
        assert cli("run", cfg, "--out", out).code == 0
        boards[n] = json.loads((out / "leaderboard.json").read_text())
        for dim, k in ((8, 100), (64, 50)):
            stem = f"neighbors/mrl/exactl2-exact_{dim}dim_{k}shortlist_1K"
            boards[n, dim] = np.load(out / f"{stem}.npy")
            boards[n, dim, "sidecar"] = json.loads((out / f"{stem}.json").read_text())["value"]
    for dim in (8, 64):
        np.testing.assert_array_equal(boards[3, dim], boards[1, dim])
    accuracy = [k for k in boards[1][0] if k.startswith(("mAP", "top", "recall", "precision"))]
    for one, sharded in zip(boards[1], boards[3], strict=True):
        assert [one[k] for k in (*accuracy, "mflops_per_query", "label")] == [
            sharded[k] for k in (*accuracy, "mflops_per_query", "label")
        ]
    report = boards[3, 8, "sidecar"]
    assert [s["rows"] for s in report["shards"]] == [[0, 1000], [1000, 2000], [2000, 3000]]
    assert all(s["build_s"] >= 0 and s["search_s"] > 0 for s in report["shards"])
    assert report["shards_search_s"] >= max(s["search_s"] for s in report["shards"])
    assert report["shards_build_s"] >= 0 and "shards" not in boards[1, 8, "sidecar"]


class NumpyExact(Backend):
    """A third-party-style exact backend: brute force in numpy, ``nearest`` declared and
    no sharding code; the harness shards it."""

    name = "numpy-exact"
    cached = False

    @property
    def index_name(self) -> str:
        return "numpyl2"

    def build(self, chunks, dim):
        return np.concatenate(list(chunks))

    def nearest(self, index, queries, k):
        d = ((queries[:, None, :] - index[None, :, :]) ** 2).sum(-1)
        order = np.argsort(d, axis=1, kind="stable")[:, :k]
        dist, ids = np.take_along_axis(d, order, axis=1), order
        if ids.shape[1] < k:
            pad = k - ids.shape[1]
            dist = np.pad(dist, ((0, 0), (0, pad)), constant_values=np.inf)
            ids = np.pad(ids, ((0, 0), (0, pad)), constant_values=-1)
        return dist, ids

    def search(self, index, queries, k):
        return self.nearest(index, queries, k)[1], float(len(index))

    def write(self, index, path):
        raise NotImplementedError

    def read(self, path):
        raise NotImplementedError


class NoNearest(NumpyExact):
    name = "no-nearest"
    nearest = Backend.nearest


def own_registry() -> Registry:
    reg = Registry()
    reg.register("backend", "tests")(NumpyExact)
    reg.register("backend", "tests")(NoNearest)
    return reg


def test_the_harness_shards_any_backend_that_declares_nearest():
    reg = own_registry()
    label, be = reg.create("backend", {"name": "np", "plugin": "numpy-exact", "shards": 4})
    assert isinstance(be, shards.Sharded) and label == "np"
    assert be.name == "numpy-exact" and be.index_name == "numpyl2"  # the plugin's file names
    assert dict(be.table) == {"plugin": "numpy-exact", "shards": 4}  # as written
    assert dict(be.backend.table) == {"plugin": "numpy-exact"}  # the plugin never sees it
    assert type(be).availability() is None
    np.testing.assert_array_equal(ids_of(be, 16, 30), brute_force(XB, XQ, 16, 30))
    one = reg.create("backend", {"plugin": "numpy-exact", "shards": 1})[1]
    assert type(one) is NumpyExact and dict(one.table) == {"plugin": "numpy-exact", "shards": 1}


class Lists(NumpyExact):
    """Needs 40 rows per index (as IVF needs ``nlist``)."""

    name = "lists"

    def check_rows(self, rows):
        if rows < 40:
            raise ConfigError(f"lists = 40 is larger than the database ({rows} rows)")


def test_each_shard_must_hold_the_rows_its_backend_needs():
    be = shards.sharded(Lists(), 3)
    be.check_rows(120)  # 40 rows a shard
    with pytest.raises(ConfigError) as info:
        be.check_rows(100)  # shards of 33, 34 and 33 rows
    assert str(info.value) == (
        "the smallest of its 3 shards: lists = 40 is larger than the database (33 rows)"
    )


def test_shards_on_a_backend_without_nearest_or_not_a_count_is_one_clear_line():
    reg = own_registry()
    with pytest.raises(ConfigError, match=r"'no-nearest': shards = 2: no-nearest cannot be sh"):
        reg.create("backend", {"plugin": "no-nearest", "shards": 2})
    with pytest.raises(ConfigError, match="shards must be a positive integer, not 0"):
        reg.create("backend", {"plugin": "numpy-exact", "shards": 0})
