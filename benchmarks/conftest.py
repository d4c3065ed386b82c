"""Performance suite: each group times mrlbench against the reference pipeline's own
algorithm (re-created here) or raw FAISS, on the same data, with the same rounds and
warm-up on both sides. The reference loops are single-threaded Python; every such group
is run twice for mrlbench (every core, and one thread), so both ratios are shown. The
speed-ups are printed at the end, written to ``.benchmarks/speedups.json``, and the run
fails below the targets."""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path

import pytest
from speed_targets import TARGETS, missing, speedups

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))  # reference_pipeline.py, shared with the tests

TIMES: dict[tuple[str, str], float] = {}
SELECTED: set[str] = set()


@pytest.fixture
def record():
    """``record(group, impl, benchmark)`` after a benchmark ran: keep its best time (or
    ``record(group, impl, seconds)`` for a time mrlbench measured itself)."""

    def keep(group: str, impl: str, benchmark) -> None:
        seconds = benchmark if isinstance(benchmark, float) else benchmark.stats.stats.min
        TIMES[(group, impl)] = seconds

    return keep


def pytest_collection_finish(session):
    """The benchmark files with a test chosen to run: their targets must get both times."""
    SELECTED.update(item.path.name for item in session.items if item.path.parent == HERE)


def absent(config) -> list[str]:
    """``speed_targets.missing`` for this session (nothing under ``--collect-only``)."""
    if config.option.collectonly:
        return []
    present = {path.name for path in HERE.glob("test_*.py")}
    return missing(TIMES, SELECTED, present, TARGETS)


def pytest_terminal_summary(terminalreporter, config):
    results = speedups(TIMES, TARGETS)
    lines = absent(config)
    if lines:
        terminalreporter.section("speed targets without a measurement (the run fails)")
        for line in lines:
            terminalreporter.write_line(line)
    if not results and not lines:
        return
    terminalreporter.section("speed-ups (best times, same rounds and warm-up on both sides)")
    for name, r in results.items():
        terminalreporter.write_line(
            f"{name:30s} {r['baseline']:>18s} {r['baseline_s']:9.4f} s  "
            f"{r['mrlbench']:>16s} {r['mrlbench_s']:9.4f} s  x{r['speedup']:7.2f}  "
            + (
                f"target x{r['target']:.2f}  {'ok' if r['met'] else 'MISSED'}"
                if r["target"] is not None
                else "(reported only)"
            )
        )
    path = ROOT / ".benchmarks" / "speedups.json"
    path.parent.mkdir(exist_ok=True)
    machine = {
        "machine": platform.machine(),
        "processor": platform.processor(),
        "python": platform.python_version(),
    }
    report = {"machine": machine, "groups": results, "missing": lines}
    path.write_text(json.dumps(report, indent=2))


def pytest_sessionfinish(session, exitstatus):
    if absent(session.config) or any(not r["met"] for r in speedups(TIMES, TARGETS).values()):
        session.exitstatus = 1
