"""Network-level sweeps of a saved network (`SNN.save` / `bioconv.load`) on a user's data file: paths
read at the door (relative ones from the TOML file's folder), files identified by their sha256 in the
points' configs, the saved network's conversion settings taken from it, and every missing or
mismatched file named."""
from __future__ import annotations

import hashlib
import shutil
import textwrap
from pathlib import Path

import numpy as np
import pytest
from brian2 import pF

import bioconv
from bioconv import sweep
from bioconv.errors import BioconvError
from bioconv.sweep import SweepSpecError
from bioconv.sweep.network import load_network
import networks  # noqa: E402  (tests/networks.py)

FILE = networks.saved_small_convnet()  # leak bias, linear reset, delta; saved by this version


def _sha(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _data(folder, n=6, labels=True, shape=(1, 8, 8)):
    """A user's data file: random images, labelled with the ANN's decisions (or unlabelled)."""
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, (n, *shape))
    if not labels:
        path = Path(folder) / "x.npy"
        np.save(path, x)
        return path, x
    snn = bioconv.load(FILE)
    y = snn.graph.forward(x)[snn.graph.output].reshape(n, -1).argmax(1)
    path = Path(folder) / "data.npz"
    np.savez(path, x=x, y=y)
    return path, x


def test_a_saved_network_and_a_users_data_enter_the_config_by_path_and_sha256(tmp_path):
    data, _ = _data(tmp_path)
    spec = sweep.Spec(level="network", grid={"Cm": [60, 100] * pF}, fixed={"network": str(FILE), "data": str(data),
                                                                            "n_test": 6})
    c = spec.configs[0]
    assert c["network"] == str(FILE) and c["network_sha256"] == _sha(FILE)
    assert c["data"] == str(data.resolve()) and c["data_sha256"] == _sha(data)
    # the saved network's own conversion settings, not the zoo's defaults
    assert (c["bias"], c["reset"], c["synapse"], c["normalization"], c["n_calibration"]) == \
        ("leak", "linear", "delta", "p99.9", 20)
    # a TOML file reads relative paths from its own folder
    (tmp_path / "nets").mkdir()
    shutil.copy(FILE, tmp_path / "nets" / "net.bioconv")
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "sweep.toml").write_text(textwrap.dedent("""
        level = "network"
        [fixed]
        network = "../nets/net.bioconv"
        data = "../data.npz"
        n_test = 6
        [grid]
        Cm = ["60 pF", "100 pF"]
    """))
    toml = sweep.Spec.from_toml(tmp_path / "cfg" / "sweep.toml")
    assert toml.configs[0]["network"] == str((tmp_path / "nets" / "net.bioconv").resolve())
    assert toml.configs[0]["network_sha256"] == c["network_sha256"]
    # zoo points keep the configs they had before files existed: no file keys, the zoo's settings
    zoo = sweep.Spec(level="network", grid={"Cm": [60] * pF}).configs[0]
    assert not {"data", "network_sha256", "data_sha256"} & set(zoo) and zoo["bias"] == "current"


def test_missing_and_mismatched_files_are_named(tmp_path):
    data, _ = _data(tmp_path)
    fixed = {"network": str(FILE), "data": str(data), "n_test": 6}

    def spec(**kw):
        return sweep.Spec(level="network", grid={"Cm": [60] * pF}, fixed=dict(fixed, **kw))
    with pytest.raises(SweepSpecError, match=r"parameter 'network': file '.*nope\.bioconv' does not exist \(nor is "
                                             r"'.*nope\.bioconv' one of \['mlp', 'convnet'\]\)"):
        spec(network=str(tmp_path / "nope.bioconv"))
    with pytest.raises(SweepSpecError, match=r"parameter 'data': file '.*missing\.npz' does not exist"):
        spec(data=str(tmp_path / "missing.npz"))
    with pytest.raises(SweepSpecError, match=r"reset = 'value', but the saved network .* was converted with "
                                             r"reset = 'linear'"):
        spec(reset="value")
    (tmp_path / "small").mkdir()
    small, _ = _data(tmp_path / "small", labels=False, shape=(1, 5, 5))
    with pytest.raises(SweepSpecError, match=r"holds inputs of shape \(1, 5, 5\); network .* takes \(1, 8, 8\)"):
        spec(data=str(small))
    with pytest.raises(SweepSpecError, match=r"n_test = 10, but data .* holds 6 samples"):
        spec(n_test=10)
    with pytest.raises(SweepSpecError, match=r"takes inputs of shape \(1, 8, 8\), not MNIST digits"):
        sweep.Spec(level="network", grid={"Cm": [60] * pF}, fixed={"network": str(FILE)})
    junk = tmp_path / "junk.bioconv"
    junk.write_bytes(b"not a network")
    with pytest.raises(SweepSpecError, match=r"network '.*junk\.bioconv' cannot be loaded"):
        spec(network=str(junk))
    # a file that changes after the spec: the worker refuses it, naming it
    copy = tmp_path / "net.bioconv"
    shutil.copy(FILE, copy)
    c = spec(network=str(copy)).configs[0]
    copy.write_bytes(copy.read_bytes() + b"\0")
    with pytest.raises(BioconvError, match=r"network file '.*net\.bioconv' changed since the sweep was specified"):
        load_network(**{k: c[k] for k in ("network", "n_test", "n_calibration", "normalization", "bias", "reset",
                                           "synapse", "data", "network_sha256", "data_sha256")})


# A sweep that runs a saved network on a user's data file end to end: tests/test_sweep_seeds.py (one
# compile serves that and the seed checks).
