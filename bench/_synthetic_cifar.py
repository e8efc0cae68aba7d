"""CIFAR-10-shaped synthetic data and a VGG-11 trained on it, for the benchmarks (CIFAR-10 itself is
not shipped and cannot be downloaded here; `bioconv.zoo.cifar10_vgg11` trains on the real files).

Each of the 10 classes is a smooth random 3x32x32 pattern; a sample is its class's pattern at a random
contrast, shifted by up to 3 pixels, plus pixel noise, clipped to [0, 1]. `trained_vgg11` trains
`bioconv.zoo.vgg11` on 2000 such samples for 3 epochs (a few minutes on 2 cores) and caches the
weights in $BIOCONV_CACHE/zoo, so that every benchmark run converts the same network.
"""
from __future__ import annotations

import json
import time

import numpy as np

from bioconv import data, zoo

SEED = 0
N_TRAIN, N_TEST = 2000, 1000
EPOCHS = 3


def synthetic_cifar(n_train: int = N_TRAIN, n_test: int = N_TEST, seed: int = SEED) -> data.Split:
    rng = np.random.default_rng(seed)
    coarse = rng.random((10, 3, 4, 4))
    prototypes = np.kron(coarse, np.ones((1, 1, 8, 8)))  # 8x8 blocks, then smoothed by a box filter
    k = np.ones(5) / 5
    for axis in (2, 3):
        prototypes = np.apply_along_axis(lambda v: np.convolve(np.pad(v, 2, mode="edge"), k, "valid"), axis, prototypes)

    def draw(n):
        y = rng.integers(0, 10, n)
        x = prototypes[y] * rng.uniform(0.6, 1.0, (n, 1, 1, 1))
        shifts = rng.integers(-3, 4, (n, 2))
        x = np.stack([np.roll(img, tuple(s), axis=(1, 2)) for img, s in zip(x, shifts)])
        x = np.clip(x + rng.normal(0, 0.08, x.shape), 0, 1)
        return x.astype(np.float32), y.astype(np.int64)

    x_train, y_train = draw(n_train)
    x_test, y_test = draw(n_test)
    return data.Split(x_train, y_train, x_test, y_test, "synthetic_cifar")


def trained_vgg11(split: data.Split | None = None):
    """`zoo.vgg11` trained on `synthetic_cifar` (cached)."""
    import torch
    split = split or synthetic_cifar()
    weights = zoo.cache_dir() / f"vgg11_synthetic-v{zoo.ZOO_VERSION}.pt"
    model = zoo.vgg11()
    if weights.exists():
        model.load_state_dict(torch.load(weights, weights_only=True))
        return model.eval()
    t0 = time.perf_counter()
    record = zoo.train(model, split, seed=SEED, epochs=EPOCHS, lr=1e-3, weight_decay=5e-4, batch_size=64)
    record["train_seconds_total"] = round(time.perf_counter() - t0, 1)
    torch.save(model.state_dict(), weights)
    weights.with_suffix(".json").write_text(json.dumps(record, indent=2))
    return model.eval()
