"""Samples one after another in one run of the compiled binary (presentations K > 1) give what one
presentation per run gives, for every encoder and readout; and the readout at time t of a run is
what a separate run of duration t reads (`SNN.accuracy_vs_time`).

The network is a numpy LayerGraph (tests/networks.py): no torch needed."""
from __future__ import annotations

import numpy as np
import pytest
from brian2 import Hz, ms, second

import networks
from bioconv.converter import SNN, convert
from bioconv.simulate.runner import BatchOutput, CompiledNetwork

T = 40 * ms
DT = 0.1 * ms
TIME_POINTS = 4


def _network(readout="count", rate_max=200 * Hz) -> SNN:
    """conv (padding) -> ReLU -> max-pool gate -> avg-pool -> linear with bias: every population
    kind, and first-layer biases for the current encoder to add its input to."""
    calibration = np.random.default_rng(3).random((40, 1, 8, 8))
    return convert(networks.graph("small_convnet"), calibration, bias="current", readout=readout, rate_max=rate_max)


def _inputs(snn, n, seed=4) -> np.ndarray:
    """Input rates (Hz) of ``n`` samples."""
    return np.random.default_rng(seed).random((n, snn.mapped.populations[0].size)) * float(snn.mapped.rate_max)


def _run(snn, x, *, encoder="regular", device="cpp", batch, presentations=1, duration=T, dt=DT,
         every=None) -> BatchOutput:
    """Every sample of ``x`` through one CompiledNetwork, the batches' outputs joined in sample order."""
    with CompiledNetwork(snn.mapped, batch, duration=duration, dt=dt, encoder=encoder, device=device, threads=1,
                         presentations=presentations, record_output_every=every) as net:
        starts = range(0, len(x), net.capacity)
        outs = list(net.run_many(x[k:k + net.capacity] for k in starts))
    counts = {name: np.concatenate([o.counts[name] for o in outs]) for name in outs[0].counts}
    sample = np.concatenate([o.out_sample + k for o, k in zip(outs, starts)])
    unit, t = np.concatenate([o.out_unit for o in outs]), np.concatenate([o.out_t for o in outs])
    order = np.lexsort((t, unit, sample))  # spikes of samples run side by side interleave in time
    v = [np.concatenate([getattr(o, f) for o in outs]) if outs[0].out_v is not None else None
         for f in ("out_v", "final_v")]
    return BatchOutput(counts, sample[order], unit[order], t[order], *v)


@pytest.mark.slow
@pytest.mark.parametrize("encoder,readout", [("current", "count"), ("regular", "potential"),
                                             ("current", "potential")])
def test_presentations_give_what_one_presentation_per_run_gives(encoder, readout):
    snn = _network(readout)
    x = _inputs(snn, 5)
    every = T / TIME_POINTS
    ref = _run(snn, x, encoder=encoder, batch=len(x), every=every)  # one presentation per run
    got = _run(snn, x, encoder=encoder, batch=2, presentations=3, every=every)  # 2 copies x 3, padded
    assert ref.counts.keys() == got.counts.keys()
    for name in ref.counts:
        np.testing.assert_array_equal(got.counts[name], ref.counts[name], err_msg=f"population {name}")
        silent_output = readout == "potential" and name == snn.mapped.populations[-1].name  # never fires
        assert silent_output or np.all(ref.counts[name].sum(1) > 0), f"population {name} is silent in a sample"
    for field in ("out_sample", "out_unit", "out_t"):
        np.testing.assert_array_equal(getattr(got, field), getattr(ref, field), err_msg=field)
    first = snn.mapped.populations[1].name
    # Each sample has its own input: the presentations did not all see the first one's.
    assert len(np.unique(ref.counts[first], axis=0)) == len(x)
    if readout == "potential":
        assert got.out_v.shape == ref.out_v.shape == (len(x), snn.mapped.populations[-1].size, TIME_POINTS)
        np.testing.assert_array_equal(got.out_v, ref.out_v)
        np.testing.assert_array_equal(got.final_v, ref.final_v)
        assert len(np.unique(ref.final_v, axis=0)) > 1
    else:
        assert len(ref.out_t) > 0


def test_potential_readout_needs_samples_that_divide_the_presentation():
    snn = _network("potential")
    with pytest.raises(ValueError, match="record_output_every"):
        CompiledNetwork(snn.mapped, 1, duration=T, dt=DT, presentations=2, record_output_every=T / 3.5)


@pytest.mark.slow
def test_evaluate_runs_current_input_and_potential_readout_in_sequence():
    snn = _network("potential")
    x = np.random.default_rng(5).random((6, 1, 8, 8))
    y = np.zeros(len(x), dtype=int)
    kw = dict(duration=T, dt=DT, encoder="current", progress=False, batch=2, threads=1, time_points=TIME_POINTS)
    seq = snn.evaluate(x, y, **kw)
    one = snn.evaluate(x, y, presentations=1, **kw)
    assert seq.settings["presentations"] > 1 and one.settings["presentations"] == 1
    np.testing.assert_array_equal(seq.predictions, one.predictions)
    np.testing.assert_equal(seq.layer_correlation, one.layer_correlation)


# --- the readout at time t ------------------------------------------------------------------------

STEP = 1 * ms  # coarse steps: many spikes fall on the time points
T_SHORT = 8 * ms


@pytest.mark.slow
@pytest.mark.parametrize("presentations", [1, 3])
def test_scores_at_time_t_are_those_of_a_run_of_duration_t(presentations):
    """Every step is a time point: any output spike before the last step falls on one, where
    counting spikes stamped at t itself would read one step ahead."""
    snn = {r: _network(r, rate_max=500 * Hz) for r in ("count", "first_spike")}
    x = _inputs(snn["count"], 5)
    n = int(round(float(T_SHORT / STEP)))
    times = np.linspace(float(T_SHORT) / n, float(T_SHORT), n)
    if presentations == 1:
        full = _run(snn["count"], x, device="runtime", batch=len(x), duration=T_SHORT, dt=STEP)
    else:
        full = _run(snn["count"], x, batch=2, presentations=presentations, duration=T_SHORT, dt=STEP)
    steps = np.rint(full.out_t / float(STEP))
    assert np.any((steps >= 1) & (steps < n)), "no output spike on a time point before the end: the test is blind"
    for k, tk in enumerate(times[:-1]):
        alone = _run(snn["count"], x, device="runtime", batch=len(x), duration=tk * second, dt=STEP)
        for readout, net in snn.items():
            np.testing.assert_array_equal(net._scores(full, times, float(STEP))[:, k],
                                          net._scores(alone, [tk], float(STEP))[:, 0],
                                          err_msg=f"{readout} readout at {tk * 1e3:g} ms")


@pytest.mark.slow
@pytest.mark.parametrize("readout", ["count", "first_spike"])
def test_accuracy_vs_time_matches_runs_of_each_duration(readout):
    snn = _network(readout, rate_max=500 * Hz)
    x = np.random.default_rng(6).random((6, 1, 8, 8))
    y = snn.graph.forward(x)[snn.graph.output].reshape(len(x), -1).argmax(1)
    kw = dict(dt=STEP, progress=False, threads=1)
    n = int(round(float(T_SHORT / STEP)))  # every step: a decision made by a spike on a time point shows
    curves = {K: snn.evaluate(x, y, duration=T_SHORT, time_points=n, device="runtime" if K == 1 else "cpp",
                              batch=len(x) if K == 1 else 2, presentations=K, **kw) for K in (1, 3)}
    for k, tk in enumerate(curves[1].times):
        alone = snn.evaluate(x, y, duration=tk * second, time_points=1, device="runtime", batch=len(x), **kw)
        for K, res in curves.items():
            np.testing.assert_array_equal(res.predictions[:, k], alone.predictions[:, 0],
                                          err_msg=f"K={K}, {readout} readout at {tk * 1e3:g} ms")
            assert res.accuracy_vs_time[k] == alone.accuracy
