"""What a strategy offers ``mrlbench tune`` (``Strategy.tune_candidates``): the space it
tunes in, one candidate setting, and the grids the built-in strategies share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from mrlbench import cost

SHORTLISTS = (10, 25, 50, 100, 200, 400, 800)  # shortlist sizes tried
LOW_RATIO = 8  # a shortlist dim is at most 1/8 of the largest dim ...
MAX_LOW_DIMS = 4  # ... and one of the 4 smallest

Role = Literal["sampled", "kept", "reference"]


@dataclass(frozen=True)
class TuneSpace:
    """What tune tunes for: the encoder's ``dims`` (made ascending and unique), the
    database size, ``final`` (the headline metric's cut-off: a setting's final list
    should hold at least that many neighbours) and whether the backend is exact."""

    dims: tuple[int, ...]
    n_database: int
    final: int
    exact: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "dims", tuple(sorted(set(self.dims))))

    def shortlists(self, grid: tuple[int, ...] = SHORTLISTS) -> list[int]:
        """The sizes of ``grid`` a list may have: at least ``final``, at most the database."""
        return [s for s in grid if self.final <= s <= self.n_database]

    def shortlist_dims(self, ratio: int = LOW_RATIO, most: int = MAX_LOW_DIMS) -> list[int]:
        """Dims a first, cheap search may run at: at most 1/``ratio`` of the largest dim
        and among the ``most`` smallest (the smallest dim when no dim is that small)."""
        dims = self.dims
        return [d for d in dims[:-1] if d * ratio <= dims[-1]][:most] or list(dims[:1])

    def search_mflops(self, dim: int) -> float:
        """The cost model's MFLOPs of a search at ``dim`` on this backend
        (``cost.modelled_search_mflops``: 0, a lower bound, for an ANN backend)."""
        return cost.modelled_search_mflops(self.n_database, dim, self.exact)

    def selection_mflops(self, k: int) -> float:
        """The cost model's top-k selection of a search of ``k`` on this backend
        (``cost.modelled_selection_mflops``: 0, a lower bound, for an ANN backend)."""
        return cost.modelled_selection_mflops(self.n_database, k, self.exact)


@dataclass(frozen=True)
class TuneCandidate:
    """One strategy setting tune may run: its config table (``plugin``, a ``name`` unique
    among every strategy's candidates, the keyword arguments), the cost model's MFLOPs
    per query, from ``mrlbench.cost`` (for an ANN backend a lower bound: its search's
    cost is only known once measured) and, optionally, ``mflops_with_selection``: the
    same with each stage's top-k selection charged (``cost.selection_mflops``; tune
    prunes on it without an MFLOPs budget, ``cost``). Tune drops every candidate over
    the MFLOPs budget before anything runs. ``role``:

    - ``"sampled"``: tried on the query sample; when more settings fit than tune's cap, a
      seeded sample of the sampled ones is tried;
    - ``"kept"``: tried and never cut by the cap (a strategy's few basic settings);
    - ``"reference"``: not tuned: the baseline, run on every query next to the front and
      drawn as the curve it is held against. Its MFLOPs are those of its dearest row on
      exact search: without an MFLOPs budget, no tried setting dearer than the dearest
      reference is (nothing dearer can pay off)."""

    table: dict[str, Any]
    mflops: float
    role: Role = "sampled"
    mflops_with_selection: float | None = None

    @property
    def cost(self) -> float:
        """What tune prunes on: ``mflops_with_selection`` (the MFLOPs with each stage's
        top-k selection charged, ``mrlbench.cost``), or ``mflops`` where the strategy
        does not count selection (a lower bound)."""
        return self.mflops if self.mflops_with_selection is None else self.mflops_with_selection

    @property
    def name(self) -> str:
        """The strategy label its rows get (the table's ``name``, else its ``plugin``)."""
        return str(self.table.get("name") or self.table["plugin"])
