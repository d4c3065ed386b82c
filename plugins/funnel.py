"""Strategy ``funnel``: shortlist at a small prefix, then rerank in a cascade. Stage i
re-orders the first ``shortlists[i]`` candidates at ``rerank_dims[i]``; the result is the
final ``shortlists[-1]`` neighbours (as in the reference notebook)."""

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

FACTORS = (2, 4)  # tune: a funnel stage keeps 1/factor of the one before
MAX_STAGES = 5  # tune: rerank stages of a funnel (the MRL README's has 5)


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

    def list_lengths(self) -> dict[str, int]:
        """The first shortlist (the search's length; the others are not longer)."""
        return {"shortlists[0]": self.shortlists[0]}

    @classmethod
    def tune_candidates(cls, space: TuneSpace) -> list[TuneCandidate]:
        """Every funnel over ``space``: a shortlist dim among the smallest
        (``space.shortlist_dims()``), a cascade of up to ``MAX_STAGES`` larger rerank dims
        ending at the largest, a first shortlist from ``space.shortlists()`` and the
        stages' shortlists shrinking by a factor of ``FACTORS`` (``shrinking``). A few
        hundred: tune tries a seeded sample of them when more fit than its cap."""
        found: dict[str, TuneCandidate] = {}  # two factors can give one setting
        final, top = space.final, space.dims[-1]
        for low in space.shortlist_dims():
            search = space.search_mflops(low)
            select = space.selection_mflops
            middle = [d for d in space.dims[:-1] if d > low]
            for count in range(1, MAX_STAGES):
                for chain in itertools.combinations(middle, count):
                    cascade = [*chain, top]
                    for first, factor in itertools.product(space.shortlists(), FACTORS):
                        for sizes in shrinking(first, factor, len(cascade), final):
                            c = cls.candidate(low, cascade, sizes, search, select(sizes[0]))
                            found.setdefault(c.name, c)
        return list(found.values())

    @classmethod
    def candidate(
        cls,
        shortlist_dim: int,
        rerank_dims: list[int],
        shortlists: list[int],
        search: float,
        selection: float = 0.0,
    ) -> TuneCandidate:
        """One funnel setting whose search costs ``search`` MFLOPs and its top-k
        selection ``selection``."""
        cascade, sizes = ",".join(map(str, rerank_dims)), ",".join(map(str, shortlists))
        table = {
            "plugin": cls.name,
            "name": f"{cls.name} {shortlist_dim}->{cascade} @{sizes}",
            "shortlist_dim": shortlist_dim,
            "rerank_dims": list(rerank_dims),
            "shortlists": list(shortlists),
        }
        mflops = search + rerank_mflops(zip(shortlists, rerank_dims, strict=True))
        selection += rerank_selection_mflops((s, s) for s in shortlists)
        return TuneCandidate(table, mflops, mflops_with_selection=mflops + selection)

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
                selection_mflops=found.selection_mflops
                + rerank_selection_mflops((s, s) for s in self.shortlists),
            )
        ]

    def stem(self, model: str, dataset: str, index: str) -> str:
        """The reference pipeline's file name for this row, relative to ``neighbors/``."""
        dims, sizes = (",".join(map(str, v)) for v in (self.rerank_dims, self.shortlists))
        return (
            f"funnel_retrieval/{model}/{self.shortlist_dim}dim-cascade[{dims}]_"
            f"shortlist[{sizes}]_{dataset}_{index}"
        )


def shrinking(first: int, factor: int, stages: int, final: int) -> list[list[int]]:
    """Shortlists from ``first``, each stage keeping 1/``factor`` of the one before (at
    least ``final``); and the same with the last stage keeping exactly ``final`` (as the
    MRL README's 200, 100, 50, 25, 10). Settings where a stage keeps every candidate of
    the one before are not funnels and are left out."""
    sizes = [max(final, first // factor**j) for j in range(stages)]
    found = []
    for variant in (sizes, [*sizes[:-1], final]):
        if len(set(variant)) == len(variant) and variant not in found:
            found.append(variant)
    return found


@hookimpl
def mrlbench_register_strategies(register):
    register(Funnel)
