"""Command ``search``: k-NN shortlists at each prefix size, written under the reference's
neighbours file names (the ``faiss_nn`` notebook)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import click

from mrlbench import (
    Backend,
    Col,
    ConfigError,
    Embeddings,
    fitted_table,
    index_path,
    int_list,
    load_embeddings,
    print_table,
    registry,
    save_neighbors,
    search_dim,
    search_stem,
    stderr,
)
from mrlbench import terminal as console
from mrlbench_plugins.reference.naming import dataset_of, model_name
from mrlbench_plugins.reference.options import arrays_options

INDEX_RE = re.compile(r"^(exactl2|hnsw(\d+))$")
DIMS = (8, 16, 32, 64, 128, 256, 512, 1024, 2048)


def index_backend(index_name: str, ef_search: int) -> Backend:
    """The backend an ``--index`` name stands for, ready to use here."""
    match = INDEX_RE.match(index_name)
    if not match:
        raise ConfigError(f"unknown index '{index_name}' (known: exactl2, hnsw32, hnsw8)")
    table = (
        {"plugin": "faiss-exact"}
        if match.group(2) is None
        else {"plugin": "faiss-hnsw", "M": int(match.group(2)), "ef_search": ef_search}
    )
    _, backend = registry().create("backend", table)
    reason = type(backend).availability()
    if reason:
        raise ConfigError(reason)
    return backend


def search_one(
    backend: Backend, emb: Embeddings, dim: int, k: int, out: str, model: str, csv_: bool
) -> dict[str, Any]:
    """Build or load the index at ``dim``, search it and write the neighbours file; what
    the summary says of it."""
    cache = index_path(Path(out) / "index_files", model, emb.dataset, dim, backend.index_name)
    found, build_s = search_dim(backend, emb, dim, [k], cache, repeats=1)
    stem = (
        Path(out) / "neighbors" / search_stem(model, backend.index_name, dim, k, emb.query_dataset)
    )
    path = save_neighbors(stem, found[k].ids, csv=csv_)
    return {"dim": dim, "output": str(path), "seconds": found[k].seconds, "build_seconds": build_s}


def print_results(results: list[dict[str, Any]]) -> None:
    """The table of the files written and their times."""
    cols = [Col("dim", True), Col("output"), Col("seconds", True), Col("build_seconds", True)]
    rows = [
        [str(r["dim"]), r["output"], f"{r['seconds']:.4g}", f"{r['build_seconds']:.4g}"]
        for r in results
    ]
    print_table(console, fitted_table("search", cols, rows, console.width))


@click.command("search")
@arrays_options
@click.option(
    "--index",
    "index_name",
    default="exactl2",
    show_default=True,
    help="exactl2, hnsw32, hnsw8 (hnswM for any M).",
)
@click.option(
    "--ef-search",
    default=64,
    show_default=True,
    help="HNSW efSearch, widened to --k when smaller (the reference's long lists).",
)
@click.option(
    "--dims",
    callback=int_list,
    help="Prefix sizes, e.g. 8,16,32 (default: 8, 16, ... up to the array width).",
)
@click.option("--k", default=2048, show_default=True, help="Neighbours per query.")
@click.option("--out", required=True, type=click.Path(), help="Output root folder.")
@click.option("--model", default=None, help="Neighbours sub-folder (default from --config).")
@click.option("--csv", "csv_", is_flag=True, help="Also write the reference CSV.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary last.")
def search_command(
    arrays,
    dataset,
    config,
    query_dataset,
    index_name,
    ef_search,
    dims,
    k,
    out,
    model,
    csv_,
    as_json,
):
    """k-NN shortlists at each prefix size (the faiss_nn notebook)."""
    backend = index_backend(index_name, max(ef_search, k))  # a full list of k ids
    emb = load_embeddings(arrays, dataset_of(dataset), config, query_dataset=query_dataset)
    width = emb.database.shape[1]
    dims = dims or [d for d in DIMS if d <= width]
    model = model or model_name(config)
    results = []
    for dim in dims:
        stderr.print(f"{index_name} {dim}d: building/searching ...", highlight=False)
        results.append(search_one(backend, emb, dim, k, out, model, csv_))
    print_results(results)
    if as_json:
        click.echo(json.dumps({"results": results}))
