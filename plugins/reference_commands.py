"""Commands ``search``, ``rerank`` and ``metrics``: the reference pipeline's notebook steps
(``faiss_nn``, ``reranking``, ``compute_metrics``) on its own file names, vectorised."""

from __future__ import annotations

import json
import math
import re
import time
from pathlib import Path

import click

from mrlbench import metrics as metric_defs
from mrlbench import neighbors
from mrlbench.arrays import CONFIG_RE, find_array, load_embeddings, load_labels
from mrlbench.console import Col, console, emit_json, fitted_table, int_list, print_table, stderr
from mrlbench.context import GivenShortlist
from mrlbench.errors import ConfigError, DataError
from mrlbench.hookspecs import hookimpl
from mrlbench.index_cache import index_path
from mrlbench.plugins import registry
from mrlbench.search_stage import search_dim

INDEX_RE = re.compile(r"^(exactl2|hnsw(\d+))$")


def model_name(config: str) -> str:
    """The reference's neighbours sub-folder for a config string."""
    match = CONFIG_RE.match(config)
    if not match:
        return config
    if match.group(2) == "1":
        return "mrl_e"
    return "mrl" if match.group(1) == "1" else "ff"


STEM_DATASET = (
    re.compile(r"^[\w.-]+?_\d+dim_\d+shortlist_(?P<dataset>[^_]+?)(?:\.npy|\.csv)?$"),
    re.compile(r"^\d+dim-reranked\d+_\d+shortlist_(?P<dataset>[^_]+)_"),
    re.compile(r"^\d+dim-cascade\[[\d,]+\]_shortlist\[[\d,]+\]_(?P<dataset>[^_]+)_"),
)


def dataset_of(dataset: str | None, neighbours: str | None = None) -> str:
    """``--dataset`` when given, else the dataset a reference neighbours file name ends
    with (flat, reranked or funnel naming), else ``1K``."""
    if dataset:
        return dataset
    name = Path(neighbours).name if neighbours else ""
    for pattern in STEM_DATASET:
        found = pattern.match(name)
        if found:
            return found.group("dataset")
    return "1K"


def arrays_options(fn):
    for option in reversed(
        [
            click.option("--arrays", required=True, type=click.Path(), help="Arrays folder."),
            click.option(
                "--dataset",
                default=None,
                help="Database dataset, e.g. 1K (default: read from the --neighbors file "
                "name, else 1K).",
            ),
            click.option(
                "--config",
                "config",
                default="mrl1_e0_ff2048",
                show_default=True,
                help="Array config string, e.g. mrl1_e0_ff2048.",
            ),
            click.option(
                "--query-dataset",
                default=None,
                help="Query set searched against DATASET's database (e.g. V2).",
            ),
        ]
    ):
        fn = option(fn)
    return fn


@hookimpl
def mrlbench_register_commands(cli: click.Group) -> None:
    @cli.command()
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
        help="HNSW efSearch (widened to --k when smaller, as configs do).",
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
    def search(
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
        emb = load_embeddings(arrays, dataset_of(dataset), config, query_dataset=query_dataset)
        width = emb.database.shape[1]
        dims = dims or [d for d in (8, 16, 32, 64, 128, 256, 512, 1024, 2048) if d <= width]
        model = model or model_name(config)
        results = []
        for dim in dims:
            stderr.print(f"{index_name} {dim}d: building/searching ...", highlight=False)
            cache = index_path(
                Path(out) / "index_files", model, emb.dataset, dim, backend.index_name
            )
            found, build_s = search_dim(backend, emb, dim, [k], cache, repeats=1)
            stem = (
                Path(out)
                / "neighbors"
                / neighbors.search_stem(model, backend.index_name, dim, k, emb.query_dataset)
            )
            path = neighbors.save(stem, found[k].ids, csv=csv_)
            results.append(
                {
                    "dim": dim,
                    "output": str(path),
                    "seconds": found[k].seconds,
                    "build_seconds": build_s,
                }
            )
        cols = [Col("dim", True), Col("output"), Col("seconds", True), Col("build_seconds", True)]
        rows = [
            [str(r["dim"]), r["output"], f"{r['seconds']:.4g}", f"{r['build_seconds']:.4g}"]
            for r in results
        ]
        print_table(console, fitted_table("search", cols, rows, console.width))
        if as_json:
            click.echo(json.dumps({"results": results}))

    @cli.command()
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
    def rerank(
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
        name = Path(nn_file).name
        found = re.match(r"^(exactl2|hnsw_?\d+)_(\d+)dim", name)
        shortlist_dim = shortlist_dim or (int(found.group(2)) if found else None)
        if shortlist_dim is None:
            raise ConfigError("give --shortlist-dim (it is not in the neighbours file name)")
        index_name = index_name or (found.group(1).replace("_", "") if found else "exactl2")
        adaptive = len(rerank_dims) == 1 and len(shortlists) == 1
        strategy = (
            {
                "plugin": "adaptive",
                "shortlist_dim": shortlist_dim,
                "rerank_dim": rerank_dims[0],
                "shortlist": shortlists[0],
            }
            if adaptive
            else {
                "plugin": "funnel",
                "shortlist_dim": shortlist_dim,
                "rerank_dims": rerank_dims,
                "shortlists": shortlists,
            }
        )
        _, built = registry().create("strategy", strategy)  # validates dims and shortlists
        dataset = dataset_of(dataset, nn_file)
        emb = load_embeddings(arrays, dataset, config, query_dataset=query_dataset)
        ids = neighbors.load(nn_file)
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
        path = neighbors.save(Path(out) / "neighbors" / result.stem, result.ids, csv=csv_)
        console.print(f"wrote {path} ({result.seconds:.4g} s reranking)", highlight=False)
        if as_json:
            click.echo(json.dumps({"output": str(path), "seconds": result.seconds}))

    @cli.command()
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
        type=click.Choice(metric_defs.MODES),
        default="standard",
        show_default=True,
        help="mrl-paper: the reference notebook exactly.",
    )
    @click.option("--json", "as_json", is_flag=True, help="Print a JSON summary last.")
    @click.option(
        "--wide", is_flag=True, help="The table at full width (lines may outgrow the terminal)."
    )
    def metrics(arrays, dataset, config, query_dataset, nn_file, ks, mode, as_json, wide):
        """mAP@k, precision@k, recall@k, top-k accuracy and top-1 (compute_metrics)."""
        folder = Path(arrays)
        dataset = dataset_of(dataset, nn_file)
        yb = load_labels(find_array(folder, dataset, "train", config, "y"))
        yq = load_labels(find_array(folder, query_dataset or dataset, "val", config, "y"))
        ids = neighbors.load(nn_file)
        start = time.perf_counter()
        values = metric_defs.compute(ids, yb, yq, ks, mode)
        seconds = time.perf_counter() - start
        rows = [[key, "" if math.isnan(value) else f"{value:.6f}"] for key, value in values.items()]
        title = f"metrics ({mode}): {Path(nn_file).name}"
        width = None if wide else console.width
        print_table(console, fitted_table(title, [Col("metric"), Col("value", True)], rows, width))
        if as_json:
            emit_json({**values, "seconds": seconds})
