"""Embedding arrays in the reference pipeline's naming:
``{dataset}_{split}_mrl{0|1}_e{0|1}_ff{rep}-X.npy`` and ``-y.npy``; ``train`` is the
database split, ``val`` the queries."""

from __future__ import annotations

import contextlib
import re
import warnings
from pathlib import Path

import numpy as np

from mrlbench.errors import DataError
from mrlbench.resume import MISSING, cached, remember
from mrlbench.store import cache_dir, digest, load_npy, scan
from mrlbench.types import Embeddings

CONFIG_RE = re.compile(r"^mrl([01])_e([01])_ff(\d+)$")
FLOAT16_EXACT = 2048  # float16 holds every integer up to 2048 exactly, not all above


def array_name(dataset: str, split: str, config: str, part: str) -> str:
    """``1K_train_mrl1_e0_ff2048-X.npy`` (part ``X``) or ``...-y.npy`` (part ``y``)."""
    return f"{dataset}_{split}_{config}-{part}.npy"


def mrl_e_alias(config: str) -> str | None:
    """The other spelling of an MRL-E config: the reference inference script writes
    ``mrl1_e1`` where its faiss notebook reads ``mrl0_e1``."""
    match = CONFIG_RE.match(config)
    if not match or match.group(2) != "1":
        return None
    other = "0" if match.group(1) == "1" else "1"
    return f"mrl{other}_e1_ff{match.group(3)}"


def find_array(folder: Path, dataset: str, split: str, config: str, part: str) -> Path:
    path = folder / array_name(dataset, split, config, part)
    alias = mrl_e_alias(config)
    if (
        not path.is_file()
        and alias
        and (folder / array_name(dataset, split, alias, part)).is_file()
    ):
        return folder / array_name(dataset, split, alias, part)
    if not folder.is_dir():
        raise DataError(f"arrays folder not found: {folder}")
    if not path.is_file():
        raise DataError(f"array file not found: {path}")
    return path


def load_features(path: Path) -> np.ndarray:
    x = load_npy(path)
    if x.ndim != 2 or not np.issubdtype(x.dtype, np.floating):
        raise DataError(f"{path}: expected a 2-d float array, got {x.dtype} {x.shape}")
    return x


def load_labels(path: Path) -> np.ndarray:
    """Labels as int64. Float labels (the reference wrote float16, shape (n, 1)) are
    accepted when integral; float16 ids above 2048 get a warning (they may collide)."""
    y = load_npy(path, mmap=False)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DataError(f"{path}: labels must have shape (n,) or (n, 1), got {y.shape}")
    if np.issubdtype(y.dtype, np.integer):
        return y.astype(np.int64)
    if not np.issubdtype(y.dtype, np.floating):
        raise DataError(f"{path}: labels must be integers or floats, got {y.dtype}")
    half = y.dtype == np.float16
    if half:  # numpy emulates float16 arithmetic: check in float32 (it holds every float16)
        y = y.astype(np.float32)
    if not np.isfinite(y).all() or (y != np.round(y)).any():
        raise DataError(f"{path}: labels must be whole numbers")
    if half and len(y) and np.abs(y).max() > FLOAT16_EXACT:
        warnings.warn(
            f"{path}: float16 labels above {FLOAT16_EXACT} cannot all be told apart; "
            "class ids may have collided when they were written (write int32 labels)",
            stacklevel=2,
        )
    return y.astype(np.int64)


def load_embeddings(
    folder: str | Path,
    dataset: str,
    config: str,
    query_dataset: str | None = None,
    database_config: str | None = None,
) -> Embeddings:
    """Load and validate the database (``train``) and query (``val``) split.

    ImageNetV2 style: ``query_dataset`` names a query set searched against the
    ``dataset`` database. Arrays stay memory-mapped; the database is scanned once for
    NaN/Inf and hashed for the index cache.
    """
    folder = Path(folder)
    query_dataset = query_dataset or dataset
    xb_path = find_array(folder, dataset, "train", database_config or config, "X")
    xq_path = find_array(folder, query_dataset, "val", config, "X")
    xb, xq = load_features(xb_path), load_features(xq_path)
    yb = load_labels(find_array(folder, dataset, "train", database_config or config, "y"))
    yq = load_labels(find_array(folder, query_dataset, "val", config, "y"))
    for x, y, path in ((xb, yb, xb_path), (xq, yq, xq_path)):
        if len(x) != len(y):
            raise DataError(f"{path}: {len(x)} rows but {len(y)} labels")
    if len(xb) == 0:
        raise DataError(f"{xb_path}: the database is empty")
    if len(xq) == 0:
        raise DataError(f"{xq_path}: the query set is empty")
    if xb.shape[1] != xq.shape[1]:
        raise DataError(f"database has {xb.shape[1]} dims but queries have {xq.shape[1]}")
    fingerprint = file_scan(xb_path, xb)
    query_fingerprint = file_scan(xq_path, xq)
    return Embeddings(xb, xq, yb, yq, dataset, query_dataset, fingerprint, query_fingerprint)


def file_scan(path: Path, x: np.ndarray) -> str:
    """``store.scan`` of an array file (content hash, NaN/Inf check), remembered by the
    file's (path, size, mtime, inode) in the user cache, so a 10 GB database is read
    once, not at every run; a changed file is scanned again."""
    stat = path.stat()
    where = str(path.resolve())
    key = [where, stat.st_size, stat.st_mtime_ns, stat.st_ino, list(x.shape), str(x.dtype)]
    sidecar = cache_dir() / "fingerprints" / f"{digest(where)}.json"
    done = cached(sidecar, key)
    if done is not MISSING:
        return str(done)
    try:
        fingerprint = scan(x)
    except DataError as exc:
        raise DataError(f"{path}: {exc}") from None
    with contextlib.suppress(OSError):  # a read-only cache only costs the next run a re-scan
        remember(sidecar, key, fingerprint)
    return fingerprint
