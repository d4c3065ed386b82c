"""The example plugin's own speed tracking: its cells under pytest-benchmark through
mrlbench's ``mrlbench_cell`` fixture (README: "Tracking a plugin's speed")."""

from __future__ import annotations

from pathlib import Path

CONFIG = Path(__file__).resolve().parents[1] / "example.toml"


def test_adaptive_on_numpy_exact(mrlbench_cell):
    row = mrlbench_cell(CONFIG, encoder="blobs", backend="numpy-exact", strategy="adaptive")
    assert row["status"] == "ok" and row["label"] == "adaptive 8->64 @100"
    assert row["mAP@10"] > 0.5 and row["mflops_per_query"] > 0


def test_flat_at_64_dims_on_numpy_exact(mrlbench_cell):
    row = mrlbench_cell(CONFIG, backend="numpy-exact", strategy="flat", label="flat@64")
    assert row["status"] == "ok" and row["top1"] > 0.5
