"""``mrlbench run`` checks its config and every array before any work (one ``error:``
line, exit 2, nothing written), reads relative paths from the config's folder, keeps
neighbours up to the longest k scored, and stops with one line on a full disk."""

from __future__ import annotations

import errno
import json
import os
import tomllib

import numpy as np
import pytest
from conftest import write_arrays

from mrlbench.store import cache_dir

CONFIG = """
[run]
out = "{out}"
ks = [10, 25]
latency_queries = 0
repeats = 1

[[encoders]]
plugin = "arrays"
name = "mrl"
path = "{path}"
config = "mrl1_e0_ff64"
dims = [8, 64]

[[backends]]
plugin = "faiss-exact"

[[strategies]]
plugin = "flat"

[[strategies]]
plugin = "adaptive"
shortlist_dim = 8
rerank_dim = 64
shortlist = 50
"""


def write_config(folder, out, path, text=CONFIG):
    config = folder / "run.toml"
    config.write_text(text.format(out=out, path=path))
    return config


def refused(cli, config, out) -> str:
    """Run ``config``; it must refuse with one error line, exit 2 and no run folder."""
    r = cli("run", config)
    assert r.code == 2, r.err
    assert "Traceback" not in r.out + r.err and r.out == ""
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.err
    assert not out.exists()
    return lines[0]


def test_a_wrong_arrays_path_is_one_line_and_nothing_written(cli, tmp_path):
    out = tmp_path / "run"
    line = refused(cli, write_config(tmp_path, out, tmp_path / "nowhere"), out)
    assert line == f"error: encoder 'mrl': arrays folder not found: {tmp_path / 'nowhere'}"


def test_nan_in_the_database_is_refused_before_any_work(cli, arrays, tmp_path):
    xb = np.load(arrays.folder / "1K_train_mrl1_e0_ff64-X.npy")
    xb[1234, 5] = np.nan
    np.save(arrays.folder / "1K_train_mrl1_e0_ff64-X.npy", xb)
    out = tmp_path / "run"
    line = refused(cli, write_config(tmp_path, out, arrays.folder), out)
    assert "1K_train_mrl1_e0_ff64-X.npy: NaN or Inf in the array (first at row 1234)" in line


def test_a_truncated_array_file_is_refused(cli, arrays, tmp_path):
    path = arrays.folder / "1K_val_mrl1_e0_ff64-X.npy"
    path.write_bytes(path.read_bytes()[:5000])
    out = tmp_path / "run"
    line = refused(cli, write_config(tmp_path, out, arrays.folder), out)
    assert line.startswith(f"error: encoder 'mrl': {path}:")


def test_labels_that_do_not_match_the_rows_are_refused(cli, arrays, tmp_path):
    np.save(arrays.folder / "1K_train_mrl1_e0_ff64-y.npy", arrays.yb[:-1].astype(np.int32))
    out = tmp_path / "run"
    line = refused(cli, write_config(tmp_path, out, arrays.folder), out)
    assert "3000 rows but 2999 labels" in line


def test_a_strategy_dim_wider_than_the_arrays_is_refused(cli, arrays, tmp_path):
    out = tmp_path / "run"
    text = CONFIG.replace("rerank_dim = 64", "rerank_dim = 128")
    line = refused(cli, write_config(tmp_path, out, arrays.folder, text), out)
    assert line.endswith("dim 128 is larger than the arrays for mrl1_e0_ff64 (64 dims)")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_inf_in_the_queries_is_refused_before_any_work(cli, arrays, tmp_path, bad):
    xq = np.load(arrays.folder / "1K_val_mrl1_e0_ff64-X.npy")
    xq[17, 3] = bad
    np.save(arrays.folder / "1K_val_mrl1_e0_ff64-X.npy", xq)
    out = tmp_path / "run"
    line = refused(cli, write_config(tmp_path, out, arrays.folder), out)
    path = arrays.folder / "1K_val_mrl1_e0_ff64-X.npy"
    assert line == f"error: encoder 'mrl': {path}: NaN or Inf in the array (first at row 17)"


SMALL = "the database of encoder 'mrl' (100 rows)"


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("ks = [10, 25]", "ks = [10, 101]", f"[run] ks: 101 is larger than {SMALL}"),
        (
            "shortlist = 50",
            "shortlist = 150",
            f"strategy 'adaptive': shortlist = 150 is larger than {SMALL}",
        ),
        (
            'plugin = "flat"\n',
            'plugin = "flat"\nname = "flat-deep"\nk = 120\n',
            f"strategy 'flat-deep': k = 120 is larger than {SMALL}",
        ),
        (
            "shortlist = 50",
            'shortlist = 50\n\n[[strategies]]\nplugin = "funnel"\nshortlist_dim = 8\n'
            "rerank_dims = [64]\nshortlists = [200]",
            f"strategy 'funnel': shortlists[0] = 200 is larger than {SMALL}",
        ),
        (
            'plugin = "faiss-exact"',
            'plugin = "faiss-ivf"\nnlist = 128\nnprobe = 1',
            "backend 'faiss-ivf' on encoder 'mrl': nlist = 128 is larger than the database "
            "(100 rows)",
        ),
    ],
)
def test_a_list_longer_than_the_database_is_refused_before_any_work(
    cli, tmp_path, old, new, message
):
    small = write_arrays(tmp_path / "small", n_database=100, n_queries=20)
    out = tmp_path / "run"
    assert old in CONFIG
    text = CONFIG.replace(old, new, 1).replace("shortlist = 50", "shortlist = 20")
    line = refused(cli, write_config(tmp_path, out, small.folder, text), out)
    assert line.startswith(f"error: {message}"), line


SYNTHETIC = """
[run]
out = "{out}"
ks = [10, 50]

[[encoders]]
plugin = "synthetic"
n_database = 40
n_queries = 10
dim = 16
{extra}
[[backends]]
plugin = "faiss-exact"

[[strategies]]
plugin = "flat"
"""


def test_the_synthetic_encoder_knows_its_size_and_refuses_nan_settings(cli, tmp_path):
    out = tmp_path / "run"
    config = tmp_path / "run.toml"
    config.write_text(SYNTHETIC.format(out=out, extra=""))
    line = refused(cli, config, out)
    assert (
        line == "error: [run] ks: 50 is larger than the database of encoder 'synthetic' (40 rows)"
    )
    config.write_text(SYNTHETIC.format(out=out, extra="noise = nan").replace("50]", "20]"))
    line = refused(cli, config, out)
    assert line.startswith("error: encoder plugin 'synthetic': decay and noise must be finite")


NAN_QUERIES = """
import numpy as np
from mrlbench import Embeddings, Encoder, hookimpl, scan


class NanQueries(Encoder):
    \"\"\"Encodes on demand (no size known up front); its query 3 has a NaN.\"\"\"

    name = "nan-queries"
    dims = (8,)

    def embeddings(self, dim):
        rng = np.random.default_rng(0)
        xb = rng.standard_normal((50, 8), dtype=np.float32)
        xq = rng.standard_normal((10, 8), dtype=np.float32)
        xq[3, 5] = np.nan
        labels = np.zeros(50, np.int64), np.zeros(10, np.int64)
        return Embeddings(xb, xq, *labels, "toy", "toy", scan(xb))


@hookimpl
def mrlbench_register_encoders(register):
    register(NanQueries)
"""


@pytest.mark.parametrize("extra", ["", "queries = 5"])
def test_nan_queries_an_encoder_did_not_check_fail_its_rows_naming_the_row(cli, tmp_path, extra):
    """An encoder that encodes first cannot be checked before the run: its queries are
    checked when its cells start, and its rows fail saying why (not all -1 ids)."""
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "nan_queries.py").write_text(NAN_QUERIES)
    out = tmp_path / "run"
    config = tmp_path / "run.toml"
    text = SYNTHETIC.format(out=out, extra=extra).replace('"synthetic"', '"nan-queries"')
    keys = ("n_database", "n_queries", "dim =")  # the synthetic encoder's own
    config.write_text("\n".join(x for x in text.splitlines() if not x.startswith(keys)))
    r = cli("--plugins-dir", plugins, "run", config)
    assert r.code == 1 and "Traceback" not in r.out + r.err
    (row,) = json.loads((out / "leaderboard.json").read_text())
    assert row["status"] == "failed"
    assert "queries of toy: NaN or Inf in the array (first at row 3)" in row["error"]


def test_relative_paths_are_read_from_the_config_folder(cli, arrays, tmp_path, monkeypatch):
    folder = tmp_path / "configs"
    folder.mkdir()
    rel = os.path.relpath(arrays.folder, folder)
    config = write_config(folder, "results/run", rel)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    r = cli("run", config)
    assert r.code == 0, r.err
    assert not (elsewhere / "results").exists()
    run = folder / "results" / "run"
    resolved = tomllib.loads((run / "config.toml").read_text())
    assert resolved["run"]["out"] == str(run)
    assert resolved["encoders"][0]["path"] == str(arrays.folder)
    assert resolved["run"]["index_cache"] == str(cache_dir() / "indexes")  # outside the run


def test_neighbour_files_keep_the_longest_k_scored(cli, arrays, tmp_path):
    out = tmp_path / "run"
    assert cli("run", write_config(tmp_path, out, arrays.folder)).code == 0
    shortlist = np.load(out / "neighbors/mrl/exactl2_8dim_50shortlist_1K.npy")
    assert shortlist.shape == (200, 25)  # searched 50 deep for the rerank, 25 kept
    reranked = np.load(out / "neighbors/reranked/mrl/8dim-reranked64_50shortlist_1K_exactl2.npy")
    assert reranked.shape == (200, 25)
    # the cut shortlist is searched again when the cell is not finished, not resumed short
    for cell in (out / "cells").glob("*.json"):
        cell.unlink()
    assert cli("run", write_config(tmp_path, out, arrays.folder)).code == 0


def test_keep_neighbors_keeps_more(cli, arrays, tmp_path):
    out = tmp_path / "run"
    text = CONFIG.replace("repeats = 1", "repeats = 1\nkeep_neighbors = 1000")
    assert cli("run", write_config(tmp_path, out, arrays.folder, text)).code == 0
    assert np.load(out / "neighbors/mrl/exactl2_8dim_50shortlist_1K.npy").shape == (200, 50)


@pytest.mark.parametrize("target", ["leaderboard.csv", "exactl2_64dim_25shortlist_1K.npy"])
def test_a_full_disk_is_one_line_and_leaves_no_partial_file(
    cli, arrays, tmp_path, monkeypatch, target
):
    real_replace = os.replace

    def full(src, dst, *args, **kwargs):
        if os.path.basename(dst) == target:
            with open(src, "r+b") as f:  # half the bytes made it, then the disk filled
                f.truncate(max(1, os.path.getsize(src) // 2))
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", full)
    out = tmp_path / "run"
    r = cli("run", write_config(tmp_path, out, arrays.folder))
    assert r.code == 2 and "Traceback" not in r.err
    assert r.err.strip().splitlines()[-1].startswith("error: cannot write ")
    assert r.err.strip().endswith(f"{target}: No space left on device")
    assert not list(out.rglob(target)) and not list(out.rglob(".*.tmp"))


class _Served:
    """What ``urlopen`` returns: a file's bytes with a Content-Length header."""

    def __init__(self, data: bytes) -> None:
        import io

        self.body, self.headers = io.BytesIO(data), {"Content-Length": str(len(data))}

    def read(self, n: int = -1) -> bytes:
        return self.body.read(n)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None


def test_a_missing_fashion_mnist_is_fetched_and_verified_before_the_run(
    registry, tmp_path, monkeypatch, capsys
):
    from mrlbench import config, preflight
    from mrlbench_plugins.vision import data

    source = data.find_fashion()  # Debian's package or the cache: the real files
    asked = []

    def urlopen(url, timeout=None):
        asked.append(url)
        return _Served((source / url.rsplit("/", 1)[1]).read_bytes())

    monkeypatch.setattr(data.urllib.request, "urlopen", urlopen)
    root = tmp_path / "fmnist"
    raw = tomllib.loads(
        f"""
[[encoders]]
plugin = "resnet50-mrl"
dataset = {{ plugin = "fashion-mnist", root = "{root}" }}
[[backends]]
plugin = "faiss-exact"
[[strategies]]
plugin = "flat"
"""
    )
    cfg = config.build(raw, registry, out=tmp_path / "run")
    preflight.check(cfg)
    assert sorted(asked) == sorted(data.FASHION_MIRROR + name for name in data.FASHION_FILES)
    for name in data.FASHION_FILES:
        assert (root / name).read_bytes() == (source / name).read_bytes()
    err = capsys.readouterr().err
    assert "downloading Fashion-MNIST" in err and "t10k-images-idx3-ubyte.gz" in err
    assert not (tmp_path / "run").exists()
