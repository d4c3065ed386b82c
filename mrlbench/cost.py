"""The cost model: MFLOPs per query, one multiply-add counted as 1 (as in the paper's plots)."""

from __future__ import annotations

import math
from collections.abc import Iterable


def search_mflops(distance_computations_per_query: float, dim: int) -> float:
    """A search that computes ``distance_computations_per_query`` distances at ``dim``:
    ``N * d`` for exact search, measured ``ndis * d / queries`` for HNSW."""
    return distance_computations_per_query * dim / 1e6


def rerank_mflops(stages: Iterable[tuple[int, int]]) -> float:
    """Rerank stages as (candidates reranked, dim): each costs candidates * dim."""
    return sum(candidates * dim for candidates, dim in stages) / 1e6


def modelled_search_mflops(n_database: int, dim: int, exact: bool) -> float:
    """A search's MFLOPs as the model knows them before it runs: ``N * d`` for exact
    search; 0 for an ANN backend, whose distance computations are only known once
    measured (0 is a lower bound)."""
    return search_mflops(n_database, dim) if exact else 0.0


# ------------------------------------------------------------------ top-k selection
# The second cost column, ``mflops_with_selection``: the paper's MFLOPs plus the cost of
# selecting each stage's best k, in multiply-add equivalents (BENCHMARKS.md, "The cost
# of top-k selection", measures the constant on the 1K-size arrays).
SELECTION_COST = 1.0  # multiply-adds one candidate costs per doubling of k (measured)


def selection_mflops(candidates_per_query: float, k: int) -> float:
    """Selecting the best ``k`` of ``candidates_per_query`` per query:
    ``SELECTION_COST * C * log2(k)`` (a running heap of k: log2(k) per candidate), in
    MFLOPs; 0 for k = 1 or no candidate."""
    if candidates_per_query <= 0 or k <= 1:
        return 0.0
    return SELECTION_COST * candidates_per_query * math.log2(k) / 1e6


def rerank_selection_mflops(stages: Iterable[tuple[int, int]]) -> float:
    """Rerank stages as (candidates reranked, kept): each sorts its candidates, the
    selection of ``kept`` of them (``selection_mflops``)."""
    return sum(selection_mflops(candidates, kept) for candidates, kept in stages)


def modelled_selection_mflops(n_database: int, k: int, exact: bool) -> float:
    """A search's selection as the model knows it before it runs: ``N`` candidates for
    exact search; 0 for an ANN backend (its candidates are only counted once it runs)."""
    return selection_mflops(n_database, k) if exact else 0.0


def with_selection(mflops: float, selection: float | None) -> float | None:
    """A row's ``mflops_with_selection``: its MFLOPs plus its stages' selection
    (``None`` where its strategy does not count selection)."""
    return None if selection is None else mflops + selection
