"""The ground truth of ``knn_recall``: ids and float64 euclidean distances, cached under a
format version; the returned ids' distances gathered from the arrays; ann-benchmarks'
rule on hand-computed arrays, ties and duplicates."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mrlbench import metrics, truth
from mrlbench.types import Embeddings


def embeddings(database: np.ndarray, queries: np.ndarray) -> Embeddings:
    database = np.asarray(database, dtype=np.float32)
    queries = np.asarray(queries, dtype=np.float32)
    return Embeddings(
        database,
        queries,
        np.zeros(len(database), dtype=np.int64),
        np.zeros(len(queries), dtype=np.int64),
        "tiny",
        "tiny",
        "fp",
    )


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MRLBENCH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def recall(emb: Embeddings, ids: np.ndarray, dim: int, ks: list[int]) -> dict[str, float]:
    """knn_recall as the runner measures it (Context.knn_recall), on given arrays."""
    t = truth.ground_truth(emb, dim, max(ks), "data")
    found = truth.neighbour_distances(emb.database, emb.queries, ids, dim, t)
    return metrics.knn_recall(ids, t.ids, ks, found, t.distances)


# 2-d rows; after normalisation x0 = x3 = (1, 0), x1 = (0, 1), x2 = (-1, 0), x4 = (1, 1)/sqrt 2
TINY_DB = [[1, 0], [0, 1], [-1, 0], [3, 0], [1, 1]]
TINY_Q = [[2, 0], [0, 5]]
R2, NEAR = math.sqrt(2), math.sqrt(2 - math.sqrt(2))  # |(1,0)-(0,1)|, |(1,0)-(1,1)/sqrt 2|


def test_the_truth_holds_ids_and_euclidean_distances_by_hand():
    t = truth.ground_truth(embeddings(TINY_DB, TINY_Q), 2, 5, "data")
    # query (1, 0): x0 and x3 at 0 (ties to the smaller id), x4, x1, x2
    # query (0, 1): x1 at 0, x4, then x0, x2, x3 all at sqrt 2 (ties by id)
    assert t.ids.tolist() == [[0, 3, 4, 1, 2], [1, 4, 0, 2, 3]]
    assert t.ids.dtype == np.int64 and t.distances.dtype == np.float64
    np.testing.assert_allclose(t.distances[0], [0, 0, NEAR, R2, 2], atol=1e-7)
    np.testing.assert_allclose(t.distances[1], [0, NEAR, R2, R2, R2], atol=1e-7)


def test_knn_recall_by_hand_on_tiny_arrays():
    emb = embeddings(TINY_DB, TINY_Q)
    ids = np.array([[3, 4, 1], [4, 1, 2]])
    # query 0, true distances 0, 0, NEAR: k=1: x3 at 0 <= 0 + 1e-3 counts (a duplicate
    # of x0, the truth's id); k=2: x3 counts, x4 (NEAR > 0) not; k=3: x3, x4 count, x1 not
    # query 1, true distances 0, NEAR, sqrt 2: k=1: x4 not; k=2: both; k=3: all three,
    # x2 as well (at sqrt 2, tied with x0, the truth's third)
    got = recall(emb, ids, 2, [1, 2, 3])
    assert got["knn_recall@1"] == pytest.approx((1 + 0) / 2)
    assert got["knn_recall@2"] == pytest.approx((1 / 2 + 1) / 2)
    assert got["knn_recall@3"] == pytest.approx((2 / 3 + 1) / 2)
    # the id sets alone count neither the duplicate (x3 at k=1) nor the tie (x2 at k=3)
    id_sets = metrics.knn_recall(ids, truth.ground_truth(emb, 2, 3, "data").ids, [1, 3])
    assert id_sets == {"knn_recall@1": 0.0, "knn_recall@3": pytest.approx((2 / 3 + 2 / 3) / 2)}


def test_a_duplicate_database_row_counts_whichever_is_returned():
    rng = np.random.default_rng(5)
    database = rng.standard_normal((400, 16)).astype(np.float32)
    database[300] = database[42]  # two identical rows
    queries = database[[42, 7]] + 0.01 * rng.standard_normal((2, 16)).astype(np.float32)
    emb = embeddings(database, queries)
    t = truth.ground_truth(emb, 16, 2, "data")
    assert t.ids[0].tolist() == [42, 300]  # equal distances: the smaller id first
    assert t.distances[0, 0] == t.distances[0, 1]
    exact = truth.ground_truth(emb, 16, 2, "data").ids
    for first in (300, 42):  # either twin, alone at k=1 or with the other
        ids = np.array([[first, 42 + 300 - first], exact[1]])
        assert recall(emb, ids, 16, [1, 2]) == {"knn_recall@1": 1.0, "knn_recall@2": 1.0}
    ids = np.array([[300, 300], exact[1]])  # the twin returned twice fills only one place
    assert recall(emb, ids, 16, [2])["knn_recall@2"] == 1.0  # both at the true distance
    ids = np.array([[300, 5], exact[1]])
    assert recall(emb, ids, 16, [2])["knn_recall@2"] == pytest.approx((1 / 2 + 1) / 2)


def test_returned_distances_are_gathered_rows_and_match_brute_force():
    rng = np.random.default_rng(6)
    database = rng.standard_normal((500, 24)).astype(np.float32)
    queries = rng.standard_normal((30, 24)).astype(np.float32)
    emb = embeddings(database, queries)
    ids = rng.integers(-1, 500, (30, 12))
    b = database[:, :10] / np.linalg.norm(database[:, :10].astype(np.float64), axis=1)[:, None]
    q = queries[:, :10] / np.linalg.norm(queries[:, :10].astype(np.float64), axis=1)[:, None]
    want = np.linalg.norm(q[:, None, :] - b[np.maximum(ids, 0)], axis=-1)
    want[ids < 0] = np.inf
    got = truth.neighbour_distances(database, queries, ids, 10, threads=2)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    # ids the truth knows take its stored distance: the same values
    known = truth.ground_truth(emb, 10, 12, "data")
    np.testing.assert_allclose(
        truth.neighbour_distances(database, queries, known.ids, 10, known),
        truth.neighbour_distances(database, queries, known.ids, 10),
        rtol=0,
        atol=1e-15,
    )


def test_the_truth_cache_is_read_back_and_a_format_change_recomputes_it(cache, monkeypatch):
    rng = np.random.default_rng(7)
    emb = embeddings(rng.standard_normal((300, 8)), rng.standard_normal((20, 8)))
    first = truth.ground_truth(emb, 8, 5, "data")
    (sidecar,) = (cache / "truth").glob("*.json")
    assert '"format": 2' in sidecar.read_text()
    (stored,) = (cache / "truth").glob("*-distances.npy")
    np.save(stored, np.zeros_like(first.distances))  # what an older kernel left behind
    assert not truth.ground_truth(emb, 8, 5, "data").distances.any()  # read from the cache
    monkeypatch.setattr(truth, "TRUTH_FORMAT", truth.TRUTH_FORMAT + 1)
    again = truth.ground_truth(emb, 8, 5, "data")  # another format: computed again
    np.testing.assert_array_equal(again.ids, first.ids)
    np.testing.assert_array_equal(again.distances, first.distances)
    assert len(list((cache / "truth").glob("*.json"))) == 2
