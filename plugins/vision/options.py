"""The image options ``encode`` and ``train`` share (``source_options``): which dataset
plugin and folders, and how images are turned into tensors; a command receives them as
one ``Images``. A library module of the vision package."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import click

from mrlbench import Dataset, registry
from mrlbench_plugins.vision.settings import Settings, default_transform


@dataclass(frozen=True)
class Images:
    """What the image options of a command give it: the dataset plugin made from them,
    the splits given, and the shared encoding ``Settings``."""

    plugin: str
    dataset: Dataset
    splits: tuple[str, ...]
    settings: Settings


SOURCE_OPTIONS = (
    click.option(
        "--source",
        default="image-folder",
        show_default=True,
        help="Dataset plugin: image-folder, imagenetv2, fashion-mnist, ...",
    ),
    click.option("--database", type=click.Path(), help="Database image folder."),
    click.option("--queries", type=click.Path(), help="Query image folder."),
    click.option("--root", type=click.Path(), help="Dataset files (fashion-mnist)."),
    click.option(
        "--transform",
        "transform_name",
        type=click.Choice(["imagenet", "small"]),
        default=None,
        help="imagenet (Resize 256, CenterCrop 224; the default "
        "for folders) or small (28x28 data; the default for fashion-mnist).",
    ),
    click.option(
        "--image-size", default=28, show_default=True, help="Side of the small transform."
    ),
    click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda."),
    click.option(
        "--precision",
        default="auto",
        show_default=True,
        help="auto, fp32, bf16 or fp16 (autocast).",
    ),
    click.option("--batch-size", default=256, show_default=True, help="Images per batch."),
    click.option(
        "--workers",
        default=None,
        type=int,
        help="DataLoader workers (default: cores - 1, at most 4).",
    ),
)


def images_from(
    source: str,
    database: str | None,
    queries: str | None,
    root: str | None,
    transform_name: str | None,
    image_size: int,
    device: str,
    precision: str,
    batch_size: int,
    workers: int | None,
) -> Images:
    """The ``Images`` the image options stand for (the dataset plugin built)."""
    table: dict[str, Any] = {"plugin": source}
    for key, value in (("database", database), ("queries", queries), ("root", root)):
        if value is not None:
            table[key] = value
    splits = tuple(
        split
        for split, given in (("database", database), ("queries", queries))
        if given is not None or source == "fashion-mnist"
    )
    settings = Settings(
        transform=transform_name or default_transform(source),
        image_size=image_size,
        device=device,
        precision=precision,
        batch_size=batch_size,
        workers=workers,
    )
    dataset = registry().create("dataset", table)[1]
    return Images(source, dataset, splits, settings)


def source_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Add the image options to a command, which receives them as one ``images``."""

    @functools.wraps(fn)
    def command(
        source: str,
        database: str | None,
        queries: str | None,
        root: str | None,
        transform_name: str | None,
        image_size: int,
        device: str,
        precision: str,
        batch_size: int,
        workers: int | None,
        **rest: Any,
    ) -> Any:
        images = images_from(
            source,
            database,
            queries,
            root,
            transform_name,
            image_size,
            device,
            precision,
            batch_size,
            workers,
        )
        return fn(images=images, **rest)

    for option in reversed(SOURCE_OPTIONS):
        command = option(command)
    return command
