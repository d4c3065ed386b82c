"""Executors are plugins (``[run.executor] name = "..."`` or ``[run] executor = "..."``):
the name is checked against the registry, every other key of the table is the
executor's own option (checked by it), the table is written back to the run's config,
an old key says what to write instead, and an executor that cannot run here stops the
run before anything is written. Ray starts in one place. (The local one runs every
other test; Ray: test_ray.py; a third-party one: the example plugin's ``processes``,
test_plugins.py.)"""

from __future__ import annotations

import pytest

from mrlbench import config
from mrlbench.errors import ConfigError

RUN = """
[run]
ks = [10]
latency_queries = 0
repeats = 1
{run}

[[encoders]]
plugin = "synthetic"
n_database = 500
n_queries = 20
dim = 16

[[backends]]
plugin = "faiss-exact"

[[strategies]]
plugin = "flat"
dims = [8]
"""


def test_the_executors_are_registered_like_every_component(registry):
    sources = {item.cls.name: item.source for item in registry.all() if item.kind == "executor"}
    assert sources["local"] == "mrlbench" and sources["ray"] == "mrlbench"


def test_the_executor_key_names_a_registered_executor(registry):
    raw = config.parse_toml(RUN.format(run='executor = "dask"'), "test")
    with pytest.raises(ConfigError, match=r"\[run\] executor: unknown executor plugin 'dask'"):
        config.build(raw, registry)
    raw = config.parse_toml(RUN.format(run='[run.executor]\nname = "ray"\nmax_retry = 1'), "t")
    with pytest.raises(ConfigError, match="unknown key 'max_retry'"):
        config.build(raw, registry)
    ray_table = '[run.executor]\nname = "ray"\naddress = 1'
    with pytest.raises(ConfigError, match="address must be a string"):
        config.build(config.parse_toml(RUN.format(run=ray_table), "t"), registry)


def test_the_executor_is_written_back_with_its_arguments(registry):
    plain = config.build(config.parse_toml(RUN.format(run=""), "t"), registry)
    assert plain.resolved()["run"]["executor"] == "local"
    assert "ray_address" not in plain.resolved()["run"]
    table = '[run.executor]\nname = "ray"\nmax_retries = 1\naddress = "head:6379"'
    cfg = config.build(config.parse_toml(RUN.format(run=table), "t"), registry)
    run = cfg.resolved()["run"]
    assert run["executor"] == {"name": "ray", "max_retries": 1, "address": "head:6379"}
    assert run["executor"]["address"] == "head:6379"
    assert config.build(config.parse_toml(config.dumps(cfg.resolved()), "t"), registry).executor


def test_an_executor_that_cannot_run_here_stops_before_any_work(cli, tmp_path, monkeypatch):
    from mrlbench_plugins.ray_executor import INSTALL_HINT, RayExecutor

    monkeypatch.setattr(RayExecutor, "availability", classmethod(lambda cls: INSTALL_HINT))
    cfg = tmp_path / "run.toml"
    cfg.write_text(RUN.format(run='executor = "ray"'))
    r = cli("run", cfg, "--out", tmp_path / "out")
    assert r.code == 2 and "Traceback" not in r.err
    assert "[run] executor 'ray': Ray is not installed: run `pip install -e '.[ray]'`" in r.err
    assert not (tmp_path / "out").exists()


def build(registry, run: str) -> config.RunConfig:
    return config.build(config.parse_toml(RUN.format(run=run), "t"), registry)


def test_the_old_ray_address_key_says_what_to_write(registry, cli, tmp_path):
    moved = (
        "[run] ray_address has moved to the executor's table: write [run.executor] "
        'with name = "ray" and address = "head:6379"'
    )
    with pytest.raises(ConfigError) as err:
        build(registry, 'executor = "ray"\nray_address = "head:6379"')
    assert str(err.value) == moved
    with pytest.raises(ConfigError, match=r'and address = "host:port"$'):
        build(registry, 'ray_address = ""')
    cfg = tmp_path / "run.toml"
    cfg.write_text(RUN.format(run='executor = "ray"\nray_address = "head:6379"'))
    r = cli("run", cfg, "--out", tmp_path / "out")
    assert r.code == 2 and "Traceback" not in r.out + r.err
    assert [line for line in r.err.splitlines() if line.strip()] == [f"error: {moved}"]
    assert not (tmp_path / "out").exists()


def test_the_ray_executor_declares_and_checks_its_own_options(registry):
    assert not any("ray" in key or key == "address" for key in config.RUN_DEFAULTS)
    with pytest.raises(ConfigError, match=r"unknown key 'address' in \[run\]"):
        build(registry, 'address = "head:6379"')  # the core knows no Ray key
    for address in ("head:6379", "10.0.0.1:6379", "ray://head:10001", "[::1]:6379", "auto"):
        cfg = build(registry, f'[run.executor]\nname = "ray"\naddress = "{address}"')
        assert cfg.executor.component.address == address
    for address in ("head", "head:0", "head:70000", "http://head:8265", "head:port"):
        with pytest.raises(ConfigError) as err:
            build(registry, f'[run.executor]\nname = "ray"\naddress = "{address}"')
        assert str(err.value) == (
            "[run.executor] executor plugin 'ray': address must be \"host:port\", "
            '"ray://host:port" or "auto" (empty: $RAY_ADDRESS, else a local Ray), '
            f"not '{address}'"
        )
    for retries in ("-1", "true", '"3"', "1.5"):
        with pytest.raises(ConfigError) as err:
            build(registry, f'[run.executor]\nname = "ray"\nmax_retries = {retries}')
        assert str(err.value).startswith(
            "[run.executor] executor plugin 'ray': max_retries must be an integer of 0 or more"
        )
    with pytest.raises(ConfigError, match=r"executor plugin 'local': unknown key 'address'"):
        build(registry, '[run.executor]\nname = "local"\naddress = "head:6379"')


def test_plugin_is_a_synonym_of_name_in_the_executor_table(registry):
    inline = build(registry, 'executor = { plugin = "ray", max_retries = 1 }')
    table = build(registry, '[run.executor]\nname = "ray"\nmax_retries = 1')
    assert inline.resolved()["run"] == table.resolved()["run"]
    assert table.resolved()["run"]["executor"] == {"name": "ray", "max_retries": 1}
    assert build(registry, 'executor = { plugin = "ray" }').resolved()["run"]["executor"] == "ray"
    with pytest.raises(ConfigError, match=r"name and plugin .* differ: keep name"):
        build(registry, '[run.executor]\nname = "ray"\nplugin = "local"')
    with pytest.raises(ConfigError, match=r'^\[run.executor\] needs name = "..." \(known: '):
        build(registry, "[run.executor]\nmax_retries = 1")


def test_the_run_records_the_executor_table_with_its_options(registry, tmp_path):
    cfg = build(registry, '[run.executor]\nname = "ray"\naddress = "head:6379"')
    text = config.dumps(cfg.resolved())
    assert '\n[run.executor]\nname = "ray"\naddress = "head:6379"\n' in text
    again = config.build(config.parse_toml(text, "t"), registry)
    assert again.resolved() == cfg.resolved() and again.executor.component.address == "head:6379"
    assert 'executor = "local"' in config.dumps(build(registry, "").resolved())


def test_one_ray_start_up_for_the_executor_and_the_encoding(cli, tmp_path):
    """``connect`` starts a local Ray with the threads asked for and uses a running one
    as it is; the executor and ``encode --executor ray`` both start Ray with it."""
    ray = pytest.importorskip("ray", reason="Ray is not installed: pip install -e '.[ray]'")
    from mrlbench_plugins import ray_executor, ray_start

    if ray.is_initialized():
        pytest.skip("a Ray already runs in this process")
    pytest.importorskip("torch")  # the vision package's encoding imports it
    from mrlbench_plugins.vision import ray_encoding

    # what the executor and `encode --executor ray` call
    assert ray_executor.connect is ray_start.connect is ray_encoding.connect
    try:
        assert ray_start.connect(1) is True  # started here: a local Ray of 1 CPU
        assert ray.cluster_resources()["CPU"] == 1
        assert ray_start.connect(3) is False  # running: used as it is
        assert ray.cluster_resources()["CPU"] == 1
        cfg = tmp_path / "run.toml"
        cfg.write_text(RUN.format(run='threads = 1\n[run.executor]\nname = "ray"'))
        r = cli("run", cfg, "--out", tmp_path / "joined")
        assert r.code == 0, r.err
        assert ray.is_initialized() and ray.cluster_resources()["CPU"] == 1  # left running
    finally:
        ray.shutdown()
    r = cli("run", cfg, "--out", tmp_path / "started")
    assert r.code == 0, r.err
    assert not ray.is_initialized()  # the run started its own Ray and shut it down
    assert (tmp_path / "started" / "leaderboard.json").read_text() != ""
