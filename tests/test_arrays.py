"""Reading the reference pipeline's arrays."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import write_arrays

from mrlbench.arrays import array_name, load_embeddings, load_labels, mrl_e_alias
from mrlbench.errors import DataError


def test_reads_reference_naming_memory_mapped_with_float16_labels(arrays):
    emb = load_embeddings(arrays.folder, "1K", "mrl1_e0_ff64")
    assert isinstance(emb.database, np.memmap)
    assert emb.database_labels.dtype == np.int64
    np.testing.assert_array_equal(emb.database_labels, arrays.yb)
    np.testing.assert_array_equal(emb.query_labels, arrays.yq)
    assert array_name("1K", "train", "mrl1_e0_ff2048", "X") == "1K_train_mrl1_e0_ff2048-X.npy"


def test_int_labels(tmp_path):
    a = write_arrays(tmp_path / "a", float16_labels=False)
    np.testing.assert_array_equal(load_embeddings(a.folder, "1K", a.config).query_labels, a.yq)


def test_float16_labels_above_2048_warn(tmp_path):
    path = tmp_path / "y.npy"
    np.save(path, np.array([[1.0], [2049.0], [4000.0]], dtype=np.float16))
    with pytest.warns(UserWarning, match="cannot all be told apart"):
        load_labels(path)
    np.save(path, np.array([[1.5]], dtype=np.float32))
    with pytest.raises(DataError, match="whole numbers"):
        load_labels(path)


def test_mrl_e_spelling_is_accepted_either_way(tmp_path):
    a = write_arrays(tmp_path / "a", config="mrl1_e1_ff64")
    assert mrl_e_alias("mrl0_e1_ff64") == "mrl1_e1_ff64"
    assert len(load_embeddings(a.folder, "1K", "mrl0_e1_ff64").database) == 3000


def test_query_dataset_against_another_database(tmp_path):
    a = write_arrays(tmp_path / "a")
    for part in ("X", "y"):
        (a.folder / f"1K_val_mrl1_e0_ff64-{part}.npy").rename(
            a.folder / f"V2_val_mrl1_e0_ff64-{part}.npy"
        )
    emb = load_embeddings(a.folder, "1K", "mrl1_e0_ff64", query_dataset="V2")
    assert (emb.dataset, emb.query_dataset) == ("1K", "V2")
