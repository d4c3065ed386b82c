"""Command ``metrics``: mAP@k, precision@k, recall@k, top-k accuracy and top-1 of a
neighbours file (the ``compute_metrics`` notebook)."""

from __future__ import annotations

import math
from pathlib import Path

import click

from mrlbench import (
    METRIC_MODES,
    Col,
    compute_metrics,
    emit_json,
    find_array,
    fitted_table,
    int_list,
    load_labels,
    load_neighbors,
    print_table,
    stopwatch,
)
from mrlbench import terminal as console
from mrlbench_plugins.reference.naming import dataset_of
from mrlbench_plugins.reference.options import arrays_options


@click.command("metrics")
@arrays_options
@click.option(
    "--neighbors",
    "nn_file",
    required=True,
    type=click.Path(),
    help="Neighbours file (.npy or reference .csv).",
)
@click.option(
    "--ks",
    callback=int_list,
    default="10,25,50,100",
    show_default=True,
    help="Metric cut-offs k, comma-separated.",
)
@click.option(
    "--metrics",
    "mode",
    type=click.Choice(METRIC_MODES),
    default="standard",
    show_default=True,
    help="mrl-paper: the reference notebook exactly.",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary last.")
@click.option(
    "--wide", is_flag=True, help="The table at full width (lines may outgrow the terminal)."
)
def metrics_command(arrays, dataset, config, query_dataset, nn_file, ks, mode, as_json, wide):
    """mAP@k, precision@k, recall@k, top-k accuracy and top-1 (compute_metrics)."""
    folder = Path(arrays)
    dataset = dataset_of(dataset, nn_file)
    yb = load_labels(find_array(folder, dataset, "train", config, "y"))
    yq = load_labels(find_array(folder, query_dataset or dataset, "val", config, "y"))
    ids = load_neighbors(nn_file)
    values, seconds = stopwatch(lambda: compute_metrics(ids, yb, yq, ks, mode))
    rows = [[key, "" if math.isnan(value) else f"{value:.6f}"] for key, value in values.items()]
    title = f"metrics ({mode}): {Path(nn_file).name}"
    width = None if wide else console.width
    print_table(console, fitted_table(title, [Col("metric"), Col("value", True)], rows, width))
    if as_json:
        emit_json({**values, "seconds": seconds})
