"""The index cache. A run keeps each index as a content-addressed entry,
``{cache}/{cache_name}_{dim}dim_{key}/`` (``[run] index_cache``, default
``$MRLBENCH_CACHE/indexes``): the index file and its ``meta.json``, published as one
folder at once, its key the hash of what the index is built from (the database's content
hash, rows, dim, the index's build parameters and a format version). Every run and
config over the same data and parameters shares it, whatever the encoder is called.
The reference commands keep the reference pipeline's layout
(``index_files/{model}/{dataset}_{dim}dim_{index}.index`` plus a ``.json`` sidecar).
Either way a cached index is reused only when its meta matches, and a corrupt one is
rebuilt with a warning."""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mrlbench.resume import MISSING, cached
from mrlbench.sink import Direct
from mrlbench.store import digest
from mrlbench.timing import stopwatch
from mrlbench.types import Backend, Embeddings
from mrlbench.vectors import PrefixBlocks

INDEX_FORMAT = 1  # entries of another format are other entries (never read)


def index_path(cache: str | Path, model: str, dataset: str, dim: int, index: str) -> Path:
    """The reference pipeline's index file (``mrlbench search``)."""
    return Path(cache) / model / f"{dataset}_{dim}dim_{index}.index"


def entry_meta(backend: Backend, emb: Embeddings, dim: int) -> dict[str, Any]:
    """What an index is built from: its entry's key."""
    return {
        "format": INDEX_FORMAT,
        "index": backend.cache_name,
        "rows": len(emb.database),
        "dim": int(dim),
        "fingerprint": emb.fingerprint,
        "params": backend.params(),
    }


def index_entry(cache: str | Path, backend: Backend, emb: Embeddings, dim: int) -> Path:
    """The content-addressed entry of the ``dim``-prefix index of ``emb.database``."""
    key = digest(entry_meta(backend, emb, dim))
    return Path(cache) / f"{backend.cache_name}_{dim}dim_{key}"


def load_or_build(
    backend: Backend,
    emb: Embeddings,
    dim: int,
    path: Path | None,
    on_chunk: Callable[[int], None] | None = None,
    sink: Any = None,
) -> tuple[Any, float]:
    """The index over the normalised ``dim``-prefix of ``emb.database`` and the seconds
    its build took (recorded with a cached index). ``path``: an entry folder
    (``index_entry``) or a reference ``.index`` file (``index_path``); ``None`` disables
    the cache, as does a backend that is not ``cached`` (nothing costly to keep). A new
    index goes to ``sink`` (``mrlbench.sink``; default: written at once)."""
    sink = sink or Direct()
    if not backend.cached:
        path = None
    entry = path is not None and path.suffix != ".index"
    if entry:
        meta = entry_meta(backend, emb, dim)
    else:  # the reference layout's sidecar, as it always was
        meta = {k: v for k, v in entry_meta(backend, emb, dim).items() if k != "format"}
        meta["index"] = backend.index_name
    if path is not None:
        found = _cached(backend, path, meta, entry)
        if found is not None:
            return found
    blocks = PrefixBlocks(emb.database, dim, on_block=on_chunk)
    index, seconds = stopwatch(lambda: backend.build(blocks, dim))
    if path is not None and entry:
        sink.entry(path, lambda tmp: backend.write(index, tmp), meta, {"build_seconds": seconds})
    elif path is not None:
        sink.index(path, lambda tmp: backend.write(index, tmp))
        sink.remember(path.with_name(path.name + ".json"), meta, {"build_seconds": seconds})
    return index, seconds


def _cached(backend: Backend, path: Path, meta: dict, entry: bool) -> tuple[Any, float] | None:
    """The cached index at ``path`` and its build seconds, or ``None`` (absent; or
    unreadable or for other data: then removed, if an entry, and rebuilt)."""
    index_file = path / "index" if entry else path
    meta_file = path / "meta.json" if entry else path.with_name(path.name + ".json")
    if not index_file.exists():
        if entry and path.exists():
            shutil.rmtree(path, ignore_errors=True)  # an entry without its index
        return None
    done = cached(meta_file, meta)
    if done is not MISSING:
        try:
            return backend.read(str(index_file)), float(done["build_seconds"])
        except Exception as exc:
            warnings.warn(f"cached index {path} is unreadable ({exc}); rebuilding", stacklevel=3)
    else:
        warnings.warn(f"cached index {path} does not match the data; rebuilding", stacklevel=3)
    if entry:
        shutil.rmtree(path, ignore_errors=True)  # so that the rebuilt one is published
    return None
