"""The suite's speed targets, and the two checks the run applies to them (pure functions,
tested in ``tests/test_benchmark_checks.py`` without timing anything): each target's
speed-up against its minimum, and that every target whose benchmark file ran got both
of its times. A target whose group is renamed, skipped or fails, or whose file is gone,
fails the run instead of dropping out of the table."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    """``baseline`` time over ``mrlbench`` time in ``group`` (timed in ``module``) must be
    at least ``minimum``; ``None``: the ratio is reported only."""

    module: str
    group: str
    baseline: str
    mrlbench: str
    minimum: float | None


def _in(module: str, *rows: tuple) -> dict[str, Target]:
    """The targets timed in one benchmark file: (name, group, baseline, mrlbench, minimum)."""
    return {name: Target(module, *rest) for name, *rest in rows}


# name: (group, baseline impl, mrlbench impl, minimum speed-up baseline_time / ours)
TARGETS = {
    **_in(
        "test_rerank_speed.py",
        ("funnel-rerank", "funnel-rerank", "reference-loop", "mrlbench", 10.0),
        ("funnel-rerank 1 thread", "funnel-rerank", "reference-loop", "mrlbench-1thread", 5.0),
        ("adaptive-rerank", "adaptive-rerank", "reference-loop", "mrlbench", 2.0),
        ("adaptive-rerank 1 thread", "adaptive-rerank", "reference-loop", "mrlbench-1thread", 1.5),
    ),
    **_in(
        "test_metrics_speed.py",
        ("metrics", "metrics", "reference-loop", "mrlbench", 20.0),
        ("metrics 1 thread", "metrics", "reference-loop", "mrlbench-1thread", 10.0),
        # end to end from the command line, start-up included (BENCHMARKS.md: what bounds it)
        ("metrics command line", "metrics-cli", "notebook", "mrlbench-cli", 20.0),
        ("metrics command line, CSV", "metrics-cli-csv", "notebook-csv", "mrlbench-cli", None),
    ),
    **_in(
        "test_search_speed.py",
        ("search-16d", "search-16d", "raw-faiss", "mrlbench", 1 / 1.3),
        ("search-16d 1 thread", "search-16d-1thread", "raw-faiss", "mrlbench", 1 / 1.3),
        ("search-2048d", "search-2048d", "raw-faiss", "mrlbench", 1 / 1.3),
        ("search-2048d 1 thread", "search-2048d-1thread", "raw-faiss", "mrlbench", 1 / 1.3),
        ("flat row qps (run)", "flat-row", "raw-faiss", "mrlbench-run", 1 / 1.3),
        ("flat row qps (run) 1 thread", "flat-row-1thread", "raw-faiss", "mrlbench-run", 1 / 1.3),
    ),
    **_in(
        "test_neighbour_files.py",
        # one round each: the earlier 66x was mrlbench's best of 5 against one CSV round
        ("neighbour-files", "neighbour-files", "reference-csv", "mrlbench-npy", 10.0),
    ),
    **_in(
        "test_encode_speed.py",
        # the baseline has the reference's loader workers; the gain is channels_last (+ bf16)
        (
            "encode vs reference settings",
            "encode-resnet50-cpu",
            "reference-settings",
            "mrlbench",
            1.1,
        ),
        # report only: a CPU without bf16 runs `auto` as fp32, and this line is then noise
        ("encode: bf16 gain alone", "encode-resnet50-cpu", "mrlbench-fp32", "mrlbench", None),
    ),
}

Times = Mapping[tuple[str, str], float]


def speedups(times: Times, targets: Mapping[str, Target] = TARGETS) -> dict[str, dict]:
    """Each target with both of its times: the times, the ratio and whether it is met."""
    out = {}
    for name, t in targets.items():
        if (t.group, t.baseline) in times and (t.group, t.mrlbench) in times:
            ratio = times[(t.group, t.baseline)] / times[(t.group, t.mrlbench)]
            out[name] = {
                "baseline": t.baseline,
                "mrlbench": t.mrlbench,
                "baseline_s": times[(t.group, t.baseline)],
                "mrlbench_s": times[(t.group, t.mrlbench)],
                "speedup": ratio,
                "target": t.minimum,
                "met": t.minimum is None or ratio >= t.minimum,
            }
    return out


def missing(
    times: Times,
    selected: Collection[str],
    present: Collection[str],
    targets: Mapping[str, Target] = TARGETS,
) -> list[str]:
    """One line per target that should have a speed-up and has none: its benchmark file
    is not in ``present`` (the suite's files), or it is in ``selected`` (files with a
    test chosen to run) but a time of its group is absent (the group renamed, the test
    skipped or failed). Targets of files not chosen (``pytest benchmarks/one.py``) are
    not expected."""
    lines = []
    for name, t in targets.items():
        if t.module not in present:
            lines.append(f"target '{name}': its benchmark file {t.module} does not exist")
            continue
        if t.module not in selected:
            continue
        absent = [impl for impl in (t.baseline, t.mrlbench) if (t.group, impl) not in times]
        if absent:
            lines.append(
                f"target '{name}': no time for {' and '.join(absent)} in group '{t.group}' "
                f"({t.module} ran: the group renamed, or its test skipped or failed?)"
            )
    return lines
