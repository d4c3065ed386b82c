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
# selecting each stage's best k, in multiply-add equivalents. The two constants are this
# machine's, fitted to the CPU time of exact search on the 1K-size arrays (BENCHMARKS.md,
# "The cost of top-k selection": within 7% at every dim up to 256 and k from 10 to 800).
SCAN_COST = 125.0  # a candidate compared with the running k-th best
HEAP_COST = 950.0  # one level of a heap insertion


def selection_mflops(candidates_per_query: float, k: int) -> float:
    """Selecting the best ``k`` of C = ``candidates_per_query`` per query, in MFLOPs:
    ``SCAN_COST * C + HEAP_COST * k * ln(C / k) * log2(k)``: every candidate is compared
    with the running k-th best, and about k ln(C / k) of them (in a random order) enter
    the heap of k, at log2(k) levels each. 0 without candidates."""
    if candidates_per_query <= 0:
        return 0.0
    entering = k * math.log(candidates_per_query / k) if candidates_per_query > k else 0.0
    heap = entering * math.log2(k) if k > 1 else 0.0
    return (SCAN_COST * candidates_per_query + HEAP_COST * heap) / 1e6


def rerank_selection_mflops(stages: Iterable[tuple[int, int]]) -> float:
    """Rerank stages as (candidates reranked, kept): each selects ``kept`` of its
    candidates (``selection_mflops``; keeping them all, ``SCAN_COST`` per candidate)."""
    return sum(selection_mflops(candidates, kept) for candidates, kept in stages)


def modelled_selection_mflops(n_database: int, k: int, exact: bool) -> float:
    """A search's selection as the model knows it before it runs: ``N`` candidates for
    exact search; 0 for an ANN backend (its candidates are only counted once it runs)."""
    return selection_mflops(n_database, k) if exact else 0.0


def with_selection(mflops: float, selection: float | None) -> float | None:
    """A row's ``mflops_with_selection``: its MFLOPs plus its stages' selection
    (``None`` where its strategy does not count selection)."""
    return None if selection is None else mflops + selection
