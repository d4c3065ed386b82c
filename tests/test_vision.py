"""Image encoders on real torchvision models and real images: checkpoint formats, image
folders, the MRL loss, training, bad images, resumable encoding, cached encoders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from PIL import Image

from mrlbench.errors import DataError
from mrlbench_plugins.vision import encoding, models, training
from mrlbench_plugins.vision.data import ArraySplit, scan_folder
from mrlbench_plugins.vision.settings import Settings, TrainSettings

CLASSES = 5


def reference_blurpool(mod: torch.nn.Module) -> None:
    """``apply_blurpool`` / ``BlurPoolConv2d`` of the reference training (FFCV), verbatim."""

    class BlurPoolConv2d(torch.nn.Module):
        def __init__(self, conv):
            super().__init__()
            default_filter = torch.tensor([[[[1, 2, 1], [2, 4, 2], [1, 2, 1]]]]) / 16.0
            filt = default_filter.repeat(conv.in_channels, 1, 1, 1)
            self.conv = conv
            self.register_buffer("blur_filter", filt)

        def forward(self, x):
            blurred = F.conv2d(
                x,
                self.blur_filter,
                stride=1,
                padding=(1, 1),
                groups=self.conv.in_channels,
                bias=None,
            )
            return self.conv.forward(blurred)

    for name, child in mod.named_children():
        if isinstance(child, torch.nn.Conv2d) and (
            np.max(child.stride) > 1 and child.in_channels >= 16
        ):
            setattr(mod, name, BlurPoolConv2d(child))
        else:
            reference_blurpool(child)


class FixedFeatureLayer(torch.nn.Linear):
    """The reference's fixed-feature head (MRL.py), verbatim."""

    def __init__(self, in_features, out_features, **kwargs):
        super().__init__(in_features, out_features, **kwargs)

    def forward(self, x):
        if self.bias is not None:
            out = torch.matmul(x[:, : self.in_features], self.weight.t()) + self.bias
        else:
            out = torch.matmul(x[:, : self.in_features], self.weight.t())
        return out


def torchvision_features(model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The reference's embedding: a forward hook on ``avgpool``."""
    out = {}
    handle = model.avgpool.register_forward_hook(lambda m, i, o: out.update(x=o))
    with torch.no_grad():
        model.eval()(images)
    handle.remove()
    return out["x"].flatten(1)


def our_features(model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Our encoding path (head removed, channels_last: float differences ~1e-4)."""
    net = encoding.prepare(model, torch.device("cpu"))
    with torch.no_grad():
        return net(images.contiguous(memory_format=torch.channels_last))


@pytest.fixture(scope="module")
def resnet50():
    torch.manual_seed(0)
    model = torchvision.models.resnet50(num_classes=CLASSES)
    # non-trivial batch-norm statistics, so a wrong load would show
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return model.eval()


@pytest.fixture(scope="module")
def images():
    torch.manual_seed(1)
    return torch.randn(2, 3, 64, 64)


def save(state: dict, path: Path) -> Path:
    torch.save(state, path)
    return path


def test_plain_torchvision_state_dict_is_ff2048(resnet50, images, tmp_path):
    path = save(resnet50.state_dict(), tmp_path / "tv.pt")
    model = models.load(path, "ff", "resnet50")
    assert model.fc.in_features == 2048
    torch.testing.assert_close(
        our_features(model, images), torchvision_features(resnet50, images), rtol=1e-3, atol=1e-4
    )


def test_mrl_checkpoint_with_ddp_prefix(resnet50, images, tmp_path):
    state = {k: v for k, v in resnet50.state_dict().items() if not k.startswith("fc.")}
    for i, d in enumerate(models.NESTING):
        state[f"fc.nesting_classifier_{i}.weight"] = torch.randn(CLASSES, d)
        state[f"fc.nesting_classifier_{i}.bias"] = torch.randn(CLASSES)
    path = save({f"module.{k}": v for k, v in state.items()}, tmp_path / "mrl.pt")
    model = models.load(path, "mrl", "resnet50")
    head = model.fc
    assert model.fc.nesting == models.NESTING
    torch.testing.assert_close(
        our_features(model, images), torchvision_features(resnet50, images), rtol=1e-3, atol=1e-4
    )
    # the heads read each prefix: logits of dim 8 equal a hand product
    x = torchvision_features(resnet50, images)
    logits = head(x)
    torch.testing.assert_close(
        logits[0],
        x[:, :8] @ state["fc.nesting_classifier_0.weight"].T
        + state["fc.nesting_classifier_0.bias"],
    )


def test_mrl_e_old_notation(resnet50, images, tmp_path):
    state = dict(resnet50.state_dict())
    state["fc.weight"], state["fc.bias"] = torch.randn(CLASSES, 2048), torch.randn(CLASSES)
    path = save(state, tmp_path / "mrle.pt")
    model = models.load(path, "mrl_e", "resnet50")
    x = torchvision_features(resnet50, images)
    torch.testing.assert_close(our_features(model, images), x, rtol=1e-3, atol=1e-4)
    model = models.load(path, "mrl_e", "resnet50")
    logits = model.fc(x)
    torch.testing.assert_close(
        logits[1], x[:, :16] @ state["fc.weight"][:, :16].T + state["fc.bias"]
    )


def test_blurpool_checkpoint(images, tmp_path):
    torch.manual_seed(2)
    reference = torchvision.models.resnet50(num_classes=CLASSES)
    reference.fc = FixedFeatureLayer(512, CLASSES)  # FF-512 head
    reference_blurpool(reference)
    state = reference.state_dict()
    assert "layer2.0.conv2.blur_filter" in state and "layer2.0.downsample.0.conv.weight" in state
    path = save({f"module.{k}": v for k, v in state.items()}, tmp_path / "blur.pt")
    model = models.load(path, "ff", "resnet50", rep_size=512)
    torch.testing.assert_close(
        our_features(model, images), torchvision_features(reference, images), rtol=1e-3, atol=1e-4
    )


def test_mismatch_names_missing_and_unexpected_keys(resnet50, tmp_path):
    state = dict(resnet50.state_dict())
    del state["layer1.0.conv1.weight"]
    state["extra.weight"] = torch.zeros(1)
    path = save(state, tmp_path / "bad.pt")
    with pytest.raises(
        DataError,
        match=r"missing keys layer1\.0\.conv1\.weight; "
        r"unexpected keys extra\.weight",
    ):
        models.load(path, "ff", "resnet50")
    with pytest.raises(DataError, match="no MRL head"):
        models.load(path, "mrl", "resnet50")


class Exploit:
    def __reduce__(self):
        return (Path("/tmp/mrlbench-torch-unpickled").touch, ())


def test_checkpoints_load_weights_only(tmp_path):
    Path("/tmp/mrlbench-torch-unpickled").unlink(missing_ok=True)
    path = tmp_path / "evil.pt"
    torch.save({"fc.weight": Exploit()}, path)
    with pytest.raises(DataError, match="not a loadable PyTorch checkpoint"):
        models.load(path, "ff", "resnet50")
    assert not Path("/tmp/mrlbench-torch-unpickled").exists()


def write_folder(root: Path, per_class: int = 4, size: int = 20) -> Path:
    rng = np.random.default_rng(0)
    for c, name in enumerate(["zebra", "apple", "Mango"]):
        (root / name / "sub").mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = (rng.random((size, size, 3)) * 60 + c * 80).astype(np.uint8)
            where = root / name / ("sub" if i % 2 else "") / f"img{(7 * i) % per_class}.png"
            Image.fromarray(pixels).save(where)
    return root


def test_labels_follow_imagefolder_order(tmp_path):
    root = write_folder(tmp_path / "imgs")
    ours = scan_folder(root)
    theirs = torchvision.datasets.ImageFolder(str(root))
    assert [(p, label) for p, label in ours.items] == theirs.samples


def test_mrl_loss_equals_a_hand_computation():
    logits = (
        torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.0]]),
        torch.tensor([[0.0, 1.0, 0.0], [1.0, -1.0, 3.0]]),
    )
    target = torch.tensor([0, 2])

    def ce(z, t):
        z = np.asarray(z, dtype=np.float64)
        return np.mean([np.log(np.exp(row).sum()) - row[k] for row, k in zip(z, t, strict=True)])

    hand = [ce(z.numpy(), target.numpy()) for z in logits]
    got = training.matryoshka_loss(logits, target)
    assert float(got) == pytest.approx(sum(hand), rel=1e-6)
    weighted = training.matryoshka_loss(logits, target, weights=[1.0, 2.0])
    assert float(weighted) == pytest.approx(hand[0] + 2 * hand[1], rel=1e-6)


def stripes(n: int, size: int = 16, seed: int = 0) -> ArraySplit:
    """Generated grey images: class c has stripes of period c + 2 (horizontal or vertical)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, n)
    images = np.zeros((n, size, size), np.uint8)
    for i, c in enumerate(labels):
        offset = rng.integers(0, c + 2)
        if c % 2:
            images[i, :, offset :: c + 2] = 255
        else:
            images[i, offset :: c + 2, :] = 255
    noise = rng.integers(0, 40, images.shape, dtype=np.uint8)
    return ArraySplit(np.clip(images.astype(int) + noise, 0, 255).astype(np.uint8), labels)


# what the old defaults of train() were: fp32 on the CPU, no DataLoader workers
SMALL_CPU = Settings(transform="small", image_size=16, device="cpu", precision="fp32", workers=0)


def test_short_training_lowers_the_loss():
    model = training.new_model("resnet-narrow-s2", "mrl", 4, nesting=[8, 32, 256])
    history = training.train(
        model,
        stripes(512),
        SMALL_CPU,
        TrainSettings(epochs=3, batch_size=64, lr=0.1, seed=0),
    )
    assert history[-1].loss < 0.8 * history[0].loss
    assert len(history[-1].accuracy) == 3


def test_training_is_seeded():
    def once():
        model = training.new_model("resnet-narrow-s2", "mrl", 4, nesting=[8, 256], seed=5)
        training.train(
            model,
            stripes(128),
            SMALL_CPU,
            TrainSettings(epochs=1, batch_size=32, lr=0.1, seed=5),
        )
        return model.state_dict()

    a, b = once(), once()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_corrupt_image_is_reported_and_can_be_skipped(cli, tmp_path):
    root = write_folder(tmp_path / "imgs")
    bad = sorted((root / "apple").rglob("*.png"))[1]
    bad.write_bytes(bad.read_bytes()[:40])  # truncated
    model = models.build("resnet-narrow-s2", "mrl", 3)
    models.save_reference(model, tmp_path / "m.pt")
    args = [
        "encode",
        "--model",
        "mrl",
        "--checkpoint",
        tmp_path / "m.pt",
        "--arch",
        "resnet-narrow-s2",
        "--database",
        root,
        "--queries",
        root,
        "--dataset",
        "T",
        "--transform",
        "small",
        "--image-size",
        "16",
        "--out",
        tmp_path / "out",
        "--workers",
        "0",
    ]
    r = cli(*args)
    assert r.code == 2 and "Traceback" not in r.err
    assert "1 unreadable image(s)" in r.err and str(bad) in r.err
    assert not (tmp_path / "out" / "T_train_mrl1_e0_ff256-X.npy").exists()
    r = cli(*args, "--skip-bad-images")
    assert r.code == 0, r.err
    x = np.load(tmp_path / "out" / "T_train_mrl1_e0_ff256-X.npy")
    y = np.load(tmp_path / "out" / "T_train_mrl1_e0_ff256-y.npy")
    assert x.shape == (11, 256) and y.dtype == np.int32
    skipped = json.loads((tmp_path / "out" / "T_train_mrl1_e0_ff256-skipped.json").read_text())
    assert [s["path"] for s in skipped] == [str(bad)]
    order = [label for path, label in scan_folder(root).items if path != str(bad)]
    np.testing.assert_array_equal(y, order)


class Interrupt(Exception):
    pass


def test_a_resumed_encode_equals_an_uninterrupted_one(tmp_path, monkeypatch):
    monkeypatch.setattr(encoding, "COMMIT_ROWS", 64)
    torch.manual_seed(0)
    model = models.build("resnet-narrow-s2", "mrl", 4)
    split = stripes(300, seed=1)

    class Data:
        def split(self, which):
            return split

    def run(out, stop_after=None):
        seen = []

        def progress(what, total):
            def tick(n):
                seen.append(n)
                if stop_after is not None and sum(seen) >= stop_after:
                    raise Interrupt

            return tick

        encoding.encode_dataset(
            model,
            "mrl",
            Data(),
            "S",
            out,
            Settings(
                transform="small",
                image_size=16,
                device="cpu",
                precision="fp32",
                batch_size=32,
                workers=0,
            ),
            splits=["database"],
            progress=progress,
            key={"m": 1},
        )

    run(tmp_path / "whole")
    with pytest.raises(Interrupt):
        run(tmp_path / "resumed", stop_after=150)
    sidecar = json.loads(next((tmp_path / "resumed").glob("*.progress.json")).read_text())
    done = sidecar["value"]["done"]  # mrlbench.resume's format: {"key": ..., "value": ...}
    assert 0 < done < 300 and done % 64 == 0
    run(tmp_path / "resumed")
    for part in ("X", "y"):
        name = f"S_train_mrl1_e0_ff256-{part}.npy"
        np.testing.assert_array_equal(
            np.load(tmp_path / "resumed" / name), np.load(tmp_path / "whole" / name)
        )
    assert not list((tmp_path / "resumed").glob("*.partial"))


def test_random_sample_is_seeded_and_without_replacement():
    a = encoding.sample_order(1000, 100, seed=3)
    assert len(set(a)) == 100 and (a == encoding.sample_order(1000, 100, seed=3)).all()
    assert (encoding.sample_order(10, None, 0) == np.arange(10)).all()


TINY_PLUGIN = '''
"""A one-file dataset plugin: random 28x28 grey images with 4 labels."""

import numpy as np
from mrlbench_plugins.vision.data import ArraySplit

from mrlbench import hookimpl
from mrlbench.types import Dataset


class TinyImages(Dataset):
    name = "tiny-images"

    def __init__(self, database: int = 64, queries: int = 16, seed: int = 0) -> None:
        self.sizes, self.seed = {"database": database, "queries": queries}, seed

    def split(self, which):
        rng = np.random.default_rng([self.seed, which == "queries"])
        n = self.sizes[which]
        return ArraySplit(rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), np.arange(n) % 4)


@hookimpl
def mrlbench_register_datasets(register):
    register(TinyImages)
'''

TINY_RUN = """
[run]
ks = [5]

[[encoders]]
plugin = "resnet50-mrl"
name = "tiny"
arch = "resnet-narrow-s2"
dataset = { plugin = "tiny-images", queries = 12 }
device = "cpu"
workers = 0
train = { epochs = 1, batch_size = 16 }

[[backends]]
plugin = "faiss-exact"

[[strategies]]
plugin = "flat"
"""


@pytest.fixture
def tiny_plugin(tmp_path):
    """A plugins folder with the ``tiny-images`` dataset; unregistered afterwards."""
    from mrlbench import plugins

    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "vision_tiny_images.py").write_text(TINY_PLUGIN)
    yield folder
    plugin = plugins.pm.get_plugin("vision_tiny_images.py (plugins dir)")
    if plugin is not None:
        plugins.pm.unregister(plugin)
    plugins.load()  # the registry again, without it


def test_a_plugins_dir_dataset_serves_the_image_encoders(cli, tiny_plugin, tmp_path, monkeypatch):
    """The encoders get their dataset from the one registry, so a dataset loaded with
    --plugins-dir works (it once went through a second plugin manager that ignored it)."""
    monkeypatch.setenv("MRLBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("MRLBENCH_PLUGINS_DIR", raising=False)
    config = tmp_path / "tiny.toml"
    config.write_text(TINY_RUN)
    r = cli("--plugins-dir", tiny_plugin, "run", config, "--out", tmp_path / "run")
    assert r.code == 0, r.err[-3000:]
    rows = json.loads((tmp_path / "run" / "leaderboard.json").read_text())
    assert rows and all(row["status"] == "ok" for row in rows), [row["error"] for row in rows]
    assert {row["label"] for row in rows} == {f"flat@{d}" for d in (8, 16, 32, 64, 128, 256)}
    assert len(list((tmp_path / "cache" / "models").glob("mrl-resnet-narrow-s2-*.pt"))) == 1
    # the arrays were encoded from the plugin's images: 64 database rows, 12 queries
    (x_val,) = (tmp_path / "cache" / "arrays").rglob("tiny-images_val_*-X.npy")
    assert np.load(x_val).shape == (12, 256)


def test_the_registry_makes_the_encoders_dataset(tiny_plugin):
    from mrlbench.plugins import load

    reg = load(tiny_plugin)
    cls = reg.get("dataset", "tiny-images").cls
    for given in ({"plugin": "tiny-images", "queries": 12}, "tiny-images"):
        _, encoder = reg.create("encoder", {"plugin": "resnet50-mrl", "dataset": given})
        assert isinstance(encoder.dataset, cls)
        assert encoder.dataset_name == "tiny-images"
        assert encoder.settings.transform == "imagenet"  # the default for non-Fashion-MNIST
    assert encoder._data_key()["args"] == {}
    _, encoder = reg.create(
        "encoder", {"plugin": "resnet50-ff", "sizes": [8], "dataset": {"plugin": "tiny-images"}}
    )
    assert isinstance(encoder.dataset, cls)


def test_cache_keys_are_those_of_the_dataset_args_configs(registry):
    """A nested ``dataset`` table keys models and arrays exactly as ``dataset`` +
    ``dataset_args`` did, so cached models and arrays stay valid."""
    from mrlbench.store import digest

    table = {
        "plugin": "resnet50-mrl",
        "arch": "resnet-narrow-s2",
        "dataset": {"plugin": "fashion-mnist", "limit_database": 6000, "limit_queries": 1000},
        "train": {"epochs": 1, "relative_importance": [0.5, 0.5]},
    }
    _, encoder = registry.create("encoder", table)
    before = {  # what the encoder built from dataset = "fashion-mnist" + dataset_args
        "dataset": "fashion-mnist",
        "args": {"limit_database": 6000, "limit_queries": 1000},
        "transform": "small",
        "image_size": 28,
        "arch": "resnet-narrow-s2",
    }
    assert encoder._data_key() == before
    assert encoder.training.key() == {
        "epochs": 1,
        "lr": 0.2,
        "batch_size": 128,
        "seed": 0,
        "relative_importance": [0.5, 0.5],
    }
    assert digest(encoder._data_key()) == digest(before)
    assert encoder.dataset_name == "FMNIST"
    _, plain = registry.create("encoder", {**table, "dataset": "fashion-mnist"})
    assert plain._data_key()["args"] == {} and plain.dataset.limits["database"] is None


def test_settings_are_checked_when_made(registry):
    from mrlbench.errors import ConfigError

    with pytest.raises(ConfigError, match=r"unknown transform 'big' \(known: imagenet, small\)"):
        Settings(transform="big")
    with pytest.raises(ConfigError, match="unknown precision 'fp8'"):
        Settings(precision="fp8")
    with pytest.raises(ConfigError, match="unknown device 'tpu'"):
        Settings(device="tpu")
    with pytest.raises(ConfigError, match="fp16 autocast is for CUDA"):
        Settings(device="cpu", precision="fp16").autocast_precision()
    assert (
        Settings(workers=None).loader_workers() >= 0 and Settings(workers=3).loader_workers() == 3
    )
    table = {"plugin": "resnet50-mrl", "dataset": "fashion-mnist", "train": {"epoch": 1}}
    with pytest.raises(ConfigError, match=r"resnet50-mrl.*unknown key 'epoch' in train"):
        registry.create("encoder", table)
    with pytest.raises(ConfigError, match="missing required key 'dataset'"):
        registry.create("encoder", {"plugin": "resnet50-mrl"})


def test_a_sampled_query_set_gets_its_own_retrieval_examples(
    cli, tiny_plugin, tmp_path, monkeypatch
):
    """With ``queries = N`` the neighbour files hold the sample's rows: the examples show
    the sampled queries (their images and labels), not rows of the whole query set."""
    from mrlbench import plots
    from mrlbench.sampling import sampled_rows

    drawn = []
    real = plots.draw_examples

    def spy(panels, out, name):
        drawn.extend(panels)
        return real(panels, out, name)

    monkeypatch.setattr(plots, "draw_examples", spy)
    monkeypatch.setenv("MRLBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("MRLBENCH_PLUGINS_DIR", raising=False)
    config = tmp_path / "tiny.toml"
    config.write_text(TINY_RUN.replace('name = "tiny"', 'name = "tiny"\nqueries = 5'))
    r = cli("--plugins-dir", tiny_plugin, "run", config, "--out", tmp_path / "run")
    assert r.code == 0 and "report not written" not in r.err, r.err[-3000:]
    assert (tmp_path / "run" / "examples_tiny.png").is_file()
    shown = {int(p.group.split()[1]) for p in drawn}
    assert shown and shown <= set(sampled_rows(12, 5).tolist())
