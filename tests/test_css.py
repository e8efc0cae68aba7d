"""CSS coding with TSA neurons (seed 002): the paper's worked examples (issue 13's acceptance list),
the schedule that chains layers within a step, the latency formula, and small networks against
their ANN. Every spike train here comes out of a Brian2 simulation of the model files in
equations/; numpy graphs only (no torch)."""
import numpy as np
import pytest
from brian2 import ms

from bioconv import BioconvError, ParameterError, UnsupportedLayerError, css
from bioconv import graph as G
from bioconv.converter import convert


# --- the worked examples ---------------------------------------------------------------------------

def test_temporal_coupling_amplifying_IF_vs_TSA():
    # Sec. 4.2.1: two inputs, w = 1, b = 0, beta = 2, T = 2, both spiking at step 2 (values in theta).
    inputs, w = np.array([[0, 1], [0, 1]]), [1.0, 1.0]
    # the amplifying IF neuron: binary, threshold theta, reset theta (the binary TSA with Ts = 0)
    if_neuron = css.neuron(inputs, weights=w, beta=2, steps=2, silent=0, relu=False, ternary=False)
    assert if_neuron.spikes.tolist() == [0, 1]
    assert (if_neuron.value, if_neuron.residual) == (1.0, 1.0)
    tsa = css.neuron(inputs, weights=w, beta=2, steps=2, silent=1, relu=False)
    assert tsa.spikes.tolist() == [1, 0]
    assert (tsa.value, tsa.residual) == (2.0, 0.0)
    assert css.value(tsa.spikes, 2) == tsa.value  # the neuron's own sum g is the train's value


# a, the greedy train and its value, the ternary train and its value (beta = 1.5, T = 4, theta_0 = 1)
ENCODER_CASES = [
    (5.0, [1, 0, 1, 0], 4.875, [1, 1, 0, -1], 4.625),
    (3.3, [0, 1, 0, 1], 3.25, [1, 0, 0, 0], 3.375),
    (0.4, [0, 0, 0, 0], 0.0, [0, 0, 0, 0], 0.0),
    (8.125, [1, 1, 1, 1], 8.125, [1, 1, 1, 1], 8.125),
    (9.0, [1, 1, 1, 1], 8.125, [1, 1, 1, 1], 8.125),
]


@pytest.mark.parametrize("rule", ["greedy", "ternary"])
def test_encoder_examples(rule):
    beta, T = 1.5, 4
    S_T = css.encodable(beta, T)
    assert S_T == 8.125
    a = np.array([c[0] for c in ENCODER_CASES])
    trains = css.encoder_trains(a / S_T, beta=beta, steps=T, rule=rule)  # a / p_0 with theta_0 = p_0 / S_T = 1
    for k, (value, greedy, greedy_value, ternary, ternary_value) in enumerate(ENCODER_CASES):
        expected, decoded = (greedy, greedy_value) if rule == "greedy" else (ternary, ternary_value)
        assert trains[k].tolist() == expected, value
        assert css.value(trains[k], beta) == pytest.approx(decoded, abs=1e-12), value
    # Theorem 2: error < theta_0 (greedy), <= theta_0 / 2 (ternary) below saturation
    unsaturated = a < S_T
    err = np.abs(css.value(trains, beta) - a)[unsaturated]
    assert np.all(err < 1) if rule == "greedy" else np.all(err <= 0.5)


@pytest.mark.parametrize("z, silent, spikes, value", [
    ([2, -3, 0], 1, [1, -1, 0], 2.0),
    ([1, -3, 0], 0, [1, -1, -1], 1.0),
    ([1, -3, 0], 1, [0, 0, 0], 0.0),
])
def test_tsa_relu_examples(z, silent, spikes, value):
    # beta = 2, T = 3, z given directly: negative spikes withdraw earlier positive ones
    out = css.neuron(z, beta=2, steps=3, silent=silent)
    assert out.spikes.tolist() == spikes
    assert out.value == value == css.value(out.spikes, 2)


# --- schedule and latency ---------------------------------------------------------------------------

def _chain_graph(seed=0, depth=3, width=5, n_in=4, n_out=3):
    rng = np.random.default_rng(seed)
    layers, n = [], n_in
    for _ in range(depth - 1):
        layers += [("linear", {"weight": rng.normal(0, 0.7, (width, n)), "bias": rng.normal(0.1, 0.1, width)}), "relu"]
        n = width
    layers.append(("linear", {"weight": rng.normal(0, 0.7, (n_out, n)), "bias": rng.normal(0, 0.2, n_out)}))
    return G.sequential((n_in,), layers), rng.random((16, n_in))


def _mapped(graph, x):
    net, _ = css.map_network(graph, x)
    return net


@pytest.mark.parametrize("device", ["runtime", "cpp"])
def test_layers_are_chained_within_a_step(device):
    """Each pathway runs after its source's threshold tests and before its target's, in the same step."""
    net = _mapped(*_chain_graph())
    schedule = css.network_schedule(net, device=device)
    position = {name: k for k, (name, when, order) in enumerate(schedule)}
    # layer k's groups are css_input (k = 0) and css_layer_k; synapses css_syn_k_m feed layer k
    names = ["css_input"] + [f"css_layer_{k}" for k in range(1, len(net.layers))]
    for k in range(1, len(net.layers)):
        pathways = [n for n in position if n.startswith(f"css_syn_{k}_0_")]
        assert pathways, schedule
        source_tests = [position[n] for n in position if n.startswith(names[k - 1] + "_") and "thresholder" in n]
        target_tests = [position[n] for n in position if n.startswith(names[k] + "_") and "thresholder" in n]
        assert source_tests and target_tests
        for pw in pathways:
            assert schedule[position[pw]][1] == "thresholds"
            assert max(source_tests) < position[pw] < min(target_tests), (pw, schedule)
    if device == "cpp":  # the standalone device runs the very same order
        assert schedule == css.network_schedule(net, device="runtime")


@pytest.mark.parametrize("silent", [0, 1, 2])
def test_latency_formula(silent):
    """Layer l fires only in [l Ts, l Ts + T); the readout is final after T + (L-1) Ts steps, and not before."""
    graph, x = _chain_graph()
    net, T = _mapped(graph, x), 4
    L = net.weight_layers
    lat = css.latency(T, silent, L)
    assert lat == T + (L - 1) * silent
    out = css.simulate(net, x, steps=T, silent=silent, record_spikes=True, run_steps=lat + 3)
    assert out.latency == lat
    for p in net.layers[:-1]:
        sample, unit, step, sign = out.spikes[p.name]
        assert len(step), p.name
        assert step.min() >= p.depth * silent and step.max() < p.depth * silent + T, p.name
    trace = out.trace  # (N, run steps, n_out): the output's accumulated input after each step
    assert np.all(trace[:, lat - 1:] == trace[:, -1:])  # final from step `lat` on (1-based) ...
    assert np.any(trace[:, lat - 2] != trace[:, -1])    # ... and not one step earlier
    exact = css.simulate(net, x, steps=T, silent=silent)
    assert exact.run_steps == lat
    np.testing.assert_array_equal(exact.potential, out.potential)


# --- networks against their ANN ------------------------------------------------------------------

def test_accumulated_input_is_the_weighted_decoded_input_and_the_silent_period_bounds_the_error():
    """Chaining puts a spike into its targets' input in the step it is fired: each hidden layer's
    accumulated input equals W (theta_src d_src) + b of its sources' decoded values, and the coding
    error |d - ReLU(that)| is the end-of-window residual. Without a silent period temporal coupling
    leaves errors of many theta; with Ts = 2 every layer stays within theta / 2 (99.9th percentile)."""
    graph, x = _chain_graph(seed=1, depth=4, width=8)
    net = _mapped(graph, x)
    worst = {}
    for silent in (0, 2):
        out = css.simulate(net, x, steps=8, silent=silent)
        errors = css.layer_errors(net, out)
        assert set(errors) == {p.name for p in net.layers if p.kind == "hidden"}
        for name, e in errors.items():
            drive = e.target * out.thetas[name]  # ReLU of the drive: compare where the drive is positive
            accumulated = out.accumulated[name] * out.thetas[name]
            positive = drive > 0
            np.testing.assert_allclose(accumulated[positive], drive[positive], rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(e.error, np.abs(out.residual[name]), rtol=1e-9, atol=1e-12)
        worst[silent] = max(e.percentile(99.9) for e in errors.values())
    assert worst[2] <= 0.5 < 2 < worst[0]
    ann = graph.forward(x)[graph.output]
    np.testing.assert_allclose(out.potential * out.thetas[net.layers[-1].name], ann, atol=0.1 * np.abs(ann).max())


def _same_simulation(a, b, atol=0.0):
    np.testing.assert_allclose(a.trace, b.trace, rtol=0, atol=atol)
    for name in b.decoded:
        for attr in ("decoded", "positive", "negative"):
            np.testing.assert_array_equal(getattr(a, attr)[name], getattr(b, attr)[name], err_msg=(attr, name))
        np.testing.assert_allclose(a.residual[name], b.residual[name], rtol=0, atol=atol, err_msg=name)
        order_a, order_b = np.lexsort(a.spikes[name]), np.lexsort(b.spikes[name])
        for u, v in zip(a.spikes[name], b.spikes[name]):
            np.testing.assert_array_equal(u[order_a], v[order_b], err_msg=name)


def test_copies_and_presentations_give_the_same_results():
    """Samples as copies, or one after another on a copy (each presentation restarts from rest), or
    over several runs of one built network: the same spikes and values, sample by sample."""
    graph, x = _chain_graph(seed=1, depth=3, width=6)
    net = _mapped(graph, x)
    one = css.simulate(net, x, steps=6, silent=1, record_spikes=True, batch=16, presentations=1)
    for batch, presentations in ((3, 2), (1, 16)):  # 3 runs, the last part-filled; 1 copy, 16 in sequence
        _same_simulation(css.simulate(net, x, steps=6, silent=1, record_spikes=True, batch=batch,
                                      presentations=presentations), one)


@pytest.mark.slow  # a compile
def test_cpp_device_gives_the_runtime_spikes():
    graph, x = _chain_graph(seed=1, depth=3, width=6)
    net = _mapped(graph, x)
    runtime = css.simulate(net, x, steps=6, silent=1, record_spikes=True, batch=4, presentations=2)
    cpp = css.simulate(net, x, steps=6, silent=1, record_spikes=True, batch=4, presentations=2, device="cpp")
    _same_simulation(cpp, runtime, atol=1e-12)  # sums in another order: the last bits may differ


def test_negative_spikes_and_signed_synops_are_counted():
    graph, x = _chain_graph(seed=2)
    snn = convert(graph, x, coding="css", steps=6)
    res = snn.evaluate(x, graph.forward(x)[graph.output].argmax(1), device="runtime", progress=False)
    out = snn.coding.simulate(snn, x, steps=6, record_spikes=True)
    from bioconv.coding.css import out_degree
    pos = neg = 0
    for name, (sample, unit, step, sign) in out.spikes.items():
        deg = out_degree(snn.mapped, name)
        pos += deg[unit[sign > 0]].sum()
        neg += deg[unit[sign < 0]].sum()
    assert neg > 0  # ternary neurons withdraw spikes here
    assert res.settings["synops_positive"] == pos and res.settings["synops_negative"] == neg
    assert res.synaptic_events == pos + neg
    rates = res.settings["spikes_by_sign"]
    assert sum(r["negative"] for r in rates.values()) > 0
    spiking = [n for n in out.positive if n != "input"]
    assert res.spikes_per_neuron["all"] == pytest.approx(
        sum(out.positive[n].sum() + out.negative[n].sum() for n in spiking) / len(x)
        / sum(out.positive[n].shape[1] for n in spiking))
    binary = convert(graph, x, coding="css", steps=6, ternary=False).evaluate(
        x, graph.forward(x)[graph.output].argmax(1), device="runtime", progress=False)
    assert binary.settings["encoder"] == "css_greedy" and binary.settings["synops_negative"] == 0


def test_evaluate_steps_sets_the_coding_steps():
    graph, x = _chain_graph(seed=3)
    y = graph.forward(x)[graph.output].argmax(1)
    snn = convert(graph, x, coding="css", Ts=2)
    for T in (3, 7):
        res = snn.evaluate(x, y, steps=T, device="runtime", progress=False)
        assert res.settings["steps"] == T and res.duration == pytest.approx(T * 1e-3)
        assert res.settings["latency_steps"] == T + 2 * 2 == len(res.times)
        assert res.predictions.shape == (len(x), T + 4)
    assert res.agreement >= 0.9
    with pytest.raises(ParameterError, match="dt"):
        snn.evaluate(x, y, dt=0.5 * ms, device="runtime")
    with pytest.raises(ParameterError, match="not both"):
        snn.evaluate(x, y, steps=4, duration=4 * ms, device="runtime")
    with pytest.raises(ParameterError, match="'cpp' or 'runtime'"):
        snn.evaluate(x, y, steps=4, device="cuda")


def test_amplitude_adjustment_raises_the_amplitude_of_coupled_layers():
    # binary neurons without a silent period leave large residuals (temporal coupling)
    graph, x = _chain_graph(seed=4)
    snn = convert(graph, x, coding="css", ternary=False, Ts=0, steps=6, adjust=2)
    rounds = snn.mapped.adjustments
    assert 1 <= len(rounds) <= 2
    first = rounds[0]["layers"]
    for name, r in first.items():
        assert (r["factor"] > 1) == (r["residual"] > 1), name
        assert r["factor"] == css.adjustment_factor(r["residual"], css.encodable(1.5, 6))
    assert any(r["factor"] > 1 for r in first.values())
    for p in snn.mapped.layers:
        expected = np.prod([r["layers"][p.name]["factor"] for r in rounds]) if p.kind == "hidden" else 1.0
        assert p.factor == pytest.approx(expected)


def test_adjustment_factor_of_A18():
    S = 100.0
    assert css.adjustment_factor(1.0, S) == 1.0 and css.adjustment_factor(0.3, S) == 1.0
    assert css.adjustment_factor(1 + 10.0, S) == pytest.approx(1.10)   # d > 0.05 S
    assert css.adjustment_factor(1 + 3.0, S) == pytest.approx(1.06)    # 0.01 S < d <= 0.05 S: 1.03 + d / S
    assert css.adjustment_factor(1 + 0.5, S) == pytest.approx(1.02)    # d <= 0.01 S: 1 + 4 d / S


# --- what CSS conversion refuses ---------------------------------------------------------------------

def test_max_pooling_and_relu1_are_refused_by_name():
    rng = np.random.default_rng(0)
    conv = G.sequential((1, 4, 4), [("conv2d", {"weight": rng.normal(size=(2, 1, 3, 3)), "stride": (1, 1),
                                                "padding": (1, 1)}), "relu",
                                    ("maxpool2d", {"kernel": (2, 2), "stride": (2, 2), "padding": (0, 0)}),
                                    "flatten", ("linear", {"weight": rng.normal(size=(3, 8))})])
    with pytest.raises(UnsupportedLayerError, match=r"node '2' \(maxpool2d\).*average pooling"):
        convert(conv, rng.random((4, 1, 4, 4)), coding="css")
    clamp = G.sequential((2,), [("linear", {"weight": [[1.0, 1.0]]}), "relu1", ("linear", {"weight": [[1.0]]})])
    with pytest.raises(UnsupportedLayerError, match=r"node '1' \(relu1\)"):
        convert(clamp, rng.random((4, 2)), coding="css")


def test_average_pooling_is_folded_into_the_next_layer():
    rng = np.random.default_rng(5)
    graph = G.sequential((1, 6, 6), [("conv2d", {"weight": rng.normal(0, 0.5, (3, 1, 3, 3)), "bias": rng.normal(0, .1, 3),
                                                 "stride": (1, 1), "padding": (1, 1)}), "relu",
                                     ("avgpool2d", {"kernel": (2, 2), "stride": (2, 2), "padding": (0, 0)}),
                                     "flatten", ("linear", {"weight": rng.normal(0, 0.5, (4, 27))})])
    x = rng.random((12, 1, 6, 6))
    net = _mapped(graph, x)
    assert [p.kind for p in net.layers] == ["input", "hidden", "output"]  # no pooling layer of its own
    out = css.simulate(net, x, steps=10, silent=1)
    ann = graph.forward(x)[graph.output]
    assert np.mean(out.potential.argmax(1) == ann.argmax(1)) >= 0.9


def test_residual_across_depths_is_refused_and_layers_without_activity_are_named():
    nodes = [G.Node("x", "input", []), G.Node("a", "linear", ["x"], {"weight": np.eye(2)}), G.Node("r", "relu", ["a"]),
             G.Node("s", "add", ["r", "x"]), G.Node("o", "linear", ["s"], {"weight": np.eye(2)})]
    x = np.random.default_rng(0).random((4, 2))
    with pytest.raises(UnsupportedLayerError, match="population 'o'.*different depths"):
        convert(G.from_nodes(nodes, (2,)), x, coding="css")
    dead = G.sequential((2,), [("linear", {"weight": [[-1.0, -1.0]]}), "relu", ("linear", {"weight": [[1.0]]})])
    with pytest.raises(BioconvError, match="population '1'.*never activates"):
        convert(dead, x, coding="css")


def test_scheme_parameters_are_checked_and_rate_ones_refused_by_name():
    graph, x = _chain_graph()
    with pytest.raises(ParameterError, match="'rate_max' is a parameter of coding 'rate'"):
        convert(graph, x, coding="css", rate_max=100)
    with pytest.raises(ParameterError, match="beta"):
        convert(graph, x, coding="css", beta=3.0)
    with pytest.raises(ParameterError, match="step"):
        convert(graph, x, coding="css", step=1.0)
    with pytest.raises(BioconvError, match="calibration"):
        convert(graph, None, coding="css")
    snn = convert(graph, x, coding="css")
    with pytest.raises(BioconvError, match="negative"):  # the greedy rule fires positive spikes only
        snn.coding.simulate(snn, -x, encoder="css_greedy")
    assert snn.coding.simulate(snn, -x[:2]).decoded["input"].min() < 0  # the ternary rule codes them


def test_css_networks_are_saved_and_nir_export_refuses_them_by_name(tmp_path):
    """Saving: the same layers and scheme back (tests/test_io_schemes.py checks the spikes); NIR has no
    TSA neuron (`bioconv.io.nir_export.inexpressible`)."""
    import bioconv
    from bioconv.io import NIRExportError, to_nir
    graph, x = _chain_graph()
    snn = convert(graph, x, coding="css")
    loaded = bioconv.load(snn.save(tmp_path / "net.bioconv"))
    assert loaded.coding == snn.coding and loaded.table() == snn.table()
    with pytest.raises(NIRExportError, match="coding 'css' cannot be exported to NIR: .*discrete-step amplification"):
        to_nir(snn)
