"""The hooks a plugin can implement. Every hook receives one argument and returns nothing.

A plugin is a module (or object) with functions named like these hooks and decorated
with ``mrlbench.hookimpl``. Components are classes; ``register`` records them under
their ``name`` attribute, which is the ``plugin = "..."`` value in a run config.
"""

from __future__ import annotations

from collections.abc import Callable

import click
import pluggy

hookspec = pluggy.HookspecMarker("mrlbench")
hookimpl = pluggy.HookimplMarker("mrlbench")


@hookspec
def mrlbench_register_encoders(register: Callable[[type], None]) -> None:
    """Register encoder classes (subclasses of ``mrlbench.types.Encoder``).

    :param register: call ``register(EncoderClass)`` once per encoder.
    """


@hookspec
def mrlbench_register_backends(register: Callable[[type], None]) -> None:
    """Register index backend classes (subclasses of ``mrlbench.types.Backend``).

    :param register: call ``register(BackendClass)`` once per backend.
    """


@hookspec
def mrlbench_register_strategies(register: Callable[[type], None]) -> None:
    """Register retrieval strategy classes (subclasses of ``mrlbench.types.Strategy``).

    :param register: call ``register(StrategyClass)`` once per strategy.
    """


@hookspec
def mrlbench_register_datasets(register: Callable[[type], None]) -> None:
    """Register dataset classes (subclasses of ``mrlbench.types.Dataset``).

    :param register: call ``register(DatasetClass)`` once per dataset.
    """


@hookspec
def mrlbench_register_executors(register: Callable[[type], None]) -> None:
    """Register executor classes (subclasses of ``mrlbench.types.Executor``): what runs a
    run's cells (``[run] executor = "NAME"``; built in: ``local`` and ``ray``).

    :param register: call ``register(ExecutorClass)`` once per executor.
    """


@hookspec
def mrlbench_register_commands(cli: click.Group) -> None:
    """Add subcommands to the ``mrlbench`` command line.

    :param cli: the top-level click group; use ``@cli.command()`` to add commands.
    """
