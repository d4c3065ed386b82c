"""Commands ``encode`` (images -> the reference pipeline's arrays) and ``train`` (MRL,
MRL-E or fixed-feature models on a small dataset, saved in the reference format); a
plugin module of the vision package. Their image options are in ``options``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from mrlbench import ConfigError, emit_json, hookimpl, int_list, progress_bar, write_json
from mrlbench import terminal as console
from mrlbench_plugins.vision.options import Images, source_options
from mrlbench_plugins.vision.settings import TrainSettings


def bar_tasks(bar: Any) -> Callable[[str, int], Callable[[int], None]]:
    """``progress`` for encoding: a task on ``bar`` per split, advanced by images done."""

    def task(what: str, total: int) -> Callable[[int], None]:
        tid = bar.add_task(what, total=total)
        return lambda n: bar.advance(tid, n)

    return task


@click.command()
@click.option(
    "--model",
    "kind",
    type=click.Choice(["mrl", "mrl_e", "ff"]),
    required=True,
    help="The checkpoint's head: mrl, mrl_e (MRL-E) or ff (fixed-feature).",
)
@click.option(
    "--checkpoint",
    type=click.Path(),
    required=True,
    help="Model weights (.pt, the reference format or `mrlbench train`'s).",
)
@click.option(
    "--rep-size",
    type=int,
    default=None,
    help="Features to write (default: all; FF: the head's size).",
)
@click.option(
    "--arch",
    default="resnet50",
    show_default=True,
    help="Network the checkpoint is for: resnet18/34/50/101, resnet-narrow, resnet-narrow-s2.",
)
@source_options
@click.option("--dataset", "name", required=True, help="Name in the array files: 1K, V2, ...")
@click.option("--out", required=True, type=click.Path(), help="Arrays folder.")
@click.option(
    "--random-sample",
    type=int,
    default=None,
    help="Keep N rows per split, drawn without replacement (seeded).",
)
@click.option("--seed", default=0, show_default=True, help="Seed of --random-sample.")
@click.option(
    "--skip-bad-images",
    is_flag=True,
    help="Skip unreadable images (recorded in *-skipped.json) instead of stopping.",
)
@click.option(
    "--executor",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="ray: Ray Data, images decoded in parallel, the model once per actor "
    "(a GPU each where there are GPUs); the same files.",
)
@click.option(
    "--ray-address",
    default="",
    help="Ray cluster for --executor ray (default: $RAY_ADDRESS, else a local Ray).",
)
def encode(
    kind,
    checkpoint,
    rep_size,
    arch,
    images,
    name,
    out,
    random_sample,
    seed,
    skip_bad_images,
    executor,
    ray_address,
):
    """Images -> {NAME}_train/_val_{config}-X.npy/-y.npy (the reference inference)."""
    from mrlbench_plugins.vision import encoding, models

    if not images.splits:
        raise ConfigError("give --database and/or --queries image folders")
    model = models.load(checkpoint, kind, arch, rep_size if kind == "ff" else None)
    key = {
        "checkpoint": encoding.file_hash(checkpoint),
        "arch": arch,
        "kind": kind,
        "source": images.plugin,
        "image_size": images.settings.image_size,
    }
    with progress_bar(speed="img/s") as bar:
        written = encoding.encode_dataset(
            model,
            kind,
            images.dataset,
            name,
            out,
            images.settings,
            rep_size=rep_size,
            random_sample=random_sample,
            seed=seed,
            skip_bad=skip_bad_images,
            splits=images.splits,
            progress=bar_tasks(bar),
            key=key,
            executor=executor,
            checkpoint=checkpoint,
            arch=arch,
            ray_address=ray_address,
        )
    for which, path in written.items():
        console.print(f"{which}: {path}", highlight=False)


def training_log(
    kind: str,
    arch: str,
    heads: Sequence[int],
    plan: TrainSettings,
    precision: str,
    images: Images,
    history: list[Any],
) -> dict[str, Any]:
    """What ``train`` writes next to the checkpoint (``CHECKPOINT.json``)."""
    return {
        "kind": kind,
        "arch": arch,
        "heads": list(heads),
        "epochs": plan.epochs,
        "lr": plan.lr,
        "seed": plan.seed,
        "batch_size": plan.batch_size,
        "precision": precision,
        "source": images.plugin,
        "history": [e.__dict__ | {"accuracy": list(e.accuracy)} for e in history],
    }


def history_table(out: str, heads: Sequence[int], history: list[Any]) -> Table:
    """Loss and accuracy at each head's size, one row per epoch."""
    table = Table(title=f"training: {out}")
    table.add_column("epoch")
    table.add_column("loss")
    for d in heads:
        table.add_column(f"acc@{d}d", justify="right")
    for e in history:
        table.add_row(str(e.epoch), f"{e.loss:.4f}", *(f"{a:.4f}" for a in e.accuracy))
    return table


@click.command()
@click.option(
    "--model",
    "kind",
    type=click.Choice(["mrl", "mrl_e", "ff"]),
    required=True,
    help="mrl (one loss per nesting dim), mrl_e (weight-tied heads) or ff "
    "(fixed-feature, one size: --rep-size).",
)
@click.option(
    "--arch",
    default="resnet-narrow",
    show_default=True,
    help="Network: resnet18/34/50/101, resnet-narrow, resnet-narrow-s2.",
)
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
@click.option("--epochs", default=1, show_default=True, help="Passes over the database split.")
@click.option("--lr", default=0.2, show_default=True, help="Peak one-cycle learning rate.")
@click.option(
    "--seed", default=0, show_default=True, help="Seed of the weights and the batch order."
)
@click.option("--limit", type=int, default=None, help="Train on the first N images only.")
@click.option("--out", required=True, type=click.Path(), help="Checkpoint file (.pt).")
def train(kind, arch, rep_size, nesting, relative_importance, images, epochs, lr, seed, limit, out):
    """Train on the database split; write a checkpoint the encoders load."""
    from mrlbench_plugins.vision import models, training

    settings, batch_size = images.settings, images.settings.batch_size
    weights = [float(w) for w in relative_importance.split(",")] if relative_importance else None
    plan = TrainSettings(
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        seed=seed,
        relative_importance=weights,
        limit=limit,
        nesting=nesting,
    )
    split = training.training_split(images.dataset, plan)
    classes = int(max(label for label in split.labels)) + 1
    model = training.new_model(arch, kind, classes, nesting, rep_size, seed)
    heads = model.fc.nesting if kind != "ff" else (model.fc.in_features,)
    if weights is not None and len(weights) != len(heads):
        raise ConfigError(f"--relative-importance needs {len(heads)} weights, one per dim")
    prec = settings.autocast_precision()
    steps = epochs * (len(split) // batch_size)
    with progress_bar(speed="img/s") as bar:
        tid = bar.add_task(f"train {kind} {arch}", total=steps * batch_size)
        history = training.train(
            model,
            split,
            settings,
            plan,
            on_batch=lambda n, loss: bar.update(
                tid, advance=n, description=f"train {kind} loss {loss:.3f}"
            ),
        )
    models.save_reference(model, out)
    log = training_log(kind, arch, heads, plan, prec, images, history)
    write_json(Path(str(out) + ".json"), log)
    console.print(history_table(out, heads, history))
    emit_json({"checkpoint": str(out)})


@hookimpl
def mrlbench_register_commands(cli: click.Group) -> None:
    cli.add_command(encode)
    cli.add_command(train)
