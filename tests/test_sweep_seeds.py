"""Seeds as a sweep axis: Poisson input with one seed per point. A point's values do not depend on the
points beside it in a call or a task (its runs hold only its own copies, seeded from its seed);
two seeds differ, the same seed repeats; the network level takes a ``seed`` axis for Poisson input
only."""
from __future__ import annotations

import numpy as np
import pytest
from brian2 import ms, pF

from bioconv import sweep
from bioconv.errors import ParameterError
from bioconv.simulate.sweepable import evaluate_points, run_seed
from bioconv.sweep import SweepSpecError

import sweep_fake

SETTINGS = dict(network="mlp", n_test=6, n_calibration=40, normalization="p99.9", bias="current", reset="linear",
                synapse="delta")


def _key(row):
    return (row["synaptic_events"], row["accuracy"], row["agreement"], tuple(row["accuracy_vs_time"]),
            tuple(sorted(row["layer_correlation"].items())))


@pytest.mark.slow
def test_poisson_points_repeat_per_seed_whatever_shares_their_call_and_differ_between_seeds(tmp_path):
    snn, x, y = sweep_fake.small_network(**SETTINGS)
    kw = dict(duration=50 * ms, dt=0.1 * ms, encoder="poisson", device="cpp", sweepable=("Cm",), threads=1)
    a, b = {"Cm": 100 * pF}, {"Cm": 80 * pF}
    mixed = evaluate_points(snn, x, y, [a, a, b], seeds=[1, 2, 1], **kw)
    other = evaluate_points(snn, x, y, [b, a], seeds=[1, 1], **kw)  # other neighbours, other order
    assert _key(mixed[0]) == _key(other[1]) and _key(mixed[2]) == _key(other[0])
    assert mixed[0]["synaptic_events"] != mixed[1]["synaptic_events"]  # seeds 1 and 2: other input spikes
    assert mixed[0]["seed"] == 1 and mixed[1]["seed"] == 2

    # through the network level into a store: a seed axis, one row per (Cm, seed)
    spec = sweep.Spec(level="sweep_fake:NETWORK", grid={"seed": [1, 2], "Cm": [100] * pF},
                      fixed={"n_test": 6, "n_calibration": 40, "T": 50 * ms, "encoder": "poisson"})
    for t in spec.tasks():
        sweep.runner.run_task(t.level, t.structure, t.configs, t.hashes, t.size, t.task_id, str(tmp_path), t.names)
    df = sweep.load(tmp_path).set_index("seed")
    assert (df.status == "ok").all() and sorted(df.index) == [1, 2]
    assert df.loc[1, "synaptic_events"] == mixed[0]["synaptic_events"]  # the same point, in another call
    assert df.loc[2, "synaptic_events"] == mixed[1]["synaptic_events"]
    assert np.allclose(df.loc[1, "accuracy_vs_time"], mixed[0]["accuracy_vs_time"])


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
