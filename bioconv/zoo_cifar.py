"""A CIFAR-10-shaped VGG-11 for conversion (`bioconv.zoo.vgg11`, `bioconv.zoo.cifar10_vgg11`).

- ``vgg11()``: 3x32x32 input; eight 3x3 convolutions (padding 1) of 64, 128, 256, 256, 512, 512, 512
  and 512 channels, each with batch norm (folded into it when converted) and ReLU; 2x2 average
  pooling after the 1st, 2nd, 4th, 6th and 8th (the map goes 32 -> 16 -> 8 -> 4 -> 2 -> 1); then
  FC 512-512 with ReLU and FC 512-10. Average pooling, not max pooling: it converts exactly (it is
  composed into the next layer, whose kernel then reads a pooled map: `bioconv.conv_geometry`).
- ``cifar10_vgg11(folder)``: that network trained on CIFAR-10 from the python batch files in
  ``folder`` (`bioconv.data.cifar10`; nothing is downloaded), then cached like the MNIST networks.
  Recipe: `CIFAR_TRAINING` (Adam, cosine schedule, random shifts, 30 epochs). On this project's
  2-core CPU machines a training step takes about 0.04 s per image, about 30 minutes per epoch and
  16 hours for the 30 epochs (`bench/vgg11_train_time.py`, measured under other load: an upper
  figure): run it once, where it can run that long; it is never part of the tests or CI.
"""
from __future__ import annotations

import json
from pathlib import Path

from . import data
from .optional import require_torch

#: Channels of the eight convolutions; "A": a 2x2 average pooling.
VGG11_LAYERS = (64, "A", 128, "A", 256, 256, "A", 512, 512, "A", 512, 512, "A")
#: How `cifar10_vgg11` trains (`bioconv.zoo.train`).
CIFAR_TRAINING = dict(epochs=30, lr=1e-3, weight_decay=5e-4, batch_size=128)


def vgg11(n_classes: int = 10):
    """VGG-11 for 3x32x32 inputs (module docstring); untrained."""
    nn = require_torch("bioconv.zoo.vgg11").nn
    layers, c_in = [], 3
    for v in VGG11_LAYERS:
        if v == "A":
            layers.append(nn.AvgPool2d(2))
        else:
            layers += [nn.Conv2d(c_in, v, 3, padding=1), nn.BatchNorm2d(v), nn.ReLU()]
            c_in = v
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, n_classes))


def cifar10_vgg11(folder, retrain: bool = False):
    """`vgg11` trained on CIFAR-10 from the python batch files in ``folder`` (`CIFAR_TRAINING`; up to
    about 16 hours on 2 cores), cached in $BIOCONV_CACHE/zoo and loaded safely afterwards."""
    from .zoo import ZOO_VERSION, cache_dir, train
    torch = require_torch("bioconv.zoo.cifar10_vgg11")
    name = "cifar10_vgg11"
    weights = cache_dir() / f"{name}-v{ZOO_VERSION}.pt"
    model = vgg11()
    if weights.exists() and not retrain:
        model.load_state_dict(torch.load(weights, weights_only=True))
        return model.eval()
    record = train(model, data.cifar10(Path(folder)), seed=0, **CIFAR_TRAINING)
    tmp = weights.with_suffix(".tmp")
    torch.save(model.state_dict(), tmp)
    tmp.replace(weights)  # atomic: a concurrent reader never sees half a file
    (cache_dir() / f"{name}-v{ZOO_VERSION}.json").write_text(json.dumps(record, indent=2))
    return model.eval()
