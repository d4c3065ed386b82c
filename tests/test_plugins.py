"""Plugins: discovery, the registry's errors, the plugins folder, a real third-party
package installed from ``tests/example_plugin``, and hooks kept documented."""

from __future__ import annotations

import ast
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mrlbench import hookspecs
from mrlbench.errors import ConfigError
from mrlbench.plugins import Registry
from mrlbench_plugins.flat import Flat

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "tests" / "example_plugin"
HOOKS = [
    name
    for name, _ in inspect.getmembers(hookspecs, inspect.isfunction)
    if name.startswith("mrlbench_")
]


def test_builtins_are_entry_point_plugins(registry):
    names = {(item.kind, item.cls.name): item.source for item in registry.all()}
    for key in [
        ("encoder", "arrays"),
        ("backend", "faiss-exact"),
        ("backend", "faiss-hnsw"),
        ("strategy", "flat"),
        ("strategy", "adaptive"),
        ("strategy", "funnel"),
    ]:
        assert names[key] == "mrlbench"


def test_plugins_command_lists_kind_source_and_availability(cli):
    r = cli("plugins")
    assert r.code == 0
    line = next(line for line in r.out.splitlines() if "faiss-exact" in line)
    assert "backend" in line and "mrlbench" in line and "yes" in line and "CPU" in line


def test_missing_dependency_is_a_reason_not_a_crash(cli, monkeypatch):
    monkeypatch.setitem(sys.modules, "faiss", None)  # `import faiss` now fails
    r = cli("plugins")
    assert r.code == 0
    line = next(line for line in r.out.splitlines() if "faiss-hnsw" in line)
    assert "no" in line and "FAISS is not installed" in r.out


def test_duplicate_names_and_bad_classes_are_errors():
    reg = Registry()
    reg.register("strategy", "pkg-a")(Flat)
    with pytest.raises(
        ConfigError, match="duplicate strategy name 'flat': registered by pkg-a and by pkg-b"
    ):
        reg.register("strategy", "pkg-b")(Flat)
    with pytest.raises(ConfigError, match="not a Backend subclass"):
        reg.register("backend", "pkg-a")(Flat)


def test_unknown_and_missing_keys_name_plugin_and_key(registry):
    with pytest.raises(ConfigError, match="strategy plugin 'adaptive': unknown key 'shortlst'"):
        registry.create("strategy", {"plugin": "adaptive", "shortlst": 3})
    with pytest.raises(ConfigError, match="encoder plugin 'arrays': missing required key 'path'"):
        registry.create("encoder", {"plugin": "arrays", "config": "mrl1_e0_ff64"})


def test_blocking_a_plugin():
    env = {**os.environ, "MRLBENCH_BLOCK_PLUGINS": "synthetic"}
    done = subprocess.run(
        [sys.executable, "-m", "mrlbench", "plugins"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert " synthetic " not in done.stdout and " arrays " in done.stdout


def test_one_plugin_manager_and_one_registry():
    from mrlbench import plugins

    sources = [p.read_text() for p in (ROOT / "mrlbench").glob("*.py")]
    sources += [p.read_text() for p in (ROOT / "plugins").rglob("*.py")]
    assert sum(s.count("PluginManager(") for s in sources) == 1
    assert plugins.registry() is plugins.registry()


def test_a_misspelled_hook_is_one_line_and_exit_2(cli, tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "typo.py").write_text(
        "from mrlbench import hookimpl\n\n\n@hookimpl\n"
        "def mrlbench_register_strategy(register):\n    pass\n"
    )
    r = cli("--plugins-dir", folder, "plugins")
    assert r.code == 2 and "Traceback" not in r.err
    assert "typo.py" in r.err and "mrlbench_register_strategy" in r.err
    assert cli("plugins").code == 0  # the bad file did not stay registered


PLUGIN_FILE = '''
from mrlbench import hookimpl
from mrlbench_plugins.flat import Flat


class Shallow(Flat):
    """Flat search at the smallest dim only."""

    name = "shallow"

    def searches(self, dims, n_database):
        return super().searches(dims[:1], n_database)


@hookimpl
def mrlbench_register_strategies(register):
    register(Shallow)
'''

RUN = """
[[encoders]]
plugin = "{encoder}"
{encoder_args}
[[backends]]
plugin = "faiss-exact"
[[backends]]
plugin = "{backend}"
[[strategies]]
plugin = "flat"
[[strategies]]
plugin = "{strategy}"
"""


def test_plugins_dir_option_and_environment(cli, arrays, tmp_path, monkeypatch):
    folder = tmp_path / "myplugins"
    folder.mkdir()
    (folder / "shallow.py").write_text(PLUGIN_FILE)
    cfg = tmp_path / "run.toml"
    cfg.write_text(
        RUN.format(
            encoder="arrays",
            backend="faiss-hnsw",
            strategy="shallow",
            encoder_args=f'path = "{arrays.folder}"\nconfig = "mrl1_e0_ff64"',
        )
    )
    r = cli("--plugins-dir", folder, "run", cfg, "--out", tmp_path / "o1")
    assert r.code == 0, r.err
    rows = json.loads((tmp_path / "o1" / "leaderboard.json").read_text())
    assert [row["label"] for row in rows if row["strategy"] == "shallow"] == ["flat@8"] * 2
    monkeypatch.setenv("MRLBENCH_PLUGINS_DIR", str(folder))
    r = cli("plugins")
    assert "shallow" in r.out and "shallow.py (plugins dir)" in r.out


@pytest.fixture(scope="module")
def installed_example(tmp_path_factory) -> Path:
    """The example package really installed (pip, entry points) into its own folder."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(EXAMPLE),
        ],
        check=True,
        capture_output=True,
    )
    return target


def mrlbench(site: Path, *args) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(site)}
    env.pop("MRLBENCH_PLUGINS_DIR", None)
    return subprocess.run(
        [sys.executable, "-m", "mrlbench", *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_third_party_package_is_listed_and_run(installed_example, tmp_path):
    listed = mrlbench(installed_example, "plugins")
    assert listed.returncode == 0, listed.stderr
    for name in ("blobs", "numpy-exact", "random", "stripes"):
        line = next(line for line in listed.stdout.splitlines() if f" {name} " in line)
        assert "mrlbench-example-plugin" in line
    hello = mrlbench(installed_example, "example-hello")
    assert hello.stdout.strip() == "hello from mrlbench-example-plugin"

    cfg = tmp_path / "run.toml"
    cfg.write_text(
        RUN.format(encoder="blobs", backend="numpy-exact", strategy="random", encoder_args="")
    )
    done = mrlbench(installed_example, "run", cfg, "--out", tmp_path / "o")
    assert done.returncode == 0, done.stderr
    rows = json.loads((tmp_path / "o" / "leaderboard.json").read_text())
    assert {(r["backend"], r["strategy"]) for r in rows} == {
        (b, s) for b in ("faiss-exact", "numpy-exact") for s in ("flat", "random")
    }
    assert all(r["status"] == "ok" for r in rows)
    flat = {(r["backend"], r["label"]): r["mAP@10"] for r in rows if r["strategy"] == "flat"}
    for dim in (8, 16, 32, 64):  # the two exact backends agree
        assert flat[("numpy-exact", f"flat@{dim}")] == pytest.approx(
            flat[("faiss-exact", f"flat@{dim}")], abs=1e-3
        )
    chance = next(r["mAP@10"] for r in rows if r["strategy"] == "random")
    assert chance < min(flat.values())

    # a third-party executor (a process pool) gives the same leaderboard's accuracy
    cfg.write_text('[run]\nexecutor = { plugin = "processes" }\n' + cfg.read_text())
    done = mrlbench(installed_example, "run", cfg, "--out", tmp_path / "pool")
    assert done.returncode == 0, done.stderr
    pooled = json.loads((tmp_path / "pool" / "leaderboard.json").read_text())
    accuracy = [k for k in rows[0] if k.startswith(("mAP", "top", "precision", "recall"))]
    assert [[r[k] for k in accuracy] for r in pooled] == [[r[k] for k in accuracy] for r in rows]


def test_every_hook_is_documented_and_exercised():
    readme = (ROOT / "README.md").read_text()
    example = (EXAMPLE / "mrlbench_example.py").read_text()
    assert len(HOOKS) == 6
    for name in HOOKS:
        spec = getattr(hookspecs, name)
        params = ", ".join(inspect.signature(spec).parameters)
        assert f"{name}({params})" in readme, f"{name} is not documented in README.md"
        assert spec.__doc__ and ":param" in spec.__doc__
        assert f"def {name}(" in example, f"{name} is not exercised by the example plugin"


def test_the_core_names_no_plugin_and_plugins_import_neither_cli_nor_each_other():
    import tomllib

    for path in (ROOT / "mrlbench").glob("*.py"):
        text = path.read_text()
        assert "import faiss" not in text and "mrlbench_plugins" not in text, path.name
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    entry_points = set(project["project"]["entry-points"]["mrlbench"].values())
    for path in (ROOT / "plugins").rglob("*.py"):
        text = path.read_text()
        assert "mrlbench.cli" not in text, path
        module = "mrlbench_plugins." + ".".join(
            path.relative_to(ROOT / "plugins").with_suffix("").parts
        )
        for other in entry_points - {module}:
            assert f"from {other} import" not in text and f"import {other}\n" not in text, (
                f"{path} imports the plugin {other}"
            )


def mrlbench_imports(path: Path) -> list[tuple[int, str, str]]:
    """(line, module, name) of every import of mrlbench (or a module in it) in ``path``,
    at any depth (imports inside functions too)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "mrlbench":
            found += [(node.lineno, node.module or "", a.name) for a in node.names]
        elif isinstance(node, ast.Import):
            found += [
                (node.lineno, a.name, "") for a in node.names if a.name.split(".")[0] == "mrlbench"
            ]
    return found


def test_plugins_import_only_through_the_public_door():
    """Every built-in plugin (and the example package) imports ``from mrlbench import
    NAME`` with NAME in ``mrlbench.__all__``: nothing past the door."""
    import mrlbench

    paths = [*(ROOT / "plugins").rglob("*.py"), ROOT / "tests/example_plugin/mrlbench_example.py"]
    for path in paths:
        for line, module, name in mrlbench_imports(path):
            where = f"{path.relative_to(ROOT)}:{line}"
            assert module == "mrlbench", f"{where} reaches past the door: {module}"
            assert name in mrlbench.__all__, f"{where} imports {name}, not in mrlbench.__all__"
    for name in mrlbench.__all__:  # every name of the door resolves ...
        assert hasattr(mrlbench, name), name
    for path in (ROOT / "mrlbench").glob("*.py"):  # ... and none hides a module behind it
        assert path.stem not in mrlbench.__all__, f"mrlbench.{path.stem} is a module and a name"


def test_the_door_check_catches_a_plugin_that_reaches_past_it(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(
        "from mrlbench import hookimpl\n\ndef f():\n    from mrlbench.knn import exact_knn\n"
    )
    assert mrlbench_imports(bad) == [(1, "mrlbench", "hookimpl"), (4, "mrlbench.knn", "exact_knn")]


def test_a_plugin_author_tracks_cells_and_a_slowdown_fails_the_compare(installed_example, tmp_path):
    """The README's three commands on the example package: save a baseline, slow the
    plugin down, compare and fail. Timed on the example's virtual clock (1 ms a reading,
    plus the injected slowdown), so no wall-clock decides the outcome."""
    env = {**os.environ, "PYTHONPATH": str(installed_example)}
    env.pop("MRLBENCH_PLUGINS_DIR", None)
    storage = f"file://{tmp_path / 'benchmarks'}"
    common = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    common += ["--benchmark-storage", storage, "-k", "adaptive"]
    common += ["--benchmark-timer", "mrlbench_example.virtual_clock"]

    def pytest_run(*extra: str, slowdown: str = "0") -> subprocess.CompletedProcess:
        return subprocess.run(
            [*common, *extra],
            cwd=EXAMPLE,
            env={**env, "EXAMPLE_SLOWDOWN_S": slowdown},
            capture_output=True,
            text=True,
            timeout=600,
        )

    saved = pytest_run("--benchmark-autosave")
    assert saved.returncode == 0, saved.stdout + saved.stderr
    assert "1 passed" in saved.stdout and list((tmp_path / "benchmarks").rglob("*.json"))
    (baseline,) = (tmp_path / "benchmarks").rglob("*.json")
    stats = json.loads(baseline.read_text())["benchmarks"][0]["stats"]
    assert stats["min"] == pytest.approx(0.001) == stats["max"]  # the virtual clock's tick
    same = pytest_run("--benchmark-compare", "--benchmark-compare-fail=min:100%")
    assert same.returncode == 0, same.stdout + same.stderr
    slower = pytest_run("--benchmark-compare", "--benchmark-compare-fail=min:100%", slowdown="0.2")
    assert slower.returncode != 0 and "Performance has regressed" in slower.stdout + slower.stderr


TUNE = """
[run]
ks = [10]
repeats = 1
latency_queries = 10

[[encoders]]
plugin = "blobs"
name = "blobs"

[[backends]]
plugin = "faiss-exact"

[[strategies]]
plugin = "random"
"""


def test_a_third_party_strategy_is_tuned(installed_example, tmp_path):
    """``mrlbench tune`` asks every strategy for candidates: the example's ``random``
    offers two next to the built-ins' and they run on the sample."""
    import csv

    cfg = tmp_path / "tune.toml"
    cfg.write_text(TUNE)
    out = tmp_path / "tuned"
    args = ("tune", cfg, "--out", out, "--budget-mflops", "0.0175", "--sample", "50")
    done = mrlbench(installed_example, *args)
    assert done.returncode == 0, done.stderr
    with open(out / "tune.csv") as f:
        tried = {row["strategy"]: row for row in csv.DictReader(f)}
    for name in ("random k=10", "random k=100"):  # the headline cut-off and 100
        row = tried[name]
        assert row["status"] == "ok" and row["model_mflops"] == "0"
        assert row["sample_mAP@10"] and float(row["sample_mflops_per_query"]) == 0
    assert any(name.startswith("adaptive ") for name in tried)  # the built-ins' too
    with open(out / "tune" / "front" / "leaderboard.csv") as f:
        full = list(csv.DictReader(f))
    assert {row["strategy"] for row in full} >= {"flat", "random"}  # reference, own
