"""Training the IVF backends (``faiss-ivf``, ``faiss-ivfpq``): the seeded training sample,
how many rows it takes, and the steps of AdANNS training that FAISS's ``IndexIVF.train``
does not do for a coarse quantiser at another dim (k-means, assignment, each list's d-dim
mean, the encoder's PQ codebooks).

Training uses a seeded sample of ``train_size`` database rows (default: 256 per list,
FAISS's k-means cap, and at least 65,536 for PQ's codebooks, at most the database); fewer
than ``nlist`` rows is an error, fewer than 39 per list a warning (as FAISS's own)."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sized
from typing import Any

import numpy as np

from mrlbench import DataError
from mrlbench_plugins.faiss import load

POINTS_PER_LIST = 256  # FAISS k-means uses at most this many points per centroid
MIN_POINTS_PER_LIST = 39  # ... and warns below this many


def train_sample(chunks: Iterable[np.ndarray], rows: int, seed: int) -> np.ndarray:
    """A seeded sample of ``rows`` rows of the streamed blocks (in database order)."""
    if not isinstance(chunks, Sized):
        chunks = [np.asarray(c) for c in chunks]
    n = len(chunks)
    pick = np.sort(np.random.default_rng(seed).choice(n, size=min(rows, n), replace=False))
    blocks = chunks.blocks() if hasattr(chunks, "blocks") else _numbered(chunks)
    parts = []
    for start, block in blocks:  # one pass; no progress ticks (the add pass has them)
        lo, hi = np.searchsorted(pick, [start, start + len(block)])
        if hi > lo:
            parts.append(np.asarray(block[pick[lo:hi] - start], dtype=np.float32))
    return np.ascontiguousarray(np.concatenate(parts))


def _numbered(chunks: Iterable[np.ndarray]) -> Iterable[tuple[int, np.ndarray]]:
    start = 0
    for chunk in chunks:
        yield start, chunk
        start += len(chunk)


def train_count(n: int, nlist: int, train_size: int | None, minimum: int) -> int:
    """How many of ``n`` database rows to train on; a DataError when they cannot train
    ``nlist`` lists."""
    if n < nlist:
        raise DataError(
            f"nlist = {nlist} is larger than the database ({n} rows): "
            "k-means needs at least one row per list"
        )
    return min(n, train_size if train_size else max(POINTS_PER_LIST * nlist, minimum))


def train_rows(n: int, nlist: int, train_size: int | None, minimum: int) -> int:
    """``train_count``, with a warning below FAISS's 39 points per list."""
    rows = train_count(n, nlist, train_size, minimum)
    if rows < MIN_POINTS_PER_LIST * nlist:
        warnings.warn(
            f"training {nlist} IVF lists on {rows} rows: k-means wants at least "
            f"{MIN_POINTS_PER_LIST * nlist} ({MIN_POINTS_PER_LIST} per list)",
            stacklevel=3,
        )
    return rows


def kmeans(x: np.ndarray, nlist: int, cp: Any) -> Any:
    """An ``IndexFlatL2`` of ``nlist`` k-means centroids of ``x`` (FAISS ``Clustering``
    with the IVF's clustering parameters, as ``IndexIVF.train`` runs it)."""
    faiss = load()
    quantizer = faiss.IndexFlatL2(x.shape[1])
    faiss.Clustering(x.shape[1], nlist, cp).train(x, quantizer)
    return quantizer


def assign(quantizer: Any, x: np.ndarray) -> np.ndarray:
    """The nearest centroid of each row."""
    _, labels = quantizer.search(x, 1)
    return labels[:, 0]


def list_means(x: np.ndarray, labels: np.ndarray, nlist: int) -> np.ndarray:
    """The mean of the rows of ``x`` in each list (zero for a list with none)."""
    sums = np.zeros((nlist, x.shape[1]), dtype=np.float64)
    np.add.at(sums, labels, x)
    counts = np.bincount(labels, minlength=nlist)[:, None]
    return (sums / np.maximum(counts, 1)).astype(np.float32)


def train_encoder(ivf: Any, x: np.ndarray, labels: np.ndarray, seed: int) -> None:
    """Train the IVF's encoder (PQ codebooks) on ``x`` assigned to ``labels``, as
    ``IndexIVF.train`` does after its k-means: on residuals when ``by_residual``, on at
    most ``train_encoder_num_vectors`` rows."""
    faiss = load()
    cap = int(ivf.train_encoder_num_vectors())
    if 0 < cap < len(x):
        keep = np.sort(np.random.default_rng(seed).choice(len(x), cap, replace=False))
        x, labels = x[keep], labels[keep]
    labels = np.ascontiguousarray(labels, dtype=np.int64)
    if ivf.by_residual:
        centroids = faiss.downcast_index(ivf.quantizer).reconstruct_n(0, ivf.nlist)
        x = x - centroids[labels]
    x = np.ascontiguousarray(x, dtype=np.float32)
    ivf.train_encoder(len(x), faiss.swig_ptr(x), faiss.swig_ptr(labels))
    ivf.is_trained = True
