"""ResNet models with the reference's MRL, MRL-E and fixed-feature heads, and loading of
every checkpoint form the reference produced (a library module of the vision package).

Head state-dict keys (as ``model.fc``), compatible with RAIVNLab/MRL:

- MRL (``MRL_Linear_Layer`` / old ``MultiHeadNestedLinear``): ``fc.nesting_classifier_{i}``
  with weight ``[classes, d_i]``;
- MRL-E (``MRL_Linear_Layer(efficient=True)``): ``fc.nesting_classifier_0`` with weight
  ``[classes, D]``; the old ``SingleHeadNestedLinear`` stores it as ``fc.weight``;
- FF-d (``FixedFeatureLayer``) and a plain torchvision model: ``fc.weight [classes, d]``.

The embedding is the pooled (``avgpool``) output, before the head, as in the reference.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torchvision.models.resnet import BasicBlock

from mrlbench import ConfigError, DataError
from mrlbench_plugins.vision.settings import NESTING

KINDS = ("mrl", "mrl_e", "ff")


class MRLHead(nn.Module):
    """One linear classifier per nesting dim (MRL), or one shared classifier whose
    weight is sliced to each prefix (MRL-E). Returns a tuple of logits, one per dim."""

    def __init__(self, nesting: Sequence[int], num_classes: int, efficient: bool = False):
        super().__init__()
        self.nesting, self.efficient = tuple(nesting), efficient
        if efficient:
            self.nesting_classifier_0 = nn.Linear(self.nesting[-1], num_classes)
        else:
            for i, d in enumerate(self.nesting):
                setattr(self, f"nesting_classifier_{i}", nn.Linear(d, num_classes))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self.efficient:
            w, b = self.nesting_classifier_0.weight, self.nesting_classifier_0.bias
            return tuple(F.linear(x[:, :d], w[:, :d], b) for d in self.nesting)
        return tuple(
            getattr(self, f"nesting_classifier_{i}")(x[:, :d]) for i, d in enumerate(self.nesting)
        )


class FixedFeatureHead(nn.Linear):
    """Classifies from the first ``in_features`` of the embedding (the FF-d baseline)."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return (super().forward(x[:, : self.in_features]),)


class BlurPoolConv2d(nn.Module):
    """The reference training's blur before a strided conv (FFCV ``BlurPoolConv2d``)."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        kernel = torch.tensor([[[[1, 2, 1], [2, 4, 2], [1, 2, 1]]]]) / 16.0
        self.conv = conv
        self.register_buffer("blur_filter", kernel.repeat(conv.in_channels, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        blurred = F.conv2d(
            x, self.blur_filter, stride=1, padding=(1, 1), groups=self.conv.in_channels
        )
        return self.conv(blurred)


def apply_blurpool(module: nn.Module) -> None:
    """Wrap every conv with stride > 1 and >= 16 input channels, as the reference did."""
    for name, child in module.named_children():
        if isinstance(child, nn.Conv2d) and max(child.stride) > 1 and child.in_channels >= 16:
            setattr(module, name, BlurPoolConv2d(child))
        else:
            apply_blurpool(child)


class NarrowResNet(nn.Module):
    """A small residual network for small images: 3x3 stem (stride ``stem_stride``), no
    max-pool, one BasicBlock per stage, widths ``width * (1, 2, 4, 8)``; pooled embedding
    of ``8 * width`` dims."""

    def __init__(self, width: int = 32, num_classes: int = 10, stem_stride: int = 1) -> None:
        super().__init__()
        widths = [width, 2 * width, 4 * width, 8 * width]
        self.conv1 = nn.Conv2d(3, width, 3, stride=stem_stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        stages, cin = [], width
        for i, cout in enumerate(widths):
            stride = 1 if i == 0 else 2
            down = None
            if stride != 1 or cin != cout:
                down = nn.Sequential(
                    nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout)
                )
            stages.append(nn.Sequential(BasicBlock(cin, cout, stride, down)))
            cin = cout
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


ARCHS = {
    "resnet18": lambda c: torchvision.models.resnet18(num_classes=c),
    "resnet34": lambda c: torchvision.models.resnet34(num_classes=c),
    "resnet50": lambda c: torchvision.models.resnet50(num_classes=c),
    "resnet101": lambda c: torchvision.models.resnet101(num_classes=c),
    "resnet-narrow": lambda c: NarrowResNet(32, c),
    "resnet-narrow-s2": lambda c: NarrowResNet(32, c, stem_stride=2),
}


def backbone(arch: str, num_classes: int = 1000) -> nn.Module:
    if arch not in ARCHS:
        raise ConfigError(f"unknown arch '{arch}' (known: {', '.join(ARCHS)})")
    return ARCHS[arch](num_classes)


def head_width(model: nn.Module) -> int:
    """How many embedding features the model's head reads (FF-d: d; MRL: the widest dim)."""
    return int(model.fc.nesting[-1] if isinstance(model.fc, MRLHead) else model.fc.in_features)


def build(
    arch: str,
    kind: str,
    num_classes: int,
    nesting: Sequence[int] | None = None,
    rep_size: int | None = None,
    blurpool: bool = False,
) -> nn.Module:
    """A backbone with the head of ``kind`` (``mrl``, ``mrl_e`` or ``ff``)."""
    if kind not in KINDS:
        raise ConfigError(f"unknown model kind '{kind}' (known: {', '.join(KINDS)})")
    model = backbone(arch, num_classes)
    width = model.fc.in_features
    if kind == "ff":
        model.fc = FixedFeatureHead(rep_size or width, num_classes)
    else:
        dims = tuple(nesting or [d for d in NESTING if d <= width])
        if dims[-1] != width and kind == "mrl_e":
            raise ConfigError(f"MRL-E nesting must end at the embedding width {width}")
        model.fc = MRLHead(dims, num_classes, efficient=kind == "mrl_e")
    if blurpool:
        apply_blurpool(model)
    return model


# ------------------------------------------------------------------------ checkpoints
def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a checkpoint (``weights_only=True``), unwrapped from ``state_dict`` /
    ``model`` containers and DDP ``module.`` prefixes."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise DataError(f"{path}: not a loadable PyTorch checkpoint ({exc})") from None
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise DataError(f"{path}: holds no state dict of tensors")
    if obj and all(k.startswith("module.") for k in obj):
        obj = {k[len("module.") :]: v for k, v in obj.items()}
    return obj


def load(
    path: str | Path, kind: str, arch: str = "resnet50", rep_size: int | None = None
) -> nn.Module:
    """Build the model a checkpoint describes and load it strictly (eval mode).

    BlurPool is detected from ``blur_filter`` keys, the nesting dims and class count
    from the head's weights, the old MRL-E notation (``fc.weight``) is renamed.
    """
    state = read_state_dict(path)
    blurpool = any(k.endswith("blur_filter") for k in state)
    if kind == "mrl":
        heads = sorted(
            (int(k.split("_")[-1].split(".")[0]), v.shape)
            for k, v in state.items()
            if k.startswith("fc.nesting_classifier_") and k.endswith(".weight")
        )
        if not heads:
            raise DataError(f"{path}: no MRL head (fc.nesting_classifier_*) in the checkpoint")
        nesting = [shape[1] for _, shape in heads]
        classes = heads[0][1][0]
    elif kind == "mrl_e":
        if "fc.weight" in state and "fc.nesting_classifier_0.weight" not in state:
            state["fc.nesting_classifier_0.weight"] = state.pop("fc.weight")  # old notation
            state["fc.nesting_classifier_0.bias"] = state.pop("fc.bias")
        if "fc.nesting_classifier_0.weight" not in state:
            raise DataError(f"{path}: no MRL-E head in the checkpoint")
        classes, width = state["fc.nesting_classifier_0.weight"].shape
        nesting = [d for d in NESTING if d < width] + [width]
    elif kind == "ff":
        if "fc.weight" not in state:
            raise DataError(f"{path}: no fixed-feature head (fc.weight) in the checkpoint")
        classes, found = state["fc.weight"].shape
        if rep_size is not None and rep_size != found:
            raise DataError(f"{path}: the head reads {found} features, not --rep-size {rep_size}")
        rep_size, nesting = found, None
    else:
        raise ConfigError(f"unknown model kind '{kind}' (known: {', '.join(KINDS)})")
    model = build(arch, kind, int(classes), nesting, rep_size, blurpool)
    missing, unexpected = _diff(model.state_dict(), state)
    if missing or unexpected:
        raise DataError(
            f"{path} does not match {arch} ({kind}): missing keys {_few(missing)}; "
            f"unexpected keys {_few(unexpected)}"
        )
    model.load_state_dict(state, strict=True)
    return model.eval()


def _diff(expected: dict, found: dict) -> tuple[list[str], list[str]]:
    mismatch = [k for k in expected if k in found and expected[k].shape != found[k].shape]
    missing = [k for k in expected if k not in found] + [f"{k} (shape)" for k in mismatch]
    return missing, [k for k in found if k not in expected]


def _few(keys: list[str], n: int = 5) -> str:
    if not keys:
        return "none"
    return ", ".join(keys[:n]) + (f" and {len(keys) - n} more" if len(keys) > n else "")


def save_reference(model: nn.Module, path: str | Path) -> None:
    """Save as the reference training did: the DDP-wrapped state dict (``module.`` keys)."""
    from mrlbench import atomic_path

    state = {f"module.{k}": v.detach().cpu() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
