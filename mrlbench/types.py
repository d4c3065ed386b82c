"""Values that cross module lines (frozen dataclasses) and the component base classes."""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import numpy as np

from mrlbench.tune_space import TuneCandidate, TuneSpace


# ---------------------------------------------------------------------------------- values
@dataclass(frozen=True)
class Embeddings:
    """Database and query arrays of one representation; the arrays may be memory-mapped.

    The first ``d`` columns of ``database``/``queries`` are the size-``d`` prefix.
    """

    database: np.ndarray  # (n, D) floating
    queries: np.ndarray  # (m, D) floating
    database_labels: np.ndarray  # (n,) int64
    query_labels: np.ndarray  # (m,) int64
    dataset: str  # name of the database dataset, e.g. "1K"
    query_dataset: str  # name of the query dataset, e.g. "1K" or "V2"
    fingerprint: str  # content hash of the database array (index cache key)
    query_fingerprint: str = ""  # content hash of the queries ("": hashed when needed)


@dataclass(frozen=True)
class SearchRequest:
    """One k-NN search a strategy needs: ``k`` neighbours at prefix size ``dim``;
    ``k = None``: as many as the run's longest metric cut-off (``max(ks)``)."""

    dim: int
    k: int | None = None


@dataclass(frozen=True)
class Shortlist:
    """The result of one k-NN search over every query."""

    ids: np.ndarray  # (m, k) int64, best first, -1 where fewer than k were found
    seconds: float  # search wall-clock, all queries at once (index build excluded)
    mflops_per_query: float
    build_seconds: float  # index build (0 when loaded from the cache)
    device: str
    path: str = ""  # the neighbours file, relative to the run directory
    spread: float = 0.0  # relative spread of the timed repeats (max / min - 1)
    selection_mflops: float = 0.0  # selecting its k of the candidates it scored (cost.py)


@dataclass(frozen=True)
class Retrieval:
    """What a strategy returns for one leaderboard row."""

    label: str
    dims: tuple[int, ...]
    shortlists: tuple[int, ...]
    ids: np.ndarray  # (m, k) int64 final neighbours, best first
    mflops_per_query: float
    seconds: float  # retrieval wall-clock: its search plus its reranks, summed
    build_seconds: float
    stem: str | None = None  # neighbours file stem under neighbors/ to write, or
    saved: str = ""  # the path of an already written neighbours file (a search's)
    error: str = ""  # this row failed (its search did): the row keeps its label and why
    selection_mflops: float | None = None  # its stages' top-k selection (None: not counted)


class RetrievalContext(Protocol):
    """What the runner offers a strategy while it runs."""

    model: str  # encoder label: the neighbours sub-folder
    dataset: str  # query dataset name used in file names
    index_name: str  # "exactl2", "hnsw32", ... (as it appears in file names)
    n_database: int
    n_queries: int

    def search(self, dim: int, k: int | None = None) -> Shortlist:
        """The k-NN shortlist at prefix size ``dim`` (searched before ``run``);
        ``k = None``: the run's longest metric cut-off."""
        ...

    def rerank(self, ids: np.ndarray, dim: int, keep: int) -> tuple[np.ndarray, float]:
        """Re-order ``ids`` by L2 between normalised ``dim``-prefixes; (best ``keep``, seconds).

        A strategy sums the seconds of a row's search and reranks into the row's
        ``seconds``: the runner calls ``run`` once with every query (throughput) and once
        per query of a seeded sample (latency), so the sum is the row's time either way."""
        ...


class Observer:
    """Progress callbacks; the CLI draws them with rich. The default does nothing."""

    def begin(self, what: str, total: int) -> None:
        """A new unit of work of ``total`` steps starts."""

    def advance(self, steps: int = 1) -> None:
        """``steps`` more steps of the current unit are done."""

    def cell_done(self) -> None:
        """One more leaderboard cell (encoder x backend x strategy) is done."""


def accepted_arguments(cls: type) -> tuple[dict[str, inspect.Parameter], bool]:
    """Keyword arguments a component class takes, following ``**kwargs`` up its bases;
    and whether it takes any keyword at all (``**kwargs`` to the end)."""
    params: dict[str, inspect.Parameter] = {}
    for klass in cls.__mro__:
        if "__init__" not in vars(klass) or klass is object:
            continue
        sig = inspect.signature(vars(klass)["__init__"])
        rest = False
        for p in list(sig.parameters.values())[1:]:
            if p.kind is p.VAR_KEYWORD:
                rest = True
            elif p.kind is not p.VAR_POSITIONAL:
                params.setdefault(p.name, p)
        if not rest:
            return params, False
    return params, True


def _jsonable(values: Mapping[str, Any]) -> dict[str, Any]:
    """Default values as a key holds them: JSON scalars, lists and tables as they are,
    anything else (a component default such as a dataset object) by its ``repr``."""
    plain = (str, int, float, bool, type(None), list, tuple, dict)
    return {k: (v if isinstance(v, plain) else repr(v)) for k, v in values.items()}


class Component(ABC):
    """Base of every plugin component. ``name`` is the ``plugin = "..."`` config value.
    The runner sets ``observer`` before use, for components that report long work.

    ``components`` names keyword arguments that are themselves components (argument ->
    kind): the registry creates them from ``"name"`` or ``{plugin = "name", ...}``, so
    the component receives them ready. ``table`` is the config table the registry made
    this instance from (``plugin`` and the keyword arguments as given)."""

    name: ClassVar[str]
    kind: ClassVar[str]
    components: ClassVar[Mapping[str, str]] = {}
    paths: ClassVar[tuple[str, ...]] = ()  # keys holding file paths (a string or a table
    # of strings): relative ones are read from the config file's folder
    observer: Observer = Observer()
    table: Mapping[str, Any] = {}

    @classmethod
    def availability(cls) -> str | None:
        """``None`` when the component can run here, else the reason it cannot."""
        return None

    @classmethod
    def where(cls) -> str:
        """Where it would run here (shown by ``mrlbench plugins``)."""
        return ""

    def environment(self) -> dict[str, Any]:
        """What ``env.json`` records for this component: library versions under
        ``packages``, thread counts, devices, ..."""
        return {}

    def effective_table(self) -> dict[str, Any]:
        """``table`` with every keyword argument the config left out at its default:
        what the component runs with (resume and cache keys hold this, so a changed
        default never resumes an old result)."""
        table = dict(self.table)
        plugin = table.pop("plugin", getattr(type(self), "name", ""))
        return {"plugin": plugin, **{**type(self).defaults(), **table}}

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """Its keyword arguments' defaults, as a config table would hold them."""
        params, _ = accepted_arguments(cls)
        return _jsonable({n: p.default for n, p in params.items() if p.default is not p.empty})

    def use_threads(self, threads: int) -> None:
        """Use at most ``threads`` threads (``[run] threads``), for libraries that keep
        their own pool (FAISS's OpenMP, torch); BLAS is limited by the runner."""
        return None


class Encoder(Component):
    """Produces database/query embeddings for every prefix size it offers."""

    kind = "encoder"

    @property
    @abstractmethod
    def dims(self) -> tuple[int, ...]:
        """The nesting (prefix) sizes this encoder offers, ascending."""

    @abstractmethod
    def embeddings(self, dim: int) -> Embeddings:
        """Arrays whose first ``dim`` columns are the size-``dim`` representation."""

    def validate(self, dims: Sequence[int]) -> None:
        """Check, before a run does any work, that every file this encoder will read is
        there and sound and that it can serve ``dims`` (the prefix sizes the strategies
        name); raise a ``MrlbenchError`` saying what is wrong. Quick checks only: an
        encoder that must train or encode first checks its inputs, not its outputs."""
        return None

    def database_size(self) -> int | None:
        """The database's rows when known cheaply (memory-mapped arrays, generated
        vectors): ``[run] ks``, the strategies' ``list_lengths`` and the backends'
        ``check_rows`` are checked against it before a run; ``None``: known once encoded."""
        return None

    def thumbnails(self, split: str, rows: Sequence[int]) -> list[np.ndarray] | None:
        """Small RGB uint8 images of database (``split="database"``) or query rows, for
        retrieval examples in reports; ``None`` when the encoder has no images."""
        return None

    def models(self, dims: Sequence[int]) -> int:
        """How many separately trained models serve the prefix sizes ``dims`` (one row's
        search and rerank dims): 1 where one model's prefixes give every dim (MRL); more
        where a row chains fixed-feature models, one per size (reports mark such rows)."""
        return 1


class Backend(Component):
    """Builds an index over normalised prefixes and searches it.

    ``cached``: whether an index is worth writing to the index cache (HNSW, IVF, PQ);
    an exact backend that searches the streamed prefixes as they are sets it False.
    A backend that implements ``nearest`` can be sharded (``shards = N``): the harness
    builds and searches it once per row range and merges the results."""

    kind = "backend"
    cached: ClassVar[bool] = True
    named: ClassVar[tuple[str, ...]] = ()  # keys ``index_name`` spells out (``M``: hnsw32)

    @property
    @abstractmethod
    def index_name(self) -> str:
        """Index name used in file names: ``exactl2``, ``hnsw32``, ..."""

    @property
    def device(self) -> str:
        return "CPU"

    @property
    def exact(self) -> bool:
        """Whether its neighbours are the exact L2 ones (in fp32), for the cost model
        and tune; its ``knn_recall@k`` is measured all the same (``truth_kernel``)."""
        return False

    @property
    def truth_kernel(self) -> bool:
        """Whether one search of it is the ground truth's own computation
        (``mrlbench.knn.exact_knn`` over the whole database, fp32, as ``mrlbench.truth``
        runs it): a single-search row of it keeps ``knn_recall@k`` 1 without a second
        computation, only because it would be the same one. Every other row is measured."""
        return False

    @property
    def cache_name(self) -> str:
        """The index name of cached index files: ``index_name`` plus whatever build
        parameter sets the index apart (two settings never share a file)."""
        return self.index_name

    def params(self) -> dict[str, Any]:
        """Build parameters; a cached index is reused only when they match."""
        return {}

    def check(self, dim: int, k: int) -> None:
        """Raise a ``MrlbenchError`` before any build when a search of ``k`` neighbours
        at ``dim`` cannot run (e.g. a GPU k-selection limit)."""
        return None

    def check_rows(self, rows: int) -> None:
        """Raise a ``MrlbenchError`` naming the key, before a run, when no index over
        ``rows`` database rows can be built (IVF: fewer rows than ``nlist``)."""
        return None

    @property
    def wants_gpu(self) -> bool | None:
        """Whether its work needs a GPU: ``True`` (it must have one), ``None`` (it uses one
        where there is one: ``device = "auto"``) or ``False`` (CPU only). An executor
        that places work (Ray) asks for a GPU from it."""
        return False

    def index_report(self, index: Any) -> dict[str, Any]:
        """Facts about a built index worth keeping with its search (a sharded index:
        each shard's rows, build and search seconds); recorded in the search's sidecar."""
        return {}

    @abstractmethod
    def build(self, chunks: Iterable[np.ndarray], dim: int) -> Any:
        """Build an index from row chunks of L2-normalised float32 ``dim``-prefixes.

        ``chunks`` is a ``mrlbench.vectors.PrefixBlocks``: iterating it streams the
        blocks (again each time), so an exact backend may keep it as its index."""

    @abstractmethod
    def search(self, index: Any, queries: np.ndarray, k: int) -> tuple[np.ndarray, float]:
        """Search normalised queries; returns (ids (m, k) int64, distance computations/query)."""

    def nearest(self, index: Any, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(distances, ids), each (m, k), of the ``k`` nearest rows of ``index`` for each
        normalised query, best first: ids are the index's own rows (0 for its first);
        distances are squared L2, or squared L2 less a constant per query, comparable
        across indexes of the same backend; -1 ids at distance inf where the index has
        fewer than ``k`` rows. Declaring it makes the backend shardable (``shards = N``:
        ``mrlbench.shards`` merges the per-range results by distance, ties to the
        smaller id). The default declares nothing: the backend cannot be sharded."""
        raise NotImplementedError(f"{self.name} declares no nearest: it cannot be sharded")

    @classmethod
    def shardable(cls) -> bool:
        """Whether it implements ``nearest`` (and so takes ``shards = N``)."""
        return cls.nearest is not Backend.nearest

    @abstractmethod
    def write(self, index: Any, path: str) -> None:
        """Write the index to ``path`` (the caller makes it atomic)."""

    @abstractmethod
    def read(self, path: str) -> Any:
        """Read an index written by ``write``; raise on a corrupt file."""


class Strategy(Component):
    """Turns k-NN searches (and reranks) into leaderboard rows."""

    kind = "strategy"

    @abstractmethod
    def searches(self, dims: Sequence[int], n_database: int) -> list[SearchRequest]:
        """The searches ``run`` will ask for, given the encoder's ``dims`` and the
        database size."""

    @abstractmethod
    def run(self, ctx: RetrievalContext) -> list[Retrieval]:
        """Produce one ``Retrieval`` per leaderboard row."""

    def prefixes(self) -> list[int]:
        """The prefix sizes this strategy names itself (searched or reranked at), checked
        against every encoder before a run starts; ``[]``: only the encoder's own dims."""
        return []

    def list_lengths(self) -> dict[str, int]:
        """The list lengths it sets itself by config key (``{"shortlist": 200}``), checked
        against each encoder's database size before a run; ``{}``: only ``[run] ks``."""
        return {}

    @classmethod
    def tune_candidates(cls, space: TuneSpace) -> list[TuneCandidate]:
        """The settings of this strategy ``mrlbench tune`` may try in ``space`` (each a
        config table and its cost-model MFLOPs; ``mrlbench.tune_space``), or its
        ``"reference"`` settings, the baseline tune holds the others against. ``[]``
        (the default): tune leaves this strategy out."""
        return []


class Dataset(Component):
    """A labelled image collection split into a database and a query set."""

    kind = "dataset"

    @abstractmethod
    def split(self, which: str) -> Sequence[tuple[Any, int]]:
        """``"database"`` or ``"queries"``: a sequence of (image, label) pairs."""

    def validate(self) -> None:
        """Check (or make available, like a verified download) the files ``split`` will
        read, before a run does any work; raise a ``MrlbenchError`` when they are not."""
        return None
