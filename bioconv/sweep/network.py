"""The network-level sweep: every point is a converted network evaluated on the same test samples, one
row per point (accuracy, agreement with the ANN, per-layer correlation, synaptic events, ...).

The network is a `bioconv.zoo` network (``network = "mlp"`` or ``"convnet"``, converted on MNIST
training digits with the structure's conversion settings) or a saved network (``network =
"path/net.bioconv"``, written by `SNN.save`; its conversion settings are the file's, and a sweep
cannot change them). The samples are MNIST's held-out digits, or a user's data file (``data =
"path"``: an .npz with ``x`` and optionally ``y``, an .npy of inputs, or an MNIST IDX images file;
`bioconv.io.datasets`; without labels, the ANN's decisions are the labels, so accuracy is agreement
with the ANN). A file is identified by its sha256 in every point's config (``network_sha256``,
``data_sha256``): a changed file makes new points, and a worker refuses a file that changed since
the spec was made.

Structural values (the network, the conversion settings, the data, dt, T, the encoder, the number of
samples) decide the compiled shape; the sweepable parameters of `bioconv.simulate.sweepable` (Cm, gl,
tau_ref, v_th, v_reset, EL, tau_s, rate_max, bias_scale, gl_scale) are per-point values, passed as
run_args to copies of one compiled project (`sweepable.evaluate_points`). A worker converts each
structure once per process and keeps it; compiled projects are shared through the project cache.

A point sets only the parameters it names; the others keep the mapping's values, which the
structure decides, so the canonical config holds only the named ones.
"""
from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path

import numpy as np
from brian2 import Quantity, second

from .level import Level
from .params import Param, SweepSpecError

NETWORKS = ("mlp", "convnet")
#: conversion settings of a zoo network where a spec leaves them unset (a saved network has its own)
ZOO_CONVERSION = {"n_calibration": 1000, "normalization": "p99.9", "bias": "current", "reset": "linear",
                  "synapse": "delta"}
MNIST_SHAPE = (1, 28, 28)


class NetworkLevel(Level):
    """Converted zoo networks or saved networks, on MNIST's test digits or a user's data; see the
    module's docstring.

    ``evaluate_points`` and ``load_network`` replace `sweepable.evaluate_points` and the zoo + data
    loader (``structure -> (snn, x, y)``): another back end, or a test's stand-in."""

    name = "network"
    # about one compiled run's worth: a run holds up to 2^k copies of the network, each a (point, chunk
    # of digits) task; 16 points keep the copies of a run or two busy and a shape spread over workers
    points_per_task = 16
    takes_shape_names = True

    def __init__(self, evaluate_points=None, load_network=None):
        self._evaluate_points = evaluate_points
        self._load_network = load_network

    def structural(self) -> dict[str, Param]:
        def choice(name, choices, default, text):
            return Param(name, "choice", choices=tuple(choices), structural=True, default=default, description=text)

        def count(name, default, text):
            return Param(name, "int", structural=True, constraint="positive", default=default, description=text)
        # the conversion settings default to None: `complete` fills in the zoo's (ZOO_CONVERSION) or the
        # saved network's own, and refuses a given one that a saved network does not have
        return {
            "network": Param("network", "path", choices=NETWORKS, structural=True, default="mlp",
                             description="a bioconv.zoo network (mlp, convnet) or a saved network file (SNN.save)"),
            "data": Param("data", "path", structural=True, default=None,
                          description="test data file (.npz x[, y], .npy x, MNIST IDX images); default: MNIST's "
                                      "held-out digits"),
            "n_test": count("n_test", 300, "test samples evaluated per point (the first ones)"),
            "n_calibration": count("n_calibration", None, "training digits for data-based normalization (zoo)"),
            "normalization": choice("normalization", ("max", "p99", "p99.9", "p99.99"), None,
                                    "normalization percentile"),
            "bias": choice("bias", ("current", "neuron", "leak"), None, "bias strategy"),
            "reset": choice("reset", ("linear", "value"), None, "reset mode"),
            "synapse": choice("synapse", ("delta", "exponential", "alpha"), None, "synaptic kernel"),
            "encoder": choice("encoder", ("regular", "current", "poisson"), "regular",
                              "input encoding (Poisson: with a per-point seed)"),
            "dt": Param("dt", "quantity", dim=second.dim, structural=True, constraint="positive", default="0.1 ms"),
            "T": Param("T", "quantity", dim=second.dim, structural=True, constraint="positive", default="200 ms",
                       description="presentation time per digit"),
        }

    def complete(self, structure: dict, where: str) -> dict:
        """The zoo's conversion settings, or the saved network's (a different given one is refused,
        naming it), the files' sha256, and the data checked against the network (input shape, size)."""
        s = dict(structure)
        if s["network"] in NETWORKS:
            s.update({k: v for k, v in ZOO_CONVERSION.items() if s[k] is None})
            input_shape = MNIST_SHAPE
        else:
            info = _network_file(s["network"], where)
            for k, own in info["settings"].items():
                if s[k] is not None and s[k] != own:
                    raise SweepSpecError(
                        f"{where}: {k} = {s[k]!r}, but the saved network {s['network']!r} was converted with "
                        f"{k} = {own!r}: a saved network's conversion settings are fixed (sweep a zoo network, or "
                        f"save one network per {k})")
                s[k] = own
            s["network_sha256"] = info["sha256"]
            input_shape = info["input_shape"]
        if s.get("data") is None:
            if input_shape != MNIST_SHAPE:
                raise SweepSpecError(f"{where}: network {s['network']!r} takes inputs of shape {input_shape}, not "
                                     f"MNIST digits {MNIST_SHAPE}: give its test data, data = \"path\"")
        else:
            d = _data_file(s["data"], where)
            if d["input_shape"] != input_shape:
                raise SweepSpecError(f"{where}: data {s['data']!r} holds inputs of shape {d['input_shape']}; network "
                                     f"{s['network']!r} takes {input_shape}")
            if s["n_test"] > d["n"]:
                raise SweepSpecError(f"{where}: n_test = {s['n_test']}, but data {s['data']!r} holds {d['n']} "
                                     f"samples")
            s["data_sha256"] = d["sha256"]
        return s

    def parameters(self, structure: dict) -> dict[str, Param]:
        from ..simulate.sweepable import SWEEPABLE
        out = {}
        for name, s in SWEEPABLE.items():
            constraint = None
            if s.lower == 0:
                constraint = "positive" if s.lower_open else "nonnegative"
            # default None: a point that does not name it keeps the mapping's value
            out[name] = Param(name, "quantity", dim=s.dim, constraint=constraint, default=None, description=s.meaning)
        # Poisson input: every point has a seed (0 unless given), so that a seed axis separates the
        # bias of a point from its variance; other encoders draw no random numbers (default None: no seed)
        out["seed"] = Param("seed", "int", constraint="nonnegative", default=0 if structure["encoder"] == "poisson"
                            else None, description="seed of the point's Poisson input (sweepable.run_seed)")
        return out

    def _rules(self, structure, c):
        """(mask of bad points, why) per rule. The limits that involve the mapping's own values (a
        point that sets tau_ref but not rate_max keeps the network's rate_max) are checked against the
        shape's network here, at the door: a saved network's (every point through
        `sweepable.check_point`, as the worker would), or for a zoo network the values its conversion
        gives every population (`_zoo_limits`; only tau_m = tau_s under exact integration, which
        depends on the leaks the data set, is left to the worker)."""
        n = len(next(iter(c.values()))) if c else 0
        rules = []
        if {"rate_max", "tau_ref", "v_th", "v_reset"} & set(c):
            lim = _limits(structure)
            mapped = "where a point does not set it, the network's"
            if "rate_max" in c or "tau_ref" in c:
                rate_max, tau_ref = c.get("rate_max", lim["rate_max"]), c.get("tau_ref", lim["tau_ref"])
                rules.append((np.asarray(rate_max * tau_ref >= 1),
                              f"rate_max x tau_ref must stay below 1 ({mapped} rate_max = {lim['rate_max']:g} Hz, "
                              f"tau_ref up to {lim['tau_ref']:g} s)"))
            if "v_th" in c or "v_reset" in c:
                v_th, v_reset = c.get("v_th", lim["v_th"]), c.get("v_reset", lim["v_reset"])
                rules.append((np.asarray(v_reset >= v_th),
                              f"v_reset must lie below v_th ({mapped} v_th from {lim['v_th']:g} V, v_reset up to "
                              f"{lim['v_reset']:g} V, over its firing populations)"))
        if structure["network"] not in NETWORKS and c:
            rules.append(_file_rule(structure, c))
        if "tau_s" in c and structure["synapse"] == "delta":
            rules.append((np.ones(n, bool), "tau_s needs exponential or alpha synapses, not 'delta'"))
        if "seed" in c and structure["encoder"] != "poisson":
            rules.append((np.ones(n, bool), f"seed applies to encoder = 'poisson'; {structure['encoder']!r} input "
                                            f"draws no random numbers"))
        if "gl_scale" in c and structure["bias"] != "leak":
            rules.append((np.ones(n, bool), "gl_scale applies to networks with bias = 'leak' only"))
        if structure["dt"] >= structure["T"]:
            rules.append((np.ones(n, bool), f"dt = {structure['dt']} s is not below T = {structure['T']} s"))
        return rules

    def check(self, structure, columns):
        if not columns:
            return None
        bad = np.zeros(len(next(iter(columns.values()))), bool)
        for mask, _ in self._rules(structure, columns):
            bad |= np.asarray(mask, bool)
        return bad

    def reason(self, structure, columns):
        return "; ".join(text for mask, text in self._rules(structure, columns) if np.any(mask))

    def evaluate(self, structure: dict, points: list[dict], *, size: int | None = None, names=None) -> list[dict]:
        """``names``: the sweepable build's names, the same for every task of a shape (default: the
        names of ``points``); each row records them as ``sweepable``. A point out of the converted
        network's limits (``tau_ref`` >= 1/rate_max of the mapping, ``v_reset`` >= its v_th, ...)
        becomes an error row naming the culprit; the other points run."""
        from ..errors import BioconvError
        from ..simulate.sweepable import SWEEPABLE, check_point
        evaluate_points = self._evaluate_points
        if evaluate_points is None:
            from ..simulate.sweepable import evaluate_points
        load = self._load_network or load_network
        keys = ("network", "n_test", "n_calibration", "normalization", "bias", "reset", "synapse")
        files = {k: structure[k] for k in ("data", "network_sha256", "data_sha256") if structure.get(k) is not None}
        snn, x, y = load(**{k: structure.get(k) for k in keys}, **files)
        pts = [{name: Quantity(p[name], dim=SWEEPABLE[name].dim) for name in SWEEPABLE if name in p} for p in points]
        built = sorted(n for n in (names if names is not None else set().union(*pts)) if n in SWEEPABLE)
        seeds = [int(p.get("seed", 0)) for p in points] if structure["encoder"] == "poisson" else None
        out: list = [None] * len(pts)
        for i, pt in enumerate(pts):
            try:
                check_point(snn.mapped, pt, built, where=f"network sweep (point {i} of the task)")
            except (BioconvError, ValueError) as err:
                out[i] = {"error": f"{type(err).__name__}: {err}", "sweepable": ",".join(built)}
        good = [i for i in range(len(pts)) if out[i] is None]
        if not good:
            return out
        got = evaluate_points(snn, x, y, [pts[i] for i in good], duration=float(structure["T"]) * second,
                              dt=float(structure["dt"]) * second, encoder=structure["encoder"], device="cpp", threads=1,
                              sweepable=built or None, seeds=None if seeds is None else [seeds[i] for i in good],
                              points_per_run=None if size is None else max(int(size), len(good)))
        rows = []
        for r in got:
            r = dict(r)
            for pop, corr in (r.pop("layer_correlation", None) or {}).items():
                r[f"corr/{pop}"] = float(corr)
            avt = r.pop("accuracy_vs_time", None)
            if avt is not None:
                r["accuracy_vs_time"] = [float(v) for v in np.ravel(avt)]
            row = {k: v for k, v in r.items() if k not in SWEEPABLE and k != "seed"}  # the point's: in its config
            row["sweepable"] = ",".join(built)
            rows.append(row)
        for i, row in zip(good, rows):
            out[i] = row
        return out


@functools.lru_cache(maxsize=4)
def load_network(*, network, n_test, n_calibration, normalization, bias, reset, synapse, data=None,
                 network_sha256=None, data_sha256=None):
    """(snn, x_test, y_test): a zoo network converted with these settings (on the first
    ``n_calibration`` MNIST training digits) or the saved network ``network``, and the first ``n_test``
    samples of ``data`` (default: MNIST's held-out digits; without labels in the file, the ANN's
    decisions). Kept per worker process, so that a worker converts each structure once. A file whose
    sha256 is not the spec's is refused (it changed since the sweep was specified)."""
    from .. import data as mnist
    from ..errors import BioconvError
    if network in NETWORKS:
        from .. import zoo
        from ..converter import convert
        # the network's LayerGraph, not its torch module: a worker then never imports torch (~2 s)
        model = zoo.graph({"mlp": "mnist_mlp", "convnet": "mnist_convnet"}[network])
        snn = convert(model, mnist.mnist_subset().x_train[:n_calibration], normalization=normalization, bias=bias,
                      reset=reset, synapse=synapse)
    else:
        from ..io import load
        _same_file(network, network_sha256, "network")
        snn = load(network)
    if data is None:
        split = mnist.mnist_subset()
        return snn, split.x_test[:n_test], split.y_test[:n_test]
    from ..io import datasets
    _same_file(data, data_sha256, "data")
    ds = datasets.read(data, limit=n_test)
    y = ds.y
    if y is None:
        y = snn.graph.forward(np.asarray(ds.x, dtype=np.float64))[snn.graph.output].reshape(len(ds.x), -1).argmax(1)
    n_out = snn.mapped.populations[-1].size
    if y.min() < 0 or y.max() >= n_out:
        raise BioconvError(f"data file {data!r}: labels must lie in [0, {n_out}) for network {network!r}, got "
                           f"[{y.min()}, {y.max()}]")
    return snn, ds.x, y


# ------------------------------------------------------------------------------------ limits
def _limits(structure: dict) -> dict[str, float]:
    """The network's values the combination limits involve (SI): rate_max, the longest tau_ref, the
    lowest threshold and the highest reset of its firing populations."""
    from ..simulate.sweepable import _unreachable_threshold, membranes
    net = (_zoo_limits_network(structure["bias"], structure["reset"], structure["synapse"])
           if structure["network"] in NETWORKS else _network_file(structure["network"], "network sweep")["mapped"])
    pops = membranes(net)
    firing = [p for p in pops if not _unreachable_threshold(net, p)] or pops

    def values(name, pop_list):
        return np.concatenate([np.ravel(np.asarray(p.params.get(name, 0.0), dtype=float)) for p in pop_list])
    return {"rate_max": float(net.rate_max), "tau_ref": float(values("tau_ref", pops).max()),
            "v_th": float(values("v_th", firing).min()), "v_reset": float(values("v_reset", firing).max())}


@functools.lru_cache(maxsize=16)
def _zoo_limits_network(bias, reset, synapse):
    """A two-layer stand-in converted as `load_network` converts a zoo network (the same call, the
    scheme's defaults for Cm, v_th, tau_ref, rate_max): its populations carry the values every zoo
    population gets, without torch or MNIST."""
    from .. import graph
    from ..converter import convert
    g = graph.sequential((2,), [("linear", {"weight": np.eye(2), "bias": np.array([0.5, -0.5])}), "relu",
                                ("linear", {"weight": np.eye(2), "bias": np.zeros(2)})])
    return convert(g, np.ones((4, 2)), normalization="max", bias=bias, reset=reset, synapse=synapse).mapped


def _file_rule(structure: dict, c: dict) -> tuple[np.ndarray, str]:
    """Every point checked against the saved network as the worker checks it (`check_point`, over the
    shape's names); the first refusal's message says why."""
    from ..errors import BioconvError
    from ..simulate.sweepable import SWEEPABLE, check_point
    net = _network_file(structure["network"], "network sweep")["mapped"]
    names = sorted(k for k in c if k in SWEEPABLE)
    n = len(next(iter(c.values())))
    bad, first = np.zeros(n, bool), ""
    for i in range(n):
        point = {k: Quantity(float(c[k][i]), dim=SWEEPABLE[k].dim) for k in names}
        try:
            check_point(net, point, names, where=f"saved network {structure['network']!r}")
        except (BioconvError, ValueError) as err:
            bad[i] = True
            first = first or str(err)
    return bad, first


# ------------------------------------------------------------------------------------ files
def _sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _same_file(path, sha256, what):
    from ..errors import BioconvError
    if sha256 is not None and _sha256(path) != sha256:
        raise BioconvError(f"{what} file {path!r} changed since the sweep was specified (its sha256 is no longer "
                           f"{sha256[:16]}...): specify the sweep again (its points get new config hashes)")


def _stamp(path) -> tuple:
    st = os.stat(path)
    return str(Path(path).resolve()), st.st_mtime_ns, st.st_size


def _network_file(path, where) -> dict:
    """What a spec needs of a saved network: its sha256, conversion settings, input shape and the
    mapped network (for the spec-time limits); read once per file version."""
    try:
        return _read_network_file(*_stamp(path))
    except SweepSpecError:
        raise
    except Exception as err:  # not a network file, a model file that changed, ...: name the file
        raise SweepSpecError(f"{where}: network {str(path)!r} cannot be loaded: {type(err).__name__}: {err}") from None


@functools.lru_cache(maxsize=8)
def _read_network_file(path, _mtime_ns, _size) -> dict:
    from ..converter import rate_values_of
    from ..io import load
    snn = load(path)
    settings = rate_values_of(snn.mapped, snn.conversion)
    own = {k: settings.get(k) for k in ("normalization", "bias", "reset", "synapse")}
    own["n_calibration"] = snn.conversion.get("n_calibration")
    return {"sha256": _sha256(path), "settings": own, "input_shape": tuple(snn.graph.input_shape),
            "mapped": snn.mapped}


def _data_file(path, where) -> dict:
    try:
        return _read_data_file(*_stamp(path))
    except Exception as err:
        raise SweepSpecError(f"{where}: data {str(path)!r}: {err}") from None


@functools.lru_cache(maxsize=8)
def _read_data_file(path, _mtime_ns, _size) -> dict:
    from ..io import datasets
    ds = datasets.read(path)
    return {"sha256": _sha256(path), "n": len(ds.x), "input_shape": tuple(ds.x.shape[1:])}
