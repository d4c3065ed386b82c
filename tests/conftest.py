"""Shared fixtures: small embedding arrays in the reference naming, the CLI in-process."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from mrlbench.cli import main
from mrlbench.plugins import registry as loaded_registry
from mrlbench_plugins.reference.rerank import GivenShortlist
from mrlbench_plugins.synthetic import synthetic_arrays


@dataclass
class Arrays:
    folder: Path
    xb: np.ndarray
    xq: np.ndarray
    yb: np.ndarray
    yq: np.ndarray
    dataset: str = "1K"
    config: str = "mrl1_e0_ff64"


def write_arrays(
    folder: Path,
    n_database: int = 3000,
    n_queries: int = 200,
    dim: int = 64,
    classes: int = 10,
    seed: int = 0,
    dataset: str = "1K",
    config: str = "mrl1_e0_ff64",
    float16_labels: bool = True,
) -> Arrays:
    """Write database (train) and query (val) arrays as the reference inference script did
    (float32 X, float16 (n, 1) labels), or with int32 labels."""
    xb, xq, yb, yq = synthetic_arrays(n_database, n_queries, dim, classes, seed, 0.7, 0.8)
    folder.mkdir(parents=True, exist_ok=True)
    for split, x, y in (("train", xb, yb), ("val", xq, yq)):
        np.save(folder / f"{dataset}_{split}_{config}-X.npy", x)
        labels = y.astype(np.float16).reshape(-1, 1) if float16_labels else y.astype(np.int32)
        np.save(folder / f"{dataset}_{split}_{config}-y.npy", labels)
    return Arrays(folder, xb, xq, yb, yq, dataset, config)


@pytest.fixture
def arrays(tmp_path: Path) -> Arrays:
    return write_arrays(tmp_path / "arrays")


@pytest.fixture(scope="session")
def registry():
    return loaded_registry()


def funnel(
    xb: np.ndarray, xq: np.ndarray, shortlist: np.ndarray, dims: list[int], sizes: list[int]
) -> np.ndarray:
    """The built-in ``funnel`` strategy run on a given shortlist (as ``mrlbench rerank``)."""
    from mrlbench_plugins.funnel import Funnel

    ctx = GivenShortlist(xb, xq, shortlist, dim=1)
    (row,) = Funnel(shortlist_dim=1, rerank_dims=dims, shortlists=sizes).run(ctx)
    return row.ids


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys):
    """Run ``mrlbench ARGS`` in-process; returns exit code, stdout and stderr."""

    def invoke(*args: str) -> Result:
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return invoke


def normalized(x: np.ndarray, dim: int) -> np.ndarray:
    """The ``dim``-prefixes scaled to unit length in float64; a zero row stays zero (as
    ``faiss.normalize_L2`` and the harness's kernel keep it)."""
    p = np.asarray(x[:, :dim], dtype=np.float64)
    norms = np.linalg.norm(p, axis=1, keepdims=True)
    return np.divide(p, norms, out=np.zeros_like(p), where=norms > 0)


def distances(xb: np.ndarray, xq: np.ndarray, dim: int) -> np.ndarray:
    """(m, n) squared L2 between the normalised ``dim``-prefixes, in float64."""
    b, q = normalized(xb, dim), normalized(xq, dim)
    return (q**2).sum(1)[:, None] - 2 * q @ b.T + (b**2).sum(1)[None, :]


def brute_force(xb: np.ndarray, xq: np.ndarray, dim: int, k: int) -> np.ndarray:
    """Exact k-NN by L2 between normalised prefixes, in float64 numpy: the reference of
    every exactness test. The tie rule, stated once: at equal distance the smaller id
    comes first (a stable sort), as the harness's exact kernel and FAISS keep them."""
    return np.argsort(distances(xb, xq, dim), axis=1, kind="stable")[:, :k]


F32_TIE = 4 * float(np.finfo(np.float32).eps)  # relative: distances a float32 sum cannot order


def assert_exact(
    ids: np.ndarray, xb: np.ndarray, xq: np.ndarray, dim: int, expected: np.ndarray | None = None
) -> None:
    """``ids`` (m, k) are the exact k-NN of ``xq`` at ``dim``: each query's id set is
    identical to ``expected``'s (default: ``brute_force``), with no mismatch allowed, and
    in its order but where two neighbours are tied at float32 precision (the backends
    compute in float32: distances within ``F32_TIE`` of each other are a valid sort
    either way, and only then may the order differ)."""
    expected = brute_force(xb, xq, dim, ids.shape[1]) if expected is None else expected
    assert ids.shape == expected.shape
    for row in np.flatnonzero((ids != expected).any(axis=1)):
        assert set(ids[row]) == set(expected[row]), f"query {row} holds other ids"
        d = distances(xb, xq[row : row + 1], dim)[0, ids[row]]
        assert np.all(np.diff(d) >= -F32_TIE * d[1:]), f"query {row} is out of order"


@pytest.fixture(scope="session")
def quick_demo(tmp_path_factory):
    """``mrlbench run --quick`` once per session: (run directory, cache folder)."""
    import os

    cache = tmp_path_factory.mktemp("cache")
    out = tmp_path_factory.mktemp("quick") / "run"
    old = os.environ.get("MRLBENCH_CACHE")
    os.environ["MRLBENCH_CACHE"] = str(cache)
    try:
        try:
            main(["run", "--quick", "--out", str(out)])
        except SystemExit as exc:
            assert not exc.code, f"mrlbench run --quick exited {exc.code}"
    finally:
        if old is None:
            os.environ.pop("MRLBENCH_CACHE", None)
        else:
            os.environ["MRLBENCH_CACHE"] = old
    return out, cache
