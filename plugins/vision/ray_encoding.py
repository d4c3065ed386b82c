"""Encoding with Ray Data (``mrlbench encode --executor ray``; a library module of the
vision package): the images are read and decoded in parallel by Ray Data tasks, the
model is loaded once per embedding actor (``map_batches`` with a callable class,
``batch_size`` explicit, one GPU per actor where the cluster has GPUs, so the image
side scales by adding GPUs), and the features are written by this process into the
reference-named arrays, in dataset order, through the same resumable ``ChunkedWriter``
as a local encode: an interrupted encode resumes from its last commit.

Ray is started (or joined) by ``ray_start.connect``, the one Ray start-up of mrlbench
(the Ray executor's too). Workers read the images and the checkpoint themselves: their
paths must be the same on every node (on one machine they are)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mrlbench import DataError, MrlbenchError, write_json
from mrlbench_plugins.ray_start import connect, load_ray  # noqa: F401  (one Ray start-up)
from mrlbench_plugins.vision.chunked import ChunkedWriter
from mrlbench_plugins.vision.settings import Settings


def decode(
    batch: dict[str, np.ndarray], split: Sequence, order: np.ndarray, settings: Settings
) -> dict[str, np.ndarray]:
    """Read and transform a batch of images (positions in ``order``; a Ray Data task, read
    and decoded in parallel with the others): tensors, labels and whether each image
    could be read."""
    from mrlbench_plugins.vision.encoding import TensorView

    view = TensorView(split, settings.transform_fn(), order)
    items = [view[int(i)] for i in batch["id"]]
    return {
        "id": batch["id"],
        "image": np.stack([t.numpy() for t, _, _ in items]).astype(np.float32),
        "label": np.array([label for _, label, _ in items], dtype=np.int64),
        "ok": np.array([ok for _, _, ok in items], dtype=bool),
    }


class Embed:
    """The model, loaded once per actor from the checkpoint, on the actor's device (its
    GPU where Ray gave it one); a batch of images becomes its first ``rep_size``
    features (float32)."""

    def __init__(
        self,
        checkpoint: str,
        kind: str,
        arch: str,
        rep_size: int,
        settings: Settings,
        threads: int,
    ) -> None:
        import torch

        from mrlbench_plugins.vision import encoding, models

        if threads:
            torch.set_num_threads(threads)
        self.device = settings.torch_device()
        self.precision = settings.autocast_precision(self.device)
        model = models.load(checkpoint, kind, arch, rep_size if kind == "ff" else None)
        self.net = encoding.prepare(model, self.device)
        self.rep_size = rep_size

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        from mrlbench_plugins.vision.encoding import autocast

        images = torch.from_numpy(np.ascontiguousarray(batch["image"])).to(self.device)
        images = images.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), autocast(self.device, self.precision):
            feats = self.net(images)
        return {
            "id": batch["id"],
            "x": feats[:, : self.rep_size].float().cpu().numpy(),
            "label": batch["label"],
            "ok": batch["ok"],
        }


def plan(settings: Settings) -> tuple[int, int, float, float]:
    """(embedding actors, GPUs each, CPUs each, CPUs of each decoding task): one
    embedding actor per GPU where the cluster has GPUs and ``device`` allows them, else
    one actor on half the CPUs; the decoding tasks share the CPUs left."""
    ray = load_ray()
    resources = ray.cluster_resources()
    cpus, gpus = float(resources.get("CPU", 1)), int(resources.get("GPU", 0))
    if gpus and settings.device != "cpu":
        return gpus, 1, min(1.0, cpus / (2 * gpus)), 1.0 if cpus > gpus else 0.5
    if cpus < 2:
        return 1, 0, cpus / 2, cpus / 2
    return 1, 0, float(int(cpus // 2)), 0.5


def encode_split(
    checkpoint: str,
    kind: str,
    arch: str,
    split: Sequence,
    x_path: Path,
    y_path: Path,
    settings: Settings,
    *,
    rep_size: int,
    key: dict[str, Any],
    order: np.ndarray,
    skip_bad: bool = False,
    on_batch: Callable[[int], None] | None = None,
    commit_rows: int | None = None,
) -> int:
    """``encoding.encode_split`` on Ray Data: ``split[order]`` into ``x_path``/``y_path``,
    resuming a partial encode; returns the rows kept."""
    from mrlbench_plugins.vision import encoding

    if x_path.is_file() and y_path.is_file():
        return len(order)
    commit_rows = commit_rows or encoding.COMMIT_ROWS
    ray = load_ray()
    writer = ChunkedWriter(x_path, y_path, len(order), rep_size, key)
    begin = writer.done
    if on_batch:
        on_batch(begin)
    bad: list[tuple[int, str]] = []
    first_bad: int | None = None
    last_commit = begin
    rest = order[begin:]
    if len(rest):
        actors, gpus_each, cpus_each, decode_cpus = plan(settings)
        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True  # rows come back in dataset order
        context.enable_progress_bars = False  # mrlbench draws its own
        logging.getLogger("ray.data").setLevel(logging.ERROR)  # no per-stage log lines
        # blocks of whole batches (the last one short), so every batch is batch_size rows
        batches = -(-len(rest) // settings.batch_size)
        step = settings.batch_size * -(-batches // min(batches, 64))
        ids = np.arange(len(rest), dtype=np.int64)
        ds = ray.data.from_numpy([ids[s : s + step] for s in range(0, len(rest), step)])
        ds = ds.rename_columns({"data": "id"})
        ds = ds.map_batches(
            decode,
            fn_kwargs={"split": split, "order": rest, "settings": settings},
            batch_size=settings.batch_size,
            num_cpus=decode_cpus,
        )
        ds = ds.map_batches(
            Embed,
            fn_constructor_args=(
                checkpoint,
                kind,
                arch,
                rep_size,
                settings,
                max(1, int(cpus_each)),
            ),
            batch_size=settings.batch_size,
            compute=ray.data.ActorPoolStrategy(size=actors),
            num_gpus=gpus_each,
            num_cpus=cpus_each,
        )
        waiting: dict[int, dict[str, np.ndarray]] = {}  # batches that came early, by first id
        expected = 0
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            if len(batch["id"]) == 0:
                continue
            waiting[int(batch["id"][0])] = batch
            while expected in waiting:
                part = waiting.pop(expected)
                ids = part["id"]
                if not np.array_equal(ids, np.arange(expected, expected + len(ids))):
                    raise MrlbenchError("Ray Data returned rows out of order")  # pragma: no cover
                start = writer.done
                writer.write(part["x"], part["label"])
                for j in np.flatnonzero(~part["ok"]):
                    row = start + int(j)
                    where = order[row]
                    path = split.path(int(where)) if hasattr(split, "path") else f"item {where}"
                    bad.append((row, path))
                    if first_bad is None:
                        first_bad = row
                ready = writer.done - last_commit >= commit_rows or writer.complete
                if ready and (skip_bad or first_bad is None):
                    writer.commit()
                    last_commit = writer.done
                expected += len(ids)
                if on_batch:
                    on_batch(len(ids))
        if expected != len(rest):
            raise MrlbenchError(f"Ray Data returned {expected} of {len(rest)} rows")
    if bad and not skip_bad:
        listed = "; ".join(path for _, path in bad[:10])
        more = f" and {len(bad) - 10} more" if len(bad) > 10 else ""
        raise DataError(
            f"{len(bad)} unreadable image(s): {listed}{more}. Fix or remove them, "
            "or rerun with --skip-bad-images (rows are skipped and recorded)"
        )
    writer.finish(drop=np.array([row for row, _ in bad], dtype=np.int64))
    if bad:
        write_json(
            x_path.with_name(x_path.name.replace("-X.npy", "-skipped.json")),
            [{"row": row, "path": path} for row, path in bad],
        )
    return len(order) - len(bad)
