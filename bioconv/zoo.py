"""Reference networks: trained once on the shipped MNIST subset (seeded), cached, reloaded safely.

- ``mnist_mlp``: 784-256-128-10 with biases, batch norm after each hidden linear layer, dropout.
- ``mnist_convnet``: seed 003 Table V: conv 12@5x5, max-pool 2, conv 64@5x5, max-pool 2, FC 100,
  FC 10, no biases.
- ``mnist_convnet_avgpool``: the same ConvNet with average instead of max pooling, for CSS coding
  (seed 002), which folds average pooling into the next layer and converts no max pooling.
- ``mnist_mlp_ttfs``: 784-256-128-10 with ReLU1, no batch norm, no hidden biases, trained under the
  LC-TTFS constraints (seed 004; `bioconv.ttfs_train`); ``mnist_convnet_ttfs``: the ConvNet with
  ReLU1, trained the same way.
- ``mnist_autoencoder_ttfs``: seed 004 Table IV's autoencoder, 784-128-64-32-64-128-784, ReLU1, no
  hidden biases, trained the same way to reconstruct its input: its output is the logit, the
  reconstruction its sigmoid (`bioconv.ttfs_train.reconstruct`).

- ``vgg11``, ``cifar10_vgg11(folder)``: a CIFAR-10-shaped VGG-11 (eight 3x3 convolutions, average
  pooling, FC 512-512-10), and that network trained on the CIFAR-10 python batch files a user has
  (up to about 16 hours on 2 cores; never in tests or CI): `bioconv.zoo_cifar`.

The cache lives in $BIOCONV_CACHE (default ~/.cache/bioconv)/zoo; a model is a state dict loaded
with ``torch.load(..., weights_only=True)`` plus a JSON file with its training record.

The networks are torch modules, so building, training and loading them needs torch (imported on
first use: `import bioconv` works without it, and these functions then raise MissingDependencyError).
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np

from . import data
from .errors import BioconvError
from .optional import require_torch

ZOO_VERSION = 2  # bump when an architecture or its training changes: old caches are then ignored


def cache_dir() -> Path:
    root = Path(os.environ.get("BIOCONV_CACHE", Path.home() / ".cache" / "bioconv")) / "zoo"
    root.mkdir(parents=True, exist_ok=True)
    return root


def mlp() -> nn.Module:
    nn = require_torch("bioconv.zoo.mlp").nn
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(784, 256), nn.BatchNorm1d(256), nn.ReLU(), nn.Dropout(0.2),
        nn.Linear(256, 128), nn.BatchNorm1d(128), nn.ReLU(), nn.Dropout(0.2),
        nn.Linear(128, 10),
    )


def convnet() -> nn.Module:
    nn = require_torch("bioconv.zoo.convnet").nn
    return nn.Sequential(
        nn.Conv2d(1, 12, 5, bias=False), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(12, 64, 5, bias=False), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64 * 4 * 4, 100, bias=False), nn.ReLU(),
        nn.Linear(100, 10, bias=False),
    )


def convnet_avgpool() -> nn.Module:
    """Seed 003's Table V ConvNet with 2x2 average pooling in place of max pooling (CSS coding folds
    average pooling into the next layer; it has no max pooling)."""
    nn = require_torch("bioconv.zoo.convnet_avgpool").nn
    return nn.Sequential(
        nn.Conv2d(1, 12, 5, bias=False), nn.ReLU(), nn.AvgPool2d(2),
        nn.Conv2d(12, 64, 5, bias=False), nn.ReLU(), nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(64 * 4 * 4, 100, bias=False), nn.ReLU(),
        nn.Linear(100, 10, bias=False),
    )


def mlp_ttfs() -> nn.Module:
    """The MLP for TTFS conversion (seed 004): ReLU1, no batch norm, no hidden biases (the output
    bias is exact as the output membrane's initial potential)."""
    nn = require_torch("bioconv.zoo.mlp_ttfs").nn
    from .ttfs_train import ReLU1
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(784, 256, bias=False), ReLU1(), nn.Dropout(0.2),
        nn.Linear(256, 128, bias=False), ReLU1(), nn.Dropout(0.2),
        nn.Linear(128, 10),
    )


def convnet_ttfs() -> nn.Module:
    """Seed 003's Table V ConvNet for TTFS conversion: ReLU1 instead of ReLU (no biases already)."""
    nn = require_torch("bioconv.zoo.convnet_ttfs").nn
    from .ttfs_train import ReLU1
    return nn.Sequential(
        nn.Conv2d(1, 12, 5, bias=False), ReLU1(), nn.MaxPool2d(2),
        nn.Conv2d(12, 64, 5, bias=False), ReLU1(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64 * 4 * 4, 100, bias=False), ReLU1(),
        nn.Linear(100, 10, bias=False),
    )


def autoencoder_ttfs() -> nn.Module:
    """Seed 004 Table IV's MNIST autoencoder for TTFS conversion: 784-128-64-32-64-128-784, ReLU1 on
    the hidden layers, no hidden biases (an output bias). It ends with the output layer's logits: the
    sigmoid of the paper's output is applied by `bioconv.ttfs_train.reconstruct`, in training and on
    the SNN's output membranes alike (TTFS reads the output layer from its membrane, a pre-activation)."""
    nn = require_torch("bioconv.zoo.autoencoder_ttfs").nn
    from .ttfs_train import ReLU1
    sizes = (784, 128, 64, 32, 64, 128)
    layers = [nn.Flatten()]
    for n_in, n_out in zip(sizes, sizes[1:]):
        layers += [nn.Linear(n_in, n_out, bias=False), ReLU1()]
    return nn.Sequential(*layers, nn.Linear(128, 784))


_ARCHS = {"mnist_mlp": (mlp, dict(epochs=30, lr=1e-3, weight_decay=1e-4)),
          "mnist_convnet": (convnet, dict(epochs=30, lr=1e-3, weight_decay=1e-4)),
          "mnist_convnet_avgpool": (convnet_avgpool, dict(epochs=30, lr=1e-3, weight_decay=1e-4)),
          # trained under the LC-TTFS constraints (bioconv.ttfs_train.train), same recipe otherwise
          "mnist_mlp_ttfs": (mlp_ttfs, dict(epochs=30, lr=1e-3, weight_decay=1e-4)),
          "mnist_convnet_ttfs": (convnet_ttfs, dict(epochs=30, lr=1e-3, weight_decay=1e-4)),
          # longer and faster than the classifiers: at their 30 epochs and lr 1e-3 (and a per-pixel mean
          # loss) it reconstructed little more than the mean digit (test MSE 0.068); one torch thread:
          # under load two threads took 537 s for those 30 epochs, one thread 7 s for 20
          "mnist_autoencoder_ttfs": (autoencoder_ttfs, dict(epochs=200, lr=3e-3, weight_decay=1e-4,
                                                            task="reconstruction", threads=1))}


def mnist_mlp(retrain: bool = False) -> nn.Module:
    return _get("mnist_mlp", retrain)


def mnist_convnet(retrain: bool = False) -> nn.Module:
    return _get("mnist_convnet", retrain)


def mnist_convnet_avgpool(retrain: bool = False) -> nn.Module:
    """The ConvNet with average pooling (for CSS coding), trained with the same recipe."""
    return _get("mnist_convnet_avgpool", retrain)


def mnist_mlp_ttfs(retrain: bool = False) -> nn.Module:
    """The MNIST MLP trained for TTFS conversion: weight sums 1 (penalty and projection),
    pre-activation normalization, ReLU1 (`bioconv.ttfs_train`)."""
    return _get("mnist_mlp_ttfs", retrain)


def mnist_convnet_ttfs(retrain: bool = False) -> nn.Module:
    """Seed 003's ConvNet with ReLU1, trained for TTFS conversion (`bioconv.ttfs_train`)."""
    return _get("mnist_convnet_ttfs", retrain)


def mnist_autoencoder_ttfs(retrain: bool = False) -> nn.Module:
    """Seed 004 Table IV's autoencoder trained for TTFS conversion (`bioconv.ttfs_train`, task
    "reconstruction"); the reconstruction is `bioconv.ttfs_train.reconstruct` of its output."""
    return _get("mnist_autoencoder_ttfs", retrain)


def graph(name: str):
    """Reference network ``name`` as a `bioconv.graph.LayerGraph` (`graph.from_torch` of the cached
    module at the MNIST subset's input shape), kept beside its weights as an .npz (no pickle): a
    process that only converts the network, a sweep's worker, then needs no torch (importing it
    takes about 2 s). The file's name holds a hash of the weights file and of the importer's source
    (`bioconv/graph.py`), so new weights or a changed importer write a new one, from the module
    (which needs torch); an unreadable file is written again."""
    from . import graph as G
    if name not in _ARCHS:
        raise KeyError(f"bioconv.zoo has no network {name!r}; it has {sorted(_ARCHS)}")
    weights = cache_dir() / f"{name}-v{ZOO_VERSION}.pt"
    if not weights.exists():
        _get(name, False)  # trains and caches it (needs torch)
    h = hashlib.sha256(weights.read_bytes())
    h.update(Path(G.__file__).read_bytes())
    path = cache_dir() / f"{name}-v{ZOO_VERSION}.{h.hexdigest()[:16]}.graph.npz"
    if path.exists():
        try:
            return G.load(path)
        except BioconvError:
            pass  # damaged: written again below
    g = G.from_torch(_get(name, False), data.mnist_subset().x_train.shape[1:])
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp.npz")
    try:
        with open(tmp, "wb") as f:
            g.save(f)
        tmp.replace(path)  # atomic: a concurrent reader never sees half a file
    finally:
        tmp.unlink(missing_ok=True)
    for old in cache_dir().glob(f"{name}-v{ZOO_VERSION}.*.graph.npz"):  # those of earlier weights or importers
        if old != path:
            old.unlink(missing_ok=True)
    return g


def record(name: str) -> dict:
    """Training record (accuracies, seed, epochs, time) of a cached reference network."""
    path = cache_dir() / f"{name}-v{ZOO_VERSION}.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _get(name: str, retrain: bool) -> nn.Module:
    torch = require_torch(f"bioconv.zoo.{name}")
    build, hyper = _ARCHS[name]
    weights = cache_dir() / f"{name}-v{ZOO_VERSION}.pt"
    model = build()
    if weights.exists() and not retrain:
        model.load_state_dict(torch.load(weights, weights_only=True))
        return model.eval()
    trainer = train
    if name.endswith("_ttfs"):
        from .ttfs_train import train as trainer
    rec = trainer(model, data.mnist_subset(), seed=0, **hyper)
    tmp = weights.with_suffix(".tmp")
    torch.save(model.state_dict(), tmp)
    tmp.replace(weights)  # atomic: a concurrent reader never sees half a file
    (cache_dir() / f"{name}-v{ZOO_VERSION}.json").write_text(json.dumps(rec, indent=2))
    return model.eval()


def train(model: nn.Module, split: data.Split, *, seed: int, epochs: int, lr: float, weight_decay: float,
          batch_size: int = 64, threads: int | None = None) -> dict:
    """Seeded Adam training with a cosine learning-rate schedule; returns the training record.

    ``threads``: torch threads during training (restored after; None leaves them). Seeding fixes
    the arithmetic only up to how the CPU kernels split their sums across threads, which can differ
    between two calls in one long-lived process; one thread makes the weights bit-reproducible."""
    torch = require_torch("bioconv.zoo.train")
    if threads is not None:
        before = torch.get_num_threads()
        torch.set_num_threads(int(threads))
        try:
            return train(model, split, seed=seed, epochs=epochs, lr=lr, weight_decay=weight_decay,
                         batch_size=batch_size)
        finally:
            torch.set_num_threads(before)
    nn = torch.nn
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    for m in model.modules():
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()
    x = torch.from_numpy(split.x_train)
    y = torch.from_numpy(split.y_train)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    t0 = time.perf_counter()
    for _ in range(epochs):
        model.train()
        order = torch.from_numpy(rng.permutation(len(x)))
        for k in range(0, len(x), batch_size):
            idx = order[k:k + batch_size]
            xb = _augment(x[idx], rng)
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(xb), y[idx])
            loss.backward()
            opt.step()
        sched.step()
    model.eval()
    return dict(dataset=split.name, seed=seed, epochs=epochs, lr=lr, weight_decay=weight_decay,
                train_accuracy=accuracy(model, split.x_train, split.y_train),
                test_accuracy=accuracy(model, split.x_test, split.y_test),
                train_seconds=round(time.perf_counter() - t0, 1), torch=torch.__version__)


def _augment(xb: torch.Tensor, rng) -> torch.Tensor:
    """Random shifts of up to 2 pixels: the subset is small, and shifts are what MNIST varies by."""
    torch = require_torch("bioconv.zoo")
    dx, dy = rng.integers(-2, 3, size=2)
    return torch.roll(xb, shifts=(int(dy), int(dx)), dims=(2, 3))


def accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    torch = require_torch("bioconv.zoo.accuracy")
    model.eval()
    with torch.no_grad():
        pred = model(torch.from_numpy(x)).argmax(1).numpy()
    return float((pred == y).mean())


# The CIFAR-10-shaped VGG-11: a module of its own (its data are the user's files, its training takes hours).
from .zoo_cifar import VGG11_LAYERS, cifar10_vgg11, vgg11  # noqa: E402,F401
