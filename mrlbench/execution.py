"""What executors run and where sharded indexes live: the ``Executor`` base class (a
component: ``[run] executor``), the ``WorkUnit`` it runs (one encoder x backend pair of
a run, made by the runner) and the ``Placement`` of shards it offers."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Protocol

from mrlbench.types import Component


class Placement:
    """Where the shards of a sharded index live (``shards = N``: the run executor's
    ``placement``, given to the harness's ``mrlbench.shards.Sharded``). This default
    keeps them in this process and calls them one after the other; an executor that
    runs elsewhere (the Ray executor: one actor per shard) returns its own. ``remote``:
    whether shard arguments cross processes."""

    remote: ClassVar[bool] = False

    def start(self, cls: type, args: Sequence[tuple], gpu: bool | None = False) -> list[Any]:
        """One shard ``cls(*a)`` per entry of ``args``; their handles, in order."""
        return [cls(*a) for a in args]

    def call(self, handles: Sequence[Any], method: str, args: Sequence[tuple]) -> list[Any]:
        """``handle.method(*a)`` of each shard with its own arguments; the results in order."""
        return [getattr(h, method)(*a) for h, a in zip(handles, args, strict=True)]

    def release(self, handles: Sequence[Any]) -> None:
        """The shards' index is no longer used (a placement may keep the workers for the
        next index); here they are simply dropped."""
        return None


class WorkUnit(Protocol):
    """What an executor runs: one encoder x backend pair of a run with its cells (the
    strategies' searches shared). The runner makes them; an executor either runs a unit
    here (``run_here``) or sends ``prepare()``'s task elsewhere and hands back what it
    returned (``finish``). Files of the run directory are written in this process."""

    label: str  # "encoder/backend"

    def run_here(self) -> None:
        """Compute every cell and write its files, in this process."""
        ...

    def prepare(self) -> tuple[Callable[[Any], Any], Any] | None:
        """Decide here which cells are finished (resume); ``None`` when none is left to
        compute, else the task: a picklable function and its picklable argument, whose
        result ``finish`` takes. The function writes nothing of the run directory."""
        ...

    def resources(self) -> dict[str, Any]:
        """What the task needs: ``cpus`` (the run's threads) and ``gpu`` (the backend's
        ``wants_gpu``; ``False`` when its shards hold the GPUs)."""
        ...

    def finish(self, outcome: Any) -> None:
        """Take the task's result: write its files and keep its rows."""
        ...

    def fail(self, error: str) -> None:
        """The task could not run (its worker died past every retry): every cell it
        had left is a failed row with ``error``."""
        ...


class Executor(Component):
    """Runs the work units of a run (``[run] executor = "local" | "ray" | ...``): in this
    process one after the other, or on other processes and machines. Rows, resume and
    the run directory are the runner's, the same under every executor."""

    kind = "executor"

    @abstractmethod
    def run(self, cfg: Any, units: Sequence[WorkUnit]) -> None:
        """Run every unit of ``cfg`` (a ``RunConfig``): ``run_here`` each, or ``prepare``
        each here, run its task elsewhere and ``finish`` it here with the result."""

    def placement(self) -> Placement:
        """Where sharded indexes keep their shards under this executor."""
        return Placement()
