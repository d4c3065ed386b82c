"""Backend ``faiss-ivfpq``: IVF-PQ (optionally OPQ) on the CPU, rigid or with AdANNS's
decoupled coarse quantiser (``coarse_dim``; what it shares with ``faiss-ivf``:
``ivf_base.py``). It is registered by ``ivf.py``'s hook, with ``faiss-ivf``.

Database vectors' residuals to their list's centroid are coded with ``m`` sub-quantisers
of 256 centroids (8 bits, ``m`` bytes a vector), after an OPQ rotation learnt first with
``opq = true`` (FAISS's ``OPQm,IVFnlist,PQm``); AdANNS-OPQ is ``opq = true`` on a small
prefix. Training takes at least 65,536 rows by default (PQ's codebooks), and at least 256.

Cost (MFLOPs per query, one multiply-add = 1, counted as ``ivf_base.py`` says; m
sub-quantisers of 256 centroids, residual PQ as FAISS builds it): ``d * d`` (the OPQ
rotation, with ``opq = true``) ``+ nlist * c`` (coarse step) ``+ nprobe * d`` (only when
c < d: the L2 distances at d to the probed lists' centroids, the first term of FAISS's
residual distance) ``+ 256 * d`` (the query's inner-product look-up table, once)
``+ L * 256 * m`` (per non-empty probed list, L of them, the precomputed list table plus
-2 x the query's table) ``+ S * m`` (m table look-ups per scanned code, S the number of
database vectors in the probed lists). When FAISS does not precompute the list tables
(``nlist * m * 256 * 4`` bytes above its 2 GiB cap) the two table terms are
``L * (d + 256 * d)`` instead (the query's residual to each non-empty probed list and its
distance table). Heap updates and the re-normalisation of the coarse prefix are not
counted."""

from __future__ import annotations

from typing import Any

import numpy as np

from mrlbench import ConfigError, DataError
from mrlbench_plugins.faiss import load
from mrlbench_plugins.faiss.ivf_base import DEFAULT_SEED, FaissIVFBase, positive
from mrlbench_plugins.faiss.ivf_index import IVFIndex

KSUB = 256  # centroids per PQ sub-quantiser (8 bits)
PQ_TRAIN_POINTS = KSUB * 256  # what FAISS trains PQ codebooks on at most


class FaissIVFPQ(FaissIVFBase):
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
    named = ("nlist", "m", "opq")  # ivf{nlist}{opq|pq}{m}
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
        positive("m", m)
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
