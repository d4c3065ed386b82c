"""Training MRL, MRL-E and fixed-feature models on small datasets (a library module of
the vision package, for the ``train`` command and the encoders that train their own
model)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mrlbench import DataError
from mrlbench_plugins.vision.data import Subset
from mrlbench_plugins.vision.encoding import TensorView, autocast
from mrlbench_plugins.vision.models import build
from mrlbench_plugins.vision.settings import Settings, TrainSettings


def matryoshka_loss(
    logits: Sequence[torch.Tensor],
    target: torch.Tensor,
    weights: Sequence[float] | None = None,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """Sum over nesting dims of (relative importance x cross-entropy), as the reference's
    ``Matryoshka_CE_Loss``; one head (FF) is plain cross-entropy."""
    losses = torch.stack(
        [F.cross_entropy(z.float(), target, label_smoothing=label_smoothing) for z in logits]
    )
    if weights is None:
        return losses.sum()
    return (losses * torch.tensor(weights, dtype=losses.dtype, device=losses.device)).sum()


def new_model(
    arch: str, kind: str, classes: int, nesting=None, rep_size=None, seed: int = 0
) -> nn.Module:
    """A freshly initialised model; the seed fixes its initial weights."""
    torch.manual_seed(seed)
    return build(arch, kind, classes, nesting, rep_size)


def training_split(dataset: Any, settings: TrainSettings) -> Sequence:
    """The images a model is trained on: the dataset's database split, or its first
    ``settings.limit`` images."""
    split = dataset.split("database")
    return Subset(split, settings.limit) if settings.limit else split


@dataclass(frozen=True)
class Epoch:
    epoch: int
    loss: float  # mean loss per batch
    accuracy: tuple[float, ...]  # training accuracy of each head (nesting dim)
    seconds: float


def train(
    model: nn.Module,
    split: Sequence,
    settings: Settings,
    training: TrainSettings,
    *,
    on_batch: Callable[[int, float], None] | None = None,
) -> list[Epoch]:
    """SGD (momentum 0.9, Nesterov, weight decay 5e-4) with a one-cycle learning rate;
    seeded: the same settings give the same model. ``settings`` gives the transform,
    device, precision and workers; ``training`` the epochs, learning rate, batch size,
    seed and per-dim loss weights (``limit`` is the caller's: see ``training_split``)."""
    import time

    device = settings.torch_device()
    precision = settings.autocast_precision(device)
    epochs, batch_size, lr = training.epochs, training.batch_size, training.lr
    weights = training.relative_importance
    torch.manual_seed(training.seed)
    generator = torch.Generator().manual_seed(training.seed)
    view = TensorView(split, settings.transform_fn(), np.arange(len(split)))
    loader = torch.utils.data.DataLoader(
        view,
        batch_size=batch_size,
        shuffle=True,
        drop_last=True,
        generator=generator,
        num_workers=settings.loader_workers(),
        pin_memory=device.type == "cuda",
    )
    if len(loader) == 0:
        raise ValueError(f"fewer training images ({len(split)}) than one batch ({batch_size})")
    model.to(device, memory_format=torch.channels_last).train()
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * len(loader))
    history = []
    for epoch in range(epochs):
        start = time.perf_counter()
        total, batches, correct, seen = 0.0, 0, None, 0
        for images, labels, ok in loader:
            if not bool(ok.all()):
                raise DataError("unreadable training image(s); check the dataset")
            images = images.to(device, non_blocking=True).contiguous(
                memory_format=torch.channels_last
            )
            labels = labels.to(device, non_blocking=True)
            with autocast(device, precision):
                logits = model(images)
            loss = matryoshka_loss(logits, labels, weights)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            hits = torch.stack([(z.argmax(1) == labels).sum() for z in logits]).cpu()
            correct = hits if correct is None else correct + hits
            seen += len(labels)
            total += float(loss.detach())
            batches += 1
            if on_batch:
                on_batch(len(labels), float(loss.detach()))
        history.append(
            Epoch(
                epoch + 1,
                total / batches,
                tuple(float(c) / seen for c in correct),
                time.perf_counter() - start,
            )
        )
    return history
