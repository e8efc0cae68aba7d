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


def _same_network(a, b):
    """Everything a simulation takes from a mapped network: its code's shape, weights, parameters."""
    assert repr(N.shape_signature(a.mapped)) == repr(N.shape_signature(b.mapped))
    for values in (N.weight_values, N.parameter_values):
        va, vb = values(a.mapped, 2, "regular"), values(b.mapped, 2, "regular")
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


def _spikes(snn, x):
    rates = snn.target_rates(x)[snn.mapped.populations[0].name]
    with CompiledNetwork(snn.mapped, len(x), duration=40 * ms, dt=0.1 * ms, encoder="regular", device="cpp",
                         seed=0, threads=1) as net:
        out = net.run(rates)
    return out


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


def test_a_ttfs_network_is_refused_by_name_not_saved(tmp_path):
    from bioconv.coding import schemes
    graph, _ = schemes["ttfs"]().example()
    snn = convert(graph, coding="ttfs")
    with pytest.raises(NetworkFileError, match="saving networks of coding 'ttfs' is not supported yet"):
        snn.save(tmp_path / "ttfs.bioconv")
    assert not (tmp_path / "ttfs.bioconv").exists()


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


def test_newer_format_version_is_refused(saved, tmp_path):
    path = _with_header(saved, tmp_path / "new.bioconv", lambda h: h.update(version=99))
    with pytest.raises(NetworkFileError, match="newer bioconv.*format version 99.*reads versions up to 1"):
        bioconv.load(path)


def test_unknown_projection_form_is_refused(saved, tmp_path):
    path = _with_header(saved, tmp_path / "form.bioconv",
                        lambda h: h["populations"][1]["projections"][0].update(form="kernel"))
    with pytest.raises(NetworkFileError, match="population '1', projection 0 has projection form 'kernel'"):
        bioconv.load(path)


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


if __name__ == "__main__":  # writes the version-1 fixture (only when format version 1 is current)
    print(_v1_network().save(V1_FILE))
