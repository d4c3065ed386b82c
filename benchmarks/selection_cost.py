"""Measure what a search and a rerank stage cost, for the cost model's selection term.

Times exact search (``faiss-exact`` on the CPU: ``mrlbench.knn``'s kernel, the index a
run builds, the queries' normalised prefixes) at every prefix size and several k, and
rerank stages (``mrlbench.rerank``: s candidates from the 8-dim search, re-ordered at
d), on a seeded sample of the queries: one untimed warm-up, then the best of
``--repeats``. Each stage records its wall-clock and its CPU time (user + system, every
thread) per query; on a shared machine the CPU time is the work the stage did, the
wall-clock also what other jobs took. Writes one JSON line per stage;
``--ranks FILE`` ranks them against the two MFLOPs models (BENCHMARKS.md, "The cost of
top-k selection").

    python benchmarks/selection_cost.py --arrays /tmp/tunec-1k --dataset 1K \\
        --config mrl1_e0_ff2048 --queries 200 --threads 1 --out selection.jsonl
    python benchmarks/selection_cost.py --ranks selection.jsonl
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from mrlbench import cost
from mrlbench.index_cache import load_or_build
from mrlbench.plugins import registry
from mrlbench.rerank import rerank
from mrlbench.sampling import sample_queries
from mrlbench.vectors import prefix

DIMS = (8, 16, 32, 64, 128, 256, 512, 1024, 2048)
KS = (10, 50, 200, 800)
RERANKS = ((10, 2048), (25, 2048), (200, 2048), (800, 2048), (200, 64), (800, 16), (800, 256))


def timed(fn: Callable[[], Any], repeats: int) -> tuple[float, float]:
    """(best wall-clock s, best CPU s) of ``repeats`` calls after one warm-up."""
    fn()
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return min(walls), min(cpus)


def measure(args: argparse.Namespace) -> list[dict]:
    reg = registry()
    _, enc = reg.create(
        "encoder",
        {
            "plugin": "arrays",
            "path": args.arrays,
            "dataset": args.dataset,
            "config": args.config,
            "dims": list(DIMS),
        },
    )
    _, backend = reg.create("backend", {"plugin": "faiss-exact", "device": "cpu"})
    backend.use_threads(args.threads)
    emb = sample_queries(enc.embeddings(DIMS[0]), args.queries)
    n, m = len(emb.database), len(emb.queries)
    found: list[dict] = []
    shortlist = None

    def record(stage: str, n: int, dim: int, k: int, seconds: tuple[float, float]) -> None:
        wall, cpu = seconds
        found.append(
            {
                "stage": stage,
                "n": n,
                "dim": dim,
                "k": k,
                "ms": 1e3 * wall / m,
                "cpu_ms": 1e3 * cpu / m,
            }
        )
        print(json.dumps(found[-1]), flush=True)
        if args.out:
            with open(args.out, "a") as f:
                f.write(json.dumps(found[-1]) + "\n")

    for dim in args.dims:
        index, _ = load_or_build(backend, emb, dim, None)
        queries = prefix(emb.queries, dim)
        for k in KS:
            search = partial(backend.search, index, queries, k)
            record("search", n, dim, k, timed(search, args.repeats))
        if shortlist is None:
            shortlist = backend.search(index, queries, max(KS))[0]
        index = None  # one index in memory at a time
    assert shortlist is not None
    for s, dim in RERANKS:
        candidates = np.ascontiguousarray(shortlist[:, :s])
        work = partial(rerank, emb.database, emb.queries, candidates, dim, s, args.threads)
        record("rerank", s, dim, s, timed(work, args.repeats))
    return found


def spearman(a: list[float], b: list[float]) -> float:
    """Spearman's rank correlation (average ranks on ties)."""

    def ranks(v: list[float]) -> np.ndarray:
        x = np.asarray(v, dtype=np.float64)
        order = np.argsort(x, kind="stable")
        r = np.empty(len(x))
        r[order] = np.arange(len(x), dtype=np.float64)
        for value in np.unique(x):  # ties share their mean rank
            r[x == value] = r[x == value].mean()
        return r

    return float(np.corrcoef(ranks(a), ranks(b))[0, 1])


def discordant(a: list[float], b: list[float]) -> tuple[int, int]:
    """(pairs ``a`` orders otherwise than ``b`` or ties where ``b`` does not, all pairs)."""
    bad = total = 0
    for i in range(len(a)):
        for j in range(i + 1, len(a)):
            total += 1
            if (a[i] - a[j]) * (b[i] - b[j]) <= 0 and b[i] != b[j]:
                bad += 1
    return bad, total


COMPACT_DIMS = 256  # up to here the kernel searches an in-memory copy: clean CPU times


def fit(searches: list[dict]) -> tuple[float, float, float]:
    """Least squares of CPU ms = (alpha N d + beta N + gamma k ln(N/k) log2 k) / 1e3:
    (GMAC/s of the products, the scan and the heap constants in multiply-adds)."""
    rows = [
        [s["n"] * s["dim"], s["n"], s["k"] * np.log(s["n"] / s["k"]) * np.log2(s["k"])]
        for s in searches
    ]
    alpha, beta, gamma = np.linalg.lstsq(
        np.array(rows), [s["cpu_ms"] for s in searches], rcond=None
    )[0]
    return 1e-6 / alpha, beta / alpha, gamma / alpha


def report(path: str) -> None:
    """Fit the selection constants on the in-memory searches, then rank each set of
    stages by measured CPU time and wall-clock against the two models:
    ``mflops_per_query`` (the paper's) and ``mflops_with_selection``."""
    stages = [json.loads(line) for line in Path(path).read_text().splitlines() if line]
    clean = [s for s in stages if s["stage"] == "search" and s["dim"] <= COMPACT_DIMS]
    if clean:
        speed, scan, heap = fit(clean)
        print(
            f"fit (searches at d <= {COMPACT_DIMS}): {speed:.1f} GMAC/s of products; "
            f"SCAN_COST {scan:.0f}, HEAP_COST {heap:.0f} multiply-adds"
        )

    def models(s: dict) -> tuple[float, float]:
        plain = cost.search_mflops(s["n"], s["dim"])
        return plain, plain + cost.selection_mflops(s["n"], s["k"])

    sets = {
        f"searches, d <= {COMPACT_DIMS}": clean,
        "every search": [s for s in stages if s["stage"] == "search"],
        "every stage (reranks too)": stages,
    }
    print("| stages | measured | model | Spearman | pairs ordered otherwise |")
    print("|---|---|---|---|---|")
    for label, chosen in sets.items():
        for measured in ("cpu_ms", "ms"):
            ms = [s[measured] for s in chosen]
            for i, name in enumerate(("mflops_per_query", "mflops_with_selection")):
                model = [models(s)[i] for s in chosen]
                bad, total = discordant(model, ms)
                print(
                    f"| {label} | {'CPU' if measured == 'cpu_ms' else 'wall'} | {name} | "
                    f"{spearman(model, ms):.3f} | {bad} of {total} |"
                )
    print()
    print("| stage | candidates | d | k | CPU ms/query | wall ms/query | MFLOPs | with selection |")
    print("|---|---|---|---|---|---|---|---|")
    for s in stages:
        plain, charged = models(s)
        print(
            f"| {s['stage']} | {s['n']:,} | {s['dim']} | {s['k']} | {s['cpu_ms']:.3f} | "
            f"{s['ms']:.3f} | {plain:.4g} | {charged:.4g} |"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arrays")
    parser.add_argument("--dataset", default="1K")
    parser.add_argument("--config", default="mrl1_e0_ff2048")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--dims", type=lambda v: [int(d) for d in v.split(",")], default=DIMS)
    parser.add_argument("--out")
    parser.add_argument("--ranks", help="a file this script wrote: rank its stages")
    args = parser.parse_args()
    if args.ranks:
        report(args.ranks)
    else:
        if args.out:
            Path(args.out).write_text("")
        measure(args)
