"""Encoder ``synthetic``: seeded, Matryoshka-like embeddings generated in memory; and
command ``mrlbench synth``: the same kind of arrays at any size (ImageNet-1K or -4K
sized), written block by block in the reference naming, in bounded memory.

Class centres are drawn with a per-dimension scale s_j = j**-decay, and each item adds
noise of scale noise * sqrt(s_j), so early coordinates carry most of the class signal
and accuracy saturates with the prefix size, as in an MRL embedding. This is an
example on data the project generates itself, not a model: use ``arrays`` (or an image
encoder) for real embeddings.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

import click
import numpy as np

from mrlbench import (
    MISSING,
    ConfigError,
    Embeddings,
    Encoder,
    array_name,
    atomic_path,
    cached,
    hookimpl,
    progress_bar,
    remember,
    save_npy,
    scan,
)
from mrlbench import terminal as console

BLOCK_BYTES = 128 << 20  # float32 rows generated and written at a time


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


def write_synthetic(
    out: str | Path,
    n_database: int,
    n_queries: int,
    dim: int,
    classes: int,
    seed: int = 0,
    decay: float = 1.5,
    noise: float = 0.5,
    dataset: str = "synth",
    config: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Path]:
    """Write ``{dataset}_train/_val_{config}-X.npy`` (float32) and ``-y.npy`` (int32),
    generated block by block (each block from its own seeded generator) straight into
    a memory-mapped file, renamed into place when complete; a split already written with
    the same settings is kept (resume).

    Coordinate j of a class centre has scale s_j = j**-decay and each item adds noise of
    scale ``noise * s_j``: every coordinate carries the same signal-to-noise ratio, but
    the early ones weigh most in the distance, so accuracy rises with the prefix size and
    saturates, as an MRL embedding's does (README: mAP@10 by dim at ImageNet-1K size)."""
    out = Path(out)
    config = config or f"mrl1_e0_ff{dim}"
    rng = np.random.default_rng(seed)
    scale = (np.arange(1, dim + 1, dtype=np.float64) ** -decay).astype(np.float32)
    centres = rng.standard_normal((classes, dim), dtype=np.float32) * scale
    spread = (noise * scale).astype(np.float32)
    block = max(1, BLOCK_BYTES // (4 * dim))
    written = {}
    for split_id, (split, n) in enumerate((("train", n_database), ("val", n_queries))):
        x_path = out / array_name(dataset, split, config, "X")
        y_path = out / array_name(dataset, split, config, "y")
        key = {"n": n, "dim": dim, "classes": classes, "seed": seed, "decay": decay, "noise": noise}
        sidecar = x_path.with_name(x_path.name + ".json")
        if x_path.is_file() and y_path.is_file() and cached(sidecar, key) is not MISSING:
            if progress:
                progress(n)
            written[split] = x_path
            continue
        labels = np.empty(n, dtype=np.int32)
        with atomic_path(x_path) as tmp:
            x = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n, dim))
            for start in range(0, n, block):
                stop = min(n, start + block)
                part = np.random.default_rng([seed, split_id, start // block])
                y = part.integers(0, classes, stop - start)
                noise_rows = part.standard_normal((stop - start, dim), dtype=np.float32)
                x[start:stop] = centres[y] + spread * noise_rows
                labels[start:stop] = y
                if progress:
                    progress(stop - start)
            x.flush()
            del x
        save_npy(y_path, labels)
        remember(sidecar, key, {"rows": n})
        written[split] = x_path
    return written


class SyntheticEncoder(Encoder):
    """Seeded Matryoshka-like vectors (class centres whose later dims matter less), for
    trying things without data.

    Args:
        n_database: Database rows.
        n_queries: Query rows.
        dim: Width of the vectors.
        classes: Number of classes (labels).
        seed: Random seed: the same seed gives the same arrays.
        decay: How fast the dims' scale falls (dim i scaled by i ** -decay): larger makes
            short prefixes carry more of the signal.
        noise: Scale of the per-row noise around the class centres.
        dims: Prefix sizes offered (default: 8, 16, ... up to ``dim``).
    """

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
        if not (math.isfinite(decay) and math.isfinite(noise)):  # NaN or Inf in every row
            raise ConfigError(f"decay and noise must be finite, not {decay} and {noise}")
        self.args = (n_database, n_queries, dim, classes, seed, decay, noise)
        self._dims = tuple(sorted(dims or [d for d in (8, 16, 32, 64, 128, 256, 512) if d <= dim]))
        if self._dims[-1] > dim:
            raise ConfigError(f"dims go up to {self._dims[-1]} but dim is {dim}")
        self._emb: Embeddings | None = None

    @property
    def dims(self) -> tuple[int, ...]:
        return self._dims

    def validate(self, dims: Sequence[int]) -> None:
        wide = [d for d in dims if d > self.args[2]]
        if wide:
            raise ConfigError(f"dims {wide} are larger than the arrays ({self.args[2]} dims)")

    def database_size(self) -> int:
        return self.args[0]

    def embeddings(self, dim: int) -> Embeddings:
        if self._emb is None:
            xb, xq, yb, yq = synthetic_arrays(*self.args)
            self._emb = Embeddings(xb, xq, yb, yq, "synthetic", "synthetic", scan(xb))
        return self._emb


@hookimpl
def mrlbench_register_encoders(register):
    register(SyntheticEncoder)


@hookimpl
def mrlbench_register_commands(cli: click.Group) -> None:
    @cli.command()
    @click.option("--n-database", type=click.IntRange(1), required=True, help="Database rows.")
    @click.option("--n-queries", type=click.IntRange(1), required=True, help="Query rows.")
    @click.option(
        "--dim",
        type=click.IntRange(1),
        default=2048,
        show_default=True,
        help="Embedding width (prefixes 8, 16, ... up to it).",
    )
    @click.option(
        "--classes",
        type=click.IntRange(1),
        default=1000,
        show_default=True,
        help="Number of classes (labels 0 .. classes - 1).",
    )
    @click.option("--out", required=True, type=click.Path(file_okay=False), help="Arrays folder.")
    @click.option(
        "--dataset",
        default="synth",
        show_default=True,
        help="Dataset name in the file names ({dataset}_train_...).",
    )
    @click.option(
        "--config",
        "config",
        default=None,
        help="Config string in the file names (default mrl1_e0_ff{dim}).",
    )
    @click.option("--seed", default=0, show_default=True, help="Seed of every block.")
    @click.option(
        "--decay",
        default=1.5,
        show_default=True,
        help="Signal scale of coordinate j is j**-decay: higher saturates sooner.",
    )
    @click.option("--noise", default=0.5, show_default=True, help="Within-class noise scale.")
    def synth(n_database, n_queries, dim, classes, out, dataset, config, seed, decay, noise):
        """MRL-like arrays of any size in the reference naming, written block by block.

        Early coordinates carry most of the class signal, so accuracy rises and saturates
        with the prefix size; memory stays bounded (one block) whatever the size."""
        with progress_bar(speed="rows/s") as bar:
            task = bar.add_task("synth", total=n_database + n_queries)
            written = write_synthetic(
                out,
                n_database,
                n_queries,
                dim,
                classes,
                seed,
                decay,
                noise,
                dataset,
                config,
                progress=lambda n: bar.advance(task, n),
            )
        for split, path in written.items():
            console.print(f"{split}: {path}", highlight=False)
