"""Commands ``encode`` (images -> the reference pipeline's arrays) and ``train`` (MRL,
MRL-E or fixed-feature models on a small dataset, saved in the reference format)."""

from __future__ import annotations

import json
from pathlib import Path

import click
from mrlbench_plugins.image_datasets import Subset
from mrlbench_plugins.reference_commands import int_list
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from mrlbench.errors import ConfigError
from mrlbench.hookspecs import hookimpl
from mrlbench.store import write_json


class Speed(TextColumn):
    """Items per second of a task."""

    def __init__(self) -> None:
        super().__init__("")

    def render(self, task):  # type: ignore[override]
        from rich.text import Text

        return Text(f"{task.speed:,.0f} img/s" if task.speed else "")


def progress_bar(console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        Speed(),
        TimeRemainingColumn(),
        console=console,
    )


def dataset_from_options(registry, source: str, database, queries, root):
    table = {"plugin": source}
    for key, value in (("database", database), ("queries", queries), ("root", root)):
        if value is not None:
            table[key] = value
    return registry.create("dataset", table)[1]


def source_options(fn):
    options = [
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
        click.option("--batch-size", default=256, show_default=True),
        click.option(
            "--workers",
            default=None,
            type=int,
            help="DataLoader workers (default: cores - 1, at most 4).",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


@hookimpl
def mrlbench_register_commands(cli: click.Group) -> None:
    from mrlbench.cli import console, errors, registry

    @cli.command()
    @click.option("--model", "kind", type=click.Choice(["mrl", "mrl_e", "ff"]), required=True)
    @click.option("--checkpoint", type=click.Path(), required=True)
    @click.option(
        "--rep-size",
        type=int,
        default=None,
        help="Features to write (default: all; FF: the head's size).",
    )
    @click.option("--arch", default="resnet50", show_default=True)
    @source_options
    @click.option("--dataset", "name", required=True, help="Name in the array files: 1K, V2, ...")
    @click.option("--out", required=True, type=click.Path(), help="Arrays folder.")
    @click.option(
        "--random-sample",
        type=int,
        default=None,
        help="Keep N rows per split, drawn without replacement (seeded).",
    )
    @click.option("--seed", default=0, show_default=True)
    @click.option(
        "--skip-bad-images",
        is_flag=True,
        help="Skip unreadable images (recorded in *-skipped.json) instead of stopping.",
    )
    def encode(
        kind,
        checkpoint,
        rep_size,
        arch,
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
        name,
        out,
        random_sample,
        seed,
        skip_bad_images,
    ):
        """Images -> {NAME}_train/_val_{config}-X.npy/-y.npy (the reference inference)."""
        from mrlbench_plugins import encoding, resnet_models

        dataset = dataset_from_options(registry(), source, database, queries, root)
        splits = [
            s
            for s, given in (("database", database), ("queries", queries))
            if given is not None or source == "fashion-mnist"
        ]
        if not splits:
            raise ConfigError("give --database and/or --queries image folders")
        model = resnet_models.load(checkpoint, kind, arch, rep_size if kind == "ff" else None)
        key = {
            "checkpoint": encoding.file_hash(checkpoint),
            "arch": arch,
            "kind": kind,
            "source": source,
            "image_size": image_size,
        }
        transform_name = transform_name or ("small" if source == "fashion-mnist" else "imagenet")
        with progress_bar(errors) as bar:

            def task(what, total):
                tid = bar.add_task(what, total=total)
                return lambda n: bar.advance(tid, n)

            written = encoding.encode_dataset(
                model,
                kind,
                dataset,
                name,
                out,
                rep_size,
                transform_name,
                image_size,
                device,
                precision,
                batch_size,
                encoding.default_workers() if workers is None else workers,
                random_sample,
                seed,
                skip_bad_images,
                splits,
                task,
                key,
            )
        for which, path in written.items():
            console.print(f"{which}: {path}", highlight=False)

    @cli.command()
    @click.option("--model", "kind", type=click.Choice(["mrl", "mrl_e", "ff"]), required=True)
    @click.option("--arch", default="resnet-narrow", show_default=True)
    @click.option("--rep-size", type=int, default=None, help="FF: the size of the model.")
    @click.option(
        "--nesting",
        callback=int_list,
        default=None,
        help="MRL dims (default: 8, 16, ... up to the embedding width).",
    )
    @click.option(
        "--relative-importance",
        callback=None,
        default=None,
        help="Loss weight per nesting dim, e.g. 1,1,1,2.",
    )
    @source_options
    @click.option("--epochs", default=1, show_default=True)
    @click.option("--lr", default=0.2, show_default=True, help="Peak one-cycle learning rate.")
    @click.option("--seed", default=0, show_default=True)
    @click.option("--limit", type=int, default=None, help="Train on the first N images only.")
    @click.option("--out", required=True, type=click.Path(), help="Checkpoint file (.pt).")
    def train(
        kind,
        arch,
        rep_size,
        nesting,
        relative_importance,
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
        epochs,
        lr,
        seed,
        limit,
        out,
    ):
        """Train on the database split; write a checkpoint the encoders load."""
        from mrlbench_plugins import encoding, resnet_models, training

        dataset = dataset_from_options(registry(), source, database, queries, root)
        split = dataset.split("database")
        if limit:
            split = Subset(split, limit)
        classes = int(max(label for label in split.labels)) + 1
        model = training.new_model(arch, kind, classes, nesting, rep_size, seed)
        weights = (
            [float(w) for w in relative_importance.split(",")] if relative_importance else None
        )
        heads = model.fc.nesting if kind != "ff" else (model.fc.in_features,)
        if weights is not None and len(weights) != len(heads):
            raise ConfigError(f"--relative-importance needs {len(heads)} weights, one per dim")
        dev = encoding.pick_device(device)
        prec = encoding.pick_precision(precision, dev)
        fn = encoding.transform(
            transform_name or ("small" if source == "fashion-mnist" else "imagenet"), image_size
        )
        steps = epochs * (len(split) // batch_size)
        with progress_bar(errors) as bar:
            tid = bar.add_task(f"train {kind} {arch}", total=steps * batch_size)
            history = training.train(
                model,
                split,
                fn,
                epochs,
                batch_size,
                lr,
                seed,
                dev,
                prec,
                weights,
                encoding.default_workers() if workers is None else workers,
                lambda n, loss: bar.update(
                    tid, advance=n, description=f"train {kind} loss {loss:.3f}"
                ),
            )
        resnet_models.save_reference(model, out)
        log = {
            "kind": kind,
            "arch": arch,
            "heads": list(heads),
            "epochs": epochs,
            "lr": lr,
            "seed": seed,
            "batch_size": batch_size,
            "precision": prec,
            "source": source,
            "history": [e.__dict__ | {"accuracy": list(e.accuracy)} for e in history],
        }
        write_json(Path(str(out) + ".json"), log)
        table = Table(title=f"training: {out}")
        table.add_column("epoch")
        table.add_column("loss")
        for d in heads:
            table.add_column(f"acc@{d}d", justify="right")
        for e in history:
            table.add_row(str(e.epoch), f"{e.loss:.4f}", *(f"{a:.4f}" for a in e.accuracy))
        console.print(table)
        console.print(json.dumps({"checkpoint": str(out)}))
