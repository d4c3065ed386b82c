"""Performance suite: each group times mrlbench against the reference pipeline's own
algorithm (re-created here) on the same data; the speed-ups are printed at the end,
written to ``.benchmarks/speedups.json``, and the run fails below the targets."""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # reference_pipeline.py, shared with the tests

# group: (baseline impl, mrlbench impl, minimum speed-up baseline_time / mrlbench_time)
TARGETS = {
    "funnel-rerank": ("reference-loop", "mrlbench", 10.0),
    "adaptive-rerank": ("reference-loop", "mrlbench", 2.0),
    "metrics": ("reference-loop", "mrlbench", 20.0),
    "search-2048d": ("raw-faiss", "mrlbench", 1 / 1.10),  # within 10% of raw FAISS
    "search-16d": ("raw-faiss", "mrlbench", 1 / 1.10),
    "neighbour-files": ("reference-csv", "mrlbench-npy", 20.0),
    "encode-resnet50-cpu": ("plain-fp32-nchw", "mrlbench", 1.5),
}
TIMES: dict[tuple[str, str], float] = {}


@pytest.fixture
def record():
    """``record(group, impl, benchmark)`` after a benchmark ran: keep its best time."""

    def keep(group: str, impl: str, benchmark) -> None:
        TIMES[(group, impl)] = benchmark.stats.stats.min

    return keep


def speedups() -> dict[str, dict]:
    out = {}
    for group, (base, ours, target) in TARGETS.items():
        if (group, base) in TIMES and (group, ours) in TIMES:
            ratio = TIMES[(group, base)] / TIMES[(group, ours)]
            out[group] = {
                "baseline_s": TIMES[(group, base)],
                "mrlbench_s": TIMES[(group, ours)],
                "speedup": ratio,
                "target": target,
                "met": ratio >= target,
            }
    return out


def pytest_terminal_summary(terminalreporter):
    results = speedups()
    if not results:
        return
    terminalreporter.section("speed-ups against the reference (best times)")
    for group, r in results.items():
        terminalreporter.write_line(
            f"{group:18s} baseline {r['baseline_s']:9.4f} s  mrlbench {r['mrlbench_s']:9.4f} s"
            f"  x{r['speedup']:7.2f}  target x{r['target']:.2f}  {'ok' if r['met'] else 'MISSED'}"
        )
    path = ROOT / ".benchmarks" / "speedups.json"
    path.parent.mkdir(exist_ok=True)
    machine = {
        "machine": platform.machine(),
        "processor": platform.processor(),
        "python": platform.python_version(),
    }
    path.write_text(json.dumps({"machine": machine, "groups": results}, indent=2))


def pytest_sessionfinish(session, exitstatus):
    if any(not r["met"] for r in speedups().values()):
        session.exitstatus = 1
