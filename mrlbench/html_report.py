"""``report.html``: the plots, the two leaderboard views with the best value per column
highlighted, and retrieval examples; one self-contained file (inline CSS, images next to
it by relative path), aggregates only so it opens fast whatever the run's size."""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from mrlbench import leaderboard as lb
from mrlbench import neighbors as nbfiles
from mrlbench import plots
from mrlbench.leaderboard import Row, single_shot
from mrlbench.store import read_json, write_text
from mrlbench.types import Encoder

EXAMPLE_QUERIES, EXAMPLE_NEIGHBOURS = 4, 10

CSS = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; max-width: 1400px; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.2rem; margin-top: 2rem; }
table { border-collapse: collapse; font-size: 0.8rem; margin: 0.5rem 0; }
th, td { border: 1px solid #ddd; padding: 0.25rem 0.5rem; text-align: right; }
th { background: #f4f4f4; } td.text { text-align: left; }
td.best { background: #d9f0d3; font-weight: 600; }
tr.failed td { color: #b2182b; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.5rem 0; }
.meta { color: #666; font-size: 0.85rem; }
"""


def _table(rows: Sequence[Row], cols: Sequence[str], extra: Sequence[str] | None = None) -> str:
    """An HTML table; the best value of each numeric column is highlighted."""
    best: dict[str, float] = {}
    for col in cols:
        values = [r.value(col) for r in rows if r.ok and lb.numeric(col)]
        values = [v for v in values if v is not None]
        if values:
            best[col] = lb.column(col).best(values)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in [*cols, *(["pareto"] if extra else [])])
    body = []
    for i, row in enumerate(rows):
        cells = []
        for col in cols:
            value = row.value(col)
            klass = "text" if isinstance(value, str) else ""
            if col in best and value == best[col]:
                klass += " best"
            cells.append(f'<td class="{klass.strip()}">{html.escape(lb.fmt(value, col))}</td>')
        if extra:
            cells.append(f"<td>{html.escape(extra[i])}</td>")
        css = ' class="failed"' if not row.ok else ""
        body.append(f"<tr{css}>{''.join(cells)}</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def pick_examples(rows: Sequence[Row], encoder: str) -> list[Row]:
    """For one encoder and its first backend: single-shot rows at the smallest and the
    largest dim, then every multi-stage row (adaptive, funnel, ...); rows with a
    neighbours file only."""
    rows = [r for r in rows if r.encoder == encoder and r.ok and r.neighbors]
    if not rows:
        return []
    rows = [r for r in rows if r.backend == rows[0].backend]
    single = sorted((r for r in rows if single_shot(r)), key=lambda r: int(r.dims))
    ends = [single[0], single[-1]] if len(single) > 1 else single
    return ends + [r for r in rows if not single_shot(r) and r.dims]


def examples(run: Path, rows: Sequence[Row], encoders: Mapping[str, Encoder]) -> list[str]:
    """Example figures (file names) for every encoder that has images."""
    written = []
    for name, encoder in encoders.items():
        chosen = pick_examples(rows, name)
        if not chosen:
            continue
        if encoder.thumbnails("queries", []) is None:
            continue  # no images: do not load (and scan) its arrays for nothing
        emb = encoder.embeddings(encoder.dims[0])
        yb, yq = emb.database_labels, emb.query_labels
        queries = np.random.default_rng(0).choice(
            len(yq), min(EXAMPLE_QUERIES, len(yq)), replace=False
        )
        lists = {
            r.label: np.asarray(nbfiles.load(run / r.neighbors)[queries][:, :EXAMPLE_NEIGHBOURS])
            for r in chosen
        }
        wanted = sorted({int(i) for ids in lists.values() for i in ids.ravel() if i >= 0})
        query_images = encoder.thumbnails("queries", [int(q) for q in queries]) or []
        database_images = dict(
            zip(wanted, encoder.thumbnails("database", wanted) or [], strict=False)
        )
        panels = []
        for qi, q in enumerate(queries):
            for label, ids in lists.items():
                panels.append(
                    plots.Panel(
                        f"query {int(q)}: {label}",
                        query_images[qi],
                        tuple(
                            (database_images[int(i)], bool(yb[int(i)] == yq[q]))
                            for i in ids[qi]
                            if i >= 0
                        ),
                    )
                )
        path = plots.draw_examples(panels, run, f"examples_{_safe(name)}")
        written.append(path.name)
    return written


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


def write(
    run: Path,
    rows: Sequence[Row],
    ks: Sequence[int],
    encoders: Mapping[str, Encoder] | None = None,
) -> Path:
    """Plots, examples and ``report.html`` in the run directory."""
    figures = [plots.draw(f, run).name for f in plots.figures(rows, ks)]
    example_files = examples(run, rows, encoders or {})
    metric = lb.headline(ks)
    accuracy_cols = lb.accuracy_view(ks, lb.METRIC_FAMILIES)
    flags = lb.frontier(rows, metric)
    order = lb.cost_order(rows)
    env = read_json(run / "env.json") or {}
    failed = [r for r in rows if not r.ok]
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>mrlbench report: {html.escape(run.name)}</title><style>{CSS}</style>",
        "</head><body>",
        f"<h1>mrlbench report: {html.escape(run.name)}</h1>",
        f"<p class='meta'>{len(rows)} rows, {len(failed)} not ok; device "
        f"{html.escape(str(env.get('device', '?')))}; "
        f"{html.escape(json.dumps(env.get('packages', {})))}</p>",
        "<h2>Accuracy against representation size</h2>",
        f"<img src='{figures[0]}' alt='{metric} against dims'>",
        "<h2>Accuracy against MFLOPs per query</h2>",
        "<p class='meta'>Lines: single-shot (flat) retrieval; marks: adaptive and funnel.</p>",
        f"<img src='{figures[1]}' alt='{metric} against MFLOPs'>",
        "<h2>Accuracy against measured latency</h2>",
        f"<img src='{figures[2]}' alt='{metric} against latency'>",
        f"<h2>Accuracy view (sorted by {metric})</h2>",
        _table(lb.by_metric(rows, metric), accuracy_cols),
        "<h2>Cost view (pareto: single-shot rows on the frontier)</h2>",
        _table(
            [rows[i] for i in order], lb.cost_view(ks), ["*" if flags[i] else "" for i in order]
        ),
    ]
    if example_files:
        parts.append(
            "<h2>Retrieval examples</h2><p class='meta'>Each row: a query, then its "
            "top-10 neighbours; green frame: same class, red: another class.</p>"
        )
        parts += [f"<img src='{name}' alt='retrieval examples'>" for name in example_files]
    if failed:
        parts.append("<h2>Rows not ok</h2><ul>")
        parts += [
            f"<li>{html.escape(r.encoder)} / {html.escape(r.backend)} / "
            f"{html.escape(r.label)}: {html.escape(r.error)}</li>"
            for r in failed
        ]
        parts.append("</ul>")
    parts.append("</body></html>")
    path = run / "report.html"
    write_text(path, "\n".join(parts))
    return path
