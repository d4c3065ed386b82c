"""Neighbour file stems (relative to ``neighbors/``), compatible with the reference pipeline."""

from __future__ import annotations

from collections.abc import Sequence


def _list(values: Sequence[int]) -> str:
    return "[" + ",".join(str(v) for v in values) + "]"


def flat_stem(model: str, index: str, dim: int, k: int, dataset: str) -> str:
    return f"{model}/{index}_{dim}dim_{k}shortlist_{dataset}"


def adaptive_stem(
    model: str, shortlist_dim: int, rerank_dim: int, shortlist: int, dataset: str, index: str
) -> str:
    return (
        f"reranked/{model}/{shortlist_dim}dim-reranked{rerank_dim}_{shortlist}shortlist_"
        f"{dataset}_{index}"
    )


def funnel_stem(
    model: str,
    shortlist_dim: int,
    rerank_dims: Sequence[int],
    shortlists: Sequence[int],
    dataset: str,
    index: str,
) -> str:
    return (
        f"funnel_retrieval/{model}/{shortlist_dim}dim-cascade{_list(rerank_dims)}_"
        f"shortlist{_list(shortlists)}_{dataset}_{index}"
    )
