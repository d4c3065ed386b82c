"""Strategy ``funnel``: shortlist at a small prefix, then rerank in a cascade. Stage i
re-orders the first ``shortlists[i]`` candidates at ``rerank_dims[i]``; the result is the
final ``shortlists[-1]`` neighbours (as in the reference notebook)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from mrlbench.cost import rerank_mflops
from mrlbench.errors import ConfigError
from mrlbench.hookspecs import hookimpl
from mrlbench.types import Retrieval, RetrievalContext, SearchRequest, Strategy


class Funnel(Strategy):
    """Funnel retrieval: a shortlist at a small prefix, reranked in a cascade of growing
    dims and shrinking shortlists.

    Args:
        shortlist_dim: Prefix size of the first k-NN search.
        rerank_dims: Prefix size of each rerank stage, increasing (default: 16, 32, 64,
            128, 2048).
        shortlists: Candidates each stage re-orders, not growing; the first is the
            search's length, the last the neighbours kept (default: 200, 100, 50, 25, 10).
    """

    name = "funnel"

    def __init__(
        self,
        shortlist_dim: int = 8,
        rerank_dims: list[int] | None = None,
        shortlists: list[int] | None = None,
    ) -> None:
        dims = list(rerank_dims or [16, 32, 64, 128, 2048])
        sizes = list(shortlists or [200, 100, 50, 25, 10])
        if len(dims) != len(sizes):
            raise ConfigError(
                f"rerank_dims ({len(dims)}) and shortlists ({len(sizes)}) differ in length"
            )
        if min([shortlist_dim, *dims, *sizes]) < 1:
            raise ConfigError("dims and shortlists must be positive integers")
        chain = [shortlist_dim, *dims]
        if any(b <= a for a, b in itertools.pairwise(chain)):
            raise ConfigError(f"funnel dims must increase: {chain}")
        if any(b > a for a, b in itertools.pairwise(sizes)):
            raise ConfigError(f"funnel shortlists must not grow: {sizes}")
        self.shortlist_dim, self.rerank_dims, self.shortlists = shortlist_dim, dims, sizes

    def searches(self, dims: Sequence[int], n_database: int) -> list[SearchRequest]:
        return [SearchRequest(self.shortlist_dim, self.shortlists[0])]

    def prefixes(self) -> list[int]:
        return [self.shortlist_dim, *self.rerank_dims]

    def run(self, ctx: RetrievalContext) -> list[Retrieval]:
        found = ctx.search(self.shortlist_dim, self.shortlists[0])
        ids, seconds = found.ids, found.seconds
        for dim, keep in zip(self.rerank_dims, self.shortlists, strict=True):
            ids, stage_seconds = ctx.rerank(ids[:, :keep], dim, keep)
            seconds += stage_seconds
        cascade = ",".join(map(str, self.rerank_dims))
        return [
            Retrieval(
                label=f"funnel {self.shortlist_dim}->{cascade} @"
                + ",".join(map(str, self.shortlists)),
                dims=(self.shortlist_dim, *self.rerank_dims),
                shortlists=tuple(self.shortlists),
                ids=ids,
                mflops_per_query=found.mflops_per_query
                + rerank_mflops(zip(self.shortlists, self.rerank_dims, strict=True)),
                seconds=seconds,
                build_seconds=found.build_seconds,
                stem=self.stem(ctx.model, ctx.dataset, ctx.index_name),
            )
        ]

    def stem(self, model: str, dataset: str, index: str) -> str:
        """The reference pipeline's file name for this row, relative to ``neighbors/``."""
        dims, sizes = (",".join(map(str, v)) for v in (self.rerank_dims, self.shortlists))
        return (
            f"funnel_retrieval/{model}/{self.shortlist_dim}dim-cascade[{dims}]_"
            f"shortlist[{sizes}]_{dataset}_{index}"
        )


@hookimpl
def mrlbench_register_strategies(register):
    register(Funnel)
