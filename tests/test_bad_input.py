"""Bad input a new user meets, named by culprit: calibration data that do not fit the network, a
duration shorter than one time step or not a whole number of steps."""
import numpy as np
import pytest
from brian2 import ms

import networks
from bioconv.converter import convert
from bioconv.errors import BioconvError, ParameterError


def test_calibration_data_of_the_wrong_shape_are_named():
    torch = pytest.importorskip("torch", reason="torch is not installed: this test converts a torch module")
    model = torch.nn.Sequential(torch.nn.Linear(6, 4), torch.nn.ReLU(), torch.nn.Linear(4, 3))
    with pytest.raises(BioconvError, match=r"calibration data's shape per sample \(5,\) does not fit Sequential: "
                                           r"node '0' \(linear\)"):
        convert(model, np.random.default_rng(0).random((10, 5)))


@pytest.fixture(scope="module")
def snn():
    return convert(networks.graph("single_linear"), np.random.default_rng(0).random((8, 6)))


@pytest.mark.parametrize("duration, dt, message", [
    (1 * ms, 2 * ms, r"duration \(1. ms\) is shorter than one time step dt \(2. ms\)"),
    (1.05 * ms, 0.1 * ms, r"duration \(1.05 ms\) is not a whole number of time steps dt \(100. us\)"),
])
def test_duration_must_be_whole_time_steps(snn, duration, dt, message):
    x = np.random.default_rng(1).random((2, 6))
    with pytest.raises(ParameterError, match=message):
        snn.evaluate(x, np.array([0, 1]), duration=duration, dt=dt, device="runtime")
