"""Where a cell's files go. ``Direct`` writes them at once (atomically), as a run in one
process always has; ``Recorder`` keeps the writes under the run directory as a list that
travels back from a worker (another process or machine) and is ``replay``-ed where the
run directory is, so that only the driver writes it. Files outside the run directory (a
shared ``[run] index_cache``) are written by whoever makes them."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from mrlbench import neighbors
from mrlbench.resume import remember
from mrlbench.store import atomic_folder, atomic_path, atomic_write


class Direct:
    """Every write at once, atomically (temp file + rename)."""

    def save_neighbors(self, stem: Path, ids: np.ndarray, csv: bool) -> Path:
        """Write ``{stem}.npy`` (and ``.csv``); returns the ``.npy`` path."""
        return neighbors.save(stem, ids, csv=csv)

    def stored(self, npy: Path, ids: np.ndarray) -> np.ndarray:
        """The ids of a saved neighbours file, as kept from now on (memory-mapped)."""
        return neighbors.load(npy)

    def remember(self, path: Path, key: Any, value: Any) -> None:
        """A resume sidecar (``mrlbench.resume``)."""
        remember(path, key, value)

    def index(self, path: Path, write: Callable[[str], None]) -> None:
        """An index file, made by ``write(temporary path)``."""
        with atomic_path(path) as tmp:
            write(str(tmp))

    def entry(self, folder: Path, write: Callable[[str], None], key: Any, value: Any) -> None:
        """An index cache entry, published whole: ``index`` (made by ``write(path)``)
        and ``meta.json`` (a resume sidecar of ``key`` and ``value``) in ``folder``."""
        with atomic_folder(folder) as tmp:
            if tmp is not None:
                write(str(tmp / "index"))
                remember(tmp / "meta.json", key, value)


@dataclass
class Recorder:
    """The writes under ``out`` kept as ``ops`` (picklable) for ``replay``; the rest direct."""

    out: Path
    ops: list[tuple[Any, ...]] = field(default_factory=list)

    def _mine(self, path: Path) -> bool:
        return Path(path).resolve().is_relative_to(Path(self.out).resolve())

    def save_neighbors(self, stem: Path, ids: np.ndarray, csv: bool) -> Path:
        self.ops.append(("neighbors", str(stem), np.ascontiguousarray(ids, dtype=np.int64), csv))
        return stem.with_name(stem.name + ".npy")

    def stored(self, npy: Path, ids: np.ndarray) -> np.ndarray:
        return ids

    def remember(self, path: Path, key: Any, value: Any) -> None:
        if self._mine(path):
            self.ops.append(("remember", str(path), key, value))
        else:
            remember(path, key, value)

    def index(self, path: Path, write: Callable[[str], None]) -> None:
        if not self._mine(path):
            Direct().index(path, write)
            return
        self.ops.append(("bytes", str(path), _written(write)))

    def entry(self, folder: Path, write: Callable[[str], None], key: Any, value: Any) -> None:
        if not self._mine(folder):
            Direct().entry(folder, write, key, value)
            return
        self.ops.append(("entry", str(folder), _written(write), key, value))


def replay(ops: list[tuple[Any, ...]]) -> None:
    """Write what a ``Recorder`` kept, in the order it was kept."""
    for op in ops:
        what, path = op[0], Path(op[1])
        if what == "neighbors":
            neighbors.save(path, op[2], csv=op[3])
        elif what == "remember":
            remember(path, op[2], op[3])
        elif what == "bytes":
            atomic_write(path, partial(_write_bytes, data=op[2]))
        elif what == "entry":
            Direct().entry(path, partial(_write_file, data=op[2]), op[3], op[4])
        else:  # pragma: no cover - a newer worker's record
            raise ValueError(f"unknown write {what!r}")


def _write_bytes(f: Any, data: bytes) -> None:
    f.write(data)


def _write_file(path: str, data: bytes) -> None:
    Path(path).write_bytes(data)


def _written(write: Callable[[str], None]) -> bytes:
    """The bytes ``write(temporary path)`` makes."""
    fd, tmp = tempfile.mkstemp(suffix=".index")
    os.close(fd)
    try:
        write(tmp)
        return Path(tmp).read_bytes()
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
