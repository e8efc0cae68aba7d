"""TTFS and CSS convnets in a network file (`bioconv.io.layered`): a convolution whose synapses are
exactly its graph's conv2d node is stored as kernel and geometry, the rest as unrolled synapses; a
loaded network gives the same spikes, and files written before the compact form keep loading."""
from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
from brian2 import mV, ms

import bioconv
import networks
from bioconv import graph as G
from bioconv.converter import convert
from bioconv.io import NetworkFileError
from bioconv.io.archive import HEADER
from bioconv.ttfs import project_weight_sums
from test_io import _with_header
from test_io_schemes import _simulate

#: Written by `python tests/test_io_layered_conv.py` at commit 05a7816, before the compact form
#: (format version 2: every TTFS/CSS projection as unrolled i, j, weight).
OLD_FILES = {name: networks.DATA / f"{name}_convnet_v2_05a7816.bioconv" for name in ("ttfs", "css")}


def _ttfs_convnet():
    """conv -> ReLU1 -> conv -> ReLU1 -> max pooling -> flatten -> linear (logits). No padding: TTFS
    needs every unit's weights to sum to 1, which padding breaks at the border."""
    rng = np.random.default_rng(4)
    g = G.sequential((1, 8, 8), [
        ("conv2d", {"weight": project_weight_sums(rng.normal(0, 0.5, (2, 1, 3, 3)))}), "relu1",
        ("conv2d", {"weight": project_weight_sums(rng.normal(0, 0.5, (2, 2, 3, 3)))}), "relu1",
        ("maxpool2d", {"kernel": 2}), "flatten", ("linear", {"weight": rng.normal(0, 0.6, (3, 8))})])
    x = rng.random((6, 1, 8, 8))
    return convert(g, None, coding="ttfs", T_w=2 * ms, v_th=15 * mV), x


def _css_convnet():
    """conv (padding 1, bias) -> ReLU -> conv (stride 2, bias) -> ReLU -> flatten -> linear (logits)."""
    rng = np.random.default_rng(5)
    g = G.sequential((1, 6, 6), [
        ("conv2d", {"weight": rng.normal(0, 0.5, (3, 1, 3, 3)), "bias": rng.normal(0, 0.1, 3), "padding": 1}), "relu",
        ("conv2d", {"weight": rng.normal(0, 0.5, (2, 3, 3, 3)), "bias": rng.normal(0, 0.1, 2), "stride": 2}), "relu",
        "flatten", ("linear", {"weight": rng.normal(0, 0.6, (3, 8)), "bias": rng.normal(0, 0.1, 3)})])
    x = rng.random((12, 1, 6, 6))
    return convert(g, x, coding="css", steps=8, Ts=2), x


NETWORKS = {"ttfs": _ttfs_convnet, "css": _css_convnet}


def _forms(path) -> list:
    with zipfile.ZipFile(path) as zf:
        header = json.loads(zf.read(HEADER))
    return [q.get("form", "sparse") for layer in header["layers"] for q in layer["projections"]]


def _same_layers(a, b):
    for p, q in zip(a.mapped.layers, b.mapped.layers, strict=True):
        for x, y in zip(p.projections, q.projections, strict=True):
            assert x.source == y.source
            for f in ("i", "j", "weight"):
                u, v = getattr(x, f), getattr(y, f)
                assert u.dtype == v.dtype and np.array_equal(u, v), (p.name, f)


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_a_convolution_is_stored_as_its_kernel_and_gives_the_same_spikes(tmp_path, name):
    snn, x = NETWORKS[name]()
    path = snn.save(tmp_path / f"{name}.bioconv")
    forms = _forms(path)
    assert forms[:2] == ["conv", "conv"] and forms[-1] == "sparse", forms  # two convolutions, a linear readout
    with zipfile.ZipFile(path) as zf:
        header, members = json.loads(zf.read(HEADER)), zf.namelist()
    conv = header["layers"][1]["projections"][0]
    assert header["version"] == 3 and conv["geometry"]["kernel"] == [3, 3]
    assert not any(m.startswith(("layers/1/", "layers/2/")) and m.endswith(("/i.npy", "/j.npy", "/weight.npy"))
                   for m in members)  # the kernels alone: no synapse is stored for either convolution
    first = snn.graph.node(snn.graph.node(snn.mapped.layers[1].name).inputs[0])
    assert np.array_equal(np.load(path)[conv["kernel"]], first.params["weight"])
    loaded = bioconv.load(path)
    _same_layers(snn, loaded)
    a, b = _simulate(snn, x[:4]), _simulate(loaded, x[:4])
    assert any(np.nansum(np.abs(v)) > 0 for k, v in a.items() if k.startswith("spikes")), "nothing fired"
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_a_file_written_before_the_compact_form_keeps_loading(name):
    assert set(_forms(OLD_FILES[name])) == {"sparse"}
    snn, x = NETWORKS[name]()
    old = bioconv.load(OLD_FILES[name])
    _same_layers(snn, old)
    a, b = _simulate(snn, x[:2]), _simulate(old, x[:2])
    assert any(np.nansum(np.abs(v)) > 0 for k, v in a.items() if k.startswith("spikes")), "nothing fired"
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_a_stored_convolution_that_does_not_fit_is_refused(tmp_path):
    snn, _ = _css_convnet()
    path = snn.save(tmp_path / "css.bioconv")

    def wrong_shape(h):
        h["layers"][1]["projections"][0]["geometry"].update(out_shape=[3, 4, 4], padding=[0, 0])
    with pytest.raises(NetworkFileError, match=r"layer '1', projection 0: its convolution maps \(1, 6, 6\) onto "
                                               r"\(3, 4, 4\), not layer 'input' \(1, 6, 6\) onto \(3, 6, 6\)"):
        bioconv.load(_with_header(path, tmp_path / "a.bioconv", wrong_shape))
    with pytest.raises(NetworkFileError, match="layer '1', projection 0 has projection form 'conv'; format version 2"):
        bioconv.load(_with_header(path, tmp_path / "b.bioconv", lambda h: h.update(version=2)))


if __name__ == "__main__":  # writes the files of OLD_FILES (with the code of the commit they name)
    for name, make in NETWORKS.items():
        print(make()[0].save(OLD_FILES[name]))
