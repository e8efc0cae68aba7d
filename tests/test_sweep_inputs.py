"""The neuron level's regular input trains (seed 003 Fig. 6 as a sweep): the points of one compiled run
give the spikes of a direct Brian2 simulation of the same trains from a SpikeGeneratorGroup (the
rate_validation study's construction); the input parameters exist per shape and are checked at the door."""
from __future__ import annotations

import numpy as np
import pytest
from brian2 import Hz, Network, SpikeGeneratorGroup, SpikeMonitor, mV, ms, nF, nS, pcoulomb, second

from bioconv import models, sweep
from bioconv.encoding import regular_spike_trains
from bioconv.simulate import simulation_device
from bioconv.sweep import SweepSpecError
from bioconv.sweep.neuron import NeuronLevel

# (f1, f2, gl): on-grid times (10, 20, 25 Hz fall on multiples of dt), off-grid ones, equal and unequal
# frequencies, near the firing onset and well above it
POINTS = [(10.0, 10.0, 3.0), (20.0, 25.0, 3.0), (7.3, 13.1, 3.0), (3.1, 3.1, 0.5), (40.0, 6.0, 1.0),
          (2.2, 2.2, 2.0), (55.5, 55.5, 6.0), (1.0, 33.3, 3.0)]
T = 0.5  # s


def _direct(reset: str) -> tuple[np.ndarray, np.ndarray]:
    """Counts and first-spike times of the points, simulated directly (runtime device): each neuron's
    two trains from a SpikeGeneratorGroup, as rate_validation's seed003 experiment builds them."""
    f1, f2, gl = map(np.array, zip(*POINTS))
    n = len(POINTS)
    with simulation_device("runtime", dt=0.1 * ms):
        idx, times = regular_spike_trains(np.concatenate([f1, f2]) * Hz, T * second)
        src = SpikeGeneratorGroup(2 * n, idx, times * second)
        g = models.neuron_group(n, "conductance_lif", "delta", reset=reset, Cm=1 * nF, gl=gl * nS, EL=0 * mV,
                                v_reset=0 * mV, v_th=1 * mV, tau_ref=0 * ms)
        s = models.synapses(src, g, "delta", i=np.r_[np.arange(n), np.arange(n, 2 * n)],
                            j=np.r_[np.arange(n), np.arange(n)], w=np.repeat([0.3, 0.2], n) * pcoulomb)
        mon = SpikeMonitor(g)
        Network(src, g, s, mon).run(T * second, namespace={})
        counts = np.bincount(np.asarray(mon.i), minlength=n)
        first = np.array([float(np.min(np.asarray(mon.t)[np.asarray(mon.i) == k])) if counts[k] else np.nan
                          for k in range(n)])
    return counts, first


@pytest.mark.slow
def test_regular_inputs_give_the_spikes_of_a_spike_generator_simulation():
    spec = sweep.Spec(level="neuron", points=[{"f_in_1": a * Hz, "f_in_2": b * Hz, "gl": g * nS} for a, b, g in POINTS],
                      fixed={"inputs": 2, "reset": "linear", "Cm": 1 * nF, "EL": 0 * mV, "v_reset": 0 * mV,
                             "v_th": 1 * mV, "tau_ref": 0 * ms, "I_bias": "0 pA", "w_in_1": 0.3 * pcoulomb,
                             "w_in_2": 0.2 * pcoulomb, "dt": 0.1 * ms, "T": T * second})
    [task] = spec.tasks()
    rows = NeuronLevel().evaluate(task.structure, task.configs, size=task.size)
    counts, first = _direct("linear")
    assert counts.min() == 0 and counts.max() >= 10  # the points span silence to busy, not one regime
    assert [r["n_spikes"] for r in rows] == counts.tolist()
    assert np.allclose([r["t_first_s"] for r in rows], first, rtol=0, atol=1e-9, equal_nan=True)
    drive = np.array([0.3e-12 * a + 0.2e-12 * b for a, b, _ in POINTS])
    assert np.allclose([r["drive_A"] for r in rows], drive)


def test_input_parameters_exist_per_shape_and_are_checked_at_the_door():
    plain = sweep.Spec(level="neuron", grid={"I_bias": ["100 pA", "200 pA"]})
    assert "inputs" not in plain.configs[0] and "f_in_1" not in plain.configs[0]  # no inputs: configs as before
    two = sweep.Spec(level="neuron", grid={"f_in_2": [5, 10] * Hz}, fixed={"inputs": 2, "w_in_2": "0.2 pcoulomb"})
    assert two.configs[0]["inputs"] == 2 and two.configs[0]["f_in_1"] == 0.0 and two.configs[1]["f_in_2"] == 10.0
    with pytest.raises(SweepSpecError, match=r"unknown parameter\(s\) \['f_in_3'\]"):
        sweep.Spec(level="neuron", grid={"f_in_3": [5] * Hz}, fixed={"inputs": 2})
    with pytest.raises(SweepSpecError, match=r"'f_in_1' needs units of hertz"):
        sweep.Spec(level="neuron", grid={"f_in_1": ["5 pcoulomb"]}, fixed={"inputs": 1})
    with pytest.raises(SweepSpecError, match=r"f_in_1 x dt must stay below 1"):
        sweep.Spec(level="neuron", grid={"f_in_1": [100, 20000] * Hz}, fixed={"inputs": 1, "dt": 0.1 * ms})
    with pytest.raises(SweepSpecError, match=r"'inputs' must be nonnegative"):
        sweep.Spec(level="neuron", grid={"I_bias": ["1 pA"]}, fixed={"inputs": -1})


def test_seed003_study_designs_are_rate_validations_grids_and_tables_read_the_onset():
    """The fig7/fig8 studies' sweeps hold rate_validation's frequency grids (so the same numbers come out),
    and the minimum drive is the smallest drive that fired within the window, per reset."""
    import pandas as pd

    from bioconv.study import seed003_sweeps as s3
    cfg = dict(window_s=4.0, dt_ms=0.1, duration_s=20.0, mindrive_gl_nS=[1.0, 3.0], mindrive_span=0.3, mindrive_n=5,
               slope_Cm_nF=[1.0], mindrive_ratios=[0.5])
    spec = s3.mindrive_spec("t", cfg)
    assert len(spec) == 2 * 5 * 2 and {c["reset"] for c in spec.configs} == {"linear", "value"}
    drive = s3._eq37_drive_pA(3.0, 4.0)
    f = sorted({c["f_in_1"] for c in spec.configs if abs(c["gl"] - 3e-9) < 1e-15})
    assert np.allclose(f, np.linspace(0.7, 1.3, 5) * drive / 0.5, rtol=1e-11)  # rate_validation's grid
    assert all(c["f_in_1"] == c["f_in_2"] for c in spec.configs)
    assert all(abs(c["f_in_2"] / c["f_in_1"] - 0.5) < 1e-9 for c in s3.mindrive_spec("t", cfg, (0.5,)).configs)
    # a window of 4 s: the point that fired at 4.0 s counts, the one at 4.1 s does not
    pts = pd.DataFrame({"reset": ["linear"] * 3 + ["value"] * 3, "gl_nS": 3.0, "f1_Hz": [1.0, 2.0, 3.0] * 2,
                        "f2_Hz": [1.0, 2.0, 3.0] * 2, "drive_pA": [0.5, 1.0, 1.5] * 2,
                        "t_first_s": [np.nan, 4.0, 1.0, np.nan, 4.1, 2.0]})
    row = s3.mindrive_table(pts, cfg).iloc[0]
    assert row.sim_min_drive_linear_pA == 1.0 and row.sim_min_drive_value_pA == 1.5
    assert row.bracketed_linear and row.bracketed_value
