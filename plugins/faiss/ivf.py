"""Backend ``faiss-ivf``: IVF-Flat on the CPU, rigid or AdANNS-IVF (Rege et al., NeurIPS
2023) with ``coarse_dim`` below the search dim; and the hook that registers it with
``faiss-ivfpq`` (``ivfpq.py``), this module being the one ``faiss_ivf`` entry point of both.

``nlist`` lists of the d-dim database vectors, ``nprobe`` of them scanned exactly. The
coarse quantiser works at ``coarse_dim`` (c; default and at most the search dim: rigid
IVF, FAISS's own ``IndexIVFFlat``); what the two IVF backends share (keys, the AdANNS
build, the preassigned search, the coarse step of the cost) is in ``ivf_base.py``, their
training in ``ivf_train.py``, the index and its file format in ``ivf_index.py``.

Cost (MFLOPs per query, one multiply-add = 1, counted as ``ivf_base.py`` says):
``nlist * c`` (coarse step) ``+ S * d`` where S is the number of database vectors in the
query's ``nprobe`` probed lists."""

from __future__ import annotations

from typing import Any

import numpy as np

from mrlbench import hookimpl
from mrlbench_plugins.faiss import load
from mrlbench_plugins.faiss.ivf_base import FaissIVFBase
from mrlbench_plugins.faiss.ivf_index import IVFIndex
from mrlbench_plugins.faiss.ivfpq import FaissIVFPQ


class FaissIVF(FaissIVFBase):
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
    named = ("nlist",)  # ivf{nlist}
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


@hookimpl
def mrlbench_register_backends(register):
    register(FaissIVF)
    register(FaissIVFPQ)
