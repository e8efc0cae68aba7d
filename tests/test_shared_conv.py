"""Weight-shared convolutions: the geometry kept through the populations (`bioconv.conv_geometry`),
and the shared-kernel pathway (`bioconv.simulate.shared_conv`) against the unrolled form.

The networks are numpy LayerGraphs with 6x6 inputs and a few channels, so these tests run without
torch, on both Brian2 pins."""
from __future__ import annotations

import logging

import numpy as np
import pytest
from brian2 import ms

from bioconv import graph as G
from bioconv.conv_geometry import ConvGeometry, KernelTerm
from bioconv.converter import convert
from bioconv.simulate.network import conv_form, pathway_parts, weight_values
from bioconv.simulate.runner import CompiledNetwork, batch_for_budget, memory_estimate, network_size, stored_size

T = 40 * ms
DT = 0.1 * ms


def _conv(rng, c_out, c_in, k, **params):
    return ("conv2d", dict(weight=rng.normal(0, 0.6, (c_out, c_in, k, k)), bias=rng.normal(0, 0.05, c_out), **params))


def _every_kind_graph(seed=0) -> G.LayerGraph:
    """One small network with each convolution the shared pathway serves:
    c1 (3x3, padding 1) -> ReLU -> 2x2 average pooling -> c2 (3x3, padding 1) -> ReLU (r2);
    a residual block: c3(r2) + r2 + a 1x1 stride-2 projection of r1 -> ReLU (r3): converging kernels
    from two sources and, from r2, a kernel and the identity together;
    c4 (3x3, stride 2, padding 1) -> ReLU -> max-pool gate -> flatten -> linear (output)."""
    rng = np.random.default_rng(seed)
    N = G.Node
    nodes = [N("input", "input", []),
             N("c1", "conv2d", ["input"], _conv(rng, 4, 2, 3, padding=1)[1]),
             N("r1", "relu", ["c1"]),
             N("p1", "avgpool2d", ["r1"], dict(kernel=2)),
             N("c2", "conv2d", ["p1"], _conv(rng, 4, 4, 3, padding=1)[1]),
             N("r2", "relu", ["c2"]),
             N("c3", "conv2d", ["r2"], _conv(rng, 4, 4, 3, padding=1)[1]),
             N("add1", "add", ["c3", "r2"]),
             N("proj", "conv2d", ["r1"], _conv(rng, 4, 4, 1, stride=2)[1]),
             N("add2", "add", ["add1", "proj"]),
             N("r3", "relu", ["add2"]),
             N("c4", "conv2d", ["r3"], _conv(rng, 4, 4, 3, stride=2, padding=1)[1]),
             N("r4", "relu", ["c4"]),
             N("m4", "maxpool2d", ["r4"], dict(kernel=2)),
             N("flat", "flatten", ["m4"]),
             N("out", "linear", ["flat"], dict(weight=rng.normal(0, 1.0, (3, 4)), bias=rng.normal(0, 0.05, 3)))]
    return G.from_nodes(nodes, (2, 6, 6))


@pytest.fixture(scope="module")
def every_kind():
    model = _every_kind_graph()
    x = np.random.default_rng(1).random((6, 2, 6, 6))
    return model, x


# --- geometry: the kernel terms are the unrolled matrices, bit for bit ------------------------------

def _assert_term_is_matrix(term: KernelTerm, matrix):
    i, j, w = term.unrolled()
    m = matrix.tocoo()
    order = np.lexsort((m.row, m.col))
    np.testing.assert_array_equal(i, m.col[order])
    np.testing.assert_array_equal(j, m.row[order])
    assert np.array_equal(w, m.data[order])  # the same bits: the same products
    np.testing.assert_array_equal(term.geometry.out_degree(term.kernel), np.bincount(m.col, minlength=matrix.shape[1]))


def test_populations_keep_each_convolution_as_a_kernel(every_kind):
    model, _ = every_kind
    pops = {p.name: p for p in G.populations(model)}
    (q1,) = pops["r1"].projections
    (t1,) = q1.terms
    assert t1.geometry == ConvGeometry((2, 6, 6), (4, 6, 6), (3, 3), (1, 1), (1, 1))
    _assert_term_is_matrix(t1, q1.matrix)
    (q2,) = pops["r2"].projections
    (t2,) = q2.terms  # average pooling composed into the convolution: a stride and a factor 1/4
    assert t2.geometry.pool == (2, 2) and t2.geometry.in_shape == (4, 6, 6)
    _assert_term_is_matrix(t2, q2.matrix)
    from_r2, from_r1 = pops["r3"].projections
    kernel, rest = from_r2.terms  # c3(r2) + r2: a kernel and the identity, from one source
    assert isinstance(kernel, KernelTerm) and isinstance(rest, G.Projection)
    np.testing.assert_array_equal(rest.matrix.toarray(), np.eye(36))
    np.testing.assert_allclose(from_r2.matrix.toarray(), _dense(kernel) + np.eye(36), rtol=0, atol=1e-15)
    (proj,) = from_r1.terms  # the 1x1, stride-2 projection of r1
    assert proj.geometry.stride == (2, 2) and proj.geometry.kernel == (1, 1)
    _assert_term_is_matrix(proj, from_r1.matrix)
    (q4,) = pops["r4"].projections
    _assert_term_is_matrix(q4.terms[0], q4.matrix)
    assert pops["out"].projections[0].terms[0].__class__ is G.Projection  # flatten + linear: unrolled
    assert ConvGeometry.from_dict(t2.geometry.to_dict()) == t2.geometry


def _dense(term):
    i, j, w = term.unrolled()
    d = np.zeros((term.geometry.n_target, term.geometry.n_source))
    d[j, i] = w
    return d


def test_pooling_padding_remainder_and_negated_sources_match_the_unrolled_matrix():
    """An average pooling with padding, whose windows leave a remainder row and column, before a
    strided convolution; and a ReLU1's excess population (its negative) feeding a convolution."""
    rng = np.random.default_rng(2)
    w = rng.normal(size=(3, 2, 2, 2))
    w[0, 1, 0, 0] = 0.0  # a zero tap: the unrolled form drops it, the out-degree does not count it
    graph = G.sequential((2, 7, 7), [("conv2d", dict(weight=rng.normal(size=(2, 2, 1, 1)))), "relu",
                                     ("avgpool2d", dict(kernel=2, padding=1)),
                                     ("conv2d", dict(weight=w, stride=2, padding=1)), "relu1",
                                     ("conv2d", dict(weight=rng.normal(size=(2, 3, 2, 2)))), "relu",
                                     "flatten", ("linear", dict(weight=rng.normal(size=(2, 8))))])
    pops = {p.name: p for p in G.populations(graph)}
    (q,) = pops["4:relu"].projections
    (term,) = q.terms
    assert term.geometry.pool == (2, 2) and term.geometry.pool_padding == (1, 1)
    _assert_term_is_matrix(term, q.matrix)
    relu, excess = pops["6"].projections
    _assert_term_is_matrix(relu.terms[0], relu.matrix)
    _assert_term_is_matrix(excess.terms[0], excess.matrix)
    assert np.all(np.asarray(excess.terms[0].kernel) == -np.asarray(relu.terms[0].kernel))


def test_overlapping_pooling_keeps_the_projection_unrolled_and_says_why():
    rng = np.random.default_rng(3)
    graph = G.sequential((1, 6, 6), [_conv(rng, 2, 1, 3, padding=1), "relu", ("avgpool2d", dict(kernel=3, stride=1)),
                                     _conv(rng, 2, 2, 3), "relu", "flatten", ("linear", dict(weight=np.ones((2, 8))))])
    (q,) = G.populations(graph)[2].projections
    assert isinstance(q.terms[0], G.Projection)
    assert "2 (avgpool2d, kernel (3, 3) stride (1, 1))" in q.unshared and "non-overlapping" in q.unshared


def test_mapped_kernels_are_the_unrolled_weights(every_kind):
    model, x = every_kind
    snn = convert(model, x, synapse="alpha", tau_s=2 * ms)
    for p in snn.mapped.populations:
        for q in p.projections:
            if len(q.kernels) == 1 and q.rest is None:
                i, j, w = q.kernels[0].unrolled()
                order = np.lexsort((q.j, q.i))
                np.testing.assert_array_equal(i, q.i[order])
                assert np.array_equal(np.asarray(w), np.asarray(q.w)[order])
    neurons, synapses = network_size(snn.mapped)
    assert synapses == sum(len(q.i) for p in snn.mapped.populations[1:] if p.kind != "maxpool"
                           for q in p.projections) + sum(int(np.sum(p.pool_groups >= 0))
                                                         for p in snn.mapped.populations if p.kind == "maxpool")


def test_memory_model_of_the_shared_form(every_kind):
    """Shared kernels count once, not per copy; the stored synapses are what stays unrolled."""
    model, x = every_kind
    net = convert(model, x).mapped
    neurons, stored, kernel = stored_size(net, "shared")
    _, unrolled, none = stored_size(net, "unrolled")
    assert none == 0 and stored < unrolled
    assert kernel == sum(int(np.prod(k.geometry.kernel_shape)) for p in net.populations for q in p.projections
                         for _, k in pathway_parts(net, q, "", "shared") if isinstance(k, KernelTerm))
    one, four = memory_estimate(net, 1, "shared"), memory_estimate(net, 4, "shared")
    assert four - one == 3 * (memory_estimate(net, 2, "shared") - one)  # linear in copies, kernels once
    budget = memory_estimate(net, 10, "shared")
    assert batch_for_budget(net, 10 ** 6, budget, "shared") == 10
    assert batch_for_budget(net, 10 ** 6, budget, "unrolled") < 10
    # a sweepable tau_s build keeps one kernel per copy (each copy's amplitude moves with its tau_s)
    per_copy = weight_values(net, 3, "regular", "shared", sweepable=("tau_s",))
    shared = weight_values(net, 3, "regular", "shared")
    name = next(n for n, v in shared.items() if len(per_copy[n]) != len(v))
    assert len(per_copy[name]) == 3 * len(shared[name])


def test_shared_form_needs_bioconv_device_and_says_so(caplog):
    with caplog.at_level(logging.INFO, logger="bioconv.simulate.network"):
        assert conv_form("shared", "runtime", "here") == "unrolled"
    assert "not available on the 'runtime' device" in caplog.text
    assert conv_form("shared", "cpp") == "shared" and conv_form("unrolled", "cpp") == "unrolled"
    with pytest.raises(Exception, match="conv must be one of"):
        conv_form("kernel", "cpp")


# --- simulation: the same spikes in every population -----------------------------------------------

def _counts(snn, x, device, conv, batch=2, presentations=1, params=None, duration=T, **kwargs):
    rates = snn.target_rates(x)[snn.mapped.populations[0].name]
    out = {}
    with CompiledNetwork(snn.mapped, batch, duration=duration, dt=DT, device=device, presentations=presentations,
                         conv=conv, **kwargs) as net:
        assert net.conv == (conv if device == "cpp" else "unrolled")
        if net.kind == "cpp" and conv == "shared":
            assert net.project_edits["conv_pathways_shared"] == 5  # c1, c2, c3, proj, c4
        for k in range(0, len(x), net.capacity):
            res = net.run(rates[k:k + net.capacity], params=params)
            for name, c in res.counts.items():
                out.setdefault(name, []).append(c)
    return {name: np.concatenate(c) for name, c in out.items()}


@pytest.mark.slow
def test_shared_and_unrolled_give_the_same_spikes_with_refractoriness(every_kind):
    """Delta synapses into refractory targets (the event code's refractoriness test), samples in
    sequence (two presentations per copy, a padded last run): every population, every sample."""
    model, x = every_kind
    snn = convert(model, x, tau_ref=1 * ms)
    shared = _counts(snn, x[:5], "cpp", "shared", presentations=2)
    unrolled = _counts(snn, x[:5], "cpp", "unrolled", presentations=2)
    assert set(shared) == set(unrolled) == {p.name for p in snn.mapped.populations}
    for name in shared:
        assert shared[name].sum() > 0, name  # every population fires: the comparison can fail
        np.testing.assert_array_equal(shared[name], unrolled[name], err_msg=name)


@pytest.mark.slow
@pytest.mark.parametrize("synapse", ["alpha", "exponential"])
def test_shared_kernel_on_cpp_gives_the_unrolled_runtime_spikes(every_kind, synapse):
    """The kernels whose event moves a current (alpha: y_syn, exponential: I_syn) instead of V. The
    exponential network is built sweepable over tau_s, each copy at its own tau_s: each copy then
    holds its own kernel (the amplitude that keeps the charge)."""
    model, x = every_kind
    snn = convert(model, x, synapse=synapse, tau_s=1 * ms)
    sweep = dict(sweepable=("tau_s",), params={"tau_s": [0.5, 1.5] * ms}) if synapse == "exponential" else {}
    shared = _counts(snn, x[:4], "cpp", "shared", duration=60 * ms, **sweep)
    unrolled = _counts(snn, x[:4], "runtime", "shared", duration=60 * ms, **sweep)  # runtime keeps them unrolled
    for name in shared:
        assert shared[name].sum() > 0, name
        np.testing.assert_array_equal(shared[name], unrolled[name], err_msg=name)
