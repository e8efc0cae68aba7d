"""The coding-scheme and encoder contract (`bioconv.coding`), checked for every registered scheme and
encoder: a new one is picked up here by registering it (its module imported by `bioconv.coding`).

Schemes: declared parameters validate their defaults, refuse a bad value and an unknown name by
name, and travel as plain JSON; declared encoders and metrics exist; the scheme converts its own
example, states targets and encodes inputs of the right shapes, and an evaluation with the scheme's
defaults decodes into the metrics it declares. Encoders: run_args values of the right shapes for the
populations they drive, bad values refused, and presentations in sequence reset: the same sample
presented again gives the same spikes (deterministic encoders), and another sample in between gets
its own input.

These tests need no torch (both lanes)."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from brian2 import Quantity, ms, second

from bioconv import coding
from bioconv.coding import METRICS, encoders, schemes
from bioconv.converter import EvaluationResult, convert
from bioconv.errors import BioconvError, ParameterError
from bioconv.simulate.runner import CompiledNetwork

SCHEMES = schemes.names()
ENCODERS = encoders.names()


def _converted(name):
    s = coding.scheme(name)
    graph, x = s.example()
    snn = convert(graph, x if s.needs_calibration else None, coding=name)
    return s, snn, x


def _owner(encoder):
    """A registered scheme whose inputs go through ``encoder`` (every encoder must serve one), one on
    the shared pipeline if there is one: the encoder tests build its example with `network.build`."""
    owners = [s for s in SCHEMES if encoder in schemes[s].encoders]
    assert owners, f"encoder {encoder!r} is registered but no coding scheme declares it"
    shared = [s for s in owners if not schemes[s].simulates_itself]
    if not shared:
        pytest.skip(f"encoder {encoder!r} serves only schemes that simulate their networks themselves "
                    f"({owners}): their own tests cover it")
    return shared[0]


@pytest.mark.parametrize("name", SCHEMES)
def test_scheme_parameters_validate_at_the_door(name):
    cls = schemes[name]
    s = cls()
    assert s.name == name and set(s.values) == set(cls.PARAMETERS)
    text = json.dumps(s.params())  # plain data
    assert cls.from_params(json.loads(text)) == s == coding.from_params(name, s.params())
    for param, spec in cls.PARAMETERS.items():
        with pytest.raises(ParameterError, match=param):
            cls(**{param: spec.bad_example()})
    with pytest.raises(ParameterError, match="no_such_parameter"):
        cls(no_such_parameter=1)


@pytest.mark.parametrize("name", SCHEMES)
def test_scheme_declarations_exist(name):
    cls = schemes[name]
    fields = {f.name for f in dataclasses.fields(EvaluationResult)}
    assert cls.metric_names and set(cls.metric_names) <= set(METRICS) <= fields
    assert cls.encoders and all(e in encoders for e in cls.encoders) and cls.default_encoder in cls.encoders
    d = cls().evaluation_defaults()
    assert d["encoder"] == cls.default_encoder
    for key in ("duration", "dt"):
        assert isinstance(d[key], Quantity) and d[key].dim is second.dim and float(d[key]) > 0
    with pytest.raises(ParameterError, match="no_such_encoder"):
        cls().check_encoder("no_such_encoder", "test")
    # a scheme runs the shared pipeline, or says it simulates itself and overrides `evaluate`
    assert cls.simulates_itself == (cls.evaluate is not coding.CodingScheme.evaluate)


@pytest.mark.parametrize("name", SCHEMES)
def test_scheme_converts_targets_and_encodes(name):
    s, snn, x = _converted(name)
    assert snn.coding == s
    n = 3
    targets = snn.targets(x[:n])
    assert targets
    for name, t in targets.items():
        assert t.ndim == 2 and len(t) == n and np.all(np.isfinite(t)), name
    values = s.encode(snn, x[:n], targets)
    assert values.shape == (n, int(np.prod(snn.graph.input_shape)))
    for e in s.encoders:  # values the scheme's encoders take
        encoders[e].check(values, "test")
    bad = x[:n].copy()
    bad[0, 0] = np.nan
    with pytest.raises(BioconvError, match="NaN"):
        s.check_inputs(bad, snn.graph.input_shape, "test")
    with pytest.raises(BioconvError, match="shape"):
        s.check_inputs(x[:n, :-1], snn.graph.input_shape, "test")


@pytest.mark.parametrize("name", SCHEMES)
def test_scheme_evaluates_with_its_defaults_and_declares_its_metrics(name):
    s, snn, x = _converted(name)
    y = snn.graph.forward(x[:4])[snn.graph.output].reshape(4, -1).argmax(1)  # the ANN's decisions
    res = snn.evaluate(x[:4], y, device="runtime", progress=False, time_points=4)
    d = s.evaluation_defaults()
    assert (res.duration, res.dt) == (float(d["duration"]), float(d["dt"]))
    assert res.settings["coding"] == name and res.settings["coding_params"] == s.params()
    assert res.settings["encoder"] == d["encoder"]
    assert res.predictions.shape == (4, len(res.times)) and res.n_samples == 4
    for metric in s.metric_names:
        assert hasattr(res, metric), metric
    assert 0 <= res.accuracy <= 1 and 0 <= res.agreement <= 1


def _example_network(encoder):
    _, snn, x = _converted(_owner(encoder))
    return snn, x


@pytest.mark.parametrize("encoder", ENCODERS)
def test_encoder_values_have_the_driven_shapes(encoder):
    enc = encoders[encoder]
    snn, x = _example_network(encoder)
    values = snn.coding.encode(snn, snn.coding.check_inputs(x[:3], snn.graph.input_shape, "test"))
    out = enc.values(snn.mapped, values)
    assert set(out) == set(enc.driven(snn.mapped))
    sizes = {p.name: p.size for p in snn.mapped.populations}
    for pop, v in out.items():
        assert v.shape == (3 * sizes[pop],) and np.all(np.isfinite(v)), pop
    assert isinstance(enc.unit, Quantity) and isinstance(enc.value_unit, Quantity)
    assert enc.spiking == (set(out) == {snn.mapped.populations[0].name})
    for bad, what in ((np.full_like(values, np.nan), "NaN"), (values[0], "shape")):
        with pytest.raises(BioconvError, match=what):
            enc.values(snn.mapped, bad)
    if enc.nonnegative:
        with pytest.raises(BioconvError, match="negative"):
            enc.values(snn.mapped, -values - 1)


@pytest.mark.slow  # a compiled project per encoder
@pytest.mark.parametrize("encoder", ENCODERS)
def test_encoder_resets_between_presentations(encoder):
    """Samples A, B, A one after another on one copy: the first and last presentation hold the same
    spikes in every population (deterministic encoders), and B's input differs from A's."""
    enc = encoders[encoder]
    snn, x = _example_network(encoder)
    values = snn.coding.encode(snn, snn.coding.check_inputs(x[:2], snn.graph.input_shape, "test"))
    seq = values[[0, 1, 0]]
    duration = 40 * ms
    with CompiledNetwork(snn.mapped, 1, duration=duration, dt=0.1 * ms, encoder=encoder, device="cpp", threads=1,
                         presentations=3) as net:
        out = net.run(seq)
    assert len(out.counts) >= 1
    total = sum(int(c.sum()) for c in out.counts.values())
    assert total > 0, "no spikes at all: the check would have no teeth"
    if enc.deterministic:
        for pop, c in out.counts.items():
            np.testing.assert_array_equal(c[0], c[2], err_msg=pop)
        first, last = out.out_sample == 0, out.out_sample == 2
        np.testing.assert_array_equal(out.out_unit[first], out.out_unit[last])
        np.testing.assert_array_equal(out.out_t[first], out.out_t[last])
        assert any(not np.array_equal(c[0], c[1]) for c in out.counts.values())
    else:
        # the input's spikes follow each presentation's values (Poisson: within 5 sigma of rate x T)
        inp = snn.mapped.populations[0].name
        for k in range(3):
            expected = seq[k].sum() * float(duration)
            assert abs(out.counts[inp][k].sum() - expected) <= 5 * np.sqrt(expected) + 1, k
