"""Which queries run: the seeded sample of an encoder's ``queries = N`` (every search
and metric of a run on it) and the seeded sample timed one query at a time
(``[run] latency_queries``). Reports read the same rows back."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from mrlbench.errors import DataError
from mrlbench.store import digest, scan
from mrlbench.types import Embeddings


def sample_queries(emb: Embeddings, n: int) -> Embeddings:
    """A seeded sample of ``n`` of the queries, in their original order (encoder key
    ``queries = N``): CPU runs at ImageNet size in minutes."""
    if n >= len(emb.queries):
        return emb
    rows = sampled_rows(len(emb.queries), n)
    return replace(
        emb,
        queries=np.asarray(emb.queries[rows]),
        query_labels=emb.query_labels[rows],
        query_fingerprint=digest([query_fingerprint(emb), n]),
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
