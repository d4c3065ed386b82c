"""What a result depends on is in its key: neighbour files per setting (run A, then B,
then A again into one folder: A's rows keep A's ids), labels in every resume key, the
index cache content-addressed and shared across configs, an entry published whole, and
timed cells kept apart by executor and host."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import numpy as np
import pytest
from conftest import write_arrays

from mrlbench import config
from mrlbench.cells import cell_key
from mrlbench.errors import WriteError
from mrlbench.index_cache import index_entry, load_or_build
from mrlbench.plugins import registry
from mrlbench.sink import Direct
from mrlbench.store import scan
from mrlbench.types import Embeddings

RUN = """
[run]
ks = [10]
repeats = 1
latency_queries = 0
index_cache = "{cache}"

[[encoders]]
plugin = "arrays"
name = "{name}"
path = "{path}"
config = "mrl1_e0_ff64"
dims = [16, 64]

[[backends]]
plugin = "faiss-ivf"
nlist = 16
nprobe = {nprobe}

[[strategies]]
plugin = "flat"
dims = [16]

[[strategies]]
plugin = "adaptive"
shortlist_dim = 16
rerank_dim = 64
shortlist = 50
"""


def run(cli, tmp_path: Path, arrays, out: Path, nprobe: int, name: str = "mrl") -> list[dict]:
    cfg = tmp_path / f"{name}-{nprobe}.toml"
    cache = tmp_path / "cache"
    cfg.write_text(RUN.format(path=arrays.folder, nprobe=nprobe, name=name, cache=cache))
    r = cli("run", cfg, "--out", out)
    assert r.code == 0, r.err
    return json.loads((out / "leaderboard.json").read_text())


def paths(out: Path) -> dict[str, str]:
    """Each row's neighbours file (``neighbors.json``)."""
    return {r["label"]: r["path"] for r in json.loads((out / "neighbors.json").read_text())}


def ids_of(out: Path) -> dict[str, np.ndarray]:
    return {label: np.load(out / path) for label, path in paths(out).items()}


def test_a_then_b_then_a_into_one_folder_keeps_each_settings_own_ids(cli, arrays, tmp_path):
    alone = tmp_path / "alone"
    run(cli, tmp_path, arrays, alone, nprobe=1)
    want = ids_of(alone)
    shared = tmp_path / "shared"
    run(cli, tmp_path, arrays, shared, nprobe=1)
    first = paths(shared)
    run(cli, tmp_path, arrays, shared, nprobe=16)
    other, other_ids = paths(shared), ids_of(shared)
    run(cli, tmp_path, arrays, shared, nprobe=1)  # resumed: A's cells, A's files
    assert paths(shared) == first and not set(first.values()) & set(other.values())
    assert any(not np.array_equal(want[k], v) for k, v in other_ids.items())  # B differs
    for label, ids in ids_of(shared).items():
        np.testing.assert_array_equal(ids, want[label])


def test_changed_labels_are_scored_again(cli, tmp_path):
    arrays = write_arrays(tmp_path / "arrays")
    out = tmp_path / "out"
    before = run(cli, tmp_path, arrays, out, nprobe=4)
    labels = tmp_path / "arrays/1K_train_mrl1_e0_ff64-y.npy"
    np.save(labels, np.load(labels)[::-1].copy())  # the same vectors, other labels
    after = run(cli, tmp_path, arrays, out, nprobe=4)
    fresh = run(cli, tmp_path, arrays, tmp_path / "fresh", nprobe=4)
    assert [r["mAP@10"] for r in after] != [r["mAP@10"] for r in before]
    assert [r["mAP@10"] for r in after] == [r["mAP@10"] for r in fresh]


def test_two_configs_over_the_same_arrays_share_one_cached_index(cli, arrays, tmp_path):
    a = run(cli, tmp_path, arrays, tmp_path / "a", nprobe=4, name="first")
    b = run(cli, tmp_path, arrays, tmp_path / "b", nprobe=4, name="second")
    entries = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert len(entries) == 1 and entries[0].startswith("ivf16_16dim_")  # the one search dim
    for entry in (tmp_path / "cache").iterdir():
        assert sorted(p.name for p in entry.iterdir()) == ["index", "meta.json"]
    assert [r["build_s"] for r in a] == [r["build_s"] for r in b]  # read, not rebuilt


def embeddings(n: int = 500, dim: int = 16) -> Embeddings:
    x = np.random.default_rng(0).standard_normal((n, dim)).astype(np.float32)
    y = np.zeros(n, dtype=np.int64)
    return Embeddings(x, x[:10], y, y[:10], "toy", "toy", scan(x))


def test_an_index_entry_is_published_whole_or_not_at_all(tmp_path, monkeypatch):
    backend = registry().create("backend", {"plugin": "faiss-hnsw", "M": 8})[1]
    emb = embeddings()
    entry = index_entry(tmp_path, backend, emb, 16)

    def broken(self, index, path):
        Path(path).write_bytes(b"half an index")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(type(backend), "write", broken)
    with pytest.raises(WriteError, match="cannot write"):
        load_or_build(backend, emb, 16, entry)
    assert list(tmp_path.iterdir()) == []  # no entry, no temporary folder left
    monkeypatch.undo()
    _, seconds = load_or_build(backend, emb, 16, entry)
    assert sorted(p.name for p in entry.iterdir()) == ["index", "meta.json"]
    again, cached_seconds = load_or_build(backend, emb, 16, entry)
    assert cached_seconds == seconds and again.ntotal == 500
    Direct().entry(entry, lambda path: Path(path).write_bytes(b"x"), {}, {})  # a late writer
    assert load_or_build(backend, emb, 16, entry)[1] == seconds  # finds the first one intact


def test_cells_timed_elsewhere_never_resume_here(cli, arrays, tmp_path, monkeypatch):
    out = tmp_path / "out"
    run(cli, tmp_path, arrays, out, nprobe=4)
    cells = set((out / "cells").iterdir())
    run(cli, tmp_path, arrays, out, nprobe=4)
    assert set((out / "cells").iterdir()) == cells  # resumed: the same keys
    monkeypatch.setattr(socket, "gethostname", lambda: "another-machine")
    run(cli, tmp_path, arrays, out, nprobe=4)
    assert len(set((out / "cells").iterdir()) - cells) == len(cells)  # computed again

    text = RUN.format(path=arrays.folder, nprobe=4, name="mrl", cache=tmp_path / "cache")
    local = config.build(config.parse_toml(text, "t"), registry())
    ray = config.build(
        config.parse_toml(text.replace("[run]", '[run]\nexecutor = "ray"'), "t"), registry()
    )
    assert local.identity()["executor"] == "local" and ray.identity()["executor"] == "ray"
    keys = [
        cell_key(c, "data", c.encoders[0], c.backends[0], c.strategies[0], c.identity())
        for c in (local, ray)
    ]
    assert keys[0] != keys[1]
