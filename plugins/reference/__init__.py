"""Commands ``search``, ``rerank`` and ``metrics``: the reference pipeline's notebook steps
(``faiss_nn``, ``reranking``, ``compute_metrics``) on its own file names, vectorised.

- ``search``: k-NN shortlists at each prefix size;
- ``rerank``: adaptive or funnel reranking of a shortlist file, and ``GivenShortlist``,
  the context a strategy runs on there;
- ``metrics``: the reference metrics of a neighbours file;
- ``naming`` and ``options``: what the three share (the reference's file names, the
  options naming the arrays).

This module is the plugin: its hook adds the three commands to the CLI."""

from __future__ import annotations

import click

from mrlbench import hookimpl
from mrlbench_plugins.reference.metrics import metrics_command
from mrlbench_plugins.reference.rerank import rerank_command
from mrlbench_plugins.reference.search import search_command


@hookimpl
def mrlbench_register_commands(cli: click.Group) -> None:
    for command in (search_command, rerank_command, metrics_command):
        cli.add_command(command)
