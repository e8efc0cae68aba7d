"""Metrics for temporal codes (`bioconv.coding.metrics`, issue 11 item 5): hand-built cases whose
answers are worked out by hand here, a small TTFS network whose decision flips at a time computed
from its own hidden spike, and seed 004's Table IV energy proxy (581,184) from a simulated
autoencoder. No torch needed (both lanes)."""
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from brian2 import ms

from bioconv import BioconvError, convert, ttfs
from bioconv import graph as G
from bioconv.coding import metrics
from bioconv.coding.ttfs import energy

T_W = 1e-3


def test_decisions_and_decision_time_by_hand():
    times = np.array([1.0, 2.0, 3.0, 4.0])
    # winners per read time (a 3-class readout); "tie" rows have two equal maxima
    win = {0: [0, 1, 1, 1], 1: ["tie", "tie", 2, 2], 2: [1, 1, 0, 1], 3: [2, 2, 2, "tie"], 4: [0, 0, 0, 0]}
    scores = np.zeros((5, 4, 3))
    for n, row in win.items():
        for k, c in enumerate(row):
            if c == "tie":
                scores[n, k, :2] = 1.0
            else:
                scores[n, k, c] = 1.0
    pred = metrics.decisions(scores)
    assert pred.tolist() == [[0, 1, 1, 1], [-1, -1, 2, 2], [1, 1, 0, 1], [2, 2, 2, -1], [0, 0, 0, 0]]
    # 0: last differs at t=1 -> 2; 1: undecided until 2 -> 3; 2: differs at 3 -> 4; 3: undecided at the
    # end -> NaN; 4: never differs -> the first read time
    got = metrics.decision_time(scores, times)
    assert got[[0, 1, 2, 4]].tolist() == [2.0, 3.0, 4.0, 1.0] and np.isnan(got[3])
    with pytest.raises(BioconvError, match="3 times given"):
        metrics.decision_time(scores, times[:3])


def test_spikes_per_neuron_synops_and_energy_by_hand():
    counts = {"a": np.array([[1, 0], [1, 2]]), "b": np.array([[0, 0, 0], [3, 0, 0]])}
    spn = metrics.spikes_per_neuron(counts)
    # a: 4 spikes / (2 samples x 2 neurons) = 1; b: 3 / 6 = 0.5; all: 7 spikes / (2 samples x 5 neurons)
    assert spn == pytest.approx({"a": 1.0, "b": 0.5, "all": 0.7})
    deg = {"a": np.array([3, 1]), "b": np.array([2, 0, 5])}
    # sample 0: 1*3 + 0 = 3; sample 1: 1*3 + 2*1 + 3*2 = 11
    assert metrics.synops(counts, deg).tolist() == [3.0, 11.0]
    with pytest.raises(BioconvError, match=r"no out-degree for the spiking layer\(s\) \['b'\]"):
        metrics.synops(counts, {"a": deg["a"]})
    with pytest.raises(BioconvError, match="layer 'b'"):
        metrics.synops(counts, {"a": deg["a"], "b": np.ones(2)})
    assert metrics.neuron_updates(1200, 6 * 50) == 360_000
    assert metrics.energy_proxy(np.array([3.0, 11.0]), 10).tolist() == [13.0, 21.0]
    assert metrics.energy_proxy(5, 2, neuron_weight=10) == 25


def test_layer_correlation_by_hand_skips_silent_neurons():
    # a = [1, 2, 3], t = [1, 3, 2]: deviations [-1, 0, 1] and [-1, 1, 0], covariance 1, variances 2: 0.5
    got = metrics.layer_correlation({"h": np.array([[1.0, 2.0, 3.0, np.nan]])},
                                    {"h": np.array([[1.0, 3.0, 2.0, 100.0]])})
    assert got["h"] == pytest.approx(0.5)
    assert np.isnan(metrics.layer_correlation({"h": np.array([1.0, np.nan])}, {"h": np.array([1.0, 2.0])})["h"])
    with pytest.raises(BioconvError, match=r"no ANN targets for layer\(s\) \['g'\]"):
        metrics.layer_correlation({"g": np.ones(2)}, {"h": np.ones(2)})


def test_window_fractions_and_spike_time_plot(tmp_path):
    # layer "1" owns [1, 2] ms: one spike early, two inside (one at the window's end), one late, one silent
    times = {"1": np.array([[0.5e-3, 1.2e-3, 2e-3, 2.5e-3, np.nan]]), "2": np.array([[2.5e-3, 2.9e-3]])}
    frac = metrics.window_fractions(times, {"1": 1, "2": 2}, T_W)
    assert frac["1"] == pytest.approx(dict(before=0.2, inside=0.4, after=0.2, silent=0.2))
    assert frac["2"] == pytest.approx(dict(before=0.0, inside=1.0, after=0.0, silent=0.0))
    hist, bins = metrics.plot_spike_times(times, tmp_path / "t.png", T_w=T_W, windows={"1": 1, "2": 2},
                                          bins_per_window=2)
    # bins of 0.5 ms over [0, 3] ms: "1" has 0.5 -> [0.5, 1), 1.2 -> [1, 1.5), 2.0 -> [2, 2.5), 2.5 -> [2.5, 3]
    assert bins == pytest.approx(np.arange(7) * 0.5e-3)
    assert hist["1"].tolist() == [0, 1, 1, 0, 1, 1] and hist["2"].tolist() == [0, 0, 0, 0, 0, 2]
    assert Path(tmp_path / "t.png").stat().st_size > 1000


def test_accuracy_vs_steps_passes_each_steps_value_in_order():
    calls = []

    def evaluate(x, y, steps, **kw):
        calls.append((steps, kw))
        return SimpleNamespace(dt=T_W / steps, accuracy=steps / 100, ann_accuracy=0.9, agreement=1.0,
                               undecided_fraction=0.0, decision_time=np.array([np.nan, steps * 1e-5]),
                               energy_proxy=10.0 * steps, wall_s=0.1)

    rows = metrics.accuracy_vs_steps(SimpleNamespace(evaluate=evaluate), None, None, [50, 10], device="runtime")
    assert [c[0] for c in calls] == [50, 10] and calls[0][1] == {"device": "runtime"}
    assert [r["accuracy"] for r in rows] == [0.5, 0.1] and rows[1]["dt_s"] == pytest.approx(1e-4)
    assert rows[0]["mean_decision_time_s"] == pytest.approx(5e-4)  # NaN (undecided) left out of the mean
    assert rows[1]["energy_proxy"] == 100.0


def test_decision_time_of_a_simulated_network_follows_its_hidden_spike():
    # o0 = 0.3 (bias), o1 = 0.5 h0. With h0 = 0.7 the output o1 = 0.5 (t - t_h0) / T_w passes 0.3 at
    # t_h0 + 0.6 T_w (about 1.9 T_w) and wins at L = 2 (0.35); with h0 = 0.2 it ends at 0.1: o0 all along.
    g = G.sequential((2,), [("linear", {"weight": np.eye(2)}), "relu1",
                            ("linear", {"weight": [[0.0, 0.0], [0.5, 0.0]], "bias": [0.3, 0.0]})])
    snn = convert(g, coding="ttfs", T_w=1 * ms)
    x = np.array([[0.7, 0.2], [0.2, 0.9]])
    steps = 50
    dt = T_W / steps
    res = snn.evaluate(x, np.array([1, 0]), steps=steps, device="runtime", progress=False)
    assert res.predictions[:, -1].tolist() == [1, 0] and res.accuracy == 1.0
    t_h0 = ttfs.simulate(snn.mapped, x, steps=steps).times["1"][0, 0]
    # the current starts at t_h0 (stamp + dt - origin); V = 0.5 (t - t_h0) / T_w exceeds 0.3 at the
    # first grid time past t_h0 + 0.6 T_w
    expected = np.ceil((t_h0 + 0.6 * T_W) / dt + 1e-9) * dt
    assert res.decision_time[0] == pytest.approx(expected, abs=dt + 1e-12)
    assert 1.85e-3 < res.decision_time[0] < 1.95e-3
    assert res.decision_time[1] == 0.0  # the bias decides from t = 0 and nothing overturns it
    # accuracy read at each step: sample 1 right throughout, sample 0 from its decision time on
    assert res.accuracy_vs_time[res.times < res.decision_time[0] - 1e-12] == pytest.approx(0.5)
    assert res.accuracy_vs_time[res.times >= res.decision_time[0] - 1e-12] == pytest.approx(1.0)
    # spikes: inputs and both hidden units once; SynOps = 2 inputs x 1 synapse (eye) + h0's one synapse
    # (h1's column of the output weights is zero: no synapse); NeuronOPs = 4 neurons x 2 windows x 50
    assert res.spikes_per_neuron == pytest.approx({"1": 1.0, "all": 1.0})
    assert res.synaptic_events == 2 * (2 + 1)
    assert res.energy_proxy == pytest.approx(3 + 4 * 2 * steps)


def test_table_iv_autoencoder_energy_proxy_is_581184():
    # seed 004 Table IV: 784-128-64-32-64-128-784, every neuron spiking once, 50 steps per window:
    # SynOPs = the connections (221,184), NeuronOPs = 1,200 non-input neurons x 6 windows x 50 steps
    sizes = [784, 128, 64, 32, 64, 128, 784]
    rng = np.random.default_rng(0)
    layers = []
    for n_in, n_out in zip(sizes[:-2], sizes[1:-1]):
        layers += [("linear", {"weight": ttfs.project_weight_sums(rng.normal(0, 1 / np.sqrt(n_in), (n_out, n_in)))}),
                   "relu1"]
    layers.append(("linear", {"weight": rng.normal(0, 0.1, (784, 128)), "bias": np.zeros(784)}))
    net = ttfs.map_network(G.sequential((784,), layers))
    out = ttfs.simulate(net, rng.uniform(size=(1, 784)), steps=50)
    assert all(np.all(c == 1) for c in out.spikes.values())  # every input and hidden neuron, once
    ops = energy(net, out.spikes, 50)
    assert ops["synops"].tolist() == [sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))] == [221_184]
    assert ops["neuron_ops"] == 360_000
    assert ops["energy_proxy"].tolist() == [581_184]
