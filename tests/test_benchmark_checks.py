"""The performance suite's own checks, without timing anything: a speed target whose
group has no time fails the run (``benchmarks/speed_targets.py``, run through pytest on
a copy of ``benchmarks/`` with fixed seconds), and the result checks the benchmarks
apply before a time counts (``tests/reference_pipeline.py``)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from reference_pipeline import (
    assert_same_funnel_up_to_ties,
    assert_same_neighbours_up_to_ties,
    reference_rerank,
)
from sklearn.preprocessing import normalize

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from speed_targets import TARGETS, Target, missing, speedups  # noqa: E402

ONE = {"files": Target("test_files.py", "files", "csv", "npy", 10.0)}
PRESENT = {"test_files.py"}


def test_every_target_names_a_benchmark_file_of_the_suite():
    present = {p.name for p in (ROOT / "benchmarks").glob("test_*.py")}
    assert missing({}, set(), present) == []  # nothing selected: nothing expected
    assert {t.module for t in TARGETS.values()} <= present


def test_a_target_of_a_file_that_ran_needs_both_times():
    times = {("files", "csv"): 1.0, ("files", "npy"): 0.05}
    assert missing(times, PRESENT, PRESENT, ONE) == []
    assert speedups(times, ONE)["files"]["speedup"] == pytest.approx(20.0)
    assert speedups(times, ONE)["files"]["met"]
    renamed = {("files-v2", "csv"): 1.0, ("files-v2", "npy"): 0.05}
    (line,) = missing(renamed, PRESENT, PRESENT, ONE)
    assert "no time for csv and npy in group 'files'" in line
    assert speedups(renamed, ONE) == {}  # what the run used to drop silently
    (line,) = missing({("files", "csv"): 1.0}, PRESENT, PRESENT, ONE)  # one side skipped
    assert "no time for npy" in line
    assert missing({}, set(), PRESENT, ONE) == []  # its file not chosen to run
    (line,) = missing({}, set(), set(), ONE)  # its file renamed away
    assert "test_files.py does not exist" in line


FAKE = """
import pytest

@pytest.mark.parametrize("impl", ["reference-csv", "mrlbench-npy"])
def test_write_and_read(benchmark, record, impl):
    benchmark.group = {group!r}
    benchmark.pedantic(lambda: None, rounds=1)
    if impl == {skip!r}:
        pytest.skip("not on this machine")
    record({group!r}, impl, {{"reference-csv": 1.0, "mrlbench-npy": {ours}}}[impl])
"""


def run_suite(tmp_path: Path, group="neighbour-files", skip="", ours=0.01, drop=None, args=()):
    """pytest on a copy of benchmarks/ whose neighbour-file benchmark records fixed seconds."""
    copy = tmp_path / "benchmarks"
    shutil.copytree(ROOT / "benchmarks", copy, ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "tests").mkdir()
    shutil.copy(ROOT / "tests" / "reference_pipeline.py", tmp_path / "tests")
    if drop:
        (copy / drop).unlink()
    if ours is not None:
        (copy / "test_neighbour_files.py").write_text(
            FAKE.format(group=group, skip=skip, ours=ours)
        )
    command = [sys.executable, "-m", "pytest", str(copy / "test_neighbour_files.py"), "-q"]
    command += ["-p", "no:cacheprovider", "-p", "no:mrlbench", *args]
    return subprocess.run(command, cwd=tmp_path, capture_output=True, text=True)


def test_the_suite_passes_when_every_target_that_ran_is_met(tmp_path):
    done = run_suite(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "neighbour-files" in done.stdout and "ok" in done.stdout
    assert "without a measurement" not in done.stdout
    assert (tmp_path / ".benchmarks" / "speedups.json").is_file()


def test_a_missed_target_fails_the_suite(tmp_path):
    done = run_suite(tmp_path, ours=0.5)  # 2x against a 10x target
    assert done.returncode == 1 and "MISSED" in done.stdout, done.stdout


@pytest.mark.parametrize(
    ("change", "expect"),
    [
        ({"group": "neighbour-files-v2"}, "no time for reference-csv and mrlbench-npy"),
        ({"skip": "reference-csv"}, "no time for reference-csv in group 'neighbour-files'"),
        ({"drop": "test_encode_speed.py"}, "test_encode_speed.py does not exist"),
    ],
)
def test_a_target_without_its_times_fails_the_suite(tmp_path, change, expect):
    """A renamed group, a skipped side and a benchmark file gone all fail the run, with
    the target named, where they used to leave it out of the table and pass."""
    done = run_suite(tmp_path, **change)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "speed targets without a measurement" in done.stdout
    assert expect in done.stdout.replace("\n", " ")


def test_the_real_benchmark_with_one_side_deselected_fails(tmp_path):
    done = run_suite(tmp_path, ours=None, args=["-k", "mrlbench-npy"])
    assert done.returncode == 1, done.stdout + done.stderr
    assert "target 'neighbour-files': no time for reference-csv" in done.stdout


# ------------------------------------------------------------------------- result checks
def tied_data():
    """Database rows 0 and 1 are one vector (an exact tie for every query) and query 0
    lies next to it, so both are its nearest two at every prefix; query 1 is anywhere."""
    rng = np.random.default_rng(0)
    xb = rng.standard_normal((60, 8)).astype(np.float32)
    xb[1] = xb[0]
    xq = rng.standard_normal((2, 8)).astype(np.float32)
    xq[0] = xb[0] + 0.01 * rng.standard_normal(8).astype(np.float32)
    return xb, xq


def exact(xb, xq, dim, k):
    b, q = normalize(xb[:, :dim].astype(np.float64)), normalize(xq[:, :dim].astype(np.float64))
    return np.argsort(((q[:, None, :] - b[None]) ** 2).sum(-1), axis=1, kind="stable")[:, :k]


def swapped(ids, row, i, j):
    out = ids.copy()
    out[row, [i, j]] = out[row, [j, i]]
    return out


def test_neighbours_may_differ_only_by_ties():
    xb, xq = tied_data()
    ref = exact(xb, xq, 8, 20)
    assert set(ref[0, :2]) == {0, 1}
    assert_same_neighbours_up_to_ties(ref.copy(), ref, xb, xq, 8)
    assert_same_neighbours_up_to_ties(swapped(ref, 0, 0, 1), ref, xb, xq, 8)  # the tie
    with pytest.raises(AssertionError, match="not a tie"):  # distinct distances swapped
        assert_same_neighbours_up_to_ties(swapped(ref, 1, 2, 5), ref, xb, xq, 8)
    other = ref.copy()
    other[1, -1] = exact(xb, xq, 8, 21)[1, -1]  # the 21st neighbour for the 20th
    with pytest.raises(AssertionError, match="not a tie"):
        assert_same_neighbours_up_to_ties(other, ref, xb, xq, 8)


def test_funnel_results_may_differ_only_where_the_reference_meets_a_tie():
    xb, xq = tied_data()
    shortlist = exact(xb, xq, 2, 40)
    dims, sizes = [4, 8], [20, 10]
    ref = reference_rerank(normalize(xb), normalize(xq), True, dims, sizes, shortlist)
    assert set(ref[0, :2]) == {0, 1}
    check = [xb, xq, shortlist, dims, sizes]
    assert_same_funnel_up_to_ties(ref.copy(), ref, *check)
    assert_same_funnel_up_to_ties(swapped(ref, 0, 0, 1), ref, *check)  # the tie
    with pytest.raises(AssertionError, match="row 1 differs from the reference"):
        assert_same_funnel_up_to_ties(swapped(ref, 1, 0, 1), ref, *check)
    other = ref.copy()
    other[1, -1] = shortlist[1, -1]  # a candidate the funnel dropped
    with pytest.raises(AssertionError, match="row 1 differs from the reference"):
        assert_same_funnel_up_to_ties(other, ref, *check)
