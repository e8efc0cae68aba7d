"""LC-TTFS (seed 004): the worked examples of the paper, the decode rule, the constraint checks and
whole small networks against their ANN (numpy graphs: no torch needed)."""
import warnings

import numpy as np
import pytest
from brian2 import mV, ms, pF

from bioconv import BioconvError, ParameterError, UnsupportedLayerError, ttfs
from bioconv import graph as G

T_W = 1 * ms
STEPS = 50
DT = 1e-3 / STEPS  # seconds


def _one_neuron(w, strict=True):
    """Inputs -> one ReLU1 unit with weights ``w`` -> an output that reads it with weight 1."""
    g = G.sequential((len(w),), [("linear", {"weight": [w]}), "relu1", ("linear", {"weight": [[1.0]]})])
    return ttfs.map_network(g, T_w=T_W, strict=strict)


def test_mapping_example_fires_at_1_3_and_decodes_0_7():
    # seed 004 sec. III-B: w = [0.6, 0.4], a = [0.5, 1.0]: V(1) = 0.7, slope 1: spike at 1.3, a = 0.7
    out = ttfs.simulate(_one_neuron([0.6, 0.4]), np.array([[0.5, 1.0]]), steps=STEPS)
    assert out.times["1"][0, 0] == pytest.approx(1.3e-3, abs=DT)
    assert out.activations["1"][0, 0] == pytest.approx(0.7, abs=1 / STEPS)
    assert out.spikes["1"][0, 0] == 1
    assert out.potential[0, 0] == pytest.approx(0.7, abs=1 / STEPS)  # the output reads it at t = L


def test_premature_spike_fixed_threshold_fires_early_dynamic_threshold_forces_window_end():
    # seed 004 Fig. 2: w = 5 and -10, a = 0.8 and 0.4 (inputs at 0.2 and 0.6): the ANN gives 0.
    with pytest.warns(ttfs.WeightSumWarning, match="'0 -> 1'"):
        net = _one_neuron([5.0, -10.0], strict=False)
    x = np.array([[0.8, 0.4]])
    fixed = ttfs.simulate(net, x, steps=STEPS, dynamic_threshold=False)
    assert fixed.times["input"][0] == pytest.approx([0.2e-3, 0.6e-3], abs=1e-12)
    assert fixed.times["1"][0, 0] == pytest.approx(0.4e-3, abs=DT)  # premature: before B's inhibition
    dynamic = ttfs.simulate(net, x, steps=STEPS)
    assert dynamic.times["1"][0, 0] == pytest.approx(2e-3, abs=DT)  # forced at the window's end
    assert dynamic.activations["1"][0, 0] == pytest.approx(0.0, abs=1e-12)
    assert dynamic.spikes["1"][0, 0] == 1


def test_hard_projection_example():
    w = ttfs.project_weight_sums(np.array([[0.5, 0.3, 0.4]]))
    assert w[0] == pytest.approx([0.4333, 0.2333, 0.3333], abs=5e-5)
    assert w.sum() == pytest.approx(1.0, abs=1e-15)


def test_hard_projection_per_conv_output_channel():
    rng = np.random.default_rng(0)
    w = ttfs.project_weight_sums(rng.normal(size=(4, 3, 2, 2)))
    assert w.reshape(4, -1).sum(axis=1) == pytest.approx(np.ones(4), abs=1e-12)


def test_latency_code_and_its_inverse():
    a = np.array([0.0, 0.25, 1.0])
    t = ttfs.spike_times(a, 2, 1e-3)
    assert t == pytest.approx([3e-3, 2.75e-3, 2e-3])
    assert ttfs.activations(t, 2, 1e-3) == pytest.approx(a)


@pytest.mark.parametrize("bad", [1.5, -0.1, np.nan])
def test_inputs_outside_the_unit_interval_are_refused_naming_the_culprit(bad):
    net = _one_neuron([0.6, 0.4])
    x = np.array([[0.5, 0.5], [0.2, bad]])
    with pytest.raises(BioconvError, match=r"sample 1, input 1 is .*\[0, 1\]"):
        ttfs.simulate(net, x)


def test_weight_sum_violation_names_the_layer_and_its_worst_sum():
    g = G.sequential((3,), [("linear", {"weight": [[0.5, 0.5, 0.0], [0.5, 0.3, 0.4]]}), "relu1",
                            ("linear", {"weight": [[1.0, 2.0]]})])
    with pytest.raises(ttfs.WeightSumError, match=r"layer '0 -> 1': weight sum of unit 1 is 1\.2"):
        ttfs.map_network(g)
    with pytest.warns(ttfs.WeightSumWarning, match="strict=False"):
        net = ttfs.map_network(g, strict=False)
    assert net.layer("1").weight_sum_deviation == pytest.approx(0.2)


def test_output_layer_is_exempt_from_the_weight_sum():
    net = _one_neuron([0.6, 0.4])  # output weights [[1.0]] sum to 1 by accident: use 3
    g = G.sequential((2,), [("linear", {"weight": [[0.6, 0.4]]}), "relu1", ("linear", {"weight": [[3.0], [-2.0]]})])
    assert ttfs.map_network(g).n_windows == 2 == net.n_windows


@pytest.mark.parametrize("layers, match", [
    ([("linear", {"weight": [[0.6, 0.4]], "bias": [0.1]}), "relu1", ("linear", {"weight": [[1.0]]})],
     "node '0': hidden biases"),
    ([("linear", {"weight": [[0.6, 0.4]]}), "relu", ("linear", {"weight": [[1.0]]})], r"node '1' \(relu\).*ReLU1"),
    ([("linear", {"weight": [[0.6, 0.4]]}), "relu1"], "output node '1' must be an affine layer"),
])
def test_layers_ttfs_cannot_convert_are_refused_by_name(layers, match):
    with pytest.raises(UnsupportedLayerError, match=match):
        ttfs.map_network(G.sequential((2,), layers))


def test_residual_addition_is_refused():
    nodes = [G.Node("x", "input", []), G.Node("a", "linear", ["x"], {"weight": np.eye(2)}),
             G.Node("r", "relu1", ["a"]), G.Node("s", "add", ["r", "x"]), G.Node("o", "linear", ["s"], {"weight": np.eye(2)})]
    with pytest.raises(UnsupportedLayerError, match="node 's' .*residual"):
        ttfs.map_network(G.from_nodes(nodes, (2,)))


def test_physical_parameters_are_checked_at_the_door():
    g = G.sequential((2,), [("linear", {"weight": [[0.6, 0.4]]}), "relu1", ("linear", {"weight": [[1.0]]})])
    with pytest.raises(ParameterError, match="'T_w'"):
        ttfs.map_network(g, T_w=1.0)
    with pytest.raises(ParameterError, match="'v_th'"):
        ttfs.map_network(g, v_th=20 * pF)


def test_currents_follow_window_threshold_and_capacitance():
    # V = v_th sum_j w_j (t - t_j) / T_w needs I = w v_th Cm / T_w: 0.5 * 20 mV * 100 pF / 1 ms = 1 nA
    net = ttfs.map_network(G.sequential((2,), [("linear", {"weight": [[0.5, 0.5]]}), "relu1",
                                               ("linear", {"weight": [[1.0]]})]), v_th=20 * mV, Cm=100 * pF)
    assert float(net.current(0.5)) == pytest.approx(1e-9)


def _constrained(rng, shape):
    return ttfs.project_weight_sums(rng.normal(0, 1 / np.sqrt(np.prod(shape[1:])), size=shape))


def _error_bound(mats, steps):
    """Worst |a_SNN - a_ANN| per hidden layer: inputs on the grid (half a step), then each layer's
    crossing snapped up by at most one step on top of its inputs' errors weighted by sum_j |w_ij|."""
    bound, bounds = 0.5 / steps, []
    for m in mats:
        bound = np.abs(m).sum(axis=1).max() * bound + 1.0 / steps
        bounds.append(bound)
    return bounds


def _grid_crossings(t_in, w, window, steps, slack):
    """Model spike times (s) of units fed by spikes at ``t_in`` (N, n_in) through ``w`` (n_out, n_in):
    the first grid point of the window where V = sum_j w_j (t - t_j) / T_w reaches 1 - slack, else the
    window's end (forced). What Brian2 should give, computed independently of it."""
    T = 1e-3
    grid = (window + np.arange(steps + 1) / steps) * T  # state times in the window, its end included
    v = np.einsum("oi,nig->nog", w, np.maximum(0.0, grid[None, None, :] - t_in[:, :, None])) / T
    above = v >= 1 - slack
    above[:, :, -1] = True
    return grid[np.argmax(above, axis=2)]


def test_spike_times_are_the_first_grid_point_past_the_exact_crossing():
    # Each hidden spike is where V of its actual inputs first reaches threshold on the grid (or the
    # window's end): one step late or early anywhere (a delay, a wrong window edge) shows here.
    rng = np.random.default_rng(3)
    w1, w2 = _constrained(rng, (10, 12)), _constrained(rng, (6, 10))
    g = G.sequential((12,), [("linear", {"weight": w1}), "relu1", ("linear", {"weight": w2}), "relu1",
                             ("linear", {"weight": rng.normal(size=(2, 6))})])
    out = ttfs.simulate(ttfs.map_network(g), rng.uniform(size=(10, 12)), steps=STEPS)
    for name, w, window, t_in in (("1", w1, 1, out.times["input"]), ("3", w2, 2, out.times["1"])):
        early = _grid_crossings(t_in, w, window, STEPS, 1e-9)  # tolerate rounding at an exact tie
        late = _grid_crossings(t_in, w, window, STEPS, -1e-9)
        assert np.all((out.times[name] >= early - 1e-12) & (out.times[name] <= late + 1e-12)), name


def test_constrained_mlp_matches_its_ann_within_the_grid_bound():
    rng = np.random.default_rng(1)
    w1, w2, w3 = _constrained(rng, (12, 16)), _constrained(rng, (8, 12)), rng.normal(size=(3, 8))
    g = G.sequential((16,), [("linear", {"weight": w1}), "relu1", ("linear", {"weight": w2}), "relu1",
                             ("linear", {"weight": w3, "bias": [0.1, -0.2, 0.3]})])
    x = rng.uniform(size=(20, 16))
    out = ttfs.simulate(ttfs.map_network(g), x, steps=STEPS, batch=8)  # 3 batches, the last one partial
    ann = g.forward(x)
    b1, b2 = _error_bound([w1, w2], STEPS)
    assert np.abs(out.activations["1"] - ann["1"]).max() <= b1
    assert np.abs(out.activations["3"] - ann["3"]).max() <= b2
    # the crossing snaps up, so the SNN is never above the ANN beyond the input rounding
    assert np.all(out.spikes["1"] == 1) and np.all(out.spikes["3"] == 1)
    assert np.abs(out.potential - ann["4"]).max() <= np.abs(w3).sum(axis=1).max() * b2
    # and the activations are really there, not all saturated or silent
    assert 0.1 < np.mean((ann["3"] > 0) & (ann["3"] < 1))


def test_max_and_average_pooling_match_the_ann():
    # conv -> ReLU1 -> max-pool gate -> avg-pool (folded into the linear layer) -> ReLU1 -> output
    rng = np.random.default_rng(2)
    wc = _constrained(rng, (2, 1, 3, 3))
    wl = _constrained(rng, (4, 2))
    g = G.sequential((1, 6, 6), [("conv2d", {"weight": wc}), "relu1", ("maxpool2d", {"kernel": 2}),
                                 ("avgpool2d", {"kernel": 2}), "flatten", ("linear", {"weight": wl}), "relu1",
                                 ("linear", {"weight": rng.normal(size=(2, 4))})])
    net = ttfs.map_network(g)
    assert [p.kind for p in net.layers] == ["input", "hidden", "maxpool", "hidden", "output"]
    from bioconv import convert  # the seam maps it the same (rate coding's populations would refuse ReLU1 -> max pool)
    assert [p.kind for p in convert(g, coding="ttfs").mapped.layers] == [p.kind for p in net.layers]
    x = rng.uniform(size=(6, 1, 6, 6))
    out = ttfs.simulate(net, x, steps=STEPS)
    ann = g.forward(x)
    b_conv, = _error_bound([wc.reshape(2, -1)], STEPS)
    pooled = ann["2"].reshape(6, -1)
    # the gate passes its window's first spike in the same step: exactly the max of its source's
    # decoded activations, no step of delay
    src = out.activations["1"].reshape(6, 2, 2, 2, 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(6, 8, 4)
    assert out.activations["2"] == pytest.approx(src.max(axis=2), abs=1e-9)
    assert np.abs(out.activations["2"] - pooled).max() <= b_conv
    assert np.all(out.spikes["2"] == 1)
    b_lin = np.abs(wl).sum(axis=1).max() * b_conv + 1 / STEPS
    assert np.abs(out.activations["6"] - ann["6"]).max() <= b_lin
    # the layer after the gate sees the gate's spikes without delay: its spikes sit at the first grid
    # point where V of the pooled (then averaged) inputs crosses
    avg = np.kron(np.eye(2), np.full((1, 4), 0.25))  # avg-pool 2x2 of each channel's 2x2 map
    t_pool = out.times["2"]
    for slack, cmp in ((1e-9, np.greater_equal), (-1e-9, np.less_equal)):
        ref = _grid_crossings(t_pool, wl @ avg, 2, STEPS, slack)
        assert np.all(cmp(out.times["6"] + slack * 1e-3, ref)), slack


# --- through the coding-scheme seam: convert(..., coding="ttfs") and SNN.evaluate ---------------------

def _example_graph():
    rng = np.random.default_rng(4)
    w1 = _constrained(rng, (6, 8))
    return G.sequential((8,), [("linear", {"weight": w1}), "relu1", ("linear", {"weight": rng.normal(size=(3, 6))})]), rng


def test_convert_with_ttfs_coding_evaluates_like_the_simulation():
    from bioconv import convert
    graph, rng = _example_graph()
    x = rng.uniform(size=(10, 8))
    snn = convert(graph, coding="ttfs", T_w=2 * ms)
    assert snn.coding.name == "ttfs" and float(snn.mapped.T_w) == pytest.approx(2e-3)
    y = graph.forward(x)[graph.output].argmax(1)
    res = snn.evaluate(x, y, steps=40, device="runtime", progress=False)
    out = ttfs.simulate(snn.mapped, x, steps=40)
    decided = np.where((out.potential == out.potential.max(1, keepdims=True)).sum(1) == 1, out.potential.argmax(1), -1)
    assert res.predictions[:, -1].tolist() == decided.tolist()
    assert res.agreement == pytest.approx(np.mean(decided == y))
    assert (res.duration, res.dt) == pytest.approx((2e-3, 2e-3 / 40))
    # the membranes are read at every step: model times 0, dt, ..., L T_w, the last one the decision's
    assert res.settings["steps_per_window"] == 40 and res.times[-1] == pytest.approx(4e-3)
    assert res.times == pytest.approx(np.arange(2 * 40 + 1) * 2e-3 / 40)
    assert res.predictions.shape == (10, 81) and res.accuracy_vs_time[-1] == res.accuracy
    # every input spikes once into the 6 hidden units, every hidden unit once into the 3 outputs
    assert res.synaptic_events == 10 * (8 * 6 + 6 * 3)
    assert res.layer_correlation["1"] > 0.99


def test_ttfs_coding_refuses_rate_parameters_devices_and_durations_by_name():
    from brian2 import Hz

    from bioconv import convert
    graph, rng = _example_graph()
    with pytest.raises(ParameterError, match="'rate_max' is a parameter of coding 'rate'"):
        convert(graph, coding="ttfs", rate_max=200 * Hz)
    snn = convert(graph, coding="ttfs")
    x, y = rng.uniform(size=(2, 8)), np.array([0, 1])
    with pytest.raises(ParameterError, match="runtime device only.*'cpp'"):
        snn.evaluate(x, y)
    with pytest.raises(ParameterError, match="duration is the window"):
        snn.evaluate(x, y, duration=5 * ms, device="runtime")
    for option in (dict(float32=True), dict(presentations=2), dict(seeds=(0, 1))):
        with pytest.raises(ParameterError, match=f"does not support {next(iter(option))}="):
            snn.evaluate(x, y, device="runtime", **option)
    with pytest.raises(BioconvError, match=r"sample 1, input 0 is 2\.0"):
        snn.evaluate(np.array([x[0], np.r_[2.0, x[1, 1:]]]), y, device="runtime")


def test_half_step_threshold_correction_centres_the_timing_error():
    # The paper's rule sees a crossing at the next grid point: each layer reads about half a step low
    # (compounding). Lowering the threshold by half a step of a unit's slope centres the error.
    rng = np.random.default_rng(5)
    w1, w2 = _constrained(rng, (40, 30)), _constrained(rng, (30, 40))
    g = G.sequential((30,), [("linear", {"weight": w1}), "relu1", ("linear", {"weight": w2}), "relu1",
                             ("linear", {"weight": rng.normal(size=(3, 30))})])
    x = rng.uniform(size=(40, 30))
    ann, net, steps = g.forward(x), ttfs.map_network(g), 20
    mean_error = {}
    for half_step in (False, True):
        out = ttfs.simulate(net, x, steps=steps, half_step=half_step)
        for k in ("1", "3"):
            inside = (ann[k] > 0.05) & (ann[k] < 0.95)  # away from the clamps, where no error is possible
            mean_error[half_step, k] = (out.activations[k] - ann[k])[inside].mean() * steps  # in steps
    assert mean_error[False, "1"] < -0.3 and mean_error[False, "3"] < mean_error[False, "1"] - 0.3
    assert abs(mean_error[True, "1"]) < 0.15 and abs(mean_error[True, "3"]) < 0.15


def test_layer_names_of_nested_torch_modules_are_simulated():
    # from_torch names nested layers "features.0": not a Brian2 identifier, so not used in object names
    w = np.array([[0.6, 0.4]])
    nodes = [G.Node("x", "input", []), G.Node("features.0", "linear", ["x"], {"weight": w}),
             G.Node("features.1", "relu1", ["features.0"]), G.Node("head.fc", "linear", ["features.1"], {"weight": [[1.0]]})]
    out = ttfs.simulate(ttfs.map_network(G.from_nodes(nodes, (2,))), np.array([[0.5, 1.0]]), steps=STEPS)
    assert out.activations["features.1"][0, 0] == pytest.approx(0.7, abs=1 / STEPS)
