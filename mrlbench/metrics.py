"""Retrieval metrics (vectorised). Definitions in DESIGN.md; values are fractions in [0, 1].

For query q with label y and neighbours n_1..n_k: rel_i = [label(n_i) == y],
P_i = (rel_1 + ... + rel_i) / i, R_q = number of database items labelled y.

- ``standard``: AP@k = sum_i rel_i P_i / min(k, R_q); recall@k = hits / R_q (0 when the
  query's class is absent from the database).
- ``mrl-paper``: the reference notebook (``compute_metrics.ipynb``) digit for digit:
  AP@k divided by k, recall divided by the constant 1300.

In both modes a cut-off longer than the neighbour lists (a funnel keeps 10) is left
undefined (NaN), as the notebook drops it; ids of -1 are not relevant.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from mrlbench.errors import DataError

MODES = ("standard", "mrl-paper")
PAPER_RECALL_DENOMINATOR = 1300  # ImageNet-1K's largest class; the reference's constant


def metric_names(ks: Sequence[int]) -> list[str]:
    """Leaderboard metric columns, in order."""
    names = ["top1"]
    for prefix in ("mAP", "precision", "recall", "topk_acc"):
        names += [f"{prefix}@{k}" for k in ks]
    return names


def relevance(
    ids: np.ndarray, database_labels: np.ndarray, query_labels: np.ndarray, k: int
) -> np.ndarray:
    """(m, k) bool: whether each of the first k neighbours shares the query's label.
    Ids of -1, and places past the end of a short list, are not relevant."""
    ids = np.asarray(ids[:, :k])
    if len(ids) != len(query_labels):
        raise DataError(f"{len(ids)} neighbour rows but {len(query_labels)} queries")
    if ids.size and ids.max() >= len(database_labels):
        raise DataError(
            f"neighbour id {int(ids.max())} is outside the database ({len(database_labels)} rows)"
        )
    low = int(ids.min()) if ids.size else 0
    if low < -1:
        raise DataError(f"neighbour id {low} is negative")
    if low == -1:
        valid = ids >= 0
        rel = (database_labels[np.where(valid, ids, 0)] == query_labels[:, None]) & valid
    else:
        rel = np.take(database_labels, ids) == query_labels[:, None]
    if rel.shape[1] < k:
        rel = np.pad(rel, ((0, 0), (0, k - rel.shape[1])))
    return rel


def class_sizes(database_labels: np.ndarray, query_labels: np.ndarray) -> np.ndarray:
    """R_q: how many database items carry each query's label (0 if none)."""
    if len(database_labels) == 0:
        return np.zeros(len(query_labels), dtype=np.int64)
    low, high = int(database_labels.min()), int(database_labels.max())
    if low >= 0 and high < 4 * len(database_labels) + (1 << 20):  # class ids: count directly
        counts = np.bincount(database_labels, minlength=high + 1)
        inside = (query_labels >= 0) & (query_labels <= high)
        return np.where(inside, counts[np.clip(query_labels, 0, high)], 0)
    classes, counts = np.unique(database_labels, return_counts=True)
    pos = np.clip(np.searchsorted(classes, query_labels), 0, len(classes) - 1)
    return np.where(classes[pos] == query_labels, counts[pos], 0)


QUERY_CHUNK = 1024  # queries per step: temporaries stay small and in cache


def _compact(database_labels: np.ndarray, query_labels: np.ndarray) -> tuple[np.ndarray, ...]:
    """Labels in the smallest integer type that holds both (int16, else int32, else as
    given): a smaller table to gather from (ImageNet's 1.28M labels: 2.5 MB as int16)."""
    both = (database_labels, query_labels)
    ranges = [(int(x.min()), int(x.max())) for x in both if len(x)]
    for dtype in (np.int16, np.int32):
        info = np.iinfo(dtype)
        if all(info.min <= low and high <= info.max for low, high in ranges):
            return tuple(np.asarray(x, dtype=dtype) for x in both)
    return both


def _ap_sums(weighted_hits: np.ndarray, ks: Sequence[int]) -> np.ndarray:
    """(m, len(ks)): sum over places i <= k of ``weighted_hits`` / i for each (ascending)
    cut-off k, where ``weighted_hits`` is rel_i * (hits up to i), so each column is that
    cut-off's sum of rel_i P_i. One product per run of places between cut-offs, summed
    cumulatively (einsum: no BLAS threads of its own inside the query chunks' threads)."""
    bounds = [0, *ks]
    inverse = 1.0 / np.arange(1, bounds[-1] + 1)
    runs = [
        np.einsum("ij,j->i", weighted_hits[:, lo:hi], inverse[lo:hi])
        for lo, hi in itertools.pairwise(bounds)
    ]
    if not runs:
        return np.zeros((len(weighted_hits), 0))
    return np.cumsum(np.stack(runs, axis=1), axis=1)


def compute(
    ids: np.ndarray,
    database_labels: np.ndarray,
    query_labels: np.ndarray,
    ks: Sequence[int],
    mode: str = "standard",
    threads: int | None = None,
) -> dict[str, float]:
    """Every metric of ``metric_names(ks)``; NaN where a cut-off is longer than the lists.
    Chunks of queries run on ``threads`` threads (default: every core)."""
    if mode not in MODES:
        raise ValueError(f"unknown metrics mode '{mode}' (known: {', '.join(MODES)})")
    m = len(query_labels)
    if m == 0:
        raise DataError("the query set is empty")
    ks = sorted(set(int(k) for k in ks))
    if not ks or ks[0] < 1:
        raise ValueError("metric cut-offs must be positive integers")
    n_cols = ids.shape[1]
    defined = [k for k in ks if k <= n_cols]
    width = max([1, *defined])
    top1 = np.empty(m, dtype=bool)
    hit_counts = np.empty((m, len(defined)), dtype=np.int64)
    ap_sum_cols = np.empty((m, len(defined)), dtype=np.float64)
    last = [k - 1 for k in defined]
    count_type = np.int16 if width < 2**15 else np.int64
    db_labels, q_labels = _compact(database_labels, query_labels)

    def chunk(start: int) -> None:
        part = slice(start, start + QUERY_CHUNK)
        rel = relevance(ids[part], db_labels, q_labels[part], width)
        cum = np.cumsum(rel, axis=1, dtype=count_type)  # hits up to each place
        top1[part] = rel[:, 0]
        hit_counts[part] = cum[:, last]
        np.multiply(cum, rel, out=cum)  # rel_i * hits up to i; over i, rel_i * P_i
        ap_sum_cols[part] = _ap_sums(cum, defined)

    # numpy releases the GIL in these array operations: chunks run in parallel
    with ThreadPoolExecutor(max_workers=threads or os.cpu_count() or 1) as pool:
        list(pool.map(chunk, range(0, m, QUERY_CHUNK)))
    hits = {k: hit_counts[:, j] for j, k in enumerate(defined)}
    ap_sums = {k: ap_sum_cols[:, j] for j, k in enumerate(defined)}
    sizes = class_sizes(database_labels, query_labels) if mode == "standard" else None
    nan = float("nan")
    out: dict[str, float] = {"top1": float(top1.mean())}
    columns: dict[str, dict[int, float]] = {
        "mAP": {},
        "precision": {},
        "recall": {},
        "topk_acc": {},
    }
    for k in ks:
        if k not in hits:
            for values in columns.values():
                values[k] = nan
            continue
        if sizes is None:  # mrl-paper
            ap = ap_sums[k] / k
            recall = hits[k] / PAPER_RECALL_DENOMINATOR
        else:
            ap = _safe_divide(ap_sums[k], np.minimum(k, sizes))
            recall = _safe_divide(hits[k], sizes)
        columns["mAP"][k] = float(ap.mean())
        columns["precision"][k] = float((hits[k] / k).mean())
        columns["recall"][k] = float(recall.mean())
        columns["topk_acc"][k] = float((hits[k] > 0).mean())
    for name, values in columns.items():
        out.update({f"{name}@{k}": values[k] for k in ks})
    return out


def _safe_divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, 0 where den is 0 (a query whose class is absent from the database)."""
    return np.divide(num, den, out=np.zeros(len(num), dtype=np.float64), where=den > 0)


KNN_EPSILON = 1e-3  # ann-benchmarks' distance slack for k-NN recall


def knn_recall(
    ids: np.ndarray,
    truth: np.ndarray,
    ks: Sequence[int],
    distances: np.ndarray | None = None,
    truth_distances: np.ndarray | None = None,
    epsilon: float = KNN_EPSILON,
) -> dict[str, float]:
    """``knn_recall@k`` for each k of ``ks``, ann-benchmarks' rule: per query, the
    fraction of a row's first k ``ids`` that count, averaged over queries. A returned id
    counts when its distance to the query (``distances``, (m, >= k), aligned with
    ``ids``) is at most the k-th true distance (``truth_distances``, (m, >= k), ascending)
    plus ``epsilon``, so a tie or a duplicate of a true neighbour counts; one of the
    truth's own first k (``truth``, (m, >= k) ids) always counts, as its distance is at
    most the k-th. Without distances only that id match is known: the id-set recall.
    Ids of -1 never count; NaN where a list is shorter than k."""
    ids, truth = np.asarray(ids), np.asarray(truth)
    if len(ids) != len(truth):
        raise DataError(f"{len(ids)} neighbour rows but {len(truth)} ground-truth rows")
    if (distances is None) != (truth_distances is None):
        raise ValueError("give both the returned and the true distances, or neither")
    out = {}
    for k in sorted(set(int(k) for k in ks)):
        if k > ids.shape[1] or k > truth.shape[1]:
            out[f"knn_recall@{k}"] = float("nan")
            continue
        found = ids[:, :k]
        hit = (positions(found, truth[:, :k]) >= 0) & (found >= 0)
        if distances is not None and truth_distances is not None:
            within = np.asarray(truth_distances)[:, k - 1 : k] + epsilon
            hit |= (np.asarray(distances)[:, :k] <= within) & (found >= 0)
        out[f"knn_recall@{k}"] = float(hit.sum(axis=1).mean() / k)
    return out


def positions(ids: np.ndarray, table: np.ndarray) -> np.ndarray:
    """(m, n) int64: where each of ``ids[i]`` stands in ``table[i]`` (ids distinct within
    a row of ``table``), -1 where it is absent; vectorised by offsetting each row of the
    sorted table into its own range."""
    ids, table = np.asarray(ids, dtype=np.int64), np.asarray(table, dtype=np.int64)
    m, width = table.shape
    if width == 0 or ids.size == 0:
        return np.full(ids.shape, -1, dtype=np.int64)
    order = np.argsort(table, axis=1, kind="stable")
    ordered = np.take_along_axis(table, order, axis=1)
    low = min(int(ordered.min()), int(ids.min()))
    span = max(int(ordered.max()), int(ids.max())) - low + 1
    offset = (np.arange(m, dtype=np.int64) * span)[:, None]
    flat = (ordered - low + offset).ravel()
    pos = np.searchsorted(flat, (ids - low + offset).ravel()).reshape(ids.shape)
    pos = np.clip(pos - np.arange(m)[:, None] * width, 0, width - 1)
    match = np.take_along_axis(ordered, pos, axis=1) == ids
    return np.where(match, np.take_along_axis(order, pos, axis=1), -1)
