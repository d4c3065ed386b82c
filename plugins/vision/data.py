"""Image data (a library module of the vision package): image folders in torchvision's
ImageFolder layout, images held in memory, the first n items of a split, and
Fashion-MNIST's files (found, verified, fetched).

Fashion-MNIST is verified by the SHA-256 of the decompressed IDX data, which is the same
for the official mirror's files and Debian's ``dataset-fashion-mnist`` (whose ``.gz``
were recompressed); the mirror's ``.gz`` also match the official MD5 sums.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import subprocess
import urllib.request
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from rich.progress import Progress

from mrlbench import DataError, MrlbenchError, atomic_path, cache_dir, progress_bar

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


class FolderSplit(Sequence):
    """(PIL RGB image, label) pairs, loaded lazily; a bad file raises with its path."""

    def __init__(self, items: list[tuple[str, int]]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i):  # type: ignore[override]
        from PIL import Image

        path, label = self.items[i]
        try:
            with Image.open(path) as img:
                return img.convert("RGB"), label
        except Exception as exc:
            raise DataError(f"unreadable image {path}: {exc}") from None

    def path(self, i: int) -> str:
        return self.items[i][0]

    @property
    def labels(self) -> np.ndarray:
        return np.array([label for _, label in self.items], dtype=np.int64)


def scan_folder(root: str | Path, class_index: dict[str, int] | None = None) -> FolderSplit:
    """ImageFolder's order: classes sorted by name, files sorted within each class."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"image folder not found: {root}")
    classes = sorted(e.name for e in os.scandir(root) if e.is_dir())
    if not classes:
        raise DataError(f"{root}: no class folders (expected ImageFolder layout root/class/img)")
    index = class_index or {name: i for i, name in enumerate(classes)}
    items = []
    for name in classes:
        if name not in index:
            raise DataError(f"{root}: class folder '{name}' is not a known class")
        for dirpath, _, files in sorted(os.walk(root / name, followlinks=True)):
            for fname in sorted(files):
                if fname.lower().endswith(IMAGE_EXTENSIONS):
                    items.append((os.path.join(dirpath, fname), index[name]))
    if not items:
        raise DataError(f"{root}: no images found")
    return FolderSplit(items)


class Subset:
    """The first ``n`` items of a split."""

    def __init__(self, split, n: int) -> None:
        self.split, self.n = split, min(n, len(split))

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i):
        if i >= self.n:
            raise IndexError(i)
        return self.split[i]

    @property
    def labels(self):
        return self.split.labels[: self.n]


# ----------------------------------------------------------------------- Fashion-MNIST
FASHION_FILES = {  # file: SHA-256 of the decompressed IDX data
    "train-images-idx3-ubyte.gz": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",  # noqa: E501
    "train-labels-idx1-ubyte.gz": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",  # noqa: E501
    "t10k-images-idx3-ubyte.gz": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte.gz": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
FASHION_MIRROR = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)


def fashion_dirs(root: str | Path | None = None) -> list[Path]:
    if root is not None:
        return [Path(root)]
    return [DEBIAN_DIR, cache_dir() / "fashion-mnist"]


def read_idx(path: Path) -> np.ndarray:
    """Decompress, verify (SHA-256 of the IDX data) and parse one Fashion-MNIST file."""
    try:
        data = gzip.decompress(path.read_bytes())
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(f"{path}: corrupt download ({exc}); delete it and fetch again") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != FASHION_FILES[path.name]:
        raise DataError(
            f"{path}: SHA-256 {digest[:16]}... does not match Fashion-MNIST's; the file is "
            "corrupt or not Fashion-MNIST (delete it and run `mrlbench fetch fashion-mnist`)"
        )
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def find_fashion(root: str | Path | None = None) -> Path:
    for folder in fashion_dirs(root):
        if all((folder / name).is_file() for name in FASHION_FILES):
            return folder
    where = " or ".join(str(d) for d in fashion_dirs(root))
    raise DataError(f"Fashion-MNIST not found in {where}: run `mrlbench fetch fashion-mnist`")


class ArraySplit(Sequence):
    """(uint8 HxW image, label) pairs held in memory."""

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        self.images, self.labels = images, labels.astype(np.int64)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):  # type: ignore[override]
        return self.images[i], int(self.labels[i])

    def path(self, i: int) -> str:
        return f"item {i}"


def download(url: str, path: Path, progress: Progress, chunk: int = 1 << 16) -> None:
    """``url`` into ``path`` (atomically), drawn as a task of ``progress``."""
    with urllib.request.urlopen(url, timeout=60) as response, atomic_path(path) as tmp:
        size = int(response.headers.get("Content-Length") or 0) or None
        task = progress.add_task(path.name, total=size)
        with open(tmp, "wb") as out:
            while block := response.read(chunk):
                out.write(block)
                progress.advance(task, len(block))


def fetch_fashion_mnist(root: str | Path | None = None, echo=print) -> Path:
    """Make Fashion-MNIST available offline: already there, Debian's package (apt, as
    root), or the official mirror into the cache folder; every file verified."""
    try:
        folder = find_fashion(root)
        for name in FASHION_FILES:
            read_idx(folder / name)
        return folder
    except DataError as exc:
        if "SHA-256" in str(exc) or "corrupt" in str(exc):
            raise
    if root is None and hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        echo("installing Debian's dataset-fashion-mnist ...")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        cmd = ["apt-get", "install", "-y", "-qq", "dataset-fashion-mnist"]
        done = subprocess.run(cmd, capture_output=True, env=env)
        if done.returncode != 0:
            subprocess.run(["apt-get", "update", "-qq"], capture_output=True, env=env)
            done = subprocess.run(cmd, capture_output=True, env=env)
        if done.returncode == 0 and all((DEBIAN_DIR / n).is_file() for n in FASHION_FILES):
            return fetch_fashion_mnist(DEBIAN_DIR, echo)
    target = Path(root) if root else cache_dir() / "fashion-mnist"
    echo(f"downloading Fashion-MNIST from its official mirror into {target} ...")
    try:
        with progress_bar(speed="B/s") as progress:
            for name in FASHION_FILES:
                download(FASHION_MIRROR + name, target / name, progress)
    except OSError as exc:
        raise MrlbenchError(
            f"could not get Fashion-MNIST ({exc}). Install Debian's package "
            "`dataset-fashion-mnist` (sudo apt-get install dataset-fashion-mnist), or put the "
            f"four IDX .gz files from the official mirror in {target}"
        ) from None
    for name in FASHION_FILES:
        read_idx(target / name)
    return target
