"""Saved networks (`bioconv.io`): a loaded network is the network that was saved (same spikes), older
files keep loading, and damaged, altered or newer files are refused by name. No torch needed."""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from brian2 import Hz, mV, ms, pF

import bioconv
import networks
from bioconv.coding import RateCoding
from bioconv.converter import SNN, convert
from bioconv.io import ModelChangedWarning, NetworkFileError
from bioconv.io.archive import HEADER, HEADER_DIGEST
from bioconv.simulate import network as N
from bioconv.simulate.runner import CompiledNetwork

#: A file written by format version 1, kept so that later versions are tested to still read it
#: (written by `python tests/test_io.py`, from `_v1_network()`).
V1_FILE = networks.DATA / "small_convnet_v1.bioconv"


#: A version-1 file written at 4bce817, the last commit before version 2 (its convolution stored as unrolled
#: synapses): `_v1_4bce817_network()` saved with that commit's code.
V1_4BCE817_FILE = networks.DATA / "small_convnet_v1_4bce817.bioconv"
V1_4BCE817_SETTINGS = dict(bias="neuron", synapse="alpha", tau_s=2 * ms, tau_ref=0.5 * ms)


def _v1_4bce817_network():
    return convert(networks.graph("small_convnet"), np.random.default_rng(3).random((20, 1, 8, 8)),
                   **V1_4BCE817_SETTINGS)


#: A file written by the first version-1 writer, whose coding record holds rate_max only: later readers
#: must take the rest from the file, not from defaults. Made with `git worktree add /tmp/d86 d86ace3`
#: and, in /tmp/d86, `PYTHONPATH=/tmp/d86 python` saving `_d86ace3_network()`'s conversion (same code there).
D86ACE3_FILE = networks.DATA / "small_convnet_d86ace3.bioconv"
D86ACE3_SETTINGS = dict(bias="leak", synapse="exponential", tau_s=3 * ms, tau_ref=0.5 * ms, rate_max=150 * Hz)


def _d86ace3_network():
    return convert(networks.graph("small_convnet"), np.random.default_rng(3).random((20, 1, 8, 8)),
                   **D86ACE3_SETTINGS)


def _v1_network():
    g = networks.graph("small_convnet")
    return convert(g, np.random.default_rng(3).random((20, 1, 8, 8)), bias="leak")


def _same_network(a, b, conv="unrolled"):
    """Everything a simulation takes from a mapped network: its code's shape, weights, parameters,
    for a build with the convolutions in form ``conv`` ('shared': kernels, 'unrolled': synapses)."""
    assert repr(N.shape_signature(a.mapped, conv=conv)) == repr(N.shape_signature(b.mapped, conv=conv))
    for va, vb in ((N.weight_values(a.mapped, 2, "regular", conv=conv), N.weight_values(b.mapped, 2, "regular", conv=conv)),
                   (N.parameter_values(a.mapped, 2, "regular"), N.parameter_values(b.mapped, 2, "regular"))):
        assert va.keys() == vb.keys()
        for k in va:
            assert np.array_equal(va[k], vb[k]), k
    assert a.table() == b.table()
    assert a.saturation(0.1 * ms) == b.saturation(0.1 * ms)


@pytest.mark.parametrize("bias, synapse", [("leak", "delta"), ("neuron", "exponential"), ("current", "alpha")])
def test_saved_network_loads_as_the_same_network(tmp_path, bias, synapse):
    snn = convert(networks.graph("small_convnet"), np.random.default_rng(0).random((16, 1, 8, 8)), bias=bias,
                  synapse=synapse, tau_ref=1 * ms)
    loaded = bioconv.load(snn.save(tmp_path / "net.bioconv"))
    _same_network(snn, loaded)
    assert loaded.conversion["synapse"] == synapse and loaded.conversion["tau_ref"] == 1 * ms
    assert loaded.coding == snn.coding and loaded.coding.name == "rate"
    x = np.random.default_rng(1).random((3, 1, 8, 8))
    for name, r in snn.target_rates(x).items():
        assert np.array_equal(r, loaded.target_rates(x)[name])


def _spikes(snn, x, conv="shared"):
    rates = snn.target_rates(x)[snn.mapped.populations[0].name]
    with CompiledNetwork(snn.mapped, len(x), duration=40 * ms, dt=0.1 * ms, encoder="regular", device="cpp",
                         seed=0, threads=1, conv=conv) as net:
        out = net.run(rates)
    return out


# --- convolutions kept as their kernel and geometry (format version 2) --------------------------------

def _members(path):
    with zipfile.ZipFile(path) as zf:
        return json.loads(zf.read(HEADER)), set(zf.namelist())


def _assert_same_projections(a, b):
    """Kernels, geometries and unrolled synapses (computed from the kernel) equal, bit for bit."""
    for pa, pb in zip(a.mapped.populations, b.mapped.populations):
        for qa, qb in zip(pa.projections, pb.projections, strict=True):
            assert qa.source == qb.source and len(qa.kernels) == len(qb.kernels) and qa.unshared == qb.unshared
            for ka, kb in zip(qa.kernels, qb.kernels):
                assert ka.geometry == kb.geometry and np.array_equal(ka.kernel, kb.kernel)
                assert ka.kernel.dim == kb.kernel.dim
            for x, y in zip((qa.i, qa.j, qa.w), (qb.i, qb.j, qb.w)):
                assert x.dtype == y.dtype and np.array_equal(x, y), pb.name
            assert qa.w.dim == qb.w.dim


def test_a_convolution_is_saved_as_its_kernel_and_geometry(tmp_path):
    snn = _v1_network()
    path = snn.save(tmp_path / "net.bioconv")
    header, members = _members(path)
    assert header["version"] == 3
    conv = header["populations"][1]["projections"][0]
    q = snn.mapped.populations[1].projections[0]
    assert conv["form"] == "conv" and conv["geometry"] == q.kernels[0].geometry.to_dict()
    assert not any(m.startswith("populations/1/projections/0/") and m.endswith(("/i.npy", "/j.npy", "/w.npy"))
                   for m in members)  # no synapse is stored: 3 x 1 x 3 x 3 kernel values for 1452 synapses
    kernel = np.load(path)[conv["kernel"]["array"]]
    assert kernel.shape == (3, 1, 3, 3) and q.n_synapses == 1452
    loaded = bioconv.load(path)
    lq = loaded.mapped.populations[1].projections[0]
    assert repr(lq).endswith("unrolled=not computed)")  # the synapses only when a simulation asks for them
    assert lq.n_synapses == q.n_synapses
    _assert_same_projections(snn, loaded)
    for conv_form in ("shared", "unrolled"):
        _same_network(snn, loaded, conv=conv_form)


def _every_kind_network():
    from test_shared_conv import _every_kind_graph  # a kernel after a pooling, kernel + identity, converging kernels
    return convert(_every_kind_graph(), np.random.default_rng(1).random((6, 2, 6, 6)), tau_ref=1 * ms)


def test_every_kind_of_convolution_projection_round_trips(tmp_path):
    """A kernel read through an average pooling, one with a stride, and a kernel plus the identity from
    one source (form 'conv_terms': the kernel, the rest, and the unrolled sum)."""
    snn = _every_kind_network()
    path = snn.save(tmp_path / "net.bioconv")
    header, _ = _members(path)
    forms = {(p["name"], q["source"]): q["form"] for p in header["populations"] for q in p["projections"]}
    assert forms[("r3", "r2")] == "conv_terms" and forms[("r3", "r1")] == "conv" and forms[("r2", "r1")] == "conv"
    assert header["populations"][2]["projections"][0]["geometry"]["pool"] == [2, 2]
    loaded = bioconv.load(path)
    _assert_same_projections(snn, loaded)
    for conv_form in ("shared", "unrolled"):
        _same_network(snn, loaded, conv=conv_form)


@pytest.mark.slow
@pytest.mark.parametrize("conv", ["shared", "unrolled"])
def test_a_loaded_convnet_gives_the_same_spikes_in_both_conv_forms(tmp_path, conv):
    """cpp device, regular encoder: each convolution run as a shared kernel, or as its unrolled synapses
    (computed, in the loaded network, from the kernel): every population's counts and every output spike."""
    snn = _every_kind_network()
    loaded = bioconv.load(snn.save(tmp_path / "net.bioconv"))
    x = np.random.default_rng(5).random((3, 2, 6, 6))
    a, b = _spikes(snn, x, conv), _spikes(loaded, x, conv)
    assert a.counts.keys() == b.counts.keys()
    for name in a.counts:
        assert a.counts[name].sum() > 0, name  # every population fires: the comparison can fail
        assert np.array_equal(a.counts[name], b.counts[name]), name
    for field in ("out_sample", "out_unit", "out_t"):
        assert np.array_equal(getattr(a, field), getattr(b, field)), field


@pytest.mark.slow
def test_loaded_network_gives_the_same_spikes(tmp_path):
    """Regular encoder, cpp device: every population's counts and every output spike time equal."""
    snn = _v1_network()
    loaded = bioconv.load(snn.save(tmp_path / "net.bioconv"))
    x = np.random.default_rng(5).random((4, 1, 8, 8))
    a, b = _spikes(snn, x), _spikes(loaded, x)
    assert a.counts.keys() == b.counts.keys() and sum(c.sum() for c in a.counts.values()) > 0
    for name in a.counts:
        assert np.array_equal(a.counts[name], b.counts[name]), name
    for field in ("out_sample", "out_unit", "out_t"):
        assert np.array_equal(getattr(a, field), getattr(b, field)), field


def test_loading_needs_no_torch(tmp_path):
    path = _v1_network().save(tmp_path / "net.bioconv")
    code = ("import sys; sys.modules['torch'] = None\n"  # any import of torch now fails
            f"import bioconv; snn = bioconv.load({str(path)!r}); print(snn.table())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "population" in out.stdout


def test_format_version_1_of_4bce817_keeps_loading():
    """Written before version 2: its convolution is unrolled synapses, so the loaded network has no
    kernel to share; it is the network the current code converts, synapse for synapse."""
    with zipfile.ZipFile(V1_4BCE817_FILE) as zf:
        header = json.loads(zf.read(HEADER))
    assert header["version"] == 1 and header["populations"][1]["projections"][0]["form"] == "sparse"
    loaded = bioconv.load(V1_4BCE817_FILE, on_model_change="warn")
    fresh = _v1_4bce817_network()
    assert loaded.coding == fresh.coding == RateCoding(**V1_4BCE817_SETTINGS)
    assert not loaded.mapped.populations[1].projections[0].kernels
    assert fresh.mapped.populations[1].projections[0].kernels
    _same_network(fresh, loaded)


@pytest.mark.slow
def test_format_version_1_of_4bce817_gives_the_same_spikes():
    """The old file (unrolled synapses) against today's conversion simulated with its shared kernel."""
    loaded = bioconv.load(V1_4BCE817_FILE, on_model_change="warn")
    x = np.random.default_rng(5).random((4, 1, 8, 8))
    a, b = _spikes(_v1_4bce817_network(), x, conv="shared"), _spikes(loaded, x, conv="shared")
    assert sum(c.sum() for c in a.counts.values()) > 0
    for name in a.counts:
        assert np.array_equal(a.counts[name], b.counts[name]), name
    for field in ("out_sample", "out_unit", "out_t"):
        assert np.array_equal(getattr(a, field), getattr(b, field)), field


def test_format_version_1_keeps_loading():
    loaded = bioconv.load(V1_FILE, on_model_change="warn")
    with zipfile.ZipFile(V1_FILE) as zf:
        assert json.loads(zf.read(HEADER))["version"] == 1
    fresh = _v1_network()
    assert [(p.name, p.kind, p.size) for p in loaded.mapped.populations] == \
        [(p.name, p.kind, p.size) for p in fresh.mapped.populations]
    assert loaded.scales == fresh.scales
    _same_network(fresh, loaded)


def test_files_of_the_first_version_1_writer_restore_their_coding():
    """Its coding record holds rate_max only; the rest comes from its conversion settings, not defaults."""
    with zipfile.ZipFile(D86ACE3_FILE) as zf:
        header = json.loads(zf.read(HEADER))
    assert header["version"] == 1 and set(header["coding"]["params"]) == {"rate_max"}
    loaded = bioconv.load(D86ACE3_FILE, on_model_change="warn")
    fresh = _d86ace3_network()
    assert loaded.coding == fresh.coding == RateCoding(**D86ACE3_SETTINGS)
    assert loaded.coding["tau_s"] == 3 * ms and loaded.coding["bias"] == "leak"
    _same_network(fresh, loaded)


def test_a_re_saved_first_writer_file_keeps_its_coding(tmp_path):
    loaded = bioconv.load(D86ACE3_FILE, on_model_change="warn")
    again = bioconv.load(loaded.save(tmp_path / "again.bioconv"), on_model_change="warn")
    assert again.coding == RateCoding(**D86ACE3_SETTINGS)


@pytest.mark.slow
def test_files_of_the_first_version_1_writer_give_the_same_spikes():
    loaded = bioconv.load(D86ACE3_FILE, on_model_change="warn")
    x = np.random.default_rng(5).random((4, 1, 8, 8))
    a, b = _spikes(_d86ace3_network(), x), _spikes(loaded, x)
    assert sum(c.sum() for c in a.counts.values()) > 0
    for name in a.counts:
        assert np.array_equal(a.counts[name], b.counts[name]), name
    for field in ("out_sample", "out_unit", "out_t"):
        assert np.array_equal(getattr(a, field), getattr(b, field)), field


_NON_DEFAULT = dict(normalization="max", Cm=200 * pF, v_th=15 * mV, tau_ref=1 * ms, rate_max=150 * Hz,
                    synapse="exponential", tau_s=3 * ms, bias="neuron", reset="value")


def test_a_coding_record_without_settings_is_filled_from_the_mapped_network(tmp_path):
    """No conversion settings and rate_max only: every parameter the mapped network holds is restored."""
    snn = convert(networks.graph("small_convnet"), np.random.default_rng(0).random((10, 1, 8, 8)), **_NON_DEFAULT)

    def edit(h):
        h["conversion"] = {}
        h["coding"]["params"] = {"rate_max": h["coding"]["params"]["rate_max"]}
    path = _with_header(snn.save(tmp_path / "net.bioconv"), tmp_path / "bare.bioconv", edit)
    loaded = bioconv.load(path)
    assert loaded.conversion == {} and loaded.coding == snn.coding == RateCoding(**_NON_DEFAULT)


def test_a_network_made_without_a_coding_reads_its_parameters_from_the_mapping():
    """`SNN(..., coding=None)` (as `from_nir` makes them): Cm, v_th, tau_ref from the mapped network."""
    snn = convert(networks.graph("small_convnet"), np.random.default_rng(0).random((10, 1, 8, 8)), **_NON_DEFAULT)
    bare = SNN(snn.graph, snn.populations, snn.mapped, snn._calibration_acts)
    assert bare.conversion == {} and bare.coding == snn.coding
    potential = convert(networks.graph("small_convnet"), np.random.default_rng(0).random((10, 1, 8, 8)),
                        v_th=15 * mV, readout="potential")
    # the output read by its potential has an unreachable threshold: v_th comes from the firing populations
    assert SNN(potential.graph, potential.populations, potential.mapped, None).coding["v_th"] == 15 * mV


# --- files that must be refused ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    return _v1_network().save(tmp_path_factory.mktemp("io") / "net.bioconv")


def _rewrite(src: Path, dst: Path, change):
    """Copy a network file, passing each member's (name, bytes) through ``change``."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for name in zin.namelist():
            zout.writestr(name, change(name, zin.read(name)))
    return dst


def test_truncated_file_is_refused(saved, tmp_path):
    data = saved.read_bytes()
    cut = tmp_path / "cut.bioconv"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(NetworkFileError, match="cut.bioconv.*truncated"):
        bioconv.load(cut)


def test_altered_array_is_refused_by_name(saved, tmp_path):
    def change(name, data):
        if name == "populations/1/params/gl.npy":
            return data[:-8] + np.float64(1e-6).tobytes()  # one leak conductance changed
        return data
    with pytest.raises(NetworkFileError, match="populations/1/params/gl.npy.*sha256"):
        bioconv.load(_rewrite(saved, tmp_path / "t.bioconv", change))


def test_altered_header_is_refused(saved, tmp_path):
    def change(name, data):
        return data.replace(b'"reset": "linear"', b'"reset": "value"') if name == HEADER else data
    with pytest.raises(NetworkFileError, match="header.json does not match its digest"):
        bioconv.load(_rewrite(saved, tmp_path / "t.bioconv", change))


def _with_header(saved, dst, edit):
    """A consistent file (digest recomputed) whose header ``edit`` changed."""
    header = {}

    def change(name, data):
        if name == HEADER:
            header.update(json.loads(data))
            edit(header)
            return json.dumps(header).encode()
        return data
    path = _rewrite(saved, dst, change)
    text = json.dumps(header).encode()
    return _rewrite(path, dst.with_suffix(".2"), lambda n, d: (hashlib.sha256(text).hexdigest().encode()
                                                               if n == HEADER_DIGEST else d))


def test_damaged_bytes_are_refused_by_name(saved, tmp_path):
    """Single bytes flipped anywhere in the file (headers, compressed members, the directory): each
    damaged file is refused as a NetworkFileError naming it (never zlib's or json's own error), or,
    where the byte changes nothing that is read, loads."""
    data = saved.read_bytes()
    refused = 0
    for k, pos in enumerate(range(7, len(data), max(1, len(data) // 150))):
        bad = bytearray(data)
        bad[pos] ^= 0x5A
        path = tmp_path / f"flip{k}.bioconv"
        path.write_bytes(bytes(bad))
        try:
            bioconv.load(path)
        except NetworkFileError as err:
            assert f"flip{k}.bioconv" in str(err), err
            refused += 1
    assert refused > 100  # almost every byte of a compressed, digested file matters


@pytest.mark.parametrize("field, value", [("network", []), ("models", []), ("conversion", []), ("coding", None)])
def test_a_header_with_mistyped_fields_is_refused(saved, tmp_path, field, value):
    path = _with_header(saved, tmp_path / "typed.bioconv", lambda h: h.update({field: value}))
    with pytest.raises(NetworkFileError, match="typed.*header does not follow format version"):
        bioconv.load(path)


def test_a_population_model_or_parameter_unit_edited_past_the_digest_is_refused(saved, tmp_path):
    path = _with_header(saved, tmp_path / "model.bioconv",
                        lambda h: h["populations"][1].update(neuron="../../etc/passwd"))
    with pytest.raises(NetworkFileError, match="population '1' names neuron model '../../etc/passwd', which is not "
                                               "among the file's models"):
        bioconv.load(path)

    def volt(h):
        h["populations"][1]["params"]["Cm"]["unit"] = "volt"
    with pytest.raises(NetworkFileError, match="population '1', parameter 'Cm' has dimension .*, where model "
                                               "'conductance_lif' declares pF"):
        bioconv.load(_with_header(saved, tmp_path / "unit.bioconv", volt))


def test_newer_format_version_is_refused(saved, tmp_path):
    path = _with_header(saved, tmp_path / "new.bioconv", lambda h: h.update(version=99))
    with pytest.raises(NetworkFileError, match="newer bioconv.*format version 99.*reads versions up to 3"):
        bioconv.load(path)


def test_unknown_projection_form_is_refused(saved, tmp_path):
    path = _with_header(saved, tmp_path / "form.bioconv",
                        lambda h: h["populations"][1]["projections"][0].update(form="kernel"))
    with pytest.raises(NetworkFileError, match="population '1', projection 0 has projection form 'kernel'"):
        bioconv.load(path)


def test_a_version_1_file_with_a_version_2_form_is_refused(saved, tmp_path):
    path = _with_header(saved, tmp_path / "v1conv.bioconv", lambda h: h.update(version=1))
    with pytest.raises(NetworkFileError, match="population '1', projection 0 has projection form 'conv'; format "
                                               "version 1 holds"):
        bioconv.load(path)


def test_a_geometry_that_does_not_join_its_populations_is_refused(saved, tmp_path):
    def edit(h):  # a valid convolution, to a map of another size than its target population
        h["populations"][1]["projections"][0]["geometry"].update(out_shape=[3, 6, 6], padding=[0, 0])
    with pytest.raises(NetworkFileError, match=r"projection 'input' -> '1' holds a convolution from \(1, 8, 8\) to "
                                               r"\(3, 6, 6\), but joins populations of shapes \(1, 8, 8\) and \(3, 8, 8\)"):
        bioconv.load(_with_header(saved, tmp_path / "geom.bioconv", edit))

    def edit1(h):  # a kernel of another size than the geometry's
        h["populations"][1]["projections"][0]["geometry"].update(out_shape=[3, 7, 7], padding=[0, 0], kernel=[2, 2])
    with pytest.raises(NetworkFileError, match=r"population '1', projection 0: KernelTerm: kernel of shape \(3, 1, 3, 3\), "
                                               r"the geometry takes \(3, 1, 2, 2\)"):
        bioconv.load(_with_header(saved, tmp_path / "geom1.bioconv", edit1))

    def edit2(h):
        h["populations"][1]["projections"][0]["geometry"].update(stride=[0, 1])
    with pytest.raises(NetworkFileError, match="population '1', projection 0: not a convolution's geometry"):
        bioconv.load(_with_header(saved, tmp_path / "geom2.bioconv", edit2))


def test_missing_and_foreign_files_are_refused(tmp_path):
    with pytest.raises(NetworkFileError, match="nothere.bioconv.*does not exist"):
        bioconv.load(tmp_path / "nothere.bioconv")
    np.savez(tmp_path / "plain.npz", x=np.zeros(3))
    with pytest.raises(NetworkFileError, match="not a saved bioconv network"):
        bioconv.load(tmp_path / "plain.npz")


def test_changed_model_file_is_refused_or_warned(saved, tmp_path, monkeypatch):
    """A model file of the same name but other text: an error by default, a named warning on request."""
    from bioconv import models
    lib = Path(models.load("conductance_lif").path)
    folder = tmp_path / "models"
    folder.mkdir()
    shutil.copy(lib, folder / lib.name)
    (folder / lib.name).write_text(lib.read_text() + "\n# edited\n")
    monkeypatch.setenv("BIOCONV_EQUATIONS", str(folder))
    with pytest.raises(NetworkFileError, match="another version of model 'conductance_lif'"):
        bioconv.load(saved)
    with pytest.warns(ModelChangedWarning, match="conductance_lif"):
        bioconv.load(saved, on_model_change="warn")


if __name__ == "__main__":  # wrote the version-1 fixture (when format version 1 was current)
    raise SystemExit("format version 1 is no longer written: tests/data/small_convnet_v1.bioconv stays as it is")
