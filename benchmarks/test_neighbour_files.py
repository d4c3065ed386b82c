"""Neighbour files: mrlbench's ``.npy`` write + read against the CSV the reference wrote
(``pd.DataFrame(I).to_csv(path, header=None, index=None)``, read back with
``pd.read_csv(path, header=None).to_numpy()``); 5,000 queries x 2,048 ids; one round
each (the CSV takes tens of seconds), single-threaded on both sides."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mrlbench import neighbors

M, K = 5_000, 2_048


@pytest.fixture(scope="module")
def ids():
    return np.random.default_rng(0).integers(0, 1_281_167, (M, K), dtype=np.int64)


def reference_csv(ids: np.ndarray, path) -> np.ndarray:
    pd.DataFrame(ids).to_csv(path, header=None, index=None)
    return pd.read_csv(path, header=None).to_numpy()


def mrlbench_npy(ids: np.ndarray, stem) -> np.ndarray:
    return np.array(neighbors.load(neighbors.save(stem, ids)))  # read every byte back


@pytest.mark.parametrize("impl", ["reference-csv", "mrlbench-npy"])
def test_write_and_read(benchmark, record, ids, tmp_path, impl):
    benchmark.group = "neighbour-files"
    if impl == "reference-csv":
        back = benchmark.pedantic(reference_csv, (ids, tmp_path / "nn.csv"), rounds=1)
    else:
        back = benchmark.pedantic(mrlbench_npy, (ids, tmp_path / "nn"), rounds=1)
    np.testing.assert_array_equal(back, ids)
    record("neighbour-files", impl, benchmark)
