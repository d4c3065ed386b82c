"""Encoders ``resnet50-mrl`` and ``resnet50-ff``: images -> embeddings on demand, cached.

Both take a dataset plugin (``dataset`` + ``dataset_args``), an ``arch`` (``resnet50`` by
default, any of ``mrlbench_plugins.resnet_models.ARCHS``) and either checkpoints or a
``train`` table: without a checkpoint, the model is trained with ``mrlbench``'s own
trainer on the dataset's database split, once, and cached under the cache folder
(``$MRLBENCH_CACHE``, default ``~/.cache/mrlbench``) keyed by the training settings.
Encoded arrays are cached keyed by checkpoint hash, dataset and transform, so a second
run neither trains nor encodes.

- ``resnet50-mrl``: one MRL (``kind = "mrl"``) or MRL-E (``"mrl_e"``) model; every dim
  is a prefix of its embedding.
- ``resnet50-ff``: the paper's fixed-feature baseline, one model per size:
  ``checkpoints = {8 = "ff8.pt", 2048 = "ff2048.pt"}`` or ``sizes = [8, 32, 256]`` with
  ``train``; the size-d model's d features are that dim's embedding. With
  ``truncate = true`` and one size, that model's prefixes are used instead (what
  truncating a model trained without MRL gives).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from mrlbench_plugins.image_datasets import Subset

from mrlbench.arrays import load_embeddings
from mrlbench.errors import ConfigError
from mrlbench.hookspecs import hookimpl
from mrlbench.runner import digest
from mrlbench.types import Embeddings, Encoder

TRAIN_KEYS = {"epochs", "lr", "batch_size", "seed", "relative_importance", "limit", "nesting"}
SHORT_NAMES = {"fashion-mnist": "FMNIST"}


class ImageEncoder(Encoder):
    """Shared by the two encoders: dataset, cache, training and encoding."""

    @classmethod
    def availability(cls) -> str | None:
        import importlib.util

        missing = [m for m in ("torch", "torchvision", "PIL") if not importlib.util.find_spec(m)]
        if missing:
            return f"{', '.join(missing)} not installed: pip install -e '.[vision]'"
        return None

    def __init__(
        self,
        arch: str = "resnet50",
        dataset: str = "image-folder",
        dataset_args: Mapping[str, Any] | None = None,
        dataset_name: str | None = None,
        transform: str | None = None,
        image_size: int = 28,
        device: str = "auto",
        precision: str = "auto",
        batch_size: int = 256,
        workers: int | None = None,
        cache: str = "",
        train: Mapping[str, Any] | None = None,
    ) -> None:
        from mrlbench_plugins.image_datasets import cache_dir

        unknown = set(train or {}) - TRAIN_KEYS
        if unknown:
            raise ConfigError(
                f"unknown key '{sorted(unknown)[0]}' in train "
                f"(known: {', '.join(sorted(TRAIN_KEYS))})"
            )
        self.arch, self.dataset, self.dataset_args = arch, dataset, dict(dataset_args or {})
        self.dataset_name = dataset_name or SHORT_NAMES.get(dataset, dataset)
        self.transform = transform or ("small" if dataset == "fashion-mnist" else "imagenet")
        self.image_size, self.device, self.precision = image_size, device, precision
        self.batch_size, self.workers = batch_size, workers
        self.cache = Path(cache) if cache else cache_dir()
        self.train_settings = dict(train or {})
        self._data = None

    # ------------------------------------------------------------------------ helpers
    def _dataset(self):
        if self._data is None:
            from mrlbench.plugins import load

            self._data = load()[1].create("dataset", {"plugin": self.dataset, **self.dataset_args})[
                1
            ]
        return self._data

    def _data_key(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "args": self.dataset_args,
            "transform": self.transform,
            "image_size": self.image_size,
            "arch": self.arch,
        }

    def _trained(self, kind: str, rep_size: int | None) -> Path:
        """A checkpoint trained with ``self.train_settings`` (cached)."""
        from mrlbench_plugins import encoding, resnet_models, training

        settings = {"epochs": 1, "lr": 0.2, "batch_size": 128, "seed": 0, **self.train_settings}
        key = digest(
            {**self._data_key(), "kind": kind, "rep": rep_size, "train": settings, "trainer": 1}
        )
        path = self.cache / "models" / f"{kind}{rep_size or ''}-{self.arch}-{key}.pt"
        if path.is_file():
            return path
        split = self._dataset().split("database")
        if settings.get("limit"):
            split = Subset(split, settings["limit"])
        classes = int(max(split.labels)) + 1
        model = training.new_model(
            self.arch, kind, classes, settings.get("nesting"), rep_size, settings["seed"]
        )
        dev = encoding.pick_device(self.device)
        epochs, batch = settings["epochs"], settings["batch_size"]
        self.observer.begin(
            f"train {kind}{rep_size or ''} ({epochs} epoch)", epochs * (len(split) // batch) * batch
        )
        history = training.train(
            model,
            split,
            encoding.transform(self.transform, self.image_size),
            epochs,
            batch,
            settings["lr"],
            settings["seed"],
            dev,
            encoding.pick_precision(self.precision, dev),
            settings.get("relative_importance"),
            self._workers(),
            lambda n, loss: self.observer.advance(n),
        )
        resnet_models.save_reference(model, path)
        from mrlbench.store import write_json

        write_json(
            Path(str(path) + ".json"),
            {"settings": settings, "kind": kind, "history": [e.__dict__ for e in history]},
        )
        return path

    def thumbnails(self, split: str, rows: Sequence[int]) -> list[np.ndarray] | None:
        """RGB uint8 images of the given rows, straight from the dataset."""
        from PIL import Image

        items = self._dataset().split(split)
        out = []
        for row in rows:
            image, _ = items[int(row)]
            if isinstance(image, np.ndarray):
                image = Image.fromarray(image)
            image = image.convert("RGB")
            image.thumbnail((64, 64))
            out.append(np.asarray(image))
        return out

    def _workers(self) -> int:
        from mrlbench_plugins.encoding import default_workers

        return default_workers() if self.workers is None else self.workers

    def _encoded(self, checkpoint: Path, kind: str, rep_size: int | None) -> Embeddings:
        """Arrays of ``checkpoint`` over both splits (cached), memory-mapped."""
        from mrlbench_plugins import encoding, resnet_models

        model = resnet_models.load(checkpoint, kind, self.arch)
        key = {
            **self._data_key(),
            "checkpoint": encoding.file_hash(checkpoint),
            "kind": kind,
            "rep": rep_size,
        }
        folder = self.cache / "arrays" / digest(key)

        def task(what: str, total: int):
            self.observer.begin(what, total)
            return self.observer.advance

        encoding.encode_dataset(
            model,
            kind,
            self._dataset(),
            self.dataset_name,
            folder,
            rep_size,
            self.transform,
            self.image_size,
            self.device,
            self.precision,
            self.batch_size,
            self._workers(),
            progress=task,
            key=key,
        )
        config = encoding.config_string(kind, rep_size or resnet_models.head_width(model))
        return load_embeddings(folder, self.dataset_name, config)


class ResNetMRL(ImageEncoder):
    name = "resnet50-mrl"

    def __init__(
        self,
        checkpoint: str | None = None,
        kind: str = "mrl",
        dims: list[int] | None = None,
        **kwargs: Any,
    ) -> None:
        if kind not in ("mrl", "mrl_e"):
            raise ConfigError(f"kind must be mrl or mrl_e, not '{kind}'")
        super().__init__(**kwargs)
        self.checkpoint, self.kind, self._dims = checkpoint, kind, dims
        self._emb: Embeddings | None = None

    @property
    def dims(self) -> tuple[int, ...]:
        if self._dims is None:
            from mrlbench_plugins.resnet_models import NESTING

            width = self.embeddings(0).database.shape[1]
            self._dims = [d for d in NESTING if d < width] + [width]
        return tuple(self._dims)

    def embeddings(self, dim: int) -> Embeddings:
        if self._emb is None:
            checkpoint = (
                Path(self.checkpoint) if self.checkpoint else self._trained(self.kind, None)
            )
            self._emb = self._encoded(checkpoint, self.kind, None)
        return self._emb


class ResNetFF(ImageEncoder):
    name = "resnet50-ff"

    def __init__(
        self,
        checkpoints: Mapping[str, str] | None = None,
        sizes: list[int] | None = None,
        truncate: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.checkpoints = {int(d): p for d, p in (checkpoints or {}).items()}
        if not self.checkpoints and not sizes:
            raise ConfigError('give checkpoints = {dim = "path"} or sizes = [...] to train')
        self.sizes = tuple(sorted(self.checkpoints or {int(d) for d in sizes or []}))
        self.truncate = truncate
        if truncate and len(self.sizes) != 1:
            raise ConfigError("truncate = true takes one model: its prefixes are the dims")
        self._dims = self.sizes
        if truncate:
            from mrlbench_plugins.resnet_models import NESTING

            self._dims = tuple(d for d in NESTING if d < self.sizes[0]) + self.sizes
        self._emb: dict[int, Embeddings] = {}

    @property
    def dims(self) -> tuple[int, ...]:
        return self._dims

    def embeddings(self, dim: int) -> Embeddings:
        if self.truncate:  # one fixed-feature model, truncated like an MRL embedding
            dim = self.sizes[0]
        if dim not in self.sizes:
            raise ConfigError(f"no fixed-feature model of size {dim} (sizes: {self.sizes})")
        if dim not in self._emb:
            path = self.checkpoints.get(dim)
            checkpoint = Path(path) if path else self._trained("ff", dim)
            self._emb[dim] = self._encoded(checkpoint, "ff", dim)
        return self._emb[dim]


@hookimpl
def mrlbench_register_encoders(register):
    register(ResNetMRL)
    register(ResNetFF)
