"""Rate coding (seed 003; FORMULAS §3, §5): activation 1 is a rate of ``rate_max``.

The mapping law (`bioconv.mapping`), data-based normalization (`bioconv.normalize`), inputs as rates
in Hz, targets as rates, decisions from output spike counts (or first spikes, or membranes) and the
rate metrics (correlation of rates with targets, bias and variance over seeds: FORMULAS §6).

``homeostasis`` (off by default) gives every converted membrane seed 001's homeostatic threshold
(FORMULAS §9), the ``homeostatic`` option of the library's ``conductance_lif`` model: a rate trace
``tau_r dr/dt = -r``, ``r += 1/tau_r`` per spike, and a threshold offset ``theta`` with
``tau_theta dtheta/dt = k_theta (r - r_target)``; the neuron fires at ``v >= v_th + theta`` and the
linear reset subtracts that threshold. ``r_target`` is by default each neuron's *calibration target
rate*: the mean over the calibration inputs of its target rate (normalized ANN activation x rate_max,
`RateCoding.targets`), so a neuron is pushed back towards the rate it fires at on average: its
threshold rises when a sample drives it harder and falls when a sample leaves it quieter (the code's
contrast shrinks). A fixed rate (Hz) for every neuron can be given instead. ``k_theta`` defaults to
``v_th / rate_max``: a rate error of rate_max moves the threshold by v_th per tau_theta. r and theta
start at 0 and return there with the membrane between samples. The threshold has a floor: ``v_th + theta``
never goes below ``v_reset + vt_floor (v_th - v_reset)`` (``vt_floor`` default 0.1), where theta stops
falling (`bioconv.mapping.with_homeostasis`). An output read by its potential never
fires and keeps its plain membrane. See `HOMEOSTASIS`, and the README ("Homeostatic threshold") for
when it helps (short read times) and when it hurts (long ones).
"""
from __future__ import annotations

import numbers

import numpy as np
from brian2 import Hz, farad, mV, ms, pF, second, volt
from brian2.units.fundamentalunits import DIMENSIONLESS

from .. import models
from ..errors import BioconvError, ModelError, ParameterError
from ..mapping import BIAS_STRATEGIES, LEAK_RULES, RESETS, check_parameters, map_network, with_homeostasis
from ..normalize import _percentile_of, activations, compute_scales, saturation
from ..units import check_quantity
from .scheme import CodingScheme, Param, schemes

#: The settings of the ``homeostasis`` option (FORMULAS §9): name -> (default, meaning). A default of
#: None is derived from the other parameters (k_theta: v_th / rate_max).
HOMEOSTASIS = {
    "tau_r": (20 * ms, "time constant of the rate trace r"),
    "tau_theta": (100 * ms, "time constant of the threshold offset theta"),
    "k_theta": (None, "threshold change per unit rate error (volt per Hz); default v_th / rate_max"),
    "r_target": ("calibration", "'calibration' (each neuron's mean target rate over the calibration inputs) "
                                "or one rate (Hz) for every neuron"),
    "vt_floor": (0.1, "the threshold's floor: v_th + theta never below v_reset + vt_floor (v_th - v_reset); "
                      "a number in (0, 1)"),
}
_HOMEOSTASIS_DIMS = {"tau_r": second.dim, "tau_theta": second.dim, "k_theta": (volt / Hz).dim, "r_target": Hz.dim,
                     "vt_floor": DIMENSIONLESS}

# Kernels with a charge per spike (bioconv.analysis.kernel_charge): the ones the rate law maps.
RATE_KERNELS = ("delta", "exponential", "alpha")

READOUTS = ("count", "potential", "first_spike")


def _check_normalization(value, name, owner):
    if isinstance(value, dict):
        if not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in value.values()):
            raise ParameterError(f"{owner}: {name} as a dict maps populations to numbers, got {value!r}")
        return dict(value)
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        if not np.isfinite(value) or value <= 0:
            raise ParameterError(f"{owner}: {name} as a number must be a positive scale, got {value!r}")
        return value
    try:
        _percentile_of(value)
    except BioconvError as err:
        raise ParameterError(f"{owner}: {err}") from None
    return value


def _check_synapse(value, name, owner):
    if not isinstance(value, str):
        raise ParameterError(f"{owner}: {name} must name a synapse model in equations/, got {value!r}")
    # The rate law needs the charge a spike delivers, which only these kernels define; say so here,
    # not after normalization (a step kernel, TTFS's, delivers a charge that grows without end).
    try:
        model = models.load(value)
    except ModelError:  # an unknown or broken model: the mapping's own check names it
        return value
    kernel = getattr(model, "kernel", None)
    if kernel is not None and kernel not in RATE_KERNELS:
        raise ParameterError(f"{owner}: {name}={value!r} has kernel {kernel!r}, which rate coding cannot map "
                             f"(its rate law needs one of {list(RATE_KERNELS)})")
    return value


def _check_homeostasis(value, name, owner):
    """None (off), True (the defaults of `HOMEOSTASIS`) or a dict of some of its settings ('off' and
    'on': the command line's words for None and True); returns None or the full dict (k_theta None
    until `RateCoding.check_parameters` derives it)."""
    if value is None or value is False or (isinstance(value, str) and value == "off"):
        return None
    if value is True or (isinstance(value, str) and value == "on"):
        value = {}
    if not isinstance(value, dict):
        raise ParameterError(f"{owner}: {name} must be None, True ('off', 'on') or a dict of {sorted(HOMEOSTASIS)}, "
                             f"got {value!r}")
    unknown = sorted(set(value) - set(HOMEOSTASIS))
    if unknown:
        raise ParameterError(f"{owner}: {name}: unknown setting(s) {unknown}; known: {sorted(HOMEOSTASIS)}")
    out = {}
    for key, (default, _) in HOMEOSTASIS.items():
        v = value.get(key, default)
        if key == "r_target" and isinstance(v, str):
            if v != "calibration":
                raise ParameterError(f"{owner}: {name}['r_target'] must be 'calibration' or a rate (Hz), got {v!r}")
        elif v is not None:
            v = check_quantity(v, _HOMEOSTASIS_DIMS[key], f"{name}['{key}']", owner,
                               positive=key.startswith("tau") or key == "vt_floor",
                               nonnegative=not key.startswith("tau"))
            if np.size(v) != 1:
                raise ParameterError(f"{owner}: {name}['{key}'] must be one value, got {np.size(v)}")
            v = v.reshape(())
            if key == "vt_floor":
                if not float(v) < 1:
                    raise ParameterError(f"{owner}: {name}['vt_floor'] must lie in (0, 1) (the threshold's floor as a "
                                         f"fraction of v_th - v_reset above v_reset), got {float(v)!r}")
                v = float(v)
        out[key] = v
    return out


@schemes.register("rate")
class RateCoding(CodingScheme):
    """Rate coding: see the module docstring and `bioconv.mapping` for the parameters' meaning."""

    name = "rate"
    PARAMETERS = {
        "normalization": Param("p99.9", check=_check_normalization, bad="p200",
                               doc="'max', 'pXX.X', a number, or a dict of per-population scales"),
        "Cm": Param(100 * pF, dim=farad.dim, positive=True, doc="membrane capacitance"),
        "v_th": Param(20 * mV, dim=volt.dim, positive=True, doc="threshold above reset"),
        "tau_ref": Param(0 * ms, dim=second.dim, nonnegative=True, doc="refractory period"),
        "rate_max": Param(200 * Hz, dim=Hz.dim, positive=True, doc="the rate of activation 1"),
        "synapse": Param("delta", check=_check_synapse, bad=3, doc="synapse model (equations/)"),
        "tau_s": Param(5 * ms, dim=second.dim, positive=True, doc="synaptic time constant (non-delta kernels)"),
        "bias": Param("current", choices=BIAS_STRATEGIES, doc="how biases are realised"),
        "reset": Param("linear", choices=RESETS, doc="reset by subtraction or to a value"),
        "leak_rule": Param("mean_potential", choices=LEAK_RULES, doc="V_eff of the leak bias strategy"),
        "readout": Param("count", choices=READOUTS, doc="how the output layer decides"),
        "homeostasis": Param(None, check=_check_homeostasis, bad={"tau_r": 20},
                             doc="None (off), True or a dict of HOMEOSTASIS settings: seed 001's homeostatic "
                                 "threshold (FORMULAS §9) on every membrane"),
    }
    encoders = ("regular", "poisson", "current", "phase")
    default_encoder = "regular"
    metric_names = ("accuracy", "ann_accuracy", "agreement", "accuracy_vs_time", "agreement_vs_time",
                    "undecided_fraction", "layer_correlation", "scatter", "synaptic_events", "error_terms")
    needs_calibration = True

    def check_parameters(self, values):
        v = values
        check_parameters(Cm=v["Cm"], v_th=v["v_th"], tau_ref=v["tau_ref"], rate_max=v["rate_max"],
                         synapse=v["synapse"], tau_s=v["tau_s"], bias=v["bias"], reset=v["reset"],
                         leak_rule=v["leak_rule"], readout=v["readout"])
        h = v["homeostasis"]
        if h is not None and h["k_theta"] is None:
            values = dict(values, homeostasis=dict(h, k_theta=(v["v_th"] / v["rate_max"]).reshape(())))
        return values

    def check_encoder(self, encoder, where):
        """The declared encoders, and any `PhaseEncoder` registered under a name of its own (another
        K or steps per phase: `bioconv.coding.phase`)."""
        from .encoders import encoders as registered
        from .phase import PhaseEncoder
        if isinstance(encoder, str) and encoder in registered and isinstance(registered[encoder], PhaseEncoder):
            return encoder
        return super().check_encoder(encoder, where)

    def check_inputs(self, x, shape, where):
        x = super().check_inputs(x, shape, where)
        if np.any(x < 0):
            raise BioconvError(f"{where}: inputs hold negative values (min {x.min():.3g}); rate-coded inputs must be "
                               f">= 0: rescale them (e.g. to [0, 1]) and train the ANN on that range")
        return x

    def map(self, graph, pops, calibration):
        v = dict(self.values)
        homeostasis = v.pop("homeostasis")
        acts = activations(graph, pops, calibration)
        scales = compute_scales(pops, acts, v.pop("normalization"))
        mapped = map_network(pops, scales, **v)
        if homeostasis is not None:
            h = dict(homeostasis)
            if isinstance(h["r_target"], str):  # 'calibration': each unit's mean target rate
                r = float(mapped.rate_max)
                h["r_target"] = {name: np.maximum(np.asarray(a), 0).reshape(len(a), -1).mean(0) / scales.values[name]
                                 * r * Hz for name, a in acts.items()}
            mapped = with_homeostasis(mapped, **h)
        return mapped, acts

    def targets(self, snn, x):
        """The rate (Hz) each unit should fire at: normalized ANN activation x rate_max."""
        return self.targets_and_logits(snn, x)[0]

    def targets_and_logits(self, snn, x):
        # one forward pass for both (an evaluation of 1000 ConvNet digits spent 0.5 s on a second one)
        out = snn.graph.output
        acts = activations(snn.graph, snn.populations, x, nodes=(out,))
        logits = acts[out]
        r = float(snn.mapped.rate_max)
        return {p.name: np.maximum(acts[p.name], 0) / snn.scales.values[p.name] * r
                for p in snn.populations}, logits

    def encode(self, snn, x, targets=None):
        targets = self.targets(snn, x) if targets is None else targets
        return targets[snn.mapped.populations[0].name]

    def saturation(self, snn, dt) -> dict[str, float]:
        tau_ref = float(snn.mapped.populations[-1].params.get("tau_ref", 0 * ms))
        cap = min(1 / tau_ref if tau_ref > 0 else np.inf, 1 / float(dt))
        return saturation(snn.populations, snn._calibration_acts, snn.scales, float(snn.mapped.rate_max), cap)

    def evaluation_defaults(self):
        return dict(duration=200 * ms, dt=0.1 * ms, encoder=self.default_encoder)

    def timing(self, duration, dt, steps, where):
        """Rate coding's coding steps are the simulation's: ``steps`` sets the duration to steps x dt
        (and cannot be given with ``duration``)."""
        d = self.evaluation_defaults()
        dt = d["dt"] if dt is None else dt
        dt = _check_time(dt, "dt", where)
        if steps is not None:
            if duration is not None:
                raise ParameterError(f"{where}: give duration or steps (steps x dt = the duration for rate "
                                     f"coding), not both")
            if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 1:
                raise ParameterError(f"{where}: steps must be a positive integer, got {steps!r}")
            duration = int(steps) * dt
        duration = d["duration"] if duration is None else duration
        return _check_time(duration, "duration", where), dt

    def max_output_spikes(self, mapped, duration):
        # a unit fires at most rate_max x T times (activation 1 and beyond are clipped by normalization)
        return mapped.populations[-1].size * float(mapped.rate_max) * float(duration)

    def score(self, mapped, out, times, dt):
        from ..simulate.runner import run_steps  # the runner imports the encoders, which this package holds
        n_out = mapped.populations[-1].size
        b = len(next(iter(out.counts.values()))) if out.counts else len(out.final_v)
        if mapped.readout == "potential":
            # The monitor samples V at 0, T/n, ..., (n-1) T/n; the value at T is read from the group.
            v = np.concatenate([out.out_v[:, :, 1:len(times)], out.final_v[:, :, None]], axis=2)
            return np.transpose(v, (0, 2, 1))
        sample, unit, t = out.out_sample, out.out_unit, out.out_t
        # A spike is stamped with the start of the step it happened in: a run of duration tk holds
        # the spikes of its run_steps(tk) steps, those stamped before tk.
        spike_step = np.rint(t / dt)
        ends = [run_steps(tk, dt) for tk in times]
        scores = np.zeros((b, len(times), n_out))
        if mapped.readout == "count":
            for k, end in enumerate(ends):
                sel = spike_step < end
                np.add.at(scores[:, k], (sample[sel], unit[sel]), 1)
        else:  # first_spike: earlier is better; no spike scores -inf
            first = np.full((b, n_out), np.inf)
            np.minimum.at(first, (sample, unit), t)
            first_step = np.rint(first / dt)
            for k, end in enumerate(ends):
                scores[:, k] = np.where(first_step < end, -first, -np.inf)
        return scores

    def metrics(self, *, x, y, ann_pred, targets, counts, scores, seeds, times, duration, dt, scatter_points):
        T = duration
        s0 = seeds[0]
        scores = np.concatenate(scores[s0])
        # A decision needs a unique winner: ties (including "no output spike yet") count as undecided
        # (-1), never as class 0, so early-time accuracy is not inflated.
        top = scores.max(axis=2, keepdims=True)
        unique = (scores == top).sum(axis=2) == 1
        pred_t = np.where(unique, scores.argmax(2), -1)
        pred = pred_t[:, -1]
        rates = {s: {n: np.concatenate(c) / T for n, c in counts[s].items() if c} for s in seeds}
        corr, scatter = {}, {}
        rng = np.random.default_rng(0)
        for name, r in rates[s0].items():
            tgt = targets[name].reshape(r.shape) if name in targets else None
            if tgt is None:
                continue
            a, b = tgt.ravel(), r.ravel()
            corr[name] = float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else float("nan")
            pick = rng.choice(len(a), size=min(scatter_points, len(a)), replace=False)
            scatter[name] = (a[pick], b[pick])
        terms = None
        if len(seeds) > 1:
            terms = {}
            for name in rates[s0]:
                stack = np.stack([rates[s][name] for s in seeds])  # (seeds, N, units)
                tgt = targets[name].reshape(stack.shape[1:])
                var = stack.var(0, ddof=1)
                # (mean over S seeds - target)^2 carries var/S of noise: remove it for an unbiased bias^2.
                terms[name] = dict(bias2=float(np.mean((stack.mean(0) - tgt) ** 2 - var / len(seeds))),
                                   variance=float(np.mean(var)))
        return dict(
            accuracy=float(np.mean(pred == y)), ann_accuracy=float(np.mean(ann_pred == y)),
            agreement=float(np.mean(pred == ann_pred)), layer_correlation=corr, scatter=scatter, times=times,
            accuracy_vs_time=(pred_t == y[:, None]).mean(0), agreement_vs_time=(pred_t == ann_pred[:, None]).mean(0),
            synaptic_events=0, undecided_fraction=float(np.mean(pred == -1)), n_samples=len(x), duration=T, dt=dt,
            error_terms=terms, predictions=pred_t, ann_predictions=ann_pred)

    def example(self):
        from .. import graph as G
        rng = np.random.default_rng(0)
        graph = G.sequential((6,), [("linear", {"weight": rng.normal(0, 0.6, (5, 6)), "bias": rng.normal(0, 0.1, 5)}),
                                    "relu", ("linear", {"weight": rng.normal(0, 0.6, (3, 5))})])
        return graph, rng.random((16, 6))

    def settings(self, mapped):
        return dict(rate_max_hz=float(mapped.rate_max), bias=mapped.bias, reset=mapped.reset, synapse=mapped.synapse,
                    readout=mapped.readout, normalization=mapped.scales.method)


def _check_time(value, name, where):
    return check_quantity(value, second.dim, name, where, positive=True)
