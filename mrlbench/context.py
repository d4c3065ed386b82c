"""What a strategy sees while the runner runs it (``RetrievalContext``). ``Context``: for
one encoder and one backend of a run, the searches the strategies planned, run once and
shared, resumed from the neighbour files of an earlier run, and reranks of shortlists;
``OneQuery``: the same for one query of the latency sample (``Context.latencies``)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from mrlbench import metrics, neighbors
from mrlbench.config import RunConfig, Spec
from mrlbench.cost import selection_mflops
from mrlbench.errors import DataError, MrlbenchError, WriteError
from mrlbench.index_cache import index_entry
from mrlbench.rerank import rerank
from mrlbench.sampling import latency_sample, query_fingerprint, sample_queries
from mrlbench.search_stage import check_request, search_dim
from mrlbench.sink import Direct
from mrlbench.store import digest, scan
from mrlbench.timing import Untimed, best_of, one_at_a_time, stopwatch
from mrlbench.truth import Truth, ground_truth, neighbour_distances
from mrlbench.types import (
    Backend,
    Embeddings,
    Encoder,
    Observer,
    SearchRequest,
    Shortlist,
    Strategy,
)

SEARCH_FORMAT = 3  # the search sidecars' format (3: every one-query sample, identity)


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
        identity: dict[str, Any] | None = None,
        session: str = "",
    ) -> None:
        self.cfg, self.enc, self.be, self.observer = cfg, enc, be, observer
        self.sink = sink or Direct()
        self.identity = identity or cfg.identity()  # the driver's, on a worker
        self.session = session  # the session that times this pair's rows
        self.encoder, self.backend = enc.component, be.component
        self.queries = enc.queries  # a seeded sample of this many queries, or None
        self._sampled: dict[int, Embeddings] = {}
        first = self.embeddings(self.encoder.dims[0], check=False)
        self.model = enc.label
        self.dataset = first.query_dataset
        self.index_name = neighbors.file_tag(be.base_label, self.backend)
        self.n_database = len(first.database)
        self.n_queries = len(first.queries)
        self.labels = (first.database_labels, first.query_labels)
        unique = {id(e): e for e in (self.embeddings(d, check=False) for d in self.encoder.dims)}
        for emb in unique.values():
            same_labels(first, emb, enc.label)
        labels = [scan(np.asarray(y), finite=False) for y in self.labels]
        fingerprints = [self._fingerprint(e) for e in unique.values()]
        self.data_key = digest([labels, *fingerprints])  # the vectors and the labels
        self.sample = latency_sample(self.n_queries, cfg.latency_queries)
        self.longest_k = max(cfg.ks)
        self._found: dict[tuple[int, int], Shortlist | Exception] = {}
        self._query_seconds: dict[tuple[int, int], np.ndarray] = {}
        self.spreads: list[float] = []  # of the stages timed since the runner last cleared it
        self._truth: dict[int, Truth] = {}

    @staticmethod
    def _fingerprint(emb: Embeddings) -> str:
        return f"{emb.fingerprint}:{query_fingerprint(emb)}"

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
        """The index cache entry of the ``dim``-prefix (content-addressed: shared by every
        run and config over the same rows and build parameters)."""
        return index_entry(self.cfg.index_cache, self.backend, self.embeddings(dim), dim)

    # -------------------------------------------------------------------------- searches
    def prepare(self, requests: set[SearchRequest]) -> None:
        """Run every requested search, one index per dim. A search done in an earlier
        session is never resumed: only unfinished cells ask, and a row's timings all
        come from one session (its search's and its reranks'), as the row says."""
        wanted = {(r.dim, r.k or self.longest_k) for r in requests}
        for dim, k in wanted:  # every request checked before any index is built
            try:
                check_request(self.embeddings(dim), dim, [k], self.backend)
            except Exception as exc:
                self._found[(dim, k)] = exc
        wanted = {w for w in wanted if w not in self._found}
        for dim in sorted({d for d, _ in wanted}):
            self._search_dim(dim, sorted({k for d, k in wanted if d == dim}))

    def _key(self, dim: int, k: int) -> dict:
        return {
            "format": SEARCH_FORMAT,
            "data": self.data_key,
            "backend": self.be.key(),
            "dim": dim,
            "k": k,
            "timing": self.cfg.timing(),
            "identity": self.identity,
        }

    def _stem(self, dim: int, k: int) -> Path:
        stem = neighbors.search_stem(self.model, self.index_name, dim, k, self.dataset)
        return self.cfg.out / "neighbors" / stem

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
        if self._query_seconds[(dim, k)].ndim != 2:  # (passes, queries)
            self._query_seconds[(dim, k)] = np.zeros((0, 0))

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

    def truth(self, dim: int) -> Truth:
        """The exact top-``max(ks)`` of every query at ``dim`` with their distances
        (``knn_recall``'s ground truth), computed once and cached (``mrlbench.truth``);
        never timed."""
        if dim not in self._truth:
            emb = self.embeddings(dim)
            self.observer.begin(f"{self.model}: exact ground truth {dim}d", len(emb.database))
            data = digest([self.data_key, self._fingerprint(emb)])
            self._truth[dim] = ground_truth(
                emb, dim, self.longest_k, data, self.cfg.threads, self.observer.advance
            )
        return self._truth[dim]

    def knn_recall(self, ids: np.ndarray, dim: int) -> dict[str, float]:
        """``knn_recall@k`` of neighbours ``ids`` found at final dim ``dim``, measured with
        ann-benchmarks' rule (``metrics.knn_recall``): each returned id's distance is
        computed from the arrays (only the rows returned are read) and compared with the
        k-th true distance + 1e-3. Never timed."""
        truth = self.truth(dim)
        ids = np.asarray(ids[:, : self.longest_k], dtype=np.int64)
        emb = self.embeddings(dim)
        found = neighbour_distances(emb.database, emb.queries, ids, dim, truth, self.cfg.threads)
        return metrics.knn_recall(ids, truth.ids, self.cfg.ks, found, truth.distances)

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
        sample, ``repeats`` passes after one warm-up query, every (query, pass) sample
        kept (passes, queries); fewer queries when they are slow. Also the spread of the
        passes' medians. Pass p of a row adds its search's pass-p time for that query."""

        def one(position: int, round_: int) -> dict[str, float]:
            rows = strategy.run(OneQuery(self, position, round_))
            return {row.label: row.seconds for row in rows}

        return one_at_a_time(len(self.sample), one, self.cfg.repeats)


class OneQuery:
    """A ``RetrievalContext`` over one query of the latency sample, in pass ``round_``:
    searches give that query's shortlist with the time its search took alone in that
    pass; reranks run for it alone."""

    def __init__(self, ctx: Context, position: int, round_: int = 0) -> None:
        self.ctx, self.position, self.round = ctx, position, round_
        self.query = int(ctx.sample[position])
        self.model, self.dataset, self.index_name = ctx.model, ctx.dataset, ctx.index_name
        self.n_database, self.n_queries = ctx.n_database, 1

    def search(self, dim: int, k: int | None = None) -> Shortlist:
        k = k or self.ctx.longest_k
        found = self.ctx.search(dim, k)
        seconds = self.ctx._query_seconds[(dim, k)]  # (passes, queries)
        if self.position >= seconds.shape[1] or self.round >= seconds.shape[0]:
            raise Untimed
        q, took = self.query, float(seconds[self.round, self.position])
        return replace(found, ids=found.ids[q : q + 1], seconds=took)

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
