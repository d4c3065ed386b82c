"""The ``mrlbench`` command line. Errors are one line on stderr; ``--debug`` shows tracebacks."""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

import click
from rich.markup import escape
from rich.progress import Progress
from rich.table import Table

from mrlbench import __version__, compare, config, describe, preflight, run_directory, tables
from mrlbench.console import (
    Col,
    console,
    fitted_table,
    print_table,
    progress_bar,
    refresh_width,
    stderr,
)
from mrlbench.demo import DEFAULT_CONFIG, QUICK_CONFIG
from mrlbench.errors import ConfigError, MrlbenchError
from mrlbench.leaderboard import LATENCY
from mrlbench.leaderboard import headline as lb_headline
from mrlbench.plugins import PLUGINS_DIR_ENV, Registered, load, pm, registry
from mrlbench.types import Observer

DEBUG = {"on": False}
WIDE_HELP = "Tables at full width, every column (lines may be longer than the terminal)."


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mrlbench")
@click.option(
    "--plugins-dir", type=click.Path(), help=f"Folder of one-file plugins (also {PLUGINS_DIR_ENV})."
)
@click.option("--debug", is_flag=True, help="Show tracebacks.")
def cli(plugins_dir: str | None, debug: bool) -> None:
    """Benchmark Matryoshka (MRL) embedding retrieval: accuracy, MFLOPs and latency."""


class RichObserver(Observer):
    def __init__(self, progress: Progress, cells: int | None) -> None:
        self.progress = progress
        self.cells = progress.add_task("cells", total=cells)
        self.current = progress.add_task("", total=1)

    def begin(self, what: str, total: int) -> None:
        self.progress.update(self.current, description=what, total=max(total, 1), completed=0)

    def advance(self, steps: int = 1) -> None:
        self.progress.advance(self.current, steps)

    def cell_done(self) -> None:
        self.progress.advance(self.cells)


@cli.command()
@click.argument("config_file", metavar="[CONFIG.toml]", required=False, type=click.Path())
@click.option("--out", type=click.Path(), help="Run directory (overrides [run] out).")
@click.option("--csv", "csv_", is_flag=True, help="Also write the reference CSV neighbour files.")
@click.option(
    "--print-config",
    is_flag=True,
    help="Print the config (the built-in one without CONFIG) as TOML and exit.",
)
@click.option("--quick", is_flag=True, help="The built-in demo on a small subset (for CI).")
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    help="Threads for every stage (overrides [run] threads; default every core). "
    "--threads 1 gives ann-benchmarks-style single-thread timings.",
)
@click.option("--wide", is_flag=True, help=WIDE_HELP)
def run(
    config_file: str | None,
    out: str | None,
    csv_: bool,
    print_config: bool,
    quick: bool,
    threads: int | None,
    wide: bool,
) -> None:
    """Run every encoder x backend x strategy and write the leaderboards.

    Without CONFIG: the built-in demo (see --print-config)."""
    if config_file is None:
        text = QUICK_CONFIG if quick else DEFAULT_CONFIG
        raw = config.parse_toml(text, "the built-in config")
        if print_config:
            click.echo(text, nl=False)
            return
    else:
        raw = config.read_toml(config_file)
        if print_config:
            click.echo(Path(config_file).read_text(), nl=False)
            return
    if csv_:
        raw.setdefault("run", {})["csv"] = True
    base = None if config_file is None else Path(config_file).parent
    cfg = config.build(raw, registry(), out, threads, base)
    cells = len(cfg.encoders) * len(cfg.backends) * len(cfg.strategies)
    preflight.check(cfg)  # before the progress bars: a fault is one line
    with progress_bar() as progress:
        done = run_directory.execute(cfg, RichObserver(progress, cells), checked=True)
    tables.show(console, done.rows, cfg.ks, wide=wide)
    console.print(f"leaderboards written to {cfg.out}/leaderboard.(csv|json|md)")
    if done.report is not None:
        console.print(f"report written to {done.report}", highlight=False)
    if any(r.status == "failed" for r in done.rows):
        raise SystemExit(1)


@cli.command(name="report")
@click.argument("run_dir", type=click.Path())
def report_command(run_dir: str) -> None:
    """Write RUN_DIR/report.html and the plots from a finished run."""
    path = run_directory.redraw(run_dir, registry())
    if path is not None:
        console.print(f"report written to {path}", highlight=False)


@cli.command(name="compare")
@click.argument("run_a", type=click.Path())
@click.argument("run_b", type=click.Path())
@click.option(
    "--fail-on-regression",
    "accuracy",
    type=float,
    default=None,
    help="Exit 1 if an accuracy metric drops by more than PCT percent.",
)
@click.option(
    "--latency-tolerance",
    "latency",
    type=float,
    default=None,
    help="Exit 1 if median latency or QPS worsens by more than PCT percent beyond the "
    "timing noise both runs recorded (their timing_spread).",
)
@click.option(
    "--wide",
    is_flag=True,
    help="Show every accuracy column, not only top-1 and the headline, at full width "
    "(nothing hidden to fit the terminal).",
)
def compare_command(
    run_a: str, run_b: str, accuracy: float | None, latency: float | None, wide: bool
) -> None:
    """Every row both runs share, with the change in accuracy and in time."""
    before, after = run_directory.load(run_a), run_directory.load(run_b)
    found = compare.changes(before, after)
    if not found:
        raise MrlbenchError(f"{run_a} and {run_b} share no ok rows")
    bad = compare.regressions(found, accuracy, latency)
    cols = [c for c in compare.columns(before) if any(ch.column == c for ch in found)]
    if not wide:
        cols = [c for c in cols if c in ("top1", compare.headline(cols)) or c in LATENCY]
    title = f"{run_a} -> {run_b} (accuracy: difference; timings: %)"
    width = None if wide else console.width
    print_table(console, tables.compare_table(title, found, cols, bad, width))
    for ch in bad:
        console.print(f"[bold red]regressed[/]: {escape(ch.describe())}", highlight=False)
    if bad:
        console.print(f"[bold red]{len(bad)} regression(s)[/]")
        raise SystemExit(1)


@cli.command()
@click.argument("config_file", metavar="CONFIG.toml", type=click.Path())
@click.option(
    "--budget-mflops",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="The most MFLOPs per query the best setting may cost.",
)
@click.option(
    "--budget-ms",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="The most median milliseconds per query (one at a time) it may take.",
)
@click.option("--out", type=click.Path(), help="Output folder (overrides [run] out).")
@click.option(
    "--sample",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="Queries in the selection split (a seeded sample, at most half of the queries) "
    "every candidate is tried and chosen on; the other queries are the report split.",
)
@click.option("--encoder", help="The config's encoder to tune for (default: the first).")
@click.option("--backend", help="The config's backend to tune for (default: the first).")
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    help="Threads for every stage (overrides [run] threads).",
)
def tune(
    config_file: str,
    budget_mflops: float | None,
    budget_ms: float | None,
    out: str | None,
    sample: int,
    encoder: str | None,
    backend: str | None,
    threads: int | None,
) -> None:
    """Search the strategies' settings within a budget: tune.csv, pareto.png, best.toml.

    Every strategy offers its candidates (Strategy.tune_candidates); they are pruned with
    the cost model, tried on a seeded selection split of the queries, where the Pareto
    front (accuracy against MFLOPs with selection and against latency) and the best
    setting are chosen; the front is reported on the disjoint report split (the other
    queries). best.toml is a complete config: mrlbench run best.toml. Exits 1 with one
    line when rows fail or nothing fits the budget. Resumable: a rerun reuses finished
    work."""
    from mrlbench import tune as tuning

    if budget_mflops is None and budget_ms is None:
        raise click.UsageError("give --budget-mflops X or --budget-ms Y (or both)")
    raw = config.read_toml(config_file)
    cfg = config.build(raw, registry(), out, threads, Path(config_file).parent)
    preflight.check(cfg)
    with progress_bar() as progress:
        observer = RichObserver(progress, None)  # two runs, sizes known as they start
        found = tuning.run(
            cfg, registry(), budget_mflops, budget_ms, sample, encoder, backend, observer
        )
    best, shown = found.best, found.reported
    if best is not None:
        metric = lb_headline(cfg.ks)
        on = f"on the report split, {found.splits[1].size} queries" if shown else "not reported"
        row = shown or best
        console.print(
            f"best within budget (chosen on the selection split, {found.splits[0].size} "
            f"queries): {escape(best.strategy)}: {on}: {metric} {row.value(metric) or 0:.4f}, "
            f"{row.mflops_per_query:.4g} MFLOPs/query, p50 {row.latency_ms_p50 or 0:.3g} ms",
            highlight=False,
        )
    console.print(
        f"{len(found.front)} front settings of {len(found.sample)} tried; "
        f"written to {found.out}/tune.csv, pareto.png"
        + (" and best.toml" if best is not None else ""),
        highlight=False,
    )
    problem = tuning.verdict(found, tuning.describe_budget(budget_mflops, budget_ms))
    if problem:
        stderr.print(f"[bold red]error:[/] {escape(problem)}", highlight=False)
        raise SystemExit(1)


@cli.command()
@click.argument("name", required=False)
@click.option("--wide", is_flag=True, help=WIDE_HELP)
def plugins(name: str | None, wide: bool) -> None:
    """List every component: name, kind, source package and whether it can run here.

    With NAME: that component's config keys, their defaults and what each does."""
    width = None if wide else console.width
    if name is None:
        print_table(console, _components_table(registry().all(), width))
        return
    found = [item for item in registry().all() if item.cls.name == name]
    if not found:
        near = describe.close_matches(name, (item.cls.name for item in registry().all()))
        names = sorted({item.cls.name for item in registry().all()})
        hint = f"did you mean: {', '.join(near)}?" if near else f"known: {', '.join(names)}"
        raise ConfigError(f"no component named '{name}' ({hint})")
    for item in found:
        about = describe.describe(item.cls)
        available, where = _availability(item)
        state = f"available here ({where})" if available == "yes" else f"unavailable: {where}"
        console.print(
            f"[bold]{escape(name)}[/]: {item.kind} from {escape(item.source)}, "
            f"{escape(state.replace(' ()', ''))}",
            highlight=False,
        )
        if about.summary:
            console.print(escape(about.summary), highlight=False)
        print_table(console, _keys_table(about, width))


def _availability(item: Registered) -> tuple[str, str]:
    """("yes" or "no", where it runs or why it cannot)."""
    reason = item.cls.availability()
    return ("no", reason) if reason else ("yes", item.cls.where())


def _components_table(items: list[Registered], width: int | None) -> Table:
    cols = [Col("name"), Col("kind"), Col("source", priority=4), Col("available")]
    rows = [[i.cls.name, i.kind, i.source, *_availability(i)] for i in items]
    return fitted_table("mrlbench components", [*cols, Col("where / reason")], rows, width)


def _keys_table(about: describe.Description, width: int | None) -> Table:
    """A component's config keys: default, type and description, a row each."""
    rows = [
        [k.name, "required" if k.required else k.default, k.type, k.description] for k in about.keys
    ]
    if about.open_ended:
        rows.append(["...", "", "", "any other key is passed on as is"])
    cols = [Col("key"), Col("default"), Col("type", priority=4), Col("description")]
    return fitted_table("", cols, rows, width)


def _preparse_plugins_dir(argv: list[str]) -> str | None:
    for i, arg in enumerate(argv):
        if arg == "--plugins-dir" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--plugins-dir="):
            return arg.split("=", 1)[1]
    return None


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    stderr.print(f"[yellow]warning:[/] {escape(str(message))}", highlight=False)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    argv = list(sys.argv[1:] if argv is None else argv)
    DEBUG["on"] = "--debug" in argv or bool(os.environ.get("MRLBENCH_DEBUG"))
    warnings.showwarning = _show_warning
    refresh_width()
    try:
        load(_preparse_plugins_dir(argv))
        pm.hook.mrlbench_register_commands(cli=cli)
        cli.main(args=argv, prog_name="mrlbench", standalone_mode=False)
    except click.exceptions.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    except click.Abort:
        stderr.print("aborted")
        raise SystemExit(130) from None
    except click.ClickException as exc:
        exc.show()
        raise SystemExit(exc.exit_code) from None
    except MrlbenchError as exc:
        if DEBUG["on"]:
            raise
        stderr.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        stderr.print("interrupted: completed work is kept; rerun to resume")
        raise SystemExit(130) from None
    except Exception as exc:
        if DEBUG["on"]:
            raise
        stderr.print(
            f"[bold red]error:[/] {type(exc).__name__}: {escape(str(exc))} "
            "(rerun with --debug for the traceback)",
            highlight=False,
        )
        raise SystemExit(1) from None
