"""Encoders ``resnet50-mrl`` and ``resnet50-ff``: images -> embeddings on demand, cached
(a plugin module of the vision package).

Both take a dataset component (``dataset = "fashion-mnist"`` or ``dataset = { plugin =
"image-folder", database = "...", queries = "..." }``, created by the registry), an
``arch`` (``resnet50`` by default, any of ``mrlbench_plugins.vision.models.ARCHS``) and
either checkpoints or a ``train`` table: without a checkpoint, the model is trained with
``mrlbench``'s own trainer on the dataset's database split, once, and cached under the
cache folder (``$MRLBENCH_CACHE``, default ``~/.cache/mrlbench``) keyed by the training
settings. Encoded arrays are cached keyed by checkpoint hash, dataset and transform, so a
second run neither trains nor encodes.

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
from typing import Any, ClassVar

import numpy as np

from mrlbench import (
    ConfigError,
    DataError,
    Dataset,
    Embeddings,
    Encoder,
    cache_dir,
    digest,
    hookimpl,
    load_embeddings,
    write_json,
)
from mrlbench_plugins.vision.settings import NESTING, Settings, TrainSettings, default_transform

SHORT_NAMES = {"fashion-mnist": "FMNIST"}


def dataset_identity(dataset: Dataset) -> tuple[str, dict[str, Any]]:
    """The dataset plugin's name and the arguments it was made with (its config table
    without ``plugin``); a dataset made without the registry: its ``name`` and ``{}``."""
    table = dict(dataset.table)
    plugin = table.pop("plugin", None)
    if plugin is None:
        return dataset.name, {}
    return plugin, table


class ImageEncoder(Encoder):
    """Shared by the two encoders: dataset, cache, training and encoding. The database
    size is known only once encoded, so it is not checked before a run
    (``Encoder.database_size`` is ``None``): a k, shortlist or ks entry larger than the
    database fails its rows when they run.

    Args:
        dataset: Dataset plugin, ``"name"`` or ``{ plugin = "name", ... }``.
        arch: Network: ``resnet18``, ``resnet34``, ``resnet50``, ``resnet101``,
            ``resnet-narrow`` or ``resnet-narrow-s2``.
        dataset_name: Name in the array files (default: the plugin's; ``FMNIST`` for
            Fashion-MNIST).
        transform: ``imagenet`` (Resize 256, CenterCrop 224) or ``small`` (default:
            ``small`` for Fashion-MNIST, else ``imagenet``).
        image_size: Side of the ``small`` transform's images.
        device: ``auto``, ``cpu`` or ``cuda``.
        precision: Autocast precision: ``auto``, ``fp32``, ``bf16`` or ``fp16``.
        batch_size: Images per encoding batch.
        workers: DataLoader workers (default: the cores but one, at most 4).
        cache: Cache folder for trained models and arrays (default: ``$MRLBENCH_CACHE``
            or ``~/.cache/mrlbench``).
        train: Training without a checkpoint: ``{ epochs, lr, batch_size, seed,
            relative_importance, limit, nesting }``.
    """

    components: ClassVar[Mapping[str, str]] = {"dataset": "dataset"}  # made by the registry
    paths = ("cache",)

    @classmethod
    def availability(cls) -> str | None:
        import importlib.util

        missing = [m for m in ("torch", "torchvision", "PIL") if not importlib.util.find_spec(m)]
        if missing:
            return f"{', '.join(missing)} not installed: pip install -e '.[vision]'"
        return None

    def __init__(
        self,
        dataset: Dataset,
        arch: str = "resnet50",
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
        if not isinstance(dataset, Dataset):
            raise ConfigError(
                f'dataset must be a dataset component (dataset = "name" or '
                f'{{ plugin = "name", ... }} in a config), not {dataset!r}'
            )
        self.training = TrainSettings.from_table(train)
        self.dataset = dataset
        self.dataset_plugin, self.dataset_args = dataset_identity(dataset)
        self.arch = arch
        self.dataset_name = dataset_name or SHORT_NAMES.get(
            self.dataset_plugin, self.dataset_plugin
        )
        self.settings = Settings(
            transform=transform or default_transform(self.dataset_plugin),
            image_size=image_size,
            device=device,
            precision=precision,
            batch_size=batch_size,
            workers=workers,
        )
        self.cache = Path(cache) if cache else cache_dir()

    # ------------------------------------------------------------------------ helpers
    def _data_key(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset_plugin,
            "args": self.dataset_args,
            "transform": self.settings.transform,
            "image_size": self.settings.image_size,
            "arch": self.arch,
        }

    def _trained(self, kind: str, rep_size: int | None) -> Path:
        """A checkpoint trained with ``self.training`` (cached)."""
        from mrlbench_plugins.vision import models, training

        plan = self.training
        settings = plan.key()
        key = digest(
            {**self._data_key(), "kind": kind, "rep": rep_size, "train": settings, "trainer": 1}
        )
        path = self.cache / "models" / f"{kind}{rep_size or ''}-{self.arch}-{key}.pt"
        if path.is_file():
            return path
        split = training.training_split(self.dataset, plan)
        classes = int(max(split.labels)) + 1
        model = training.new_model(self.arch, kind, classes, plan.nesting, rep_size, plan.seed)
        epochs, batch = plan.epochs, plan.batch_size
        self.observer.begin(
            f"train {kind}{rep_size or ''} ({epochs} epoch)", epochs * (len(split) // batch) * batch
        )
        history = training.train(
            model,
            split,
            self.settings,
            plan,
            on_batch=lambda n, loss: self.observer.advance(n),
        )
        models.save_reference(model, path)
        write_json(
            Path(str(path) + ".json"),
            {"settings": settings, "kind": kind, "history": [e.__dict__ for e in history]},
        )
        return path

    def environment(self) -> dict[str, Any]:
        """torch's version and threads, and where this encoder runs (``env.json``)."""
        import torch
        import torchvision

        return {
            "packages": {"torch": torch.__version__, "torchvision": torchvision.__version__},
            "torch_threads": torch.get_num_threads(),
            "device": str(self.settings.torch_device()),
        }

    def use_threads(self, threads: int) -> None:
        if self.availability() is None:
            import torch

            torch.set_num_threads(threads)

    def thumbnails(self, split: str, rows: Sequence[int]) -> list[np.ndarray] | None:
        """RGB uint8 images of the given rows, straight from the dataset."""
        from PIL import Image

        items = self.dataset.split(split)
        out = []
        for row in rows:
            image, _ = items[int(row)]
            if isinstance(image, np.ndarray):
                image = Image.fromarray(image)
            image = image.convert("RGB")
            image.thumbnail((64, 64))
            out.append(np.asarray(image))
        return out

    def _encoded(self, checkpoint: Path, kind: str, rep_size: int | None) -> Embeddings:
        """Arrays of ``checkpoint`` over both splits (cached), memory-mapped."""
        from mrlbench_plugins.vision import encoding, models

        model = models.load(checkpoint, kind, self.arch)
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
            self.dataset,
            self.dataset_name,
            folder,
            self.settings,
            rep_size=rep_size,
            progress=task,
            key=key,
        )
        config = encoding.config_string(kind, rep_size or models.head_width(model))
        return load_embeddings(folder, self.dataset_name, config)


class ResNetMRL(ImageEncoder):
    """One Matryoshka (MRL or MRL-E) ResNet: every dim is a prefix of its embedding.

    Args:
        checkpoint: Model weights (reference format); without one, a model is trained
            with ``train`` and cached.
        kind: ``mrl`` or ``mrl_e`` (MRL-E: the heads share one weight matrix).
        dims: Prefix sizes offered (default: 8, 16, ... up to the embedding width).
    """

    name = "resnet50-mrl"
    paths = ("cache", "checkpoint")

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
        self.checkpoint, self.head, self._dims = checkpoint, kind, dims  # mrl or mrl_e
        self._emb: Embeddings | None = None

    @property
    def dims(self) -> tuple[int, ...]:
        if self._dims is None:
            width = self.embeddings(0).database.shape[1]
            self._dims = [d for d in NESTING if d < width] + [width]
        return tuple(self._dims)

    def validate(self, dims: Sequence[int]) -> None:
        self.dataset.validate()
        if self.checkpoint:
            _checkpoint_exists(self.checkpoint)
        if self._dims is not None and dims and max(dims) > max(self._dims):
            raise ConfigError(f"dim {max(dims)} is larger than the model's ({max(self._dims)})")

    def embeddings(self, dim: int) -> Embeddings:
        if self._emb is None:
            checkpoint = (
                Path(self.checkpoint) if self.checkpoint else self._trained(self.head, None)
            )
            self._emb = self._encoded(checkpoint, self.head, None)
        return self._emb


class ResNetFF(ImageEncoder):
    """The fixed-feature baseline: one ResNet per size, each size's features its dim's
    embedding (or, with ``truncate``, one model's prefixes).

    Args:
        checkpoints: Dim -> model weights, e.g. ``{ 8 = "ff8.pt", 2048 = "ff2048.pt" }``.
        sizes: Sizes to train (with ``train``) when there are no checkpoints.
        truncate: One model, cut to each dim (what truncation gives without MRL).
    """

    name = "resnet50-ff"
    paths = ("cache", "checkpoints")

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
            self._dims = tuple(d for d in NESTING if d < self.sizes[0]) + self.sizes
        self._emb: dict[int, Embeddings] = {}

    @property
    def dims(self) -> tuple[int, ...]:
        return self._dims

    def validate(self, dims: Sequence[int]) -> None:
        self.dataset.validate()
        for path in self.checkpoints.values():
            _checkpoint_exists(path)
        missing = sorted(d for d in dims if d not in self._dims)
        if self.truncate:
            missing = [d for d in missing if d > self.sizes[0]]
        if missing:
            sizes = ", ".join(map(str, self.sizes))
            raise ConfigError(f"no fixed-feature model of size {missing[0]} (sizes: {sizes})")

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

    def models(self, dims: Sequence[int]) -> int:
        """One model per size: a row chains as many models as it has distinct dims
        (one with ``truncate = true``, whose prefixes give every dim)."""
        return 1 if self.truncate else max(1, len(set(dims)))


def _checkpoint_exists(path: str) -> None:
    if not Path(path).is_file():
        raise DataError(f"checkpoint not found: {path}")


@hookimpl
def mrlbench_register_encoders(register):
    register(ResNetMRL)
    register(ResNetFF)
