"""``report.html``: the plots, the two leaderboard views with the best value per column
highlighted, and retrieval examples; one self-contained file (inline CSS, images next to
it by relative path), aggregates only so it opens fast whatever the run's size.

Rows that chain separately trained models (an encoder with one fixed-feature model per
size: its adaptive and funnel rows search with one model and rerank with others) are
listed apart from single-model rows and drawn hollow; ``Encoder.models`` says which."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mrlbench import leaderboard as lb
from mrlbench import neighbors as nbfiles
from mrlbench import plots, sweep_plot
from mrlbench.leaderboard import Row, single_shot
from mrlbench.sampling import Queries, query_rows, sampled_rows
from mrlbench.store import read_json, write_text
from mrlbench.types import Encoder

EXAMPLE_QUERIES, EXAMPLE_NEIGHBOURS = 4, 10

CSS = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; max-width: 1400px; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.2rem; margin-top: 2rem; }
h3 { font-size: 1rem; margin: 1rem 0 0.25rem; }
table { border-collapse: collapse; font-size: 0.8rem; margin: 0.5rem 0; }
th, td { border: 1px solid #ddd; padding: 0.25rem 0.5rem; text-align: right; }
th { background: #f4f4f4; } td.text, th.text { text-align: left; }
td.best { background: #d9f0d3; font-weight: 600; }
td.text { white-space: nowrap; } td.label { white-space: normal; min-width: 14em; }
.chained { color: #b2182b; font-weight: 600; white-space: nowrap; }
.scroll { overflow-x: auto; }
tr.failed td { color: #b2182b; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.5rem 0; }
.meta { color: #666; font-size: 0.85rem; }
.env { display: flex; flex-wrap: wrap; gap: 0 1rem; align-items: flex-start; }
.env table { margin: 0.25rem 0; } .env td, .env th { text-align: left; }
.env td:first-child { color: #555; }
"""


# ------------------------------------------------------------------------------ tables
def _table(
    rows: Sequence[Row],
    cols: Sequence[str],
    extra: Mapping[str, Sequence[str]] | None = None,
    marks: Sequence[str] | None = None,
) -> str:
    """An HTML table; the best value of each numeric column is highlighted. ``extra``:
    more columns after ``cols`` (name -> one text per row); ``marks``: a marker per row
    written in its label cell (e.g. ``chains 2 models``)."""
    extra = extra or {}
    best: dict[str, float] = {}
    for col in cols:
        values = [r.value(col) for r in rows if r.ok and lb.numeric(col)]
        values = [v for v in values if v is not None]
        if values:
            best[col] = lb.column(col).best(values)
    head = "".join(
        f"<th class='{'' if lb.numeric(c) else 'text'}'>{html.escape(c)}</th>"
        for c in [*cols, *extra]
    )
    body = []
    for i, row in enumerate(rows):
        cells = []
        for col in cols:
            value = row.value(col)
            klass = "text" if isinstance(value, str) else ""
            if col in best and value == best[col]:
                klass += " best"
            text = html.escape(lb.fmt(value, col))
            if col == "label":
                klass += " label"
                if marks and marks[i]:
                    text += f' <span class="chained">{html.escape(marks[i])}</span>'
            cells.append(f'<td class="{klass.strip()}">{text}</td>')
        cells += [f'<td class="text">{html.escape(values[i])}</td>' for values in extra.values()]
        css = ' class="failed"' if not row.ok else ""
        body.append(f"<tr{css}>{''.join(cells)}</tr>")
    return f"<div class='scroll'><table><tr>{head}</tr>{''.join(body)}</table></div>"


def row_dims(row: Row) -> list[int]:
    """The dims a row searched and reranked at (``"8,256"`` -> ``[8, 256]``)."""
    return [int(d) for d in row.dims.split(",") if d.strip()]


def models_of(row: Row, encoders: Mapping[str, Encoder]) -> int:
    """How many separately trained models served ``row`` (1 when its encoder is not
    known here: a report redrawn where the encoders cannot be built)."""
    encoder, dims = encoders.get(row.encoder), row_dims(row)
    return encoder.models(dims) if encoder is not None and dims else 1


def chain_marker(models: int) -> str:
    """The marker of a row that chains models; empty for a single-model row."""
    return f"chains {models} models" if models > 1 else ""


def _views(
    rows: Sequence[Row],
    order: Sequence[int],
    cols: Sequence[str],
    counts: Sequence[int],
    extra: Mapping[str, Sequence[str]] | None = None,
) -> str:
    """Rows ``order`` (indices) as one table, or, when some chain several models, a
    table of single-model rows and one of chained rows (each with its own best
    values), each chained row's label marked ``chains N models``."""
    extra = extra or {}
    single = [i for i in order if counts[i] <= 1]
    chained = [i for i in order if counts[i] > 1]

    def table(members: Sequence[int], marked: bool) -> str:
        columns = {name: [values[i] for i in members] for name, values in extra.items()}
        marks = [chain_marker(counts[i]) for i in members] if marked else None
        return _table([rows[i] for i in members], cols, columns, marks)

    if not chained:
        return table(single, False)
    return (
        "<h3>Single-model rows</h3>"
        + table(single, False)
        + "<h3>Rows that chain separately trained models</h3><p class='meta'>Each dim of "
        "these rows is served by its own model (fixed-feature baselines: one model per "
        "size): the shortlist comes from one model, the reranks from others. Not one "
        "model's retrieval; best values are highlighted within this table.</p>"
        + table(chained, True)
    )


# ------------------------------------------------------------------------- environment
def flatten(tree: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """Nested dicts as ``(dotted key, text)`` pairs: ``{"packages": {"faiss": "1.15.1"}}``
    -> ``[("packages.faiss", "1.15.1")]``; lists joined with commas."""
    pairs: list[tuple[str, str]] = []
    for key, value in tree.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            pairs += flatten(value, name)
        elif isinstance(value, list | tuple):
            pairs.append((name, ", ".join(str(v) for v in value)))
        else:
            pairs.append((name, "" if value is None or value == {} else str(value)))
    return pairs


def env_sections(env: Mapping[str, Any]) -> list[list[tuple[str, str]]]:
    """``env.json`` flattened (``flatten``) in sections: its plain values first, then
    one section per nested table (``packages``, ``components``, ...)."""
    plain = flatten({k: v for k, v in env.items() if not isinstance(v, Mapping) or not v})
    nested = [flatten({k: v}) for k, v in env.items() if isinstance(v, Mapping) and v]
    return [section for section in (plain, *nested) if section]


def env_tables(env: Mapping[str, Any]) -> str:
    """``env.json`` as side-by-side two-column tables (setting, value), one a section."""
    sections = env_sections(env)
    if not sections:
        return "<p class='meta'>no env.json</p>"
    tables = []
    for pairs in sections:
        cells = "".join(
            f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>" for k, v in pairs
        )
        tables.append(f"<table><tr><th>setting</th><th>value</th></tr>{cells}</table>")
    return f"<div class='env'>{''.join(tables)}</div>"


# ---------------------------------------------------------------------------- examples
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


def examples(
    run: Path,
    rows: Sequence[Row],
    encoders: Mapping[str, Encoder],
    taken: Mapping[str, Queries | None] | None = None,
) -> list[str]:
    """Example figures (file names) for every encoder that has images; ``taken``: each
    encoder's ``queries`` key (which of its queries the neighbour files' rows are)."""
    written = []
    for name, encoder in encoders.items():
        chosen = pick_examples(rows, name)
        if not chosen:
            continue
        if encoder.thumbnails("queries", []) is None:
            continue  # no images: do not load (and scan) its arrays for nothing
        emb = encoder.embeddings(encoder.dims[0])
        yb, yq = emb.database_labels, emb.query_labels
        files = {r.label: nbfiles.load(run / r.neighbors) for r in chosen}
        searched = min(len(ids) for ids in files.values())  # ``queries = N``: a sample
        if taken and taken.get(name) is not None:
            originals = query_rows(len(yq), taken[name])  # each neighbour row's query
        else:
            originals = sampled_rows(len(yq), searched)
        positions = np.random.default_rng(0).choice(
            searched, min(EXAMPLE_QUERIES, searched), replace=False
        )
        queries = originals[positions]
        lists = {
            label: np.asarray(ids[positions][:, :EXAMPLE_NEIGHBOURS])
            for label, ids in files.items()
        }
        counts = {r.label: models_of(r, encoders) for r in chosen}
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
                        label,
                        query_images[qi],
                        tuple(
                            (database_images[int(i)], bool(yb[int(i)] == yq[q]))
                            for i in ids[qi]
                            if i >= 0
                        ),
                        group=f"query {int(q)}",
                        models=counts[label],
                    )
                )
        if not panels:
            continue
        path = plots.draw_examples(panels, run, f"examples_{_safe(name)}")
        written.append(path.name)
    return written


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


# -------------------------------------------------------------------------------- page
PLOT_KEY = (
    "Colour: encoder. Small dots: single-shot (flat) rows, each labelled with its dims; "
    "diamonds: adaptive, squares: funnel; hollow marks: rows that chain separately "
    "trained models (marked in the legend)."
)


SWEEP_KEY = (
    "ann-benchmarks' plot: each line one swept family (the same encoder, backend, strategy "
    "and row but for the values in its labels), each point noted with its values; "
    "queries per second from the batch search (log axis)."
)


def _sweep(run: Path, rows: Sequence[Row], ks: Sequence[int]) -> list[str]:
    """The sweep section (``mrlbench.sweep_plot``): nothing when no family is swept."""
    figure = sweep_plot.recall_qps(rows, ks)
    if figure is None:
        return []
    name = plots.draw(figure, run).name
    return [
        f"<h2>{sweep_plot.METRIC} against queries per second (sweeps)</h2>",
        f"<p class='meta'>{SWEEP_KEY}</p>",
        f"<img src='{name}' alt='{sweep_plot.METRIC} against queries per second'>",
    ]


def write(
    run: Path,
    rows: Sequence[Row],
    ks: Sequence[int],
    encoders: Mapping[str, Encoder] | None = None,
    queries: Mapping[str, Queries | None] | None = None,
) -> Path:
    """Plots, examples and ``report.html`` in the run directory (``queries``: each
    encoder's ``queries`` key, for the examples)."""
    encoders = encoders or {}
    counts = [models_of(r, encoders) for r in rows]
    figures = [
        plots.draw(f, run).name
        for f in plots.figures(rows, ks, lambda row: models_of(row, encoders))
    ]
    example_files = examples(run, rows, encoders, queries)
    metric = lb.headline(ks)
    accuracy_cols = lb.accuracy_view(ks, lb.METRIC_FAMILIES)
    flags = lb.frontier(rows, metric)
    by_accuracy = sorted(
        range(len(rows)),
        key=lambda i: -(rows[i].value(metric) if rows[i].value(metric) is not None else -1),
    )
    env = read_json(run / "env.json") or {}
    failed = [r for r in rows if not r.ok]
    chained = sum(n > 1 for n in counts)
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>mrlbench report: {html.escape(run.name)}</title><style>{CSS}</style>",
        "</head><body>",
        f"<h1>mrlbench report: {html.escape(run.name)}</h1>",
        f"<p class='meta'>{len(rows)} rows, {len(failed)} not ok, {chained} chaining "
        f"separately trained models; device {html.escape(str(env.get('device', '?')))}, "
        f"{html.escape(str(env.get('threads', '?')))} threads</p>",
        "<h2>Environment</h2>",
        env_tables(env),
        "<h2>Accuracy against representation size</h2>",
        f"<img src='{figures[0]}' alt='{metric} against dims'>",
        "<h2>Accuracy against MFLOPs per query</h2>",
        f"<p class='meta'>Lines: single-shot rows by cost. {PLOT_KEY}</p>",
        f"<img src='{figures[1]}' alt='{metric} against MFLOPs'>",
        "<h2>Accuracy against measured latency</h2>",
        "<p class='meta'>Points, not lines: a measured time need not grow with dims. "
        f"{PLOT_KEY}</p>",
        f"<img src='{figures[2]}' alt='{metric} against latency'>",
        *_sweep(run, rows, ks),
        f"<h2>Accuracy view (sorted by {metric})</h2>",
        _views(rows, by_accuracy, accuracy_cols, counts),
        "<h2>Cost view (pareto: single-shot rows on the frontier)</h2>",
        _views(
            rows,
            lb.cost_order(rows),
            lb.cost_view(ks),
            counts,
            {"pareto": ["*" if flag else "" for flag in flags]},
        ),
    ]
    if example_files:
        parts.append(
            "<h2>Retrieval examples</h2><p class='meta'>Each row: a query (grey frame), "
            "then its top-10 neighbours; green frame: same class, red: another class.</p>"
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
