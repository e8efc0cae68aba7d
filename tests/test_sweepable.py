"""Sweepable parameters (`bioconv.simulate.sweepable`): a compiled project takes parameter points per
run and per copy. Each point's spikes equal those of a fresh build with its values; a sweepable build
without overrides equals the specialized build; points packed as copies equal separate runs; bad
points name the culprit. Small numpy networks (tests/networks.py), so both Brian2 pins run them."""
from __future__ import annotations

import numpy as np
import pytest
from brian2 import Hz, mV, ms, nS, pF

import networks
from bioconv.converter import convert
from bioconv.errors import ParameterError
from bioconv.simulate import sweepable as sw
from bioconv.simulate.runner import CompiledNetwork

T = 30 * ms
DT = 0.1 * ms
ALL = tuple(sorted(sw.SWEEPABLE))
# one value per parameter, away from the mapping's (tau_ref from 0 to > 0)
CHANGED = {"Cm": 140 * pF, "gl": 3 * nS, "gl_scale": 0.5, "tau_ref": 1.5 * ms, "v_th": 24 * mV, "v_reset": -3 * mV,
           "EL": -2 * mV, "tau_s": 3 * ms, "rate_max": 150 * Hz, "bias_scale": 0.4}


@pytest.fixture(scope="module")
def data():
    model = networks.graph("small_convnet")  # conv, max-pool gate, avg-pool, linear with biases
    x = np.random.default_rng(3).random((4, 1, 8, 8))
    return model, x


def _rates(snn, x):
    return snn.target_rates(x)[snn.mapped.populations[0].name]


def _fresh(net, x_rates, names, encoder="regular"):
    """A build of ``net`` with its own values (runtime: Brian2 objects built from them, nothing reused)."""
    with CompiledNetwork(net, len(x_rates), duration=T, dt=DT, device="runtime", encoder=encoder,
                         sweepable=names) as c:
        return c.run(x_rates).counts


def _assert_same(got, want, what):
    assert got.keys() == want.keys()
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=f"{what}: population {name}")


def test_table_declares_unit_meaning_held_and_range():
    assert set(sw.SWEEPABLE) >= {"Cm", "gl", "tau_ref", "v_th", "v_reset", "EL", "tau_s", "rate_max", "bias_scale"}
    for name, spec in sw.SWEEPABLE.items():
        assert spec.name == name and spec.meaning and spec.held and spec.valid_range


@pytest.mark.slow  # builds and runs networks (a compile or several runtime builds)
def test_each_parameter_overridden_per_copy_equals_a_fresh_build(data):
    """One compiled project, one copy per parameter: copy b runs the mapping with parameter b changed.
    Each copy's spikes equal a fresh build of the network at that point (every name sweepable)."""
    model, x = data
    snn = convert(model, x, bias="leak", synapse="exponential")
    net = snn.mapped
    base = sw.mapped_values(net)
    assert set(base) == set(ALL)
    points = [base | {name: CHANGED[name]} for name in ALL] + [base]  # the last copy: the mapping itself
    params = {n: np.array([float(p[n]) for p in points]) * sw.SWEEPABLE[n].unit for n in ALL}
    x1 = np.repeat(_rates(snn, x[:1]), len(points), axis=0)  # the same digit on every copy
    with CompiledNetwork(net, len(points), duration=T, dt=DT, device="cpp", threads=1, sweepable=ALL) as c:
        packed = c.run(x1, params=params).counts
    for b, (name, point) in enumerate(zip(ALL + ("mapping",), points)):
        fresh = _fresh(sw.apply_point(net, point, ALL), x1[:1], ALL)
        _assert_same({k: v[b:b + 1] for k, v in packed.items()}, fresh, f"{name} = {point.get(name)}")
    # every point moved the spikes away from the mapping's (copies that ignored their values would not)
    unmoved = [n for b, n in enumerate(ALL) if all(np.array_equal(v[b], v[-1]) for v in packed.values())]
    assert not unmoved


@pytest.mark.slow  # builds and runs networks (a compile or several runtime builds)
def test_sweepable_build_without_overrides_equals_specialized_build(data):
    """Every name sweepable (one conductance_lif model integrated with RK4, refractoriness kept,
    nothing shared) and no point given: the spikes of today's specialized build."""
    model, x = data
    rates = _rates(convert(model, x, bias="current"), x)
    for bias, synapse in (("current", "delta"), ("neuron", "delta"), ("leak", "exponential")):
        net = convert(model, x, bias=bias, synapse=synapse).mapped
        names = tuple(n for n in ALL if n in sw.mapped_values(net))
        _assert_same(_fresh(net, rates, names), _fresh(net, rates, ()), f"bias={bias}, synapse={synapse}")


# The packed-copies test and the evaluate_points test share one compiled project (the cache):
# the neuron bias strategy (a bias source per copy when rate_max is swept), 2 copies x 2 presentations.
PACKED = ("Cm", "bias_scale", "rate_max", "tau_ref")


@pytest.mark.slow  # builds and runs networks (a compile or several runtime builds)
def test_two_points_as_two_copies_equal_two_separate_runs(data):
    """Two points packed as two copies (x 2 presentations) equal each point run on every copy."""
    model, x = data
    snn = convert(model, x, bias="neuron")
    names = PACKED
    p = [{"Cm": 120 * pF, "bias_scale": 0.5, "rate_max": 180 * Hz, "tau_ref": 0 * ms},
         {"Cm": 90 * pF, "bias_scale": 1.5, "rate_max": 220 * Hz, "tau_ref": 2 * ms}]
    rates = _rates(snn, x)  # 4 samples: copy b holds samples b and b + 2
    with CompiledNetwork(snn.mapped, 2, duration=T, dt=DT, device="cpp", threads=1, presentations=2,
                         sweepable=names, record_output_every=T / 20) as c:
        packed = c.run(rates, params={n: np.array([float(p[0][n]), float(p[1][n])]) * sw.SWEEPABLE[n].unit
                                      for n in names}).counts
        separate = [c.run(rates, params=pt).counts for pt in p]
    for b in range(2):
        _assert_same({k: v[b::2] for k, v in packed.items()}, {k: v[b::2] for k, v in separate[b].items()},
                     f"point {b}")
    assert any(not np.array_equal(separate[0][k], separate[1][k]) for k in packed)


@pytest.mark.slow  # builds and runs networks (a compile or several runtime builds)
def test_current_encoder_takes_each_copys_biases(data):
    """The current encoder carries the first layer's bias in its input currents: per copy, per point."""
    model, x = data
    snn = convert(model, x, bias="current")
    rates = _rates(snn, x[:2])
    with CompiledNetwork(snn.mapped, 2, duration=T, dt=DT, device="runtime", encoder="current",
                         sweepable=("bias_scale",)) as c:
        got = c.run(rates, params={"bias_scale": np.array([0.0, 2.0])}).counts
    for b, s in enumerate((0.0, 2.0)):
        want = _fresh(sw.apply_point(snn.mapped, {"bias_scale": s}), rates[b:b + 1], ("bias_scale",), "current")
        _assert_same({k: v[b:b + 1] for k, v in got.items()}, want, f"bias_scale {s}")


def test_mapping_parameters_mean_what_a_fresh_conversion_means(data):
    """tau_ref, rate_max and tau_s at a fixed mapping are what `convert` makes of them (the charges
    held); Cm and v_th hold the charges, where `convert` would remap them."""
    model, x = data
    kw = dict(bias="leak", synapse="exponential")
    net = convert(model, x, **kw).mapped
    for name, value in (("tau_ref", 2 * ms), ("rate_max", 150 * Hz), ("tau_s", 3 * ms)):
        got = sw.apply_point(net, {name: value})
        want = convert(model, x, **kw, **{name: value}).mapped
        for a, b in zip(got.populations, want.populations):
            for k in b.params:
                np.testing.assert_allclose(np.asarray(a.params[k]), np.asarray(b.params[k]), rtol=1e-12,
                                           err_msg=f"{name}: {a.name}.{k}")
            for qa, qb in zip(a.projections, b.projections):
                np.testing.assert_allclose(np.asarray(qa.w), np.asarray(qb.w), rtol=1e-12, err_msg=f"{name}: w")
    held = sw.apply_point(net, {"Cm": 200 * pF})
    for a, b in zip(held.populations, net.populations):
        for qa, qb in zip(a.projections, b.projections):
            np.testing.assert_array_equal(np.asarray(qa.w), np.asarray(qb.w))


@pytest.mark.parametrize("point, message", [
    ({"Cn": 100 * pF}, "unknown sweepable parameter"),
    ({"Cm": 100}, "'Cm' needs units"),
    ({"Cm": 100 * mV}, "'Cm' needs units"),
    ({"gl": -1 * nS}, "'gl' = .* out of range"),
    ({"bias_scale": -0.5}, "'bias_scale' = .* out of range"),
    ({"tau_ref": 5 * ms}, "rate_max x tau_ref >= 1"),
    ({"rate_max": 400 * Hz, "tau_ref": 2.5 * ms}, "rate_max x tau_ref >= 1"),
    ({"v_reset": 30 * mV}, "v_th must lie above v_reset"),
    ({"tau_s": 2 * ms}, "'tau_s' needs exponential or alpha synapses"),
    ({"gl_scale": 2.0}, "'gl_scale' scales the leak of a network with bias='leak'"),
    ({"Cm": np.array([1, 2]) * pF, "v_th": np.array([20, 21, 22]) * mV}, "same length"),
])
def test_bad_points_name_the_culprit(data, point, message):
    model, x = data
    net = convert(model, x, bias="current").mapped  # delta synapses, rate_max 200 Hz
    with pytest.raises(ParameterError, match=message):
        sw.check_point(net, point)


def test_points_the_build_cannot_take_are_refused(data):
    model, x = data
    net = convert(model, x, bias="current").mapped
    with pytest.raises(ParameterError, match=r"\['Cm'\] were not built sweepable"):
        sw.check_point(net, {"Cm": 50 * pF}, sweepable=("gl",))
    # tau_m = tau_s where a population is integrated exactly (leaky everywhere, gl not swept)
    leaky = convert(model, x, bias="leak", synapse="exponential").mapped
    pop = sw.membranes(leaky)[0]
    pop.params["gl"] = np.full(pop.size, 10.0) * nS  # every unit leaky: exact integration
    assert pop.name in sw.exact_populations(leaky, ("Cm",))
    with pytest.raises(ParameterError, match=f"tau_m = Cm/gl equals tau_s in population '{pop.name}'"):
        sw.check_point(leaky, {"Cm": 50 * pF})  # 50 pF / 10 nS = 5 ms = tau_s
    sw.check_point(leaky, {"Cm": 50 * pF}, sweepable=("Cm", "gl"))  # gl swept: RK4, no division


@pytest.mark.slow  # builds and runs networks (a compile or several runtime builds)
def test_evaluate_points_equals_evaluate_at_each_point(data):
    """Points x samples spread over copies and presentations of one project give, per point, what
    `SNN.evaluate` gives for the network at that point (its own specialized build)."""
    model, x = data
    snn = convert(model, x, bias="neuron")
    y = np.array([0, 1, 2, 1])
    points = [{"Cm": 80 * pF, "tau_ref": 0 * ms, "bias_scale": 0.0}, {"Cm": 130 * pF, "tau_ref": 1 * ms, "bias_scale": 2.0},
              {"tau_ref": 3 * ms, "rate_max": 150 * Hz}]
    rows = sw.evaluate_points(snn, x, y, points, duration=T, dt=DT, device="cpp", batch=2, presentations=2,
                              threads=1, sweepable=PACKED)
    assert [r["point_index"] for r in rows] == [0, 1, 2]
    assert rows[0]["call_runs"] == 3  # 3 points x 2 chunks of 2 samples = 6 tasks, 2 copies per run
    for pt, row in zip(points, rows):
        alone = type(snn)(snn.graph, snn.populations, sw.apply_point(snn.mapped, pt, PACKED), snn._calibration_acts)
        ref = alone.evaluate(x, y, duration=T, dt=DT, device="runtime", batch=4, progress=False)
        for key in ("accuracy", "agreement", "synaptic_events", "undecided_fraction", "min_layer_correlation"):
            assert row[key] == pytest.approx(ref.summary()[key], abs=1e-12), (pt, key)
        assert all(row[n] == pytest.approx(float(v)) for n, v in pt.items())
    assert len({r["synaptic_events"] for r in rows}) == 3  # the points differ


@pytest.mark.slow  # compiles a project
def test_points_per_run_sizes_the_copies_and_every_task_of_a_size_shares_the_project(data, tmp_path, monkeypatch):
    """A sweep's tasks pass their shape's task size: a run then holds size x chunks copies (not the
    next power of two), a shorter task pads to that size and hits the same compiled project, and a
    point's values do not change with the task it is in."""
    monkeypatch.setenv("BIOCONV_PROJECT_CACHE_DIR", str(tmp_path))
    model, x = data
    snn = convert(model, x, bias="neuron")
    y = np.array([0, 1, 2, 1])
    points = [{"Cm": 80 * pF}, {"Cm": 130 * pF, "tau_ref": 1 * ms}, {"tau_ref": 3 * ms}]
    kw = dict(duration=T, dt=DT, device="cpp", presentations=2, threads=1, sweepable=PACKED)
    whole = sw.evaluate_points(snn, x, y, points, points_per_run=3, **kw)
    assert whole[0]["batch"] == 6 and whole[0]["call_runs"] == 1  # 3 points x 2 chunks, one run, no padding
    short = sw.evaluate_points(snn, x, y, points[1:], points_per_run=3, **kw)
    assert short[0]["batch"] == 6 and short[0]["cache_hit"] == [True]
    for a, b in zip(whole[1:], short):
        for key in ("accuracy", "agreement", "synaptic_events", "min_layer_correlation"):
            assert a[key] == b[key], key
    with pytest.raises(ParameterError, match="points_per_run = 2 is below the 3 points"):
        sw.evaluate_points(snn, x, y, points, points_per_run=2, **kw)
    # a run holding 4 copies at most: the 6 copies run as 2 x 3, not 4 + 2 silent
    from bioconv import converter
    from bioconv.simulate.runner import network_size
    monkeypatch.setattr(converter, "SEQUENTIAL_NEURONS", 4 * network_size(snn.mapped)[0] + 1)
    capped = sw.evaluate_points(snn, x, y, points, points_per_run=3, **kw)
    assert capped[0]["batch"] == 3 and capped[0]["call_runs"] == 2
    for a, b in zip(whole, capped):
        for key in ("accuracy", "agreement", "synaptic_events", "min_layer_correlation"):
            assert a[key] == b[key], key


@pytest.mark.slow  # builds and runs networks (a compile or several runtime builds)
def test_runtime_device_takes_per_copy_points_too(data):
    """On the runtime device the point's values (weights included: tau_s remaps the kernel amplitude)
    are set on the rebuilt network before each run."""
    model, x = data
    snn = convert(model, x, bias="neuron", synapse="exponential")
    names = ("bias_scale", "tau_s")
    p = [{"tau_s": 3 * ms, "bias_scale": 0.5}, {"tau_s": 7 * ms, "bias_scale": 1.0}]
    rates = _rates(snn, x[:2])
    with CompiledNetwork(snn.mapped, 2, duration=T, dt=DT, device="runtime", sweepable=names) as c:
        got = c.run(rates, params={n: np.array([float(q[n]) for q in p]) * sw.SWEEPABLE[n].unit for n in names})
        again = c.run(rates).counts  # no point: the mapping's values come back
    for b, pt in enumerate(p):
        _assert_same({k: v[b:b + 1] for k, v in got.counts.items()},
                     _fresh(sw.apply_point(snn.mapped, pt, names), rates[b:b + 1], names), f"point {b}")
    _assert_same(again, _fresh(snn.mapped, rates, names), "no point")


def test_cache_key_holds_the_swept_names_not_their_values(data):
    """One project serves every point: the key of a sweepable build names what is swept, not the values."""
    from bioconv.simulate import cache, project
    model, x = data
    net = convert(model, x, bias="current").mapped
    names = ("Cm", "tau_ref")
    other = sw.apply_point(net, {"Cm": 150 * pF, "tau_ref": 1 * ms}, names)

    def key(n, swept):
        return cache.project_key(project.shape_parts(n, B=2, K=1, duration=T, dt=DT, encoder="regular", seed="per run",
                                                     record_output_every=None, float32=False, sweepable=swept))
    assert key(net, names) == key(other, names)
    assert key(net, names) != key(net, ("Cm",))
    assert key(net, ()) != key(other, ())  # the specialized build bakes them in


def test_leak_step_is_the_exact_membrane_step_for_every_gl():
    """A swept gl under delta synapses integrates the leaky membrane with one Euler step scaled by
    exprel(-gl dt / Cm): the exact solution at gl = 0 (a perfect integrator) and at gl > 0, per
    neuron; a membrane with other states is refused, naming them."""
    from brian2 import Network, defaultclock, pA
    from bioconv import models
    from bioconv.errors import ModelError
    from bioconv.simulate.devices import simulation_device
    gl, cm, i_bias, el, steps = np.array([0.0, 1.0, 7.5, 50.0]) * 1e-9, np.array([100, 100, 80, 50]) * 1e-12, 100e-12, -70e-3, 50
    with simulation_device("runtime", dt=DT):
        g = models.neuron_group(4, "conductance_lif", "delta", leak_step=True, gl=gl * nS / 1e-9, Cm=cm * pF / 1e-12,
                                I_bias=i_bias * pA / 1e-12, EL=el * 1e3 * mV, v_th=1000 * mV, tau_ref=1 * ms)
        x = -gl * float(DT) / cm
        factor = np.where(x == 0, 1.0, np.expm1(x) / np.where(x == 0, 1.0, x))
        np.testing.assert_allclose(np.asarray(g.leak_exprel), factor, rtol=1e-15)  # set at build already
        g.leak_exprel = 0.0  # ... and set again by the code a sweepable build runs when a presentation starts
        g.run_regularly(models.LEAK_STEP_CODE.format(dt=float(defaultclock.dt)), when="start")
        Network(g).run(steps * DT, namespace={})
        v = np.asarray(g.v)
    T = steps * float(DT)
    with np.errstate(divide="ignore", invalid="ignore"):
        exact = np.where(gl > 0, el + i_bias / gl * (1 - np.exp(-gl * T / cm)), el + i_bias * T / cm)
    # to 1e-13 V: RK4 misses the tau_m = 1 ms neuron by 6e-11 V at this dt
    np.testing.assert_allclose(v, exact, rtol=0, atol=1e-13)
    assert len(set(np.round(v, 9))) == 4  # the neurons differ
    with pytest.raises(ModelError, match=r"integrate \['I_syn', 'v'\]"):
        models.neuron_group(2, "conductance_lif", "exponential", leak_step=True)
    with pytest.raises(ModelError, match=r"\['r', 'theta', 'v'\]"):
        models.neuron_group(2, "conductance_lif", "delta", options=("homeostatic",), leak_step=True)
    # inputs that vary within a step (time, a parameter that code may change) are refused, named
    from brian2 import Equations
    from bioconv.models.build import _leak_step_equations
    lif = models.load("conductance_lif")
    params = "gl : siemens (constant)\nEL : volt (constant)\nCm : farad (constant)\n"
    timed = Equations("dv/dt = int(not_refractory) * (-gl*(v - EL) + I_bias*(1 + sin(2*pi*t/ms))) / Cm : volt\n"
                      + params + "I_bias : amp (constant)")
    with pytest.raises(ModelError, match=r"\['t'\] are not constant"):
        _leak_step_equations(timed, lif, None)
    with pytest.raises(ModelError, match=r"\['I_bias'\] are not constant"):
        _leak_step_equations(Equations("dv/dt = (-gl*(v - EL) + I_bias) / Cm : volt\n" + params + "I_bias : amp"),
                             lif, None)
    with pytest.raises(ModelError, match="slope -gl/Cm"):
        _leak_step_equations(Equations("dv/dt = (-2*gl*(v - EL)) / Cm : volt\n" + params), lif, None)
