"""Rate coding's ``homeostasis`` option: seed 001's homeostatic threshold (FORMULAS §9) on every
converted membrane, from the model library's ``conductance_lif`` option ``homeostatic``.

A single converted neuron driven above its target rate follows §9 to rounding (the rate trace, the
threshold offset, the spike condition ``v >= v_th + theta``) and its rate moves to r_target; the
target rates default to each neuron's mean calibration target rate; the adaptive state is reset
between presentations on the compiled device and the runtime device gives the same spikes; with the
option off the conversion is the plain one, and with zero gain the spikes are the plain ones; bad
settings are refused by name. No torch needed (both lanes)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from brian2 import Hz, Network, StateMonitor, mV, ms, pF, second

import networks
from bioconv import coding
from bioconv import graph as G
from bioconv.coding import RateCoding
from bioconv.converter import convert
from bioconv.errors import ParameterError
from bioconv.simulate import network, simulation_device
from bioconv.simulate.runner import CompiledNetwork

DT = 0.1 * ms


def _single_neuron(**homeostasis):
    """One input unit onto one output neuron, weight 1: input 1 drives it at rate_max (200 Hz)."""
    g = G.sequential((1,), [("linear", {"weight": np.ones((1, 1)), "bias": np.zeros(1)})])
    return convert(g, np.ones((4, 1)), homeostasis=homeostasis or None)


def _run_single(snn, duration, value=1.0):
    """The output neuron under the current encoder (a constant drive of value x 200 Hz's charge): its
    spike steps and, recorded after each step's integration and before its threshold test, v, r, theta."""
    x = snn.coding.encode(snn, np.full((1, 1), value))
    out_name = snn.mapped.populations[-1].name
    with simulation_device("runtime", dt=DT):
        built = network.build(snn.mapped, x, encoder="current")
        out = built.groups[out_name]
        variables = ["v", "r", "theta"] if "r" in out.variables else ["v"]
        mon = StateMonitor(out, variables, record=0, when="thresholds", order=-1)
        Network(*built.objects, mon).run(duration)
        steps = np.rint(np.asarray(built.spikes[out_name].t) / float(DT)).astype(int)
        return steps, {v: np.asarray(getattr(mon, v)[0]) for v in variables}


def test_a_neuron_driven_above_its_target_follows_formulas_section_9_and_moves_to_r_target():
    tau_r, tau_theta, r_target = 20 * ms, 50 * ms, 50 * Hz
    snn = _single_neuron(tau_r=tau_r, tau_theta=tau_theta, r_target=r_target)
    params = snn.mapped.populations[-1].params
    assert snn.mapped.populations[-1].options == ("homeostatic",)
    k_theta = float(params["k_theta"])
    assert k_theta == pytest.approx(20e-3 / 200)  # the default: v_th / rate_max
    T = 1 * second
    plain_steps, _ = _run_single(_single_neuron(), T)
    steps, s = _run_single(snn, T)
    n = len(s["v"])
    k = np.arange(n)
    spike = np.zeros(n, bool)
    spike[steps] = True
    # The rate trace: r += 1/tau_r at each spike, then tau_r dr/dt = -r. Recorded at step k after that
    # step's integration, a spike of step j < k has decayed over k - j steps.
    lag = (k[:, None] - steps[None, :]) * float(DT)
    before = lag > 0
    r = (np.exp(-lag / float(tau_r)) * before).sum(1) / float(tau_r)
    np.testing.assert_allclose(s["r"], r, rtol=1e-9, atol=1e-9)
    # The threshold offset: tau_theta dtheta/dt = k_theta (r - r_target), integrated over k + 1 steps.
    integral_r = ((1 - np.exp(-lag / float(tau_r))) * before).sum(1)
    theta = k_theta / float(tau_theta) * (integral_r - float(r_target) * (k + 1) * float(DT))
    np.testing.assert_allclose(s["theta"], theta, rtol=0, atol=1e-12)
    # The neuron fires exactly when v reaches the adapted threshold v_th + theta.
    np.testing.assert_array_equal(spike, s["v"] >= 20e-3 + s["theta"])
    # Driven at 200 Hz (the plain neuron's rate), above its target: the threshold rises and the rate
    # moves towards r_target = 50 Hz; at equilibrium theta = v_th (200 Hz / r_target - 1) = 60 mV.
    assert len(plain_steps) == 200
    assert np.all(np.diff(s["theta"][steps[steps > 100]]) > -1e-3)  # rising, but for the trace's ripple
    late = np.sum(steps >= 0.8 * n) / (0.2 * float(T))
    assert abs(late - 50) < 0.1 * (200 - 50), late
    assert 0.7 * 60e-3 < s["theta"][-1] < 60e-3


def test_a_silent_neuron_lowers_its_threshold_linearly():
    snn = _single_neuron(tau_theta=100 * ms, r_target=30 * Hz)
    x = np.zeros((1, 1))
    with simulation_device("runtime", dt=DT):
        built = network.build(snn.mapped, snn.coding.encode(snn, x), encoder="current")
        mon = StateMonitor(built.groups["0"], "theta", record=0)
        Network(*built.objects, mon).run(20 * ms)
        theta, t = np.asarray(mon.theta[0]), np.asarray(mon.t)
    np.testing.assert_allclose(theta, -1e-4 * 30 * t / 0.1, rtol=1e-9, atol=1e-15)


@pytest.mark.parametrize("vt_floor", [0.1, 0.25])
def test_a_neuron_below_its_target_lowers_its_threshold_only_down_to_the_floor(vt_floor):
    # Driven at 10 Hz's charge (input 0.05) with r_target = 200 Hz, the neuron never reaches its
    # target: theta falls until the threshold reaches v_reset + vt_floor (v_th - v_reset) and stays
    # there. Without the floor it falls through v_reset (0 mV) and the neuron fires every step.
    tau_theta = 20 * ms
    snn = _single_neuron(tau_r=20 * ms, tau_theta=tau_theta, r_target=200 * Hz, vt_floor=vt_floor)
    params = snn.mapped.populations[-1].params
    assert float(params["vt_floor"]) == vt_floor
    v_th, v_reset = float(params["v_th"]), float(params["v_reset"])
    theta_min = -(1 - vt_floor) * (v_th - v_reset)
    T = 400 * ms
    plain_steps, _ = _run_single(_single_neuron(), T, 0.05)
    steps, s = _run_single(snn, T, 0.05)
    n = len(s["theta"])
    # theta stops at the floor: below it by at most the one integration step that crosses it
    step_change = float(params["k_theta"]) * 200 * float(DT) / float(tau_theta)
    assert s["theta"].min() >= theta_min - step_change
    assert s["theta"][-1] == pytest.approx(theta_min, abs=step_change)
    # and the spike condition uses the floored threshold
    spike = np.zeros(n, bool)
    spike[steps] = True
    np.testing.assert_array_equal(spike, s["v"] >= v_th + np.maximum(s["theta"], theta_min))
    # At the floor the leak-free membrane fires 1/vt_floor times its plain rate (10 Hz), not every
    # step: its interspike interval is vt_floor times the plain one (100 ms).
    plain_isi = np.diff(plain_steps).mean() * float(DT)
    assert plain_isi == pytest.approx(0.1, rel=0.01)
    late_isi = np.diff(steps[steps >= n // 2]).mean() * float(DT)
    assert late_isi == pytest.approx(vt_floor * plain_isi, rel=0.02), late_isi


def test_a_silent_neuron_at_the_floor_stays_silent():
    # No input and r_target = 200 Hz: theta falls to the floor (2 mV above reset, where the membrane
    # rests), so the neuron never fires; a threshold at or below v_reset would fire it every step.
    snn = _single_neuron(tau_theta=10 * ms, r_target=200 * Hz)
    steps, s = _run_single(snn, 100 * ms, 0.0)
    assert len(steps) == 0
    assert s["theta"][-1] == pytest.approx(-0.9 * 20e-3, abs=1e-4 * 200 * 0.1 / 10)


def test_r_target_defaults_to_each_neurons_mean_calibration_target_rate():
    graph, x = RateCoding().example()
    snn = convert(graph, x, homeostasis=True)
    plain = convert(graph, x)
    targets = plain.coding.targets(plain, x)
    for p, q in zip(snn.mapped.populations[1:], plain.mapped.populations[1:]):
        assert p.options == ("homeostatic",) and q.options == ()
        assert p.neuron == "conductance_lif" and q.neuron == "perfect_integrator"
        np.testing.assert_allclose(np.asarray(p.params["r_target"]), targets[p.name].mean(0), rtol=1e-12)
        assert float(p.params["gl"]) == 0 and float(p.params["EL"]) == float(q.params["v_reset"])
        for name, value in q.params.items():  # the mapped membrane itself is unchanged
            np.testing.assert_array_equal(np.asarray(p.params[name]), np.asarray(value), err_msg=name)
    assert convert(graph, x, homeostasis="on").table() == snn.table()  # the command line's word for True
    # a fixed target, and the defaults recorded as plain data
    fixed = convert(graph, x, homeostasis={"r_target": 20 * Hz, "tau_theta": 0.5 * second})
    assert all(float(p.params["r_target"]) == 20 for p in fixed.mapped.populations[1:])
    h = json.loads(json.dumps(snn.coding.params()))["homeostasis"]
    assert h["r_target"] == "calibration" and h["tau_r"] == {"value": 0.02, "unit": "second"}
    assert coding.from_params("rate", snn.coding.params()) == snn.coding


def test_the_potential_readout_keeps_its_output_as_it_is():
    graph, x = RateCoding().example()
    snn = convert(graph, x, homeostasis=True, readout="potential")
    assert [p.options for p in snn.mapped.populations[1:]] == [("homeostatic",), ()]


def test_off_is_the_plain_conversion():
    graph, x = RateCoding().example()
    plain = convert(graph, x)
    for off in (None, False, "off"):
        snn = convert(graph, x, homeostasis=off)
        assert snn.table() == plain.table() and snn.coding == plain.coding
        assert all(p.options == () for p in snn.mapped.populations)


def test_zero_gain_gives_the_plain_spikes():
    # k_theta = 0: theta stays 0, and the leak-free conductance_lif (gl = 0) is the perfect integrator.
    graph, x = RateCoding().example()
    y = np.zeros(len(x), int)
    plain = convert(graph, x).evaluate(x, y, duration=60 * ms, device="runtime", progress=False)
    zero = convert(graph, x, homeostasis={"k_theta": 0 * mV * second}).evaluate(
        x, y, duration=60 * ms, device="runtime", progress=False)
    np.testing.assert_array_equal(zero.predictions, plain.predictions)
    for name in plain.layer_correlation:
        assert zero.layer_correlation[name] == plain.layer_correlation[name], name
    on = convert(graph, x, homeostasis=True).evaluate(x, y, duration=60 * ms, device="runtime", progress=False)
    assert on.layer_correlation != plain.layer_correlation


@pytest.mark.slow  # a cpp build and a runtime simulation
def test_the_adaptive_state_is_reset_between_presentations_and_both_devices_agree():
    calibration = np.random.default_rng(3).random((40, 1, 8, 8))
    snn = convert(networks.graph("small_convnet"), calibration, homeostasis={"tau_theta": 20 * ms})
    rates = snn.coding.encode(snn, np.random.default_rng(4).random((2, 1, 8, 8)))
    seq = rates[[0, 1, 0]]
    duration = 40 * ms
    with CompiledNetwork(snn.mapped, 1, duration=duration, dt=DT, device="cpp", threads=1, presentations=3) as net:
        got = net.run(seq)
    with CompiledNetwork(snn.mapped, 3, duration=duration, dt=DT, device="runtime") as net:
        ref = net.run(seq)  # three copies side by side, each from the initial state
    # the third presentation repeats the first: the same spikes, so r and theta started from rest
    for name, c in got.counts.items():
        np.testing.assert_array_equal(c[0], c[2], err_msg=name)
        np.testing.assert_array_equal(c, ref.counts[name], err_msg=name)
    assert any(not np.array_equal(c[0], c[1]) for c in got.counts.values())
    for f in ("out_sample", "out_unit", "out_t"):  # copies side by side interleave their spikes: sorted
        a, b = (np.lexsort((o.out_t, o.out_unit, o.out_sample)) for o in (got, ref))
        np.testing.assert_array_equal(getattr(got, f)[a], getattr(ref, f)[b], err_msg=f)
    # and the adaptation acts here: the plain network's spikes differ
    plain = convert(networks.graph("small_convnet"), calibration)
    with CompiledNetwork(plain.mapped, 3, duration=duration, dt=DT, device="runtime") as net:
        base = net.run(seq)
    assert any(not np.array_equal(base.counts[n], c) for n, c in got.counts.items())


def test_a_saved_homeostatic_network_loads_with_its_option(tmp_path):
    graph, x = RateCoding().example()
    snn = convert(graph, x, homeostasis={"r_target": 25 * Hz})
    path = snn.save(tmp_path / "h.bioconv")
    from bioconv.io.network_file import load
    back = load(path)
    assert back.table() == snn.table() and back.coding == snn.coding
    assert [p.options for p in back.mapped.populations] == [p.options for p in snn.mapped.populations]


def test_nir_export_refuses_the_homeostatic_threshold():
    pytest.importorskip("nir")
    from bioconv.io import NIRExportError, to_nir
    graph, x = RateCoding().example()
    with pytest.raises(NIRExportError, match="homeostatic"):
        to_nir(convert(graph, x, homeostasis=True))


@pytest.mark.parametrize("value, match", [
    ("yes", r"homeostasis must be None, True \('off', 'on'\) or a dict"),
    (1, r"homeostasis must be None, True"),
    ({"tau_m": 5 * ms}, r"homeostasis: unknown setting\(s\) \['tau_m'\]"),
    ({"tau_r": 20}, r"homeostasis\['tau_r'\].*needs units"),
    ({"tau_theta": 0 * ms}, r"homeostasis\['tau_theta'\].*positive"),
    ({"k_theta": 1 * mV}, r"homeostasis\['k_theta'\].*needs units"),
    ({"k_theta": -1 * mV * second}, r"homeostasis\['k_theta'\].*negative"),
    ({"r_target": "mean"}, r"homeostasis\['r_target'\] must be 'calibration' or a rate"),
    ({"r_target": -5 * Hz}, r"homeostasis\['r_target'\].*negative"),
    ({"r_target": [5, 6] * Hz}, r"homeostasis\['r_target'\] must be one value"),
    ({"vt_floor": 0}, r"homeostasis\['vt_floor'\].*positive"),
    ({"vt_floor": 1.0}, r"homeostasis\['vt_floor'\] must lie in \(0, 1\)"),
    ({"vt_floor": 0.1 * mV}, r"homeostasis\['vt_floor'\].*dimensionless"),
])
def test_bad_settings_are_refused_by_name(value, match):
    graph, x = RateCoding().example()
    with pytest.raises(ParameterError, match=match):
        convert(graph, x, homeostasis=value)


@pytest.mark.parametrize("name, value, why", [
    ("v_th", 25 * mV, "moves the threshold itself"),
    ("rate_max", 150 * Hz, "r_target .* derived from rate_max"),
])
def test_sweeping_v_th_or_rate_max_of_a_homeostatic_network_is_refused(name, value, why):
    from bioconv.simulate.sweepable import check_point
    graph, x = RateCoding().example()
    snn = convert(graph, x, homeostasis=True)
    plain = convert(graph, x)
    check_point(plain.mapped, {name: value})  # the plain network sweeps it
    check_point(snn.mapped, {"Cm": 150 * pF})  # and the homeostatic one sweeps the others
    pops = [p.name for p in snn.mapped.populations[1:]]
    assert pops and all(p.options == ("homeostatic",) for p in snn.mapped.populations[1:])
    match = (rf"parameter '{name}' cannot be swept on a network with the homeostatic threshold "
             rf"\(population\(s\) \[{', '.join(repr(p) for p in pops)}\]\): .*{why}")
    with pytest.raises(ParameterError, match=match):
        check_point(snn.mapped, {name: value})
    with pytest.raises(ParameterError, match=match):  # a point without it, on a build that sweeps it
        check_point(snn.mapped, {"Cm": 150 * pF}, ("Cm", name))
    with pytest.raises(ParameterError, match="CompiledNetwork: " + match):  # before any compile
        CompiledNetwork(snn.mapped, 1, duration=10 * ms, dt=DT, device="runtime", sweepable=(name,))
    with pytest.raises(ParameterError, match="build: " + match):
        with simulation_device("runtime", dt=DT):
            network.build(snn.mapped, snn.coding.encode(snn, x[:1]), encoder="current", sweepable=(name,),
                          period=10 * ms)
