"""LayerGraphs without torch: built from numpy arrays, saved and loaded, run by the numpy forward pass,
converted; and the clear error of every torch-only function when torch is missing. These tests need
no torch, so they run on both lanes (test_convert.py checks the numpy forward pass against torch)."""
import re
import subprocess
import sys

import numpy as np
import pytest

from bioconv import graph as G
from bioconv.converter import convert
from bioconv.errors import BioconvError
from bioconv.optional import MissingDependencyError


def _conv_loops(x, w, b, stride, padding):
    """Convolution by explicit loops: the definition, for checking the vectorized pass."""
    B, C, H, W = x.shape
    Co, _, kh, kw = w.shape
    xp = np.zeros((B, C, H + 2 * padding[0], W + 2 * padding[1]))
    xp[:, :, padding[0]:padding[0] + H, padding[1]:padding[1] + W] = x
    Ho, Wo = (xp.shape[2] - kh) // stride[0] + 1, (xp.shape[3] - kw) // stride[1] + 1
    out = np.zeros((B, Co, Ho, Wo))
    for o in range(Co):
        for y in range(Ho):
            for z in range(Wo):
                patch = xp[:, :, y * stride[0]:y * stride[0] + kh, z * stride[1]:z * stride[1] + kw]
                out[:, o, y, z] = (patch * w[o]).sum(axis=(1, 2, 3)) + b[o]
    return out


def _pool_loops(x, k, fill, reduce):
    """Non-overlapping pooling (kernel = stride = k) with padding 1 filled with ``fill``, by loops."""
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=fill)
    Ho, Wo = (xp.shape[2] - k) // k + 1, (xp.shape[3] - k) // k + 1
    out = np.zeros(x.shape[:2] + (Ho, Wo))
    for y in range(Ho):
        for z in range(Wo):
            out[:, :, y, z] = reduce(xp[:, :, y * k:y * k + k, z * k:z * k + k], axis=(2, 3))
    return out


def _small_graph(rng):
    w1, b1 = rng.normal(size=(3, 2, 3, 2)), rng.normal(size=3)
    w2, b2 = rng.normal(size=(4, 3 * 2 * 4)), rng.normal(size=4)
    layers = [("conv2d", {"weight": w1, "bias": b1, "stride": (2, 1), "padding": (1, 2)}), "relu",
              ("maxpool2d", {"kernel": 2, "padding": 1}), ("avgpool2d", {"kernel": 2, "padding": 1}), "relu1",
              "flatten", ("linear", {"weight": w2, "bias": b2})]
    return G.sequential((2, 9, 7), layers), (w1, b1, w2, b2)


def test_numpy_forward_pass_matches_the_definitions():
    rng = np.random.default_rng(0)
    g, (w1, b1, w2, b2) = _small_graph(rng)
    assert [n.name for n in g.nodes] == ["input"] + [str(k) for k in range(7)] and g.output == "6"
    assert [n.shape for n in g.nodes] == [(2, 9, 7), (3, 5, 10), (3, 5, 10), (3, 3, 6), (3, 2, 4), (3, 2, 4),
                                          (24,), (4,)]
    x = rng.normal(size=(4, 2, 9, 7))
    acts = g.forward(x)
    conv = _conv_loops(x, w1, b1, (2, 1), (1, 2))
    np.testing.assert_allclose(acts["0"], conv, rtol=0, atol=1e-12)
    # each layer against its definition applied to the layer before (exact where no sum is involved)
    np.testing.assert_array_equal(acts["1"], np.maximum(acts["0"], 0))
    np.testing.assert_array_equal(acts["2"], _pool_loops(acts["1"], 2, -np.inf, np.max))  # padding never wins
    avg = _pool_loops(acts["2"], 2, 0.0, np.mean)  # zero padding counts in the mean
    np.testing.assert_allclose(acts["3"], avg, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(acts["4"], np.clip(acts["3"], 0, 1))
    np.testing.assert_allclose(acts["4" + G.RELU_PART] - acts["4" + G.EXCESS], acts["4"], rtol=0, atol=1e-15)
    np.testing.assert_array_equal(acts["5"], acts["4"].reshape(4, -1))
    np.testing.assert_allclose(acts["6"], acts["5"] @ w2.T + b2, rtol=0, atol=1e-12)
    assert (acts["3"] > 1).any() and ((acts["3"] > 0) & (acts["3"] < 1)).any() and (acts["0"] < 0).any()
    # max pooling of negative inputs: the padding must not win
    neg = -rng.random((2, 2, 5, 5))
    pooled = G.sequential((2, 5, 5), [("maxpool2d", {"kernel": 2, "padding": 1})]).forward(neg)["0"]
    np.testing.assert_array_equal(pooled, _pool_loops(neg, 2, -np.inf, np.max))
    assert np.all(pooled < 0)


def test_saved_graph_loads_back_identical(tmp_path):
    g, _ = _small_graph(np.random.default_rng(1))
    path = g.save(tmp_path / "net.graph")  # any suffix: the file is written where it was asked
    assert path == tmp_path / "net.graph" and path.exists()
    back = G.load(path)
    assert back.output == g.output and back.input_shape == g.input_shape
    for a, b in zip(g.nodes, back.nodes, strict=True):
        assert (a.name, a.op, a.inputs, a.shape, a.params.keys()) == (b.name, b.op, b.inputs, b.shape, b.params.keys())
        for k, v in a.params.items():
            assert np.array_equal(v, b.params[k]) and type(v) is type(b.params[k]), (a.name, k)
    x = np.random.default_rng(2).random((3, 2, 9, 7))
    np.testing.assert_array_equal(back.forward(x)["6"], g.forward(x)["6"])
    with pytest.raises(BioconvError, match=r"missing.npz.*does not exist"):
        G.load(tmp_path / "missing.npz")
    other = tmp_path / "other.npz"
    np.savez(other, weight=np.zeros(3))
    with pytest.raises(BioconvError, match=r"other.npz.*is not a saved LayerGraph"):
        G.load(other)


def test_residual_graph_from_nodes_composes_into_populations():
    rng = np.random.default_rng(3)
    w1, w2, w3 = rng.normal(size=(5, 4)), rng.normal(size=(5, 5)), rng.normal(size=(2, 5))
    nodes = [G.Node("x", "input", []), G.Node("fc1", "linear", ["x"], {"weight": w1}),
             G.Node("a", "relu", ["fc1"]), G.Node("fc2", "linear", ["a"], {"weight": w2}),
             G.Node("sum", "add", ["fc2", "a"]), G.Node("b", "relu", ["sum"]),
             G.Node("out", "linear", ["b"], {"weight": w3})]
    g = G.from_nodes(nodes, (4,))
    assert nodes[1].params["weight"] is w1 and g.node("fc1").params["weight"] is not w1  # copied
    pops = G.populations(g)
    assert [(p.name, p.kind) for p in pops] == [("x", "input"), ("a", "relu"), ("b", "relu"), ("out", "output")]
    x = rng.random((6, 4))
    acts = g.forward(x)
    a = np.maximum(x @ w1.T, 0)
    np.testing.assert_allclose(acts["b"], np.maximum(a @ w2.T + a, 0), rtol=0, atol=1e-12)
    # the residual population's input: identity path and fc2 merged into one projection from "a"
    (proj,) = pops[2].projections
    np.testing.assert_allclose(proj.matrix.toarray(), w2 + np.eye(5), rtol=0, atol=1e-15)


@pytest.mark.parametrize("nodes, message", [
    ([G.Node("x", "linear", [])], r"first node must be the input"),
    ([G.Node("x", "input", []), G.Node("s", "sigmoid", ["x"])], r"node 's' \(sigmoid\): unknown operation"),
    ([G.Node("x", "input", []), G.Node("f", "linear", ["x"], {"weight": np.ones((2, 3))})],
     r"node 'f' \(linear\): weight \(2, 3\) .* does not fit its input of shape \(4,\)"),
    ([G.Node("x", "input", []), G.Node("f", "linear", ["x"], {"weight": np.ones((2, 4)), "bias": np.ones(3)})],
     r"node 'f' \(linear\): bias \(3,\) does not fit"),
    ([G.Node("x", "input", []), G.Node("f", "linear", ["x"], {"weight": np.ones((2, 4)), "stride": 1})],
     r"node 'f' \(linear\): unknown parameter\(s\) \['stride'\]"),
    ([G.Node("x", "input", []), G.Node("r", "relu", ["y"])], r"node 'r' \(relu\): input\(s\) \['y'\] are not earlier"),
    ([G.Node("x", "input", []), G.Node("p", "add", ["x"])], r"node 'p' \(add\): takes 2 input\(s\)"),
    ([G.Node("x", "input", []), G.Node("x", "relu", ["x"])], r"node 'x' \(relu\): another node has this name"),
    ([G.Node("x", "input", []), G.Node("f", "linear", ["x"], {"weight": np.array([[np.nan] * 4])})],
     r"node 'f' \(linear\): parameter 'weight' holds NaN"),
])
def test_bad_nodes_are_refused_naming_the_node(nodes, message):
    with pytest.raises(BioconvError, match=message):
        G.from_nodes(nodes, (4,))


@pytest.mark.parametrize("layer, message", [
    (("conv2d", {"weight": np.ones((2, 3, 3, 3))}), r"node '0' \(conv2d\): weight \(2, 3, 3, 3\).*input of shape \(1, 6, 6\)"),
    (("maxpool2d", {"kernel": 2, "padding": 2}), r"node '0' \(maxpool2d\): kernel \(2, 2\), stride \(2, 2\) and padding"),
    (("avgpool2d", {}), r"node '0' \(avgpool2d\): parameter 'kernel' is missing"),
    (("avgpool2d", {"kernel": (1, 2, 3)}), r"node '0' \(avgpool2d\): parameter 'kernel' must be an int or a pair"),
    (("conv2d", {"weight": np.ones((1, 1, 7, 7))}), r"node '0' \(conv2d\): kernel \(7, 7\)"),
    (("linear", {"weight": np.ones((2, 36))}), r"node '0' \(linear\).*flatten first"),
])
def test_bad_layers_of_a_sequential_graph_are_refused(layer, message):
    with pytest.raises(G.UnsupportedLayerError, match=message):
        G.sequential((1, 6, 6), [layer])


def test_convert_takes_a_layer_graph_and_leaves_it_unchanged():
    rng = np.random.default_rng(4)
    w1, b1, w2 = rng.normal(size=(6, 5)), rng.normal(0, 0.1, size=6), rng.normal(size=(3, 6))
    g = G.sequential((5,), [("linear", {"weight": w1, "bias": b1}), "relu", ("linear", {"weight": w2})])
    x = rng.random((50, 5))
    snn = convert(g, x, normalization="max")
    assert snn.graph is g and [p.kind for p in snn.populations] == ["input", "relu", "output"]
    assert np.array_equal(g.node("0").params["weight"], w1)  # normalization scaled copies, not the graph
    again = convert(g, x, normalization="max")
    assert again.table() == snn.table()
    np.testing.assert_allclose(snn.target_rates(x[:3])["1"] / float(snn.mapped.rate_max),
                               np.maximum(x[:3] @ w1.T + b1, 0) / snn.scales.values["1"], rtol=1e-12)
    with pytest.raises(BioconvError, match=r"input_shape \(4,\) is not the graph's input shape \(5,\)"):
        convert(g, x, input_shape=(4,))
    with pytest.raises(BioconvError, match=r"network expects \(5,\)"):
        convert(g, rng.random((50, 4)))


def test_torch_only_functions_name_the_missing_torch(monkeypatch, tmp_path):
    """Without torch (here hidden, as on the Python 3.12 lane) each torch-only entry point says that it
    needs torch and how to get it, instead of failing deep inside."""
    import bioconv
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
    calls = {
        "bioconv.graph.from_torch": lambda: G.from_torch(object(), (3,)),
        "bioconv.graph.from_torch (importing": lambda: bioconv.convert(object(), np.ones((2, 3))),
        "bioconv.load_weights": lambda: bioconv.load_weights(object(), tmp_path / "w.pt"),
        "bioconv.zoo.mlp": bioconv.zoo.mlp,
        "bioconv.zoo.convnet": bioconv.zoo.convnet,
        "bioconv.zoo.mnist_convnet": bioconv.zoo.mnist_convnet,
        "bioconv.zoo.train": lambda: bioconv.zoo.train(object(), None, seed=0, epochs=1, lr=0.1, weight_decay=0),
    }
    for what, call in calls.items():
        with pytest.raises(MissingDependencyError, match=rf"^{re.escape(what)}.* needs torch, which is not installed.*"
                                                         rf"pip install 'bioconv\[torch\]'"):
            call()
    assert issubclass(MissingDependencyError, ImportError) and issubclass(MissingDependencyError, BioconvError)


def test_importing_bioconv_does_not_import_torch():
    """torch is imported only by the functions that need it (a fresh interpreter: this one may hold
    torch from other tests)."""
    code = ("import sys, bioconv, bioconv.cli, bioconv.study.rate_validation, bioconv.study.conversion_error, "
            "bioconv.simulate.runner; print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]", out.stdout
