"""The paper's plots from leaderboard rows: what to draw (pure) and drawing it
(matplotlib, Agg backend, no network)."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mrlbench.leaderboard import Row, headline, single_shot
from mrlbench.store import atomic_path

THUMB = 84  # retrieval example thumbnails: the longer side, upscaled nearest-neighbour
FRAME = 4  # the green / red frame around a neighbour
GAP = 3  # between cells
QUERY_GAP = 8  # between the query and its first neighbour
LABEL_WIDTH = 150  # the text column left of each row of examples
GROUP_GAP = 10  # between the rows of two queries
MARKERS = {"flat": "o", "adaptive": "D", "funnel": "s"}  # by strategy; others cycle
OTHER_MARKERS = "^v<>ph*P"
# where a point's dims note goes (points), one offset per encoder: notes of encoders
# whose points crowd together do not print on top of each other
NOTE_OFFSETS = ((4, 3), (4, -9), (-12, 3), (-12, -9))
PANELS_PER_ROW = 2  # one panel per backend: four backends make a 2 x 2 grid


@dataclass(frozen=True)
class Series:
    """One line (``line=True``) or set of marked points on a plot.

    ``group`` (the encoder) sets the colour, ``kind`` (the strategy) the marker;
    ``models`` > 1: the points chain that many separately trained models (drawn hollow);
    ``notes``: one short text per point (its dims), written next to it."""

    label: str
    x: tuple[float, ...]
    y: tuple[float, ...]
    line: bool = True
    group: str = ""
    kind: str = ""
    models: int = 1
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Plot:
    """One panel: a title, axis names and its series."""

    title: str
    xlabel: str
    ylabel: str
    series: tuple[Series, ...]
    logx: bool = False
    logy: bool = False  # the sweep plot's queries per second (ann-benchmarks' axes)


@dataclass(frozen=True)
class Panel:
    """One row of retrieval examples: a query image and its neighbours, each with
    whether it shares the query's class. ``group`` (the query's caption) is written
    on the first row of consecutive rows that share it; ``models`` > 1 marks a row
    that chains separately trained models."""

    title: str
    query: Any  # HxWx3 uint8
    neighbours: tuple[tuple[Any, bool], ...]
    group: str = ""
    models: int = 1


@dataclass(frozen=True)
class Figure:
    name: str  # file stem
    panels: tuple[Plot, ...] = field(default_factory=tuple)


def _grouped(rows: Sequence[Row], key: str) -> dict[str, list[Row]]:
    groups: dict[str, list[Row]] = {}
    for row in rows:
        groups.setdefault(getattr(row, key), []).append(row)
    return groups


def chained_label(label: str, models: int) -> str:
    """A row's label with the chained-models marker where it chains several models."""
    return f"{label} (chains {models} models)" if models > 1 else label


def _points(encoder: str, rows: Sequence[Row], key: str, metric: str, line: bool) -> Series | None:
    """Single-shot rows as one series sorted by ``key`` (a line never runs back along
    its x axis), each point noted with its dims."""
    ordered = sorted((r for r in rows if r.value(key) is not None), key=lambda r: r.value(key))
    if not ordered:
        return None
    return Series(
        f"{encoder} flat",
        tuple(float(r.value(key)) for r in ordered),
        tuple(r.value(metric) for r in ordered),
        line=line,
        group=encoder,
        kind="flat",
        notes=tuple(r.dims for r in ordered),
    )


def figures(
    rows: Sequence[Row], ks: Sequence[int], models: Callable[[Row], int] | None = None
) -> list[Figure]:
    """The three figures of a run: accuracy against dims (the paper's Figure 7), against
    MFLOPs/query (Figure 8) and against measured latency; one panel per backend.

    Single-shot rows are a line against dims and against MFLOPs (sorted by cost, each
    point noted with its dims) and points against latency (a measured time need not
    grow with dims: a line there would zig-zag). Multi-stage rows are marks; ``models``
    says how many separately trained models a row chains (default 1)."""
    metric = headline(ks)
    count = models or (lambda row: 1)
    rows = [r for r in rows if r.ok and r.value(metric) is not None]
    by_dim, by_cost, by_time = [], [], []
    for backend, group in sorted(_grouped(rows, "backend").items()):
        lines: list[Series] = []
        cost: list[Series] = []
        time: list[Series] = []
        for encoder, members in sorted(_grouped(group, "encoder").items()):
            flat = sorted((r for r in members if single_shot(r)), key=lambda r: int(r.dims))
            others = [r for r in members if not single_shot(r) and r.dims]
            if flat:
                lines.append(
                    Series(
                        encoder,
                        tuple(float(r.dims) for r in flat),
                        tuple(r.value(metric) for r in flat),
                        group=encoder,
                        kind="flat",
                    )
                )
            for key, out, line in (
                ("mflops_per_query", cost, True),
                ("latency_ms_p50", time, False),
            ):
                series = _points(encoder, flat, key, metric, line)
                if series:
                    out.append(series)
                for r in others:
                    if r.value(key) is None:
                        continue
                    n = count(r)
                    out.append(
                        Series(
                            chained_label(f"{encoder} {r.label}", n),
                            (float(r.value(key)),),
                            (r.value(metric),),
                            line=False,
                            group=encoder,
                            kind=r.strategy,
                            models=n,
                        )
                    )
        by_dim.append(Plot(backend, "representation size (dims)", metric, tuple(lines), logx=True))
        by_cost.append(Plot(backend, "MFLOPs per query", metric, tuple(cost), logx=True))
        by_time.append(
            Plot(backend, "latency per query, median (ms)", metric, tuple(time), logx=True)
        )
    return [
        Figure("plot_accuracy_vs_dims", tuple(by_dim)),
        Figure("plot_accuracy_vs_mflops", tuple(by_cost)),
        Figure("plot_accuracy_vs_latency", tuple(by_time)),
    ]


def styles(series: Sequence[Series]) -> tuple[dict[str, int], dict[str, str]]:
    """Colour index per group and marker per kind, in order of first appearance (the
    same encoder has the same colour in every panel)."""
    colours: dict[str, int] = {}
    markers: dict[str, str] = {}
    spare = iter(OTHER_MARKERS)
    for s in series:
        colours.setdefault(s.group or s.label, len(colours))
        if s.kind not in markers:
            markers[s.kind] = MARKERS.get(s.kind) or next(spare, "o")
    return colours, markers


def _draw_series(ax: Any, s: Series, colour: Any, marker: str, offset: tuple[int, int]) -> Any:
    """One series on ``ax``; returns its legend handle."""
    hollow = s.models > 1
    style = {
        "color": colour,
        "marker": marker,
        "markerfacecolor": "white" if hollow else colour,
        "markeredgecolor": colour,
        "markeredgewidth": 1.6 if hollow else 1.0,
        "label": s.label,
    }
    if s.line:
        (handle,) = ax.plot(s.x, s.y, markersize=3.5, linewidth=1.4, **style)
    else:
        size = 4.5 if s.kind == "flat" else 8
        (handle,) = ax.plot(s.x, s.y, linestyle="none", markersize=size, **style)
    for x, y, note in zip(s.x, s.y, s.notes, strict=False):
        ax.annotate(
            note,
            (x, y),
            xytext=offset,
            textcoords="offset points",
            fontsize=6,
            color=colour,
        )
    return handle


def _log_axis(ax: Any, panel: Plot) -> None:
    """A log x axis with plain numbers: dims (base 2) at every drawn dim, other axes
    (base 10) as ``0.4``, ``2``, ``10``."""
    from matplotlib import ticker

    if "dims" in panel.xlabel:
        ax.set_xscale("log", base=2)
        ticks = sorted({x for s in panel.series for x in s.x})
        ax.set_xticks(ticks, [f"{x:g}" for x in ticks])
        ax.minorticks_off()
        return
    ax.set_xscale("log", base=10)
    low, high = ax.get_xlim()
    keep = minor_labels(math.log10(high / low))
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
    ax.xaxis.set_minor_formatter(
        ticker.FuncFormatter(lambda value, _: f"{value:g}" if _mantissa(value) in keep else "")
    )


def minor_labels(decades: float) -> frozenset[int]:
    """Which minor ticks (mantissas 2..9) of a log axis spanning ``decades`` get a label:
    more the narrower the axis, none past two decades."""
    if decades <= 1.2:
        return frozenset({2, 3, 5})
    return frozenset({2, 5}) if decades <= 2 else frozenset()


def _mantissa(value: float) -> int:
    return round(value / 10 ** math.floor(math.log10(value))) if value > 0 else 0


def draw(figure: Figure, out: Path) -> Path:
    """Render one figure to ``out/{name}.png``: one panel per plot, one legend below."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = max(1, len(figure.panels))
    cols = min(n, PANELS_PER_ROW)
    rows = -(-n // cols)
    every = [s for panel in figure.panels for s in panel.series]
    colours, markers = styles(every)
    palette = plt.get_cmap("tab10")
    legend_rows = -(-len({s.label for s in every}) // 3)
    fig, axes = plt.subplots(
        rows,
        cols,
        figsize=(6.2 * cols, 4.0 * rows + 0.16 * legend_rows),
        squeeze=False,
        layout="constrained",
    )
    for ax in axes.flat[n:]:
        ax.set_visible(False)  # an odd panel count leaves the last cell empty
    handles: dict[str, Any] = {}
    for ax, panel in zip(axes.flat, figure.panels, strict=False):
        for s in panel.series:
            index = colours[s.group or s.label]
            offset = NOTE_OFFSETS[index % len(NOTE_OFFSETS)]
            handle = _draw_series(ax, s, palette(index % 10), markers[s.kind], offset)
            handles.setdefault(s.label, handle)
        if panel.logx:
            _log_axis(ax, panel)
        if panel.logy:
            ax.set_yscale("log")
        ax.set(title=panel.title, xlabel=panel.xlabel, ylabel=panel.ylabel)
        ax.grid(True, alpha=0.3)
        ax.grid(True, which="minor", axis="x", alpha=0.12)
    if handles:
        fig.legend(
            list(handles.values()),
            list(handles),
            loc="outside lower center",
            ncol=3,
            fontsize=7,
            frameon=False,
        )
    path = out / f"{figure.name}.png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path


# ---------------------------------------------------------------------- retrieval examples
def upscale(image: Any, size: int = THUMB) -> np.ndarray:
    """``image`` (HxW grey or HxWxC uint8) resized nearest-neighbour so its longer side
    is ``size`` pixels (a 28-px image becomes 3x3 blocks), centred on a white
    ``size`` x ``size`` square: RGB uint8."""
    img = np.asarray(image)
    if img.ndim == 2:
        img = img[..., None]
    img = np.repeat(img, 3, axis=2) if img.shape[2] == 1 else img[..., :3]
    h, w = img.shape[:2]
    nh, nw = max(1, round(h * size / max(h, w))), max(1, round(w * size / max(h, w)))
    rows = np.arange(nh) * h // nh
    cols = np.arange(nw) * w // nw
    out = np.full((size, size, 3), 255, np.uint8)
    top, left = (size - nh) // 2, (size - nw) // 2
    out[top : top + nh, left : left + nw] = img[rows][:, cols]
    return out


@dataclass(frozen=True)
class Text:
    """A caption on the examples mosaic, at pixel ``(x, y)`` (top left)."""

    x: float
    y: float
    text: str
    bold: bool = False
    colour: str = "#222222"


def mosaic(panels: Sequence[Panel], thumb: int = THUMB) -> tuple[np.ndarray, list[Text]]:
    """The retrieval examples as one RGB image and its captions (pure): one row per
    panel: its caption, the query, then the neighbours framed green (same class) or red
    (another class); a small gap between the rows of different queries."""
    cell = thumb + 2 * FRAME
    cols = 1 + max(len(p.neighbours) for p in panels)
    starts = []
    y = 0
    for i, panel in enumerate(panels):
        if i and panel.group != panels[i - 1].group:
            y += GROUP_GAP
        starts.append(y)
        y += cell + GAP
    width = LABEL_WIDTH + cols * (cell + GAP) - GAP + QUERY_GAP
    image = np.full((y - GAP, width, 3), 255, np.uint8)
    texts: list[Text] = []
    green, red, grey = (26, 152, 80), (215, 48, 39), (150, 150, 150)
    for i, (panel, top) in enumerate(zip(panels, starts, strict=True)):
        cells = [(panel.query, grey), *((im, green if ok else red) for im, ok in panel.neighbours)]
        for c, (picture, colour) in enumerate(cells):
            left = LABEL_WIDTH + c * (cell + GAP) + (QUERY_GAP if c else 0)
            image[top : top + cell, left : left + cell] = colour
            image[top + FRAME : top + FRAME + thumb, left + FRAME : left + FRAME + thumb] = upscale(
                picture, thumb
            )
        line = top + 2
        if panel.group and (i == 0 or panels[i - 1].group != panel.group):
            texts.append(Text(2, line, panel.group, bold=True))
            line += 13
        for part in textwrap.wrap(panel.title, 24):
            texts.append(Text(2, line, part))
            line += 12
        if panel.models > 1:
            texts.append(Text(2, line, f"chains {panel.models} models", colour="#b2182b"))
    return image, texts


def draw_examples(panels: Sequence[Panel], out: Path, name: str) -> Path:
    """Retrieval examples (``mosaic``) to ``out/{name}.png``, one image pixel per
    mosaic pixel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    image, texts = mosaic(panels)
    dpi = 100
    fig = plt.figure(figsize=(image.shape[1] / dpi, image.shape[0] / dpi), dpi=dpi)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.imshow(image, interpolation="nearest", aspect="auto")
    ax.axis("off")
    for t in texts:
        ax.text(
            t.x,
            t.y,
            t.text,
            fontsize=7.5,
            va="top",
            ha="left",
            color=t.colour,
            fontweight="bold" if t.bold else "normal",
        )
    path = out / f"{name}.png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    plt.close(fig)
    return path
