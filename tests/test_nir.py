"""NIR export and import (`bioconv.io.to_nir`, `from_nir`): round trips give the same spikes, a NIR
graph built by hand simulates at the analytic LIF rate, and what NIR cannot carry is named."""
from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest
from brian2 import Hz, mV, ms, nS, pA, pF, second

import bioconv
from bioconv.errors import BioconvError
import networks
from bioconv import analysis
from bioconv import graph as G
from bioconv.io import NIRExportError, NIRExportWarning, NIRImportError, from_nir, to_nir
from bioconv.simulate.runner import CompiledNetwork

import nir  # noqa: E402  (the test extra installs it: a missing nir fails here, never skips)

#: A NIR file written with nir's own API (`python tests/test_nir.py` writes it): Input -> Affine (a
#: constant current per unit as its bias, zero weights) -> LIF -> Output, in SI units.
LIF_FILE = networks.DATA / "affine_lif.nir"
LIF = dict(tau=20e-3, r=1 / 10e-9, v_leak=-70e-3, v_threshold=-50e-3, v_reset=-70e-3)  # Cm = tau / r = 200 pF
CURRENTS = np.array([250e-12, 300e-12, 500e-12])


def _affine_lif_graph():
    n = len(CURRENTS)
    full = {k: np.full(n, v) for k, v in LIF.items()}
    return nir.NIRGraph(nodes={"input": nir.Input(input_type={"input": np.array([2])}),
                               "affine": nir.Affine(weight=np.zeros((n, 2)), bias=CURRENTS.copy()),
                               "lif": nir.LIF(**full),
                               "output": nir.Output(output_type={"output": np.array([n])})},
                        edges=[("input", "affine"), ("affine", "lif"), ("lif", "output")])


def _conv_net(**convert_args):
    """conv (padding) -> ReLU -> average pooling -> flatten -> linear -> ReLU -> linear: what NIR expresses."""
    rng = np.random.default_rng(0)
    g = G.sequential((1, 6, 6), [
        ("conv2d", {"weight": rng.normal(0, 0.5, (2, 1, 3, 3)), "bias": rng.normal(0, 0.1, 2), "padding": 1}), "relu",
        ("avgpool2d", {"kernel": 2}), "flatten",
        ("linear", {"weight": rng.normal(0, 0.3, (5, 18)), "bias": rng.normal(0, 0.1, 5)}), "relu",
        ("linear", {"weight": rng.normal(0, 0.5, (3, 5))})])
    return bioconv.convert(g, rng.random((30, 1, 6, 6)), **convert_args)


def _run(snn, x, duration=60 * ms, dt=0.1 * ms):
    rates = snn.target_rates(x)[snn.mapped.populations[0].name]
    with CompiledNetwork(snn.mapped, len(x), duration=duration, dt=dt, encoder="regular", device="cpp", seed=0,
                         threads=1) as net:
        return net.run(rates)


def _same_spikes(a, b):
    ca, cb = list(a.counts.values()), list(b.counts.values())
    assert len(ca) == len(cb) and sum(c.sum() for c in ca) > 0
    for x, y in zip(ca, cb):
        assert np.array_equal(x, y)
    for field in ("out_sample", "out_unit", "out_t"):
        assert np.array_equal(getattr(a, field), getattr(b, field)), field


def _leaky(snn, gl=5 * nS):
    """The same network on leaky membranes (every unit leaks, so NIR's LIF carries it)."""
    for p in snn.mapped.populations[1:]:
        p.neuron = "conductance_lif"
        p.params = dict(p.params, gl=gl, EL=0 * mV)
    return snn


@pytest.mark.slow
@pytest.mark.parametrize("node, synapse", [("IF", "delta"), ("LIF", "delta"), ("CubaLIF", "exponential")])
def test_round_trip_through_a_nir_file_gives_the_same_spikes(tmp_path, node, synapse):
    """Linear reset and a refractory period: NIR cannot carry them, the metadata does, and bioconv reads it."""
    snn = _conv_net(tau_ref=0.5 * ms, synapse=synapse)
    snn = snn if node == "IF" else _leaky(snn)
    with pytest.warns(NIRExportWarning, match="population '1': subtractive"):
        graph = to_nir(snn, dt=0.1 * ms)
    assert {type(n).__name__ for n in graph.nodes.values()} >= {"Conv2d", "AvgPool2d", "Flatten", "Affine", node}
    assert "refractory" in graph.nodes["1"].metadata["bioconv.not_carried"]
    nir.write(tmp_path / "net.nir", graph)
    back = from_nir(tmp_path / "net.nir")
    assert back.mapped.reset == "linear" and back.mapped.populations[1].params["tau_ref"] == 0.5 * ms
    x = np.random.default_rng(1).random((4, 1, 6, 6))
    _same_spikes(_run(snn, x), _run(back, x))


def test_leak_bias_exports_per_unit_leaks_where_every_unit_leaks():
    """bias='leak' with every bias negative: each unit its own gl, carried by LIF's per-unit tau and r."""
    rng = np.random.default_rng(0)
    g = G.sequential((6,), [("linear", {"weight": rng.uniform(0, 0.6, (5, 6)), "bias": -rng.uniform(0.05, 0.2, 5)}),
                            "relu",
                            ("linear", {"weight": rng.uniform(0, 0.6, (3, 5)), "bias": -rng.uniform(0.05, 0.2, 3)})])
    snn = bioconv.convert(g, rng.random((30, 6)), bias="leak", reset="value")
    hidden = snn.mapped.population("1")
    gl = np.asarray(hidden.params["gl"])
    assert len(np.unique(gl)) == 5 and np.all(gl > 0)
    lif = to_nir(snn).nodes["1"]
    assert type(lif).__name__ == "LIF"
    np.testing.assert_allclose(1 / lif.r, gl, rtol=1e-15)
    np.testing.assert_allclose(lif.tau, float(hidden.params["Cm"]) / gl, rtol=1e-15)
    back = from_nir(to_nir(snn)).mapped.population("1")
    np.testing.assert_allclose(np.asarray(back.params["gl"]), gl, rtol=1e-15)


@pytest.mark.slow
def test_an_output_layer_with_a_bias_after_a_flatten_round_trips():
    """conv -> ReLU -> pooling -> flatten -> linear with a bias (torch's default) as the output: the
    output population's bias goes into its own Affine node, not onto the flatten before it."""
    rng = np.random.default_rng(2)
    g = G.sequential((1, 6, 6), [
        ("conv2d", {"weight": rng.normal(0, 0.5, (2, 1, 3, 3)), "bias": rng.normal(0, 0.1, 2), "padding": 1}), "relu",
        ("avgpool2d", {"kernel": 2}), "flatten",
        ("linear", {"weight": rng.normal(0, 0.5, (3, 18)), "bias": rng.uniform(0.05, 0.2, 3)})])
    snn = bioconv.convert(g, rng.random((30, 1, 6, 6)), reset="value")
    graph = to_nir(snn)
    out = graph.nodes[g.output]
    assert type(out).__name__ == "Affine" and np.all(np.asarray(out.bias) != 0)
    back = from_nir(graph)
    x = rng.random((4, 1, 6, 6))
    _same_spikes(_run(snn, x), _run(back, x))


def test_a_network_from_nir_saves_and_loads(tmp_path):
    """No calibration data: the file records none, and saturation says so after loading too."""
    snn = _conv_net(reset="value")
    back = from_nir(to_nir(snn))
    loaded = bioconv.load(back.save(tmp_path / "from_nir.bioconv"))
    assert [p.name for p in loaded.mapped.populations] == [p.name for p in back.mapped.populations]
    for net in (back, loaded):
        with pytest.raises(BioconvError, match="no calibration data.*saturation is unknown"):
            net.saturation()


@pytest.mark.slow
def test_round_trip_without_metadata_on_what_nir_expresses_exactly():
    """Value reset, tau_ref = 0, delta synapses: the bare NIR graph is the whole network."""
    snn = _conv_net(reset="value")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing to warn about
        graph = to_nir(snn)
    graph.metadata = {}
    for node in graph.nodes.values():
        node.metadata = {}
    back = from_nir(graph, rate_max=snn.mapped.rate_max)
    x = np.random.default_rng(1).random((4, 1, 6, 6))
    # a bare graph's inputs spike at x * rate_max; the bioconv network scaled them by its input scale
    _same_spikes(_run(snn, x), _run(back, x / snn.scales.values["input"]))


@pytest.mark.slow
def test_hand_built_nir_lif_fires_at_the_analytic_rate():
    """A NIR file written with nir's own API: constant currents into LIF membranes, simulated at
    dt = 0.01 ms; the rates from inter-spike intervals within 1 % of `lif_rate` (value reset at this
    dt: at most 0.19 % in rate_validation)."""
    snn = from_nir(LIF_FILE)
    out = _run(snn, np.zeros((1, 2)), duration=0.5 * second, dt=0.01 * ms)
    Cm, gl = LIF["tau"] / LIF["r"], 1 / LIF["r"]
    for unit, current in enumerate(CURRENTS):
        t = np.sort(out.out_t[out.out_unit == unit])
        assert len(t) > 5
        expected = analysis.lif_rate(current * 1e12 * pA, Cm=Cm * 1e12 * pF, gl=gl * 1e9 * nS,
                                     EL=LIF["v_leak"] * 1e3 * mV, v_th=LIF["v_threshold"] * 1e3 * mV,
                                     v_reset=LIF["v_reset"] * 1e3 * mV, tau_ref=0 * ms)
        assert 1 / np.mean(np.diff(t)) == pytest.approx(float(expected / Hz), rel=0.01), unit


@pytest.mark.slow
def test_hand_built_conv_graph_of_lif_nodes_fires_at_the_analytic_rate():
    """Input -> Conv2d -> LIF -> Flatten -> Affine -> LIF -> Output, built with nir's API, under constant
    input (no input spikes: each conv channel's bias is its units' current): every unit of the conv
    layer's LIF node fires at `lif_rate` of its channel's current, within 1 % (dt = 0.01 ms, 4 s:
    counts within one spike of rate x T, under 0.4 % at these rates; the grid adds at most 0.19 % in
    rate_validation)."""
    rng = np.random.default_rng(4)
    b1 = np.array([400e-12, 600e-12])  # A, one current per channel (rheobase 200 pA)
    w1 = rng.uniform(1e-14, 2e-14, (2, 1, 2, 2))

    def lif(shape):
        return nir.LIF(**{k: np.full(shape, v) for k, v in LIF.items()})
    graph = nir.NIRGraph(
        nodes={"in": nir.Input(input_type={"input": np.array([1, 4, 4])}),
               "conv": nir.Conv2d(input_shape=(4, 4), weight=w1, stride=1, padding=0, dilation=1, groups=1, bias=b1),
               "lif1": lif((2, 3, 3)), "flat": nir.Flatten(input_type={"input": np.array([2, 3, 3])}, start_dim=0),
               "fc": nir.Affine(weight=rng.uniform(0, 1e-13, (3, 18)), bias=np.zeros(3)), "lif2": lif(3),
               "out": nir.Output(output_type={"output": np.array([3])})},
        edges=[("in", "conv"), ("conv", "lif1"), ("lif1", "flat"), ("flat", "fc"), ("fc", "lif2"), ("lif2", "out")])
    snn = from_nir(graph)
    T = 4.0
    out = _run(snn, np.zeros((1, 1, 4, 4)), duration=T * second, dt=0.01 * ms)
    Cm, gl = LIF["tau"] / LIF["r"], 1 / LIF["r"]
    counts = out.counts["lif1"].reshape(2, 9)
    for c, current in enumerate(b1):
        expected = float(analysis.lif_rate(current * 1e12 * pA, Cm=Cm * 1e12 * pF, gl=gl * 1e9 * nS,
                                           EL=LIF["v_leak"] * 1e3 * mV, v_th=LIF["v_threshold"] * 1e3 * mV,
                                           v_reset=LIF["v_reset"] * 1e3 * mV, tau_ref=0 * ms) / Hz)
        assert expected * T > 250
        np.testing.assert_allclose(counts[c] / T, expected, rtol=0.01, err_msg=f"channel {c}")


@pytest.mark.slow
def test_hand_built_conv_graph_follows_the_if_rate_law():
    """Input -> Conv2d -> IF -> Flatten -> Affine -> IF -> Output, built with nir's API: each IF unit's
    rate is (sum of weight x input rate + bias) x r / v_threshold, within the counting bound. NIR resets
    to v_reset, which drops the overshoot: the charges per spike are kept at 0.5 % of the threshold's."""
    rng = np.random.default_rng(2)
    w1, b1 = rng.uniform(0.2e-14, 1e-14, (2, 1, 2, 2)), np.full(2, 40e-12)  # charges (C) and currents (A)
    w2, b2 = rng.uniform(0, 1e-14, (3, 18)), np.full(3, 20e-12)
    r, th = 1 / 100e-12, 20e-3
    if_ = lambda n: nir.IF(r=np.full(n, r), v_threshold=np.full(n, th))  # noqa: E731
    graph = nir.NIRGraph(
        nodes={"in": nir.Input(input_type={"input": np.array([1, 4, 4])}),
               "conv": nir.Conv2d(input_shape=(4, 4), weight=w1, stride=1, padding=0, dilation=1, groups=1, bias=b1),
               "if1": nir.IF(r=np.full((2, 3, 3), r), v_threshold=np.full((2, 3, 3), th)),
               "flat": nir.Flatten(input_type={"input": np.array([2, 3, 3])}, start_dim=0),
               "fc": nir.Affine(weight=w2, bias=b2), "if2": if_(3),
               "out": nir.Output(output_type={"output": np.array([3])})},
        edges=[("in", "conv"), ("conv", "if1"), ("if1", "flat"), ("flat", "fc"), ("fc", "if2"), ("if2", "out")])
    snn = from_nir(graph, rate_max=1000 * Hz)
    x = rng.random((2, 1, 4, 4))
    T = 1.0
    out = _run(snn, x, duration=T * second)
    f_in = x * 1000.0
    conv = np.stack([[np.sum(f_in[b, 0, i:i + 2, j:j + 2] * w1[c, 0]) for i in range(3) for j in range(3)]
                     for b in range(2) for c in range(2)]).reshape(2, 2 * 9) + np.repeat(b1, 9)
    f1 = np.maximum(conv, 0) * r / th
    f2 = np.maximum(f1 @ w2.T + b2, 0) * r / th
    hidden = out.counts["if1"] / T
    assert np.all(np.abs(hidden - f1) <= 2 / T + 1e-9)  # a regular train's count is within 1 of rate x T
    counts = np.zeros((2, 3))
    np.add.at(counts, (out.out_sample, out.out_unit), 1)
    assert np.all(np.abs(counts / T - f2) <= 3 / T)


#: Written by snnTorch 1.0.0's ``export_to_nir`` (with nirtorch 2.6, neither a dependency of bioconv)
#: from ``Sequential(Linear(4, 6), Leaky(beta=0.9), Linear(6, 3), Leaky(beta=0.8, output=True))``
#: (torch seed 0, thresholds 1, per-unit beta and threshold tensors), which snnTorch writes with
#: dt = 1e-4 s: tau = dt / (1 - beta), r = tau / dt.
SNNTORCH_FILE = networks.DATA / "snntorch_leaky.nir"


@pytest.mark.slow
def test_a_nir_file_written_by_snntorch_imports_and_simulates():
    """Imported with snnTorch's dt, without input spikes: each hidden unit is driven by its Affine
    bias alone and fires at lif_rate(I = bias, Cm = tau / r, gl = 1 / r) within 1 % (counts over
    0.1 s at dt = 1 us; the rates are kHz)."""
    graph = nir.read(SNNTORCH_FILE)
    snn = from_nir(graph, dt=1e-4 * second)
    lif, affine = graph.nodes["1"], graph.nodes["0"]
    hidden = snn.mapped.population("1")
    assert np.allclose(np.asarray(hidden.params["Cm"]), lif.tau / lif.r, rtol=1e-12)
    assert np.allclose(np.asarray(hidden.params["gl"]), 1 / lif.r, rtol=1e-12)
    q = hidden.projections[0]
    assert np.allclose(np.asarray(q.w), affine.weight[q.j, q.i] * 1e-4, rtol=1e-12)  # a spike's weight x dt
    T = 0.1
    out = _run(snn, np.zeros((1, 4)), duration=T * second, dt=0.001 * ms)
    rates = out.counts["1"][0] / T
    for unit, bias in enumerate(affine.bias):
        expected = float(analysis.lif_rate(float(bias) * 1e12 * pA, Cm=float(lif.tau[unit] / lif.r[unit]) * 1e12 * pF,
                                           gl=float(1 / lif.r[unit]) * 1e9 * nS, EL=float(lif.v_leak[unit]) * 1e3 * mV,
                                           v_th=float(lif.v_threshold[unit]) * 1e3 * mV, v_reset=0 * mV,
                                           tau_ref=0 * ms) / Hz)
        assert rates[unit] == pytest.approx(expected, rel=0.01, abs=1 / T), unit
    assert np.any(rates > 0) and np.any(rates == 0)  # the biases put units on both sides of threshold


def _maxpool_net():
    """conv -> ReLU -> max pooling (a gate) -> flatten -> linear: value reset, so the gate is all NIR lacks."""
    return bioconv.convert(networks.graph("small_convnet"), np.random.default_rng(0).random((10, 1, 8, 8)),
                           reset="value")


@pytest.mark.slow
def test_a_max_pool_gate_is_named_exported_as_pooling_and_restored(tmp_path):
    """NIR has no max pooling: the gate travels as an AvgPool2d of its windows, warned about by name
    and recorded in its metadata, and bioconv's import restores the gate: the same spikes."""
    snn = _maxpool_net()
    gate = next(p for p in snn.mapped.populations if p.kind == "maxpool")
    with pytest.warns(NIRExportWarning, match=f"population '{gate.name}': max-pool gate over 2x2 windows") as record:
        graph = to_nir(snn)
    assert len(record) == 1  # the gate is the only thing NIR cannot carry here
    node = graph.nodes[gate.name]
    assert type(node).__name__ == "AvgPool2d" and list(node.kernel_size) == [2, 2] and list(node.stride) == [2, 2]
    assert node.metadata["bioconv.kind"] == "maxpool" and "max-pool gate" in node.metadata["bioconv.not_carried"]
    nir.write(tmp_path / "net.nir", graph)
    back = from_nir(tmp_path / "net.nir")
    restored = back.mapped.population(gate.name)
    assert restored.kind == "maxpool" and np.array_equal(restored.pool_groups, gate.pool_groups)
    x = np.random.default_rng(1).random((4, 1, 8, 8))
    a, b = _run(snn, x), _run(back, x)
    assert a.counts[gate.name].sum() > 0
    _same_spikes(a, b)
    # without the metadata the pooling node is an average pooling: a different network, not a gate
    node.metadata = {}
    assert all(p.kind != "maxpool" for p in from_nir(graph).mapped.populations)


def test_what_nir_cannot_carry_is_refused_when_strict():
    snn = _conv_net(tau_ref=0.5 * ms)
    with pytest.raises(NIRExportError, match=r"strict=True\): population '1': refractory period"):
        to_nir(snn, strict=True)
    with pytest.raises(NIRExportError, match=r"population '1' has units without leak: \d+ of 72 have gl = 0") as err:
        to_nir(_conv_net(bias="leak"))
    assert "tau = r = infinity" in str(err.value) and "bias='current' or 'neuron'" in str(err.value)
    with pytest.raises(NIRExportError, match="leak-free membrane behind the exponential kernel"):
        to_nir(_conv_net(synapse="exponential"))
    with pytest.raises(NIRExportError, match=r"strict=True\): population '2': max-pool gate over 2x2 windows"):
        to_nir(_maxpool_net(), strict=True)


@pytest.mark.parametrize("name, params, said, unsaid", [
    ("ttfs", {}, ["fires once and keeps its potential", "step-current synapse", "the dynamic threshold"], []),
    ("ttfs", {"dynamic_threshold": False}, ["fires once", "step-current synapse"], ["dynamic threshold"]),
    ("css", {}, ["discrete-step amplification", "bias added only during", "silent period Ts", "ternary spikes"], []),
    ("css", {"ternary": False}, ["discrete-step amplification", "silent period Ts"], ["ternary spikes"]),
])
def test_temporal_schemes_are_refused_by_name_with_what_nir_cannot_express(name, params, said, unsaid):
    from bioconv.coding import schemes
    graph, x = schemes[name]().example()
    snn = bioconv.convert(graph, x if schemes[name].needs_calibration else None, coding=name, **params)
    with pytest.raises(NIRExportError, match=f"a network of coding '{name}' cannot be exported to NIR") as err:
        to_nir(snn)
    for text in said:
        assert text in str(err.value)
    for text in unsaid:
        assert text not in str(err.value)


def test_the_dt_hint_is_a_time_checked_at_the_door():
    from bioconv.errors import ParameterError
    snn = _conv_net(reset="value")
    for bad, match in [(0.1, "unit-less value 0.1"), (5 * mV, r"needs units of second.*5\. \* mvolt"),
                       (-1 * ms, "positive"), (np.array([1, 2]) * ms, "one time step")]:
        with pytest.raises(ParameterError, match=f"to_nir: parameter 'dt' .*{match}"):
            to_nir(snn, dt=bad)
    assert to_nir(snn, dt=0.1 * ms).metadata["bioconv.dt_s"] == pytest.approx(1e-4)


def test_a_network_from_nir_is_coded_with_the_parameters_its_mapping_holds():
    """Cm, v_th and tau_ref read from the imported populations, not rate coding's defaults."""
    snn = _conv_net(reset="value", Cm=200 * pF, v_th=15 * mV)
    back = from_nir(to_nir(snn))
    assert float(back.coding["Cm"]) == pytest.approx(200e-12) and float(back.coding["v_th"]) == pytest.approx(15e-3)
    assert back.coding["reset"] == "value" and back.coding["rate_max"] == snn.coding["rate_max"]


def test_nir_nodes_bioconv_cannot_simulate_are_named():
    graph = _affine_lif_graph()
    graph.nodes["delay"] = nir.Delay(delay=np.full(3, 1e-3))
    graph.edges = [("input", "affine"), ("affine", "delay"), ("delay", "lif"), ("lif", "output")]
    with pytest.raises(NIRImportError, match="node 'delay' is a NIR Delay, which bioconv cannot simulate"):
        from_nir(graph)
    loop = _affine_lif_graph()
    loop.edges.append(("lif", "affine"))
    with pytest.raises(NIRImportError, match="recurrent"):
        from_nir(loop)


if __name__ == "__main__":  # writes the committed NIR file
    nir.write(LIF_FILE, _affine_lif_graph())
    print(LIF_FILE)


def test_without_nir_both_directions_name_the_extra(monkeypatch):
    from bioconv.optional import MissingDependencyError
    snn = _conv_net(reset="value")
    graph = to_nir(snn)
    monkeypatch.setitem(sys.modules, "nir", None)  # an import of nir now fails
    with pytest.raises(MissingDependencyError, match=r"bioconv.io.to_nir needs nir.*bioconv\[nir\]"):
        to_nir(snn)
    with pytest.raises(MissingDependencyError, match=r"bioconv.io.from_nir needs nir.*bioconv\[nir\]"):
        from_nir(graph)
