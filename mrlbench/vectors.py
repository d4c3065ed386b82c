"""Prefix normalisation: a size-d prefix is ``x[:d] / ||x[:d]||`` (float32)."""

from __future__ import annotations

import contextlib
import mmap
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np

BLOCK_BYTES = 64 << 20  # float32 bytes of one streamed block of normalised prefixes
MAX_BLOCK_ROWS = 262_144
T = TypeVar("T")


def normalize_rows(x: np.ndarray) -> np.ndarray:
    """L2-normalise each row (last axis) into a new float32 array; zero rows stay zero,
    as with ``faiss.normalize_L2``."""
    out = np.array(x, dtype=np.float32, copy=True)
    norms = np.sqrt(np.einsum("...d,...d->...", out, out))
    np.divide(out, norms[..., None], out=out, where=norms[..., None] > 0)
    return out


def prefix(x: np.ndarray, dim: int) -> np.ndarray:
    """The normalised size-``dim`` prefix of every row of ``x``."""
    return normalize_rows(x[:, :dim])


@contextlib.contextmanager
def scattered_reads(array: np.ndarray) -> Iterator[None]:
    """While inside, tell the kernel that reads of a memory-mapped ``array`` are scattered
    (``MADV_RANDOM``: no read-around), then back to normal. A rerank gathers a few rows
    per query; from a database larger than the page cache (ImageNet-4K), read-around
    would read 128 KB from disk for each 8 KB row."""
    handle = getattr(array, "_mmap", None)
    advise = getattr(handle, "madvise", None)
    if advise is None or not hasattr(mmap, "MADV_RANDOM"):
        yield
        return
    try:
        advise(mmap.MADV_RANDOM)
    except (OSError, ValueError):  # a closed or unusual mapping: read as usual
        yield
        return
    try:
        yield
    finally:
        with contextlib.suppress(OSError, ValueError):
            advise(mmap.MADV_NORMAL)


def block_rows(dim: int) -> int:
    """Rows of a block of ``dim``-prefixes: about ``BLOCK_BYTES`` of float32."""
    return int(min(MAX_BLOCK_ROWS, max(1024, BLOCK_BYTES // (4 * dim))))


@dataclass(frozen=True)
class PrefixBlocks:
    """The normalised ``dim``-prefix of a (memory-mapped) database, streamed in row
    blocks each time it is iterated, so the database is never copied whole: what a
    backend builds its index from, and what an exact backend searches as it is.

    ``for chunk in blocks`` gives the float32 blocks; ``blocks.blocks()`` gives them with
    their first row id, the next block prepared while the caller works on this one."""

    database: np.ndarray
    dim: int
    rows: int = 0  # rows per block; 0: ``block_rows(dim)``
    on_block: Callable[[int], None] | None = field(default=None, compare=False)  # build progress

    def __len__(self) -> int:
        return len(self.database)

    @property
    def step(self) -> int:
        return self.rows or block_rows(self.dim)

    def __iter__(self) -> Iterator[np.ndarray]:
        for _, block in self.blocks(prefetch=False):
            yield block
            if self.on_block:
                self.on_block(len(block))

    def blocks(self, prefetch: bool = True) -> Iterator[tuple[int, np.ndarray]]:
        step = self.step
        it = (
            (s, prefix(self.database[s : s + step], self.dim))
            for s in range(0, len(self.database), step)
        )
        return prefetched(it) if prefetch and len(self.database) > step else it


def prefetched(items: Iterable[T]) -> Iterator[T]:
    """``items`` with the next one produced on a background thread while the consumer
    works on the current one (reading and normalising a block overlaps its search)."""
    box: queue.Queue = queue.Queue(maxsize=1)
    done = object()
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                box.put(item)
            box.put(done)
        except BaseException as exc:  # handed to the consumer
            box.put(exc)

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    try:
        while True:
            item = box.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full box
            try:
                box.get_nowait()
            except queue.Empty:
                thread.join(0.01)
