"""An example third-party mrlbench plugin, installed through the ``mrlbench`` entry-point
group. It implements every hook:

- encoder ``blobs``: seeded Gaussian blobs whose class signal fades with the dimension;
- backend ``numpy-exact``: exact L2 search with a numpy matrix product;
- strategy ``random``: random neighbours, the chance-level floor of every metric, with
  settings ``mrlbench tune`` tries (``tune_candidates``);
- dataset ``stripes``: small generated grey images, one stripe orientation per class;
- executor ``processes``: each encoder x backend pair in a worker process of a pool (the
  pattern a cluster executor follows, on the standard library alone);
- command ``mrlbench example-hello``.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

import click
import numpy as np

from mrlbench import (
    Backend,
    Dataset,
    Embeddings,
    Encoder,
    Executor,
    Retrieval,
    RetrievalContext,
    SearchRequest,
    Strategy,
    TuneCandidate,
    TuneSpace,
    WorkUnit,
    hookimpl,
    scan,
)


class Blobs(Encoder):
    name = "blobs"

    def __init__(
        self,
        n_database: int = 2000,
        n_queries: int = 100,
        dim: int = 64,
        classes: int = 8,
        seed: int = 0,
    ) -> None:
        rng = np.random.default_rng(seed)
        fade = np.linspace(1.0, 0.1, dim, dtype=np.float32)
        centres = rng.standard_normal((classes, dim), dtype=np.float32) * fade
        yb, yq = rng.integers(0, classes, n_database), rng.integers(0, classes, n_queries)
        xb = centres[yb] + 0.7 * rng.standard_normal((n_database, dim), dtype=np.float32)
        xq = centres[yq] + 0.7 * rng.standard_normal((n_queries, dim), dtype=np.float32)
        self._emb = Embeddings(xb, xq, yb, yq, "blobs", "blobs", scan(xb))
        self._dims = tuple(d for d in (8, 16, 32, 64, 128) if d <= dim)

    @property
    def dims(self) -> tuple[int, ...]:
        return self._dims

    def embeddings(self, dim: int) -> Embeddings:
        return self._emb


_CLOCK = [0.0]  # seconds on the virtual clock


def virtual_clock() -> float:
    """A deterministic clock for speed gates (``pytest --benchmark-timer
    mrlbench_example.virtual_clock``): each reading is 1 ms after the last, and a search
    slowed by ``EXAMPLE_SLOWDOWN_S`` moves it on by that much more, so a slowdown (or its
    absence) reads the same on a busy machine as on an idle one."""
    _CLOCK[0] += 0.001
    return _CLOCK[0]


class NumpyExact(Backend):
    name = "numpy-exact"

    @property
    def index_name(self) -> str:
        return "numpyl2"

    def build(self, chunks: Iterable[np.ndarray], dim: int) -> Any:
        return np.concatenate(list(chunks))

    def search(self, index: Any, queries: np.ndarray, k: int) -> tuple[np.ndarray, float]:
        # stands in for a change that makes the plugin slower (README: tracking speed)
        slowdown = float(os.environ.get("EXAMPLE_SLOWDOWN_S", "0"))
        time.sleep(slowdown)
        _CLOCK[0] += slowdown
        dist = (index**2).sum(1)[None, :] - 2 * queries @ index.T
        ids = np.argsort(dist, axis=1, kind="stable")[:, :k]
        return ids.astype(np.int64), float(len(index))

    def write(self, index: Any, path: str) -> None:
        with open(path, "wb") as f:
            np.save(f, index)

    def read(self, path: str) -> Any:
        return np.load(path, allow_pickle=False)


class Random(Strategy):
    name = "random"

    def __init__(self, k: int = 100, seed: int = 0) -> None:
        self.k, self.seed = k, seed

    def searches(self, dims: Sequence[int], n_database: int) -> list[SearchRequest]:
        return []

    @classmethod
    def tune_candidates(cls, space: TuneSpace) -> list[TuneCandidate]:
        """Random lists of the headline cut-off and of 100 neighbours: no search and no
        rerank, so nothing the cost model counts (0 MFLOPs)."""
        sizes = sorted({k for k in (space.final, 100) if k <= space.n_database})
        return [
            TuneCandidate({"plugin": cls.name, "name": f"random k={k}", "k": k}, 0.0, "kept")
            for k in sizes
        ]

    def run(self, ctx: RetrievalContext) -> list[Retrieval]:
        rng = np.random.default_rng(self.seed)
        ids = rng.integers(0, ctx.n_database, (ctx.n_queries, self.k))
        return [Retrieval(f"random @{self.k}", (), (self.k,), ids, 0.0, 0.0, 0.0)]


class Stripes(Dataset):
    name = "stripes"

    def __init__(self, n: int = 40, size: int = 16) -> None:
        self.n, self.size = n, size

    def split(self, which: str) -> Sequence[tuple[Any, int]]:
        offset = 0 if which == "database" else 1
        items = []
        for i in range(self.n):
            label = i % 4
            img = np.zeros((self.size, self.size), np.uint8)
            step = 2 + label
            if label % 2:
                img[:, offset::step] = 255
            else:
                img[offset::step, :] = 255
            items.append((img, label))
        return items


class Processes(Executor):
    """Each encoder x backend pair in a worker process (``[run.executor]`` with ``name =
    "processes"`` and ``workers = 2``): the driver decides what is finished, the workers
    compute, the driver writes what they return.

    Args:
        workers: Worker processes of the pool.
    """

    name = "processes"

    def __init__(self, workers: int = 2) -> None:
        self.workers = workers

    def run(self, cfg: Any, units: Sequence[WorkUnit]) -> None:
        spawn = multiprocessing.get_context("spawn")  # fresh workers: plugins load there
        with ProcessPoolExecutor(self.workers, mp_context=spawn) as pool:
            futures = {}
            for unit in units:
                task = unit.prepare()
                if task is not None:
                    function, argument = task
                    futures[pool.submit(function, argument)] = unit
            for future in as_completed(futures):
                unit = futures[future]
                try:
                    outcome = future.result()
                except Exception as exc:
                    unit.fail(f"{type(exc).__name__}: {exc}")
                else:
                    unit.finish(outcome)


@hookimpl
def mrlbench_register_executors(register):
    register(Processes)


@hookimpl
def mrlbench_register_encoders(register):
    register(Blobs)


@hookimpl
def mrlbench_register_backends(register):
    register(NumpyExact)


@hookimpl
def mrlbench_register_strategies(register):
    register(Random)


@hookimpl
def mrlbench_register_datasets(register):
    register(Stripes)


@hookimpl
def mrlbench_register_commands(cli):
    @cli.command(name="example-hello")
    def example_hello():
        """Say hello from the example plugin."""
        click.echo("hello from mrlbench-example-plugin")
