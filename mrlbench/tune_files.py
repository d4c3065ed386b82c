"""What ``mrlbench tune`` writes: ``tune.csv`` (every tried setting, the split each
figure is on), ``best.toml`` (a complete run config of the chosen setting) and
``pareto.png`` (the report split's front against the references' curve)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mrlbench import config, plots
from mrlbench.config import RunConfig, Spec
from mrlbench.leaderboard import Row
from mrlbench.store import write_text
from mrlbench.tune_space import TuneCandidate

CSV_COLUMNS = (
    "strategy",
    "model_mflops",
    "model_mflops_with_selection",
    "sample_{metric}",
    "sample_mflops_per_query",
    "sample_mflops_with_selection",
    "sample_latency_ms_p50",
    "front",
    "{metric}",
    "mflops_per_query",
    "mflops_with_selection",
    "latency_ms_p50",
    "knn_recall@{k}",
    "status",
    "sample_split",
    "report_split",
)


def write_csv(
    path: Path,
    tried: Sequence[TuneCandidate],
    sample: Sequence[Row],
    full: Sequence[Row],
    front: set[str],
    metric: str,
    splits: tuple[str, str],
) -> None:
    """``tune.csv``: every tried setting, its cost-model MFLOPs (without and with top-k
    selection), its figures on the selection split (``sample_*``, what the front and
    the best are chosen on) and, for the front, on the report split (the unprefixed
    columns); ``sample_split`` and ``report_split`` name the two splits."""
    k = metric.split("@")[1]
    names = [c.format(metric=metric, k=k) for c in CSV_COLUMNS]
    on_sample = {r.strategy: r for r in sample}
    on_all = {r.strategy: r for r in full}
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(names)
    for c in tried:
        s, f = on_sample.get(c.name), on_all.get(c.name)
        writer.writerow(
            [
                c.name,
                f"{c.mflops:.6g}",
                f"{c.cost:.6g}",
                num(s, metric),
                num(s, "mflops_per_query"),
                num(s, "mflops_with_selection"),
                num(s, "latency_ms_p50"),
                "yes" if c.name in front else "",
                num(f, metric),
                num(f, "mflops_per_query"),
                num(f, "mflops_with_selection"),
                num(f, "latency_ms_p50"),
                num(f, f"knn_recall@{k}"),
                _status(s, f),
                splits[0],
                splits[1] if f is not None else "",
            ]
        )
    write_text(path, buf.getvalue())


def _status(sample: Row | None, full: Row | None) -> str:
    """A failed row on either split shows; else the last run's status."""
    for row in (sample, full):
        if row is not None and not row.ok:
            return row.status
    row = full or sample
    return row.status if row is not None else "not run"


def num(row: Row | None, name: str) -> str:
    value = None if row is None else row.value(name)
    return "" if value is None else f"{value:.6g}"


def write_best(
    path: Path,
    cfg: RunConfig,
    enc: Spec[Any],
    be: Spec[Any],
    table: dict[str, Any] | None,
    lines: Sequence[str],
) -> None:
    """``best.toml``: a complete run config, ``[run]`` (writing into ``best/`` next to
    it, indexes from the tune's cache), the tuned encoder and backend and the chosen
    setting ``table``, its figures in the comment ``lines``; ``mrlbench run best.toml``
    runs it. No file (a stale one is removed) when nothing was chosen."""
    if table is None:
        path.unlink(missing_ok=True)
        return
    run = cfg.resolved()["run"] | {"out": "best"}  # relative: next to best.toml
    body = {"run": run, "encoders": [enc.table], "backends": [be.table], "strategies": [table]}
    head = "".join(f"# {line}\n" for line in lines)
    write_text(path, head + "\n" + config.dumps(body))


def draw(
    out: Path,
    rows: Sequence[Row],
    front: set[str],
    references: set[str],
    chosen: Row | None,
    metric: str,
) -> Path:
    """``pareto.png``: accuracy against MFLOPs and against latency (log axes: a row that
    costs 0 is left out); the references' curve, the tuned front, the config's own
    settings and the best one."""
    ok = [r for r in rows if r.ok and r.value(metric) is not None]
    reference = [r for r in ok if r.strategy in references]
    tuned = [r for r in ok if r.strategy in front]
    own = [r for r in ok if r.strategy not in references | front]
    panels = []
    for key, title in (("mflops_per_query", "MFLOPs / query"), ("latency_ms_p50", "ms / query")):

        def series(
            label: str, members: Sequence[Row], line: bool, notes: bool = False, key: str = key
        ) -> plots.Series:
            members = sorted((r for r in members if (r.value(key) or 0) > 0), key=_by(key))
            return plots.Series(
                label,
                tuple(float(r.value(key)) for r in members),
                tuple(float(r.value(metric)) for r in members),
                line=line,
                group=label,
                kind=label,
                notes=tuple(r.dims if notes else "" for r in members),
            )

        joined = key == "mflops_per_query"  # a measured time need not grow with MFLOPs
        parts = [
            series(", ".join(sorted(references)) or "reference", reference, joined, True),
            series("tuned front", tuned, joined),
            series("config's own", own, False),
        ]
        if chosen is not None:
            parts.append(series("best within budget", [chosen], False))
        panels.append(
            plots.Plot(
                f"{metric} against {title}",
                title,
                metric,
                tuple(p for p in parts if p.x),
                logx=True,
            )
        )
    return plots.draw(plots.Figure("pareto", tuple(panels)), out)


def _by(key: str):
    return lambda row: row.value(key)
