"""Converter: import, composition into populations, per-layer equivalence with the ANN, bad input."""
import numpy as np
import pytest
from brian2 import Hz, mV, ms, pF, second

# Every test here imports or builds torch networks. Without torch (the Python 3.12 lane, `make test312`)
# the module is skipped as a whole; test_graph.py covers graphs built from numpy on both lanes.
torch = pytest.importorskip("torch", reason="torch is not installed: these tests import torch networks "
                                            "(the Python 3.12 lane runs without torch)")
from torch import nn  # noqa: E402

import networks  # noqa: E402
from bioconv import graph as G  # noqa: E402
from bioconv.converter import convert, load_weights  # noqa: E402
from bioconv.errors import BioconvError, ParameterError  # noqa: E402



@pytest.fixture(autouse=True)
def _seeded_torch():
    """Every test builds its networks from the same random state, whatever ran before it."""
    torch.manual_seed(0)


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(2, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.c2 = nn.Conv2d(4, 4, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.avg = nn.AvgPool2d(2)
        self.fc = nn.Linear(16, 5)
        self.drop = nn.Dropout(0.5)

    def forward(self, x):
        a = torch.relu(self.bn(self.c1(x)))
        b = nn.functional.relu(self.c2(a) + a)
        b = self.avg(self.pool(b))
        return self.fc(self.drop(torch.flatten(b, 1)))


def _randomize_bn(bn):
    bn.running_mean.uniform_(-0.5, 0.5)
    bn.running_var.uniform_(0.5, 2.0)
    bn.weight.data.uniform_(0.5, 1.5)
    bn.bias.data.uniform_(-0.2, 0.2)


def test_import_matches_torch_and_populations_compose_exactly():
    m = Residual()
    _randomize_bn(m.bn)
    m.eval()
    g = G.from_torch(m, (2, 8, 8))
    assert [n.op for n in g.nodes] == ["input", "conv2d", "relu", "conv2d", "add", "relu", "maxpool2d",
                                       "avgpool2d", "flatten", "linear"]  # BN folded, dropout dropped
    x = np.random.default_rng(1).random((3, 2, 8, 8))
    acts = g.forward(x)
    with torch.no_grad():
        ref = m(torch.tensor(x, dtype=torch.float32)).numpy()
    assert np.allclose(acts[g.output], ref, atol=1e-5)
    pops = G.populations(g)
    assert [p.kind for p in pops] == ["input", "relu", "relu", "maxpool", "output"]
    a = {p.name: acts[p.name].reshape(3, -1) for p in pops}
    for p in pops:
        if p.kind in ("relu", "output"):
            z = sum(a[q.source] @ q.matrix.T for q in p.projections) + p.bias
            z = np.maximum(z, 0) if p.kind == "relu" else z
            assert np.allclose(z, a[p.name], atol=1e-12), p.name
        elif p.kind == "maxpool":
            src = a[p.projections[0].source]
            pooled = np.stack([src[:, p.pool_groups == k].max(1) for k in range(p.size)], 1)
            assert np.array_equal(pooled, a[p.name])
    # The residual population's input from the first ReLU merges the identity path and conv c2.
    res = pops[2]
    assert len(res.projections) == 1 and res.projections[0].source == pops[1].name


def test_numpy_forward_pass_matches_torch_in_double_precision():
    """The graph's numpy forward pass against torch's own (float64): asymmetric kernels, strides and
    padding, overlapping max pooling with padding, average pooling with padding, folded batch norm."""
    m = nn.Sequential(nn.Conv2d(2, 3, (3, 2), stride=(2, 1), padding=(1, 2)), nn.BatchNorm2d(3), nn.ReLU(),
                      nn.MaxPool2d(3, stride=2, padding=1), nn.AvgPool2d((2, 3), stride=1, padding=(1, 1)),
                      nn.Hardtanh(0, 1), nn.Flatten(), nn.Linear(84, 4))
    _randomize_bn(m[1])
    m = m.double().eval()
    g = G.from_torch(m, (2, 9, 11))
    assert [n.shape for n in g.nodes][1:] == [(3, 5, 14), (3, 5, 14), (3, 3, 7), (3, 4, 7), (3, 4, 7), (84,), (4,)]
    x = np.random.default_rng(0).normal(size=(5, 2, 9, 11))
    with torch.no_grad():
        ref = m(torch.from_numpy(x)).numpy()
        hidden = m[:5](torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(g.forward(x)[g.output], ref, rtol=0, atol=1e-12)
    assert (hidden > 1).any() and (hidden < 1).any()  # the clamp is active on both sides of 1


def test_stored_test_networks_are_their_torch_originals():
    """tests/data holds what from_torch makes of the seeded modules of tests/networks.py: the
    simulation tests that load them (also without torch) run the networks they were written for.
    After a change to from_torch or to a module, rewrite the files with `python tests/networks.py`."""
    for name, (_, _, shape) in networks.MODULES.items():
        ref, got = G.from_torch(networks.torch_module(name), shape), networks.graph(name)
        assert got.output == ref.output, name
        assert [(n.name, n.op, n.inputs, n.shape) for n in got.nodes] == \
               [(n.name, n.op, n.inputs, n.shape) for n in ref.nodes], name
        for a, b in zip(ref.nodes, got.nodes):
            assert a.params.keys() == b.params.keys(), (name, a.name)
            for k in a.params:
                assert np.array_equal(a.params[k], b.params[k]), f"{name}: node {a.name!r}, {k!r} differs"


@pytest.mark.parametrize("layer, message", [
    (nn.Sigmoid(), "layer type Sigmoid is not supported"),
    (nn.Conv2d(1, 2, 3, groups=1, dilation=2), "dilation=1"),
    (nn.Hardtanh(-1, 1), "layer type Hardtanh is not supported"),
    (nn.LeakyReLU(), "layer type LeakyReLU is not supported"),
])
def test_unsupported_layer_names_node_and_type(layer, message):
    m = nn.Sequential(nn.Conv2d(1, 1, 1), layer, nn.Flatten())
    with pytest.raises(G.UnsupportedLayerError, match=rf"node '1' \({type(layer).__name__}\).*{message}"):
        G.from_torch(m, (1, 6, 6))


def test_unsupported_function_names_node():
    class M(nn.Module):
        def forward(self, x):
            return torch.sigmoid(x)
    with pytest.raises(G.UnsupportedLayerError, match=r"node 'sigmoid' .*sigmoid is not supported"):
        G.from_torch(M(), (3,))


def test_batchnorm_must_follow_a_weighted_layer():
    m = nn.Sequential(nn.Flatten(), nn.ReLU(), nn.BatchNorm1d(4), nn.Linear(4, 2))
    with pytest.raises(G.UnsupportedLayerError, match=r"node '2' \(BatchNorm1d\): batch norm must directly follow"):
        G.from_torch(m.eval(), (4,))


def test_nan_weights_are_refused():
    m = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    with torch.no_grad():
        m[2].weight[0, 0] = float("nan")
    with pytest.raises(BioconvError, match=r"node '2' \(linear\): parameter 'weight' holds NaN"):
        G.from_torch(m, (4,))


def test_model_files_load_weights_only(tmp_path):
    m = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    ok = tmp_path / "ok.pt"
    torch.save({"state_dict": m.state_dict()}, ok)
    fresh = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    load_weights(fresh, ok)
    assert torch.equal(fresh[0].weight, m[0].weight)
    # A pickled module is code, not weights: refused by weights_only loading.
    bad = tmp_path / "module.pt"
    torch.save(m, bad)
    with pytest.raises(BioconvError, match=r"module.pt.*cannot be loaded as weights only"):
        load_weights(fresh, bad)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a torch file")
    with pytest.raises(BioconvError, match=r"garbage.pt.*cannot be loaded"):
        load_weights(fresh, garbage)
    with pytest.raises(BioconvError, match=r"missing.pt.*does not exist"):
        load_weights(fresh, tmp_path / "missing.pt")
    other = tmp_path / "other.pt"
    torch.save(nn.Linear(5, 5).state_dict(), other)
    with pytest.raises(BioconvError, match=r"other.pt.*does not fit Sequential"):
        load_weights(fresh, other)


@pytest.mark.parametrize("kwargs, message", [
    (dict(Cm=100.0), r"'Cm' needs units of farad"),
    (dict(v_th=-20 * mV), r"'v_th' must be positive"),
    (dict(tau_ref=-1 * ms), r"'tau_ref' must not be negative"),
    (dict(rate_max=200), r"'rate_max' needs units of hertz"),
    (dict(tau_ref=10 * ms, rate_max=200 * Hz), r"rate_max .* must stay below 1/tau_ref"),
    (dict(bias="magic"), r"bias must be one of"),
    (dict(synapse="alpha_conductance"), r"conductance-based"),
    (dict(normalization="p200"), r"normalization: method must be"),
])
def test_bad_conversion_parameters(kwargs, message):
    torch.manual_seed(0)  # independent of test order
    m = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    with pytest.raises((ParameterError, BioconvError), match=message):
        convert(m, np.random.default_rng(0).random((20, 4)), **kwargs)


# --- per-layer equivalence: SNN counts vs ANN activations within the counting bound ---------------

T = 2.0  # seconds: long enough that the counting bound is about 1 % of the top rate


def _count_bounds(snn):
    """Worst-case |N_sim - T * target| per unit of every population (spike counts).

    A linear-reset integrator's count is its integrated input in threshold units, floored; each
    source spike miscounted moves it by |W'| (normalized weight). So a population's bound is
    2 (floor, one-step delay) plus sum_s |W'_ts| * bound_s; regular inputs miss at most one spike
    (plus one grid step of rate), and a max-pooling gate inherits its window's bound plus one step.
    """
    bounds = {}
    lam = snn.scales.values
    for p in snn.populations:
        if p.kind == "input":
            bounds[p.name] = np.full(p.size, 1.0 + float(snn.mapped.rate_max) * 1e-4)
        elif p.kind == "maxpool":
            src = bounds[p.projections[0].source]
            bounds[p.name] = np.array([src[p.pool_groups == k].max() for k in range(p.size)]) + 1
        else:
            b = np.full(p.size, 2.0)
            for q in p.projections:
                w = abs(q.matrix) * (lam[q.source] / lam[p.name])
                b = b + w @ bounds[q.source]
            bounds[p.name] = b
    return bounds


def _check_layer(model, input_shape, population_index, n=4, encoder="regular", min_ratio=20, **kw):
    """Simulate; check the populations at ``population_index`` (an index or a list) against the bound."""
    rng = np.random.default_rng(2)
    x = rng.random((n,) + input_shape)
    snn = convert(model.eval(), rng.random((64,) + input_shape), normalization="max", **kw)
    res = _run_counts(snn, x, encoder)
    bounds = _count_bounds(snn)
    for index in np.atleast_1d(population_index):
        p = snn.populations[index]
        target = snn.target_rates(x)[p.name] * T
        sim = res[p.name]
        bound = bounds[p.name]
        assert np.all(np.abs(sim - target) <= bound[None, :]), (p.name, (np.abs(sim - target) - bound).max())
        # The layer is active: its counts dwarf the bound, so the check has teeth.
        assert target.max() > min_ratio * bound.max(), p.name
    return snn, sim, target


def _run_counts(snn, x, encoder):
    from brian2 import Network
    from bioconv.simulate import simulation_device
    from bioconv.simulate.network import build
    with simulation_device("cpp", dt=0.1 * ms):
        built = build(snn.mapped, snn.target_rates(x)[snn.populations[0].name], encoder=encoder)
        Network(*built.objects).run(T * second, namespace={})
        out = {}
        for p in snn.mapped.populations:
            if p.name in built.spikes:
                out[p.name] = np.bincount(np.asarray(built.spikes[p.name].i),
                                          minlength=len(x) * p.size).reshape(len(x), p.size)
    return out


@pytest.mark.slow
def test_equivalence_linear():
    _check_layer(nn.Sequential(nn.Flatten(), nn.Linear(12, 6), nn.ReLU(), nn.Linear(6, 3)), (12,), 1)


@pytest.mark.slow
def test_equivalence_conv2d_stride_padding():
    _check_layer(nn.Sequential(nn.Conv2d(2, 3, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten(),
                               nn.Linear(3 * 3 * 3, 3)), (2, 6, 6), 1)


@pytest.mark.slow
def test_equivalence_batchnorm_dropout_identity():
    m = nn.Sequential(nn.Linear(8, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Dropout(0.3), nn.Identity(),
                      nn.Linear(6, 3))
    _randomize_bn(m[1])
    _check_layer(m, (8,), 1, bias="current")


@pytest.mark.slow
def test_equivalence_avgpool():
    _check_layer(nn.Sequential(nn.AvgPool2d(2), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 3 * 3, 3)), (2, 6, 6), 1)


@pytest.mark.slow
def test_equivalence_maxpool_gate_passes_most_active_input():
    m = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(2 * 3 * 3, 3))
    snn, sim, target = _check_layer(m, (1, 6, 6), 2)
    assert snn.populations[2].kind == "maxpool"


class ClampNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(8, 6), nn.Linear(6, 3)

    def forward(self, x):
        return self.fc2(torch.clamp(self.fc1(x), 0.0, 1.0))


@pytest.mark.parametrize("model", [nn.Sequential(nn.Linear(8, 6), nn.Hardtanh(0, 1), nn.Linear(6, 3)), ClampNet()],
                         ids=["Hardtanh(0,1)", "torch.clamp"])
def test_relu1_imports_as_two_populations_whose_difference_is_the_clamp(model):
    g = G.from_torch(model.eval(), (8,))
    assert "relu1" in [n.op for n in g.nodes]
    pops = G.populations(g)
    assert [p.kind for p in pops] == ["input", "relu", "relu", "output"]
    assert pops[1].name.endswith(G.RELU_PART) and pops[2].name.endswith(G.EXCESS)
    x = np.random.default_rng(0).normal(0, 2, (50, 8))  # drives units past both clamp bounds
    acts = g.forward(x)
    relu, excess = acts[pops[1].name], acts[pops[2].name]
    z = x @ g.nodes[1].params["weight"].T + g.nodes[1].params["bias"]
    assert np.allclose(relu, np.maximum(z, 0)) and np.allclose(excess, np.maximum(z - 1, 0))
    assert np.allclose(relu - excess, np.clip(z, 0, 1))
    assert (z > 1).any() and (z < 0).any()
    # The output sees clamp(z) = relu(z) - relu(z - 1) through the two populations.
    out = sum(acts[q.source].reshape(50, -1) @ q.matrix.T for q in pops[3].projections) + pops[3].bias
    assert np.allclose(out, acts[g.output], atol=1e-12)


@pytest.mark.slow
def test_equivalence_relu1():
    m = nn.Sequential(nn.Linear(8, 6), nn.Hardtanh(0, 1), nn.Linear(6, 3))
    with torch.no_grad():
        m[0].weight.mul_(3.0)  # push units past the upper clamp
    # Both populations: relu(z) and the excess relu(z - 1), which is sparser (units past the clamp).
    _check_layer(m, (8,), [1, 2], n=8, min_ratio=5)


@pytest.mark.slow
def test_equivalence_residual_addition():
    # Two chained spiking layers: the second one's bound accumulates the first one's.
    _check_layer(Residual(), (2, 8, 8), 2, min_ratio=10)


@pytest.mark.slow
@pytest.mark.parametrize("bias", ["current", "neuron"])
def test_equivalence_bias_strategies(bias):
    m = nn.Sequential(nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 3))
    with torch.no_grad():
        m[0].bias.uniform_(-0.5, 0.5)
    _check_layer(m, (8,), 1, bias=bias)


@pytest.mark.slow
def test_batched_and_unbatched_runs_give_identical_counts():
    m = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8, 3)).eval()
    rng = np.random.default_rng(3)
    x = rng.random((3, 1, 6, 6))
    snn = convert(m, rng.random((32, 1, 6, 6)))
    together = _run_counts(snn, x, "regular")
    for k in range(3):
        alone = _run_counts(snn, x[k:k + 1], "regular")
        for name in together:
            assert np.array_equal(alone[name][0], together[name][k]), name


def _tiny_classifier():
    torch.manual_seed(4)
    return nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 4)).eval()


@pytest.mark.slow
@pytest.mark.parametrize("encoder", ["regular", "poisson", "current"])
@pytest.mark.parametrize("readout", ["count", "potential", "first_spike"])
def test_encoders_and_readouts_reproduce_ann_decisions(encoder, readout):
    rng = np.random.default_rng(5)
    x = rng.random((40, 10))
    snn = convert(_tiny_classifier(), rng.random((200, 10)), readout=readout, rate_max=300 * Hz)
    logits = snn.graph.forward(x)[snn.graph.output]
    y = logits.argmax(1)  # labels = the ANN's own decisions: accuracy == agreement
    res = snn.evaluate(x, y, duration=0.5 * second, encoder=encoder, progress=False, batch=40)
    assert res.ann_accuracy == 1.0
    # First-spike decoding is the coarsest: it sees only which output fires first.
    floor = {"count": 0.9, "potential": 0.95, "first_spike": 0.6}[readout]
    assert res.agreement >= (floor if encoder != "poisson" else floor - 0.1), res.agreement
    hidden = snn.populations[1].name
    assert res.layer_correlation[hidden] > (0.97 if encoder != "poisson" else 0.9)
    assert res.synaptic_events > 0 and len(res.accuracy_vs_time) == 20


@pytest.mark.slow
def test_poisson_seeds_split_error_into_bias_and_variance():
    rng = np.random.default_rng(6)
    x = rng.random((10, 10))
    snn = convert(_tiny_classifier(), rng.random((100, 10)))
    res = snn.evaluate(x, np.zeros(10, int), duration=0.5 * second, encoder="poisson", seeds=(0, 1, 2),
                       progress=False, batch=10)
    terms = res.error_terms["input"]
    # Poisson input: var(N/T) = f/T, so the mean variance over units is mean(f)/T (FORMULAS §6).
    f = snn.target_rates(x)["input"]
    assert terms["variance"] == pytest.approx(f.mean() / 0.5, rel=0.25)
    assert terms["bias2"] < terms["variance"]  # unbiased encoder: what remains is the seed average's variance


@pytest.mark.slow
@pytest.mark.parametrize("synapse, mean_delay", [("exponential", 1), ("alpha", 2)])
def test_equivalence_current_kernels_deliver_the_same_charge(synapse, mean_delay):
    # Same charge per spike as the delta mapping, spread over the kernel: at time T the charge of
    # the last ~mean_delay * tau_s * rate input spikes is still in flight, which widens the bound.
    tau_s = 2 * ms
    m = nn.Sequential(nn.Flatten(), nn.Linear(12, 6), nn.ReLU(), nn.Linear(6, 3)).eval()
    rng = np.random.default_rng(2)
    x = rng.random((4, 12))
    snn = convert(m, rng.random((64, 12)), normalization="max", synapse=synapse, tau_s=tau_s)
    counts = _run_counts(snn, x, "regular")
    p = snn.populations[1]
    target = snn.target_rates(x)[p.name] * T
    w = abs(p.projections[0].matrix) * (snn.scales.values["input"] / snn.scales.values[p.name])
    in_flight = w @ np.full(w.shape[1], 3 * mean_delay * float(tau_s) * float(snn.mapped.rate_max) + 1)
    bound = _count_bounds(snn)[p.name] + in_flight
    assert np.all(np.abs(counts[p.name] - target) <= bound[None, :])
    assert target.max() > 20 * bound.max()


def test_view_flatten_idiom_imports():
    class ViewNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.fc = nn.Conv2d(1, 2, 3), nn.Linear(2 * 4 * 4, 3)

        def forward(self, x):
            return self.fc(torch.relu(self.conv(x)).view(x.size(0), -1))

    g = G.from_torch(ViewNet().eval(), (1, 6, 6))
    assert [n.op for n in g.nodes] == ["input", "conv2d", "relu", "flatten", "linear"]


def test_avgpool_divisor_override_is_refused():
    with pytest.raises(G.UnsupportedLayerError, match=r"node '0' \(AvgPool2d\): divisor_override"):
        G.from_torch(nn.Sequential(nn.AvgPool2d(2, divisor_override=3), nn.Flatten()), (1, 4, 4))


def test_negative_inputs_and_bad_labels_are_refused():
    m = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    rng = np.random.default_rng(0)
    with pytest.raises(BioconvError, match=r"calibration data.*negative values"):
        convert(m, rng.normal(size=(20, 4)))
    snn = convert(m, rng.random((20, 4)))
    with pytest.raises(BioconvError, match=r"SNN.evaluate: inputs hold negative values"):
        snn.evaluate(-rng.random((3, 4)), np.zeros(3, int))
    with pytest.raises(BioconvError, match=r"network expects \(4,\)"):
        snn.evaluate(rng.random((3, 5)), np.zeros(3, int))
    with pytest.raises(BioconvError, match=r"labels must be integers in \[0, 2\)"):
        snn.evaluate(rng.random((3, 4)), np.array([0, 1, 2]))
    with pytest.raises(BioconvError, match=r"labels must be integers"):
        snn.evaluate(rng.random((3, 4)), np.eye(3, dtype=int))
    with pytest.raises(ParameterError, match=r"batch and time_points must be positive integers"):
        snn.evaluate(rng.random((3, 4)), np.zeros(3, int), batch=0)


def test_potential_readout_with_leak_bias_is_refused():
    m = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    with pytest.raises(ParameterError, match=r"readout='potential' with bias='leak'"):
        convert(m, np.random.default_rng(0).random((20, 4)), readout="potential", bias="leak")
