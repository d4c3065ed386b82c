"""The terminal, shared by the CLI and the commands plugins add: the two rich consoles,
progress bars, and click helpers (integer lists, a JSON summary line)."""

from __future__ import annotations

import json
import math
import sys
from typing import Any

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

# Wide tables in logs and pipes; a terminal's own width when there is one.
console = Console(width=None if sys.stdout.isatty() else 160)
stderr = Console(stderr=True, soft_wrap=True)


class Speed(TextColumn):
    """Items per second of a task."""

    def __init__(self, unit: str = "img/s") -> None:
        super().__init__("")
        self.unit = unit

    def render(self, task: Any) -> Text:  # type: ignore[override]
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
