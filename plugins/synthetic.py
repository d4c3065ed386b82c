"""Encoder ``synthetic``: seeded, Matryoshka-like embeddings generated in memory.

Class centres are drawn with a per-dimension scale s_j = j**-decay, and each item adds
noise of scale noise * sqrt(s_j), so early coordinates carry most of the class signal
and accuracy saturates with the prefix size, as in an MRL embedding. This is an
example on data the project generates itself, not a model: use ``arrays`` (or an image
encoder) for real embeddings.
"""

from __future__ import annotations

import numpy as np

from mrlbench.errors import ConfigError
from mrlbench.hookspecs import hookimpl
from mrlbench.store import scan
from mrlbench.types import Embeddings, Encoder


def synthetic_arrays(
    n_database: int, n_queries: int, dim: int, classes: int, seed: int, decay: float, noise: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(database, queries, database labels, query labels), float32 / int64."""
    rng = np.random.default_rng(seed)
    scale = (np.arange(1, dim + 1, dtype=np.float64) ** -decay).astype(np.float32)
    centres = rng.standard_normal((classes, dim), dtype=np.float32) * scale

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        labels = rng.integers(0, classes, n)
        x = centres[labels] + noise * np.sqrt(scale) * rng.standard_normal(
            (n, dim), dtype=np.float32
        )
        return x.astype(np.float32), labels.astype(np.int64)

    xb, yb = draw(n_database)
    xq, yq = draw(n_queries)
    return xb, xq, yb, yq


class SyntheticEncoder(Encoder):
    name = "synthetic"

    def __init__(
        self,
        n_database: int = 20000,
        n_queries: int = 2000,
        dim: int = 256,
        classes: int = 50,
        seed: int = 0,
        decay: float = 0.7,
        noise: float = 0.5,
        dims: list[int] | None = None,
    ) -> None:
        if min(n_database, n_queries, dim, classes) < 1:
            raise ConfigError("n_database, n_queries, dim and classes must be positive")
        self.args = (n_database, n_queries, dim, classes, seed, decay, noise)
        self._dims = tuple(sorted(dims or [d for d in (8, 16, 32, 64, 128, 256, 512) if d <= dim]))
        if self._dims[-1] > dim:
            raise ConfigError(f"dims go up to {self._dims[-1]} but dim is {dim}")
        self._emb: Embeddings | None = None

    @property
    def dims(self) -> tuple[int, ...]:
        return self._dims

    def embeddings(self, dim: int) -> Embeddings:
        if self._emb is None:
            xb, xq, yb, yq = synthetic_arrays(*self.args)
            self._emb = Embeddings(xb, xq, yb, yq, "synthetic", "synthetic", scan(xb))
        return self._emb


@hookimpl
def mrlbench_register_encoders(register):
    register(SyntheticEncoder)
