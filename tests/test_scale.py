"""Out-of-core exact search (``mrlbench.knn``, faiss-exact, torch-exact) against a numpy
brute force; ``mrlbench synth``; the checks that matter at scale (labels across dims,
a failing dim, backend limits before any build, cached fingerprints, query samples)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_exact, brute_force, write_arrays

from mrlbench import arrays as array_files
from mrlbench import knn
from mrlbench.arrays import load_embeddings
from mrlbench.vectors import PrefixBlocks, prefix
from mrlbench_plugins.faiss.exact import FaissExact
from mrlbench_plugins.synthetic import write_synthetic


def overlap(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean([len(set(x) & set(y)) / len(y) for x, y in zip(a, b, strict=True)]))


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    xb = rng.standard_normal((5000, 192), dtype=np.float32) * 2
    xb[7] = 0  # a zero row stays zero: distance |q|^2 = 1 from every unit query
    xq = rng.standard_normal((60, 192), dtype=np.float32)
    return xb, xq


@pytest.mark.parametrize("dim", [8, 64, 192])
@pytest.mark.parametrize("queries", [1, 60])
def test_blocked_exact_search_equals_brute_force(data, monkeypatch, dim, queries):
    """Blocks and tiles far smaller than the database, so that merging across blocks,
    tiles and query chunks is what is tested; raw rows and compact copies."""
    xb, xq = data
    monkeypatch.setattr(knn, "block_rows", lambda d: 700)
    monkeypatch.setattr(knn, "tiles", lambda d: (16, 256))
    monkeypatch.setattr(knn, "COMPACT_BYTES", 0 if dim > 8 else 1 << 30)
    index = knn.ExactIndex.build(PrefixBlocks(xb, dim), dim)
    assert (index.database is xb) == (dim > 8)  # raw rows, or a compact normalised copy
    dist, ids = knn.exact_knn(index, prefix(xq[:queries], dim), 40, threads=2)
    assert_exact(ids, xb, xq[:queries], dim)  # a zero row stays zero (brute_force too)
    assert (ids[:, 0] == brute_force(xb, xq[:queries], dim, 1)[:, 0]).all()
    assert np.all(np.diff(dist, axis=1) >= 0)
    backend = FaissExact()
    backend.use_threads(2)
    found, work = backend.search(backend.build(PrefixBlocks(xb, dim), dim), prefix(xq, dim), 40)
    assert_exact(found[:queries], xb, xq[:queries], dim)
    assert work == len(xb)


def test_fewer_rows_than_k_pad_with_minus_one():
    xb = np.eye(3, 8, dtype=np.float32)
    index = knn.ExactIndex.build(PrefixBlocks(xb, 8), 8)
    _, ids = knn.exact_knn(index, prefix(xb[:1], 8), 5)
    assert ids[0, 0] == 0 and sorted(ids[0, :3]) == [0, 1, 2] and list(ids[0, 3:]) == [-1, -1]


def test_torch_exact_matches_brute_force_and_measures_half_precision(data):
    pytest.importorskip("torch")
    from mrlbench_plugins.torch_exact import TorchExact

    xb, xq = data
    exact = TorchExact(device="cpu")
    ids, work = exact.search(exact.build(PrefixBlocks(xb, 64), 64), prefix(xq, 64), 40)
    assert_exact(ids, xb, xq, 64)
    assert work == len(xb)
    half = TorchExact(device="cpu", precision="bf16")
    ids16, _ = half.search(half.build(PrefixBlocks(xb, 64), 64), prefix(xq, 64), 40)
    # not exact, by design: bf16 rounds each coordinate to 8 significant bits, so
    # neighbours whose distances differ by less than about 1% may swap: it must find
    # most, and not all, of them
    assert 0.9 < overlap(ids16, brute_force(xb, xq, 64, 40)) < 1.0
    assert exact.index_name != FaissExact().index_name  # never the same neighbour files


def test_torch_exact_on_cuda(data):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device: torch-exact's GPU path runs where torch sees a GPU")
    from mrlbench_plugins.torch_exact import TorchExact

    xb, xq = data
    # not held to the tie: cuBLAS sums in its own blocked order and fp16 rounds each
    # coordinate, so near-ties at the k-th place may swap;
    # each keeps a floor on the overlap with brute force. The CPU paths are exact (above).
    for precision, least in (("fp32", 0.999), ("fp16", 0.95)):
        gpu = TorchExact(device="cuda", precision=precision)
        assert gpu.device == "GPU"
        ids, _ = gpu.search(gpu.build(PrefixBlocks(xb, 64), 64), prefix(xq, 64), 40)
        assert overlap(ids, brute_force(xb, xq, 64, 40)) > least


def test_synth_writes_reference_arrays_block_by_block(tmp_path, monkeypatch):
    from mrlbench_plugins import synthetic

    monkeypatch.setattr(synthetic, "BLOCK_BYTES", 64 * 4 * 500)  # 500 rows a block
    written = write_synthetic(tmp_path, 3000, 300, 64, 20, seed=1)
    assert set(written) == {"train", "val"}
    emb = load_embeddings(tmp_path, "synth", "mrl1_e0_ff64")
    assert emb.database.shape == (3000, 64) and emb.queries.shape == (300, 64)
    assert np.load(tmp_path / "synth_train_mrl1_e0_ff64-y.npy").dtype == np.int32
    again = tmp_path / "again"
    write_synthetic(again, 3000, 300, 64, 20, seed=1)
    assert np.array_equal(np.load(again / "synth_train_mrl1_e0_ff64-X.npy"), emb.database)

    def top1(dim: int) -> float:
        ids = brute_force(emb.database, emb.queries, dim, 1)[:, 0]
        return float((emb.database_labels[ids] == emb.query_labels).mean())

    assert top1(4) < top1(16) <= top1(64) + 0.02  # accuracy rises, then saturates


def test_fingerprints_are_cached_by_file_identity(tmp_path, monkeypatch):
    monkeypatch.setenv("MRLBENCH_CACHE", str(tmp_path / "cache"))
    arrays = write_arrays(tmp_path / "arrays")
    calls = []
    real = array_files.scan
    monkeypatch.setattr(array_files, "scan", lambda x: calls.append(1) or real(x))
    first = load_embeddings(arrays.folder, arrays.dataset, arrays.config)
    assert len(calls) == 2  # database and queries
    second = load_embeddings(arrays.folder, arrays.dataset, arrays.config)
    assert len(calls) == 2 and second.fingerprint == first.fingerprint
    path = arrays.folder / f"{arrays.dataset}_train_{arrays.config}-X.npy"
    x = np.load(path)
    x[0, 0] += 1
    np.save(path, x)  # a changed file is scanned again
    third = load_embeddings(arrays.folder, arrays.dataset, arrays.config)
    assert len(calls) == 3 and third.fingerprint != first.fingerprint


RUN = """
[run]
out = "{out}"
ks = [10]
latency_queries = 5
repeats = 1

[[encoders]]
plugin = "arrays"
name = "mrl"
path = "{path}"
config = "mrl1_e0_ff64"
{extra}

[[backends]]
plugin = "{backend}"

[[strategies]]
plugin = "flat"
dims = {dims}
"""


def run(cli, tmp_path: Path, arrays, backend="faiss-exact", dims="[8, 64]", extra=""):
    out = tmp_path / "run"
    config = tmp_path / "run.toml"
    config.write_text(
        RUN.format(out=out, path=arrays.folder, backend=backend, dims=dims, extra=extra)
    )
    result = cli("run", config)
    return result, json.loads((out / "leaderboard.json").read_text())


def test_a_failing_dim_keeps_the_other_rows(cli, arrays, tmp_path):
    # a dim the arrays lack is refused before any work (issue 11's checks) ...
    out = tmp_path / "run"
    config = tmp_path / "run.toml"
    config.write_text(
        RUN.format(out=out, path=arrays.folder, backend="faiss-exact", dims="[8, 99]", extra="")
    )
    refused = cli("run", config)
    assert refused.code == 2 and "dim 99 is larger than the arrays" in refused.err
    assert not out.exists()
    # ... a dim the backend cannot search fails its own row; the other dims keep theirs
    text = RUN.format(out=out, path=arrays.folder, backend="faiss-ivfpq", dims="[8, 64]", extra="")
    config.write_text(
        text.replace('plugin = "faiss-ivfpq"', 'plugin = "faiss-ivfpq"\nnlist = 16\nm = 16')
    )
    result = cli("run", config)
    assert result.code == 1
    rows = json.loads((out / "leaderboard.json").read_text())
    by_label = {r["label"]: r for r in rows}
    assert by_label["flat@64"]["status"] == "ok" and by_label["flat@64"]["mAP@10"] > 0
    assert by_label["flat@8"]["status"] == "failed"
    assert "m = 16" in by_label["flat@8"]["error"] or "divide" in by_label["flat@8"]["error"]


def test_query_sample_is_seeded_and_scored_on_its_labels(cli, arrays, tmp_path):
    result, _ = run(cli, tmp_path, arrays, dims="[64]", extra="queries = 50")
    assert result.code == 0, result.err
    ids = np.load(tmp_path / "run/neighbors/mrl/exactl2_64dim_10shortlist_1K.npy")
    assert ids.shape[0] == 50
    sample = np.sort(np.random.default_rng(0).choice(len(arrays.xq), 50, replace=False))
    assert_exact(ids, arrays.xb, arrays.xq[sample], 64)


def test_labels_must_agree_across_dims(cli, tmp_path):
    a = write_arrays(tmp_path / "arrays", config="mrl0_e0_ff8")
    write_arrays(tmp_path / "arrays", config="mrl0_e0_ff64", seed=1)  # other labels
    out = tmp_path / "run"
    config = tmp_path / "run.toml"
    text = RUN.format(out=out, path=a.folder, backend="faiss-exact", dims="[8, 64]", extra="")
    text = text.replace(
        'config = "mrl1_e0_ff64"', 'configs = {8 = "mrl0_e0_ff8", 64 = "mrl0_e0_ff64"}'
    )
    config.write_text(text)
    result = cli("run", config)
    rows = json.loads((out / "leaderboard.json").read_text())
    assert result.code == 1
    assert all(r["status"] == "failed" and "disagree" in r["error"] for r in rows)


LIMITED = """
import numpy as np
from pathlib import Path
from mrlbench import hookimpl
from mrlbench.errors import MrlbenchError
from mrlbench.types import Backend


class Limited(Backend):
    \"\"\"Searches at most 5 neighbours; leaves a file behind when it builds.\"\"\"

    name = "limited"
    index_name = "limited"

    def check(self, dim, k):
        if k > 5:
            raise MrlbenchError(f"limited supports k <= 5 (asked {k})")

    def build(self, chunks, dim):
        Path(__file__).with_name("built").touch()
        return np.concatenate(list(chunks))

    def search(self, index, queries, k):
        return np.argsort(-(queries @ index.T), axis=1)[:, :k], float(len(index))

    def write(self, index, path):
        np.save(path, index)

    def read(self, path):
        return np.load(path)


@hookimpl
def mrlbench_register_backends(register):
    register(Limited)
"""


def test_backend_limits_are_checked_before_any_build(cli, arrays, tmp_path):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "limited.py").write_text(LIMITED)
    out = tmp_path / "run"
    config = tmp_path / "run.toml"
    config.write_text(
        RUN.format(out=out, path=arrays.folder, backend="limited", dims="[8]", extra="")
    )
    result = cli("--plugins-dir", plugins, "run", config)
    rows = json.loads((out / "leaderboard.json").read_text())
    assert result.code == 1
    assert [r["status"] for r in rows] == ["failed"] and "k <= 5" in rows[0]["error"]
    assert not (plugins / "built").exists()


def test_faiss_exact_gives_faiss_flat_index_neighbours(data):
    """The out-of-core kernel against FAISS's own in-memory ``IndexFlatL2``, the
    reference pipeline's exact search, on the same normalised prefixes."""
    import faiss

    xb, xq = data
    for dim in (16, 192):
        flat = faiss.IndexFlatL2(dim)
        flat.add(prefix(xb, dim))
        _, expected = flat.search(prefix(xq, dim), 50)
        backend = FaissExact()
        ids, _ = backend.search(backend.build(PrefixBlocks(xb, dim), dim), prefix(xq, dim), 50)
        assert_exact(ids, xb, xq, dim, expected)  # FAISS's own sets and order, f32 ties aside
        assert_exact(ids, xb, xq, dim)
