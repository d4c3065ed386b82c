"""The paper's plots from leaderboard rows: what to draw (pure) and drawing it
(matplotlib, Agg backend, no network)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mrlbench.leaderboard import Row, headline, single_shot
from mrlbench.store import atomic_path


@dataclass(frozen=True)
class Series:
    """One line (``line=True``) or set of marked points on a plot."""

    label: str
    x: tuple[float, ...]
    y: tuple[float, ...]
    line: bool = True
    group: str = ""  # series of one group (encoder) share a colour


@dataclass(frozen=True)
class Plot:
    """One panel: a title, axis names and its series."""

    title: str
    xlabel: str
    ylabel: str
    series: tuple[Series, ...]
    logx: bool = False


@dataclass(frozen=True)
class Panel:
    """One row of retrieval examples: a query image and its neighbours, each with
    whether it shares the query's class."""

    title: str
    query: Any  # HxWx3 uint8
    neighbours: tuple[tuple[Any, bool], ...]


@dataclass(frozen=True)
class Figure:
    name: str  # file stem
    panels: tuple[Plot, ...] = field(default_factory=tuple)


def _grouped(rows: Sequence[Row], key: str) -> dict[str, list[Row]]:
    groups: dict[str, list[Row]] = {}
    for row in rows:
        groups.setdefault(getattr(row, key), []).append(row)
    return groups


def figures(rows: Sequence[Row], ks: Sequence[int]) -> list[Figure]:
    """The three figures of a run: accuracy against dims (the paper's Figure 7), against
    MFLOPs/query (Figure 8) and against measured latency; one panel per backend."""
    metric = headline(ks)
    rows = [r for r in rows if r.ok and r.value(metric) is not None]
    by_dim, by_cost, by_time = [], [], []
    for backend, group in sorted(_grouped(rows, "backend").items()):
        lines, cost, time = [], [], []
        for encoder, members in sorted(_grouped(group, "encoder").items()):
            flat = sorted((r for r in members if single_shot(r)), key=lambda r: int(r.dims))
            others = [r for r in members if not single_shot(r) and r.dims]
            if flat:
                lines.append(
                    Series(
                        encoder,
                        tuple(float(r.dims) for r in flat),
                        tuple(r.value(metric) for r in flat),
                    )
                )
            for key, out in (("mflops_per_query", cost), ("latency_ms_p50", time)):
                ordered = sorted(flat, key=lambda r: r.value(key))
                if ordered:
                    out.append(
                        Series(
                            f"{encoder} flat",
                            tuple(r.value(key) for r in ordered),
                            tuple(r.value(metric) for r in ordered),
                        )
                    )
                for r in others:
                    out.append(
                        Series(
                            f"{encoder} {r.label}", (r.value(key),), (r.value(metric),), line=False
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


def draw(figure: Figure, out: Path) -> Path:
    """Render one figure to ``out/{name}.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = max(1, len(figure.panels))
    fig, axes = plt.subplots(1, n, figsize=(6 * n, 4.2), squeeze=False)
    for ax, panel in zip(axes[0], figure.panels, strict=False):
        markers = iter("osD^v<>ph*")
        for s in panel.series:
            if s.line:
                ax.plot(s.x, s.y, marker=".", label=s.label)
            else:
                ax.plot(
                    s.x,
                    s.y,
                    linestyle="none",
                    marker=next(markers, "o"),
                    markersize=8,
                    label=s.label,
                )
        if panel.logx:
            ax.set_xscale("log", base=2 if "dims" in panel.xlabel else 10)
        ax.set(title=panel.title, xlabel=panel.xlabel, ylabel=panel.ylabel)
        ax.grid(True, alpha=0.3)
        if panel.series:
            ax.legend(fontsize=7)
    fig.tight_layout()
    path = out / f"{figure.name}.png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path


def draw_examples(panels: Sequence[Panel], out: Path, name: str) -> Path:
    """Retrieval examples: one row per (query, strategy): the query, then its neighbours
    framed green (same class) or red (other class)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = 1 + max(len(p.neighbours) for p in panels)
    fig, axes = plt.subplots(
        len(panels), cols, figsize=(cols * 0.9, len(panels) * 1.05), squeeze=False
    )
    for row, panel in zip(axes, panels, strict=True):
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
            ax.axis("off")
        row[0].imshow(panel.query)
        row[0].set_title(panel.title, fontsize=6, loc="left")
        for ax, (image, good) in zip(row[1:], panel.neighbours, strict=False):
            ax.imshow(image)
            ax.axis("on")
            for spine in ax.spines.values():
                spine.set_edgecolor("#1a9850" if good else "#d73027")
                spine.set_linewidth(3)
    fig.tight_layout(pad=0.3)
    path = out / f"{name}.png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return path
