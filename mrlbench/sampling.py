"""Which queries run: the seeded sample of an encoder's ``queries = N`` (every search
and metric of a run on it), the queries outside such a sample (``queries = {excluding
= S}``: a split disjoint from it, ``mrlbench tune``'s report split) and the seeded
sample timed one query at a time (``[run] latency_queries``). Reports read the same
rows back."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from mrlbench.errors import ConfigError, DataError
from mrlbench.store import digest, scan
from mrlbench.types import Embeddings


@dataclass(frozen=True)
class QuerySplit:
    """The queries outside the seeded sample of ``excluding`` (the very queries
    ``queries = excluding`` runs), or a seeded sample of ``size`` of them: encoder key
    ``queries = {excluding = S}`` or ``{excluding = S, size = N}``. No query is in both
    that sample and this split."""

    excluding: int
    size: int | None = None

    def rows(self, total: int) -> np.ndarray:
        """The split's rows of ``total`` queries, ascending."""
        rest = np.setdiff1d(np.arange(total), sampled_rows(total, self.excluding))
        if len(rest) == 0:
            raise DataError(
                f"queries = {{excluding = {self.excluding}}} leaves no query (there are {total})"
            )
        if self.size is None or self.size >= len(rest):
            return rest
        picked = np.random.default_rng(1).choice(len(rest), size=self.size, replace=False)
        return np.sort(rest[picked])

    def table(self) -> dict[str, int]:
        """The config value it is read from."""
        return {"excluding": self.excluding} | ({} if self.size is None else {"size": self.size})


Queries = int | QuerySplit  # encoder key ``queries``: a seeded sample, or a split


def parse_queries(value: Any) -> Queries:
    """Encoder key ``queries``: ``N`` (a seeded sample of N) or ``{excluding = S}`` /
    ``{excluding = S, size = N}`` (a ``QuerySplit``)."""
    if _positive(value):
        return value
    if (
        isinstance(value, dict)
        and "excluding" in value
        and set(value) <= {"excluding", "size"}
        and all(_positive(v) for v in value.values())
    ):
        return QuerySplit(value["excluding"], value.get("size"))
    raise ConfigError(
        "encoder key 'queries' must be a positive integer (a seeded sample) or a table "
        "{excluding = S} or {excluding = S, size = N} (the queries outside that sample)"
    )


def _positive(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def query_rows(total: int, queries: Queries | None) -> np.ndarray:
    """The rows of ``total`` queries a run with encoder key ``queries`` searches."""
    if queries is None:
        return np.arange(total)
    if isinstance(queries, QuerySplit):
        return queries.rows(total)
    return sampled_rows(total, queries)


def sample_queries(emb: Embeddings, n: Queries) -> Embeddings:
    """The queries a run takes, in their original order: a seeded sample of ``n``
    (encoder key ``queries = N``: CPU runs at ImageNet size in minutes), or the split
    ``n`` (``queries = {excluding = S}``)."""
    if isinstance(n, QuerySplit):
        rows, key = n.rows(len(emb.queries)), ["excluding", n.excluding, n.size]
    elif n >= len(emb.queries):
        return emb
    else:
        rows, key = sampled_rows(len(emb.queries), n), [n]
    return replace(
        emb,
        queries=np.asarray(emb.queries[rows]),
        query_labels=emb.query_labels[rows],
        query_fingerprint=digest([query_fingerprint(emb), *key]),
    )


def query_fingerprint(emb: Embeddings) -> str:
    """The queries' content hash: the encoder's, or a scan that refuses NaN or Inf in
    them (a NaN query finds no neighbours, every id -1), naming the first bad row."""
    if emb.query_fingerprint:
        return emb.query_fingerprint
    try:
        return scan(emb.queries)
    except DataError as exc:
        raise DataError(f"queries of {emb.query_dataset}: {exc}") from None


def sampled_rows(total: int, n: int) -> np.ndarray:
    """The rows of the seeded sample of ``n`` of ``total`` queries, ascending."""
    if n >= total:
        return np.arange(total)
    return np.sort(np.random.default_rng(0).choice(total, size=n, replace=False))


def latency_sample(n_queries: int, size: int) -> np.ndarray:
    """The seeded sample of queries timed one at a time."""
    rng = np.random.default_rng(0)
    return rng.choice(n_queries, size=min(size, n_queries), replace=False)
