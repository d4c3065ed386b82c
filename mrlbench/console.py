"""The terminal, shared by the CLI and the commands plugins add: the two rich consoles,
tables fitted to the output's width, progress bars, and click helpers (integer lists, a
JSON summary line)."""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import click
from rich.cells import cell_len
from rich.console import Console
from rich.measure import Measurement
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.segment import Segments
from rich.table import Table
from rich.text import Text

PIPE_WIDTH = 120  # the width of tables written to pipes and files when COLUMNS is unset


def output_width(environ: Mapping[str, str] = os.environ, tty: bool | None = None) -> int | None:
    """The width stdout's tables are fitted to: ``COLUMNS`` when set, else the terminal's
    own (``None``: rich measures it, following resizes), else ``PIPE_WIDTH`` for pipes
    and files."""
    columns = environ.get("COLUMNS", "").strip()
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    return None if (sys.stdout.isatty() if tty is None else tty) else PIPE_WIDTH


console = Console(width=output_width())
stderr = Console(stderr=True, soft_wrap=True)


def refresh_width() -> None:
    """Fit ``console`` to the environment again (``COLUMNS`` may have changed since
    import): the CLI calls this once per invocation."""
    console.width = output_width()  # type: ignore[assignment]  # None: measure the terminal


# ------------------------------------------------------------------------------ tables
BORDER = 3  # what each column adds to a table's width: one space each side, one rule
WORD_LEAST = 20  # text columns keep words whole up to this long ...
TEXT_LEAST = 12  # ... and fold down to this width (or their longest word, from 8) ...
ESSENTIAL = 3  # ... rather than hide a column of this priority or less


@dataclass(frozen=True)
class Col:
    """A column of a fitted table. Numbers (``numeric``) are right-aligned and never
    wrapped or cut; text folds onto more lines, never losing a character. ``priority``
    0 is always shown; when the table does not fit, the highest priority is hidden first
    (the rightmost of equals)."""

    header: str
    numeric: bool = False
    priority: int = 0


@dataclass(frozen=True)
class Layout:
    """Which columns a table shows (indices into its columns), at which widths, and
    the headers of those it hides."""

    shown: tuple[int, ...]
    widths: tuple[int, ...]
    hidden: tuple[str, ...]


def text_width(text: str) -> int:
    """The terminal width of ``text``'s longest line."""
    return max((cell_len(line) for line in text.splitlines()), default=0)


def header_pieces(header: str) -> list[str]:
    """A numeric column's header in the pieces it may be broken into: after each ``_``
    (``latency_ms_p50`` -> ``latency_``, ``ms_``, ``p50``), so that the name stays whole."""
    pieces = [part + "_" for part in header.split("_")]
    pieces[-1] = pieces[-1][:-1]
    return [p for p in pieces if p]


def header_lines(header: str, width: int) -> str:
    """``header`` broken after underscores into lines of at most ``width`` (where it can)."""
    lines: list[str] = []
    for piece in header_pieces(header):
        if lines and cell_len(lines[-1] + piece) <= width:
            lines[-1] += piece
        else:
            lines.append(piece)
    return "\n".join(lines)


def natural_width(col: Col, cells: Sequence[str]) -> int:
    """The width a column takes when nothing constrains it."""
    return max([text_width(col.header), *(text_width(c) for c in cells)])


def longest_word(col: Col, cells: Sequence[str]) -> int:
    """The widest word (run of non-blanks) in a column, header included."""
    return max((cell_len(w) for c in (col.header, *cells) for w in c.split()), default=0)


def least_width(col: Col, cells: Sequence[str], fold: bool = False) -> int:
    """The narrowest a column goes before columns are hidden: a numeric column its
    widest value and its header's longest piece; a text column its longest word (up to
    ``WORD_LEAST``; with ``fold``, up to ``TEXT_LEAST``), from 8, or its natural width
    when less."""
    if col.numeric:
        return max([*map(cell_len, header_pieces(col.header)), *(text_width(c) for c in cells)])
    word = min(longest_word(col, cells), TEXT_LEAST if fold else WORD_LEAST)
    return min(natural_width(col, cells), max(8, word))


def table_total(widths: Sequence[int]) -> int:
    """A bordered table's width from its columns' widths."""
    return sum(widths) + BORDER * len(widths) + 1


def layout(
    cols: Sequence[Col], cells: Sequence[Sequence[str]], width: int | None, title: str = ""
) -> Layout:
    """Fit columns into ``width`` (``None``: no limit, every column at its natural
    width). Lowest-priority columns are hidden until the rest fit at their least widths
    (words whole, else folded when whole words would hide an ``ESSENTIAL`` column); the
    room left widens, evenly, text columns to their longest word, then numeric
    columns to their whole header, then text to its full length; last, the table is
    widened to its title where the width allows."""
    by_col = [[row[i] for row in cells] for i in range(len(cols))]
    natural = [natural_width(c, v) for c, v in zip(cols, by_col, strict=True)]
    if width is None:
        widths = _stretch(list(natural), cols, cell_len(title) - table_total(natural))
        return Layout(tuple(range(len(cols))), tuple(widths), ())
    for fold in (False, True):  # words whole, unless that hides an essential column
        least = [least_width(c, v, fold) for c, v in zip(cols, by_col, strict=True)]
        shown = _fit_columns(cols, least, width, 0 if fold else ESSENTIAL)
        if table_total([least[i] for i in shown]) <= width:
            break
    widths = [least[i] for i in shown]
    room = width - table_total(widths)
    words = [longest_word(c, v) for c, v in zip(cols, by_col, strict=True)]
    for stage in (  # widen text to its longest word, then whole headers, then full text
        [min(natural[i], words[i]) if not cols[i].numeric else 0 for i in shown],
        [natural[i] if cols[i].numeric else 0 for i in shown],
        [natural[i] for i in shown],
    ):
        room = _widen(widths, stage, room)
    text = [j for j, i in enumerate(shown) if not cols[i].numeric]
    while room < 0 and any(widths[j] > 1 for j in text):  # still too wide: fold text further
        j = max(text, key=lambda j: widths[j])
        widths[j] -= 1
        room += 1
    stretch = min(width, cell_len(title)) - table_total(widths)
    widths = _stretch(widths, [cols[i] for i in shown], stretch)
    hidden = tuple(cols[i].header for i in range(len(cols)) if i not in shown)
    return Layout(tuple(shown), tuple(widths), hidden)


def _fit_columns(cols: Sequence[Col], least: Sequence[int], width: int, keep: int) -> list[int]:
    """The columns shown: all, less the lowest-priority ones (never those of priority
    ``keep`` or less, nor 0) until the rest fit ``width`` at their ``least`` widths."""
    shown = list(range(len(cols)))
    drop = sorted(
        (i for i, c in enumerate(cols) if c.priority > max(keep, 0)),
        key=lambda i: (-cols[i].priority, -i),
    )
    while drop and table_total([least[i] for i in shown]) > width:
        shown.remove(drop.pop(0))
    return shown


def _widen(widths: list[int], targets: Sequence[int], room: int) -> int:
    """Widen ``widths`` in place towards ``targets``, one character each in turn, with
    at most ``room`` in all; returns the room left."""
    while room > 0:
        short = [j for j, w in enumerate(widths) if w < targets[j]][:room]
        if not short:
            break
        for j in short:
            widths[j] += 1
        room -= len(short)
    return room


def _stretch(widths: list[int], cols: Sequence[Col], extra: int) -> list[int]:
    """Widen the last text column (else the last column) by ``extra``."""
    text = [j for j, c in enumerate(cols) if not c.numeric]
    if cols and extra > 0:
        widths[text[-1] if text else len(cols) - 1] += extra
    return widths


def fitted_table(
    title: str,
    cols: Sequence[Col],
    rows: Sequence[Sequence[str | Text]],
    width: int | None,
    **options: Any,
) -> Table:
    """A rich table whose columns fit ``width`` (``None``: wide, every column at full
    width), by ``layout``; cells are plain text or ``Text`` (for styles), never markup.
    Hidden columns are named in the caption, with ``--wide`` to show them."""
    cells = [[c.plain if isinstance(c, Text) else c for c in row] for row in rows]
    fit = layout(cols, cells, width, title)
    caption = None
    if fit.hidden:
        caption = f"not shown, to fit {width} columns: {', '.join(fit.hidden)} (--wide shows them)"
    table = Table(title=title, caption=caption, **options)
    for i, w in zip(fit.shown, fit.widths, strict=True):
        col = cols[i]
        header = header_lines(col.header, w) if col.numeric else col.header
        table.add_column(
            Text(header),
            justify="right" if col.numeric else "left",
            width=w,
            no_wrap=col.numeric,
            overflow="fold",
        )
    for row in rows:
        table.add_row(*(_text(row[i]) for i in fit.shown))
    return table


def _text(cell: str | Text) -> Text:
    return cell if isinstance(cell, Text) else Text(cell)


def print_table(out: Console, table: Table) -> None:
    """Print ``table`` whole: a table wider than ``out`` (``--wide``) is written at its
    own width, its lines longer than the terminal's, rather than squeezed into it."""
    need = Measurement.get(out, out.options.update(width=1 << 16), table).maximum
    if need <= out.width:
        out.print(table)
        return
    lines = out.render_lines(table, out.options.update(width=need), pad=False, new_lines=True)
    out.print(Segments([segment for line in lines for segment in line]), crop=False)


class Speed(TextColumn):
    """Items per second of a task."""

    def __init__(self, unit: str = "img/s") -> None:
        super().__init__("")
        self.unit = unit

    def render(self, task: Any) -> Text:
        return Text(f"{task.speed:,.0f} {self.unit}" if task.speed else "")


def progress_bar(speed: str | None = None) -> Progress:
    """A progress display on stderr; ``speed`` adds an items-per-second column."""
    columns: list[Any] = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn()]
    if speed:
        columns += [TaskProgressColumn(), Speed(speed), TimeRemainingColumn()]
    else:
        columns.append(TimeElapsedColumn())
    return Progress(*columns, console=stderr, transient=False)


def int_list(ctx: click.Context, param: click.Parameter, value: str | None) -> list[int] | None:
    """A click callback: ``8,16,32`` (or ``[8, 16, 32]``) as positive integers."""
    if value is None:
        return None
    try:
        values = [int(v) for v in value.replace(" ", "").strip("[]").split(",") if v]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got '{value}'") from None
    if not values or min(values) < 1:
        raise click.BadParameter("expected positive integers")
    return values


def emit_json(obj: dict[str, Any]) -> None:
    """One JSON object as the last line of stdout (NaN as null)."""
    clean = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in obj.items()}
    click.echo(json.dumps(clean))
