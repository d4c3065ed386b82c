"""Run a command and measure its peak anonymous memory: the largest sum of ``RssAnon``
over the process tree, sampled every 50 ms from ``/proc`` (file-backed pages of
memory-mapped arrays are the page cache's, not the process's, and are not counted).

    python benchmarks/peak_memory.py --json OUT.json -- mrlbench run CONFIG

Prints the peak and the wall-clock time and, with ``--json``, writes them to OUT.json;
exits with the command's exit code."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(c) for c in text.split()]


def anon_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_anon_kib(root: int) -> int:
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += anon_kib(pid)
        stack += children(pid)
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="Write {peak_anon_gib, seconds} here.")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    start = time.perf_counter()
    proc = subprocess.Popen(command)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, tree_anon_kib(proc.pid))
        time.sleep(0.05)
    seconds = time.perf_counter() - start
    result = {"command": command, "peak_anon_gib": peak / 2**20, "seconds": seconds}
    print(f"peak anonymous memory {peak / 2**20:.2f} GiB, {seconds:.0f} s: {' '.join(command)}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
