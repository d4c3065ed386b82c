"""The index that ``faiss-ivf`` and ``faiss-ivfpq`` build and search (``IVFIndex``) and its
file format.

An index is FAISS's top index (an ``IndexIVF*``, or an ``IndexPreTransform`` of an OPQ
rotation and the IVF) and, for AdANNS, the coarse quantiser at ``coarse_dim``; rigid IVF
(``coarse_dim`` the search dim) has none: the IVF's own quantiser assigns.

Index files (``index_name`` ``ivf{nlist}``, ``ivf{nlist}pq{m}``, ``ivf{nlist}opq{m}``; the
cache file adds ``_c{coarse_dim}`` and non-default ``_t{train_size}`` / ``_s{seed}``) are
one ``.npz`` of FAISS's serialised indexes (``index``: the IVF, with its OPQ; ``coarse``:
the coarse quantiser, when there is one) and a JSON header (``meta``: the backend's
``kind``, the ``format`` and the ``coarse_dim``)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mrlbench import DataError, normalize_rows
from mrlbench_plugins.faiss import load

FORMAT = 1  # of the index file


@dataclass
class IVFIndex:
    """A built index: the FAISS top index (``IndexIVF*``, or ``IndexPreTransform`` of an
    OPQ rotation and the IVF), the coarse quantiser at ``coarse_dim`` (``None`` for rigid
    IVF: the IVF's own quantiser), and the sizes of the inverted lists."""

    top: Any
    coarse_dim: int
    coarse: Any | None = None
    ivf: Any = field(init=False)
    opq: Any | None = field(init=False)
    sizes: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        faiss = load()
        if isinstance(self.top, faiss.IndexPreTransform):
            self.ivf = faiss.downcast_index(self.top.index)
            self.opq = faiss.downcast_VectorTransform(self.top.chain.at(0))
        else:
            self.ivf, self.opq = faiss.downcast_index(self.top), None
        self.sizes = list_sizes(self.ivf)

    @property
    def dim(self) -> int:
        return int(self.ivf.d)

    @property
    def nlist(self) -> int:
        return int(self.ivf.nlist)

    @property
    def ntotal(self) -> int:
        return int(self.ivf.ntotal)

    def rotate(self, x: np.ndarray) -> np.ndarray:
        """``x`` in the IVF's space (the OPQ rotation applied, if any)."""
        return x if self.opq is None else self.opq.apply(x)


def list_sizes(ivf: Any) -> np.ndarray:
    """The number of vectors in each inverted list, int64."""
    lists = ivf.invlists
    return np.fromiter((lists.list_size(i) for i in range(ivf.nlist)), np.int64, ivf.nlist)


def coarse_prefix(x: np.ndarray, coarse_dim: int) -> np.ndarray:
    """The normalised ``coarse_dim``-prefix of normalised rows (re-normalised first columns);
    ``x`` itself when ``coarse_dim`` is its width."""
    if coarse_dim >= x.shape[1]:
        return np.ascontiguousarray(x, dtype=np.float32)
    return normalize_rows(x[:, :coarse_dim])


def write_index(index: IVFIndex, kind: str, path: str) -> None:
    """Write ``index`` of the backend kind ``kind`` to the ``.npz`` file ``path``."""
    faiss = load()
    meta = {"kind": kind, "format": FORMAT, "coarse_dim": index.coarse_dim}
    arrays = {
        "meta": np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
        "index": faiss.serialize_index(index.top),
    }
    if index.coarse is not None:
        arrays["coarse"] = faiss.serialize_index(index.coarse)
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def read_index(path: str, kind: str, name: str) -> IVFIndex:
    """The index in ``path``; a DataError when it is not one of the backend ``name``'s
    kind ``kind`` in this format."""
    faiss = load()
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(data["meta"].tobytes().decode())
        if meta.get("kind") != kind or meta.get("format") != FORMAT:
            raise DataError(f"{path} is not a {name} index (format {FORMAT})")
        top = faiss.deserialize_index(data["index"])
        coarse = faiss.deserialize_index(data["coarse"]) if "coarse" in data else None
    return IVFIndex(top, int(meta["coarse_dim"]), coarse)
