"""A sweep level for tests of the sweep machinery (spec, store, Dask runner, resuming): cheap,
deterministic, and able to fail on purpose. Not a simulation; the neuron level's own tests run
simulations.

Per point: ``y = x / volt * gain`` (SI), ``mode`` is structural. A point with ``x`` of exactly
13 mV raises (an error row). Environment: ``SWEEP_FAKE_DELAY`` seconds of sleep per point (so that
a test can kill a sweep mid-way), ``SWEEP_FAKE_LOG`` a file to which each task appends its pid.
"""
from __future__ import annotations

import os
import time

from brian2 import volt

from bioconv.sweep import Level, Param

BAD_X = 0.013


class FakeLevel(Level):
    name = "fake"

    def structural(self):
        return {"mode": Param("mode", "choice", choices=("a", "b"), structural=True, default="a")}

    def parameters(self, structure):
        return {"x": Param("x", "quantity", dim=volt.dim, default="0 mV"),
                "gain": Param("gain", "int", constraint="positive", default=1)}

    def check(self, structure, columns):
        return columns["x"] < -1  # "x below -1 V": an invalid combination

    def reason(self, structure, columns):
        return "x must not lie below -1 V"

    def evaluate(self, structure, points, *, size=None):
        log = os.environ.get("SWEEP_FAKE_LOG")
        if log:
            with open(log, "a") as f:
                f.write(f"{os.getpid()}\n")
        out = []
        for p in points:
            time.sleep(float(os.environ.get("SWEEP_FAKE_DELAY", "0")))
            if p["x"] == BAD_X:
                raise ValueError(f"x = {p['x']} V is the bad value")
            out.append({"y": p["x"] * p["gain"] + (10.0 if structure["mode"] == "b" else 0.0), "pid": os.getpid()})
        return out


LEVEL = FakeLevel()


# ---------------------------------------------------------------------------- the network level, small
def small_network(*, network, n_test, n_calibration, normalization, bias, reset, synapse):
    """A stand-in for the zoo: tests/data's small ConvNet (no torch), random images, the ANN's own
    decisions as labels."""
    import numpy as np

    import networks
    from bioconv import convert
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (n_calibration + n_test, 1, 8, 8))
    snn = convert(networks.graph("small_convnet"), x[:n_calibration], normalization=normalization, bias=bias,
                  reset=reset, synapse=synapse)
    x_test = x[n_calibration:]
    y = snn.graph.forward(x_test)[snn.graph.output].reshape(n_test, -1).argmax(1)
    return snn, x_test, y


def _network_level():
    from bioconv.sweep.network import NetworkLevel
    return NetworkLevel(load_network=small_network)


NETWORK = _network_level()
