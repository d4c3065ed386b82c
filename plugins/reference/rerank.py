"""Command ``rerank``: adaptive (one dim, one shortlist) or funnel reranking of a shortlist
file (the reranking notebook), and ``GivenShortlist``, the context the strategy runs on
there."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import click
import numpy as np

from mrlbench import (
    ConfigError,
    DataError,
    Embeddings,
    Shortlist,
    int_list,
    load_embeddings,
    load_neighbors,
    registry,
    rerank_rows,
    save_neighbors,
    stopwatch,
)
from mrlbench import terminal as console
from mrlbench_plugins.reference.naming import dataset_of, model_name
from mrlbench_plugins.reference.options import arrays_options

SHORTLIST_NAME = re.compile(r"^(exactl2|hnsw_?\d+)_(\d+)dim")


class GivenShortlist:
    """A ``RetrievalContext`` whose one search is ``ids``, a shortlist at prefix size
    ``dim`` made elsewhere; reranks read the raw ``database``/``queries`` arrays."""

    def __init__(
        self,
        database: np.ndarray,
        queries: np.ndarray,
        ids: np.ndarray,
        dim: int,
        model: str = "",
        dataset: str = "",
        index_name: str = "",
        threads: int | None = None,
    ) -> None:
        self.database, self.queries, self.ids, self.dim = database, queries, ids, dim
        self.threads = threads
        self.model, self.dataset, self.index_name = model, dataset, index_name
        self.n_database, self.n_queries = len(database), len(queries)

    def search(self, dim: int, k: int | None = None) -> Shortlist:
        k = k or self.ids.shape[1]
        if dim != self.dim:
            raise DataError(f"the shortlist is at {self.dim} dims, not {dim}")
        if k > self.ids.shape[1]:
            raise DataError(
                f"the shortlist has {self.ids.shape[1]} neighbours per query, fewer than {k}"
            )
        return Shortlist(self.ids[:, :k], 0.0, 0.0, 0.0, "CPU")

    def rerank(self, ids: np.ndarray, dim: int, keep: int) -> tuple[np.ndarray, float]:
        return stopwatch(
            lambda: rerank_rows(self.database, self.queries, ids, dim, keep, self.threads)
        )


def strategy_table(
    shortlist_dim: int, rerank_dims: list[int], shortlists: list[int]
) -> dict[str, Any]:
    """``adaptive`` for one rerank dim and one shortlist size, else ``funnel``."""
    if len(rerank_dims) == 1 and len(shortlists) == 1:
        return {
            "plugin": "adaptive",
            "shortlist_dim": shortlist_dim,
            "rerank_dim": rerank_dims[0],
            "shortlist": shortlists[0],
        }
    return {
        "plugin": "funnel",
        "shortlist_dim": shortlist_dim,
        "rerank_dims": rerank_dims,
        "shortlists": shortlists,
    }


def check_shortlist(
    nn_file: str, ids: np.ndarray, emb: Embeddings, rerank_dims: list[int], shortlists: list[int]
) -> None:
    """Stop with a ``DataError`` where the shortlist file does not fit the arrays."""
    if len(ids) != len(emb.queries):
        raise DataError(f"{nn_file}: {len(ids)} rows but {len(emb.queries)} queries")
    if ids.shape[1] < shortlists[0]:
        raise DataError(
            f"{nn_file}: {ids.shape[1]} neighbours per query, fewer than the "
            f"shortlist {shortlists[0]}"
        )
    if shortlists[0] > len(emb.database):
        raise DataError(
            f"shortlist {shortlists[0]} is larger than the database ({len(emb.database)} rows)"
        )
    if max(rerank_dims) > emb.database.shape[1]:
        raise DataError(
            f"dim {max(rerank_dims)} is larger than the arrays ({emb.database.shape[1]} dims)"
        )
    if ids.size and (ids.max() >= len(emb.database) or ids.min() < -1):
        raise DataError(f"{nn_file}: neighbour ids outside the database")


@click.command("rerank")
@arrays_options
@click.option(
    "--neighbors",
    "nn_file",
    required=True,
    type=click.Path(),
    help="Shortlist file (.npy or reference .csv).",
)
@click.option(
    "--shortlist-dim",
    type=int,
    default=None,
    help="Prefix size of the shortlist (default: read from the file name).",
)
@click.option("--rerank-dims", callback=int_list, required=True, help="e.g. 16,32,64,128,2048")
@click.option("--shortlists", callback=int_list, required=True, help="e.g. 200,100,50,25,10")
@click.option(
    "--index",
    "index_name",
    default=None,
    help="Index name for the output file (default: read from the file name).",
)
@click.option("--out", required=True, type=click.Path(), help="Output root folder.")
@click.option("--model", default=None, help="Neighbours sub-folder (default from --config).")
@click.option("--csv", "csv_", is_flag=True, help="Also write the reference CSV.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary last.")
def rerank_command(
    arrays,
    dataset,
    config,
    query_dataset,
    nn_file,
    shortlist_dim,
    rerank_dims,
    shortlists,
    index_name,
    out,
    model,
    csv_,
    as_json,
):
    """Adaptive (one dim, one shortlist) or funnel reranking (the reranking notebook)."""
    found = SHORTLIST_NAME.match(Path(nn_file).name)
    shortlist_dim = shortlist_dim or (int(found.group(2)) if found else None)
    if shortlist_dim is None:
        raise ConfigError("give --shortlist-dim (it is not in the neighbours file name)")
    index_name = index_name or (found.group(1).replace("_", "") if found else "exactl2")
    strategy = strategy_table(shortlist_dim, rerank_dims, shortlists)
    _, built = registry().create("strategy", strategy)  # validates dims and shortlists
    dataset = dataset_of(dataset, nn_file)
    emb = load_embeddings(arrays, dataset, config, query_dataset=query_dataset)
    ids = load_neighbors(nn_file)
    check_shortlist(nn_file, ids, emb, rerank_dims, shortlists)
    ctx = GivenShortlist(
        emb.database,
        emb.queries,
        ids,
        shortlist_dim,
        model or model_name(config),
        emb.query_dataset,
        index_name,
    )
    (result,) = built.run(ctx)
    path = save_neighbors(Path(out) / "neighbors" / result.stem, result.ids, csv=csv_)
    console.print(f"wrote {path} ({result.seconds:.4g} s reranking)", highlight=False)
    if as_json:
        click.echo(json.dumps({"output": str(path), "seconds": result.seconds}))
