"""`bioconv convert / evaluate / inspect` as a new user meets them: a torch model in the user's own file,
a weights file and an .npz data set, end to end; and the errors such a user makes, each named."""
from __future__ import annotations

import json
import re
import textwrap

import numpy as np
import pandas as pd
import pytest
from brian2 import ms, pF

import bioconv
import networks
from bioconv import cli
from bioconv.io import datasets

USER_MODEL = textwrap.dedent("""
    import torch
    from torch import nn

    def build():
        return nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3))
    """)


def _torch():
    return pytest.importorskip("torch", reason="torch is not installed: this test converts a user's torch model")


@pytest.fixture
def user_files(tmp_path):
    """What a user brings: a model file with a factory, trained weights, an .npz data set."""
    torch = _torch()
    (tmp_path / "my_model.py").write_text(USER_MODEL)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    torch.save(model.state_dict(), tmp_path / "weights.pt")
    x = np.random.default_rng(0).random((40, 1, 4, 4)).astype(np.float32)
    with torch.no_grad():
        y = model(torch.from_numpy(x)).argmax(1).numpy().astype(np.int64)
    np.savez(tmp_path / "data.npz", x=x, y=y)
    return tmp_path, model


@pytest.mark.slow
def test_convert_then_evaluate_from_the_command_line(user_files, capsys):
    d, _ = user_files
    net, out = d / "net.bioconv", d / "results"
    assert cli.main(["convert", f"{d / 'my_model.py'}:build", "--weights", str(d / "weights.pt"),
                     "--calibration", str(d / "data.npz"), "--Cm", "200pF", "-o", str(net)]) == 0
    printed = capsys.readouterr().out
    assert "Cm=200. pF" in printed and "Saturation" in printed and net.is_file()
    assert bioconv.load(net).conversion["Cm"] == 200 * pF
    assert cli.main(["evaluate", str(net), "--data", str(d / "data.npz"), "--limit", "8", "--duration", "20ms",
                     "--dt", "0.5 ms", "--out", str(out)]) == 0
    for name in ("vs_time.csv", "layers.csv", "summary.json", "summary.md", "vs_time.png", "layers.png"):
        assert (out / name).is_file(), name
    summary = json.loads((out / "summary.json").read_text())
    assert summary["samples"] == 8 and summary["duration_ms"] == pytest.approx(20)
    # the command line ran what the API runs with the same settings
    res = bioconv.load(net).evaluate(np.load(d / "data.npz")["x"][:8], np.load(d / "data.npz")["y"][:8],
                                     duration=20 * ms, dt=0.5 * ms, progress=False)
    assert summary["accuracy"] == res.accuracy and summary["agreement"] == res.agreement
    vs_time = pd.read_csv(out / "vs_time.csv")
    assert list(vs_time.columns) == ["time_ms", "accuracy", "agreement"]
    assert vs_time.accuracy.iloc[-1] == res.accuracy
    assert "nan" not in (out / "summary.md").read_text()
    assert cli.main(["inspect", str(net)]) == 0
    assert "synapses per copy" in capsys.readouterr().out


def test_user_errors_are_named(user_files, capsys):
    torch = _torch()
    d, model = user_files
    cal = ["--calibration", str(d / "data.npz"), "-o", str(d / "n.bioconv")]
    cases = [
        (["convert", f"{d / 'missing.py'}:build", *cal], "missing.py' does not exist"),
        (["convert", f"{d / 'my_model.py'}:biuld", *cal], "has no 'biuld'; callables there: .*build"),
        (["convert", "my_model_without_factory", *cal], "MODEL must be 'package.module:factory'"),
        (["convert", "no_such_package.models:build", *cal], "cannot import module 'no_such_package.models'"),
    ]
    torch.save(model, d / "pickled_module.pt")  # a whole pickled module, not a state dict
    cases.append((["convert", f"{d / 'my_model.py'}:build", "--weights", str(d / "pickled_module.pt"), *cal],
                  "pickled_module.pt' cannot be loaded as weights only"))
    np.savez(d / "wrong.npz", x=np.random.default_rng(0).random((5, 1, 5, 5)))
    cases.append((["convert", f"{d / 'my_model.py'}:build", "--calibration", str(d / "wrong.npz"), "-o",
                   str(d / "n.bioconv")], r"calibration data's shape per sample \(1, 5, 5\) does not fit"))
    cases.append((["convert", f"{d / 'my_model.py'}:build", *cal, "--bias", "sideways"], "bias must be one of"))
    cases.append((["convert", f"{d / 'my_model.py'}:build", "--calibration", str(d / "data.npz"), "-o",
                   str(d / "no_such_folder" / "n.bioconv")], "folder .*no_such_folder' does not exist"))
    for argv, message in cases:
        assert cli.main(argv) == 2, argv
        err = capsys.readouterr().err
        assert re.search(message, err), (argv, err)
    with pytest.raises(SystemExit):  # argparse: a value without its unit
        cli.main(["convert", f"{d / 'my_model.py'}:build", *cal, "--Cm", "200"])
    assert "not a number with a unit" in capsys.readouterr().err


def test_boolean_scheme_flags_take_either_value():
    """--strict / --no-strict (TTFS's ablations): either value can be chosen, whatever the default."""
    import argparse

    from bioconv.cli_network import add_commands
    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers())
    base = ["convert", "m.py:build", "--calibration", "c.npz"]
    assert parser.parse_args([*base, "--no-strict", "--no-dynamic_threshold"]).strict is False
    assert parser.parse_args([*base, "--no-dynamic_threshold"]).dynamic_threshold is False
    assert parser.parse_args([*base, "--strict", "--half_step"]).strict is True
    assert not hasattr(parser.parse_args(base), "strict")  # not given: the API's default applies


TTFS_MODEL = textwrap.dedent("""
    from torch import nn

    def build():  # no hidden bias (TTFS has none); a plain ReLU and free weight sums: strict refuses it
        return nn.Sequential(nn.Flatten(), nn.Linear(16, 8, bias=False), nn.ReLU(), nn.Linear(8, 3))
    """)


def test_ttfs_converts_from_the_command_line_is_saved_and_inspected(user_files, capsys):
    d, _ = user_files
    (d / "ttfs_model.py").write_text(TTFS_MODEL)
    argv = ["convert", f"{d / 'ttfs_model.py'}:build", "--calibration", str(d / "data.npz"), "--coding", "ttfs"]
    assert cli.main(argv) == 2
    assert "pass strict=False" in capsys.readouterr().err
    with pytest.warns(UserWarning):  # ReLU converted as ReLU1, weight sums violated
        assert cli.main([*argv, "--no-strict"]) == 0
    out = capsys.readouterr().out
    assert "does not apply to coding 'ttfs'" in out and "not saved" in out and "output read at" in out
    with pytest.warns(UserWarning):
        assert cli.main([*argv, "--no-strict", "--T_w", "2 ms", "-o", str(d / "t.bioconv")]) == 0
    assert "network saved to" in capsys.readouterr().out
    assert cli.main(["inspect", str(d / "t.bioconv")]) == 0
    out = capsys.readouterr().out
    assert "coding ttfs" in out and "'strict': False" in out and "output read at t = 2 T_w" in out
    assert "11 neurons (input excluded), 152 synapses per copy" in out  # 8 + 3 neurons; 16 x 8 + 8 x 3 weights
    assert bioconv.load(d / "t.bioconv").coding["T_w"] == 2 * ms


@pytest.fixture(scope="module")
def saved_net(tmp_path_factory):
    d = tmp_path_factory.mktemp("net")
    snn = bioconv.convert(networks.graph("single_linear"), np.random.default_rng(0).random((20, 6)))
    return snn.save(d / "net.bioconv")


@pytest.mark.slow
def test_evaluate_without_labels_reports_agreement_only(saved_net, tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.random.default_rng(1).random((6, 6)))
    out = tmp_path / "out"
    assert cli.main(["evaluate", str(saved_net), "--data", str(tmp_path / "x.npy"), "--duration", "20ms",
                     "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["accuracy"] is None and 0 <= summary["agreement"] <= 1
    assert "accuracy" not in pd.read_csv(out / "vs_time.csv").columns
    assert "no labels" in (out / "summary.md").read_text()


def test_evaluate_refuses_bad_files_and_settings(saved_net, tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.random.default_rng(1).random((6, 6)))
    np.save(tmp_path / "wide.npy", np.random.default_rng(1).random((6, 7)))
    cut = tmp_path / "cut.bioconv"
    cut.write_bytes(saved_net.read_bytes()[:-100])
    cases = [
        (["evaluate", str(cut), "--data", str(tmp_path / "x.npy")], "cut.bioconv"),
        (["evaluate", str(saved_net), "--data", str(tmp_path / "wide.npy")], r"shape \(7,\) per sample.*\(6,\)"),
        (["evaluate", str(saved_net), "--data", str(tmp_path / "x.npy"), "--duration", "1ms", "--dt", "2ms"],
         "shorter than one time step"),
        (["evaluate", str(saved_net), "--data", str(tmp_path / "nothing.npz")], "nothing.npz' does not exist"),
    ]
    for argv, message in cases:
        assert cli.main(argv) == 2, argv
        err = capsys.readouterr().err
        assert re.search(message, err), (argv, err)


def test_data_files_npz_npy_and_idx(tmp_path):
    x = np.random.default_rng(0).random((4, 1, 3, 3))
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(4))
    got = datasets.read(tmp_path / "d.npz", limit=3)
    assert np.array_equal(got.x, x[:3]) and np.array_equal(got.y, np.arange(3))
    np.savez(tmp_path / "objects.npz", x=np.array([{"a": 1}], dtype=object))
    with pytest.raises(bioconv.BioconvError, match="objects.npz.*allow_pickle=False"):
        datasets.read(tmp_path / "objects.npz")
    np.savez(tmp_path / "nox.npz", inputs=x)
    with pytest.raises(bioconv.BioconvError, match=r"holds \['inputs'\]; it needs the inputs under 'x'"):
        datasets.read(tmp_path / "nox.npz")
    np.savez(tmp_path / "floaty.npz", x=x, y=np.zeros(4))
    with pytest.raises(bioconv.BioconvError, match="labels 'y' must be integers"):
        datasets.read(tmp_path / "floaty.npz")
    # MNIST IDX: images (uint8, N x H x W) and their labels beside them
    pixels = np.random.default_rng(0).integers(0, 256, (5, 4, 4), dtype=np.uint8)
    labels = np.arange(5, dtype=np.uint8)
    (tmp_path / "t-images-idx3-ubyte").write_bytes(bytes([0, 0, 8, 3]) + b"".join(
        int(n).to_bytes(4, "big") for n in pixels.shape) + pixels.tobytes())
    (tmp_path / "t-labels-idx1-ubyte").write_bytes(bytes([0, 0, 8, 1]) + (5).to_bytes(4, "big") + labels.tobytes())
    got = datasets.read(tmp_path / "t-images-idx3-ubyte")
    assert got.x.shape == (5, 1, 4, 4) and np.allclose(got.x[:, 0], pixels / 255.0)
    assert np.array_equal(got.y, labels)


def _cifar_batch(path, n, seed):
    from test_cifar_data import _write_batch  # the python version's layout: a pickled dict of data and labels
    x, y = _write_batch(path, n, seed)
    return x.reshape(n, 3, 32, 32) / np.float32(255), y


def test_data_files_cifar_batches(tmp_path):
    """A CIFAR-10 batch file by its name, or by its content under another name; read without running
    code from the pickle."""
    x, y = _cifar_batch(tmp_path / "test_batch", 5, 0)
    got = datasets.read(tmp_path / "test_batch", limit=4)
    assert got.x.shape == (4, 3, 32, 32) and got.x.dtype == np.float32
    assert np.array_equal(got.x, x[:4]) and np.array_equal(got.y, y[:4])
    x2, y2 = _cifar_batch(tmp_path / "my_cifar_slice", 3, 1)
    got = datasets.read(tmp_path / "my_cifar_slice")
    assert np.array_equal(got.x, x2) and np.array_equal(got.y, y2)
    import pickle
    with open(tmp_path / "data_batch_1", "wb") as fh:  # a pickle that would run code when loaded
        pickle.dump({b"data": np.zeros((1, 3072), np.uint8), b"labels": [0], b"x": print}, fh, protocol=2)
    with pytest.raises(bioconv.BioconvError, match="data_batch_1.*refused to load (__builtin__|builtins).print"):
        datasets.read(tmp_path / "data_batch_1")
    (tmp_path / "notes.txt").write_text("not data")
    with pytest.raises(bioconv.BioconvError, match="notes.txt.*unknown kind of data file.*CIFAR-10 python batch"):
        datasets.read(tmp_path / "notes.txt")


@pytest.mark.slow
def test_evaluate_a_network_on_a_cifar_batch(tmp_path, capsys):
    """`bioconv evaluate --data test_batch` on a network of CIFAR's input shape, calibrated on another
    batch through the same reader; the command line's results are the API's on the same images."""
    from bioconv import graph as G
    rng = np.random.default_rng(0)
    x_cal, _ = _cifar_batch(tmp_path / "data_batch_1", 12, 1)
    x, y = _cifar_batch(tmp_path / "test_batch", 4, 2)
    graph = G.sequential((3, 32, 32), [("conv2d", dict(weight=rng.normal(0, 0.3, (2, 3, 4, 4)), stride=(8, 8))),
                                       "relu", "flatten", ("linear", dict(weight=rng.normal(0, 0.5, (10, 32))))])
    net = bioconv.convert(graph, datasets.read(tmp_path / "data_batch_1").x).save(tmp_path / "net.bioconv")
    out = tmp_path / "out"
    argv = ["evaluate", str(net), "--data", str(tmp_path / "test_batch"), "--duration", "20ms", "--dt", "0.5ms",
            "--device", "runtime", "--out", str(out)]
    assert cli.main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    res = bioconv.load(net).evaluate(x, y, duration=20 * ms, dt=0.5 * ms, device="runtime", progress=False)
    assert summary["samples"] == 4 and summary["accuracy"] == res.accuracy and summary["agreement"] == res.agreement


def test_flags_are_the_api_parameters_with_its_defaults(capsys):
    """One source: every coding scheme's parameter is a convert flag, every evaluate keyword an
    evaluate flag, each showing the API's default."""
    import inspect

    from bioconv import coding
    from bioconv.converter import SNN
    for command, expected in [
        ("convert", {n: spec.default for s in coding.schemes.names() for n, spec in coding.schemes[s].PARAMETERS.items()}),
        ("evaluate", {n: p.default for n, p in inspect.signature(SNN.evaluate).parameters.items()
                      if p.default is not p.empty and n != "progress"}),
    ]:
        with pytest.raises(SystemExit):
            cli.main([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        for name, default in expected.items():
            assert f"--{name}" in text, (command, name)
            if default is not None and not isinstance(default, tuple):
                assert f"(default: {' '.join(str(default).split())})" in text, (command, name, default)
