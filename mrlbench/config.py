"""Run configs (TOML): parsing, validation and the resolved config written to a run."""

from __future__ import annotations

import json
import os
import re
import socket
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from mrlbench import sweep
from mrlbench.errors import ConfigError
from mrlbench.execution import Executor
from mrlbench.metrics import MODES
from mrlbench.plugins import Registry, absolute
from mrlbench.sampling import Queries, parse_queries
from mrlbench.store import cache_dir
from mrlbench.types import Backend, Component, Encoder, Strategy

RUN_DEFAULTS: dict[str, Any] = {
    "out": "results/run",
    "ks": [10, 25, 50, 100],
    "metrics": "standard",
    "csv": False,  # also write the reference pipeline's CSV neighbour files
    "index_cache": "",  # empty: $MRLBENCH_CACHE/indexes (content-addressed, shared by runs)
    "repeats": 3,  # searches and reranks are timed this many times; the best counts
    "threads": 0,  # threads for FAISS, BLAS, torch and reranks; 0: every core
    "latency_queries": 500,  # the seeded sample timed one query at a time
    "keep_neighbors": 0,  # neighbours kept per query in neighbors/; 0: the longest k scored
    "executor": "local",  # what runs the cells: "name", or [run.executor] name = "..." + options
}
MOVED = {  # old [run] keys: what to write instead ({} is the value written)
    "ray_address": "[run] ray_address has moved to the executor's table: write [run.executor] "
    'with name = "ray" and address = "{}"',
}
SECTIONS = {"encoders": "encoder", "backends": "backend", "strategies": "strategy"}


C = TypeVar("C", bound=Component)


@dataclass(frozen=True)
class Spec(Generic[C]):
    """One configured component: its label, the instance and its config table."""

    label: str
    component: C
    table: dict[str, Any]
    queries: Queries | None = None  # encoders: ``queries = N`` (a seeded sample), a split

    def key(self) -> dict[str, Any]:
        """What its results depend on, for resume keys: the table as written (label,
        ``queries`` and paths included) with every left-out argument at its default, a
        swept value's label left out of its name (``mrlbench.sweep.identity``), so that
        a swept value and the same value written by hand share results."""
        return {**self.component.effective_table(), **sweep.identity(self.table)}

    @property
    def base_label(self) -> str:
        """Its label without the ``key=value`` tokens a sweep added (file names)."""
        return str(sweep.identity(self.table).get("name", self.table.get("plugin", "")))


@dataclass(frozen=True)
class RunConfig:
    out: Path
    ks: tuple[int, ...]
    metrics: str
    csv: bool
    index_cache: Path
    repeats: int
    threads: int
    latency_queries: int
    keep_neighbors: int
    executor: Spec[Executor] | None = None  # None: the local executor
    encoders: list[Spec[Encoder]] = field(default_factory=list)
    backends: list[Spec[Backend]] = field(default_factory=list)
    strategies: list[Spec[Strategy]] = field(default_factory=list)

    def specs(self) -> list[Spec[Any]]:
        """Every encoder, backend and strategy of the run, in that order."""
        return [*self.encoders, *self.backends, *self.strategies]

    def timing(self) -> list[int]:
        """What a timing depends on besides the data and the components (resume keys)."""
        return [self.repeats, self.threads, self.latency_queries]

    def identity(self) -> dict[str, Any]:
        """Where its timings are taken: the executor (name and options) and this host.
        Resume keys of timed results hold it (the driver's, for cells run elsewhere), so
        a cell timed under another executor or on another machine never resumes."""
        return {"executor": executor_value(self.executor), "host": socket.gethostname()}

    def resolved(self) -> dict[str, Any]:
        """The config as it ran, defaults filled in (written as ``config.toml``)."""
        run = {
            "out": str(self.out),
            "ks": list(self.ks),
            "metrics": self.metrics,
            "csv": self.csv,
            "index_cache": str(self.index_cache),
            "repeats": self.repeats,
            "threads": self.threads,
            "latency_queries": self.latency_queries,
            "keep_neighbors": self.keep_neighbors,
            "executor": executor_value(self.executor),
        }
        return {
            "run": run,
            **{
                section: [s.table for s in getattr(self, section)]
                for section in ("encoders", "backends", "strategies")
            },
        }


def parse_toml(text: str, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source} is not valid TOML: {exc}") from None


def read_toml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config {path}: {exc}") from None
    return parse_toml(text, str(path))


def build(
    raw: dict[str, Any],
    registry: Registry,
    out: str | Path | None = None,
    threads: int | None = None,
    base: str | Path | None = None,
) -> RunConfig:
    """Validate a parsed config and instantiate every component. Relative paths in it
    (``[run] out``, ``index_cache``, components' path keys) are read from ``base``, the
    config file's folder (default: the current folder); ``out`` given here (``--out``)
    from the current folder. The resolved config holds them absolute."""
    base = Path(base).resolve() if base is not None else None
    unknown = set(raw) - {"run", *SECTIONS}
    if unknown:
        raise ConfigError(
            f"unknown config section '{sorted(unknown)[0]}' (known: run, {', '.join(SECTIONS)})"
        )
    run = dict(raw.get("run", {}))
    for key in run:
        if key in MOVED:
            value = run[key] if isinstance(run[key], str) and run[key] else "host:port"
            raise ConfigError(MOVED[key].format(value))
        if key not in RUN_DEFAULTS:
            raise ConfigError(f"unknown key '{key}' in [run] (known: {', '.join(RUN_DEFAULTS)})")
    settings = {**RUN_DEFAULTS, **run}
    for key in ("out", "index_cache"):
        settings[key] = absolute(settings[key], base, f"[run] {key}")
    if out is not None:
        settings["out"] = absolute(str(out), None, "--out")
    if threads is not None:
        settings["threads"] = threads
    ks = settings["ks"]
    if not isinstance(ks, list) or not ks or not all(isinstance(k, int) and k > 0 for k in ks):
        raise ConfigError("[run] ks must be a non-empty list of positive integers")
    if settings["metrics"] not in MODES:
        raise ConfigError(f"[run] metrics must be one of {', '.join(MODES)}")
    for key, low in (("repeats", 1), ("threads", 0), ("latency_queries", 0), ("keep_neighbors", 0)):
        value = settings[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ConfigError(f"[run] {key} must be an integer of at least {low}")
    executor = _executor(settings["executor"], registry, base)
    placement = executor.component.placement()  # where sharded backends keep their shards
    specs: dict[str, list[Spec[Any]]] = {}
    for section, kind in SECTIONS.items():
        tables = raw.get(section, [])
        if not isinstance(tables, list) or not tables:
            raise ConfigError(f"the config needs at least one [[{section}]] table")
        specs[section] = []
        for table in tables:
            if not isinstance(table, dict):
                raise ConfigError(f"[[{section}]] entries must be tables")
            queries, raw_queries = None, None
            if kind == "encoder" and "queries" in table:  # the harness's key, any encoder
                raw_queries = table["queries"]
                queries = parse_queries(raw_queries)
                table = {k: v for k, v in table.items() if k != "queries"}
            for one in _expanded(kind, table, registry):  # a sweep: one table per value
                label, component = registry.create(kind, one, base, placement)
                full = dict(component.table)  # paths made absolute
                if "name" in one:
                    full = {"plugin": full.pop("plugin"), "name": one["name"], **full}
                if queries is not None:
                    full["queries"] = raw_queries
                specs[section].append(Spec(label, component, full, queries))
        _check_unique(specs[section], section)
    _check_types(specs)
    out_dir = Path(settings["out"])
    return RunConfig(
        out=out_dir,
        ks=tuple(sorted(set(ks))),
        metrics=settings["metrics"],
        csv=bool(settings["csv"]),
        index_cache=Path(settings["index_cache"] or cache_dir() / "indexes"),
        repeats=settings["repeats"],
        threads=settings["threads"] or os.cpu_count() or 1,
        latency_queries=settings["latency_queries"],
        keep_neighbors=settings["keep_neighbors"] or max(ks),
        executor=executor,
        **specs,
    )


def _expanded(kind: str, table: dict[str, Any], registry: Registry) -> list[dict[str, Any]]:
    """A backend or strategy table with numeric keys as lists (``mrlbench.sweep``): one
    table per combination, its ``name`` the label with the values appended. Any other
    table, or one naming no known plugin (``create`` says why), as it is."""
    plugin, name = table.get("plugin"), table.get("name", table.get("plugin"))
    if kind not in ("backend", "strategy") or not isinstance(plugin, str):
        return [table]
    if plugin not in registry.names(kind) or not isinstance(name, str):
        return [table]
    found = sweep.expand(registry.get(kind, plugin).cls, table, f"{kind} plugin '{plugin}'")
    return [{**one, "name": name + suffix} if suffix else one for one, suffix in found]


def _executor(value: Any, registry: Registry, base: Path | None) -> Spec[Executor]:
    """``[run] executor = "name"``, or the table ``[run.executor]``: ``name`` picks a
    registered executor (``plugin`` is a synonym), every other key is that executor's
    option, checked by the executor itself. The spec's table: ``name`` then the options."""
    where = "[run] executor:" if isinstance(value, str) else "[run.executor]"
    if isinstance(value, str):
        value = {"name": value}
    if not isinstance(value, dict):
        raise ConfigError('[run] executor must be "name", or a [run.executor] table with name')
    options = dict(value)
    name, plugin = options.pop("name", None), options.pop("plugin", None)
    if name is not None and plugin is not None and name != plugin:
        raise ConfigError("[run.executor] has name and plugin (a synonym) that differ: keep name")
    name = name if name is not None else plugin
    if not isinstance(name, str):
        known = ", ".join(registry.names("executor"))
        raise ConfigError(f'[run.executor] needs name = "..." (known: {known})')
    try:
        label, component = registry.create("executor", {"plugin": name, **options}, base)
    except ConfigError as exc:
        raise ConfigError(f"{where} {exc}") from None
    if not isinstance(component, Executor):
        raise ConfigError(f"{where} {label} is not an Executor")
    table = {k: v for k, v in component.table.items() if k != "plugin"}
    return Spec(label, component, {"name": label, **table})


def executor_value(spec: Spec[Executor] | None) -> Any:
    """``[run] executor`` as written back: the name, or the ``[run.executor]`` table
    (``name`` and the options) when it has options."""
    if spec is None:
        return "local"
    table = dict(spec.table)
    return table["name"] if list(table) == ["name"] else table


def _check_unique(specs: list[Spec[Any]], section: str) -> None:
    if section == "strategies":
        return
    seen: set[str] = set()
    for spec in specs:
        if spec.label in seen:
            raise ConfigError(
                f"two [[{section}]] are called '{spec.label}': give each a distinct name = \"...\""
            )
        seen.add(spec.label)


def _check_types(specs: dict[str, list[Spec[Any]]]) -> None:
    for section, base in (("encoders", Encoder), ("backends", Backend), ("strategies", Strategy)):
        for spec in specs[section]:
            if not isinstance(spec.component, base):
                raise ConfigError(f"{spec.label} is not a {base.__name__}")


_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _value(value: Any) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, (bool, int, float, str)):
        return json.dumps(value)  # JSON scalars are valid TOML scalars
    raise ConfigError(f"cannot write {value!r} as TOML")


def _key(key: str) -> str:
    return key if _BARE_KEY.match(key) else json.dumps(key)


def dumps(resolved: dict[str, Any]) -> str:
    """TOML text for a resolved config: ``[run]`` (a table in it, the executor's, as
    ``[run.NAME]``) then one ``[[section]]`` per component."""
    run = resolved["run"]
    lines = ["[run]"]
    lines += [f"{_key(k)} = {_value(v)}" for k, v in run.items() if not isinstance(v, dict)]
    for name, table in ((k, v) for k, v in run.items() if isinstance(v, dict)):
        lines += ["", f"[run.{_key(name)}]"]
        lines += [f"{_key(k)} = {_value(v)}" for k, v in table.items()]
    for section in SECTIONS:
        for table in resolved.get(section, []):
            lines += ["", f"[[{section}]]"]
            lines += [f"{_key(k)} = {_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"
