"""The run directory: ``execute`` runs a config and writes everything a run leaves
(``config.toml``, ``env.json``, ``neighbors.json``, the leaderboards, ``report.html``);
``load`` reads a finished run back as rows."""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mrlbench import cells, config, html_report, preflight, runner, tables
from mrlbench.config import RunConfig, Spec
from mrlbench.env import describe, session_id
from mrlbench.errors import DataError, MrlbenchError, error_line
from mrlbench.leaderboard import Row
from mrlbench.plugins import Registry
from mrlbench.store import read_json, run_lock, write_json, write_text
from mrlbench.types import Encoder, Observer


@dataclass(frozen=True)
class Executed:
    """What ``execute`` did: the leaderboard rows and the report (``None`` if not drawn)."""

    rows: list[Row]
    report: Path | None


def execute(cfg: RunConfig, observer: Observer | None = None, checked: bool = False) -> Executed:
    """Run every cell of ``cfg`` and write the run directory. The config and every
    file it names are checked first (``preflight``): a fault is one error and nothing
    is written. A report that cannot be drawn is a warning: the leaderboards stand
    without it. The folder is locked while the run writes it (a second run into it
    refuses). ``checked``: the caller ran ``preflight.check`` already."""
    if not checked:
        preflight.check(cfg)
    with run_lock(cfg.out):
        return _execute(cfg, observer)


def _execute(cfg: RunConfig, observer: Observer | None) -> Executed:
    write_text(cfg.out / "config.toml", config.dumps(cfg.resolved()))
    specs: list[Spec[Any]] = [*cfg.encoders, *cfg.backends]
    specs += [cfg.executor] if cfg.executor else []
    components = {f"{spec.component.kind} {spec.label}": spec.component for spec in specs}
    session = session_id()
    with cells.threads(cfg):
        env = describe(components) | {"threads": cfg.threads, "session": session}
        env |= {"executor": runner.executor_of(cfg).name}
        write_json(cfg.out / "env.json", env)  # this session; each one's is kept below
        write_json(cfg.out / "sessions" / f"{session}.json", env)
        rows = runner.run(cfg, observer, session)
    tables.write(cfg.out, rows, cfg.ks)
    write_json(
        cfg.out / "neighbors.json",
        [
            {"encoder": r.encoder, "backend": r.backend, "label": r.label, "path": r.neighbors}
            for r in rows
            if r.neighbors
        ],
    )
    path = write_report(cfg.out, rows, cfg.ks, cfg.encoders)
    return Executed(rows, path)


def write_report(
    run: Path, rows: Sequence[Row], ks: Sequence[int], encoders: Sequence[Spec[Encoder]]
) -> Path | None:
    """``report.html`` and its figures; ``None`` (and a warning) when it cannot be drawn."""
    components = {s.label: s.component for s in encoders}
    try:
        return html_report.write(run, rows, ks, components, {s.label: s.queries for s in encoders})
    except Exception as exc:
        warnings.warn(f"report not written: {error_line(exc)}", stacklevel=2)
        return None


def load(run: str | Path) -> list[Row]:
    """The rows of a finished run, with their neighbours files."""
    path = Path(run) / "leaderboard.json"
    if not path.is_file():
        raise DataError(f"no leaderboard in {run} (expected {path})")
    try:
        records = json.loads(path.read_text())
    except ValueError as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from None
    index = read_json(Path(run) / "neighbors.json") or []
    paths = {(i["encoder"], i["backend"], i["label"]): i["path"] for i in index}
    rows = []
    for rec in records:
        path_of = paths.get((rec["encoder"], rec["backend"], rec["label"]), "")
        rows.append(Row.from_record({**rec, "neighbors": path_of}))
    return rows


def redraw(run: str | Path, registry: Registry) -> Path | None:
    """``report.html`` of a finished run again, from its files; retrieval examples only
    when its encoders can still be built here."""
    run = Path(run)
    rows = load(run)
    raw = config.read_toml(run / "config.toml")
    ks = tuple(raw.get("run", {}).get("ks", [10]))
    try:
        encoders = config.build(raw, registry, run).encoders
    except MrlbenchError as exc:
        warnings.warn(f"no retrieval examples: {exc}", stacklevel=2)
        encoders = []
    return write_report(run, rows, ks, encoders)
