"""Neighbour files: int64 ids, one row per query, best first. ``.npy`` by default; the
reference pipeline's CSV (no header, no index column) on request and on read. A search's
shortlist is named here; strategies name the files of their own rows."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from mrlbench.errors import DataError
from mrlbench.store import atomic_write, digest, load_npy, save_npy
from mrlbench.types import Backend


def search_stem(model: str, index: str, dim: int, k: int, dataset: str) -> str:
    """Where a k-NN search's shortlist is written, relative to ``neighbors/`` (the
    reference pipeline's name): ``{model}/{index}_{dim}dim_{k}shortlist_{dataset}``."""
    return f"{model}/{index}_{dim}dim_{k}shortlist_{dataset}"


def save(stem: str | Path, ids: np.ndarray, csv: bool = False) -> Path:
    """Write ``{stem}.npy`` (and ``{stem}.csv`` with ``csv``); returns the ``.npy`` path."""
    stem = Path(stem)
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    npy = stem.with_name(stem.name + ".npy")
    save_npy(npy, ids)
    if csv:
        atomic_write(
            stem.with_name(stem.name + ".csv"),
            lambda f: np.savetxt(f, ids, fmt="%d", delimiter=","),
        )
    return npy


def load(path: str | Path) -> np.ndarray:
    """Read neighbours from ``.npy`` (memory-mapped) or the reference ``.csv``."""
    path = Path(path)
    if path.suffix == ".csv":
        if not path.is_file():
            raise DataError(f"file not found: {path}")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ids = np.loadtxt(path, delimiter=",", dtype=np.int64, ndmin=2)
        except ValueError as exc:
            raise DataError(f"{path}: not a neighbour CSV of integers ({exc})") from None
    else:
        ids = load_npy(path)
    if ids.ndim != 2 or not np.issubdtype(ids.dtype, np.integer):
        raise DataError(f"{path}: expected a 2-d integer array, got {ids.dtype} {ids.shape}")
    return ids


def file_tag(label: str, backend: Backend) -> str:
    """The index name in neighbour file names: the reference's (``exactl2``, ``hnsw32``)
    for a backend labelled with its plugin name, else with its label appended, so that
    two backends of one run never write the same files; and a short hash of its settings
    where they differ from the plugin's defaults (``hnsw32-1f0c9e2a``), so that runs of
    two settings into one folder never write each other's files either. ``shards`` is
    left out: a sharded search finds the same neighbours."""
    tag = backend.index_name
    if label != backend.name:
        tag += "-" + "".join(c if c.isalnum() or c in "-." else "-" for c in label)
    changed = changed_settings(backend)
    return f"{tag}-{digest(changed)[:8]}" if changed else tag


def changed_settings(backend: Backend) -> dict[str, Any]:
    """The backend's settings that differ from its plugin's defaults, but ``shards`` and
    those its index name already spells out (``Backend.named``)."""
    defaults = type(backend).defaults()
    return {
        k: v
        for k, v in backend.effective_table().items()
        if k not in ("plugin", "shards", *backend.named) and (k not in defaults or defaults[k] != v)
    }
