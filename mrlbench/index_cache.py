"""The index cache: ``index_files/{model}/{dataset}_{dim}dim_{index}.index`` plus a resume
sidecar (``mrlbench.resume``); a cached index is reused only when size, dim, build
parameters and the database's content hash all match; a corrupt one is rebuilt with a
warning."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mrlbench.resume import MISSING, cached
from mrlbench.sink import Direct
from mrlbench.timing import stopwatch
from mrlbench.types import Backend, Embeddings
from mrlbench.vectors import PrefixBlocks


def index_path(cache: str | Path, model: str, dataset: str, dim: int, index: str) -> Path:
    return Path(cache) / model / f"{dataset}_{dim}dim_{index}.index"


def load_or_build(
    backend: Backend,
    emb: Embeddings,
    dim: int,
    path: Path | None,
    on_chunk: Callable[[int], None] | None = None,
    sink: Any = None,
) -> tuple[Any, float]:
    """The index over the normalised ``dim``-prefix of ``emb.database`` and the seconds
    its build took (recorded with a cached index). ``path=None`` disables the cache, as
    does a backend that is not ``cached`` (nothing costly to keep). A new index file
    goes to ``sink`` (``mrlbench.sink``; default: written at once)."""
    sink = sink or Direct()
    if not backend.cached:
        path = None
    meta = {
        "index": backend.index_name,
        "rows": len(emb.database),
        "dim": int(dim),
        "fingerprint": emb.fingerprint,
        "params": backend.params(),
    }
    meta_path = path.with_name(path.name + ".json") if path else None
    if path is not None and meta_path is not None and path.exists():
        done = cached(meta_path, meta)
        if done is not MISSING:
            try:
                return backend.read(str(path)), float(done["build_seconds"])
            except Exception as exc:
                warnings.warn(
                    f"cached index {path} is unreadable ({exc}); rebuilding", stacklevel=2
                )
        else:
            warnings.warn(f"cached index {path} does not match the data; rebuilding", stacklevel=2)
    blocks = PrefixBlocks(emb.database, dim, on_block=on_chunk)
    index, seconds = stopwatch(lambda: backend.build(blocks, dim))
    if path is not None:
        sink.index(path, lambda tmp: backend.write(index, tmp))
        sink.remember(meta_path, meta, {"build_seconds": seconds})
    return index, seconds
