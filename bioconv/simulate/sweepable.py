"""Sweepable parameters: named physical parameters of a converted network that a compiled project
takes per run and per copy (run_args), so that one compile serves many parameter points.

Interface (for bioconv.sweep; changes are listed here first):
- `SWEEPABLE`: name -> `Sweepable` (unit, meaning at a fixed mapping, what is held, valid range).
- `check_point(net, point, sweepable=None)`: validate one point (name -> Quantity), naming the culprit.
- `check_homeostatic(net, names)`: v_th and rate_max are refused on networks with the homeostatic
  threshold (`HOMEOSTATIC_UNSWEEPABLE` says why).
- `CompiledNetwork(net, B, ..., sweepable=names)`; `.run(x_rates, params=...)`,
  `.run_many(batches, params=...)`: ``params`` maps a name to a scalar Quantity or one value per copy
  (shape (B,)); `run_many` also takes a list of such dicts, one per batch.
- `evaluate_points(snn, x, y, points, duration=..., dt=..., ..., seeds=...)` -> one summary dict per
  point (Poisson input with one seed per point).
- Extensions: ``gl_scale`` (a factor on the mapped leak, leak-bias networks), beside ``gl`` (siemens,
  an added uniform leak on every network), so that ``gl`` means the same on every bias strategy;
  `apply_point(net, point, sweepable)` (the mapped network at a point: what a fresh build holds);
  `mapped_values(net)` (the point that changes nothing).

A point is applied to the *mapped* network (`apply_point`): the mapping (weights as charges, biases
as currents, scales) stays fixed and only the named values move, as the table says. A sweepable
build (`bioconv.simulate.network.build(..., sweepable=names)`) keeps every model variable that a
named parameter moves as a per-neuron variable: no ``shared`` specialization, the refractory
mechanism kept when tau_ref is swept (a later tau_ref > 0 then acts), no state folded on swept
values, one membrane model (``conductance_lif``) for every bias strategy when gl or EL is swept,
integrated exactly for every gl >= 0 under delta synapses (`models.neuron_group`'s leak_step; the
exact solver divides by gl) and with RK4 where the membrane has other states.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
from brian2 import Hz, Quantity, farad, mV, second, siemens, volt
from brian2.units.fundamentalunits import DIMENSIONLESS, get_dimensions

from ..errors import ParameterError
from ..mapping import MappedNetwork, MappedPopulation

logger = logging.getLogger(__name__)

_OWNER = "bioconv.simulate.sweepable"


@dataclass(frozen=True)
class Sweepable:
    """One sweepable parameter: its unit, what it means at a fixed mapping, what stays fixed, and
    its valid range (SI value; ``lower_open``: the bound itself is excluded)."""

    name: str
    unit: Quantity
    meaning: str
    held: str
    lower: float = -np.inf
    lower_open: bool = False
    requires: str = ""  # which networks it applies to ("" = all)

    @property
    def dim(self):
        return get_dimensions(self.unit)

    @property
    def valid_range(self) -> str:
        if self.lower == -np.inf:
            text = "any finite value"
        else:
            text = f"{'>' if self.lower_open else '>='} {self.lower:g}"
        return text + (f"; {self.requires}" if self.requires else "")


_ONE = Quantity(1.0)

#: The named parameters of a sweepable build (README, "Parameter sweeps").
SWEEPABLE: dict[str, Sweepable] = {s.name: s for s in [
    Sweepable("Cm", farad, "membrane capacitance of every spiking population",
              "synaptic charges (the weights), bias currents, leaks: the slope 1/(v_th Cm) moves, rates scale "
              "about as Cm_mapped/Cm (seed 003 Fig. 7C)", 0.0, True),
    Sweepable("gl", siemens, "a uniform leak conductance added to every membrane (towards EL): the whole leak on "
              "networks with current or neuron bias, added to the mapped bias leaks on networks with leak bias",
              "charges, bias currents and bias leaks, EL (the mapping's 0 mV = reset); swept, every membrane is "
              "built as conductance_lif, integrated exactly for every gl >= 0 (RK4 beside synaptic kernel states)", 0.0),
    Sweepable("gl_scale", _ONE, "factor on the mapped leak conductances (the negative biases of a leak-bias "
              "network)", "charges, positive bias currents, the added leak gl", 0.0,
              requires="networks with bias='leak'"),
    Sweepable("tau_ref", second, "absolute refractory period of every spiking population",
              "everything else; inputs arriving while refractory are lost (V held)", 0.0,
              requires="rate_max x tau_ref < 1"),
    Sweepable("v_th", volt, "spike threshold of every firing population (a potential-readout output keeps its "
              "unreachable threshold)", "synaptic charges and bias currents: the slope 1/(v_th Cm) moves",
              requires="v_th > v_reset"),
    Sweepable("v_reset", volt, "reset target (value reset) or the subtraction's base (linear reset: "
              "v -= v_th - v_reset)", "v_th, EL; a membrane starts every presentation at its rest state "
              "(EL for conductance_lif, v_reset for perfect_integrator)", requires="v_reset < v_th"),
    Sweepable("EL", volt, "leak reversal (rest) potential; every membrane becomes conductance_lif and starts "
              "each presentation at EL", "gl and everything else (the mapping's EL is 0 mV = reset)"),
    Sweepable("tau_s", second, "synaptic time constant of the exponential or alpha kernel",
              "the charge per spike: every kernel amplitude is remapped to q / tau_s", 0.0, True,
              requires="exponential or alpha synapses; tau_m != tau_s where integrated exactly"),
    Sweepable("rate_max", Hz, "the rate that codes activation 1: input rates (evaluate_points), bias currents, "
              "bias leaks and the bias source's rate follow it", "synaptic charges (the weights), the "
              "normalization; `CompiledNetwork.run` takes input rates in Hz as given", 0.0, True,
              requires="rate_max x tau_ref < 1"),
    Sweepable("bias_scale", _ONE, "factor on every ANN bias as mapped: bias currents, bias leaks, bias-source "
              "charges", "weights, rate_max, every other parameter (1 = the mapping, 0 = no biases)", 0.0),
]}

# model variables of a membrane that each parameter moves (rate_max and bias_scale: the biases)
_DIRECT = {"Cm": "Cm", "gl": "gl", "tau_ref": "tau_ref", "v_th": "v_th", "v_reset": "v_reset", "EL": "EL",
           "tau_s": "tau_s"}


def check_names(names, where: str = _OWNER) -> tuple[str, ...]:
    """The sweepable parameter names as a sorted tuple; an unknown name raises `ParameterError`."""
    names = (names,) if isinstance(names, str) else tuple(names or ())
    unknown = [n for n in names if n not in SWEEPABLE]
    if unknown:
        raise ParameterError(f"{where}: unknown sweepable parameter(s) {unknown}; sweepable: {sorted(SWEEPABLE)}")
    return tuple(sorted(set(names)))


#: Names a network with the homeostatic threshold (rate coding's ``homeostasis``) cannot sweep, and why.
HOMEOSTATIC_UNSWEEPABLE = {
    "v_th": "the homeostatic threshold moves the threshold itself (v_th + theta, with its floor and k_theta "
            "derived from v_th), so a swept v_th is not the threshold the neurons fire at",
    "rate_max": "r_target (and k_theta) were derived from rate_max at conversion and stay fixed, so a swept "
                "rate_max would drive the neurons towards the old rates; convert again with the new rate_max",
}


def check_homeostatic(net: MappedNetwork, names, where: str = _OWNER) -> None:
    """Refuse sweeping `HOMEOSTATIC_UNSWEEPABLE`'s names on a network whose membranes have the
    homeostatic threshold (`bioconv.mapping.with_homeostasis`), naming the parameter, the population
    and why."""
    refused = [n for n in check_names(names, where) if n in HOMEOSTATIC_UNSWEEPABLE]
    if not refused:
        return
    pops = [p.name for p in net.populations if "homeostatic" in p.options]
    if pops:
        n = refused[0]
        raise ParameterError(f"{where}: parameter {n!r} cannot be swept on a network with the homeostatic "
                             f"threshold (population(s) {pops}): {HOMEOSTATIC_UNSWEEPABLE[n]}")


def membranes(net: MappedNetwork) -> list[MappedPopulation]:
    """The populations built from a neuron model (not the input, not max-pool gates)."""
    return [p for p in net.populations[1:] if p.kind != "maxpool" and p.neuron is not None]


def _switches_model(names) -> bool:
    return "gl" in names or "EL" in names


def sweepable_form(net: MappedNetwork, names) -> MappedNetwork:
    """``net`` as a sweepable build over ``names`` holds it: with gl or EL swept every membrane is a
    ``conductance_lif`` (perfect integrators get gl = 0 and EL = their v_reset, which they start
    from), so that no bias strategy needs another model; otherwise ``net`` itself."""
    names = check_names(names)
    if not _switches_model(names) or all(p.neuron == "conductance_lif" for p in membranes(net)):
        return net
    pops = []
    for p in net.populations:
        if p in membranes(net) and p.neuron == "perfect_integrator":
            params = dict(p.params)
            params.setdefault("gl", 0 * siemens)
            params.setdefault("EL", params.get("v_reset", 0 * mV))
            p = dataclasses.replace(p, neuron="conductance_lif", params=params)
        pops.append(p)
    return dataclasses.replace(net, populations=pops)


def swept_variables(net: MappedNetwork, names) -> dict[str, set[str]]:
    """Population name -> the model variables (of its group) that ``names`` move: a sweepable build
    keeps them per-neuron variables (never ``shared``, never specialized on)."""
    names = check_names(names)
    out = {}
    for p in membranes(sweepable_form(net, names)):
        v = {_DIRECT[n] for n in names if n in _DIRECT and (n != "tau_s" or "tau_s" in net.synapse_params)}
        if "v_th" in v and _unreachable_threshold(net, p):
            v.discard("v_th")
        # the biases scale: a population without any (the ConvNet's) keeps its zeros specialized,
        # since a factor leaves zero at zero (its bias-free states stay folded)
        biased = _nonzero(p.params.get("I_bias"))
        leaky = net.bias == "leak" and _nonzero(p.params.get("gl"))
        if {"rate_max", "bias_scale"} & set(names):
            if biased:
                v.add("I_bias")
            if leaky:
                v.add("gl")
        if "gl_scale" in names and leaky:
            v.add("gl")
        out[p.name] = {x for x in v if x in p.params or x == "tau_s"}
    return out


def _nonzero(q) -> bool:
    return q is not None and bool(np.any(np.asarray(q) != 0))


def bias_sources_per_copy(net: MappedNetwork, names) -> bool:
    """The neuron bias strategy's source fires at rate_max: swept, each copy needs a source of its own."""
    return "rate_max" in check_names(names) and any(p.bias_weight is not None for p in net.populations)


def exact_populations(net: MappedNetwork, names) -> list[str]:
    """Membranes a sweepable build over ``names`` integrates exactly (leaky, gl > 0 everywhere and
    not moved by the sweep): only there do tau_m = tau_s points break the solution."""
    names = check_names(names)
    form = sweepable_form(net, names)
    swept = swept_variables(net, names)
    return [p.name for p in membranes(form) if p.neuron == "conductance_lif" and "gl" not in swept[p.name]
            and np.all(np.asarray(p.params["gl"]) > 0)]


def _unreachable_threshold(net: MappedNetwork, p: MappedPopulation) -> bool:
    return net.readout == "potential" and p.name == net.populations[-1].name  # p may be of the sweepable form


# ---------------------------------------------------------------------------------------- points
def _as_value(name: str, value, where: str) -> Quantity:
    spec = SWEEPABLE[name]
    if value is None:
        raise ParameterError(f"{where}: parameter {name!r} has no value")
    is_q = isinstance(value, Quantity)
    if spec.dim is not DIMENSIONLESS and not is_q:
        raise ParameterError(f"{where}: parameter {name!r} needs units of {spec.unit!r}, got the unit-less value "
                             f"{value!r}")
    if (value.dim if is_q else DIMENSIONLESS) is not spec.dim:
        raise ParameterError(f"{where}: parameter {name!r} needs units of "
                             f"{'1 (dimensionless)' if spec.dim is DIMENSIONLESS else repr(spec.unit)}, got {value!r}")
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise ParameterError(f"{where}: parameter {name!r} is not numeric: {value!r}") from None
    if arr.ndim > 1:
        raise ParameterError(f"{where}: parameter {name!r} must be a scalar or one value per copy, got shape "
                             f"{arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ParameterError(f"{where}: parameter {name!r} must be finite, got {value!r}")
    bad = arr <= spec.lower if spec.lower_open else arr < spec.lower
    if np.any(bad):
        raise ParameterError(f"{where}: parameter {name!r} = {value!r} is out of range (valid: "
                             f"{spec.valid_range})")
    return Quantity(arr, dim=spec.dim)


def check_point(net: MappedNetwork, point: Mapping, sweepable=None, *, where: str = "check_point") -> dict:
    """Validate a parameter point for ``net`` (a MappedNetwork): names, units, ranges, and the
    combinations the build cannot run. Values are scalars, or arrays of one value per copy (checked
    element by element). ``sweepable``: the names the compiled network was built sweepable over
    (default: the point's own). Returns name -> Quantity; a problem raises `ParameterError` naming
    the parameter (and the population)."""
    if not isinstance(point, Mapping):
        raise ParameterError(f"{where}: a point is a dict of parameter name -> value, got {type(point).__name__}")
    names = check_names(point, where)
    built = check_names(point if sweepable is None else sweepable, where)
    missing = [n for n in names if n not in built]
    if missing:
        raise ParameterError(f"{where}: parameter(s) {missing} were not built sweepable (sweepable: {list(built)})")
    check_homeostatic(net, built, where)
    values = {n: _as_value(n, point[n], where) for n in names}
    if "tau_s" in values and "tau_s" not in net.synapse_params:
        raise ParameterError(f"{where}: parameter 'tau_s' needs exponential or alpha synapses; the network has "
                             f"{net.synapse!r}")
    if "gl_scale" in values and net.bias != "leak":
        raise ParameterError(f"{where}: parameter 'gl_scale' scales the leak of a network with bias='leak'; this "
                             f"network has bias={net.bias!r} (no mapped leak): sweep 'gl' instead")
    sizes = {np.size(v) for v in values.values()} - {1}
    if len(sizes) > 1:
        raise ParameterError(f"{where}: per-copy values must all have the same length, got "
                             f"{ {n: np.size(v) for n, v in values.items()} }")
    _check_combinations(net, values, built, where)
    return values


def _check_combinations(net, values, built, where):
    rate_max = np.asarray(values.get("rate_max", net.rate_max), dtype=float)
    form = sweepable_form(net, built)
    for p in membranes(form):
        tau_ref = np.asarray(values["tau_ref"] if "tau_ref" in values else p.params.get("tau_ref", 0 * second),
                             dtype=float)
        if np.any(rate_max * tau_ref >= 1):
            raise ParameterError(f"{where}: rate_max x tau_ref >= 1 in population {p.name!r} (rate_max "
                                 f"{_show(rate_max, Hz)}, tau_ref {_show(tau_ref, second)}): activation 1 would "
                                 f"ask for a rate at or above the refractory limit 1/tau_ref")
        if not _unreachable_threshold(net, p):
            v_th = np.asarray(values["v_th"] if "v_th" in values else p.params["v_th"], dtype=float)
            v_reset = np.asarray(values["v_reset"] if "v_reset" in values else p.params["v_reset"], dtype=float)
            if np.any(v_th <= v_reset):
                raise ParameterError(f"{where}: v_th must lie above v_reset in population {p.name!r} (v_th "
                                     f"{_show(v_th, volt)}, v_reset {_show(v_reset, volt)})")
    if "tau_s" in net.synapse_params and ({"Cm", "tau_s"} & set(values)):
        exact = set(exact_populations(net, built))
        tau_s = np.asarray(values.get("tau_s", net.synapse_params["tau_s"]), dtype=float)
        for p in membranes(form):
            if p.name not in exact:
                continue
            cm = np.asarray(values.get("Cm", p.params["Cm"]), dtype=float)
            gl = np.asarray(p.params["gl"], dtype=float)
            tau_m = cm[..., None] / gl if cm.ndim else cm / gl
            tau = tau_s[..., None] if tau_s.ndim else tau_s
            if np.any(np.abs(tau_m - tau) <= 1e-6 * tau):
                raise ParameterError(f"{where}: tau_m = Cm/gl equals tau_s in population {p.name!r} "
                                     f"(tau_s {_show(tau_s, second)}), which is integrated exactly: the exact "
                                     f"solution divides by tau_m - tau_s")


def _show(arr, unit) -> str:
    arr = np.asarray(arr)
    if arr.size == 1:
        return str(Quantity(float(arr.flat[0]), dim=get_dimensions(unit)))
    return f"[{Quantity(arr.min(), dim=get_dimensions(unit))}, {Quantity(arr.max(), dim=get_dimensions(unit))}]"


def apply_point(net: MappedNetwork, point: Mapping, sweepable=None) -> MappedNetwork:
    """The mapped network at ``point`` (scalar values), in the form a sweepable build over
    ``sweepable`` (default: the point's names) holds it: what a fresh sweepable build with those
    values is built from. The mapping stays fixed (see `SWEEPABLE` for what each name holds)."""
    built = check_names(point if sweepable is None else sweepable)
    values = check_point(net, point, built, where="apply_point")
    if any(np.size(v) != 1 for v in values.values()):
        raise ParameterError("apply_point: a point has one value per parameter (per-copy values are for "
                             "CompiledNetwork.run)")
    values = {n: Quantity(float(np.asarray(v).reshape(())), dim=get_dimensions(v)) for n, v in values.items()}
    form = sweepable_form(net, built)
    rate_ratio = float(values["rate_max"] / net.rate_max) if "rate_max" in values else 1.0
    bias_factor = float(values.get("bias_scale", 1.0)) * rate_ratio
    tau_s_ratio = (float(net.synapse_params["tau_s"] / values["tau_s"]) if "tau_s" in values else 1.0)
    pops = []
    for p in form.populations:
        if p not in membranes(form):
            pops.append(p)
            continue
        params = dict(p.params)
        for name in ("Cm", "tau_ref", "v_reset", "EL"):
            if name in values and name in params:
                params[name] = values[name]
        if "v_th" in values and not _unreachable_threshold(form, p):
            params["v_th"] = values["v_th"]
        if "I_bias" in params and bias_factor != 1.0:
            params["I_bias"] = params["I_bias"] * bias_factor
        if "gl" in params:
            gl = params["gl"]
            if form.bias == "leak":  # the mapped leak holds the negative biases
                gl = gl * (bias_factor * float(values.get("gl_scale", 1.0)))
            if "gl" in values:
                gl = gl + values["gl"]
            params["gl"] = gl
        projections = p.projections
        bias_weight = p.bias_weight
        if tau_s_ratio != 1.0:  # the charge per spike held: amplitude q / tau_s
            projections = [q.scaled(tau_s_ratio) for q in p.projections]
        if bias_weight is not None:
            # the bias source's charge is I / rate_max: it follows the bias scale, not rate_max
            bias_weight = bias_weight * (tau_s_ratio * float(values.get("bias_scale", 1.0)))
        pops.append(dataclasses.replace(p, params=params, projections=projections, bias_weight=bias_weight))
    syn = dict(form.synapse_params)
    if "tau_s" in values:
        syn["tau_s"] = values["tau_s"]
    return dataclasses.replace(form, populations=pops, synapse_params=syn,
                               rate_max=values.get("rate_max", form.rate_max))


def copy_points(params: Mapping | None, n_copies: int) -> list[dict]:
    """Per-copy points from run parameters (each value a scalar or one per copy)."""
    if not params:
        return [{} for _ in range(n_copies)]
    out = [{} for _ in range(n_copies)]
    for name, v in params.items():
        arr = np.asarray(v, dtype=float)
        if arr.ndim == 1 and len(arr) != n_copies:
            raise ParameterError(f"CompiledNetwork.run: parameter {name!r} has {len(arr)} values; give a scalar or "
                                 f"one per copy ({n_copies})")
        flat = np.broadcast_to(arr, (n_copies,))
        for b in range(n_copies):
            out[b][name] = Quantity(float(flat[b]), dim=get_dimensions(v))
    return out


def as_points(points: Iterable[Mapping]) -> list[dict]:
    points = list(points)
    if not points:
        raise ParameterError("evaluate_points: no points given")
    return points


def mapped_values(net: MappedNetwork, names=None) -> dict[str, Quantity]:
    """The value of each sweepable parameter (or of ``names``) at which `apply_point` leaves ``net``
    as mapped: the point that changes nothing (gl: no added leak; the factors: 1). Parameters that
    do not apply to ``net`` (tau_s without a kernel time constant, gl_scale without bias leaks) are
    left out."""
    names = check_names(SWEEPABLE if names is None else names)
    first = membranes(net)[0] if membranes(net) else None
    firing = next((p for p in membranes(net) if not _unreachable_threshold(net, p)), first)
    out = {}
    for n in names:
        if n in ("Cm", "tau_ref", "v_reset") and first is not None:
            out[n] = _scalar(first.params[n], n)
        elif n == "v_th" and firing is not None:
            out[n] = _scalar(firing.params["v_th"], n)
        elif n == "EL" and first is not None:
            out[n] = _scalar(first.params.get("EL", first.params["v_reset"]), n)
        elif n == "gl":
            out[n] = 0 * siemens
        elif n in ("bias_scale",) or (n == "gl_scale" and net.bias == "leak"):
            out[n] = Quantity(1.0)
        elif n == "tau_s" and "tau_s" in net.synapse_params:
            out[n] = _scalar(net.synapse_params["tau_s"], n)
        elif n == "rate_max":
            out[n] = net.rate_max
    return out


def _scalar(q, name) -> Quantity:
    arr = np.asarray(q)
    if arr.size != 1 and not np.all(arr == arr.flat[0]):
        raise ParameterError(f"{_OWNER}: parameter {name!r} varies across the mapped network; a sweep sets one "
                             f"value for all")
    return Quantity(float(arr.flat[0]), dim=get_dimensions(q))


# ------------------------------------------------------------------------------ evaluate_points
#: The most bytes of records (output spikes, counters, membrane samples) one run of a sweep keeps,
#: whatever the machine: the layout of a sweep's runs must not depend on the host (Poisson seeds).
SWEEP_RUN_RECORDS = 512 * 2 ** 20


def presentations_per_copy(net, coding, N: int, duration, dt, time_points: int = 20) -> int:
    """Samples one copy of a sweep's network shows in a run (K), for ``N`` samples per point.

    A run's start-up loads every copy's synapses, and a padded presentation costs as many steps as a
    real one, so a copy shows a point's whole sample set in one run where it can: K is as large as
    the clock alignment of the presentation starts (`aligned_presentations`) and `SWEEP_RUN_RECORDS`
    allow, and the samples are spread evenly over the fewest chunks. SNN.evaluate's plan (about
    SAMPLES_PER_RUN samples per run) gave the MLP 27 copies x 9 samples: a 4-point sweep task ran
    its 1200 presentations in 6 runs and 58-62 s, against 1 run and 26-30 s with 4 copies x 300
    (one core, same accuracies). A function of the samples and the network alone, not of the points,
    the cores or the host, so that Poisson seeds give the same values in any task or worker.
    """
    from ..converter import SEQUENTIAL_NEURONS
    from .runner import aligned_presentations, network_size
    neurons = network_size(net)[0]
    limit = aligned_presentations(duration, dt, max(1, int(N)), duration / time_points if net.readout == "potential"
                                  else None)
    per_sample = coding.max_output_spikes(net, duration) * 64 + neurons * 16  # as SNN.evaluate counts them
    if net.readout == "potential":
        per_sample += net.populations[-1].size * (time_points + 1) * 16
    copies = max(1, SEQUENTIAL_NEURONS // neurons)  # at most this many copies share a run
    limit = max(1, min(limit, int(SWEEP_RUN_RECORDS // max(per_sample * copies, 1.0))))
    runs = -(-int(N) // limit)
    return -(-int(N) // runs)


def evaluate_points(snn, x, y, points: Iterable[Mapping], *, duration, dt, encoder: str = "regular",
                    device: str = "cpp", sweepable=None, batch: int | None = None, presentations: int | None = None,
                    threads: int | None = None, float32: bool = False, time_points: int = 20,
                    scatter_points: int = 0, seeds=None, points_per_run: int | None = None,
                    share_inputs: bool = True) -> list[dict]:
    """Evaluate every parameter point on the same samples ``x`` (N, *input_shape) with labels ``y``,
    as copies of one compiled project (a sweepable build over ``sweepable``, default: every name the
    points use): each run holds ``batch`` copies x ``presentations`` samples, and every copy runs
    one (point, chunk of samples) task, so no point needs a compile of its own.

    Returns one dict per point, in order: the point's values (SI floats, under their names), and
    what `SNN.evaluate`'s summary holds for that point (accuracy, agreement with the ANN, the lowest
    per-layer correlation, synaptic events, undecided fraction), with ``layer_correlation`` per
    population and ``accuracy_vs_time``. A point's values do not depend on the copy or run that
    computed it: the inputs are deterministic (``regular``, ``current``) and every state is reset
    between presentations. ``rate_max`` points scale the input rates from the mapping's.

    ``points_per_run``: the number of points the copies of a run are sized for (deterministic input;
    default: this call's points, a power of two of copies). A sweep passes its task size, so that
    every task of a shape compiles the same project, and a task's copies fill its runs evenly: no
    more silent copies than the task is short of that size, plus under one per run where the
    copies of a task exceed one run's (a power of two gave a 14-point task 16 copies: 2 silent
    copies cost as much as two points).

    ``share_inputs``: the copies of a run that show the same samples share one copy of the input
    layer (`network.build`'s ``input_copies``; same values, less work per step), where the encoder,
    the swept names and the input's pathways allow it (`network.input_sharing_obstacle`; otherwise
    every copy has its own, logged with the reason at INFO). A run then holds whole points: its
    copies are a multiple of the chunks of samples.

    Poisson input (``encoder="poisson"``) takes ``seeds``, one integer >= 0 per point (default 0 for
    every point). A run's copies draw from one random stream, so under Poisson input a run holds the
    copies of one point only, with a seed derived from the point's seed and the run's index among
    that point's runs (`run_seed`), and the layout (copies B, presentations K, which samples each
    copy shows) is a function of the samples and the network alone, not of the other points: a
    point's values are then the same whichever call, task or worker computes it, on the same pin
    (Brian2's random generators differ between 2.7 and 2.10), and differ between seeds.
    """
    from ..converter import SEQUENTIAL_NEURONS  # the copies of SNN.evaluate's plan
    from ..units import check_quantity
    from .devices import check_device, default_threads
    from .network import input_sharing_obstacle
    from .runner import CompiledNetwork, network_size

    where = "evaluate_points"
    duration = check_quantity(duration, second.dim, "duration", where, positive=True)
    dt = check_quantity(dt, second.dim, "dt", where, positive=True)
    check_device(device, where)
    points = [dict(p) for p in points]
    if not points:
        raise ParameterError(f"{where}: no points given")
    poisson = encoder == "poisson"
    seeds = _check_seeds(seeds, len(points), poisson, device, where)
    names = check_names(set().union(*points) if sweepable is None else sweepable, where)
    net = snn.mapped
    for i, p in enumerate(points):
        check_point(net, p, names, where=f"{where} (point {i})")
        if any(np.size(v) != 1 for v in p.values()):
            raise ParameterError(f"{where} (point {i}): each parameter takes one value per point")
    full = [mapped_values(net, names) | {n: Quantity(float(np.asarray(v)), dim=get_dimensions(v))
                                         for n, v in p.items()} for p in points]
    targets = snn.target_rates(x)  # checks x
    N = len(next(iter(targets.values())))
    y = np.asarray(y)
    n_out = net.populations[-1].size
    if y.shape != (N,) or not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= n_out:
        raise ParameterError(f"{where}: labels must be integers in [0, {n_out}) of shape ({N},), got dtype "
                             f"{y.dtype}, shape {y.shape}")
    t0 = time.perf_counter()
    # the plan: samples one after another in a run (K), copies (B) holding (point, chunk) tasks
    sequential = device != "runtime"
    neurons = network_size(net)[0]
    cores = default_threads() if threads is None else max(1, int(threads))
    workers = cores if device == "cpp" else 1
    K = int(presentations or (presentations_per_copy(net, snn.coding, N, duration, dt, time_points) if sequential
                              else 1))
    chunks = [np.arange(k, min(k + K, N)) for k in range(0, N, K)]
    tasks = [(i, c) for i in range(len(points)) for c in chunks]
    if poisson:  # copies of one point per run, as many as its chunks need: a layout of the samples alone
        B = int(batch or min(_pow2_at_least(len(chunks)), max(1, SEQUENTIAL_NEURONS // neurons)))
        groups = [[(i, c) for c in chunks[r:r + B]] for i in range(len(points)) for r in range(0, len(chunks), B)]
        run_seeds = [run_seed(seeds[i], r // B) for i in range(len(points)) for r in range(0, len(chunks), B)]
    else:
        if points_per_run is not None and int(points_per_run) < len(points):
            raise ParameterError(f"{where}: points_per_run = {points_per_run} is below the {len(points)} points given")
        cap = max(1, SEQUENTIAL_NEURONS // neurons)
        C = len(chunks)
        obstacle = (input_sharing_obstacle(net, encoder, "shared" if device == "cpp" else "unrolled", names)
                    if share_inputs
                    else "share_inputs is off")
        if obstacle is None and batch is not None and int(batch) % C:
            obstacle = f"batch = {batch} is not a multiple of the {C} chunks of samples"
        if obstacle is None and C > cap:
            obstacle = f"a point's {C} chunks of samples exceed the {cap} copies a run holds"
        if obstacle is not None and share_inputs:
            logger.info("%s: every copy has its own input layer (%s)", where, obstacle)
        if obstacle is None:
            # whole points per run (P of them, C copies each), over the fewest runs a worker needs
            wanted = _ceil_div(int(points_per_run) if points_per_run is not None else len(points), workers)
            runs_needed = _ceil_div(wanted, max(1, cap // C))  # whole points: cap // C of them per run
            P = min(_ceil_div(wanted, runs_needed) if points_per_run is not None else _pow2_at_least(wanted),
                    max(1, cap // C))
            B = int(batch or P * C)
        elif points_per_run is not None:
            # over the cap, the task's copies split evenly over the fewest runs (30 copies at a cap of
            # 27: 2 runs of 15, not 27 + 3 with 24 silent); still a function of the task size alone
            wanted = _ceil_div(int(points_per_run) * len(chunks), workers)
            B = _ceil_div(wanted, _ceil_div(wanted, cap))  # copies per run, over the fewest runs
        else:
            B = min(_pow2_at_least(-(-len(tasks) // workers)), cap)
        B = int(batch or B)
        groups = [tasks[r:r + B] for r in range(0, len(tasks), B)]
        run_seeds = None
    # copies of a run that read one input copy: b reads b % C (tasks run point after point, C chunks each)
    input_copies = C if not poisson and obstacle is None else None
    n_in = net.populations[0].size
    input_name = net.populations[0].name
    x_in = targets[input_name].reshape(N, n_in)
    runs, run_params = [], []
    for mine in groups:
        xr = np.zeros((B * K, n_in))
        for b, (i, c) in enumerate(mine):
            ratio = float(full[i]["rate_max"] / net.rate_max) if "rate_max" in full[i] else 1.0
            xr[np.arange(len(c)) * B + b] = x_in[c] * ratio
        if input_copies is not None:  # padding copies read their input copy's samples (their rows are dropped)
            for b in range(len(mine), B):
                c = chunks[b % input_copies]
                xr[np.arange(len(c)) * B + b] = x_in[c]
        pad = [mine[0][0]] * (B - len(mine))  # padding copies run the first task's point (silent, unless sharing)
        which = [i for i, _ in mine] + pad
        run_params.append({n: Quantity(np.array([float(full[i][n]) for i in which]), dim=SWEEPABLE[n].dim)
                           for n in names if n in full[0]})
        runs.append((mine, xr))
    times = np.linspace(float(duration) / time_points, float(duration), time_points)
    step = float(dt)
    pops = [p.name for p in net.populations]
    counts = [{n: np.zeros((N, p.size), dtype=np.int64) for n, p in zip(pops, net.populations)} for _ in points]
    scores = [np.zeros((N, time_points, n_out)) for _ in points]
    seen_counts = set()
    with CompiledNetwork(net, B, duration=duration, dt=dt, encoder=encoder, device=device, threads=max(
            1, cores // workers) if device == "cpp" else threads, float32=float32,
            record_output_every=duration / time_points, presentations=K, sweepable=names,
            input_copies=input_copies) as compiled:
        build_s = time.perf_counter() - t0
        outs = compiled.run_many((xr for _, xr in runs), workers=workers, params=run_params, seeds=run_seeds)
        for (mine, _), out in zip(runs, outs):
            sc = snn._scores(out, times, step)  # (B*K, n_times, n_out), sample s = k*B + copy
            for b, (i, c) in enumerate(mine):
                rows = np.arange(len(c)) * B + b
                scores[i][c] = sc[rows]
                for name, arr in out.counts.items():
                    counts[i][name][c] = arr[rows]
                    seen_counts.add(name)
        settings = dict(encoder=encoder, device=device, batch=B, input_copies=input_copies or B, presentations=K,
                        parallel_runs=workers,
                        sweepable=list(names), cache_hit=[compiled.cache_hit], float32=bool(float32),
                        call_runs=compiled.runs, call_build_s=build_s, call_run_s=compiled.run_seconds,
                        call_sim_s=compiled.sim_seconds)
        if poisson:
            settings["runs_per_point"] = len(groups) // len(points)
    logits = snn.graph.forward(np.asarray(x, dtype=np.float64))  # x was checked by target_rates
    ann_pred = logits[snn.graph.output].reshape(N, -1).argmax(1)
    T = float(duration)
    rows = []
    for i, p in enumerate(points):
        ratio = float(full[i]["rate_max"] / net.rate_max) if "rate_max" in full[i] else 1.0
        tgt = {n: v * ratio for n, v in targets.items()}
        c = {0: {n: [counts[i][n]] for n in pops if n in seen_counts}}
        res = snn._metrics(np.asarray(x), y, ann_pred, tgt, c, {0: [scores[i]]}, (0,), times, T, step,
                           scatter_points, encoder=encoder)
        res.synaptic_events = sum(int(np.dot(counts[i][n].sum(0), snn._out_degree(n))) for n in seen_counts)
        res.settings = dict(settings, call_wall_s=time.perf_counter() - t0)
        summary = res.summary()
        for key in ("wall_s", "build_s", "run_s", "sim_s"):
            summary.pop(key, None)  # per call, not per point: in call_*
        if poisson:
            summary["seed"] = seeds[i]
        rows.append({**{n: float(v) for n, v in full[i].items()}, **summary,
                     "layer_correlation": dict(res.layer_correlation),
                     "accuracy_vs_time": res.accuracy_vs_time.tolist(), "point_index": i})
    return rows


def run_seed(seed: int, run: int) -> int:
    """The seed of a point's ``run``-th run (Poisson input): a hash of both (numpy's SeedSequence), so
    that the runs of one point, and the points of neighbouring seeds, draw unrelated streams."""
    return int(np.random.SeedSequence([int(seed), int(run)]).generate_state(1, dtype=np.uint32)[0] % 2 ** 31)


def _check_seeds(seeds, n_points: int, poisson: bool, device: str, where: str) -> list[int] | None:
    if not poisson:
        if seeds is not None:
            raise ParameterError(f"{where}: seeds apply to Poisson input; encoder is deterministic (regular and "
                                 f"current inputs draw no random numbers)")
        return None
    if device == "cuda":
        raise ParameterError(f"{where}: Poisson input with per-point seeds needs device 'cpp' or 'runtime' (on cuda "
                             f"the seed is part of the build)")
    seeds = [0] * n_points if seeds is None else list(seeds)
    if len(seeds) != n_points:
        raise ParameterError(f"{where}: seeds has {len(seeds)} entries for {n_points} points; give one per point")
    for k, s in enumerate(seeds):
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0:
            raise ParameterError(f"{where}: seed of point {k} must be an integer >= 0, got {s!r}")
    return [int(s) for s in seeds]


def _ceil_div(a: int, b: int) -> int:
    return -(-int(a) // int(b))


def _pow2_at_least(n: int) -> int:
    return 1 << max(0, int(n) - 1).bit_length()
