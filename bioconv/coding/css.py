"""Canonic signed spike coding (CSS, seed 002; FORMULAS §7) through the coding-scheme seam.

The physics lives in `bioconv.css`; this module states it as a `CodingScheme`:
``convert(model, x_cal, coding="css", beta=1.5, Ts=1, ...)`` calibrates the spike amplitudes on
``x_cal`` (the 99.99th percentile, Algorithm 2) and, with ``adjust > 0``, runs that many rounds of
A.18's amplitude adjustment on the first ``adjust_samples`` calibration inputs at T = ``steps``.
``SNN.evaluate`` simulates the TSA network itself (`bioconv.css.simulate`): on bioconv's C++
standalone device (``device="cpp"``, the default; compiled once per call, samples one after another
in each run of the binary) or Brian2's runtime device.

Evaluation timing: one Brian2 step (``dt``) is one coding step, of physical length ``step`` (1 ms;
only latencies in seconds depend on it). ``steps`` (default: the scheme's ``steps``, 10) sets T, the
coding steps; ``duration`` is the coding window ``T x step`` (another way to give T). The run
itself lasts the latency ``T + (L - 1) Ts`` steps (L weight layers; `bioconv.css.latency`). The
decision is the argmax of the output layer's accumulated input (its logits; a unique winner, ties
undecided), read after every step: ``times`` holds the end of every step of the run, and the
accuracy at the last one is the evaluation's.

Encoders: ``css`` (Theorem 2's ternary rule, |u| >= 1/2, error <= theta_0 / 2) and ``css_greedy``
(the greedy binary rule, u >= 1, error < theta_0); the default follows ``ternary``.
"""
from __future__ import annotations

import numbers
import time

import numpy as np
from brian2 import Quantity, ms, second

from .. import css
from ..errors import ParameterError
from ..units import check_quantity
from . import metrics
from .encoders import Encoder, encoders
from .scheme import CodingScheme, Param, check_labels, schemes


def _check_int(low):
    def check(value, name, owner):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or value < low:
            raise ParameterError(f"{owner}: {name} must be an integer >= {low}, got {value!r}")
        return int(value)
    return check


def _check_beta(value, name, owner):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) or not 1 < value <= 2:
        raise ParameterError(f"{owner}: {name} must be a number in (1, 2] (amplification per step; Theorem 2's "
                             f"encoder needs beta <= 2), got {value!r}")
    return float(value)


def _check_percentile(value, name, owner):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) or not 0 < value <= 100:
        raise ParameterError(f"{owner}: {name} must be a percentile in (0, 100], got {value!r}")
    return float(value)


def _check_flag(value, name, owner):
    if not isinstance(value, (bool, np.bool_)):
        raise ParameterError(f"{owner}: {name} must be True or False, got {value!r}")
    return bool(value)


class CSSEncoder(Encoder):
    """Theorem 2's input encoder: a TSA neuron without input started at ``u(0) = (a / theta_0) /
    beta^T``, amplified by beta every step, firing by its ``rule``. Its values are the inputs as
    fractions of the input layer's range, ``a / p_0`` (``theta_0 = p_0 / S_T``); the group is built
    by `bioconv.css.simulate` for CSS coding, which simulates itself."""

    value_unit = Quantity(1.0)
    variable = "v"
    unit = Quantity(1.0)
    spiking = True
    deterministic = True
    rate_coded = False  # weighted spikes (a signed binary expansion of the value), not a rate

    def __init__(self, rule: str):
        self.rule = rule
        self.name = "css" if rule == "ternary" else f"css_{rule}"
        # the ternary rule codes either sign; the greedy one fires positive spikes only
        self.nonnegative = rule != "ternary"

    def values(self, net, x):
        x = self.check(x, f"encoder {self.name!r}")
        return {net.layers[0].name: x.ravel()}


for _rule in css.RULES:
    _encoder = CSSEncoder(_rule)
    encoders.register(_encoder.name, _encoder)


@schemes.register("css")
class CSSCoding(CodingScheme):
    """CSS coding with TSA neurons: see the module docstring and `bioconv.css` for the parameters."""

    name = "css"
    PARAMETERS = {
        "beta": Param(1.5, check=_check_beta, bad=2.5, doc="amplification per step (1 < beta <= 2)"),
        "steps": Param(10, check=_check_int(1), bad=0, doc="coding steps T (evaluate's default)"),
        "Ts": Param(1, check=_check_int(0), bad=-1, doc="silent period of every TSA layer, steps"),
        "ternary": Param(True, check=_check_flag, bad="yes",
                         doc="ternary TSA neurons (False: binary, threshold beta^Ts, no negative spikes)"),
        "percentile": Param(css.PERCENTILE, check=_check_percentile, bad=0.0,
                            doc="calibration percentile of the activations (theta_l = p_l / S_T)"),
        "adjust": Param(0, check=_check_int(0), bad=-1, doc="rounds of A.18's amplitude adjustment (0: none)"),
        "adjust_samples": Param(256, check=_check_int(1), bad=0,
                                doc="calibration inputs simulated per adjustment round (the first ones)"),
        "step": Param(1 * ms, dim=second.dim, positive=True, doc="physical length of a coding step (Brian2's dt)"),
    }
    encoders = ("css", "css_greedy")
    default_encoder = "css"
    metric_names = ("accuracy", "ann_accuracy", "agreement", "accuracy_vs_time", "agreement_vs_time",
                    "undecided_fraction", "layer_correlation", "scatter", "synaptic_events", "decision_time",
                    "spikes_per_neuron", "energy_proxy")
    needs_calibration = True
    simulates_itself = True

    # --- mapping ------------------------------------------------------------------------------
    def populations(self, graph):
        css.check_graph(graph)  # max pooling and ReLU1 named before the populations are composed
        return super().populations(graph)

    def map(self, graph, pops, calibration):
        v = self.values
        net, acts = css.map_network(graph, calibration, percentile=v["percentile"], pops=pops)
        if v["adjust"]:
            net = css.adjust_amplitudes(net, calibration[:v["adjust_samples"]], rounds=v["adjust"], steps=v["steps"],
                                        silent=v["Ts"], beta=v["beta"], ternary=v["ternary"], rule=self._rule())
        return net, acts

    def _rule(self, encoder: str | None = None) -> str:
        return encoders[encoder or self.evaluation_defaults()["encoder"]].rule

    def targets(self, snn, x):
        """The ANN's activation of every hidden layer and its output logits: what the layers'
        decoded values (times their theta) and the output's accumulated input should give."""
        acts = snn.graph.forward(x)
        return {p.name: acts[p.name].reshape(len(x), -1) for p in snn.mapped.layers[1:]}

    def encode(self, snn, x, targets=None):
        """The inputs as fractions of the input layer's range, ``a / p_0``."""
        return x.reshape(len(x), -1) / snn.mapped.layers[0].scale

    # --- evaluation ---------------------------------------------------------------------------
    def evaluation_defaults(self):
        v = self.values
        return dict(duration=v["steps"] * v["step"], dt=v["step"],
                    encoder="css" if v["ternary"] else "css_greedy")

    def timing(self, duration, dt, steps, where):
        step = self.values["step"]
        if dt is not None:
            dt = check_quantity(dt, second.dim, "dt", where, positive=True)
            if not np.isclose(float(dt), float(step), rtol=1e-9, atol=0):
                raise ParameterError(f"{where}: under coding 'css' dt is one coding step, the scheme's step ({step}); "
                                     f"got dt={dt}: set step when converting, and steps (T) here")
        if steps is not None and duration is not None:
            raise ParameterError(f"{where}: give steps (the coding steps T) or duration (T x step), not both")
        if steps is not None:
            if isinstance(steps, (bool, np.bool_)) or not isinstance(steps, numbers.Integral) or steps < 1:
                raise ParameterError(f"{where}: steps (the coding steps T) must be a positive integer, got {steps!r}")
            return int(steps) * step, step
        if duration is None:
            return self.values["steps"] * step, step
        duration = check_quantity(duration, second.dim, "duration", where, positive=True)
        n = float(duration / step)
        if abs(n - round(n)) > 1e-9 * n:
            raise ParameterError(f"{where}: under coding 'css' the duration is the coding window T x step; "
                                 f"{duration} is not a whole number of steps of {step}")
        return duration, step

    def evaluate(self, snn, x, y, *, duration, dt, encoder, device, batch, progress, scatter_points, float32,
                 presentations, seeds, threads, **unused):
        """``device``: 'cpp' (bioconv's C++ standalone device, compiled once per call; ``threads``
        OpenMP threads, None: 1) or 'runtime'. ``batch``: copies; ``presentations``: samples one
        after another on each copy in a run (`bioconv.css.simulate`). ``unused``: what the rate
        pipeline plans with (memory_budget, time_points: the decision is read after every step)."""
        if device not in ("runtime", "cpp"):
            raise ParameterError(f"SNN.evaluate: coding 'css' simulates on the 'cpp' or 'runtime' device, got {device!r}")
        seeds = tuple(seeds) if np.iterable(seeds) else (seeds,)
        for name, value, ok in (("float32", float32, not float32), ("seeds", seeds, len(seeds) == 1)):
            if not ok:  # refused rather than ignored: the run would not be what was asked for
                raise ParameterError(f"SNN.evaluate: coding 'css' does not support {name}={value!r} (float64 "
                                     f"simulation, deterministic: one seed)")
        net = snn.mapped
        y = check_labels(y, len(x), net.layers[-1].size, "SNN.evaluate")
        T = int(round(float(duration / dt)))
        t0 = time.perf_counter()
        out = self.simulate(snn, x, steps=T, encoder=encoder, batch=batch, presentations=presentations, device=device,
                            threads=1 if threads is None else threads)
        wall = time.perf_counter() - t0
        res = self.result(snn, x, y, out, scatter_points=scatter_points)
        res.wall_s = res.run_s = res.sim_s = wall
        res.settings.update(encoder=encoder, device=device)
        return res

    def simulate(self, snn, x, *, steps: int | None = None, encoder: str | None = None, batch=None,
                 presentations=None, record_spikes: bool = False, device: str = "runtime",
                 threads: int = 1) -> "css.CSSOutput":
        """`bioconv.css.simulate` of ``snn`` on ``x`` with this scheme's parameters at T = ``steps``
        (default: the scheme's) through ``encoder`` (default: the scheme's)."""
        v = self.values
        x = self.check_inputs(x, snn.graph.input_shape, "CSSCoding.simulate")
        encoder = self.check_encoder(encoder or self.evaluation_defaults()["encoder"], "CSSCoding.simulate")
        encoders[encoder].check(self.encode(snn, x), "CSSCoding.simulate")  # the greedy rule codes no negatives
        return css.simulate(snn.mapped, x, steps=v["steps"] if steps is None else steps, silent=v["Ts"],
                            beta=v["beta"], ternary=v["ternary"], rule=self._rule(encoder), batch=batch,
                            presentations=presentations, step=v["step"], record_spikes=record_spikes, device=device,
                            threads=threads)

    def result(self, snn, x, y, out: "css.CSSOutput", *, scatter_points: int = 2000):
        """The `EvaluationResult` of a simulation ``out`` of ``snn`` on ``x`` with labels ``y``, its
        metrics from `bioconv.coding.metrics`: the decision after every step of the run (times: the
        ends of the steps), decoded values (times theta) correlated with the ANN's activations per
        hidden layer and for the output's logits, spikes of both signs per neuron (the input's not
        counted), SynOPs of both signs, and NeuronOPs = the TSA neurons (hidden and output) x the
        run's steps."""
        from ..converter import EvaluationResult
        net = snn.mapped
        y = check_labels(y, len(x), net.layers[-1].size, "CSSCoding.result")
        targets = self.targets(snn, x)
        out_name = net.layers[-1].name
        ann_pred = targets[out_name].argmax(1)
        step = float(self.values["step"])
        times = step * np.arange(1, out.run_steps + 1)
        pred = metrics.decisions(out.trace)  # (N, run steps)
        final = pred[:, -1]
        decoded = {p.name: out.decoded[p.name] * out.thetas[p.name] for p in net.layers[1:-1]}
        decoded[out_name] = out.potential * out.thetas[out_name]
        corr = metrics.layer_correlation(decoded, targets)
        scatter, rng = {}, np.random.default_rng(0)
        for name, a in decoded.items():
            a, t = a.ravel(), targets[name].ravel()
            pick = rng.choice(len(a), size=min(scatter_points, len(a)), replace=False)
            scatter[name] = (t[pick], a[pick])
        degree = {p.name: out_degree(net, p.name) for p in net.layers[:-1]}
        syn_pos = metrics.synops(out.positive, degree)
        syn_neg = metrics.synops(out.negative, degree)
        neurons = sum(p.size for p in net.layers[1:])
        energy = metrics.energy_proxy(syn_pos + syn_neg, metrics.neuron_updates(neurons, out.run_steps))
        spikes = {name: out.positive[name] + out.negative[name] for name in out.positive if name != net.layers[0].name}
        S_T = css.encodable(out.beta, out.steps)
        res = EvaluationResult(
            accuracy=float(np.mean(final == y)), ann_accuracy=float(np.mean(ann_pred == y)),
            agreement=float(np.mean(final == ann_pred)), layer_correlation=corr, scatter=scatter,
            times=times, accuracy_vs_time=np.mean(pred == y[:, None], axis=0),
            agreement_vs_time=np.mean(pred == ann_pred[:, None], axis=0),
            synaptic_events=int(round(float(syn_pos.sum() + syn_neg.sum()))),
            undecided_fraction=float(np.mean(final == metrics.UNDECIDED)), n_samples=len(x), duration=out.steps * step,
            dt=step, predictions=pred, ann_predictions=ann_pred, decision_time=metrics.decision_time(out.trace, times),
            spikes_per_neuron=metrics.spikes_per_neuron(spikes), energy_proxy=float(np.mean(energy)))
        res.settings = dict(
            coding=self.name, coding_params=self.params(), steps=out.steps, Ts=out.silent,
            latency_steps=out.latency, latency_s=out.latency * step, weight_layers=net.weight_layers,
            thetas=dict(out.thetas), synops_positive=int(round(float(syn_pos.sum()))),
            synops_negative=int(round(float(syn_neg.sum()))),
            spikes_by_sign={n: dict(positive=float(out.positive[n].mean()), negative=float(out.negative[n].mean()))
                            for n in out.positive},
            saturated_fraction={p.name: float(np.mean(targets[p.name] / out.thetas[p.name] >= S_T))
                                for p in net.layers[1:-1]},
            residual_p99_9={n: float(np.percentile(np.abs(r), 99.9)) for n, r in out.residual.items()},
            amplitude_factors={p.name: p.factor for p in net.layers}, adjustments=list(net.adjustments))
        return res

    def settings(self, mapped):
        return dict(weight_layers=mapped.weight_layers)

    def example(self):
        from .. import graph as G
        rng = np.random.default_rng(0)
        graph = G.sequential((6,), [("linear", {"weight": rng.normal(0, 0.6, (5, 6)), "bias": rng.normal(0, 0.1, 5)}),
                                    "relu", ("linear", {"weight": rng.normal(0, 0.6, (3, 5)), "bias": rng.normal(0, 0.1, 3)})])
        return graph, rng.random((16, 6))


def out_degree(net, name: str) -> np.ndarray:
    """Outgoing synapses of every unit of layer ``name`` of a `bioconv.css.CSSNetwork` (a spike of
    either sign is one synaptic operation per outgoing synapse)."""
    n = net.layer(name).size
    deg = np.zeros(n)
    for p in net.layers:
        for q in p.projections:
            if q.source == name:
                deg += np.bincount(q.i, minlength=n)
    return deg
