"""Encoding images into the reference pipeline's arrays with a torch model (a library for
the vision plugins): transforms, fast inference, chunked resumable writes, bad images."""

from __future__ import annotations

import copy
import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mrlbench import ConfigError, DataError, array_name, write_json
from mrlbench_plugins.vision.chunked import ChunkedWriter
from mrlbench_plugins.vision.models import head_width
from mrlbench_plugins.vision.settings import TRANSFORMS, Settings

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
COMMIT_ROWS = 4096  # rows per resumable chunk


def transform(name: str, size: int = 28) -> Callable[[Any], torch.Tensor]:
    """``imagenet``: the reference's Resize 256, CenterCrop 224, ImageNet mean/std.
    ``small``: Resize/CenterCrop to ``size`` (a no-op for 28x28 data), mean/std 0.5.
    Grayscale images are repeated to 3 channels."""
    from torchvision import transforms as T

    if name == "imagenet":
        steps = [
            T.Resize(256),
            T.CenterCrop(224),
            T.ToTensor(),
            T.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    elif name == "small":
        steps = [
            T.Resize(size),
            T.CenterCrop(size),
            T.ToTensor(),
            T.Normalize((0.5,) * 3, (0.5,) * 3),
        ]
    else:
        raise ConfigError(f"unknown transform '{name}' (known: {', '.join(TRANSFORMS)})")
    pipeline = T.Compose(steps)

    def apply(image: Any) -> torch.Tensor:
        from PIL import Image

        if isinstance(image, np.ndarray):
            image = Image.fromarray(image)
        return pipeline(image.convert("RGB"))

    apply.size = 224 if name == "imagenet" else size  # type: ignore[attr-defined]
    return apply


class TensorView(torch.utils.data.Dataset):
    """Items ``order[i]`` of a split as (tensor, label, ok); a bad image gives a zero
    tensor and ok = False instead of raising, so it can be reported with its path."""

    def __init__(self, split: Sequence, fn: Callable, order: np.ndarray) -> None:
        self.split, self.fn, self.order = split, fn, order

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, i: int):
        try:
            image, label = self.split[int(self.order[i])]
            return self.fn(image), label, True
        except Exception:
            size = self.fn.size  # type: ignore[attr-defined]
            return torch.zeros(3, size, size), -1, False


def prepare(model: nn.Module, device: torch.device) -> nn.Module:
    """A copy of the network up to the pooled embedding (head removed), channels_last,
    in eval mode; the model itself is left as it was."""
    head, model.fc = model.fc, nn.Identity()
    try:
        net = copy.deepcopy(model)
    finally:
        model.fc = head
    return net.to(device, memory_format=torch.channels_last).eval()


def autocast(device: torch.device, precision: str):
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)


@dataclass
class SplitResult:
    rows: int
    bad: list[tuple[int, str]] = field(default_factory=list)  # (row, path)


def encode_split(
    model: nn.Module,
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
) -> SplitResult:
    """Encode ``split[order]`` into ``x_path``/``y_path`` (the first ``rep_size``
    features of ``model``, already on ``settings``' device), resuming a partial encode."""
    if x_path.is_file() and y_path.is_file():
        return SplitResult(len(order))
    device = settings.torch_device()
    precision = settings.autocast_precision(device)
    writer = ChunkedWriter(x_path, y_path, len(order), rep_size, key)
    result = SplitResult(len(order))
    view = TensorView(split, settings.transform_fn(), order[writer.done :])
    loader = torch.utils.data.DataLoader(
        view,
        batch_size=settings.batch_size,
        num_workers=settings.loader_workers(),
        shuffle=False,
        pin_memory=device.type == "cuda",
        persistent_workers=False,
    )
    first_bad: int | None = None
    last_commit = writer.done
    if on_batch:
        on_batch(writer.done)
    with torch.inference_mode():
        for images, labels, ok in loader:
            start = writer.done
            images = images.to(device, non_blocking=True).contiguous(
                memory_format=torch.channels_last
            )
            with autocast(device, precision):
                feats = model(images)
            writer.write(feats[:, :rep_size].float().cpu().numpy(), labels.numpy())
            for j in np.flatnonzero(~ok.numpy()):
                row = start + int(j)
                result.bad.append(
                    (
                        row,
                        split.path(int(order[row]))
                        if hasattr(split, "path")
                        else f"item {order[row]}",
                    )
                )
                if first_bad is None:
                    first_bad = row
            # once an image is bad (and not skipped), stop recording progress: a rerun
            # resumes from the chunk before it
            ready = writer.done - last_commit >= COMMIT_ROWS or writer.complete
            if ready and (skip_bad or first_bad is None):
                writer.commit()
                last_commit = writer.done
            if on_batch:
                on_batch(len(labels))
    if result.bad and not skip_bad:
        listed = "; ".join(f"{path}" for _, path in result.bad[:10])
        more = f" and {len(result.bad) - 10} more" if len(result.bad) > 10 else ""
        raise DataError(
            f"{len(result.bad)} unreadable image(s): {listed}{more}. Fix or remove them, "
            "or rerun with --skip-bad-images (rows are skipped and recorded)"
        )
    writer.finish(drop=np.array([row for row, _ in result.bad], dtype=np.int64))
    if result.bad:
        write_json(
            x_path.with_name(x_path.name.replace("-X.npy", "-skipped.json")),
            [{"row": row, "path": path} for row, path in result.bad],
        )
    return result


def file_hash(path: str | Path) -> str:
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def config_string(kind: str, rep_size: int) -> str:
    """The reference inference script's config names: ``mrl1_e0_ff2048``, MRL-E as it
    wrote them (``mrl1_e1_ff2048``), ``mrl0_e0_ff{D}`` for fixed-feature models."""
    mrl, efficient = {"mrl": (1, 0), "mrl_e": (1, 1), "ff": (0, 0)}[kind]
    return f"mrl{mrl}_e{efficient}_ff{rep_size}"


def sample_order(n: int, random_sample: int | None, seed: int) -> np.ndarray:
    """All rows in order, or ``random_sample`` rows drawn without replacement (seeded),
    in drawn order, like the reference's ``random_sample_dim``."""
    if random_sample is None or random_sample >= n:
        return np.arange(n)
    return np.random.default_rng(seed).choice(n, size=random_sample, replace=False)


def encode_dataset(
    model: nn.Module,
    kind: str,
    dataset: Any,
    name: str,
    out: str | Path,
    settings: Settings,
    *,
    rep_size: int | None = None,
    random_sample: int | None = None,
    seed: int = 0,
    skip_bad: bool = False,
    splits: Sequence[str] = ("database", "queries"),
    progress: Callable[[str, int], Callable[[int], None]] | None = None,
    key: dict[str, Any] | None = None,
    executor: str = "local",
    checkpoint: str | Path | None = None,
    arch: str = "resnet50",
    ray_address: str = "",
) -> dict[str, Path]:
    """Write ``{name}_train_{config}-X/-y.npy`` (database) and ``{name}_val_...`` (queries)
    of ``dataset`` (anything with ``split(which)``). Returns the X path of each split.

    ``executor = "ray"``: with Ray Data (``ray_encoding``), the model loaded from
    ``checkpoint`` (an ``arch`` network) once per actor; a local Ray is started unless
    one runs or ``ray_address`` / ``$RAY_ADDRESS`` names a cluster. The same files."""
    if executor not in ("local", "ray"):
        raise ConfigError(f"unknown executor '{executor}' for encoding (known: local, ray)")
    if executor == "ray" and checkpoint is None:
        raise ConfigError("encoding on Ray needs the checkpoint file (workers load it)")
    remote = (str(checkpoint), arch, ray_address) if executor == "ray" else None
    started: list[bool] = []  # Ray connected (and started here) once a split needs it
    try:
        return _encode_dataset(
            model, kind, dataset, name, out, settings, rep_size, random_sample, seed,
            skip_bad, splits, progress, key, remote, started,
        )  # fmt: skip
    finally:
        if any(started):
            from mrlbench_plugins.vision import ray_encoding

            ray_encoding.load_ray().shutdown()


def _encode_dataset(
    model: nn.Module,
    kind: str,
    dataset: Any,
    name: str,
    out: str | Path,
    settings: Settings,
    rep_size: int | None,
    random_sample: int | None,
    seed: int,
    skip_bad: bool,
    splits: Sequence[str],
    progress: Callable[[str, int], Callable[[int], None]] | None,
    key: dict[str, Any] | None,
    remote: tuple[str, str, str] | None,
    started: list[bool],
) -> dict[str, Path]:
    device = settings.torch_device()
    if remote is None:  # on Ray each actor checks its own device
        settings.autocast_precision(device)  # fp16 on the CPU fails before any work
    native = head_width(model)
    rep = rep_size or native
    if rep > native:
        raise ConfigError(f"--rep-size {rep} is larger than the model's {native} features")
    config = config_string(kind, rep)
    net = None  # the inference copy of the model, made only if a split needs encoding
    written = {}
    for which in splits:
        part = "train" if which == "database" else "val"
        x_path = Path(out) / array_name(name, part, config, "X")
        y_path = Path(out) / array_name(name, part, config, "y")
        written[which] = x_path
        if x_path.is_file() and y_path.is_file():
            continue
        net = net or (prepare(model, device) if remote is None else None)
        split = dataset.split(which)
        order = sample_order(len(split), random_sample, seed)
        split_key = {
            **(key or {}),
            "split": which,
            "rows": len(order),
            "config": config,
            "transform": settings.transform,
            "seed": seed,
            "sample": random_sample,
        }
        tick = progress(f"encode {name} {part}", len(order)) if progress else None
        if remote is not None:  # Ray Data: the workers load the model themselves
            from mrlbench_plugins.vision import ray_encoding

            if not started:
                started.append(ray_encoding.connect(os.cpu_count() or 1, remote[2]))
            ray_encoding.encode_split(
                remote[0],
                kind,
                remote[1],
                split,
                x_path,
                y_path,
                settings,
                rep_size=rep,
                key=split_key,
                order=order,
                skip_bad=skip_bad,
                on_batch=tick,
            )
            continue
        encode_split(
            net,
            split,
            x_path,
            y_path,
            settings,
            rep_size=rep,
            key=split_key,
            order=order,
            skip_bad=skip_bad,
            on_batch=tick,
        )
    return written
