"""Datasets ``image-folder``, ``imagenetv2`` and ``fashion-mnist``, and the ``fetch`` command
(a plugin module of the vision package; the files and folders are read by ``data``).

- ``image-folder``: torchvision's ImageFolder layout (one folder per class, classes in
  sorted order) for the database and the query split (ImageNet-1K train/val, 4K, ...).
- ``imagenetv2``: a query set (``matched-frequency``: folders ``0`` .. ``999`` named by
  class index) whose database is ImageNet-1K train (give ``database`` for that).
- ``fashion-mnist``: the IDX ``.gz`` files; train (60,000) is the database, test (10,000)
  the queries, verified by SHA-256 (``data.FASHION_FILES``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from mrlbench import ConfigError, DataError, Dataset, hookimpl, stderr
from mrlbench import terminal as console
from mrlbench_plugins.vision.data import (
    ArraySplit,
    fetch_fashion_mnist,
    find_fashion,
    read_idx,
    scan_folder,
)


def _folders_exist(folders: dict[str, str | None]) -> None:
    for which, folder in folders.items():
        if folder is not None and not Path(folder).is_dir():
            raise DataError(f"{which} image folder not found: {folder}")


class ImageFolderDataset(Dataset):
    """Images in torchvision's ImageFolder layout: one folder per class, sorted.

    Args:
        database: Folder of the database images (e.g. ImageNet-1K train).
        queries: Folder of the query images (e.g. ImageNet-1K val).
    """

    name = "image-folder"
    paths = ("database", "queries")

    def __init__(self, database: str | None = None, queries: str | None = None) -> None:
        if database is None and queries is None:
            raise ConfigError("give a database and/or a queries folder")
        self.folders = {"database": database, "queries": queries}

    def validate(self) -> None:
        _folders_exist(self.folders)

    def split(self, which: str) -> Sequence[tuple[Any, int]]:
        folder = self.folders.get(which)
        if folder is None:
            raise ConfigError(f"no {which} folder given")
        return scan_folder(folder)


class ImageNetV2(Dataset):
    """ImageNetV2 queries (folders named by class index) against an ImageNet-1K database.

    Args:
        queries: ImageNetV2 folder (``matched-frequency``: folders ``0`` .. ``999``).
        database: ImageNet-1K train folder (required to encode the database).
    """

    name = "imagenetv2"
    paths = ("database", "queries")

    def __init__(self, queries: str, database: str | None = None) -> None:
        self.queries, self.database = queries, database

    def validate(self) -> None:
        if self.database is None:
            raise ConfigError("ImageNetV2 is a query set: give database = ImageNet-1K train")
        _folders_exist({"database": self.database, "queries": self.queries})

    def split(self, which: str) -> Sequence[tuple[Any, int]]:
        if which == "queries":
            root = Path(self.queries)
            names = [e.name for e in os.scandir(root) if e.is_dir()] if root.is_dir() else []
            return scan_folder(root, {n: int(n) for n in names if n.isdigit()})
        if self.database is None:
            raise ConfigError("ImageNetV2 is a query set: give database = ImageNet-1K train")
        return scan_folder(self.database)


class FashionMNIST(Dataset):
    """Fashion-MNIST: train (60,000) is the database, test (10,000) the queries.

    Args:
        root: Folder of the IDX ``.gz`` files (default: Debian's package, else the cache
            folder; fetched and verified when missing).
        limit_database: Use the first N training images only.
        limit_queries: Use the first N test images only.
    """

    name = "fashion-mnist"
    paths = ("root",)

    def __init__(
        self,
        root: str | None = None,
        limit_database: int | None = None,
        limit_queries: int | None = None,
    ) -> None:
        self.root = root
        self.limits = {"database": limit_database, "queries": limit_queries}
        self._splits: dict[str, ArraySplit] = {}

    def validate(self) -> None:
        """Fetched and verified when missing, as ``mrlbench fetch fashion-mnist`` does."""
        fetch_fashion_mnist(self.root, echo=lambda m: stderr.print(m, highlight=False))

    def split(self, which: str) -> Sequence[tuple[Any, int]]:
        prefix = {"database": "train", "queries": "t10k"}.get(which)
        if prefix is None:
            raise ConfigError(f"unknown split '{which}'")
        if which not in self._splits:  # decompress and verify once per instance
            folder = find_fashion(self.root)
            images = read_idx(folder / f"{prefix}-images-idx3-ubyte.gz")
            labels = read_idx(folder / f"{prefix}-labels-idx1-ubyte.gz")
            n = self.limits[which] or len(labels)
            self._splits[which] = ArraySplit(images[:n], labels[:n])
        return self._splits[which]


@hookimpl
def mrlbench_register_datasets(register):
    register(ImageFolderDataset)
    register(ImageNetV2)
    register(FashionMNIST)


@hookimpl
def mrlbench_register_commands(cli):
    @cli.command()
    @click.argument("dataset", type=click.Choice(["fashion-mnist"]))
    @click.option(
        "--root",
        type=click.Path(),
        help="Folder for the files (default: Debian's package, else the cache folder).",
    )
    def fetch(dataset: str, root: str | None) -> None:
        """Make a dataset available offline and verify it (SHA-256)."""
        folder = fetch_fashion_mnist(root, echo=lambda m: console.print(m, highlight=False))
        console.print(f"Fashion-MNIST verified in {folder}", highlight=False)
