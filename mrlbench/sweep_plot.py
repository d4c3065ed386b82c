"""The sweep plot (ann-benchmarks' recall-vs-QPS): for each dataset, ``knn_recall@10``
against batch queries per second (log), one line per swept family through its values.

A family is the rows that differ only in swept values (``mrlbench.sweep``): the same
encoder, the same backend and strategy once the ``key=value`` tokens at the end of
their labels are left out, and the same place among their cell's rows (flat's row of one
dim). Only families of two or more values are drawn; a run without any, or without
``knn_recall@10``, has no sweep plot. Pure: what to draw; ``plots.draw`` draws it."""

from __future__ import annotations

from collections.abc import Sequence

from mrlbench.leaderboard import Row
from mrlbench.plots import Figure, Plot, Series
from mrlbench.sweep import split_label

METRIC = "knn_recall@10"
NAME = "plot_recall_vs_qps"


def families(rows: Sequence[Row]) -> dict[tuple[str, str, str, str, int], list[Row]]:
    """Rows by (dataset, encoder, backend family, strategy family, place in the cell),
    in run order."""
    place: dict[tuple[str, str, str], int] = {}
    found: dict[tuple[str, str, str, str, int], list[Row]] = {}
    for row in rows:
        cell = (row.encoder, row.backend, row.strategy)
        i = place[cell] = place.get(cell, -1) + 1
        backend, strategy = split_label(row.backend)[0], split_label(row.strategy)[0]
        found.setdefault((row.dataset, row.encoder, backend, strategy, i), []).append(row)
    return found


def swept(row: Row) -> tuple[str, ...]:
    """The swept ``key=value`` tokens of a row's backend and strategy labels."""
    return split_label(row.backend)[1] + split_label(row.strategy)[1]


def frontier(points: Sequence[tuple[float, float]]) -> list[bool]:
    """For (recall, QPS) points: whether each is on ann-benchmarks' frontier (no other
    point has at least its recall and more QPS, or more recall and as many QPS)."""
    return [
        not any((r >= recall and q > qps) or (r > recall and q >= qps) for r, q in points)
        for recall, qps in points
    ]


def recall_qps(rows: Sequence[Row], ks: Sequence[int]) -> Figure | None:
    """The sweep figure, one panel per dataset: each family's frontier as a line (the
    points it dominates as marks of its colour, no line); ``None`` when there is
    nothing to draw."""
    if 10 not in ks:
        return None
    panels: dict[str, list[Series]] = {}
    keys: dict[str, set[str]] = {}
    for (dataset, encoder, backend, strategy, _), members in families(rows).items():
        drawn = sorted(
            (r for r in members if r.ok and r.value(METRIC) is not None and r.qps),
            key=lambda r: (r.value(METRIC), -(r.qps or 0.0)),
        )
        if len(drawn) < 2 or not any(swept(r) for r in drawn):
            continue
        labels = {r.label for r in drawn}
        label = f"{encoder} {backend} {labels.pop() if len(labels) == 1 else strategy}"
        points = [(float(r.value(METRIC)), float(r.qps or 0.0)) for r in drawn]
        best = frontier(points)
        keys.setdefault(dataset, set()).update(t.split("=")[0] for r in drawn for t in swept(r))
        for line in (True, False):
            kept = [i for i, flag in enumerate(best) if flag == line]
            if not kept:
                continue
            panels.setdefault(dataset, []).append(
                Series(
                    label,
                    tuple(points[i][0] for i in kept),
                    tuple(points[i][1] for i in kept),
                    line=line,
                    group=label,
                    kind=strategy,
                    notes=tuple(",".join(t.split("=")[1] for t in swept(drawn[i])) for i in kept),
                )
            )
    if not panels:
        return None
    return Figure(
        NAME,
        tuple(
            Plot(
                f"{dataset or '(no dataset)'}: {', '.join(sorted(keys[dataset]))} swept",
                METRIC,
                "queries per second (batch)",
                tuple(series),
                logy=True,
            )
            for dataset, series in sorted(panels.items())
        ),
    )
