"""Metrics for 50,000 queries at k = 100: vectorised against the reference notebook's
per-query loop, the same numbers in ``mrl-paper`` mode.

In process: ``metrics.compute`` against the loop, 3 rounds each, no warm-up. From the
command line, start-up included: ``mrlbench metrics`` as a subprocess against the
notebook's cell as a script (its ``np.load`` of the label files, its top-1 line and its
loop at each of its cut-offs k = 10, 25, 50, 100; mrlbench's default ``--ks``) on the
same 50,000 x 100 neighbours and label files, 3 rounds after 1 warm-up round on each
side (the files in the page cache, bytecode compiled and cached). The script reads the
neighbours two ways: from the same ``.npy`` file mrlbench reads (``notebook``: like for
like), and from the reference CSV with pandas, as ``compute_metrics.ipynb`` does
(``notebook-csv``: the notebook as it runs). Every side prints the same numbers,
checked to 1e-6."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_metrics import reference_notebook

from mrlbench import metrics, neighbors

N, M, K, CLASSES = 1_281_167, 50_000, 100, 1000
KS = (10, 25, 50, 100)  # the notebook cell's cut-offs (``shortlist``), mrlbench's default --ks
NAMES = ("mAP", "precision", "recall", "topk_acc")  # reference_notebook's order


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    yb = rng.integers(0, CLASSES, N)
    yq = rng.integers(0, CLASSES, M)
    # neighbours that share the query's class about 60% of the time, like a good embedding
    by_class = np.argsort(yb, kind="stable")
    starts = np.searchsorted(yb[by_class], np.arange(CLASSES))
    counts = np.bincount(yb, minlength=CLASSES)
    same = by_class[starts[yq][:, None] + rng.integers(0, counts[yq][:, None], (M, K))]
    ids = np.where(rng.random((M, K)) < 0.6, same, rng.integers(0, N, (M, K)))
    # labels as the reference stored them: float16, shape (n, 1)
    return ids, yb, yq, yb.astype(np.float16).reshape(-1, 1), yq.astype(np.float16).reshape(-1, 1)


@pytest.mark.parametrize("impl", ["reference-loop", "mrlbench", "mrlbench-1thread"])
def test_metrics(benchmark, record, data, impl):
    ids, yb, yq, yb16, yq16 = data
    benchmark.group = "metrics"
    if impl == "reference-loop":
        result = benchmark.pedantic(reference_notebook, (yq16, yb16, ids, K), rounds=3)
        REFERENCE["k100"] = result
    else:
        threads = 1 if impl == "mrlbench-1thread" else None
        got = benchmark.pedantic(
            metrics.compute, (ids, yb, yq, [K], "mrl-paper", threads), rounds=3
        )
        result = (got[f"mAP@{K}"], got[f"precision@{K}"], got[f"recall@{K}"], got[f"topk_acc@{K}"])
        want = REFERENCE.get("k100") or reference_notebook(yq16, yb16, ids, K)
        for ours, ref in zip(result, want, strict=True):
            assert f"{ours:f}" == f"{ref:f}" and ours == pytest.approx(ref, rel=1e-12)
    record("metrics", impl, benchmark)  # 3 rounds, no warm-up, on both sides


REFERENCE: dict[str, tuple] = {}

# The notebook's cell as a script: numpy (and pandas for its CSV) only, nothing of mrlbench.
NOTEBOOK = """
import json, sys
import numpy as np
{pandas}
folder, neighbours = sys.argv[1], sys.argv[2]
db_labels = np.load(folder + "/1K_train_mrl1_e0_ff2048-y.npy")
query_labels = np.load(folder + "/1K_val_mrl1_e0_ff2048-y.npy")
neighbors = {read}
top1 = db_labels[neighbors[:, 0]]
out = [float(np.sum(top1 == query_labels) / query_labels.shape[0])]
{loop}
for k in {ks}:
    mAP, precision, recall, topk = reference_notebook(query_labels, db_labels, neighbors, k)
    out += [float(mAP), float(precision), float(recall), float(topk)]
print(json.dumps(out))
"""


def notebook_script(csv: bool) -> str:
    read = "pd.read_csv(neighbours, header=None).to_numpy()" if csv else "np.load(neighbours)"
    return NOTEBOOK.format(
        pandas="import pandas as pd" if csv else "",
        read=read,
        loop=inspect.getsource(reference_notebook),  # the very loop the tests check
        ks=list(KS),
    )


@pytest.fixture(scope="module")
def files(data, tmp_path_factory):
    """The label files in the reference naming, and the neighbours as mrlbench writes
    them: ``.npy``, and the reference CSV (``mrlbench run --csv``)."""
    ids, _, _, yb16, yq16 = data
    folder = tmp_path_factory.mktemp("arrays")
    np.save(folder / "1K_train_mrl1_e0_ff2048-y.npy", yb16)
    np.save(folder / "1K_val_mrl1_e0_ff2048-y.npy", yq16)
    stem = folder / neighbors.search_stem("mrl", "exactl2", 16, K, "1K")
    npy = neighbors.save(stem, ids, csv=True)
    return folder, npy, npy.with_suffix(".csv")


def mrlbench_command() -> list[str]:
    """The console script next to this interpreter (as a user types it), else ``-m``."""
    script = Path(sys.executable).with_name("mrlbench")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "mrlbench"]


def run_json(command: list[str]) -> list[float]:
    """The last stdout line of ``command`` as JSON. Bytecode is cached as in a user's
    shell (site-packages are compiled at install; the warm-up round compiles mrlbench's
    own sources, which an editable install leaves uncompiled), even where the calling
    environment sets PYTHONDONTWRITEBYTECODE."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    done = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
    return json.loads(done.stdout.strip().splitlines()[-1])


def notebook_cli(folder: Path, neighbours: Path, csv: bool) -> list[float]:
    return run_json([sys.executable, "-c", notebook_script(csv), str(folder), str(neighbours)])


def mrlbench_cli(folder: Path, neighbours: Path) -> list[float]:
    args = ["metrics", "--arrays", str(folder), "--neighbors", str(neighbours)]
    ks = ",".join(map(str, KS))
    got = run_json([*mrlbench_command(), *args, "--ks", ks, "--metrics", "mrl-paper", "--json"])
    return [got["top1"], *(got[f"{name}@{k}"] for k in KS for name in NAMES)]


@pytest.fixture(scope="module")
def expected(files):
    """top-1 and the four metrics at each k of ``KS`` by the reference loop, in process,
    on the arrays as read from the files: what every side must print."""
    folder, npy, _ = files
    yb16 = np.load(folder / "1K_train_mrl1_e0_ff2048-y.npy")
    yq16 = np.load(folder / "1K_val_mrl1_e0_ff2048-y.npy")
    ids = np.load(npy)
    top1 = np.sum(yb16[ids[:, 0]] == yq16) / len(yq16)
    return [float(top1), *(float(v) for k in KS for v in reference_notebook(yq16, yb16, ids, k))]


CLI_GROUPS = {"notebook": "metrics-cli", "notebook-csv": "metrics-cli-csv"}


@pytest.mark.parametrize("impl", ["notebook", "notebook-csv", "mrlbench-cli"])
def test_metrics_command_line(benchmark, record, files, expected, impl):
    """End to end, start-up and file reading included; the same five numbers."""
    folder, npy, csv = files
    benchmark.group = CLI_GROUPS.get(impl, "metrics-cli")
    rounds = {"rounds": 3, "warmup_rounds": 1}
    if impl == "mrlbench-cli":
        got = benchmark.pedantic(mrlbench_cli, (folder, npy), **rounds)
    else:
        from_csv = impl == "notebook-csv"
        args = (folder, csv if from_csv else npy, from_csv)
        got = benchmark.pedantic(notebook_cli, args, **rounds)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    for group in CLI_GROUPS.values() if impl == "mrlbench-cli" else [CLI_GROUPS[impl]]:
        record(group, impl, benchmark)  # one mrlbench time against both baselines
