"""Checks before a run does any work: every encoder that can run here opens and checks
the files it will read and says whether it serves the prefix sizes the strategies
name. The first fault is one ``MrlbenchError`` naming the component, and nothing has
been written yet (the run folder is not even made)."""

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
        except MrlbenchError as exc:
            raise type(exc)(f"encoder '{spec.label}': {exc}") from None


def _prefixes(strategy: object) -> list[int]:
    return strategy.prefixes() if isinstance(strategy, Strategy) else []
