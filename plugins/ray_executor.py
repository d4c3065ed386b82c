"""Executor ``ray`` (``[run.executor] name = "ray"``, or ``[run] executor = "ray"``):
every encoder x backend pair of a run is a Ray task, with the CPUs (``[run] threads``)
and the GPU it needs; sharded exact backends (``shards = N``) keep one actor per shard.
The driver (the process that runs ``mrlbench run``) decides what is finished, as a local
run does, and writes every file of the run directory from what the tasks return:
results, resume and files are those of the local executor.

Its options are its own keys of ``[run.executor]``: ``address`` (the Ray cluster) and
``max_retries``. Ray is started locally for the run (``ray.init(num_cpus=threads)``)
unless ``address`` or ``$RAY_ADDRESS`` names a cluster, or Ray is already running in
this process (then it is used and left running): ``ray_start.connect``, the one Ray
start-up of mrlbench, also that of ``mrlbench encode --executor ray``. Workers build
the components again from the config (through the registry, so plugin code runs on
them) and read the arrays themselves, so every path the config names must be the same
files on every node: that is checked before any task starts, one clear error otherwise.

Ray is an optional dependency (``pip install -e '.[ray]'``); nothing else imports it.
"""

from __future__ import annotations

import importlib.util
import os
import socket
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mrlbench import (
    ConfigError,
    Executor,
    MrlbenchError,
    Placement,
    Registry,
    WorkUnit,
    error_line,
    hookimpl,
    loaded_dirs,
    registry,
)
from mrlbench_plugins.ray_start import INSTALL_HINT, check_address, connect, load_ray

SHARED_ARG_BYTES = 1 << 20  # an array argument this large goes to the object store once
SHARD_CPUS = 0.01  # a shard actor's CPU request: a token, never a node's whole CPU count


def gpus(want: bool | None) -> int:
    """GPUs to ask Ray for: 1 when the work needs one, or may use one (``None``) and the
    cluster has GPUs; else 0."""
    if want is None:
        return 1 if load_ray().cluster_resources().get("GPU", 0) > 0 else 0
    return 1 if want else 0


def _call(function: Any, argument: Any) -> Any:
    """A work unit's task on a Ray worker."""
    return function(argument)


def _probe(paths: Sequence[str]) -> tuple[str, list[str]]:
    """On one node: its host name and the ``paths`` it cannot see."""
    return socket.gethostname(), [p for p in paths if not os.path.exists(p)]


def require_visible(paths: Sequence[str]) -> None:
    """Every ``path`` exists on every alive Ray node (a probe task pinned to each), or
    one ``ConfigError`` naming the node and the first path it cannot see."""
    if not paths:
        return
    ray = load_ray()
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    probe = ray.remote(num_cpus=0)(_probe)
    refs = [
        probe.options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)
        ).remote(list(paths))
        for node in ray.nodes()
        if node.get("Alive")
    ]
    for host, missing in ray.get(refs):
        if missing:
            raise ConfigError(
                f"Ray node {host} cannot see {missing[0]}"
                + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
                + ": the arrays, image folders, checkpoints and --plugins-dir a run "
                "reads must be the same files at the same path on every node (a shared "
                "filesystem; README: Scaling out)"
            )


def config_paths(cfg: Any, reg: Registry) -> list[str]:
    """Every file path the config's components read (their ``paths`` keys, nested
    component tables included) that exists here, and the plugin folders."""
    found: list[str] = []

    def walk(cls: type, table: Mapping[str, Any]) -> None:
        for key in getattr(cls, "paths", ()):
            value = table.get(key)
            values = value.values() if isinstance(value, Mapping) else [value]
            found.extend(v for v in values if isinstance(v, str) and v)
        for key, kind in getattr(cls, "components", {}).items():
            sub = table.get(key)
            sub = {"plugin": sub} if isinstance(sub, str) else sub
            if isinstance(sub, Mapping) and isinstance(sub.get("plugin"), str):
                try:
                    walk(reg.get(kind, sub["plugin"]).cls, sub)
                except ConfigError:
                    continue

    for spec in (*cfg.encoders, *cfg.backends, *cfg.strategies):
        walk(type(spec.component), spec.table)
    found += loaded_dirs()
    return sorted({p for p in found if os.path.exists(p)})


def task_slots(threads: int) -> int:
    """How many cells' tasks of ``threads`` CPUs the alive nodes run at once (at least 1).
    Queuing more would start a fresh worker process for each (imports and all) instead
    of handing the next task to the worker that is done."""
    nodes = [n for n in load_ray().nodes() if n.get("Alive")]
    return max(1, sum(int(n.get("Resources", {}).get("CPU", 0) // threads) for n in nodes))


def check_cluster(cfg: Any) -> None:
    """Before any task: a node can take a cell's ``threads`` CPUs, and every node sees
    the paths the config reads."""
    ray = load_ray()
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    widest = max((n.get("Resources", {}).get("CPU", 0) for n in nodes), default=0)
    if cfg.threads > widest:
        raise ConfigError(
            f"[run] threads = {cfg.threads}, but the largest Ray node has {int(widest)} "
            f"CPUs: each cell's task asks for its threads; set threads (or --threads) to "
            f"at most {int(widest)}"
        )
    require_visible(config_paths(cfg, registry()))


class RayExecutor(Executor):
    """Each encoder x backend pair as a Ray task (with ``[run] threads`` CPUs and a GPU
    for GPU backends), on a local Ray started for the run or the cluster at ``address``
    / ``$RAY_ADDRESS``; one actor per shard of ``shards = N`` backends. The numbers and
    files are those of the local executor.

    Args:
        address: The Ray cluster, ``"host:port"``, ``"ray://host:port"`` or ``"auto"``;
            empty: ``$RAY_ADDRESS``, else a local Ray for the run.
        max_retries: Times Ray runs a cell's task again when its worker dies (a killed
            process, a lost node) before its cells fail.
    """

    name = "ray"

    def __init__(self, address: str = "", max_retries: int = 3) -> None:
        self.address = check_address(address)
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ConfigError(f"max_retries must be an integer of 0 or more, not {max_retries!r}")
        self.max_retries = max_retries

    @classmethod
    def availability(cls) -> str | None:
        return None if importlib.util.find_spec("ray") else INSTALL_HINT

    @classmethod
    def where(cls) -> str:
        address = os.environ.get("RAY_ADDRESS")
        return f"Ray cluster {address}" if address else "a local Ray, or [run.executor] address"

    def environment(self) -> dict[str, Any]:
        return {"packages": {"ray": load_ray().__version__}}

    def placement(self) -> Placement:
        return RayPlacement()

    def run(self, cfg: Any, units: Sequence[WorkUnit]) -> None:
        ray: Any = None
        started, slots = False, 1
        pending: dict[Any, WorkUnit] = {}
        try:
            for unit in units:  # planned here one by one while earlier ones run
                work = unit.prepare()
                if work is None:
                    continue  # finished (resumed) or skipped: no task, no Ray needed
                if ray is None:
                    ray = load_ray()
                    started = connect(cfg.threads, self.address)
                    check_cluster(cfg)
                    slots = task_slots(cfg.threads)
                    task = ray.remote(_call)
                ended = []
                while len(pending) >= slots:  # no more tasks queued than can run: a
                    ended += self._wait(ray, pending)  # worker that is done takes the next
                function, argument = work
                needs = unit.resources()
                ref = task.options(
                    num_cpus=needs["cpus"],
                    num_gpus=gpus(needs["gpu"]),
                    max_retries=self.max_retries,
                    retry_exceptions=False,  # a cell's own errors are failed rows already
                    name=f"mrlbench {unit.label}",
                ).remote(function, argument)
                pending[ref] = unit
                for done, unit_done in ended:  # written while the next task runs
                    self._finish(ray, done, unit_done)
            while pending:
                for done, unit_done in self._wait(ray, pending):
                    self._finish(ray, done, unit_done)
        finally:
            if started:
                ray.shutdown()

    @staticmethod
    def _wait(ray: Any, pending: dict[Any, WorkUnit]) -> list[tuple[Any, WorkUnit]]:
        """Wait for a task to end; the ended tasks with their units, out of ``pending``."""
        ready, _ = ray.wait(list(pending), num_returns=1)
        return [(ref, pending.pop(ref)) for ref in ready]

    def _finish(self, ray: Any, ref: Any, unit: WorkUnit) -> None:
        """Hand an ended task's result (or why it failed) to its unit."""
        try:
            outcome = ray.get(ref)
        except ray.exceptions.RayTaskError as exc:
            unit.fail(error_line(exc.cause if exc.cause is not None else exc))
        except ray.exceptions.RayError as exc:
            unit.fail(
                f"ray: {unit.label} did not finish after {self.max_retries} retries: "
                f"{error_line(exc)}"
            )
        else:
            unit.finish(outcome)


class RayPlacement(Placement):
    """Shards as Ray actors spread over the nodes (each holding a token share of a CPU,
    ``SHARD_CPUS``, so that any number fit beside the cell's task, and a GPU for a GPU
    backend), searched at once. The actors of a released index serve the next one (the
    next prefix size) of the same backend; they end with the task that made them."""

    remote = True

    def __init__(self) -> None:
        self._idle: dict[Any, list[Any]] = {}
        self._keys: dict[int, Any] = {}

    def start(self, cls: type, args: Sequence[tuple], gpu: bool | None = False) -> list[Any]:
        ray = load_ray()
        wanted = gpus(gpu)
        if wanted and len(args) > ray.cluster_resources().get("GPU", 0):
            raise MrlbenchError(
                f"{len(args)} shards on GPUs need {len(args)} GPUs; the Ray cluster has "
                f"{int(ray.cluster_resources().get('GPU', 0))}: lower shards"
            )
        key = (cls.__module__, cls.__qualname__, repr(args[0]) if args else "", wanted)
        idle = self._idle.setdefault(key, [])
        if len({repr(a) for a in args}) != 1:  # shards of different settings: never pooled
            idle = []
        actor = ray.remote(cls).options(
            num_cpus=SHARD_CPUS, num_gpus=wanted, scheduling_strategy="SPREAD"
        )
        handles = [idle.pop() if idle else actor.remote(*a) for a in args]
        for h in handles:
            self._keys[id(h)] = key
        return handles

    def release(self, handles: Sequence[Any]) -> None:
        for h in handles:
            h.drop.remote()
            key = self._keys.get(id(h))
            if key is not None:
                self._idle.setdefault(key, []).append(h)

    def call(self, handles: Sequence[Any], method: str, args: Sequence[tuple]) -> list[Any]:
        ray = load_ray()
        shared: dict[int, Any] = {}  # one copy in the object store of an argument all get

        def put(value: Any) -> Any:
            if isinstance(value, np.ndarray) and value.nbytes >= SHARED_ARG_BYTES:
                if id(value) not in shared:
                    shared[id(value)] = ray.put(value)
                return shared[id(value)]
            return value

        refs = [
            getattr(h, method).remote(*(put(v) for v in a))
            for h, a in zip(handles, args, strict=True)
        ]
        return ray.get(refs)


@hookimpl
def mrlbench_register_executors(register):
    register(RayExecutor)
