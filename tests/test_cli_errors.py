"""Bad input: one clear line naming the problem, a non-zero exit, no traceback, and
nothing half-written."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
from conftest import write_arrays

MARKER = Path("/tmp/mrlbench-unpickled-marker")


class Exploit:
    """Unpickling this would create MARKER: loading must never unpickle."""

    def __reduce__(self):
        return (MARKER.touch, ())


def assert_one_line_error(result, *fragments: str) -> None:
    assert result.code != 0
    text = result.out + result.err
    assert "Traceback" not in text
    lines = [line for line in result.err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def search_args(arrays, out, *extra):
    return [
        "search",
        "--arrays",
        arrays.folder,
        "--dataset",
        arrays.dataset,
        "--config",
        arrays.config,
        "--out",
        out,
        *extra,
    ]


def test_missing_folder(cli, tmp_path):
    r = cli("search", "--arrays", tmp_path / "nope", "--out", tmp_path / "o")
    assert_one_line_error(r, "arrays folder not found", "nope")


def test_missing_file(cli, arrays, tmp_path):
    (arrays.folder / "1K_val_mrl1_e0_ff64-y.npy").unlink()
    assert_one_line_error(
        cli(*search_args(arrays, tmp_path / "o")), "not found", "1K_val_mrl1_e0_ff64-y.npy"
    )


def test_rows_differ(cli, arrays, tmp_path):
    np.save(arrays.folder / "1K_train_mrl1_e0_ff64-y.npy", np.zeros(10, np.int32))
    assert_one_line_error(cli(*search_args(arrays, tmp_path / "o")), "3000 rows but 10 labels")


def test_dim_larger_than_arrays(cli, arrays, tmp_path):
    r = cli(*search_args(arrays, tmp_path / "o", "--dims", "8,128", "--k", "10"))
    assert_one_line_error(r, "dim 128 is larger than the arrays (64 dims)")


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_inf(cli, arrays, tmp_path, bad):
    x = np.load(arrays.folder / "1K_train_mrl1_e0_ff64-X.npy")
    x[1234, 5] = bad
    np.save(arrays.folder / "1K_train_mrl1_e0_ff64-X.npy", x)
    assert_one_line_error(cli(*search_args(arrays, tmp_path / "o")), "NaN or Inf", "row 1234")


def test_pickled_arrays_are_never_unpickled(cli, arrays, tmp_path):
    MARKER.unlink(missing_ok=True)
    obj = np.empty(3000, dtype=object)
    obj[:] = [Exploit() for _ in range(3000)]
    np.save(arrays.folder / "1K_train_mrl1_e0_ff64-y.npy", obj, allow_pickle=True)
    r = cli(*search_args(arrays, tmp_path / "o"))
    assert_one_line_error(r, "Python objects", "1K_train_mrl1_e0_ff64-y.npy")
    assert not MARKER.exists()
    pickle.loads(pickle.dumps(Exploit()))  # the exploit is real: unpickling runs it
    assert MARKER.exists()
    MARKER.unlink()


def test_corrupt_npy(cli, arrays, tmp_path):
    path = arrays.folder / "1K_train_mrl1_e0_ff64-X.npy"
    path.write_bytes(path.read_bytes()[:1000])  # truncated
    assert_one_line_error(cli(*search_args(arrays, tmp_path / "o")), "1K_train_mrl1_e0_ff64-X.npy")
    path.write_bytes(b"this is not numpy")
    assert_one_line_error(cli(*search_args(arrays, tmp_path / "o")), "not a valid .npy")


def test_config_not_toml(cli, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[run\nout = 3")
    assert_one_line_error(cli("run", bad), "is not valid TOML")
    assert not (tmp_path / "results").exists()


def test_unknown_key_and_plugin(cli, tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        '[[encoders]]\nplugin = "arrays"\npath = "x"\nconfig = "mrl1_e0_ff64"\n'
        'colour = "red"\n[[backends]]\nplugin = "faiss-exact"\n'
        '[[strategies]]\nplugin = "flat"\n'
    )
    assert_one_line_error(
        cli("run", cfg, "--out", tmp_path / "o"),
        "encoder plugin 'arrays'",
        "unknown key 'colour'",
        "known keys:",
    )
    cfg.write_text(cfg.read_text().replace('colour = "red"\n', "").replace('"flat"', '"flatt"'))
    assert_one_line_error(
        cli("run", cfg, "--out", tmp_path / "o"),
        "unknown strategy plugin 'flatt'",
        "adaptive, flat, funnel",
    )
    cfg.write_text(cfg.read_text().replace('"flatt"', '"flat"') + "[run]\nspeed = 1\n")
    assert_one_line_error(cli("run", cfg, "--out", tmp_path / "o"), "unknown key 'speed'")
    assert not (tmp_path / "o").exists()


def test_funnel_order(cli, arrays, tmp_path):
    nn = tmp_path / "nn.npy"
    np.save(nn, np.zeros((200, 300), np.int64))
    base = [
        "rerank",
        "--arrays",
        arrays.folder,
        "--config",
        arrays.config,
        "--neighbors",
        nn,
        "--shortlist-dim",
        "8",
        "--out",
        tmp_path / "o",
    ]
    r = cli(*base, "--rerank-dims", "16,64,32", "--shortlists", "200,100,50")
    assert_one_line_error(r, "funnel dims must increase")
    r = cli(*base, "--rerank-dims", "16,32,64", "--shortlists", "100,200,50")
    assert_one_line_error(r, "funnel shortlists must not grow")
    assert not (tmp_path / "o").exists()


def test_shortlist_or_k_larger_than_database(cli, tmp_path):
    small = write_arrays(tmp_path / "small", n_database=100, n_queries=20)
    r = cli(*search_args(small, tmp_path / "o", "--k", "2048", "--dims", "8"))
    assert_one_line_error(r, "k = 2048 is larger than the database (100 rows)")
    nn = tmp_path / "nn.npy"
    np.save(nn, np.zeros((20, 300), np.int64))
    r = cli(
        "rerank",
        "--arrays",
        small.folder,
        "--config",
        small.config,
        "--neighbors",
        nn,
        "--shortlist-dim",
        "8",
        "--rerank-dims",
        "64",
        "--shortlists",
        "200",
        "--out",
        tmp_path / "o",
    )
    assert_one_line_error(r, "shortlist 200 is larger than the database (100 rows)")
    assert not list(tmp_path.glob("o/**/*.npy"))  # nothing written


def test_empty_query_set(cli, arrays, tmp_path):
    np.save(arrays.folder / "1K_val_mrl1_e0_ff64-X.npy", np.zeros((0, 64), np.float32))
    np.save(arrays.folder / "1K_val_mrl1_e0_ff64-y.npy", np.zeros((0, 1), np.float16))
    assert_one_line_error(cli(*search_args(arrays, tmp_path / "o")), "query set is empty")


def test_debug_shows_the_traceback(cli, tmp_path):
    with pytest.raises(Exception, match="arrays folder not found"):
        cli("--debug", "search", "--arrays", tmp_path / "nope", "--out", tmp_path / "o")
