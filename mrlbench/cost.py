"""The cost model: MFLOPs per query, one multiply-add counted as 1 (as in the paper's plots)."""

from __future__ import annotations

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
