"""Strategy ``adaptive``: shortlist at a small prefix, rerank the shortlist at a large one."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from mrlbench import (
    ConfigError,
    Retrieval,
    RetrievalContext,
    SearchRequest,
    Strategy,
    TuneCandidate,
    TuneSpace,
    hookimpl,
    rerank_mflops,
    rerank_selection_mflops,
)


class Adaptive(Strategy):
    """Adaptive retrieval: a k-NN shortlist at a small prefix, reranked at a large one.

    Args:
        shortlist_dim: Prefix size of the first k-NN search.
        rerank_dim: Prefix size the shortlist is re-ordered at (larger than
            ``shortlist_dim``).
        shortlist: Candidates kept from the first search, all reranked.
    """

    name = "adaptive"

    def __init__(self, shortlist_dim: int = 16, rerank_dim: int = 2048, shortlist: int = 200):
        if min(shortlist_dim, rerank_dim, shortlist) < 1:
            raise ConfigError("shortlist_dim, rerank_dim and shortlist must be positive")
        if rerank_dim <= shortlist_dim:
            raise ConfigError(
                f"rerank_dim ({rerank_dim}) must be larger than shortlist_dim ({shortlist_dim})"
            )
        self.shortlist_dim, self.rerank_dim, self.shortlist = shortlist_dim, rerank_dim, shortlist

    def searches(self, dims: Sequence[int], n_database: int) -> list[SearchRequest]:
        return [SearchRequest(self.shortlist_dim, self.shortlist)]

    def prefixes(self) -> list[int]:
        return [self.shortlist_dim, self.rerank_dim]

    def list_lengths(self) -> dict[str, int]:
        return {"shortlist": self.shortlist}

    @classmethod
    def tune_candidates(cls, space: TuneSpace) -> list[TuneCandidate]:
        """Every (shortlist dim, larger rerank dim, shortlist) over ``space``: shortlist
        dims among the smallest (``space.shortlist_dims()``), shortlists from
        ``space.shortlists()``. Few, so tune never cuts them."""
        found = []
        for low in space.shortlist_dims():
            search = space.search_mflops(low)
            highs = [d for d in space.dims if d > low]
            for high, size in itertools.product(highs, space.shortlists()):
                mflops = search + rerank_mflops([(size, high)])
                selection = space.selection_mflops(size) + rerank_selection_mflops([(size, size)])
                table = {
                    "plugin": cls.name,
                    "name": f"{cls.name} {low}->{high} @{size}",
                    "shortlist_dim": low,
                    "rerank_dim": high,
                    "shortlist": size,
                }
                found.append(TuneCandidate(table, mflops, "kept", mflops + selection))
        return found

    def run(self, ctx: RetrievalContext) -> list[Retrieval]:
        found = ctx.search(self.shortlist_dim, self.shortlist)
        ids, seconds = ctx.rerank(found.ids, self.rerank_dim, self.shortlist)
        return [
            Retrieval(
                label=f"adaptive {self.shortlist_dim}->{self.rerank_dim} @{self.shortlist}",
                dims=(self.shortlist_dim, self.rerank_dim),
                shortlists=(self.shortlist,),
                ids=ids,
                mflops_per_query=found.mflops_per_query
                + rerank_mflops([(self.shortlist, self.rerank_dim)]),
                seconds=found.seconds + seconds,
                build_seconds=found.build_seconds,
                stem=self.stem(ctx.model, ctx.dataset, ctx.index_name),
                selection_mflops=found.selection_mflops
                + rerank_selection_mflops([(self.shortlist, self.shortlist)]),
            )
        ]

    def stem(self, model: str, dataset: str, index: str) -> str:
        """The reference pipeline's file name for this row, relative to ``neighbors/``."""
        return (
            f"reranked/{model}/{self.shortlist_dim}dim-reranked{self.rerank_dim}_"
            f"{self.shortlist}shortlist_{dataset}_{index}"
        )


@hookimpl
def mrlbench_register_strategies(register):
    register(Adaptive)
