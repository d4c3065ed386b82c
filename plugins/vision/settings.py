"""The settings the image side passes around (a library module): ``Settings`` for how
images become tensors and where the model runs, ``TrainSettings`` for training.

Both are frozen and checked when made; what depends on the machine (is there a CUDA
device, does this CPU have bf16 instructions) is resolved when asked for. Importing this
module does not import PyTorch.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mrlbench import ConfigError

if TYPE_CHECKING:
    import torch

NESTING = (8, 16, 32, 64, 128, 256, 512, 1024, 2048)  # MRL dims (the models' default)
TRANSFORMS = ("imagenet", "small")
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def default_transform(dataset: str) -> str:
    """``small`` for Fashion-MNIST's 28x28 images, the reference's ``imagenet`` otherwise."""
    return "small" if dataset == "fashion-mnist" else "imagenet"


def default_workers() -> int:
    """DataLoader workers: the cores but one, at most 4."""
    return min(4, max(0, (os.cpu_count() or 1) - 1))


def pick_device(device: str) -> torch.device:
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda, but torch sees no CUDA device")
    if device not in ("cpu", "cuda"):
        raise ConfigError(f"unknown device '{device}' (known: {', '.join(DEVICES)})")
    return torch.device(device)


def bf16_on_cpu() -> bool:
    import torch

    probe = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
    amx = getattr(torch.cpu, "_is_amx_tile_supported", None)
    return bool((probe and probe()) or (amx and amx()))


def pick_precision(precision: str, device: torch.device) -> str:
    """``auto``: fp16 on CUDA, bf16 on CPUs with bf16 instructions, else fp32; the
    accuracy of each against fp32 is measured in BENCHMARKS.md."""
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision '{precision}' (known: {', '.join(PRECISIONS)})")
    if precision != "auto":
        if precision == "fp16" and device.type == "cpu":
            raise ConfigError("fp16 autocast is for CUDA; use bf16 or fp32 on the CPU")
        return precision
    if device.type == "cuda":
        return "fp16"
    return "bf16" if bf16_on_cpu() else "fp32"


@dataclass(frozen=True)
class Settings:
    """How images are turned into tensors and run through a model, shared by encoding
    and training: the transform (``imagenet`` or ``small`` at ``image_size``), the device
    (``auto``, ``cpu``, ``cuda``), the autocast precision (``auto``, ``fp32``, ``bf16``,
    ``fp16``), the batch size, and the DataLoader workers (``None``: the cores but one,
    at most 4)."""

    transform: str = "imagenet"
    image_size: int = 28
    device: str = "auto"
    precision: str = "auto"
    batch_size: int = 256
    workers: int | None = None

    def __post_init__(self) -> None:
        if self.transform not in TRANSFORMS:
            raise ConfigError(
                f"unknown transform '{self.transform}' (known: {', '.join(TRANSFORMS)})"
            )
        if self.device not in DEVICES:
            raise ConfigError(f"unknown device '{self.device}' (known: {', '.join(DEVICES)})")
        if self.precision not in PRECISIONS:
            raise ConfigError(
                f"unknown precision '{self.precision}' (known: {', '.join(PRECISIONS)})"
            )
        _positive("image_size", self.image_size)
        _positive("batch_size", self.batch_size)
        if self.workers is not None and (not _is_int(self.workers) or self.workers < 0):
            raise ConfigError(f"workers must be 0 or more, not {self.workers!r}")

    def torch_device(self) -> torch.device:
        """The device to run on (``auto``: CUDA when torch sees one, else the CPU)."""
        return pick_device(self.device)

    def autocast_precision(self, device: torch.device | None = None) -> str:
        """``fp32``, ``bf16`` or ``fp16`` on ``device`` (default: ``torch_device()``)."""
        return pick_precision(self.precision, device or self.torch_device())

    def transform_fn(self) -> Callable[[Any], torch.Tensor]:
        """Image (PIL or uint8 array) -> normalised 3-channel tensor."""
        from mrlbench_plugins.vision.encoding import transform

        return transform(self.transform, self.image_size)

    def loader_workers(self) -> int:
        return default_workers() if self.workers is None else self.workers


TRAIN_DEFAULTS = ("epochs", "lr", "batch_size", "seed")  # always part of the cache key


@dataclass(frozen=True)
class TrainSettings:
    """One training run: epochs, peak one-cycle learning rate, batch size and seed; the
    per-dim loss weights (``relative_importance``, default all 1), the first ``limit``
    images only, and the MRL ``nesting`` dims (default: 8, 16, ... up to the width)."""

    epochs: int = 1
    lr: float = 0.2
    batch_size: int = 128
    seed: int = 0
    relative_importance: Sequence[float] | None = None
    limit: int | None = None
    nesting: Sequence[int] | None = None

    def __post_init__(self) -> None:
        _positive("epochs", self.epochs)
        _positive("batch_size", self.batch_size)

    @classmethod
    def from_table(cls, table: Mapping[str, Any] | None) -> TrainSettings:
        """From a config's ``train = { ... }`` table; an unknown key is a ConfigError."""
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = set(table or {}) - set(known)
        if unknown:
            raise ConfigError(
                f"unknown key '{sorted(unknown)[0]}' in train (known: {', '.join(sorted(known))})"
            )
        return cls(**(table or {}))

    def key(self) -> dict[str, Any]:
        """The settings as a trained model's cache key: the four always there, the others
        when given."""
        values = dataclasses.asdict(self)
        return {k: v for k, v in values.items() if k in TRAIN_DEFAULTS or v is not None}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _positive(name: str, value: Any) -> None:
    if not _is_int(value) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, not {value!r}")
