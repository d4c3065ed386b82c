"""Strategy ``flat``: single-shot k-NN at each prefix size, one leaderboard row per dim."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mrlbench import (
    ConfigError,
    MrlbenchError,
    Retrieval,
    RetrievalContext,
    SearchRequest,
    Strategy,
    TuneCandidate,
    TuneSpace,
    hookimpl,
    search_mflops,
    selection_mflops,
)


class Flat(Strategy):
    """Single-shot k-NN at each prefix size: one leaderboard row per dim.

    ``dims`` defaults to every dim the encoder offers. ``k`` (list length searched)
    defaults to the run's longest metric cut-off, so a row is timed for exactly the
    neighbours it is scored on; a ``k`` set here (the reference searched 2048) is that
    row's own, shown in its label and its time.

    Args:
        dims: Prefix sizes, one row each (default: every dim the encoder offers).
        k: Neighbours searched per query (default: the run's longest cut-off).
    """

    name = "flat"

    def __init__(self, dims: list[int] | None = None, k: int | None = None) -> None:
        if dims is not None and (not dims or any(int(d) < 1 for d in dims)):
            raise ConfigError("dims must be a non-empty list of positive integers")
        if k is not None and k < 1:
            raise ConfigError("k must be a positive integer")
        self.dims = None if dims is None else sorted({int(d) for d in dims})
        self.k = k
        self._requests: list[SearchRequest] = []

    def searches(self, dims: Sequence[int], n_database: int) -> list[SearchRequest]:
        self._requests = [SearchRequest(d, self.k) for d in (self.dims or dims)]
        return self._requests

    def prefixes(self) -> list[int]:
        return list(self.dims or [])

    def list_lengths(self) -> dict[str, int]:
        return {} if self.k is None else {"k": self.k}

    @classmethod
    def tune_candidates(cls, space: TuneSpace) -> list[TuneCandidate]:
        """Not tuned: flat at every dim is tune's reference curve; its dearest row is
        exact search at the largest dim."""
        cost = search_mflops(space.n_database, space.dims[-1])
        charged = cost + selection_mflops(space.n_database, space.final)
        return [TuneCandidate({"plugin": cls.name}, cost, "reference", charged)]

    def run(self, ctx: RetrievalContext) -> list[Retrieval]:
        rows = []
        for req in self._requests:
            label = f"flat@{req.dim}" + (f" k={req.k}" if req.k else "")
            try:
                found = ctx.search(req.dim, req.k)
            except MrlbenchError as exc:  # this dim's row fails; the other dims keep theirs
                empty = np.zeros((0, 0), dtype=np.int64)
                rows.append(Retrieval(label, (req.dim,), (), empty, 0.0, 0.0, 0.0, error=str(exc)))
                continue
            rows.append(
                Retrieval(
                    label=label,
                    dims=(req.dim,),
                    shortlists=(found.ids.shape[1],),
                    ids=found.ids,
                    mflops_per_query=found.mflops_per_query,
                    seconds=found.seconds,
                    build_seconds=found.build_seconds,
                    saved=found.path,
                    selection_mflops=found.selection_mflops,
                )
            )
        return rows


@hookimpl
def mrlbench_register_strategies(register):
    register(Flat)
