"""Sweeps (ann-benchmarks' parameter lists): a backend or strategy table whose numeric
keys hold lists stands for one component per combination of their values (the cartesian
product, in the order the keys and values are written), each labelled with the values
it runs (``faiss-hnsw ef_search=32``; a ``name`` given gets them appended:
``hnsw ef_search=32``).

A key is numeric, so a list sweeps it, when its ``__init__`` annotation is ``int`` or
``float`` (``| None`` allowed), read with ``inspect`` as ``mrlbench plugins NAME`` reads
keys; the harness's ``shards`` of a shardable backend is one too. A key annotated with
another one-value type (``str``, ``bool``) refuses a list; any other key (``list[int]``,
unannotated) takes a list as its own value, as funnel's ``rerank_dims`` does.

What a result depends on is the component as it runs, not its label: ``identity`` is a
table with the values its label restates left out of its ``name``, so a swept value and
the same value written by hand share resume keys. Pure: no registry, no files."""

from __future__ import annotations

import inspect
import itertools
import re
from collections.abc import Mapping
from typing import Any

from mrlbench.errors import ConfigError
from mrlbench.plugins import accepted_arguments
from mrlbench.types import Backend

NUMERIC = frozenset({"int", "float"})
ONE_VALUE = NUMERIC | {"str", "bool", "Path", "pathlib.Path"}  # types that hold no list
SHARDS = "shards"  # the harness's key of a shardable backend (mrlbench.shards)
_TOKEN = re.compile(r" (\w+)=(\S+)$")  # one ``key=value`` at the end of a label


def _members(annotation: Any) -> list[str]:
    """The union members of an annotation (``None`` left out), as written."""
    if annotation is inspect.Parameter.empty:
        return []
    text = annotation if isinstance(annotation, str) else inspect.formatannotation(annotation)
    text = text.strip()
    if text.startswith("Optional[") and text.endswith("]"):
        text = text[len("Optional[") : -1]
    parts, depth, start = [], 0, 0
    for i, c in enumerate(text):
        if c in "[(":
            depth += 1
        elif c in "])":
            depth -= 1
        elif c == "|" and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip() not in ("None", "NoneType", "")]


def key_types(cls: type) -> dict[str, list[str]]:
    """Every keyword a component class takes, with its annotation's union members."""
    params, _ = accepted_arguments(cls)
    found = {name: _members(p.annotation) for name, p in params.items()}
    if issubclass(cls, Backend) and cls.shardable():
        found.setdefault(SHARDS, ["int"])
    return found


def sweepable(cls: type) -> list[str]:
    """The keys a list sweeps: annotated ``int`` or ``float`` (and ``shards``)."""
    parts = set(getattr(cls, "components", {})) | set(getattr(cls, "paths", ()))
    return [
        key
        for key, members in key_types(cls).items()
        if members and set(members) <= NUMERIC and key not in parts
    ]


def value_text(value: Any) -> str:
    """A swept value as the label writes it (``32``, ``0.5``)."""
    return str(value)


def expand(cls: type, table: Mapping[str, Any], what: str) -> list[tuple[dict[str, Any], str]]:
    """The tables ``table`` stands for, each with its label's suffix (``" ef_search=32"``;
    ``""`` when nothing is swept). ``what`` names the component in errors ("backend
    plugin 'faiss-hnsw'"). A list in a one-value key, an empty sweep, a sweep value that
    is not a number and a value listed twice are refused."""
    types = key_types(cls)
    numeric = sweepable(cls)
    axes: list[str] = []
    for key, value in table.items():
        if key in ("plugin", "name") or not isinstance(value, list):
            continue
        if key in numeric:
            _check_axis(key, value, what)
            axes.append(key)
        elif types.get(key) and set(types[key]) <= ONE_VALUE:
            known = ", ".join(numeric) or "none"
            raise ConfigError(
                f"{what}: key '{key}' takes one {' | '.join(types[key])} value, not a list "
                f"(a list sweeps numeric keys only; here: {known})"
            )
    if not axes:
        return [(dict(table), "")]
    found = []
    for values in itertools.product(*(table[key] for key in axes)):
        chosen = dict(zip(axes, values, strict=True))
        suffix = "".join(f" {key}={value_text(v)}" for key, v in chosen.items())
        found.append(({k: chosen.get(k, v) for k, v in table.items()}, suffix))
    return found


def _check_axis(key: str, values: list[Any], what: str) -> None:
    if not values:
        raise ConfigError(f"{what}: key '{key}' is an empty list: a sweep needs a value")
    seen = set()
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise ConfigError(f"{what}: key '{key}' sweeps numbers only, not {v!r}")
        if v in seen:
            raise ConfigError(f"{what}: key '{key}' lists {value_text(v)} twice")
        seen.add(v)


def split_label(label: str) -> tuple[str, tuple[str, ...]]:
    """A label's family and the ``key=value`` tokens at its end: ``"faiss-hnsw
    ef_search=32"`` is (``"faiss-hnsw"``, ``("ef_search=32",)``)."""
    tokens: list[str] = []
    while (found := _TOKEN.search(label)) is not None:
        tokens.insert(0, found.group(0).strip())
        label = label[: found.start()]
    return label, tuple(tokens)


def identity(table: Mapping[str, Any]) -> dict[str, Any]:
    """``table`` as its results depend on it: a ``name`` whose ``key=value`` tokens
    restate the table's own values loses them (and goes when what is left is the
    plugin name), so ``name = "faiss-hnsw ef_search=32"`` with ``ef_search = 32`` is
    the table ``ef_search = 32`` alone."""
    name = table.get("name")
    if not isinstance(name, str):
        return dict(table)
    base = name
    while (found := _TOKEN.search(base)) is not None:
        key, text = found.groups()
        if key not in table or value_text(table[key]) != text:
            break
        base = base[: found.start()]
    out = dict(table)
    if base == table.get("plugin"):
        del out["name"]
    else:
        out["name"] = base
    return out
