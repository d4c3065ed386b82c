"""Checks before a run does any work: every encoder that can run here opens and checks
the files it will read (NaN or Inf in its queries or database: the file and the first
bad row) and says whether it serves the prefix sizes the strategies name; where it
knows its database size cheaply (``Encoder.database_size``), every ``[run] ks`` entry,
strategy list length (``Strategy.list_lengths``) and backend size
(``Backend.check_rows``) is checked against it. The first fault is one
``MrlbenchError`` naming the component and the key, and nothing has been written yet
(the run folder is not even made)."""

from __future__ import annotations

from mrlbench.config import RunConfig
from mrlbench.errors import ConfigError, MrlbenchError, UnavailableError
from mrlbench.types import Encoder, Strategy


def check(cfg: RunConfig) -> None:
    """Raise the first fault of ``cfg`` as one ``MrlbenchError``; return when sound."""
    if cfg.out.exists() and not cfg.out.is_dir():
        raise ConfigError(f"the run folder {cfg.out} is a file, not a folder")
    if cfg.executor is not None:  # an executor that cannot run here stops the run at once
        reason = type(cfg.executor.component).availability()
        if reason:
            raise UnavailableError(f"[run] executor '{cfg.executor.label}': {reason}")
    named = sorted({d for spec in cfg.strategies for d in _prefixes(spec.component)})
    for spec in cfg.encoders:
        encoder = spec.component
        if not isinstance(encoder, Encoder) or type(encoder).availability() is not None:
            continue  # its rows are reported as skipped, with the reason
        try:
            encoder.validate(named)
            rows = encoder.database_size()
        except MrlbenchError as exc:
            raise type(exc)(f"encoder '{spec.label}': {exc}") from None
        if rows is not None:
            check_sizes(cfg, spec.label, rows)


def check_sizes(cfg: RunConfig, encoder: str, rows: int) -> None:
    """Every list length of ``cfg`` against a database of ``rows`` rows (encoder
    ``encoder``): a ``[run] ks`` entry, a strategy's ``k``/shortlist, a backend's
    size (IVF's ``nlist``) larger than the database is a ``ConfigError`` naming it."""
    database = f"the database of encoder '{encoder}' ({rows} rows)"
    for k in cfg.ks:
        if k > rows:
            raise ConfigError(f"[run] ks: {k} is larger than {database}")
    for spec in cfg.strategies:
        for key, length in _lengths(spec.component).items():
            if length > rows:
                raise ConfigError(
                    f"strategy '{spec.label}': {key} = {length} is larger than {database}"
                )
    for be in cfg.backends:
        if type(be.component).availability() is not None:
            continue  # skipped rows, with the reason
        try:
            be.component.check_rows(rows)
        except MrlbenchError as exc:
            raise type(exc)(f"backend '{be.label}' on encoder '{encoder}': {exc}") from None


def _prefixes(strategy: object) -> list[int]:
    return strategy.prefixes() if isinstance(strategy, Strategy) else []


def _lengths(strategy: object) -> dict[str, int]:
    return strategy.list_lengths() if isinstance(strategy, Strategy) else {}
