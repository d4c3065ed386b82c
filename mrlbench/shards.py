"""Sharded search (``shards = N`` on a backend that declares ``Backend.nearest``), done by
the harness, not by the plugin: the registry wraps the backend in ``Sharded``, which
splits the database into N row ranges, builds and searches each apart with the plugin's
own backend, and merges the per-shard top-k by distance, ties to the smaller id, which
is how a single exact search orders them: the same neighbours as one search.

Where the shards live is the run executor's ``Placement`` (given to ``sharded`` when
the config is built): in this process, searched one after the other (the local
executor); or one per worker (the Ray executor: an actor per shard, searched at once).
A remote shard reads its rows from the database's ``.npy`` file when the database is
memory-mapped (a path every node sees), else it is sent them. Each shard's rows, build
and search seconds are kept with the search (``report``: the search's sidecar in
``neighbors/``)."""

from __future__ import annotations

import contextlib
import itertools
import os
import socket
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mrlbench.errors import ConfigError, DataError, MrlbenchError
from mrlbench.execution import Placement
from mrlbench.types import Backend
from mrlbench.vectors import PrefixBlocks


def check_shards(shards: Any) -> int:
    """A backend's ``shards`` key: a positive integer."""
    if isinstance(shards, bool) or not isinstance(shards, int) or shards < 1:
        raise ConfigError(f"shards must be a positive integer, not {shards!r}")
    return shards


def row_ranges(n: int, shards: int) -> list[tuple[int, int]]:
    """``shards`` contiguous row ranges of near-equal size covering ``range(n)`` (none
    empty: at most ``n`` of them)."""
    bounds = np.linspace(0, n, min(shards, max(n, 1)) + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in itertools.pairwise(bounds)]


@dataclass(frozen=True)
class MappedRows:
    """Rows ``start:stop`` of a ``.npy`` file, opened memory-mapped where they are used
    (a remote shard reads its own rows from a path every node sees)."""

    path: str
    shape: tuple[int, ...]
    dtype: str
    start: int
    stop: int

    def load(self) -> np.ndarray:
        if not os.path.isfile(self.path):
            raise DataError(
                f"shard worker cannot see {self.path}: the arrays must be at the same path "
                "on every node"
            )
        whole = np.load(self.path, mmap_mode="r", allow_pickle=False)
        if whole.shape != tuple(self.shape) or str(whole.dtype) != self.dtype:
            raise DataError(f"shard worker reads another {self.path} than the driver")
        return whole[self.start : self.stop]


def portable(database: np.ndarray, start: int, stop: int) -> MappedRows | np.ndarray:
    """Rows ``start:stop`` as a remote shard gets them: the file's name and range when
    ``database`` is a whole memory-mapped ``.npy`` file, else the rows themselves."""
    path = getattr(database, "filename", None)
    if isinstance(database, np.memmap) and path and str(path).endswith(".npy"):
        try:
            whole = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError):
            whole = None
        if whole is not None and whole.shape == database.shape and whole.dtype == database.dtype:
            return MappedRows(str(path), tuple(database.shape), str(database.dtype), start, stop)
    return np.ascontiguousarray(database[start:stop])


class Shard:
    """One row range of a sharded index: the plugin's backend (given, or made again from
    its config table by the registry on a worker) and its index over the range's rows."""

    def __init__(
        self,
        backend: Backend | Mapping[str, Any],
        plugins_dirs: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        threads: int | None = None,
    ) -> None:
        if isinstance(backend, Backend):
            self.backend = backend
        else:  # on a worker: the plugins loaded here, the backend made from its table
            from mrlbench import plugins

            os.environ.update(env or {})
            for folder in plugins_dirs:
                plugins.load(folder)
            registry = plugins.registry()
            made = registry.create("backend", backend)[1]
            if not isinstance(made, Backend):
                raise ConfigError(f"shard worker: {backend.get('plugin')} is not a backend")
            self.backend = made
            if threads:
                from threadpoolctl import threadpool_limits

                threadpool_limits(limits=threads)
                self.backend.use_threads(threads)
        self.index: Any = None
        self.start = 0

    def build(
        self, rows: MappedRows | np.ndarray, start: int, dim: int, progress: Any = None
    ) -> tuple[float, str]:
        """Build over ``rows`` (database rows from ``start``); the seconds it took and
        where it is (``host:pid``)."""
        began = time.perf_counter()
        data = rows.load() if isinstance(rows, MappedRows) else rows
        self.start = start
        self.index = self.backend.build(PrefixBlocks(data, dim, on_block=progress), dim)
        return time.perf_counter() - began, f"{socket.gethostname()}:{os.getpid()}"

    def drop(self) -> None:
        """Free the index (the shard may serve the next one)."""
        self.index = None

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, float]:
        """(squared distances, database ids, seconds) of the ``k`` best rows of this shard
        for each query; -1 ids (at distance inf) where the shard has fewer than k rows."""
        began = time.perf_counter()
        dist, ids = self.backend.nearest(self.index, queries, k)
        ids = np.asarray(ids, dtype=np.int64)
        found = ids >= 0
        ids = np.where(found, ids + self.start, -1)
        dist = np.where(found, np.asarray(dist, dtype=np.float32), np.float32(np.inf))
        return dist, ids, time.perf_counter() - began


@dataclass
class ShardedIndex:
    """The shards of one prefix's index: handles (placed by ``placement``), row ranges,
    build seconds; the per-shard seconds of the searches since the last ``report``."""

    placement: Placement
    handles: list[Any]
    ranges: list[tuple[int, int]]
    dim: int
    build_seconds: list[float]
    build_wall: float
    workers: list[str]  # where each shard is: host:pid
    searches: list[tuple[int, list[float], float, float]] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return self.ranges[-1][1] if self.ranges else 0

    def __del__(self) -> None:  # freed after its searches: the shards may serve the next
        with contextlib.suppress(Exception):  # interpreter shutdown, a Ray already stopped
            self.placement.release(self.handles)

    def __len__(self) -> int:
        return self.rows


def build(
    backend: Backend,
    placement: Placement,
    chunks: Iterable[np.ndarray],
    dim: int,
    shards: int,
    threads: int | None,
) -> ShardedIndex:
    """A sharded index over ``chunks`` (a backend's ``build`` argument): ``shards`` row
    ranges, each built by ``backend`` (the plugin's own) where ``placement`` puts it."""
    began = time.perf_counter()
    if isinstance(chunks, PrefixBlocks):
        database, progress = chunks.database, chunks.on_block
    else:
        database, progress = np.concatenate(list(chunks)), None
    ranges = row_ranges(len(database), shards)
    args: list[tuple[Any, ...]]
    if placement.remote:
        from mrlbench import plugins

        table = dict(backend.table)
        if "plugin" not in table:
            raise ConfigError(f"{backend.name}: a sharded index off this process needs its table")
        env = plugins.worker_env()
        args = [(table, plugins.loaded_dirs(), env, threads)] * len(ranges)
        parts: list[Any] = [portable(database, a, b) for a, b in ranges]
        progress = None
    else:
        args = [(backend,)] * len(ranges)
        parts = [database[a:b] for a, b in ranges]
    handles = placement.start(Shard, args, gpu=backend.wants_gpu)
    calls = [(part, a, dim, progress) for part, (a, _) in zip(parts, ranges, strict=True)]
    built = placement.call(handles, "build", calls)
    return ShardedIndex(
        placement,
        handles,
        ranges,
        dim,
        [seconds for seconds, _ in built],
        time.perf_counter() - began,
        [where for _, where in built],
    )


def search(index: ShardedIndex, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(distances, ids), (m, k), best first: every shard's top ``k``, merged."""
    began = time.perf_counter()
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    parts = index.placement.call(index.handles, "search", [(queries, k)] * len(index.handles))
    merging = time.perf_counter()
    dist, ids = merge([(d, i) for d, i, _ in parts], k)
    done = time.perf_counter()
    index.searches.append((len(queries), [s for _, _, s in parts], done - merging, done - began))
    return dist, ids


def merge(parts: Sequence[tuple[np.ndarray, np.ndarray]], k: int) -> tuple[np.ndarray, np.ndarray]:
    """The best ``k`` of per-shard (distances, ids) lists of each query: by distance, ties
    to the smaller id (a single exact search's order); -1 ids (distance inf) last."""
    dist = np.concatenate([np.asarray(d, dtype=np.float32) for d, _ in parts], axis=1)
    ids = np.concatenate([np.asarray(i, dtype=np.int64) for _, i in parts], axis=1)
    missing = ids < 0
    dist = np.where(missing, np.float32(np.inf), dist)
    tie = np.where(missing, np.iinfo(np.int64).max, ids)  # padding after every real id
    order = np.lexsort((tie, dist), axis=1)[:, :k]
    dist, ids = np.take_along_axis(dist, order, axis=1), np.take_along_axis(ids, order, axis=1)
    if ids.shape[1] < k:
        pad = k - ids.shape[1]
        dist = np.pad(dist, ((0, 0), (0, pad)), constant_values=np.inf)
        ids = np.pad(ids, ((0, 0), (0, pad)), constant_values=-1)
    return dist, ids


def report(index: ShardedIndex) -> dict[str, Any]:
    """Each shard's rows and seconds (build; search: the best of the batch searches since
    the last report, all queries at once), and the totals: the wall-clock of the whole
    build and of the best batch search (shards, transfers and the merge)."""
    widest = max((s[0] for s in index.searches), default=0)
    batch = [s for s in index.searches if s[0] == widest]
    index.searches.clear()
    per_shard = np.min([s[1] for s in batch], axis=0) if batch else [None] * len(index.ranges)
    merge_s = min((s[2] for s in batch), default=None)
    total = min((s[3] for s in batch), default=None)
    return {
        "shards": [
            {
                "rows": [a, b],
                "build_s": round(build_s, 6),
                "search_s": _round(search_s),
                "worker": where,
            }
            for (a, b), build_s, search_s, where in zip(
                index.ranges, index.build_seconds, per_shard, index.workers, strict=True
            )
        ],
        "shards_build_s": round(index.build_wall, 6),
        "shards_search_s": _round(total),
        "shards_merge_s": _round(merge_s),
    }


def _round(value: Any) -> float | None:
    return None if value is None else round(float(value), 6)


class Sharded(Backend):
    """A backend whose database is split into ``shards`` row ranges (``shards = N``):
    what the plugin's ``backend`` is (names, device, exactness, parameters) with the
    sharded build, search and report. Made by ``sharded``; its ``table`` is the config
    table as written (``shards`` included), the plugin's backend's is without it."""

    cached = False  # the shards' indexes live with the shards

    def __init__(self, backend: Backend, shards: int, placement: Placement) -> None:
        self.backend, self.shards, self.placement = backend, shards, placement
        self.threads: int | None = None

    @property
    def index_name(self) -> str:
        return self.backend.index_name

    @property
    def cache_name(self) -> str:
        return self.backend.cache_name

    @property
    def device(self) -> str:
        return self.backend.device

    @property
    def exact(self) -> bool:
        return self.backend.exact

    @property
    def wants_gpu(self) -> bool | None:
        return False  # the cell's task needs none: its shards hold the GPUs

    def params(self) -> dict[str, Any]:
        return self.backend.params()

    def check(self, dim: int, k: int) -> None:
        self.backend.check(dim, k)

    def check_rows(self, rows: int) -> None:
        """Each shard's index is built over its own range: the smallest must do."""
        smallest = min(b - a for a, b in row_ranges(rows, self.shards))
        try:
            self.backend.check_rows(smallest)
        except MrlbenchError as exc:
            raise type(exc)(f"the smallest of its {self.shards} shards: {exc}") from None

    def environment(self) -> dict[str, Any]:
        return self.backend.environment()

    def use_threads(self, threads: int) -> None:
        self.backend.use_threads(threads)
        self.threads = threads

    def build(self, chunks: Iterable[np.ndarray], dim: int) -> ShardedIndex:
        return build(self.backend, self.placement, chunks, dim, self.shards, self.threads)

    def search(self, index: Any, queries: np.ndarray, k: int) -> tuple[np.ndarray, float]:
        _, ids = self.nearest(index, queries, k)
        return ids, float(len(index))  # the cost model's N * d, as one search over N rows

    def nearest(self, index: Any, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return search(index, queries, k)

    def index_report(self, index: Any) -> dict[str, Any]:
        return report(index)

    def effective_table(self) -> dict[str, Any]:
        return {**self.backend.effective_table(), "shards": self.shards}

    def write(self, index: Any, path: str) -> None:
        raise MrlbenchError(f"{self.name}: a sharded index keeps no index files")

    def read(self, path: str) -> Any:
        raise MrlbenchError(f"{self.name}: a sharded index keeps no index files")


def sharded(backend: Backend, shards: Any, placement: Placement | None = None) -> Backend:
    """``backend`` searched as ``shards`` row ranges placed by ``placement`` (this
    process when ``None``); ``backend`` itself for one shard. The wrapper's class carries
    the plugin's ``name`` and its ``availability``/``where``, so that file names, labels
    and checks are the plugin's."""
    shards = check_shards(shards)
    if not type(backend).shardable():
        raise ConfigError(
            f"shards = {shards}: {backend.name} cannot be sharded (it declares no "
            "Backend.nearest: the per-range search whose results the harness merges)"
        )
    if shards == 1:
        return backend
    cls = type(backend)
    wrapper = type(
        f"Sharded{cls.__name__}",
        (Sharded,),
        {
            "name": cls.name,
            "availability": staticmethod(cls.availability),
            "where": staticmethod(cls.where),
            "defaults": staticmethod(cls.defaults),
            "named": cls.named,
        },
    )
    return wrapper(backend, shards, placement or Placement())
