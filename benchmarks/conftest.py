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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # reference_pipeline.py, shared with the tests

# name: (group, baseline impl, mrlbench impl, minimum speed-up baseline_time / ours)
TARGETS = {
    "funnel-rerank": ("funnel-rerank", "reference-loop", "mrlbench", 10.0),
    "funnel-rerank 1 thread": ("funnel-rerank", "reference-loop", "mrlbench-1thread", 5.0),
    "adaptive-rerank": ("adaptive-rerank", "reference-loop", "mrlbench", 2.0),
    "adaptive-rerank 1 thread": ("adaptive-rerank", "reference-loop", "mrlbench-1thread", 1.5),
    "metrics": ("metrics", "reference-loop", "mrlbench", 20.0),
    "metrics 1 thread": ("metrics", "reference-loop", "mrlbench-1thread", 10.0),
    "search-16d": ("search-16d", "raw-faiss", "mrlbench", 1 / 1.3),
    "search-16d 1 thread": ("search-16d-1thread", "raw-faiss", "mrlbench", 1 / 1.3),
    "search-2048d": ("search-2048d", "raw-faiss", "mrlbench", 1 / 1.3),
    "search-2048d 1 thread": ("search-2048d-1thread", "raw-faiss", "mrlbench", 1 / 1.3),
    "flat row qps (run)": ("flat-row", "raw-faiss", "mrlbench-run", 1 / 1.3),
    "flat row qps (run) 1 thread": ("flat-row-1thread", "raw-faiss", "mrlbench-run", 1 / 1.3),
    # one round each: the earlier 66x was mrlbench's best of 5 against one CSV round
    "neighbour-files": ("neighbour-files", "reference-csv", "mrlbench-npy", 10.0),
    # the baseline has the reference's loader workers; the gain is channels_last (+ bf16)
    "encode vs reference settings": (
        "encode-resnet50-cpu",
        "reference-settings",
        "mrlbench",
        1.1,
    ),
    # report only: a CPU without bf16 runs `auto` as fp32, and this line is then noise
    "encode: bf16 gain alone": ("encode-resnet50-cpu", "mrlbench-fp32", "mrlbench", None),
}
TIMES: dict[tuple[str, str], float] = {}


@pytest.fixture
def record():
    """``record(group, impl, benchmark)`` after a benchmark ran: keep its best time (or
    ``record(group, impl, seconds)`` for a time mrlbench measured itself)."""

    def keep(group: str, impl: str, benchmark) -> None:
        seconds = benchmark if isinstance(benchmark, float) else benchmark.stats.stats.min
        TIMES[(group, impl)] = seconds

    return keep


def speedups() -> dict[str, dict]:
    out = {}
    for name, (group, base, ours, target) in TARGETS.items():
        if (group, base) in TIMES and (group, ours) in TIMES:
            ratio = TIMES[(group, base)] / TIMES[(group, ours)]
            out[name] = {
                "baseline": base,
                "mrlbench": ours,
                "baseline_s": TIMES[(group, base)],
                "mrlbench_s": TIMES[(group, ours)],
                "speedup": ratio,
                "target": target,
                "met": target is None or ratio >= target,
            }
    return out


def pytest_terminal_summary(terminalreporter):
    results = speedups()
    if not results:
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
    path.write_text(json.dumps({"machine": machine, "groups": results}, indent=2))


def pytest_sessionfinish(session, exitstatus):
    if any(not r["met"] for r in speedups().values()):
        session.exitstatus = 1
