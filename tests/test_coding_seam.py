"""The coding-scheme seam in use: `convert(..., coding=...)`, the scheme's parameters refused by name
under another scheme, unknown schemes and encoders named, `evaluate`'s defaults and ``steps``, what
is recorded, and rate coding through the seam giving the spikes of a network wired by hand as the
pre-seam code wired it. No torch needed (both lanes)."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
from brian2 import Hz, Network, NeuronGroup, Quantity, SpikeMonitor, amp, ms, second

from bioconv import coding, models
from bioconv.coding import CodingScheme, Param, RateCoding, encoders, schemes
from bioconv.converter import convert
from bioconv.errors import BioconvError, ParameterError
from bioconv.simulate import network, simulation_device
from bioconv.simulate.runner import CompiledNetwork


@pytest.fixture(scope="module")
def example():
    graph, x = RateCoding().example()
    return graph, x


class _Toy(CodingScheme):
    """A second scheme, registered only inside the tests that use it: a window length of its own."""

    name = "toy"
    PARAMETERS = {"toy_window": Param(1 * ms, dim=second.dim, positive=True)}
    encoders = ("regular",)
    default_encoder = "regular"
    metric_names = ("accuracy",)

    def map(self, graph, pops, calibration):
        raise AssertionError("a refused call must do no work")


@pytest.fixture
def toy():
    schemes.register("toy", _Toy)
    yield _Toy
    schemes.unregister("toy")


def test_rate_is_the_default_scheme_and_is_recorded(example):
    graph, x = example
    snn = convert(graph, x, rate_max=150 * Hz)
    same = convert(graph, x, coding="rate", rate_max=150 * Hz)
    assert snn.table() == same.table()
    assert snn.coding == same.coding == RateCoding(rate_max=150 * Hz)
    params = json.loads(json.dumps(snn.coding.params()))
    assert params["rate_max"] == {"value": 150.0, "unit": "hertz"} and params["bias"] == "current"
    assert coding.from_params("rate", params) == snn.coding
    assert float(snn.mapped.rate_max) == 150.0


def test_unknown_scheme_and_encoder_are_named(example):
    graph, x = example
    with pytest.raises(ParameterError, match=r"unknown coding scheme 'nope'; registered: .*'rate'"):
        convert(graph, x, coding="nope")
    snn = convert(graph, x)
    listed = "unknown encoder 'nope'; registered: " + ", ".join(repr(e) for e in sorted(encoders))
    assert "'regular'" in listed
    with pytest.raises(ParameterError, match=re.escape(listed)):
        snn.evaluate(x[:2], np.zeros(2, int), encoder="nope", device="runtime", progress=False)
    with pytest.raises(ParameterError, match=re.escape(listed)):
        CompiledNetwork(snn.mapped, 1, duration=5 * ms, dt=0.1 * ms, encoder="nope", device="runtime")
    with pytest.raises(ParameterError, match=re.escape(listed)):
        network.build(snn.mapped, np.zeros((1, 6)), encoder="nope")


def test_rate_parameters_are_refused_by_name_under_another_scheme(example, toy):
    graph, _ = example
    for name, value in (("rate_max", 100 * Hz), ("bias", "leak"), ("leak_rule", "table7")):
        with pytest.raises(ParameterError, match=f"'{name}' is a parameter of coding 'rate', not of coding 'toy'"):
            convert(graph, coding="toy", **{name: value})
    with pytest.raises(ParameterError, match="'toy_window' is a parameter of coding 'toy', not of coding 'rate'"):
        convert(graph, example[1], toy_window=2 * ms)
    with pytest.raises(ParameterError, match="toy_window"):  # the scheme validates its own parameters
        convert(graph, coding="toy", toy_window=2)
    with pytest.raises(ParameterError, match="'nonsense' is not a parameter of coding 'toy'"):
        convert(graph, coding="toy", nonsense=1)
    with pytest.raises(ParameterError, match="rate_max"):  # and rate coding its own
        convert(graph, example[1], rate_max=-5 * Hz)


class _OwnSimulation(_Toy):
    """A scheme that runs its own simulation (`CodingScheme.evaluate`), its steps counted in windows."""

    name = "own"
    simulates_itself = True

    def map(self, graph, pops, calibration):
        return None, None

    def evaluation_defaults(self):
        return dict(duration=2 * self["toy_window"], dt=0.1 * ms, encoder="regular")

    def timing(self, duration, dt, steps, where):
        return (self["toy_window"] * steps if steps else self.evaluation_defaults()["duration"]), dt or 0.1 * ms

    def evaluate(self, snn, x, y, **settings):
        return ("own", len(x), settings["duration"], settings["encoder"], settings["device"])


def test_a_synapse_without_a_charge_per_spike_is_refused_by_rate_coding_at_the_door(example):
    """The step kernel (TTFS's ReL-PSP synapse) has no charge per spike for the rate law: named before
    any normalization runs."""
    graph, x = example
    with pytest.raises(ParameterError, match=r"synapse='step_current' has kernel 'step'"):
        convert(graph, x, synapse="step_current")


def test_a_scheme_may_run_its_own_evaluation(example):
    graph, x = example
    schemes.register("own", _OwnSimulation)
    try:
        snn = convert(graph, coding="own", toy_window=3 * ms)
        assert snn.evaluate(x[:2], [0, 1]) == ("own", 2, 6 * ms, "regular", "cpp")
        assert snn.evaluate(x[:2], [0, 1], steps=5, device="runtime") == ("own", 2, 15 * ms, "regular", "runtime")
        with pytest.raises(ParameterError, match="takes the encoders"):
            snn.evaluate(x[:2], [0, 1], encoder="poisson")
    finally:
        schemes.unregister("own")


def test_a_registered_name_is_not_replaced_by_mistake():
    with pytest.raises(ParameterError, match="'rate' is already registered"):
        schemes.register("rate", _Toy)
    with pytest.raises(ParameterError, match="'regular' is already registered"):
        encoders.register("regular", encoders["poisson"])


def test_rate_inputs_must_be_nonnegative(example):
    graph, x = example
    with pytest.raises(BioconvError, match="negative values"):
        convert(graph, x - 1)
    with pytest.raises(BioconvError, match="calibration"):
        convert(graph)


def test_evaluate_steps_set_the_duration_for_rate_coding(example):
    graph, x = example
    snn = convert(graph, x)
    y = np.zeros(2, int)
    res = snn.evaluate(x[:2], y, steps=50, dt=0.2 * ms, device="runtime", progress=False, time_points=2)
    assert (res.duration, res.dt) == pytest.approx((0.01, 0.0002))
    with pytest.raises(ParameterError, match="duration or steps"):
        snn.evaluate(x[:2], y, steps=50, duration=10 * ms, device="runtime", progress=False)
    with pytest.raises(ParameterError, match="steps"):
        snn.evaluate(x[:2], y, steps=0, device="runtime", progress=False)


# --- rate coding through the seam, against the network wired by hand ----------------------------

T = 60 * ms
DT = 0.1 * ms


def _by_hand(net, rates, encoder):
    """The spikes of ``net`` for input rates (B, n_input), wired here without the encoder registry or
    `network.build`: the regular input as the pre-seam code's phase oscillator, the current input as
    a dense matrix product. Returns population -> (i, t) of every spike."""
    B = len(rates)
    inp = net.populations[0]
    groups, objects = {}, []
    if encoder == "regular":
        g = NeuronGroup(B * inp.size, "rate : Hz (constant)\ndphase/dt = rate : 1", threshold="phase >= 1",
                        reset="phase -= 1", method="euler")
        g.rate = rates.ravel() * Hz
        groups[inp.name] = g
    for p in net.populations[1:]:
        assert p.kind != "maxpool" and p.bias_weight is None  # what this wiring covers
        params = {k: Quantity(np.tile(np.broadcast_to(np.asarray(v), (p.size,)), B), dim=v.dim)
                  for k, v in p.params.items()}
        if encoder == "current":
            for q in p.projections:
                if q.source == inp.name:  # each unit's mean input current: W rates (delta kernel)
                    dense = np.zeros((p.size, inp.size))
                    for i, j, w in zip(q.i, q.j, np.asarray(q.w)):
                        dense[j, i] += w
                    params["I_bias"] = params["I_bias"] + (rates @ dense.T).ravel() * amp
        g = models.neuron_group(B * p.size, p.neuron, net.synapse, reset=net.reset, **net.synapse_params, **params)
        groups[p.name] = g
        for q in p.projections:
            if q.source == inp.name and encoder == "current":
                continue
            n_src = net.population(q.source).size
            i = np.concatenate([q.i + n_src * b for b in range(B)])
            j = np.concatenate([q.j + p.size * b for b in range(B)])
            objects.append(models.synapses(groups[q.source], g, net.synapse, i=i, j=j,
                                           w=Quantity(np.tile(np.asarray(q.w), B), dim=q.w.dim)))
    monitors = {name: SpikeMonitor(g) for name, g in groups.items()}
    Network(*objects, *groups.values(), *monitors.values()).run(T)
    return {name: (np.asarray(m.i), np.asarray(m.t)) for name, m in monitors.items()}


def _through_the_seam(net, rates, encoder):
    built = network.build(net, rates, encoder=encoder)
    Network(*built.objects).run(T)
    return {name: (np.asarray(m.i), np.asarray(m.t)) for name, m in built.spikes.items()}


def _sorted(i, t):
    order = np.lexsort((i, np.rint(t / float(DT))))
    return i[order], np.rint(t[order] / float(DT)).astype(np.int64)


@pytest.mark.slow  # two runtime simulations (numpy code generation)
@pytest.mark.parametrize("encoder", ["regular", "current"])
def test_rate_coding_through_the_seam_gives_the_spikes_of_the_network_wired_by_hand(example, encoder):
    graph, x = example
    snn = convert(graph, x)
    rates = snn.coding.encode(snn, x[:3])
    np.testing.assert_allclose(rates, np.maximum(x[:3], 0) / snn.scales.values["input"] * 200)
    with simulation_device("runtime", dt=DT):
        seam = _through_the_seam(snn.mapped, rates, encoder)
    with simulation_device("runtime", dt=DT):
        hand = _by_hand(snn.mapped, rates, encoder)
    assert seam.keys() == hand.keys()
    for name in hand:
        a, b = _sorted(*seam[name]), _sorted(*hand[name])
        np.testing.assert_array_equal(a[0], b[0], err_msg=name)
        np.testing.assert_array_equal(a[1], b[1], err_msg=name)
    assert all(len(hand[p.name][0]) > 10 for p in snn.mapped.populations[1:]), "a silent layer: no teeth"
