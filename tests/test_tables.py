"""Terminal tables fit their width: labels wrap (never cut), numbers keep every digit,
columns that cannot fit are hidden and named, ``--wide`` shows everything; ``mrlbench
plugins NAME`` documents a component's keys; every CLI option has help."""

from __future__ import annotations

import io
import re
from pathlib import Path

import click
import numpy as np
import pytest
from rich.console import Console

from mrlbench import console as term
from mrlbench import describe, run_directory, tables
from mrlbench import leaderboard as lb
from mrlbench.cli import cli as cli_group
from mrlbench.console import Col, fitted_table, layout, output_width
from mrlbench.plugins import load, pm

KS = (10, 25, 50, 100)


@pytest.fixture
def demo(quick_demo) -> Path:
    """A finished run of the built-in demo (``--quick``, once per session)."""
    return quick_demo[0]


def rendered(draw, width: int) -> str:
    """What ``draw(console)`` prints on a ``width``-column console, as plain text."""
    out = Console(width=width, record=True, file=io.StringIO())
    draw(out)
    return out.export_text()


def assert_fits(text: str, width: int) -> None:
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= width
    assert "…" not in text  # nothing ellipsised


def cell_texts(text: str) -> list[str]:
    """The cells of a table's body lines (between the vertical rules)."""
    return [c.strip() for line in text.splitlines() if "│" in line for c in line.split("│")]


# --------------------------------------------------------------------------- layout
def test_numbers_are_never_cut_and_text_folds():
    cols = [Col("label"), Col("mAP@10", numeric=True), Col("latency_ms_p50", numeric=True)]
    rows = [["funnel 8->16,32,64,128,256 @200,100,50,25,10", "0.8572", "1234.5678"]]
    fit = layout(cols, rows, 40)
    assert fit.hidden == ()
    label, score, latency = fit.widths
    assert score >= 6 and latency >= 9  # every digit
    assert label < 44  # the label folds instead
    assert sum(fit.widths) + 3 * 3 + 1 <= 40


def test_lowest_priority_columns_are_hidden_first():
    cols = [
        Col("label"),
        Col("top1", True, priority=2),
        Col("mAP@10", True, priority=1),
        Col("recall@10", True, priority=40),
        Col("recall@100", True, priority=41),
    ]
    rows = [["flat@8", "0.8970", "0.8572", "0.0015", "0.0146"]]
    assert layout(cols, rows, 200).hidden == ()
    assert layout(cols, rows, 40).hidden == ("recall@100",)
    assert layout(cols, rows, 36).hidden == ("recall@10", "recall@100")
    assert layout(cols, rows, 20).hidden == ("top1", "recall@10", "recall@100")
    assert layout(cols, rows, None).widths == (6, 6, 6, 9, 10)  # wide: natural widths


def test_long_numeric_headers_break_at_underscores():
    assert term.header_lines("latency_ms_p50", 8) == "latency_\nms_p50"
    assert term.header_lines("mflops_per_query", 9) == "mflops_\nper_query"
    assert term.header_lines("qps", 3) == "qps"


def test_hidden_columns_are_named_with_the_wide_hint():
    cols = [Col("label"), Col("a" * 30, True, priority=5), Col("b", True, priority=1)]
    text = rendered(
        lambda c: term.print_table(c, fitted_table("t", cols, [["x", "1", "2"]], 30)), 30
    )
    assert_fits(text, 30)
    assert "not shown" in text and "aaaa" in text and "--wide" in " ".join(text.split())


def test_output_width_follows_columns_else_a_fixed_width_for_pipes():
    assert output_width({"COLUMNS": "87"}, tty=False) == 87
    assert output_width({"COLUMNS": "87"}, tty=True) == 87
    assert output_width({}, tty=False) == term.PIPE_WIDTH
    assert 100 <= term.PIPE_WIDTH <= 120
    assert output_width({}, tty=True) is None  # rich measures the terminal


# ------------------------------------------------------------------ the run's tables
@pytest.mark.parametrize("width", [110, 80])
def test_run_tables_fit_and_keep_labels_apart(demo, width):
    rows = run_directory.load(demo)
    text = rendered(lambda c: tables.show(c, rows, KS), width)
    assert_fits(text, width)
    cells = cell_texts(text)
    assert "flat@8" in cells and "flat@256" in cells  # whole, and told apart
    assert "ff256-truncated" in cells or width < 100
    accuracy, cost = text.split("Cost (")
    scores = [c for c in cell_texts(accuracy) if re.fullmatch(r"0\.\d+", c)]
    assert scores and all(len(c) == 6 for c in scores)  # four digits each
    for row in rows:  # every value whole, as the leaderboard formats it
        assert lb.fmt(row.mflops_per_query, "mflops_per_query") in cell_texts(cost)
        assert lb.fmt(row.value("mAP@10"), "mAP@10") in cell_texts(accuracy)
    assert "mAP@10" in text and "top1" in text
    assert "--wide shows them" in " ".join(text.split())


def test_run_tables_wide_show_every_column(demo):
    rows = run_directory.load(demo)
    text = rendered(lambda c: tables.show(c, rows, KS, wide=True), 110)
    assert "not shown" not in text
    flat = " ".join(text.split())
    for name in ("recall@100", "latency_ms_p99", "build_s", "device", "status"):
        assert name in flat
    assert "funnel 8->16,32,64,128,256 @200,100,50,25,10" in text  # one line, unwrapped
    assert max(len(line) for line in text.splitlines()) > 110


@pytest.mark.parametrize("width", ["110", "80"])
def test_compare_fits_the_terminal(cli, monkeypatch, demo, width):
    monkeypatch.setenv("COLUMNS", width)
    r = cli("compare", demo, demo)
    assert r.code == 0, r.err
    assert_fits(r.out, int(width))
    cells = cell_texts(r.out)
    assert "flat@8" in cells and "flat@256" in cells
    assert "+0.0000" in cells  # differences keep four digits
    assert "mAP@10" in r.out
    if width == "110":
        assert "latency_" in r.out and "qps" in r.out and "not shown" not in r.out


def test_compare_wide_every_metric_unsqueezed(cli, monkeypatch, demo):
    monkeypatch.setenv("COLUMNS", "80")
    r = cli("compare", demo, demo, "--wide")
    assert r.code == 0, r.err
    assert "recall@100" in r.out and "precision@10" in r.out and "not shown" not in r.out
    assert "…" not in r.out


def test_plugins_list_fits(cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "60")
    r = cli("plugins")
    assert r.code == 0
    assert_fits(r.out, 60)
    assert "faiss-exact" in cell_texts(r.out)


def test_metrics_table_fits(cli, arrays, tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "50")
    nn = tmp_path / "exactl2_8dim_10shortlist_1K.npy"
    np.save(nn, np.zeros((len(arrays.xq), 10), np.int64))
    args = ["metrics", "--arrays", arrays.folder, "--config", arrays.config, "--neighbors", nn]
    r = cli(*args, "--ks", "10")
    assert r.code == 0, r.err
    assert_fits(r.out, 50)
    assert "mAP@10" in cell_texts(r.out)
    r = cli(*args, "--ks", "10", "--wide")
    assert r.code == 0 and "exactl2_8dim_10shortlist_1K.npy" in r.out  # the title whole


# ----------------------------------------------------------------- plugins NAME
def test_plugins_name_shows_keys_defaults_and_descriptions(cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "120")
    r = cli("plugins", "funnel")
    assert r.code == 0, r.err
    assert "strategy" in r.out and "Funnel retrieval" in r.out
    rows = {line.split("│")[1].strip(): line for line in r.out.splitlines() if "│" in line}
    assert set(rows) >= {"shortlist_dim", "rerank_dims", "shortlists"}
    assert "│ 8 " in rows["shortlist_dim"] and "Prefix size" in rows["shortlist_dim"]

    r = cli("plugins", "resnet50-mrl")  # its own keys, then those **kwargs passes on
    keys = {line.split("│")[1].strip() for line in r.out.splitlines() if "│" in line}
    assert {"checkpoint", "kind", "dataset", "arch", "cache"} <= keys
    assert "required" in r.out and '"resnet50"' in r.out


@pytest.mark.parametrize("name, near", [("fnnel", "funnel"), ("hnsw", "faiss-hnsw")])
def test_plugins_unknown_name_is_one_error_with_close_matches(cli, name, near):
    r = cli("plugins", name)
    assert r.code == 2 and "Traceback" not in r.err
    errors = [line for line in r.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and name in errors[0] and near in errors[0]


def test_every_builtin_component_documents_every_key(registry):
    for item in registry.all():
        if item.source != "mrlbench":
            continue  # third-party components are their authors'
        about = describe.describe(item.cls)
        assert about.summary, item.cls.name
        undocumented = [k.name for k in about.keys if not k.description]
        assert not undocumented, (item.cls.name, undocumented)


def test_key_docs_read_google_numpy_and_plain_lines():
    class Thing:
        """A thing.

        Args:
            alpha (int): The first
                key.
            beta: The second.

        Parameters
        ----------
        gamma : float
            The third.
        """

        def __init__(self, alpha: int, beta: str = "b", gamma: float = 0.5, delta=None):
            """delta: plain line in ``__init__``."""

    about = describe.describe(Thing)
    docs = {k.name: k.description for k in about.keys}
    assert docs == {
        "alpha": "The first key.",
        "beta": "The second.",
        "gamma": "The third.",
        "delta": "plain line in `__init__`.",
    }
    defaults = {k.name: (k.required, k.default) for k in about.keys}
    assert defaults == {
        "alpha": (True, ""),
        "beta": (False, '"b"'),
        "gamma": (False, "0.5"),
        "delta": (False, "unset"),
    }
    assert about.summary == "A thing."


# ------------------------------------------------------------------------ help texts
def test_every_option_of_every_command_has_help():
    load()
    pm.hook.mrlbench_register_commands(cli=cli_group)
    missing = []

    def walk(command: click.Command, path: str) -> None:
        for param in command.params:
            if isinstance(param, click.Option) and not (param.help or "").strip():
                missing.append(f"{path} {param.opts[0]}")
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, f"{path} {name}")

    walk(cli_group, "mrlbench")
    assert {"run", "compare", "plugins", "metrics", "search", "train"} <= set(cli_group.commands)
    assert not missing, missing
