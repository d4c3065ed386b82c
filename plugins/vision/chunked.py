"""Resumable row-by-row writes of an (X, y) array pair straight into ``.npy`` memmaps
(a library module of the vision package).

Rows go to ``{X}.partial`` / ``{y}.partial``; ``commit()`` flushes them and records how
many rows are complete in the resume sidecar ``{X}.progress.json`` (``mrlbench.resume``:
the value ``{"done": rows}`` under the writer's ``key``); ``finish()`` renames the
partial files onto the final names. An interrupted writer is resumed from its last
commit when the same ``key`` (what is being encoded) is given again. Memory stays flat
in the row count.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from mrlbench import atomic_path, cached, remember

COPY_ROWS = 65536


class ChunkedWriter:
    def __init__(
        self, x_path: str | Path, y_path: str | Path, rows: int, dim: int, key: dict[str, Any]
    ) -> None:
        self.x_path, self.y_path = Path(x_path), Path(y_path)
        self.rows, self.dim, self.key = rows, dim, key
        self._x_part = self.x_path.with_name(self.x_path.name + ".partial")
        self._y_part = self.y_path.with_name(self.y_path.name + ".partial")
        self._progress = self.x_path.with_name(self.x_path.name + ".progress.json")
        self.x_path.parent.mkdir(parents=True, exist_ok=True)
        state = cached(self._progress, key)
        self.done = 0
        if isinstance(state, dict) and self._x_part.is_file() and self._y_part.is_file():
            try:
                self._x = np.lib.format.open_memmap(self._x_part, mode="r+")
                self._y = np.lib.format.open_memmap(self._y_part, mode="r+")
                if self._x.shape == (rows, dim) and self._y.shape == (rows,):
                    self.done = int(state.get("done", 0))
            except ValueError:
                pass
        if self.done == 0:
            self._x = np.lib.format.open_memmap(self._x_part, "w+", np.float32, (rows, dim))
            self._y = np.lib.format.open_memmap(self._y_part, "w+", np.int32, (rows,))

    @property
    def complete(self) -> bool:
        return self.done >= self.rows

    def write(self, x: np.ndarray, y: np.ndarray) -> None:
        """Append rows after the last written one."""
        end = self.done + len(x)
        self._x[self.done : end] = x
        self._y[self.done : end] = y
        self.done = end

    def commit(self, upto: int | None = None) -> None:
        """Flush, and record ``upto`` (default: every written row) as complete."""
        self._x.flush()
        self._y.flush()
        remember(self._progress, self.key, {"done": self.done if upto is None else upto})

    def finish(self, drop: np.ndarray | None = None) -> None:
        """Move the arrays onto their final names, without the rows in ``drop``."""
        self._x.flush()
        self._y.flush()
        if drop is not None and len(drop):
            keep = np.setdiff1d(np.arange(self.rows), drop)
            for part, final, dtype, shape in (
                (self._x, self.x_path, np.float32, (len(keep), self.dim)),
                (self._y, self.y_path, np.int32, (len(keep),)),
            ):
                with atomic_path(final) as tmp:
                    out = np.lib.format.open_memmap(tmp, "w+", dtype, shape)
                    for start in range(0, len(keep), COPY_ROWS):
                        out[start : start + COPY_ROWS] = part[keep[start : start + COPY_ROWS]]
                    out.flush()
                    del out
            self._x_part.unlink()
            self._y_part.unlink()
        else:
            os.replace(self._y_part, self.y_path)  # labels first: X's presence marks done
            os.replace(self._x_part, self.x_path)
        self._progress.unlink(missing_ok=True)
