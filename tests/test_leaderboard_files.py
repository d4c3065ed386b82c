"""Leaderboard helpers: the Pareto frontier and the written files."""

from __future__ import annotations

import csv
import json

from mrlbench.leaderboard import Row, frontier, pareto
from mrlbench.tables import write


def test_pareto_frontier_by_hand():
    # (cost, accuracy): the second is dominated by the third (cheaper and better)
    assert pareto([(1, 0.5), (4, 0.6), (2, 0.7), (8, 0.9), (8, 0.8)]) == [
        True,
        False,
        True,
        True,
        False,
    ]


def test_frontier_only_marks_single_shot_rows_per_group():
    def row(backend: str, dims: str, mflops: float, acc: float) -> Row:
        return Row("e", "d", backend, "CPU", "s", dims, dims, "", {"mAP@10": acc}, mflops)

    rows = [
        row("b", "8", 1.0, 0.5),
        row("b", "16", 2.0, 0.4),
        row("b", "8,16", 1.5, 0.9),  # adaptive
        row("b", "", 0.0, 0.1),  # no search at all
        row("c", "16", 2.0, 0.4),
    ]
    assert frontier(rows, "mAP@10") == [True, False, False, False, True]


def test_files_hold_the_same_rows(tmp_path):
    records = [
        {
            "encoder": "e",
            "dataset": "d",
            "backend": "b",
            "device": "CPU",
            "strategy": "s",
            "label": "l|x",
            "dims": "8",
            "shortlists": "10",
            "top1": 0.5,
            "mAP@10": None,
            "precision@10": 0.25,
            "recall@10": 0.1,
            "topk_acc@10": 1.0,
            "knn_recall@10": 1.0,
            "mflops_per_query": 0.1,
            "mflops_with_selection": 0.12,
            "qps": 5000.0,
            "latency_ms_p50": 0.2,
            "latency_ms_p99": 0.4,
            "latency_ms_p50_best": 0.15,
            "build_s": 0.3,
            "latency_queries": 10,
            "latency_samples": 30,
            "timing_spread": 0.05,
            "missing_ids": 0.0,
            "session": "20261208T040000Z-abc123",
            "status": "ok",
            "error": "",
        }
    ]
    write(tmp_path, [Row.from_record(rec) for rec in records], [10])
    assert json.loads((tmp_path / "leaderboard.json").read_text()) == records
    rows = list(csv.DictReader((tmp_path / "leaderboard.csv").open()))
    assert rows[0]["label"] == "l|x" and rows[0]["mAP@10"] == "" and rows[0]["top1"] == "0.5"
    md = (tmp_path / "leaderboard.md").read_text().splitlines()
    assert md[0].startswith("| encoder | dataset |") and "l\\|x" in md[2]
