"""The Ray executor on a local 2-CPU Ray (started once for this module): the same
leaderboard and files as the local executor, no resume across executors, sharded search on
actors, a killed worker retried, paths every node must see, and image encoding with Ray
Data equal to the local encode. Skipped, with the reason, where Ray is not installed
(`make setup` installs the `ray` extra)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip(
    "ray", reason="Ray is not installed: pip install -e '.[ray]' (make setup installs it)"
)

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "benchmarks" / "ray" / "demo-synthetic.toml"
ACCURACY = ("top1", "mAP@", "precision@", "recall@", "topk_acc@", "knn_recall@")


@pytest.fixture(scope="module", autouse=True)
def local_ray(tmp_path_factory):
    """A local Ray with 2 CPUs for the module: the executor uses a running Ray as it is."""
    cache = tmp_path_factory.mktemp("cache")
    old = os.environ.get("MRLBENCH_CACHE")
    os.environ["MRLBENCH_CACHE"] = str(cache)  # the tasks get it from the driver
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield
    ray.shutdown()
    if old is None:
        os.environ.pop("MRLBENCH_CACHE", None)
    else:
        os.environ["MRLBENCH_CACHE"] = old


def demo_config(tmp_path: Path, executor: str, full: bool = False) -> Path:
    """benchmarks/ray/demo-synthetic.toml (the demo's shape: 3 encoders x 4 backends x
    3 strategies) with one thread a cell, so that the 2-CPU Ray runs two cells at once;
    smaller unless MRLBENCH_TEST_FULL_SIZE=1 (60,000 x 256, 10,000 queries)."""
    text = DEMO.read_text().replace(
        'executor = "local"',
        f'executor = "{executor}"\nthreads = 1\nrepeats = 1\nlatency_queries = 20',
    )
    if not (full or os.environ.get("MRLBENCH_TEST_FULL_SIZE") == "1"):
        text = text.replace("n_database = 60000", "n_database = 3000")
        text = text.replace("n_queries = 10000", "n_queries = 200")
        text = text.replace("nlist = 256", "nlist = 16")
    path = tmp_path / f"demo-{executor}.toml"
    path.write_text(text)
    return path


def board(out: Path) -> list[dict]:
    return json.loads((out / "leaderboard.json").read_text())


def numbers(rows: list[dict]) -> list[list]:
    """What must not change with the executor: every row's identity, accuracy and MFLOPs."""
    return [
        [r["encoder"], r["backend"], r["label"], r["status"], r["mflops_per_query"]]
        + [v for k, v in r.items() if k.startswith(ACCURACY)]
        for r in rows
    ]


def files(out: Path) -> dict[str, Path]:
    """The run directory's files, but those named by the executor or the session: cells
    (their keys hold the executor) and sessions/ (one file per session)."""
    skip = {".lock", "report.html", "env.json"}
    return {
        str(p.relative_to(out)): p
        for p in sorted(out.rglob("*"))
        if p.is_file()
        and p.name not in skip
        and p.suffix != ".png"
        and p.relative_to(out).parts[0] not in ("cells", "sessions")
    }


def test_the_demo_config_gives_the_same_leaderboard_under_local_and_ray(cli, tmp_path):
    local, remote = tmp_path / "local", tmp_path / "ray"
    assert cli("run", demo_config(tmp_path, "local"), "--out", local).code == 0
    r = cli("run", demo_config(tmp_path, "ray"), "--out", remote)
    assert r.code == 0, r.err
    assert len(board(remote)) == 3 * 4 * (6 + 2)  # every dim of flat, adaptive, funnel
    assert numbers(board(remote)) == numbers(board(local))
    assert {r["status"] for r in board(remote)} == {"ok"}
    ours, theirs = files(local), files(remote)
    assert sorted(ours) == sorted(theirs)  # the same run directory, written by the driver
    assert len(list((local / "cells").iterdir())) == len(list((remote / "cells").iterdir()))
    for name, path in ours.items():
        if path.suffix == ".npy":
            np.testing.assert_array_equal(np.load(path), np.load(theirs[name]), err_msg=name)
    assert 'executor = "ray"' in (remote / "config.toml").read_text()

    # a cell timed under Ray never resumes into a local run (its timings are Ray's): the
    # local run into the same folder computes every cell again, to the same numbers; a
    # second local run resumes them all, redoing nothing
    ray_cells = set((remote / "cells").iterdir())
    assert cli("run", demo_config(tmp_path, "local"), "--out", remote).code == 0
    assert len(set((remote / "cells").iterdir()) - ray_cells) == len(ray_cells)
    assert numbers(board(remote)) == numbers(board(local))
    stamps = {p: p.stat().st_mtime_ns for p in files(remote).values() if p.suffix == ".npy"}
    assert cli("run", demo_config(tmp_path, "local"), "--out", remote).code == 0
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps


SHARDED = """
[run]
executor = "{executor}"
ks = [10, 50]
threads = 1
repeats = 1
latency_queries = 10

[[encoders]]
plugin = "arrays"
name = "mrl"
path = "{path}"
config = "mrl1_e0_ff64"
dims = [8, 64]

[[backends]]
plugin = "faiss-exact"
name = "{name}"
shards = {shards}

[[backends]]
plugin = "torch-exact"
name = "t{name}"
device = "cpu"
shards = {shards}

[[strategies]]
plugin = "flat"

[[strategies]]
plugin = "adaptive"
shortlist_dim = 8
rerank_dim = 64
shortlist = 100
"""


def test_sharded_search_on_ray_actors_returns_the_ids_of_one_search(cli, arrays, tmp_path):
    outs = {}
    for executor, shards in (("local", 1), ("ray", 3)):
        cfg = tmp_path / f"{executor}.toml"
        cfg.write_text(
            SHARDED.format(executor=executor, path=arrays.folder, name="exact", shards=shards)
        )
        outs[executor] = tmp_path / executor
        r = cli("run", cfg, "--out", outs[executor])
        assert r.code == 0, r.err
    assert numbers(board(outs["ray"])) == numbers(board(outs["local"]))
    for index in ("exactl2-exact", "exactl2-torch-texact-*"):  # device = "cpu": a hash
        for dim, k in ((8, 100), (64, 50)):
            (npy,) = (outs["local"] / "neighbors/mrl").glob(f"{index}_{dim}dim_{k}shortlist_1K.npy")
            stem = f"neighbors/mrl/{npy.stem}"
            one = np.load(outs["local"] / f"{stem}.npy")
            np.testing.assert_array_equal(np.load(outs["ray"] / f"{stem}.npy"), one)
            report = json.loads((outs["ray"] / f"{stem}.json").read_text())["value"]
            shards = report["shards"]
            assert [s["rows"] for s in shards] == [[0, 1000], [1000, 2000], [2000, 3000]]
            workers = {s["worker"] for s in shards}
            assert len(workers) == 3 and f":{os.getpid()}" not in " ".join(workers)  # actors
            assert all(s["build_s"] > 0 and s["search_s"] > 0 for s in shards)
            assert report["shards_search_s"] > 0 and report["shards_build_s"] > 0


DIE_ONCE = '''
import os
from mrlbench import hookimpl
from mrlbench.types import Retrieval, SearchRequest, Strategy


class DieOnce(Strategy):
    """A flat search at one dim whose first run kills its process (a lost worker).

    Args:
        dim: Prefix size searched.
        marker: File written just before the kill; once it exists the strategy runs.
    """

    name = "die-once"

    def __init__(self, dim: int = 16, marker: str = ""):
        self.dim, self.marker = dim, marker

    def searches(self, dims, n_database):
        return [SearchRequest(self.dim)]

    def run(self, ctx):
        if self.marker and not os.path.exists(self.marker):
            with open(self.marker, "w") as f:
                f.write(str(os.getpid()))
            os._exit(1)
        found = ctx.search(self.dim)
        label = f"die-once@{self.dim}"
        return [Retrieval(label, (self.dim,), (), found.ids, found.mflops_per_query,
                          found.seconds, found.build_seconds, saved=found.path)]


@hookimpl
def mrlbench_register_strategies(register):
    register(DieOnce)
'''

KILLED = """
[run]
executor = "{executor}"
ks = [10]
threads = 1
repeats = 1
latency_queries = 10

[[encoders]]
plugin = "synthetic"
n_database = 2000
n_queries = 100
dim = 32

[[backends]]
plugin = "faiss-exact"

[[strategies]]
plugin = "flat"
dims = [8, 32]

[[strategies]]
plugin = "die-once"
marker = "{marker}"
"""


def test_a_worker_killed_mid_run_is_retried_and_the_run_completes(cli, tmp_path):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "die_once.py").write_text(DIE_ONCE)
    outs = {}
    for executor in ("ray", "local"):
        marker = tmp_path / f"killed-{executor}"
        if executor == "local":
            marker.write_text("never here")  # the local run would kill pytest itself
        cfg = tmp_path / f"{executor}.toml"
        cfg.write_text(KILLED.format(executor=executor, marker=marker))
        outs[executor] = tmp_path / executor
        r = cli("--plugins-dir", plugins, "run", cfg, "--out", outs[executor])
        assert r.code == 0, r.err
    killed = int((tmp_path / "killed-ray").read_text())
    assert killed != os.getpid()  # a Ray worker died, and its task ran again elsewhere
    with pytest.raises(ProcessLookupError):
        os.kill(killed, 0)  # that worker process is gone
    assert numbers(board(outs["ray"])) == numbers(board(outs["local"]))
    assert [r["label"] for r in board(outs["ray"])] == ["flat@8", "flat@32", "die-once@16"]


def test_paths_every_node_must_see_are_checked_before_any_task(tmp_path):
    from mrlbench.errors import ConfigError
    from mrlbench_plugins.ray_executor import require_visible

    require_visible([str(tmp_path)])  # the one node of this Ray sees it
    with pytest.raises(ConfigError, match=r"Ray node .* cannot see .*/not-shared: the arrays"):
        require_visible([str(tmp_path), str(tmp_path / "not-shared")])


def test_threads_beyond_the_largest_node_is_one_error(cli, tmp_path):
    cfg = demo_config(tmp_path, "ray")
    r = cli("run", cfg, "--out", tmp_path / "o", "--threads", "3")
    assert r.code == 2 and "Traceback" not in r.err
    assert "the largest Ray node has 2 CPUs" in r.err


class Interrupt(Exception):
    pass


def test_ray_encoding_resumes_and_equals_the_local_encode_in_order(cli, tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    from PIL import Image

    from mrlbench_plugins.vision import encoding, models
    from mrlbench_plugins.vision.data import scan_folder
    from mrlbench_plugins.vision.settings import Settings

    rng = np.random.default_rng(0)
    root = tmp_path / "images"
    for c in range(3):
        (root / f"class{c}").mkdir(parents=True)
        for i in range(23):
            pixels = (rng.random((20, 20, 3)) * 60 + c * 80).astype(np.uint8)
            Image.fromarray(pixels).save(root / f"class{c}" / f"img{i:02d}.png")
    torch.manual_seed(0)
    model = models.build("resnet-narrow-s2", "mrl", 3)
    models.save_reference(model, tmp_path / "m.pt")
    common = ["encode", "--model", "mrl", "--checkpoint", tmp_path / "m.pt"]
    common += ["--arch", "resnet-narrow-s2", "--database", root, "--dataset", "T"]
    common += ["--transform", "small", "--image-size", "16", "--precision", "fp32"]
    common += ["--batch-size", "16", "--workers", "0"]
    r = cli(*common, "--out", tmp_path / "local")
    assert r.code == 0, r.err

    # interrupted after 3 batches of 16 (committed every 16 rows), then resumed
    monkeypatch.setattr(encoding, "COMMIT_ROWS", 16)
    seen: list[int] = []

    def progress(what, total):
        def tick(n):
            seen.append(n)
            if sum(seen) >= 40:
                raise Interrupt

        return tick

    settings = Settings("small", 16, "cpu", "fp32", 16, 0)
    images = {"database": scan_folder(root)}

    class Folder:
        def split(self, which):
            return images[which]

    key = {"checkpoint": encoding.file_hash(tmp_path / "m.pt"), "arch": "resnet-narrow-s2"}
    key |= {"kind": "mrl", "source": "image-folder", "image_size": 16}  # as `encode` keys it
    with pytest.raises(Interrupt):
        encoding.encode_dataset(
            models.load(tmp_path / "m.pt", "mrl", "resnet-narrow-s2"),
            "mrl",
            Folder(),
            "T",
            tmp_path / "ray",
            settings,
            splits=["database"],
            progress=progress,
            key=key,
            executor="ray",
            checkpoint=tmp_path / "m.pt",
            arch="resnet-narrow-s2",
        )
    sidecar = json.loads(next((tmp_path / "ray").glob("*.progress.json")).read_text())
    assert sidecar["value"]["done"] == 48  # batches of exactly 16, in order
    r = cli(*common, "--out", tmp_path / "ray", "--executor", "ray")
    assert r.code == 0, r.err
    for part in ("X", "y"):
        name = f"T_train_mrl1_e0_ff256-{part}.npy"
        ours, theirs = np.load(tmp_path / "local" / name), np.load(tmp_path / "ray" / name)
        assert ours.shape == theirs.shape == ((69, 256) if part == "X" else (69,))
        assert ours.dtype == theirs.dtype
        np.testing.assert_allclose(theirs, ours, rtol=1e-5, atol=1e-6)
    assert not list((tmp_path / "ray").glob("*.partial"))
    assert not list((tmp_path / "ray").glob("*.progress.json"))
