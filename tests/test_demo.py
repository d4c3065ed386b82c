"""The main job: ``mrlbench run`` (here ``--quick``) end to end on Fashion-MNIST, models
trained once and reused, and the dataset verified by checksum."""

from __future__ import annotations

import json
import shutil

import pytest

from mrlbench.errors import DataError
from mrlbench_plugins.vision import training
from mrlbench_plugins.vision.data import FASHION_FILES, find_fashion
from mrlbench_plugins.vision.datasets import FashionMNIST


def board(out):
    return json.loads((out / "leaderboard.json").read_text())


def test_quick_demo_end_to_end(quick_demo):
    out, cache = quick_demo
    rows = board(out)
    cells = {(row["encoder"], row["backend"], row["strategy"]) for row in rows}
    assert cells == {
        (e, b, s)
        for e in ("mrl", "ff", "ff256-truncated")
        for b in ("faiss-exact", "faiss-hnsw", "ivf", "adanns-ivf")
        for s in ("flat", "adaptive", "funnel")
    }
    assert all(row["status"] == "ok" for row in rows), [r["error"] for r in rows]
    labels = {row["label"] for row in rows if row["encoder"] == "ff"}
    assert {f"flat@{d}" for d in (8, 16, 32, 64, 128, 256)} <= labels
    # trained models are real: far above chance (0.1) on 10 classes
    best = max(row["mAP@10"] for row in rows if row["encoder"] == "mrl")
    assert best > 0.5
    assert len(list((cache / "models").glob("*.pt"))) == 7  # one MRL + six FF sizes
    for name in ("report.html", "plot_accuracy_vs_dims.png", "examples_mrl.png"):
        assert (out / name).is_file()
    # AdANNS-IVF at its coarse dim is rigid IVF (same lists, same neighbours)
    by = {(r["encoder"], r["backend"], r["label"]): r for r in rows}
    for e in ("mrl", "ff", "ff256-truncated"):
        rigid, adanns = by[(e, "ivf", "flat@8")], by[(e, "adanns-ivf", "flat@8")]
        assert rigid["mAP@10"] == adanns["mAP@10"]
        assert rigid["knn_recall@10"] == adanns["knn_recall@10"] < 1.0
    assert by[("mrl", "faiss-exact", "flat@256")]["knn_recall@10"] == 1.0


def test_print_config_shows_the_builtin_demo(cli):
    import tomllib

    for args in (("--print-config",), ("--print-config", "--quick")):
        r = cli("run", *args)
        assert r.code == 0
        cfg = tomllib.loads(r.out)
        assert [e["name"] for e in cfg["encoders"]] == ["mrl", "ff", "ff256-truncated"]
        assert all(e["dataset"]["plugin"] == "fashion-mnist" for e in cfg["encoders"])


def test_second_run_reuses_models_and_arrays(cli, quick_demo, tmp_path, monkeypatch):
    _, cache = quick_demo
    monkeypatch.setenv("MRLBENCH_CACHE", str(cache))
    stamps = {p: p.stat().st_mtime_ns for p in cache.rglob("*") if p.is_file()}

    def no_training(*args, **kwargs):
        raise AssertionError("trained again")

    monkeypatch.setattr(training, "train", no_training)
    r = cli("run", "--quick", "--out", tmp_path / "second")
    assert r.code == 0, r.err[-3000:]
    assert all(row["status"] == "ok" for row in board(tmp_path / "second"))
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # nothing re-encoded


def test_dataset_checksum_is_verified(cli, tmp_path):
    source = find_fashion()
    for name in FASHION_FILES:
        shutil.copy(source / name, tmp_path / name)
    assert len(FashionMNIST(root=str(tmp_path)).split("queries")) == 10000
    victim = tmp_path / "t10k-labels-idx1-ubyte.gz"
    import gzip

    data = bytearray(gzip.decompress(victim.read_bytes()))
    data[100] ^= 1  # one flipped bit, still a valid gzip file
    victim.write_bytes(gzip.compress(bytes(data)))
    with pytest.raises(DataError, match="does not match Fashion-MNIST"):
        FashionMNIST(root=str(tmp_path)).split("queries")
    r = cli("fetch", "fashion-mnist", "--root", tmp_path)
    assert r.code == 2 and "t10k-labels-idx1-ubyte.gz: SHA-256" in r.err
    victim.write_bytes(b"garbage")
    r = cli("fetch", "fashion-mnist", "--root", tmp_path)
    assert r.code == 2 and "corrupt" in r.err
