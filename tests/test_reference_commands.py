"""The notebook steps as commands: ``search``, ``rerank`` and ``metrics`` on the reference
file names, with ``--json`` summaries."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import assert_exact, funnel
from reference_pipeline import assert_same_order_up_to_ties, normalize, reference_rerank
from test_metrics import reference_notebook

from mrlbench import metrics


def last_json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


def test_search_rerank_metrics_pipeline(cli, arrays, tmp_path):
    out = tmp_path / "work"
    common = ["--arrays", arrays.folder, "--dataset", "1K", "--config", arrays.config]
    r = cli(
        "search",
        *common,
        "--index",
        "exactl2",
        "--dims",
        "8,64",
        "--k",
        "200",
        "--out",
        out,
        "--csv",
        "--json",
    )
    assert r.code == 0, r.err
    summary = last_json(r.out)
    assert [x["dim"] for x in summary["results"]] == [8, 64]
    first = summary["results"][0]
    assert first["output"].endswith("neighbors/mrl/exactl2_8dim_200shortlist_1K.npy")
    assert first["seconds"] > 0 and first["build_seconds"] > 0
    ids8 = np.load(first["output"])
    assert_exact(ids8, arrays.xb, arrays.xq, 8)
    csv = out / "neighbors/mrl/exactl2_8dim_200shortlist_1K.csv"
    # a flat index costs nothing to rebuild: exact search keeps no index copy on disk
    assert not (out / "index_files").exists()

    # adaptive from the reference CSV
    r = cli(
        "rerank",
        *common,
        "--neighbors",
        csv,
        "--rerank-dims",
        "64",
        "--shortlists",
        "200",
        "--out",
        out,
        "--json",
    )
    assert r.code == 0, r.err
    adaptive = last_json(r.out)
    assert adaptive["output"].endswith(
        "neighbors/reranked/mrl/8dim-reranked64_200shortlist_1K_exactl2.npy"
    )
    ref = reference_rerank(normalize(arrays.xb), normalize(arrays.xq), False, [64], [200], ids8)
    assert (np.load(adaptive["output"]) == ref).all(axis=1).mean() > 0.95
    assert_same_order_up_to_ties(np.load(adaptive["output"]), ref, arrays.xb, arrays.xq, 64)

    # funnel from the .npy
    r = cli(
        "rerank",
        *common,
        "--neighbors",
        first["output"],
        "--rerank-dims",
        "16,32,64",
        "--shortlists",
        "200,50,10",
        "--out",
        out,
        "--csv",
        "--json",
    )
    assert r.code == 0, r.err
    cascade = last_json(r.out)
    assert cascade["output"].endswith(
        "funnel_retrieval/mrl/8dim-cascade[16,32,64]_shortlist[200,50,10]_1K_exactl2.npy"
    )
    ours = funnel(arrays.xb, arrays.xq, ids8, [16, 32, 64], [200, 50, 10])
    np.testing.assert_array_equal(np.load(cascade["output"]), ours)  # test_rerank: = reference

    # metrics, both modes, against independent computations
    r = cli("metrics", *common, "--neighbors", adaptive["output"], "--ks", "10,100", "--json")
    assert r.code == 0, r.err
    got = last_json(r.out)
    want = metrics.compute(np.load(adaptive["output"]), arrays.yb, arrays.yq, [10, 100])
    assert {k: got[k] for k in want} == pytest.approx(want)
    assert got["seconds"] >= 0

    r = cli(
        "metrics",
        *common,
        "--neighbors",
        adaptive["output"],
        "--ks",
        "10,100",
        "--metrics",
        "mrl-paper",
        "--json",
    )
    paper = last_json(r.out)
    yb16 = arrays.yb.astype(np.float16).reshape(-1, 1)
    yq16 = arrays.yq.astype(np.float16).reshape(-1, 1)
    ap, prec, rec, acc = reference_notebook(yq16, yb16, np.load(adaptive["output"]), 100)
    assert paper["mAP@100"] == pytest.approx(ap) and paper["recall@100"] == pytest.approx(rec)
    assert paper["precision@100"] == pytest.approx(prec)
    assert paper["topk_acc@100"] == pytest.approx(acc)

    # funnel lists hold 10: cut-offs past them are undefined (null), as the notebook drops them
    r = cli("metrics", *common, "--neighbors", cascade["output"], "--ks", "10,25", "--json")
    assert last_json(r.out)["mAP@25"] is None


def test_hnsw_search_names_and_reuses_its_index(cli, arrays, tmp_path):
    out = tmp_path / "w"
    args = [
        "search",
        "--arrays",
        arrays.folder,
        "--config",
        arrays.config,
        "--index",
        "hnsw8",
        "--dims",
        "16",
        "--k",
        "10",
        "--out",
        out,
        "--json",
    ]
    first = last_json(cli(*args).out)["results"][0]
    assert first["output"].endswith("neighbors/mrl/hnsw8_16dim_10shortlist_1K.npy")
    assert first["build_seconds"] > 0
    again = last_json(cli(*args).out)["results"][0]
    assert again["build_seconds"] == first["build_seconds"]  # from the cache, not rebuilt
    assert (out / "index_files/mrl/1K_16dim_hnsw8.index").is_file()


def test_rerank_and_metrics_read_the_dataset_from_the_file_name(cli, tmp_path):
    """Arrays named for another dataset than 1K: after `search --dataset toy`, `rerank`
    and `metrics` find the arrays from the neighbours file name alone."""
    from conftest import write_arrays

    toy = write_arrays(tmp_path / "arrays", dataset="toy")
    arrays = ["--arrays", toy.folder, "--config", toy.config]
    out = tmp_path / "work"
    r = cli("search", *arrays, "--dataset", "toy", "--dims", "8", "--k", "50", "--out", out)
    assert r.code == 0, r.err
    shortlist = out / "neighbors/mrl/exactl2_8dim_50shortlist_toy.npy"
    r = cli(
        "rerank", *arrays, "--neighbors", shortlist, "--rerank-dims", "64",
        "--shortlists", "50", "--out", out, "--json",
    )  # fmt: skip
    assert r.code == 0, r.err
    reranked = last_json(r.out)["output"]
    assert reranked.endswith("8dim-reranked64_50shortlist_toy_exactl2.npy")
    r = cli("metrics", *arrays, "--neighbors", reranked, "--ks", "10", "--json")
    assert r.code == 0, r.err
    assert last_json(r.out)["mAP@10"] > 0.5
