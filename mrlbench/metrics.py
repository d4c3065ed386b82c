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

from collections.abc import Sequence

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
    ids = np.asarray(ids[:, :k], dtype=np.int64)
    if len(ids) != len(query_labels):
        raise DataError(f"{len(ids)} neighbour rows but {len(query_labels)} queries")
    if ids.size and ids.max() >= len(database_labels):
        raise DataError(
            f"neighbour id {int(ids.max())} is outside the database ({len(database_labels)} rows)"
        )
    if ids.size and ids.min() < -1:
        raise DataError(f"neighbour id {int(ids.min())} is negative")
    valid = ids >= 0
    rel = (database_labels[np.where(valid, ids, 0)] == query_labels[:, None]) & valid
    if rel.shape[1] < k:
        rel = np.pad(rel, ((0, 0), (0, k - rel.shape[1])))
    return rel


def class_sizes(database_labels: np.ndarray, query_labels: np.ndarray) -> np.ndarray:
    """R_q: how many database items carry each query's label (0 if none)."""
    classes, counts = np.unique(database_labels, return_counts=True)
    pos = np.clip(np.searchsorted(classes, query_labels), 0, max(len(classes) - 1, 0))
    found = classes[pos] == query_labels if len(classes) else np.zeros(len(query_labels), bool)
    return np.where(found, counts[pos] if len(classes) else 0, 0)


def compute(
    ids: np.ndarray,
    database_labels: np.ndarray,
    query_labels: np.ndarray,
    ks: Sequence[int],
    mode: str = "standard",
) -> dict[str, float]:
    """Every metric of ``metric_names(ks)``; NaN where a mode leaves one undefined."""
    if mode not in MODES:
        raise ValueError(f"unknown metrics mode '{mode}' (known: {', '.join(MODES)})")
    if len(query_labels) == 0:
        raise DataError("the query set is empty")
    ks = sorted(set(int(k) for k in ks))
    if not ks or ks[0] < 1:
        raise ValueError("metric cut-offs must be positive integers")
    n_cols = ids.shape[1]
    rel = relevance(ids, database_labels, query_labels, max(ks[-1], 1))
    hits_cum = np.cumsum(rel, axis=1)
    precisions = hits_cum / np.arange(1, rel.shape[1] + 1)
    out: dict[str, float] = {"top1": float(rel[:, 0].mean())}
    sizes = class_sizes(database_labels, query_labels)
    per_k: dict[str, dict[int, float]] = {"mAP": {}, "precision": {}, "recall": {}, "topk_acc": {}}
    for k in ks:
        if k > n_cols:
            for values in per_k.values():
                values[k] = float("nan")
            continue
        hits = hits_cum[:, k - 1]
        ap_sum = np.where(rel[:, :k], precisions[:, :k], 0.0).sum(axis=1)
        if mode == "mrl-paper":
            ap = ap_sum / k
            recall = hits / PAPER_RECALL_DENOMINATOR
        else:
            ap = _safe_divide(ap_sum, np.minimum(k, sizes))
            recall = _safe_divide(hits, sizes)
        per_k["mAP"][k] = float(ap.mean())
        per_k["precision"][k] = float((hits / k).mean())
        per_k["recall"][k] = float(recall.mean())
        per_k["topk_acc"][k] = float((hits > 0).mean())
    for name, values in per_k.items():
        out.update({f"{name}@{k}": values[k] for k in ks})
    return out


def _safe_divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, 0 where den is 0 (a query whose class is absent from the database)."""
    return np.divide(num, den, out=np.zeros(len(num), dtype=np.float64), where=den > 0)
