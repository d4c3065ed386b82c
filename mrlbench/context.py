"""What a strategy sees while it runs (``RetrievalContext``). ``Context``: for one encoder
and one backend of a run, the searches the strategies planned, run once and shared,
resumed from the neighbour files of an earlier run, and reranks of shortlists.
``GivenShortlist``: a shortlist made elsewhere (a neighbours file) and the arrays to
rerank it with, so that a strategy runs on it exactly as in a run."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from mrlbench import neighbors
from mrlbench.config import RunConfig, Spec
from mrlbench.errors import DataError, MrlbenchError
from mrlbench.index_cache import index_path
from mrlbench.rerank import rerank
from mrlbench.resume import MISSING, cached, remember
from mrlbench.search import best_of, check_request, search_dim
from mrlbench.store import digest, scan
from mrlbench.types import Backend, Embeddings, Encoder, Observer, SearchRequest, Shortlist


class Context:
    """Searches and reranks for one (encoder, backend) pair."""

    def __init__(self, cfg: RunConfig, enc: Spec, be: Spec, observer: Observer) -> None:
        self.cfg, self.enc, self.be, self.observer = cfg, enc, be, observer
        self.encoder: Encoder = enc.component  # type: ignore[assignment]
        self.backend: Backend = be.component  # type: ignore[assignment]
        first = self.encoder.embeddings(self.encoder.dims[0])
        self.model = enc.label
        self.dataset = first.query_dataset
        self.index_name = self.backend.index_name
        self.n_database = len(first.database)
        self.n_queries = len(first.queries)
        self.labels = (first.database_labels, first.query_labels)
        unique = {id(e): e for e in (self.encoder.embeddings(d) for d in self.encoder.dims)}
        self.data_key = digest([self._fingerprint(e) for e in unique.values()])
        self._found: dict[tuple[int, int], Shortlist | Exception] = {}

    @staticmethod
    def _fingerprint(emb: Embeddings) -> str:
        return f"{emb.fingerprint}:{scan(emb.queries, finite=False)}"

    def embeddings(self, dim: int) -> Embeddings:
        emb = self.encoder.embeddings(dim)
        check_request(emb, dim, [])
        return emb

    # -------------------------------------------------------------------------- searches
    def prepare(self, requests: set[SearchRequest]) -> None:
        """Run every requested search, one index per dim, resuming finished ones."""
        for dim in sorted({r.dim for r in requests}):
            pending = [k for k in sorted({r.k for r in requests if r.dim == dim})]
            pending = [k for k in pending if not self._resume(dim, k)]
            if pending:
                self._search_dim(dim, pending)

    def _key(self, dim: int, k: int) -> dict:
        return {"data": self.data_key, "backend": self.be.table, "dim": dim, "k": k}

    def _stem(self, dim: int, k: int) -> Path:
        stem = neighbors.search_stem(self.model, self.index_name, dim, k, self.dataset)
        return self.cfg.out / "neighbors" / stem

    def _resume(self, dim: int, k: int) -> bool:
        stem = self._stem(dim, k)
        done = cached(stem.with_name(stem.name + ".json"), self._key(dim, k))
        npy = stem.with_name(stem.name + ".npy")
        if done is MISSING or not npy.is_file():
            return False
        try:
            ids = neighbors.load(npy)
        except DataError:
            return False
        if self.cfg.csv and not stem.with_name(stem.name + ".csv").is_file():
            neighbors.save(stem, ids, csv=True)
        self._found[(dim, k)] = Shortlist(
            ids,
            done["seconds"],
            done["mflops_per_query"],
            done["build_seconds"],
            done["device"],
            str(npy.relative_to(self.cfg.out)),
        )
        return True

    def _search_dim(self, dim: int, ks: list[int]) -> None:
        try:
            emb = self.embeddings(dim)
            path = index_path(self.cfg.index_cache, self.model, emb.dataset, dim, self.index_name)
            label = f"{self.model}/{self.be.label}"
            self.observer.begin(f"{label}: index {dim}d", len(emb.database))
            found, build_s = search_dim(
                self.backend,
                emb,
                dim,
                ks,
                path,
                self.cfg.repeats,
                self.observer.advance,
                lambda k: self.observer.begin(f"{label}: search {dim}d k={k}", 1),
            )
        except Exception as exc:
            for k in ks:
                self._found[(dim, k)] = exc
            return
        for k, result in found.items():
            done = {
                "seconds": result.seconds,
                "mflops_per_query": result.mflops_per_query,
                "build_seconds": build_s,
                "device": self.backend.device,
            }
            stem = self._stem(dim, k)
            npy = neighbors.save(stem, result.ids, csv=self.cfg.csv)
            remember(stem.with_name(stem.name + ".json"), self._key(dim, k), done)
            self._found[(dim, k)] = Shortlist(
                neighbors.load(npy),
                result.seconds,
                result.mflops_per_query,
                build_s,
                self.backend.device,
                str(npy.relative_to(self.cfg.out)),
            )

    def search(self, dim: int, k: int) -> Shortlist:
        found = self._found.get((dim, k))
        if found is None:
            raise MrlbenchError(f"search {dim}d k={k} was not planned by the strategy")
        if isinstance(found, Exception):
            raise found
        return found

    def rerank(self, ids: np.ndarray, dim: int, keep: int) -> tuple[np.ndarray, float]:
        emb = self.embeddings(dim)
        return best_of(self.cfg.repeats, lambda: rerank(emb.database, emb.queries, ids, dim, keep))


class GivenShortlist:
    """A ``RetrievalContext`` whose one search is ``ids``, a shortlist at prefix size
    ``dim`` made elsewhere; reranks read the raw ``database``/``queries`` arrays."""

    def __init__(
        self,
        database: np.ndarray,
        queries: np.ndarray,
        ids: np.ndarray,
        dim: int,
        model: str = "",
        dataset: str = "",
        index_name: str = "",
    ) -> None:
        self.database, self.queries, self.ids, self.dim = database, queries, ids, dim
        self.model, self.dataset, self.index_name = model, dataset, index_name
        self.n_database, self.n_queries = len(database), len(queries)

    def search(self, dim: int, k: int) -> Shortlist:
        if dim != self.dim:
            raise DataError(f"the shortlist is at {self.dim} dims, not {dim}")
        if k > self.ids.shape[1]:
            raise DataError(
                f"the shortlist has {self.ids.shape[1]} neighbours per query, fewer than {k}"
            )
        return Shortlist(self.ids[:, :k], 0.0, 0.0, 0.0, "CPU")

    def rerank(self, ids: np.ndarray, dim: int, keep: int) -> tuple[np.ndarray, float]:
        start = time.perf_counter()
        out = rerank(self.database, self.queries, ids, dim, keep)
        return out, time.perf_counter() - start
