"""Saved networks of every coding scheme (`bioconv.io`, format version 2): the file records the scheme
and its parameters, and a loaded network gives the same spikes as the one saved. A scheme registered
later needs its case in `_simulate` (the test fails until it has one)."""
from __future__ import annotations

import json
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from brian2 import ms, mV, pF

import bioconv
from bioconv.coding import schemes
from bioconv.converter import convert
from bioconv.io import NetworkFileError
from bioconv.io.archive import HEADER
from bioconv.simulate.runner import CompiledNetwork
from test_io import _with_header

#: Parameters away from each scheme's defaults, so that a value lost on the way would show.
PARAMS = {
    "rate": dict(bias="neuron", synapse="exponential", tau_s=2 * ms, tau_ref=0.5 * ms, Cm=150 * pF),
    "ttfs": dict(T_w=2 * ms, v_th=15 * mV, Cm=150 * pF, strict=False, dynamic_threshold=False, half_step=True),
    "css": dict(beta=1.8, steps=8, Ts=2, ternary=True, percentile=99.0, adjust=1, adjust_samples=4),
}


def _convert(name):
    graph, x = schemes[name]().example()
    return convert(graph, x if schemes[name].needs_calibration else None, coding=name, **PARAMS[name]), x


def _simulate(snn, x) -> dict:
    """Every spike the network fires on ``x`` (and what it reads out), as arrays by name."""
    name = snn.coding.name
    if name == "rate":
        rates = snn.target_rates(x)[snn.mapped.populations[0].name]
        with CompiledNetwork(snn.mapped, len(x), duration=30 * ms, dt=0.1 * ms, encoder="regular",
                             device="runtime") as net:
            out = net.run(rates)
        return {**{f"count {k}": v for k, v in out.counts.items()},
                **{f: getattr(out, f) for f in ("out_sample", "out_unit", "out_t")}}
    if name == "ttfs":
        out = snn.coding.simulate(snn, x, steps=20)
        return {**{f"time {k}": v for k, v in out.times.items()}, **{f"spikes {k}": v for k, v in out.spikes.items()},
                "potential": out.potential_trace}
    if name == "css":
        out = snn.coding.simulate(snn, x, device="runtime", record_spikes=True)
        return {**{f"spikes {k}": v for k, v in out.spikes.items()}, "trace": out.trace,
                **{f"positive {k}": v for k, v in out.positive.items()}}
    pytest.fail(f"coding {name!r}: add its case to test_io_schemes._simulate")


@pytest.mark.parametrize("name", sorted(schemes))
def test_every_scheme_round_trips_with_the_same_spikes(tmp_path, name):
    snn, x = _convert(name)
    path = snn.save(tmp_path / f"{name}.bioconv")
    with zipfile.ZipFile(path) as zf:
        header = json.loads(zf.read(HEADER))
    assert header["coding"]["name"] == name and header["coding"]["params"] == snn.coding.params()
    assert header["network"]["kind"] == ("mapped" if name == "rate" else name)
    loaded = bioconv.load(path)
    assert loaded.coding == snn.coding and loaded.coding.name == name
    assert loaded.table() == snn.table() and loaded.conversion == snn.conversion
    for k, v in snn.targets(x[:4]).items():
        assert np.array_equal(v, loaded.targets(x[:4])[k]), k
    a, b = _simulate(snn, x[:4]), _simulate(loaded, x[:4])
    assert a.keys() == b.keys()
    assert any(np.nansum(np.abs(v)) > 0 for k, v in a.items() if k.startswith(("spikes", "count"))), "nothing fired"
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)  # NaN (no spike) equal to NaN


def test_the_layers_of_a_ttfs_and_a_css_network_are_kept_field_for_field(tmp_path):
    for name in ("ttfs", "css"):
        snn, _ = _convert(name)
        loaded = bioconv.load(snn.save(tmp_path / f"{name}.bioconv"))
        for a, b in zip(snn.mapped.layers, loaded.mapped.layers, strict=True):
            for f, v in vars(a).items():
                if f == "projections":
                    for qa, qb in zip(v, b.projections, strict=True):
                        assert qa.source == qb.source
                        for g in ("i", "j", "weight"):
                            x, y = getattr(qa, g), getattr(qb, g)
                            assert x.dtype == y.dtype and np.array_equal(x, y), (name, a.name, g)
                elif isinstance(v, np.ndarray):
                    assert np.array_equal(v, getattr(b, f)), (name, a.name, f)
                else:
                    assert v == getattr(b, f) and type(v) is type(getattr(b, f)), (name, a.name, f)
    css, _ = _convert("css")
    assert css.mapped.adjustments and bioconv.load(css.save(tmp_path / "c.bioconv")).mapped.adjustments == \
        css.mapped.adjustments
    ttfs, _ = _convert("ttfs")
    again = bioconv.load(ttfs.save(tmp_path / "t.bioconv")).mapped
    assert (again.T_w, again.v_th, again.Cm, again.strict) == (2 * ms, 15 * mV, 150 * pF, False)


def test_a_ttfs_and_a_css_network_load_without_torch(tmp_path):
    paths = [_convert(name)[0].save(tmp_path / f"{name}.bioconv") for name in ("ttfs", "css")]
    code = ("import sys; sys.modules['torch'] = None\n"
            f"import bioconv\nfor p in {[str(p) for p in paths]!r}: print(bioconv.load(p).coding.name)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["ttfs", "css"]


def test_layers_that_do_not_fit_their_coding_or_graph_are_refused(tmp_path):
    path = _convert("ttfs")[0].save(tmp_path / "ttfs.bioconv")
    with pytest.raises(NetworkFileError, match="its network holds 'ttfs' layers but its coding is 'css'"):
        bioconv.load(_with_header(path, tmp_path / "a.bioconv",
                                  lambda h: h.update(coding=dict(name="css", params=schemes["css"]().params()))))
    with pytest.raises(NetworkFileError, match="its layers .* are not those of its graph under coding 'ttfs'"):
        bioconv.load(_with_header(path, tmp_path / "b.bioconv", lambda h: h["layers"][1].update(shape=[5, 1])))
    with pytest.raises(NetworkFileError, match="network kind 'tsa' is not one this bioconv reads"):
        bioconv.load(_with_header(path, tmp_path / "c.bioconv", lambda h: h["network"].update(kind="tsa")))

    def out_of_range(h):
        h["layers"][1]["projections"][0]["source"] = "nowhere"
    with pytest.raises(NetworkFileError, match="layer '.*' has a projection from unknown layer 'nowhere'"):
        bioconv.load(_with_header(path, tmp_path / "d.bioconv", out_of_range))
