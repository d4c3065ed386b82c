"""Prefix normalisation: a size-d prefix is ``x[:d] / ||x[:d]||`` (float32)."""

from __future__ import annotations

import contextlib
import mmap
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

BLOCK_BYTES = 64 << 20  # float32 bytes of one streamed block of normalised prefixes
MAX_BLOCK_ROWS = 262_144


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

    ``for chunk in blocks`` gives the float32 blocks (``on_block`` told of each, for
    progress bars); ``blocks.blocks()`` gives them with their first row id."""

    database: np.ndarray
    dim: int
    on_block: Callable[[int], None] | None = field(default=None, compare=False)

    def __len__(self) -> int:
        return len(self.database)

    def __iter__(self) -> Iterator[np.ndarray]:
        for _, block in self.blocks():
            yield block
            if self.on_block:
                self.on_block(len(block))

    def blocks(self) -> Iterator[tuple[int, np.ndarray]]:
        step = block_rows(self.dim)
        for start in range(0, len(self.database), step):
            yield start, prefix(self.database[start : start + step], self.dim)
