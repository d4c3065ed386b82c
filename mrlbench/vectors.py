"""Prefix normalisation: a size-d prefix is ``x[:d] / ||x[:d]||`` (float32)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np


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


def prefix_chunks(x: np.ndarray, dim: int, rows: int = 65536) -> Iterator[np.ndarray]:
    """The normalised ``dim``-prefix of ``x`` in row chunks, so a memory-mapped database
    is never copied whole."""
    for start in range(0, len(x), rows):
        yield prefix(x[start : start + rows], dim)
