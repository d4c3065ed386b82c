"""What a component takes (``mrlbench plugins NAME``): its config keys, their defaults and
a one-line description each, read from its ``__init__`` signatures (following
``**kwargs`` up its bases, as the registry does) and docstrings. A docstring documents
keys in an ``Args:`` section (Google style: ``key: text`` or ``key (type): text``), a
numpy ``Parameters`` section (``key : type``, the text indented below) or in plain
``key: text`` lines; the component's summary is its docstring's first paragraph (else its
module's). Pure: no terminal, no registry."""

from __future__ import annotations

import difflib
import inspect
import json
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from mrlbench.plugins import accepted_arguments
from mrlbench.types import Backend

SHARDS_DOC = (
    "Row ranges searched apart and merged by the harness (one Ray actor each under the "
    "Ray executor; one after the other otherwise); the same neighbours as 1."
)

# `key: text`, `key (type): text`, ``key``: text (Google style and plain lines)
GOOGLE = re.compile(
    r"^(?:``)?(?P<name>\*{0,2}\w+)(?:``)?\s*(?:\((?P<type>[^)]*)\))?:\s+(?P<text>.*)$"
)
NUMPY = re.compile(r"^(?P<name>\w+)\s+:\s*(?P<type>.*)$")  # `key : type`, text below


@dataclass(frozen=True)
class Key:
    """One config key of a component: its name, its default as TOML (``""`` when the key
    is required), its annotation and its description."""

    name: str
    default: str
    required: bool
    type: str
    description: str


@dataclass(frozen=True)
class Description:
    """A component's summary line, its keys, and whether it takes any other key too
    (``**kwargs`` to the end)."""

    summary: str
    keys: tuple[Key, ...]
    open_ended: bool


def one_line(text: str) -> str:
    """``text`` on one line, RST double backticks made single."""
    return " ".join(text.replace("``", "`").split())


SUMMARY_CHARS = 200  # a first paragraph longer than this is cut to its first sentence


def summary(doc: str | None) -> str:
    """A docstring's first paragraph on one line (its first sentence, when long)."""
    text = one_line(inspect.cleandoc(doc or "").split("\n\n", 1)[0])
    if len(text) > SUMMARY_CHARS:
        text = re.split(r"(?<=[.!?])\s", text, maxsplit=1)[0]
    return text


def key_docs(doc: str | None) -> dict[str, str]:
    """Every ``key: description`` a docstring gives (Google, numpy or plain lines; the
    first of a name wins), each on one line. Continuation lines are those indented
    further than the key's own line."""
    lines = inspect.cleandoc(doc or "").splitlines()
    found: dict[str, str] = {}
    for i, line in enumerate(lines):
        stripped = line.strip()
        indent = len(line) - len(stripped)
        body = _indented_below(lines, i, indent)
        numpy = NUMPY.match(stripped)
        google = GOOGLE.match(stripped)
        if numpy and body:
            name, text = numpy.group("name"), " ".join(body)
        elif google:
            name, text = google.group("name").lstrip("*"), " ".join([google.group("text"), *body])
        else:
            continue
        found.setdefault(name, one_line(text))
    return found


def _indented_below(lines: Sequence[str], i: int, indent: int) -> list[str]:
    """The lines after ``lines[i]`` indented deeper than ``indent``, up to the first that
    is not (a blank line ends them too)."""
    out = []
    for line in lines[i + 1 :]:
        stripped = line.strip()
        if not stripped or len(line) - len(stripped) <= indent:
            break
        out.append(stripped)
    return out


def toml_value(value: Any) -> str:
    """A default as it would be written in a config (``None``: ``unset``)."""
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float | list | tuple | dict):
        try:
            return json.dumps(value).replace('": ', '" = ')
        except TypeError:
            pass
    return repr(value)


def _docstrings(cls: type) -> list[str | None]:
    """The class's and its bases' own docstrings and ``__init__`` docstrings, own first
    (the classes whose ``__init__`` takes part in the keys)."""
    out: list[str | None] = []
    for klass in cls.__mro__:
        if klass is object:
            continue
        out.append(vars(klass).get("__doc__"))
        init = vars(klass).get("__init__")
        out.append(getattr(init, "__doc__", None))
    return out


def describe(cls: type) -> Description:
    """A component class's summary and keys (``name`` and ``plugin`` are not keys here:
    every component takes them)."""
    params, open_ended = accepted_arguments(cls)
    docs: dict[str, str] = {}
    for doc in _docstrings(cls):
        for name, text in key_docs(doc).items():
            docs.setdefault(name, text)
    parts = getattr(cls, "components", {})
    paths = getattr(cls, "paths", ())
    keys = []
    for name, p in params.items():
        required = p.default is p.empty
        kind = f"{parts[name]} component" if name in parts else _annotation(p.annotation)
        if p.default is None:
            kind = kind.removesuffix(" | None")
        if name in paths:
            kind += " (path)"
        default = "" if required else toml_value(p.default)
        keys.append(Key(name, default, required, kind, docs.get(name, "")))
    if issubclass(cls, Backend) and cls.shardable():  # the harness's key (mrlbench.shards)
        keys.append(Key("shards", "1", False, "int", SHARDS_DOC))
    module = sys.modules.get(cls.__module__)
    text = summary(vars(cls).get("__doc__")) or summary(getattr(module, "__doc__", None))
    return Description(text, tuple(keys), open_ended)


def _annotation(annotation: Any) -> str:
    if annotation is inspect.Parameter.empty:
        return ""
    return annotation if isinstance(annotation, str) else inspect.formatannotation(annotation)


def close_matches(name: str, known: Iterable[str]) -> list[str]:
    """Names like ``name`` (misspellings, a missing prefix), best first."""
    known = sorted(set(known))
    near = difflib.get_close_matches(name, known, n=5, cutoff=0.5)
    contains = [k for k in known if name and name.lower() in k.lower() and k not in near]
    return [*near, *contains][:5]
