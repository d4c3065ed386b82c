"""Plugin loading (pluggy) and the component registry the core owns."""

from __future__ import annotations

import importlib.util
import inspect
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pluggy

from mrlbench import hookspecs
from mrlbench.errors import ConfigError
from mrlbench.execution import Executor, Placement
from mrlbench.shards import sharded
from mrlbench.types import Backend, Component, Dataset, Encoder, Strategy, accepted_arguments

PLUGINS_DIR_ENV = "MRLBENCH_PLUGINS_DIR"
BLOCK_ENV = "MRLBENCH_BLOCK_PLUGINS"  # comma-separated plugin (entry point) names to skip
WORKER_ENV = ("MRLBENCH_CACHE", BLOCK_ENV)  # what a worker of an executor runs with

KINDS: dict[str, type[Component]] = {
    "encoder": Encoder,
    "backend": Backend,
    "strategy": Strategy,
    "dataset": Dataset,
    "executor": Executor,
}
_HOOKS = {
    "encoder": "mrlbench_register_encoders",
    "backend": "mrlbench_register_backends",
    "strategy": "mrlbench_register_strategies",
    "dataset": "mrlbench_register_datasets",
    "executor": "mrlbench_register_executors",
}


@dataclass(frozen=True)
class Registered:
    """A registered component class and the package (or file) that registered it."""

    cls: type[Component]
    kind: str
    source: str


class Registry:
    """Every component, by kind and name."""

    def __init__(self) -> None:
        self._items: dict[str, dict[str, Registered]] = {kind: {} for kind in KINDS}

    def register(self, kind: str, source: str) -> Callable[[type], None]:
        """The ``register`` callback handed to one plugin's hook."""

        def register(cls: type) -> None:
            base = KINDS[kind]
            if not (inspect.isclass(cls) and issubclass(cls, base)):
                raise ConfigError(f"plugin {source}: {cls!r} is not a {base.__name__} subclass")
            name = getattr(cls, "name", None)
            if not isinstance(name, str) or not name:
                raise ConfigError(f"plugin {source}: {cls.__name__} has no string 'name'")
            if name in self._items[kind]:
                other = self._items[kind][name].source
                raise ConfigError(
                    f"duplicate {kind} name '{name}': registered by {other} and by {source}"
                )
            self._items[kind][name] = Registered(cls, kind, source)

        return register

    def names(self, kind: str) -> list[str]:
        return sorted(self._items[kind])

    def get(self, kind: str, name: str) -> Registered:
        try:
            return self._items[kind][name]
        except KeyError:
            known = ", ".join(self.names(kind)) or "none"
            raise ConfigError(f"unknown {kind} plugin '{name}' (known: {known})") from None

    def all(self) -> list[Registered]:
        return [item for kind in KINDS for _, item in sorted(self._items[kind].items())]

    def create(
        self,
        kind: str,
        table: Mapping[str, Any],
        base: Path | None = None,
        placement: Placement | None = None,
    ) -> tuple[str, Component]:
        """Instantiate a component from a config table: ``plugin``, optional ``name`` label,
        the other keys as keyword arguments. Returns (label, component). Relative paths
        in the keys the class names in ``paths`` are taken from ``base`` (the config
        file's folder; default the current folder) and recorded absolute in the
        component's ``table``, as are component arguments' own tables. A backend's
        ``shards = N`` is the harness's key: the backend is made without it and wrapped
        in ``mrlbench.shards.Sharded``, its shards kept where ``placement`` puts them
        (the run executor's; this process when ``None``)."""
        table = dict(table)
        if kind == "backend" and "shards" in table:
            return self._sharded(table, base, placement)

        plugin = table.pop("plugin", None)
        if not isinstance(plugin, str):
            known = ", ".join(self.names(kind)) or "none"
            raise ConfigError(f'every {kind} table needs plugin = "..." (known: {known})')
        cls = self.get(kind, plugin).cls
        label = table.pop("name", None)
        if label is not None and not isinstance(label, str):
            raise ConfigError(f"{kind} plugin '{plugin}': name must be a string")
        if label is not None and (
            not label.strip() or label in (".", "..") or any(c in label for c in "/\\\0")
        ):
            raise ConfigError(
                f"{kind} plugin '{plugin}': name {label!r} cannot be used: it names folders "
                "and files of the run, so no path separators, '.' or '..'"
            )
        check_arguments(cls, table, f"{kind} plugin '{plugin}'")
        for key in cls.paths:
            if key in table:
                table[key] = absolute(table[key], base, f"{kind} plugin '{plugin}': key '{key}'")
        arguments = dict(table)
        for key, part in cls.components.items():
            if key in arguments:
                arguments[key] = self._part(part, arguments[key], f"{kind} plugin '{plugin}'", base)
                table[key] = dict(arguments[key].table)
        try:
            component = cls(**arguments)
        except ConfigError as exc:
            raise ConfigError(f"{kind} plugin '{plugin}': {exc}") from None
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{kind} plugin '{plugin}': {exc}") from None
        component.table = {"plugin": plugin, **table}
        return (label or plugin), component

    def _sharded(
        self, table: dict[str, Any], base: Path | None, placement: Placement | None
    ) -> tuple[str, Component]:
        """A backend table with ``shards``: the plugin's backend made without the key,
        wrapped by the harness; the wrapper's ``table`` is the table as written."""
        shards = table.pop("shards")
        label, made = self.create("backend", table, base)
        plugin = made.table["plugin"]
        if not isinstance(made, Backend):
            raise ConfigError(f"backend plugin '{plugin}' is not a Backend")
        try:
            wrapped = sharded(made, shards, placement)
        except ConfigError as exc:
            raise ConfigError(f"backend plugin '{plugin}': {exc}") from None
        order = [k for k in (*table, "shards") if k not in ("plugin", "name")]
        wrapped.table = {"plugin": plugin, **{**made.table, "shards": shards}}
        wrapped.table = {"plugin": plugin, **{k: wrapped.table[k] for k in order}}
        return label, wrapped

    def _part(self, kind: str, value: Any, owner: str, base: Path | None) -> Component:
        """A component argument given as ``"name"`` or ``{plugin = "name", ...}``."""
        if isinstance(value, str):
            value = {"plugin": value}
        if not isinstance(value, Mapping):
            raise ConfigError(f'{owner}: {kind} must be "name" or {{ plugin = "name", ... }}')
        try:
            return self.create(kind, value, base)[1]
        except ConfigError as exc:
            raise ConfigError(f"{owner}: {exc}") from None


def absolute(value: Any, base: Path | None, what: str) -> Any:
    """A path key's value with relative paths made absolute against ``base`` (default
    the current folder); a table of paths (``checkpoints = {8 = "ff8.pt"}``) path by
    path; an empty string stays empty (it means "the default")."""
    if isinstance(value, Mapping):
        return {k: absolute(v, base, what) for k, v in value.items()}
    if not isinstance(value, str):
        raise ConfigError(f"{what} must be a path (a string), not {value!r}")
    if not value:
        return value
    path = Path(value).expanduser()
    return os.path.normpath(path if path.is_absolute() else (base or Path.cwd()) / path)


def check_arguments(cls: type, table: Mapping[str, Any], what: str) -> None:
    """Unknown and missing keyword arguments are errors naming the plugin and the key."""
    params, open_ended = accepted_arguments(cls)
    if not open_ended:
        for key in table:
            if key not in params:
                known = ", ".join(sorted(params)) or "none"
                raise ConfigError(f"{what}: unknown key '{key}' (known keys: {known})")
    for p in params.values():
        if p.default is p.empty and p.name not in table:
            raise ConfigError(f"{what}: missing required key '{p.name}'")


# The one plugin manager of the process (as llm and datasette keep theirs).
pm = pluggy.PluginManager("mrlbench")
pm.add_hookspecs(hookspecs)
_loaded: dict[str, Any] = {"entry_points": False, "registry": None, "dirs": []}


def load(plugins_dir: str | os.PathLike[str] | None = None) -> Registry:
    """Load the entry-point plugins (built-ins included; once per process), then the
    one-file plugins of ``plugins_dir`` (or ``$MRLBENCH_PLUGINS_DIR``), and build the
    registry every component is created from. Returns that registry."""
    if not _loaded["entry_points"]:
        for blocked in filter(None, os.environ.get(BLOCK_ENV, "").split(",")):
            pm.set_blocked(blocked.strip())
        pm.load_setuptools_entrypoints("mrlbench")
        _loaded["entry_points"] = True
        _check(None)
    folder = plugins_dir or os.environ.get(PLUGINS_DIR_ENV)
    if folder:
        _load_folder(Path(folder))
        if str(Path(folder).resolve()) not in _loaded["dirs"]:
            _loaded["dirs"].append(str(Path(folder).resolve()))
    _loaded["registry"] = build_registry(pm)
    return _loaded["registry"]


def loaded_dirs() -> list[str]:
    """The plugin folders loaded in this process (absolute), for an executor to load
    the same one-file plugins on its workers."""
    return list(_loaded["dirs"])


def worker_env() -> dict[str, str]:
    """The environment a worker of an executor needs to see what this process sees: the
    cache folder and the blocked plugins (``WORKER_ENV``), where set."""
    return {k: os.environ[k] for k in WORKER_ENV if k in os.environ}


def registry() -> Registry:
    """The registry of every loaded component (loading the plugins on first use)."""
    return _loaded["registry"] or load()


def _check(plugin: object | None) -> None:
    """A hook that no hookspec declares (a misspelling) is one clear error; a bad
    plugin file is unregistered again so that it cannot linger."""
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        if plugin is not None:
            pm.unregister(plugin)
        name = pm.get_name(exc.plugin) if plugin is None else None
        raise ConfigError(f"plugin {name or exc.plugin}: {exc}") from None


def _load_folder(folder: Path) -> None:
    if not folder.is_dir():
        raise ConfigError(f"plugins folder not found: {folder}")
    for path in sorted(folder.glob("*.py")):
        name = f"{path.name} (plugins dir)"
        if pm.get_plugin(name) is not None:
            continue  # already loaded in this process
        spec = importlib.util.spec_from_file_location(f"mrlbench_dir_plugin_{path.stem}", path)
        if spec is None or spec.loader is None:
            raise ConfigError(f"cannot load plugin file {path}")
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            raise ConfigError(f"plugin file {path} failed to import: {exc}") from None
        pm.register(module, name=name)
        _check(module)


def _sources(manager: pluggy.PluginManager) -> dict[int, str]:
    sources = {id(plugin): manager.get_name(plugin) or "?" for plugin in manager.get_plugins()}
    for plugin, dist in manager.list_plugin_distinfo():
        sources[id(plugin)] = dist.metadata["name"]
    return sources


def build_registry(manager: pluggy.PluginManager) -> Registry:
    """Call every plugin's register hooks; each component records its source package."""
    registry = Registry()
    sources = _sources(manager)
    for kind, hook_name in _HOOKS.items():
        for impl in getattr(manager.hook, hook_name).get_hookimpls():
            impl.function(registry.register(kind, sources.get(id(impl.plugin), impl.plugin_name)))
    return registry
