"""Encoder ``arrays``: precomputed embedding arrays in the reference pipeline's naming."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from mrlbench import (
    CONFIG_RE,
    ConfigError,
    DataError,
    Embeddings,
    Encoder,
    hookimpl,
    load_embeddings,
)

NESTING = (8, 16, 32, 64, 128, 256, 512, 1024, 2048)


class ArraysEncoder(Encoder):
    """Reads ``{dataset}_{train|val}_{config}-X.npy/-y.npy`` from ``path``.

    ``config`` is one array set whose prefixes give every dim (MRL); ``configs`` maps a
    dim to its own array set (fixed-feature models, one per size), e.g.
    ``configs = {8 = "mrl0_e0_ff8", 2048 = "mrl0_e0_ff2048"}``.

    Args:
        path: Folder of the arrays (the reference inference script's output).
        dataset: Database dataset in the file names: ``1K``, ``4K``, ``FMNIST``, ...
        config: One array set for every dim, e.g. ``mrl1_e0_ff2048`` (or ``configs``).
        configs: Dim -> array set, one model per size (or ``config``).
        dims: Prefix sizes offered (default: 8, 16, ... up to the width, or the
            ``configs`` dims).
        query_dataset: Query set searched against the database, e.g. ``V2`` (default:
            ``dataset``'s own ``val`` split).
    """

    name = "arrays"
    paths = ("path",)

    def __init__(
        self,
        path: str,
        dataset: str = "1K",
        config: str | None = None,
        configs: Mapping[str, str] | None = None,
        dims: list[int] | None = None,
        query_dataset: str | None = None,
    ) -> None:
        if (config is None) == (configs is None):
            raise ConfigError("give exactly one of 'config' or 'configs'")
        self.path, self.dataset, self.query_dataset = path, dataset, query_dataset
        by_dim = {int(d): c for d, c in (configs or {}).items()}
        self._configs = by_dim
        self._config = config
        if dims is None:
            dims = sorted(by_dim) if by_dim else _default_dims(config or "")
        self._dims = tuple(sorted(int(d) for d in dims))
        if not self._dims or min(self._dims) < 1:
            raise ConfigError("dims must be positive integers")
        missing = [d for d in self._dims if by_dim and d not in by_dim]
        if missing:
            raise ConfigError(f"no entry in 'configs' for dims {missing}")
        self._loaded: dict[str, Embeddings] = {}

    @property
    def dims(self) -> tuple[int, ...]:
        return self._dims

    def validate(self, dims: Sequence[int]) -> None:
        """Every array set opened and checked (files, shapes, labels, NaN/Inf: the
        checks ``embeddings`` makes, done now), and every dim served."""
        for dim in sorted({*self._dims, *dims}):
            self.embeddings(dim)

    def database_size(self) -> int:
        """The database rows (the smallest array set's, with ``configs``), read from the
        memory-mapped files ``validate`` opened."""
        return min(len(self.embeddings(d).database) for d in self._dims)

    def embeddings(self, dim: int) -> Embeddings:
        config = self._configs.get(dim) or self._config
        if config is None:
            served = ", ".join(map(str, sorted(self._configs)))
            raise ConfigError(f"no array set for dim {dim} in 'configs' (dims: {served})")
        if config not in self._loaded:
            self._loaded[config] = load_embeddings(
                self.path, self.dataset, config, query_dataset=self.query_dataset
            )
        emb = self._loaded[config]
        if dim > emb.database.shape[1]:
            raise DataError(
                f"dim {dim} is larger than the arrays for {config} ({emb.database.shape[1]} dims)"
            )
        return emb

    def models(self, dims: Sequence[int]) -> int:
        """With ``configs``: how many distinct array sets (models) serve ``dims``."""
        return max(1, len({self._configs.get(d) or self._config for d in dims}))


def _default_dims(config: str) -> list[int]:
    match = CONFIG_RE.match(config)
    if not match:
        return list(NESTING)
    return [d for d in NESTING if d <= int(match.group(3))] or [int(match.group(3))]


@hookimpl
def mrlbench_register_encoders(register):
    register(ArraysEncoder)
