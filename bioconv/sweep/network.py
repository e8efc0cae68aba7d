"""The network-level sweep: every point is a converted network evaluated on the same test digits, one
row per point (accuracy, agreement with the ANN, per-layer correlation, synaptic events, ...).

Structural values (the network, the conversion settings, dt, T, the encoder, the number of digits)
decide the compiled shape; the sweepable parameters of `bioconv.simulate.sweepable` (Cm, gl,
tau_ref, v_th, v_reset, EL, tau_s, rate_max, bias_scale, gl_scale) are per-point values, passed as
run_args to copies of one compiled project (`sweepable.evaluate_points`). A worker converts each
structure once per process and keeps it; compiled projects are shared through the project cache.

A point sets only the parameters it names; the others keep the mapping's values, which the
structure decides, so the canonical config holds only the named ones.
"""
from __future__ import annotations

import functools

import numpy as np
from brian2 import Quantity, second

from .level import Level
from .params import Param

NETWORKS = ("mlp", "convnet")


class NetworkLevel(Level):
    """Converted zoo networks on MNIST test digits; see the module's docstring.

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
        return {
            "network": choice("network", NETWORKS, "mlp", "reference network of bioconv.zoo"),
            "n_test": count("n_test", 300, "held-out MNIST digits evaluated per point (the first ones)"),
            "n_calibration": count("n_calibration", 1000, "training digits for data-based normalization"),
            "normalization": choice("normalization", ("max", "p99", "p99.9", "p99.99"), "p99.9",
                                    "normalization percentile"),
            "bias": choice("bias", ("current", "neuron", "leak"), "current", "bias strategy"),
            "reset": choice("reset", ("linear", "value"), "linear", "reset mode"),
            "synapse": choice("synapse", ("delta", "exponential", "alpha"), "delta", "synaptic kernel"),
            "encoder": choice("encoder", ("regular", "current", "poisson"), "regular",
                              "input encoding (Poisson: with a per-point seed)"),
            "dt": Param("dt", "quantity", dim=second.dim, structural=True, constraint="positive", default="0.1 ms"),
            "T": Param("T", "quantity", dim=second.dim, structural=True, constraint="positive", default="200 ms",
                       description="presentation time per digit"),
        }

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
        n = len(next(iter(c.values()))) if c else 0
        rules = []
        if "rate_max" in c and "tau_ref" in c:
            rules.append((c["rate_max"] * c["tau_ref"] >= 1, "rate_max x tau_ref must stay below 1"))
        if "v_th" in c and "v_reset" in c:
            rules.append((c["v_reset"] >= c["v_th"], "v_reset must lie below v_th"))
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
        snn, x, y = load(**{k: structure[k] for k in ("network", "n_test", "n_calibration", "normalization", "bias",
                                                       "reset", "synapse")})
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
                              sweepable=built or None, seeds=None if seeds is None else [seeds[i] for i in good])
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
def load_network(*, network, n_test, n_calibration, normalization, bias, reset, synapse):
    """(snn, x_test, y_test): a zoo network converted with these settings, and the first ``n_test``
    held-out digits; kept per worker process, so that a worker converts each structure once."""
    from .. import data, zoo
    from ..converter import convert
    split = data.mnist_subset()
    model = {"mlp": zoo.mnist_mlp, "convnet": zoo.mnist_convnet}[network]()
    snn = convert(model, split.x_train[:n_calibration], normalization=normalization, bias=bias, reset=reset,
                  synapse=synapse)
    return snn, split.x_test[:n_test], split.y_test[:n_test]
