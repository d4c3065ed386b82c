"""``mrlbench encode`` on the CPU against the reference inference script's settings over
the same PNG images with the same ResNet50: a DataLoader with loader workers (as many as
mrlbench uses), batch 32 on both sides, NCHW, and its precision: the script's
``torch.cuda.amp.autocast`` does nothing on a CPU, so fp32. mrlbench is timed twice:
fp32 with channels_last (``mrlbench-fp32``) and with its default precision (bf16 autocast
where the CPU has bf16), so the bf16 gain is its own line. 2 rounds each, no warm-up.
Then peak memory of encoding at two dataset sizes (flat: rows go to memory-mapped
files, not Python lists)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from mrlbench_plugins.vision import encoding, models
from mrlbench_plugins.vision.data import scan_folder
from mrlbench_plugins.vision.datasets import ImageFolderDataset
from mrlbench_plugins.vision.settings import Settings, default_workers

IMAGES, BATCH = 96, 32


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for i in range(IMAGES):
        (root / f"c{i % 4}").mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (300, 260, 3), dtype=np.uint8)).save(
            root / f"c{i % 4}" / f"{i}.png"
        )
    return root


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "ff2048.pt"
    torch.save(torchvision.models.resnet50().state_dict(), path)
    return path


def reference_settings(folder: Path, checkpoint: Path) -> np.ndarray:
    """The reference script's loop: ImageFolder-style loading in DataLoader workers, fp32
    (its CUDA autocast is a no-op here), NCHW, features gathered batch by batch."""
    model = torchvision.models.resnet50()
    model.load_state_dict(torch.load(checkpoint, weights_only=True))
    model.fc = torch.nn.Identity()
    model.eval()
    split = scan_folder(folder)
    view = encoding.TensorView(split, encoding.transform("imagenet"), np.arange(len(split)))
    loader = torch.utils.data.DataLoader(
        view, batch_size=BATCH, num_workers=default_workers(), shuffle=False
    )
    out = []
    with torch.no_grad():
        for images, _, _ in loader:
            out.append(model(images).numpy())
    return np.concatenate(out)


def mrlbench_encode(folder: Path, checkpoint: Path, out: Path, precision: str) -> np.ndarray:
    model = models.load(checkpoint, "ff", "resnet50")
    encoding.encode_dataset(
        model,
        "ff",
        ImageFolderDataset(database=str(folder)),
        "B",
        out,
        Settings(device="cpu", precision=precision, batch_size=BATCH),  # default workers
        splits=["database"],
    )
    x = np.load(out / "B_train_mrl0_e0_ff2048-X.npy")
    for f in out.iterdir():
        f.unlink()
    return x


@pytest.mark.parametrize("impl", ["reference-settings", "mrlbench-fp32", "mrlbench"])
def test_encode(benchmark, record, folder, checkpoint, tmp_path, impl):
    benchmark.group = "encode-resnet50-cpu"
    if impl == "reference-settings":
        x = benchmark.pedantic(reference_settings, (folder, checkpoint), rounds=2)
    else:
        precision = "fp32" if impl == "mrlbench-fp32" else "auto"
        x = benchmark.pedantic(mrlbench_encode, (folder, checkpoint, tmp_path, precision), rounds=2)
    benchmark.extra_info["images_per_s"] = IMAGES / benchmark.stats.stats.min
    assert x.shape == (IMAGES, 2048)
    RESULTS[impl] = x
    if impl != "reference-settings":  # the reference's features, fp32 as it ran
        if "reference-settings" not in RESULTS:
            RESULTS["reference-settings"] = reference_settings(folder, checkpoint)
        a = RESULTS["reference-settings"]
        cos = (a * x).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(x, axis=1)
        benchmark.extra_info["min_cosine_to_fp32"] = float(cos.min())
        # fp32 channels_last: the same features to float rounding; bf16 stays close
        assert cos.min() > (0.9999 if impl == "mrlbench-fp32" else 0.99), cos.min()
    record("encode-resnet50-cpu", impl, benchmark)


RESULTS: dict[str, np.ndarray] = {}

PEAK = """
import json, sys, threading, time, numpy as np
from mrlbench_plugins.vision import encoding, models
from mrlbench_plugins.vision.settings import Settings
n, out = int(sys.argv[1]), sys.argv[2]

def anon_kb():  # heap memory; memory-mapped file pages are not counted
    for line in open("/proc/self/status"):
        if line.startswith("RssAnon:"):
            return int(line.split()[1])

peak, stop = [0], threading.Event()
def watch():
    while not stop.is_set():
        peak[0] = max(peak[0], anon_kb()); time.sleep(0.02)

class Lazy:  # deterministic images made on demand: the dataset itself takes no memory
    def __len__(self): return n
    def __getitem__(self, i):
        rng = np.random.default_rng(i)
        return rng.integers(0, 255, (28, 28), dtype=np.uint8), int(i % 10)

class Data:
    def split(self, which): return Lazy()

model = models.build("resnet-narrow-s2", "mrl", 10)
before = anon_kb()
threading.Thread(target=watch, daemon=True).start()
settings = Settings(transform="small", device="cpu", precision="auto", batch_size=256,
                    workers=0)
encoding.encode_dataset(model, "mrl", Data(), "M", out, settings, splits=["database"])
stop.set()
print(json.dumps({"n": n, "before_kb": before, "peak_kb": max(peak[0], anon_kb())}))
"""


@pytest.mark.parametrize("n", [20_000, 80_000])
def test_peak_memory_is_flat(benchmark, tmp_path, n):
    benchmark.group = "encode-peak-memory"

    def run():
        done = subprocess.run(
            [sys.executable, "-c", PEAK, str(n), str(tmp_path)],
            capture_output=True,
            text=True,
            check=True,
        )
        return json.loads(done.stdout.strip().splitlines()[-1])

    result = benchmark.pedantic(run, rounds=1)
    growth_mb = (result["peak_kb"] - result["before_kb"]) / 1024
    benchmark.extra_info.update(
        {"images": n, "peak_growth_mb": growth_mb, "arrays_mb": n * 256 * 4 / 2**20}
    )
    PEAKS[n] = growth_mb
    if len(PEAKS) == 2:
        # 4x the images (and 4x the array bytes: 20 MB -> 78 MB) without 4x the memory
        assert PEAKS[80_000] - PEAKS[20_000] < 30


PEAKS: dict[int, float] = {}
