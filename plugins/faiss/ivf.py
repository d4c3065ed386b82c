"""Backends ``faiss-ivf`` (IVF-Flat) and ``faiss-ivfpq`` (IVF-PQ, optionally OPQ) on the
CPU, with AdANNS's decoupled coarse quantiser (Rege et al., NeurIPS 2023).

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

Training uses a seeded sample of ``train_size`` database rows (default: 256 per list,
FAISS's k-means cap, and at least 65,536 for PQ's codebooks, at most the database); fewer
than ``nlist`` rows is an error, fewer than 39 per list a warning (as FAISS's own).

Cost (MFLOPs per query, one multiply-add = 1; counted per query from the actual sizes of
the lists it probed, averaged over queries; ``search`` returns it divided by d, as
distance computations at d, which the harness turns into MFLOPs as ``value * d / 1e6``):

- ``faiss-ivf``: ``nlist * c`` (coarse step) ``+ S * d`` where S is the number of database
  vectors in the query's ``nprobe`` probed lists.
- ``faiss-ivfpq`` (m sub-quantisers of 256 centroids, residual PQ as FAISS builds it):
  ``d * d`` (the OPQ rotation, with ``opq = true``) ``+ nlist * c`` (coarse step)
  ``+ nprobe * d`` (only when c < d: the L2 distances at d to the probed lists' centroids,
  the first term of FAISS's residual distance) ``+ 256 * d`` (the query's inner-product
  look-up table, once) ``+ L * 256 * m`` (per non-empty probed list, L of them, the
  precomputed list table plus -2 x the query's table) ``+ S * m`` (m table look-ups per
  scanned code). When FAISS does not precompute the list tables (``nlist * m * 256 * 4``
  bytes above its 2 GiB cap) the two table terms are ``L * (d + 256 * d)`` instead (the
  query's residual to each non-empty probed list and its distance table).
  Heap updates and the re-normalisation of the coarse prefix are not counted.

Index files (``index_name`` ``ivf{nlist}``, ``ivf{nlist}pq{m}``, ``ivf{nlist}opq{m}``; the
cache file adds ``_c{coarse_dim}`` and non-default ``_t{train_size}`` / ``_s{seed}``) are
one ``.npz`` of FAISS's serialised indexes (the IVF, with its OPQ, and the coarse
quantiser) and a JSON header."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable, Sized
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from mrlbench_plugins.faiss import FaissBackend, load

from mrlbench.errors import ConfigError, DataError
from mrlbench.hookspecs import hookimpl
from mrlbench.vectors import normalize_rows

DEFAULT_SEED = 1234  # FAISS's own k-means seed
POINTS_PER_LIST = 256  # FAISS k-means uses at most this many points per centroid
MIN_POINTS_PER_LIST = 39  # ... and warns below this many
KSUB = 256  # centroids per PQ sub-quantiser (8 bits)
PQ_TRAIN_POINTS = KSUB * 256  # what FAISS trains PQ codebooks on at most
FORMAT = 1  # of the index file


# ------------------------------------------------------------------------------ the index
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


# ------------------------------------------------------------------------------ training
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


def train_rows(n: int, nlist: int, train_size: int | None, minimum: int) -> int:
    """How many rows to train on; a DataError when the database cannot train ``nlist``
    lists, a warning below FAISS's 39 points per list."""
    if n < nlist:
        raise DataError(
            f"nlist = {nlist} is larger than the database ({n} rows): "
            "k-means needs at least one row per list"
        )
    rows = min(n, train_size if train_size else max(POINTS_PER_LIST * nlist, minimum))
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


# ------------------------------------------------------------------------------ backends
def _positive(key: str, value: Any, optional: bool = False) -> None:
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{key} must be a positive integer, not {value!r}")


class _FaissIVF(FaissBackend):
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
        _positive("nlist", nlist)
        _positive("nprobe", nprobe)
        _positive("coarse_dim", coarse_dim, optional=True)
        _positive("train_size", train_size, optional=True)
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
        faiss = load()
        meta = {"kind": self.kind_name, "format": FORMAT, "coarse_dim": index.coarse_dim}
        arrays = {
            "meta": np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
            "index": faiss.serialize_index(index.top),
        }
        if index.coarse is not None:
            arrays["coarse"] = faiss.serialize_index(index.coarse)
        with open(path, "wb") as f:
            np.savez(f, **arrays)

    def read(self, path: str) -> IVFIndex:
        faiss = load()
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(data["meta"].tobytes().decode())
            if meta.get("kind") != self.kind_name or meta.get("format") != FORMAT:
                raise DataError(f"{path} is not a {self.name} index (format {FORMAT})")
            top = faiss.deserialize_index(data["index"])
            coarse = faiss.deserialize_index(data["coarse"]) if "coarse" in data else None
        return IVFIndex(top, int(meta["coarse_dim"]), coarse)


class FaissIVF(_FaissIVF):
    """IVF-Flat: ``nlist`` lists of the d-dim vectors, ``nprobe`` of them scanned exactly;
    AdANNS-IVF with ``coarse_dim`` below the search dim.

    Args:
        nlist: Inverted lists (k-means centroids) of the coarse quantiser.
        nprobe: Lists scanned per query (at most ``nlist``).
        coarse_dim: Prefix size the coarse quantiser is trained and assigned at (AdANNS);
            unset, or at least the search dim: the search dim (rigid IVF).
        train_size: Database rows (a seeded sample) to train on; default 256 per list.
        seed: Seed of the training sample and of FAISS's k-means.
    """

    name = "faiss-ivf"
    kind_name = "ivf-flat"

    @property
    def index_name(self) -> str:
        return f"ivf{self.nlist}"

    def new_ivf(self, quantizer: Any, dim: int) -> Any:
        ivf = load().IndexIVFFlat(quantizer, dim, self.nlist)
        ivf.cp.seed = self.seed
        return ivf

    def extra_work(self, index: IVFIndex, probed: np.ndarray) -> float:
        return float(probed.sum(axis=1).mean()) * index.dim


class FaissIVFPQ(_FaissIVF):
    """IVF-PQ: residuals coded with ``m`` sub-quantisers of 8 bits (``m`` bytes a vector),
    an OPQ rotation learnt first with ``opq = true`` (FAISS's ``OPQm,IVFnlist,PQm``);
    AdANNS-OPQ is ``opq = true`` on a small prefix.

    Args:
        nlist: Inverted lists (k-means centroids) of the coarse quantiser.
        nprobe: Lists scanned per query (at most ``nlist``).
        m: Bytes per vector: PQ sub-quantisers of 8 bits; must divide the search dim.
        opq: Learn an OPQ rotation before IVF-PQ.
        coarse_dim: Prefix size the coarse quantiser is trained and assigned at (AdANNS);
            unset, or at least the search dim: the search dim (rigid IVF).
        train_size: Database rows (a seeded sample) to train on; default 256 per list and
            at least 65,536 (PQ codebooks).
        seed: Seed of the training sample and of FAISS's k-means.
    """

    name = "faiss-ivfpq"
    kind_name = "ivf-pq"
    train_minimum = PQ_TRAIN_POINTS

    def __init__(
        self,
        nlist: int = 1024,
        nprobe: int = 16,
        m: int = 16,
        opq: bool = False,
        coarse_dim: int | None = None,
        train_size: int | None = None,
        seed: int = DEFAULT_SEED,
    ) -> None:
        super().__init__(nlist, nprobe, coarse_dim, train_size, seed)
        _positive("m", m)
        if not isinstance(opq, bool):
            raise ConfigError(f"opq must be true or false, not {opq!r}")
        self.m, self.opq = m, opq

    @property
    def index_name(self) -> str:
        return f"ivf{self.nlist}{'opq' if self.opq else 'pq'}{self.m}"

    def params(self) -> dict[str, Any]:
        return {**super().params(), "m": self.m, "opq": self.opq}

    def check(self, dim: int, k: int) -> None:
        if dim % self.m:
            raise ConfigError(
                f"{self.name}: m = {self.m} sub-quantisers must divide the search dim {dim}"
            )

    def check_train_rows(self, rows: int) -> None:
        if rows < KSUB:
            raise DataError(
                f"{self.name} trains {KSUB} PQ centroids per sub-quantiser: it needs at "
                f"least {KSUB} training rows, not {rows}"
            )

    def new_ivf(self, quantizer: Any, dim: int) -> Any:
        self.check(dim, 1)
        ivf = load().IndexIVFPQ(quantizer, dim, self.nlist, self.m, 8)
        ivf.cp.seed = self.seed
        ivf.pq.cp.seed = self.seed
        return ivf

    def new_opq(self, dim: int) -> Any | None:
        return load().OPQMatrix(dim, self.m) if self.opq else None

    def needs_coarse_distances(self, index: IVFIndex) -> bool:
        return bool(index.ivf.by_residual) and index.ivf.use_precomputed_table == 1

    def extra_work(self, index: IVFIndex, probed: np.ndarray) -> float:
        d, m, ivf = index.dim, self.m, index.ivf
        lists = float((probed > 0).sum(axis=1).mean())  # FAISS skips empty lists
        work = float(probed.sum(axis=1).mean()) * m  # m look-ups per scanned code
        if index.opq is not None:
            work += d * d
        if not ivf.by_residual:
            return work + KSUB * d  # one distance table per query
        if ivf.use_precomputed_table == 1:
            work += KSUB * d + lists * KSUB * m
            if index.coarse is not None:
                work += probed.shape[1] * d  # d-dim distances to the probed centroids
            return work
        return work + lists * (d + KSUB * d)  # a residual and its table per list


@hookimpl
def mrlbench_register_backends(register):
    register(FaissIVF)
    register(FaissIVFPQ)
