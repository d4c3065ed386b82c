"""Backend ``torch-exact``: exact L2 over normalised prefixes with torch: a blocked matrix
product and ``torch.topk``, merged into a running top-k, on the CPU or on CUDA.

``device = "auto"`` picks CUDA when torch sees a GPU. On CUDA the prefix blocks are
uploaded once at build time, block by block (the GPU memory holds the index; no host
copy is made), and searched there; on the CPU nothing is copied: the raw rows stream
from the memory-mapped arrays at each search, normalisation folded into the distance
(``mrlbench.knn``), as with ``faiss-exact``. ``precision`` is the matrix product's: ``fp32``,
``bf16`` or ``fp16`` (norms and the top-k are float32); BENCHMARKS.md measures what the
half precisions change in the neighbours and the metrics. It declares ``nearest``, so it
takes the harness's ``shards = N`` (``mrlbench.shards``: one Ray actor per row range,
each on its own GPU where there are GPUs, under the Ray executor)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from types import ModuleType
from typing import Any

import numpy as np

from mrlbench import (
    Backend,
    ConfigError,
    ExactIndex,
    MrlbenchError,
    block_rows,
    hookimpl,
    missing,
    requires,
)

INSTALL_HINT = "torch is not installed: run `pip install -e '.[vision]'` (or `pip install torch`)"
PRECISIONS = ("fp32", "bf16", "fp16")
SCORE_BYTES = 256 << 20  # float32 scores of one (query chunk x block) product


def _torch() -> ModuleType:
    return requires("torch", INSTALL_HINT)


class TorchExact(Backend):
    """Exact L2 search with torch: blocked matrix products and top-k, on CPU or CUDA.

    Args:
        device: ``auto`` (CUDA when torch sees a GPU), ``cpu``, ``cuda`` or ``cuda:N``.
        precision: The matrix product's: ``fp32``, ``bf16`` or ``fp16`` (half precisions
            can reorder near-ties).
    """

    name = "torch-exact"
    named = ("precision",)  # exactl2-torch[-bf16|-fp16]
    cached = False  # the blocks (or their GPU copy, made at build time) are the index
    threads: int | None = None

    def __init__(self, device: str = "auto", precision: str = "fp32") -> None:
        if device not in ("auto", "cpu", "cuda") and not device.startswith("cuda:"):
            raise ConfigError(f"device must be auto, cpu, cuda or cuda:N, not '{device}'")
        if precision not in PRECISIONS:
            raise ConfigError(
                f"precision must be one of {', '.join(PRECISIONS)}, not '{precision}'"
            )
        self._device, self.precision = device, precision

    @classmethod
    def availability(cls) -> str | None:
        return missing("torch", INSTALL_HINT)

    @classmethod
    def where(cls) -> str:
        return "CUDA" if _torch().cuda.is_available() else "CPU"

    @property
    def torch_device(self) -> str:
        torch = _torch()
        if self._device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        if self._device.startswith("cuda") and not torch.cuda.is_available():
            raise MrlbenchError(f"torch-exact: device = '{self._device}' but torch sees no GPU")
        return self._device

    @property
    def exact(self) -> bool:
        return self.precision == "fp32"  # bf16/fp16 products reorder neighbours

    @property
    def index_name(self) -> str:
        # apart from faiss-exact's exactl2: the two never write the same neighbour files
        return "exactl2-torch" + ("" if self.precision == "fp32" else f"-{self.precision}")

    @property
    def device(self) -> str:
        return "GPU" if self.torch_device.startswith("cuda") else "CPU"

    @property
    def wants_gpu(self) -> bool | None:
        return None if self._device == "auto" else self._device.startswith("cuda")

    def params(self) -> dict[str, Any]:
        return {"precision": self.precision}

    def environment(self) -> dict[str, Any]:
        torch = _torch()
        gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
        return {
            "packages": {"torch": torch.__version__},
            "torch_threads": torch.get_num_threads(),
            "cuda_device": gpu,
        }

    def use_threads(self, threads: int) -> None:
        _torch().set_num_threads(threads)
        self.threads = threads

    @property
    def dtype(self) -> Any:
        torch = _torch()
        return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[
            self.precision
        ]

    def build(self, chunks: Iterable[np.ndarray], dim: int) -> Any:
        index = ExactIndex.build(chunks, dim)
        if self.device == "CPU":
            return index
        return list(_blocks(index, self.torch_device))  # uploaded once, block by block

    def search(self, index: Any, queries: np.ndarray, k: int) -> tuple[np.ndarray, float]:
        _, ids, total = self._search(index, queries, k)
        return ids, float(total)

    def nearest(self, index: Any, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(distances less each query's constant |q|^2, ids) of the ``k`` nearest rows,
        best first, inf and -1 past the rows (what a shard returns for the merge)."""
        dist, ids, _ = self._search(index, queries, k)
        return dist, ids

    def _search(self, index: Any, queries: np.ndarray, k: int) -> tuple[np.ndarray, Any, int]:
        torch = _torch()
        device = self.torch_device
        q = torch.from_numpy(np.ascontiguousarray(queries, dtype=np.float32)).to(device)
        if isinstance(index, ExactIndex):  # CPU: raw rows straight from the arrays
            blocks: Iterable[tuple[int, Any, Any]] = _blocks(index, "cpu")
            total = len(index)
        else:
            blocks, total = index, sum(len(b) for _, b, _ in index)
        best_d = torch.full((len(q), 0), float("inf"), device=device)
        best_i = torch.full((len(q), 0), -1, dtype=torch.int64, device=device)
        with torch.inference_mode():
            for start, block, scale in blocks:
                dist, ids = self._block(q, block, scale, min(k, len(block)))
                best_d, order = torch.topk(
                    torch.cat([best_d, dist], 1),
                    min(k, best_d.shape[1] + dist.shape[1]),
                    dim=1,
                    largest=False,
                    sorted=True,
                )
                best_i = torch.gather(torch.cat([best_i, ids + start], 1), 1, order)
        ids, dist = best_i.cpu().numpy(), best_d.cpu().numpy()
        if ids.shape[1] < k:  # fewer rows than k: -1, as FAISS pads
            ids = np.pad(ids, ((0, 0), (0, k - ids.shape[1])), constant_values=-1)
            dist = np.pad(dist, ((0, 0), (0, k - dist.shape[1])), constant_values=np.inf)
        return dist, ids, total

    def _block(self, q: Any, block: Any, scale: Any, k: int) -> tuple[Any, Any]:
        """The best ``k`` rows of a raw ``block`` (inverse norms ``scale``) per query:
        (squared L2 between normalised prefixes less |q|^2, block rows)."""
        torch = _torch()
        present = (scale > 0).float()
        xb = block.to(self.dtype)
        step = max(1, SCORE_BYTES // (4 * len(block)))
        out_d, out_i = [], []
        for s in range(0, len(q), step):
            dots = (q[s : s + step].to(self.dtype) @ xb.T).float()
            dist = present[None, :] - 2 * dots * scale[None, :]
            d, i = torch.topk(dist, k, dim=1, largest=False, sorted=True)
            out_d.append(d)
            out_i.append(i)
        return torch.cat(out_d), torch.cat(out_i)

    def write(self, index: Any, path: str) -> None:
        raise MrlbenchError("torch-exact keeps no index files (nothing costly to build)")

    def read(self, path: str) -> Any:
        raise MrlbenchError("torch-exact keeps no index files (nothing costly to build)")


def _blocks(index: ExactIndex, device: str) -> Iterator[tuple[int, Any, Any]]:
    """(first row, raw prefix rows, inverse norms) of each block, as float32 tensors on
    ``device``: one block in memory at a time."""
    torch, step = _torch(), block_rows(index.dim)
    for start in range(0, len(index), step):
        rows = np.array(index.database[start : start + step, : index.dim], dtype=np.float32)
        scale = index.scale[start : start + step]
        yield start, torch.from_numpy(rows).to(device), torch.from_numpy(scale).to(device)


@hookimpl
def mrlbench_register_backends(register):
    register(TorchExact)
