"""What the backends ``faiss-ivf`` (``ivf.py``) and ``faiss-ivfpq`` (``ivfpq.py``) share:
their keys, cache names, the build with AdANNS's decoupled coarse quantiser (Rege et al.,
NeurIPS 2023), the preassigned search and the counted cost's coarse step.

Both index the normalised ``dim``-prefix (the search dim, d). ``coarse_dim`` (c; default:
the search dim) is the prefix size the coarse quantiser works at: its ``nlist`` k-means
centroids are trained on, and database items and queries assigned by, the normalised
c-prefix (the first c columns of the normalised d-prefix, re-normalised), while the
inverted lists hold and are scanned with the d-dim vectors (AdANNS-IVF; AdANNS-OPQ is
``faiss-ivfpq`` with ``opq = true`` on a small prefix). A ``coarse_dim`` of at least the
search dim is clamped to it: that index is rigid IVF, built exactly as FAISS builds an
``IndexIVFFlat`` / ``IndexIVFPQ`` (``train`` then ``add``), so a sweep over dims with one
``coarse_dim`` is AdANNS above it and rigid at and below it.

With a smaller ``coarse_dim`` the IVF's own d-dim quantiser holds, for each list, the mean
of the d-dim training vectors assigned to it (what IVF-PQ's residuals are taken against).
FAISS does every list scan: queries are assigned by the coarse quantiser first, then
searched with ``IndexIVF.search_preassigned`` (database items added with ``add_core``).
Training: ``ivf_train.py``; the index and its file: ``ivf_index.py``.

Cost (MFLOPs per query, one multiply-add = 1; counted per query from the actual sizes of
the lists it probed, averaged over queries; ``search`` returns it divided by d, as
distance computations at d, which the harness turns into MFLOPs as ``value * d / 1e6``):
``nlist * c`` (the coarse step) plus each backend's list scan (its ``extra_work``)."""

from __future__ import annotations

from collections.abc import Iterable, Sized
from typing import Any, ClassVar

import numpy as np

from mrlbench import ConfigError, DataError
from mrlbench_plugins.faiss import FaissBackend, load
from mrlbench_plugins.faiss.ivf_index import (
    FORMAT,
    IVFIndex,
    coarse_prefix,
    read_index,
    write_index,
)
from mrlbench_plugins.faiss.ivf_train import (
    assign,
    kmeans,
    list_means,
    train_count,
    train_encoder,
    train_rows,
    train_sample,
)

DEFAULT_SEED = 1234  # FAISS's own k-means seed


def positive(key: str, value: Any, optional: bool = False) -> None:
    """A ConfigError unless ``value`` is a positive integer (or, ``optional``, None)."""
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{key} must be a positive integer, not {value!r}")


class FaissIVFBase(FaissBackend):
    """What ``faiss-ivf`` and ``faiss-ivfpq`` share: keys, training, the coarse step,
    preassigned search, the counted cost and the index file."""

    kind_name: ClassVar[str]
    train_minimum: ClassVar[int] = 0  # rows the encoder wants beyond the k-means

    def __init__(
        self,
        nlist: int = 1024,
        nprobe: int = 16,
        coarse_dim: int | None = None,
        train_size: int | None = None,
        seed: int = DEFAULT_SEED,
    ) -> None:
        positive("nlist", nlist)
        positive("nprobe", nprobe)
        positive("coarse_dim", coarse_dim, optional=True)
        positive("train_size", train_size, optional=True)
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ConfigError(f"seed must be a non-negative integer, not {seed!r}")
        if nprobe > nlist:
            raise ConfigError(f"nprobe ({nprobe}) cannot be larger than nlist ({nlist})")
        if train_size is not None and train_size < nlist:
            raise ConfigError(
                f"train_size ({train_size}) must be at least nlist ({nlist}): "
                "k-means needs a training row per list"
            )
        self.nlist, self.nprobe, self.coarse_dim = nlist, nprobe, coarse_dim
        self.train_size, self.seed = train_size, seed

    # ---------------------------------------------------------------- names and params
    @property
    def cache_name(self) -> str:
        name = self.index_name
        if self.coarse_dim is not None:
            name += f"_c{self.coarse_dim}"
        if self.train_size is not None:
            name += f"_t{self.train_size}"
        if self.seed != DEFAULT_SEED:
            name += f"_s{self.seed}"
        return name

    def params(self) -> dict[str, Any]:
        return {
            "kind": self.kind_name,
            "format": FORMAT,
            "nlist": self.nlist,
            "coarse_dim": self.coarse_dim,
            "train_size": self.train_size,
            "seed": self.seed,
        }

    def effective_coarse_dim(self, dim: int) -> int:
        """The coarse dim at search dim ``dim``: ``coarse_dim`` clamped to ``dim``."""
        return dim if self.coarse_dim is None else min(self.coarse_dim, dim)

    # ---------------------------------------------------------------- what subclasses set
    def new_ivf(self, quantizer: Any, dim: int) -> Any:
        """An untrained FAISS IVF index at ``dim`` over ``quantizer``."""
        raise NotImplementedError

    def new_opq(self, dim: int) -> Any | None:
        """An untrained rotation applied before the IVF, or None."""
        return None

    def extra_work(self, index: IVFIndex, probed: np.ndarray) -> float:
        """Multiply-adds per query beyond the coarse step, from the probed list sizes
        ``probed`` (queries x nprobe)."""
        raise NotImplementedError

    def needs_coarse_distances(self, index: IVFIndex) -> bool:
        """Whether the list scan uses the d-dim distance to each probed centroid."""
        return False

    # ---------------------------------------------------------------- build
    def build(self, chunks: Iterable[np.ndarray], dim: int) -> IVFIndex:
        faiss = load()
        if not isinstance(chunks, Sized):
            chunks = [np.asarray(c) for c in chunks]
        rows = train_rows(len(chunks), self.nlist, self.train_size, self.train_minimum)
        self.check_train_rows(rows)
        sample = train_sample(chunks, rows, self.seed)
        opq = self.new_opq(dim)
        if opq is not None:
            opq.train(sample)
        rotated = sample if opq is None else opq.apply(sample)
        coarse_dim = self.effective_coarse_dim(dim)
        if coarse_dim == dim:  # rigid IVF, as FAISS trains and fills it
            ivf = self.new_ivf(faiss.IndexFlatL2(dim), dim)
            ivf.train(rotated)
            coarse = None
        else:
            ivf, coarse = self.train_adanns(sample, rotated, dim, coarse_dim)
        del sample, rotated
        for chunk in chunks:
            x = chunk if opq is None else opq.apply(chunk)
            if coarse is None:
                ivf.add(x)
            else:
                labels = np.ascontiguousarray(assign(coarse, coarse_prefix(chunk, coarse_dim)))
                ivf.add_core(len(x), faiss.swig_ptr(x), None, faiss.swig_ptr(labels))
        top = ivf if opq is None else faiss.IndexPreTransform(opq, ivf)
        top.ntotal = ivf.ntotal
        return IVFIndex(top, coarse_dim, coarse)

    def check_train_rows(self, rows: int) -> None:
        """Raise a DataError when ``rows`` cannot train the encoder."""

    def check_rows(self, rows: int) -> None:
        """A database of ``rows`` rows must train ``nlist`` lists (and the encoder)."""
        self.check_train_rows(train_count(rows, self.nlist, self.train_size, self.train_minimum))

    def train_adanns(
        self, sample: np.ndarray, rotated: np.ndarray, dim: int, coarse_dim: int
    ) -> tuple[Any, Any]:
        """(the IVF at ``dim``, the coarse quantiser at ``coarse_dim``): k-means on the
        coarse prefix; each list's d-dim centroid is the mean of its training rows."""
        faiss = load()
        template = self.new_ivf(faiss.IndexFlatL2(dim), dim)  # its clustering parameters
        short = coarse_prefix(sample, coarse_dim)
        coarse = kmeans(short, self.nlist, template.cp)
        labels = assign(coarse, short)
        quantizer = faiss.IndexFlatL2(dim)
        quantizer.add(list_means(rotated, labels, self.nlist))
        ivf = self.new_ivf(quantizer, dim)
        if not ivf.is_trained:
            train_encoder(ivf, rotated, labels, self.seed)
        return ivf, coarse

    # ---------------------------------------------------------------- search
    def probe(
        self, index: IVFIndex, queries: np.ndarray, rotated: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(coarse distances, probed lists), ``nprobe`` per query: rigid IVF asks its own
        quantiser with the ``rotated`` (IVF-space) queries, AdANNS the coarse quantiser
        with the queries' coarse prefix (then, where the scan needs them, the d-dim
        distances to the probed lists' centroids)."""
        faiss = load()
        nprobe = min(self.nprobe, index.nlist)
        if index.coarse is None:
            return index.ivf.quantizer.search(rotated, nprobe)
        _, lists = index.coarse.search(coarse_prefix(queries, index.coarse_dim), nprobe)
        distances = np.zeros(lists.shape, dtype=np.float32)
        if self.needs_coarse_distances(index):
            lists = np.ascontiguousarray(lists)
            faiss.downcast_index(index.ivf.quantizer).compute_distance_subset(
                len(rotated),
                faiss.swig_ptr(rotated),
                nprobe,
                faiss.swig_ptr(distances),
                faiss.swig_ptr(lists),
            )
        return distances, lists

    def search(self, index: IVFIndex, queries: np.ndarray, k: int) -> tuple[np.ndarray, float]:
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if queries.shape[1] != index.dim:
            raise DataError(f"{self.name}: queries have {queries.shape[1]} dims, index {index.dim}")
        rotated = np.ascontiguousarray(index.rotate(queries), dtype=np.float32)
        distances, lists = self.probe(index, queries, rotated)
        index.ivf.nprobe = lists.shape[1]
        _, ids = index.ivf.search_preassigned(rotated, k, lists, distances)
        return ids, self.work(index, lists) / index.dim

    def work(self, index: IVFIndex, lists: np.ndarray) -> float:
        """Counted multiply-adds per query (the module docstring's rule)."""
        probed = np.where(lists >= 0, index.sizes[np.maximum(lists, 0)], 0)
        if len(probed) == 0:
            return 0.0
        return index.nlist * index.coarse_dim + self.extra_work(index, probed)

    # ---------------------------------------------------------------- files
    def write(self, index: IVFIndex, path: str) -> None:
        write_index(index, self.kind_name, path)

    def read(self, path: str) -> IVFIndex:
        return read_index(path, self.kind_name, self.name)
