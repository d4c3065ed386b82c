"""Metrics against hand computation, a per-query brute force of DESIGN.md's definitions,
and the reference notebook's function (re-created verbatim)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mrlbench import metrics


def reference_notebook(val_classes, db_classes, neighbors, k):
    """``compute_mAP_recall_at_k`` from RAIVNLab/MRL retrieval/compute_metrics.ipynb."""
    APs = list()
    precision, recall, topk = [], [], []
    for i in range(val_classes.shape[0]):
        target = val_classes[i]
        indices = neighbors[i, :][:k]
        labels = db_classes[indices]
        matches = labels == target
        hits = np.sum(matches)
        topk.append(1 if hits > 0 else 0)
        tps = np.cumsum(matches)
        recall.append(np.sum(matches) / 1300)
        precision.append(np.sum(matches) / k)
        precs = tps.astype(float) / np.arange(1, k + 1, 1)
        APs.append(np.sum(precs[matches.squeeze()]) / k)
    return np.mean(APs), np.mean(precision), np.mean(recall), np.mean(topk)


def definitions(ids, yb, yq, k):
    """DESIGN.md's standard definitions, one query at a time."""
    aps, precs, recalls, accs = [], [], [], []
    for q in range(len(yq)):
        rel = [1 if (n >= 0 and yb[n] == yq[q]) else 0 for n in ids[q, :k]]
        r_q = int((yb == yq[q]).sum())
        p = [sum(rel[: i + 1]) / (i + 1) for i in range(len(rel))]
        aps.append(sum(r * pi for r, pi in zip(rel, p, strict=True)) / min(k, r_q) if r_q else 0)
        precs.append(sum(rel) / k)
        recalls.append(sum(rel) / r_q if r_q else 0)
        accs.append(1 if sum(rel) else 0)
    return np.mean(aps), np.mean(precs), np.mean(recalls), np.mean(accs)


def test_hand_computed_case():
    yb = np.array([0, 0, 1, 1, 1])
    yq = np.array([0, 1])
    ids = np.array([[0, 2, 1], [2, 0, -1]])
    m = metrics.compute(ids, yb, yq, [1, 3])
    # query 0: rel = 1,0,1; P = 1, 1/2, 2/3; R = 2 -> AP@3 = (1 + 2/3) / 2 = 5/6
    # query 1: rel = 1,0,0 (-1 is not relevant); R = 3 -> AP@3 = 1 / 3
    assert m["top1"] == 1.0
    assert m["mAP@3"] == pytest.approx((5 / 6 + 1 / 3) / 2)
    assert m["precision@3"] == pytest.approx((2 / 3 + 1 / 3) / 2)
    assert m["recall@3"] == pytest.approx((2 / 2 + 1 / 3) / 2)
    assert m["topk_acc@3"] == 1.0
    assert m["mAP@1"] == 1.0
    paper = metrics.compute(ids, yb, yq, [3], mode="mrl-paper")
    assert paper["mAP@3"] == pytest.approx(((1 + 2 / 3) / 3 + 1 / 3) / 2)
    assert paper["recall@3"] == pytest.approx((2 / 1300 + 1 / 1300) / 2)


def test_standard_matches_definitions_brute_force():
    rng = np.random.default_rng(1)
    yb = rng.integers(0, 7, 500)
    yq = rng.integers(0, 8, 60)  # class 7 is absent from the database: R_q = 0
    ids = rng.integers(-1, 500, (60, 40))
    got = metrics.compute(ids, yb, yq, [5, 10, 40])
    for k in (5, 10, 40):
        ap, prec, rec, acc = definitions(ids, yb, yq, k)
        assert got[f"mAP@{k}"] == pytest.approx(ap, abs=1e-12)
        assert got[f"precision@{k}"] == pytest.approx(prec, abs=1e-12)
        assert got[f"recall@{k}"] == pytest.approx(rec, abs=1e-12)
        assert got[f"topk_acc@{k}"] == pytest.approx(acc, abs=1e-12)


@pytest.mark.parametrize("offset", [0, 40_000, 2**40])  # int16, int32 and int64 labels
def test_every_label_width_and_many_cut_offs_match_the_definitions(offset):
    """The label table is gathered in the smallest integer type that holds it; the
    average-precision sums run between cut-offs: every width and cut-off agrees."""
    rng = np.random.default_rng(4)
    yb = rng.integers(0, 9, 700) + offset
    yq = rng.integers(0, 10, 90) + offset
    ids = rng.integers(-1, 700, (90, 60))
    ks = [1, 2, 3, 7, 20, 21, 59, 60, 61]
    got = metrics.compute(ids, yb, yq, ks)
    for k in ks[:-1]:
        want = definitions(ids, yb, yq, k)
        for name, value in zip(("mAP", "precision", "recall", "topk_acc"), want, strict=True):
            assert got[f"{name}@{k}"] == pytest.approx(value, abs=1e-12), (name, k)
    assert math.isnan(got["mAP@61"])


def test_mrl_paper_mode_equals_the_reference_notebook():
    rng = np.random.default_rng(2)
    yb = rng.integers(0, 20, 4000).astype(np.float16).reshape(-1, 1)  # as the reference saved
    yq = rng.integers(0, 20, 300).astype(np.float16).reshape(-1, 1)
    ids = rng.integers(0, 4000, (300, 100))
    got = metrics.compute(
        ids, yb[:, 0].astype(np.int64), yq[:, 0].astype(np.int64), [10, 25, 100], mode="mrl-paper"
    )
    assert got["top1"] == np.sum(yb[ids[:, 0]] == yq) / yq.shape[0]
    for k in (10, 25, 100):
        ap, prec, rec, acc = reference_notebook(yq, yb, ids, k)
        assert f"{got[f'mAP@{k}']:f}" == f"{ap:f}"  # the notebook prints %f
        assert got[f"mAP@{k}"] == pytest.approx(ap, rel=1e-12)
        assert got[f"precision@{k}"] == pytest.approx(prec, rel=1e-12)
        assert got[f"recall@{k}"] == pytest.approx(rec, rel=1e-12)
        assert got[f"topk_acc@{k}"] == pytest.approx(acc, rel=1e-12)


def test_cut_off_longer_than_the_lists_is_undefined():
    yb, yq = np.array([0, 1, 0]), np.array([0])
    got = metrics.compute(np.array([[0, 2]]), yb, yq, [2, 10])
    assert got["mAP@2"] == 1.0
    assert math.isnan(got["mAP@10"]) and math.isnan(got["recall@10"])


def test_bad_ids_are_clear_errors():
    from mrlbench.errors import DataError

    with pytest.raises(DataError, match="outside the database"):
        metrics.compute(np.array([[5]]), np.array([0, 1]), np.array([0]), [1])
    with pytest.raises(DataError, match="2 neighbour rows but 1 queries"):
        metrics.compute(np.array([[0], [1]]), np.array([0, 1]), np.array([0]), [1])
    with pytest.raises(DataError, match="empty"):
        metrics.compute(np.zeros((0, 1), int), np.array([0]), np.array([], int), [1])


def test_knn_recall_matches_a_set_intersection_by_hand():
    from mrlbench.metrics import knn_recall

    truth = np.array([[3, 1, 4, 5], [9, 2, 6, 0]])
    ids = np.array([[1, 3, 7, -1], [0, 6, 2, 9]])
    # k=1: {3}&{1} = 0, {9}&{0} = 0; k=2: {3,1}&{1,3} = 2, {9,2}&{0,6} = 0;
    # k=4: {3,1,4,5}&{1,3,7} = 2 (-1 matches nothing), {9,2,6,0}&{0,6,2,9} = 4
    got = knn_recall(ids, truth, [1, 2, 4, 5])
    assert got["knn_recall@1"] == 0.0
    assert got["knn_recall@2"] == (2 / 2 + 0 / 2) / 2
    assert got["knn_recall@4"] == (2 / 4 + 4 / 4) / 2
    assert np.isnan(got["knn_recall@5"])  # longer than the lists


def test_knn_recall_against_brute_force_sets():
    from mrlbench.metrics import knn_recall

    rng = np.random.default_rng(3)
    truth = np.stack([rng.permutation(5000)[:50] for _ in range(300)])
    ids = np.where(rng.random((300, 50)) < 0.3, rng.integers(5000, 9000, (300, 50)), truth)
    ids = np.stack([rng.permutation(row) for row in ids])  # order within a list is free
    ids[rng.random((300, 50)) < 0.05] = -1
    for k in (1, 10, 50):
        want = np.mean(
            [len(set(a[:k][a[:k] >= 0]) & set(b[:k])) / k for a, b in zip(ids, truth, strict=True)]
        )
        assert knn_recall(ids, truth, [k])[f"knn_recall@{k}"] == pytest.approx(want, abs=1e-12)


def test_knn_recall_tolerance_edge_counts_at_exactly_kth_plus_epsilon():
    from mrlbench.metrics import KNN_EPSILON, knn_recall

    truth = np.array([[0, 1, 2]])
    true_d = np.array([[0.25, 0.5, 0.75]])
    edge = true_d[0, 1] + KNN_EPSILON  # the k-th true distance (k=2) + 1e-3, as computed
    beyond = np.nextafter(edge, np.inf)
    ids = np.array([[7, 8, 9]])  # none of them the truth's: only distances decide
    got = knn_recall(ids, truth, [1, 2, 3], np.array([[0.25, edge, beyond]]), true_d)
    assert got["knn_recall@1"] == 1.0  # 0.25 <= 0.25 + 1e-3
    assert got["knn_recall@2"] == 1.0  # exactly at the edge counts
    assert got["knn_recall@3"] == pytest.approx(1.0)  # beyond 0.5 + 1e-3 but within 0.75's
    over = knn_recall(ids, truth, [2], np.array([[0.25, beyond, 0.0]]), true_d)
    assert over["knn_recall@2"] == 0.5  # one ulp past the edge: a miss
    assert KNN_EPSILON == 1e-3  # ann-benchmarks' epsilon


def test_knn_recall_by_distance_never_counts_a_missing_id():
    from mrlbench.metrics import knn_recall

    truth, true_d = np.array([[0, 1]]), np.array([[0.1, 0.2]])
    got = knn_recall(np.array([[-1, 0]]), truth, [2], np.array([[0.0, 0.1]]), true_d)
    assert got["knn_recall@2"] == 0.5  # -1 never counts, even at a small distance
    with pytest.raises(ValueError, match="both"):
        knn_recall(np.array([[0, 1]]), truth, [2], np.array([[0.1, 0.2]]))


def test_the_metrics_command_starts_without_the_heavy_packages():
    """``mrlbench metrics`` pays no import it does not use (issue 20: numba, the exact
    kernel's compiler, was 0.15-0.3 s of every command's start-up); a fresh interpreter,
    so that nothing imported by other tests hides it."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from mrlbench.cli import main\n"
        "try:\n"
        "    main(['metrics', '--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted(m for m in ('numba', 'torch', 'faiss', 'ray', 'pandas') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout
