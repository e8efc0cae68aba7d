"""Seeds as a sweep axis: Poisson input with one seed per point. A point's values do not depend on the
points beside it in a call or a task (its runs hold only its own copies, seeded from its seed);
two seeds differ, the same seed repeats; the network level takes a ``seed`` axis for Poisson input
only (end to end on a saved network and a user's data file, tests/test_sweep_files.py's subject)."""
from __future__ import annotations

import numpy as np
import pytest
from pathlib import Path

from brian2 import ms, pF

import bioconv
from bioconv import sweep
from bioconv.errors import ParameterError
from bioconv.simulate.sweepable import evaluate_points, run_seed
from bioconv.sweep import SweepSpecError

import sweep_fake
import networks  # noqa: E402  (tests/networks.py)

FILE = networks.saved_small_convnet()  # leak bias, linear reset, delta; saved by this version
SETTINGS = dict(network="mlp", n_test=6, n_calibration=40, normalization="p99.9", bias="current", reset="linear",
                synapse="delta")


def _key(row):
    return (row["synaptic_events"], row["accuracy"], row["agreement"], tuple(row["accuracy_vs_time"]),
            tuple(sorted(row["layer_correlation"].items())))


@pytest.mark.slow
def test_poisson_points_repeat_per_seed_whatever_shares_their_call_and_differ_between_seeds(tmp_path):
    """Also the network level end to end on a saved network and a user's unlabelled data (one compile
    serves both checks: the suite's time is counted)."""
    snn = bioconv.load(FILE)
    x = np.random.default_rng(1).uniform(0, 1, (6, 1, 8, 8))
    np.save(tmp_path / "x.npy", x)
    ann = snn.graph.forward(x)[snn.graph.output].reshape(len(x), -1).argmax(1)  # no labels: the ANN's decisions
    kw = dict(duration=50 * ms, dt=0.1 * ms, encoder="poisson", device="cpp", sweepable=("Cm",), threads=1)
    a, b = {"Cm": 100 * pF}, {"Cm": 80 * pF}
    mixed = evaluate_points(snn, x, ann, [a, a, b], seeds=[1, 2, 1], **kw)
    other = evaluate_points(snn, x, ann, [b, a], seeds=[1, 1], **kw)  # other neighbours, other order
    assert _key(mixed[0]) == _key(other[1]) and _key(mixed[2]) == _key(other[0])
    assert mixed[0]["synaptic_events"] != mixed[1]["synaptic_events"]  # seeds 1 and 2: other input spikes
    assert mixed[0]["seed"] == 1 and mixed[1]["seed"] == 2

    # through the network level into a store: the saved network on the data file, a seed axis
    spec = sweep.Spec(level="network", grid={"seed": [1, 2], "Cm": [100] * pF},
                      fixed={"network": str(FILE), "data": str(tmp_path / "x.npy"), "n_test": 6, "T": 50 * ms,
                             "encoder": "poisson"})
    store = tmp_path / "store"
    for t in spec.tasks():
        sweep.runner.run_task(t.level, t.structure, t.configs, t.hashes, t.size, t.task_id, str(store), t.names)
    df = sweep.load(store).set_index("seed")
    assert (df.status == "ok").all() and sorted(df.index) == [1, 2], df.error.tolist()
    for seed, ref in ((1, mixed[0]), (2, mixed[1])):  # the same points, computed in another call
        assert df.loc[seed, "synaptic_events"] == ref["synaptic_events"]
        assert np.allclose(df.loc[seed, "accuracy_vs_time"], ref["accuracy_vs_time"])
        assert df.loc[seed, "accuracy"] == ref["accuracy"] == ref["agreement"]  # labels: the ANN's decisions


def test_seeds_are_checked_and_a_seed_axis_needs_poisson_input():
    snn, x, y = sweep_fake.small_network(**SETTINGS)
    kw = dict(duration=50 * ms, dt=0.1 * ms)
    with pytest.raises(ParameterError, match="seeds apply to Poisson input"):
        evaluate_points(snn, x, y, [{}], seeds=[0], **kw)
    with pytest.raises(ParameterError, match="seeds has 1 entries for 2 points"):
        evaluate_points(snn, x, y, [{}, {}], seeds=[0], encoder="poisson", **kw)
    with pytest.raises(ParameterError, match="seed of point 0 must be an integer >= 0"):
        evaluate_points(snn, x, y, [{}], seeds=[-1], encoder="poisson", **kw)
    with pytest.raises(SweepSpecError, match="seed applies to encoder = 'poisson'"):
        sweep.Spec(level="network", grid={"seed": [0, 1]})
    poisson = sweep.Spec(level="network", grid={"Cm": [80, 100] * pF}, fixed={"encoder": "poisson"})
    assert [c["seed"] for c in poisson.configs] == [0, 0]  # every Poisson point has its seed
    assert "seed" not in sweep.Spec(level="network", grid={"Cm": [80] * pF}).configs[0]
    assert len({run_seed(s, r) for s in range(4) for r in range(4)}) == 16
