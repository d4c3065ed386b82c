"""Executors are plugins (``[run] executor``): the key is checked against the registry,
written back to the run's config, and an executor that cannot run here stops the run
before anything is written. (The local one runs every other test; Ray: test_ray.py;
a third-party one: the example plugin's ``processes``, test_plugins.py.)"""

from __future__ import annotations

import pytest

from mrlbench import config
from mrlbench.errors import ConfigError

RUN = """
[run]
{run}
ks = [10]
latency_queries = 0
repeats = 1

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
    raw = config.parse_toml(RUN.format(run='executor = { plugin = "ray", max_retry = 1 }'), "t")
    with pytest.raises(ConfigError, match="unknown key 'max_retry'"):
        config.build(raw, registry)
    with pytest.raises(ConfigError, match="ray_address must be a string"):
        config.build(config.parse_toml(RUN.format(run="ray_address = 1"), "t"), registry)


def test_the_executor_is_written_back_with_its_arguments(registry):
    plain = config.build(config.parse_toml(RUN.format(run=""), "t"), registry)
    assert plain.resolved()["run"]["executor"] == "local" and plain.ray_address == ""
    table = 'executor = { plugin = "ray", max_retries = 1 }\nray_address = "head:6379"'
    cfg = config.build(config.parse_toml(RUN.format(run=table), "t"), registry)
    run = cfg.resolved()["run"]
    assert run["executor"] == {"plugin": "ray", "max_retries": 1}
    assert run["ray_address"] == "head:6379"
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
