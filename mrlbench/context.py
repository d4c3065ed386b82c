"""What a strategy sees while the runner runs it (``RetrievalContext``). ``Context``: for
one encoder and one backend of a run, the searches the strategies planned, run once and
shared, resumed from the neighbour files of an earlier run, and reranks of shortlists;
``OneQuery``: the same for one query of the latency sample (``Context.latencies``)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from mrlbench import neighbors
from mrlbench.config import RunConfig, Spec
from mrlbench.cost import selection_mflops
from mrlbench.errors import DataError, MrlbenchError, WriteError
from mrlbench.index_cache import index_path
from mrlbench.rerank import rerank
from mrlbench.resume import MISSING, cached
from mrlbench.sampling import latency_sample, sample_queries
from mrlbench.search_stage import check_request, search_dim
from mrlbench.sink import Direct
from mrlbench.store import digest, scan
from mrlbench.timing import Untimed, best_of, one_at_a_time, stopwatch
from mrlbench.truth import ground_truth
from mrlbench.types import (
    Backend,
    Embeddings,
    Encoder,
    Observer,
    SearchRequest,
    Shortlist,
    Strategy,
)


class Context:
    """Searches and reranks for one (encoder, backend) pair. Its files go to ``sink``
    (``mrlbench.sink``: written at once by default; recorded on a worker)."""

    def __init__(
        self,
        cfg: RunConfig,
        enc: Spec[Encoder],
        be: Spec[Backend],
        observer: Observer,
        sink: Any = None,
    ) -> None:
        self.cfg, self.enc, self.be, self.observer = cfg, enc, be, observer
        self.sink = sink or Direct()
        self.encoder, self.backend = enc.component, be.component
        self.queries = enc.queries  # a seeded sample of this many queries, or None
        self._sampled: dict[int, Embeddings] = {}
        first = self.embeddings(self.encoder.dims[0], check=False)
        self.model = enc.label
        self.dataset = first.query_dataset
        self.index_name = neighbors.file_tag(be.label, self.backend)
        self.n_database = len(first.database)
        self.n_queries = len(first.queries)
        self.labels = (first.database_labels, first.query_labels)
        unique = {id(e): e for e in (self.embeddings(d, check=False) for d in self.encoder.dims)}
        for emb in unique.values():
            same_labels(first, emb, enc.label)
        self.data_key = digest([self._fingerprint(e) for e in unique.values()])
        self.sample = latency_sample(self.n_queries, cfg.latency_queries)
        self.longest_k = max(cfg.ks)
        self._found: dict[tuple[int, int], Shortlist | Exception] = {}
        self._query_seconds: dict[tuple[int, int], np.ndarray] = {}
        self.spreads: list[float] = []  # of the stages timed since the runner last cleared it
        self._truth: dict[int, np.ndarray] = {}

    @staticmethod
    def _fingerprint(emb: Embeddings) -> str:
        return f"{emb.fingerprint}:{emb.query_fingerprint or scan(emb.queries, finite=False)}"

    def embeddings(self, dim: int, check: bool = True) -> Embeddings:
        emb = self.encoder.embeddings(dim)
        if check:
            check_request(emb, dim, [])
        if self.queries is None:
            return emb
        if id(emb) not in self._sampled:
            self._sampled[id(emb)] = sample_queries(emb, self.queries)
        return self._sampled[id(emb)]

    def index_file(self, dim: int) -> Path:
        """Where the index of the ``dim``-prefix is cached."""
        emb = self.embeddings(dim)
        return index_path(
            self.cfg.index_cache, self.model, emb.dataset, dim, self.backend.cache_name
        )

    def resolve(self, request: SearchRequest) -> SearchRequest:
        """A request with its ``k`` filled in (``None``: the longest cut-off)."""
        return SearchRequest(request.dim, request.k or self.longest_k)

    # -------------------------------------------------------------------------- searches
    def prepare(self, requests: set[SearchRequest]) -> None:
        """Run every requested search, one index per dim, resuming finished ones."""
        wanted = {(r.dim, r.k or self.longest_k) for r in requests}
        for dim, k in wanted:  # every request checked before any index is built
            try:
                check_request(self.embeddings(dim), dim, [k], self.backend)
            except Exception as exc:
                self._found[(dim, k)] = exc
        wanted = {w for w in wanted if w not in self._found}
        for dim in sorted({d for d, _ in wanted}):
            ks = sorted({k for d, k in wanted if d == dim})
            pending = [k for k in ks if not self._resume(dim, k)]
            if pending:
                self._search_dim(dim, pending)

    def _key(self, dim: int, k: int) -> dict:
        return {
            "data": self.data_key,
            "backend": self.be.table,
            "dim": dim,
            "k": k,
            "timing": self.cfg.timing(),
        }

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
        if ids.shape[1] < k:  # cut to [run] keep_neighbors: this search runs again
            return False
        if self.cfg.csv and not stem.with_name(stem.name + ".csv").is_file():
            self.sink.save_neighbors(stem, ids, csv=True)
        self._keep(dim, k, ids, done, str(npy.relative_to(self.cfg.out)))
        return True

    def _keep(self, dim: int, k: int, ids: np.ndarray, done: dict, path: str) -> None:
        self._found[(dim, k)] = Shortlist(
            ids,
            done["seconds"],
            done["mflops_per_query"],
            done["build_seconds"],
            done["device"],
            path,
            done["spread"],
            selection_mflops(done["mflops_per_query"] * 1e6 / dim, k),  # candidates scored
        )
        self._query_seconds[(dim, k)] = np.asarray(done["query_seconds"], dtype=np.float64)

    def _search_dim(self, dim: int, ks: list[int]) -> None:
        try:
            emb = self.embeddings(dim)
            path = self.index_file(dim)
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
                self.sample,
                self.sink,
            )
        except WriteError:
            raise
        except Exception as exc:
            for k in ks:
                self._found[(dim, k)] = exc
            return
        for k, result in found.items():
            done = {
                "seconds": result.seconds,
                "spread": result.spread,
                "mflops_per_query": result.mflops_per_query,
                "build_seconds": build_s,
                "device": self.backend.device,
                "query_seconds": result.query_seconds.tolist(),
                **result.report,  # a sharded index: each shard's rows and seconds
            }
            stem = self._stem(dim, k)
            kept = result.ids[:, : self.cfg.keep_neighbors]
            npy = self.sink.save_neighbors(stem, kept, csv=self.cfg.csv)
            self.sink.remember(stem.with_name(stem.name + ".json"), self._key(dim, k), done)
            ids = result.ids if kept.shape[1] < k else self.sink.stored(npy, kept)  # mapped
            self._keep(dim, k, ids, done, str(npy.relative_to(self.cfg.out)))

    def truth(self, dim: int) -> np.ndarray:
        """The exact top-``max(ks)`` of every query at ``dim`` (``knn_recall``'s ground
        truth), computed once and cached (``mrlbench.truth``); never timed."""
        if dim not in self._truth:
            emb = self.embeddings(dim)
            self.observer.begin(f"{self.model}: exact ground truth {dim}d", len(emb.database))
            data = digest([self.data_key, self._fingerprint(emb)])
            self._truth[dim] = ground_truth(
                emb, dim, self.longest_k, data, self.cfg.threads, self.observer.advance
            )
        return self._truth[dim]

    def search(self, dim: int, k: int | None = None) -> Shortlist:
        k = k or self.longest_k
        found = self._found.get((dim, k))
        if found is None:
            raise MrlbenchError(f"search {dim}d k={k} was not planned by the strategy")
        if isinstance(found, Exception):
            raise found
        self.spreads.append(found.spread)
        return found

    def rerank(self, ids: np.ndarray, dim: int, keep: int) -> tuple[np.ndarray, float]:
        emb = self.embeddings(dim)
        threads = self.cfg.threads

        def work(rows: slice) -> np.ndarray:
            return rerank(emb.database, emb.queries[rows], ids[rows], dim, keep, threads)

        work(slice(0, 64))  # untimed warm-up (thread pool, caches)
        out, timed = best_of(self.cfg.repeats, lambda: work(slice(None)))
        self.spreads.append(timed.spread)
        return out, timed.seconds

    # --------------------------------------------------------------------------- latency
    def latencies(self, strategy: Strategy) -> tuple[dict[str, np.ndarray], float]:
        """Seconds per query of each of ``strategy``'s rows, one query at a time through
        its whole pipeline: its search (timed one query at a time while the index was
        in memory) plus its reranks (run here for that query alone), on the seeded
        sample, best of ``repeats`` passes after one warm-up query; fewer queries when
        they are slow. Also the spread of the passes' medians."""

        def one(position: int) -> dict[str, float]:
            return {row.label: row.seconds for row in strategy.run(OneQuery(self, position))}

        return one_at_a_time(len(self.sample), one, self.cfg.repeats)


class OneQuery:
    """A ``RetrievalContext`` over one query of the latency sample: searches give that
    query's shortlist with the time its search took alone; reranks run for it alone."""

    def __init__(self, ctx: Context, position: int) -> None:
        self.ctx, self.position = ctx, position
        self.query = int(ctx.sample[position])
        self.model, self.dataset, self.index_name = ctx.model, ctx.dataset, ctx.index_name
        self.n_database, self.n_queries = ctx.n_database, 1

    def search(self, dim: int, k: int | None = None) -> Shortlist:
        k = k or self.ctx.longest_k
        found = self.ctx.search(dim, k)
        seconds = self.ctx._query_seconds[(dim, k)]
        if self.position >= len(seconds):
            raise Untimed
        q = self.query
        return replace(found, ids=found.ids[q : q + 1], seconds=float(seconds[self.position]))

    def rerank(self, ids: np.ndarray, dim: int, keep: int) -> tuple[np.ndarray, float]:
        emb = self.ctx.embeddings(dim)
        q = self.query
        return stopwatch(lambda: rerank(emb.database, emb.queries[q : q + 1], ids, dim, keep, 1))


def same_labels(first: Embeddings, other: Embeddings, label: str) -> None:
    """Every dim an encoder serves must describe the same rows with the same labels."""
    for what, a, b in (
        ("database", first.database_labels, other.database_labels),
        ("query", first.query_labels, other.query_labels),
    ):
        if len(a) != len(b) or not np.array_equal(a, b):
            raise DataError(
                f"encoder {label}: its dims disagree on the {what} rows or labels "
                f"({len(a)} against {len(b)} rows)"
            )
