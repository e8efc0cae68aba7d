"""Map a normalized LayerGraph onto LIF membranes with physical parameters (seed 003 Table VII; FORMULAS §3, §5).

With activation 1 coded as rate ``rate_max`` and the linear-LIF law ``f = k (sum_i q_i f_i + I)``,
``k = 1/(v_th Cm)``, a ReLU unit ``a_t = max(0, sum_s W'_ts a_s + b'_t)`` (normalized weights) maps to:

- synaptic charge ``q_ts = W'_ts v_th Cm`` (delta kernel) or the kernel amplitude with that charge
  (``q / tau_s`` for exponential and alpha kernels);
- bias current ``I_t = b'_t rate_max v_th Cm``, realised by the bias strategy:
  ``current`` (a constant current, leak-free membrane), ``neuron`` (a regular bias spike source at
  ``rate_max`` with charge ``I_t / rate_max``), or ``leak`` (negative biases as a leak conductance
  ``gl = -I_t / V_eff`` with the resting potential at reset, positive ones as current). ``V_eff`` is
  ``v_th`` for Table VII's small-input form (``b = -gl v_th``, the firing onset) or ``v_th / 2``
  (``leak_rule="mean_potential"``: the leak current at the mean of a sawtooth from reset to threshold,
  which is what the linear regime loses; see the rate_validation study).

`with_homeostasis` then gives the membranes seed 001's homeostatic threshold (FORMULAS §9), the
``homeostatic`` option of the ``conductance_lif`` model (a leak-free membrane becomes that model with
``gl = 0`` and ``EL`` at reset, its gl -> 0 limit: the same membrane).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
from brian2 import Hz, Quantity, amp, coulomb, farad, mV, ms, pF, second, siemens, volt
from brian2.units.fundamentalunits import DIMENSIONLESS

from . import analysis, models
from .errors import ParameterError
from .conv_geometry import KernelTerm
from .graph import Population
from .normalize import Scales
from .units import check_quantity

BIAS_STRATEGIES = ("leak", "current", "neuron")
RESETS = ("linear", "value")
LEAK_RULES = ("table7", "mean_potential")


class MappedProjection:
    """A population's input from ``source``, in the synapse model's weight unit.

    ``i``, ``j``, ``w``: the unrolled form, one entry per synapse (presynaptic index within the
    source, postsynaptic index within the target, kernel weight). ``kernels``: the same projection's
    convolutions as `conv_geometry.KernelTerm` (geometry and one kernel, in the weight unit), when
    it has any; ``rest``: a MappedProjection of what no kernel expresses (None: nothing). A
    projection made from kernels computes its unrolled form only when first read (``unrolled``, a
    function giving (i, j, w)), so a CIFAR-size network simulated with shared kernels never holds it.
    """

    def __init__(self, source: str, i=None, j=None, w=None, *, kernels=(), rest=None, unrolled=None,
                 unshared: str | None = None):
        if (i is None) != (unrolled is not None):
            raise ValueError("MappedProjection: give (i, j, w) or a function that computes them")
        self.source = source
        self._ijw = None if i is None else (i, j, w)
        self._unrolled = unrolled
        self.kernels = tuple(kernels)
        self.rest = rest
        self.unshared = unshared  # why a convolution in it cannot keep its kernel shared (None: none such)

    def _materialized(self):
        if self._ijw is None:
            self._ijw = self._unrolled()
            self._unrolled = None
        return self._ijw

    i = property(lambda self: self._materialized()[0])
    j = property(lambda self: self._materialized()[1])
    w = property(lambda self: self._materialized()[2])

    @property
    def weight_dim(self):
        return self.kernels[0].kernel.dim if self._ijw is None else self._ijw[2].dim

    @property
    def n_synapses(self) -> int:
        """Synapses of the unrolled form (from the geometry where one kernel makes the whole projection)."""
        if self._ijw is None and len(self.kernels) == 1 and self.rest is None:
            return self.kernels[0].geometry.n_synapses(np.asarray(self.kernels[0].kernel))
        return len(self.i)

    def out_degree(self, n_source: int) -> np.ndarray:
        """Synapses of the unrolled form leaving each source unit."""
        if self._ijw is None and len(self.kernels) == 1 and self.rest is None:
            return self.kernels[0].geometry.out_degree(np.asarray(self.kernels[0].kernel))
        return np.bincount(self.i, minlength=n_source)

    def scaled(self, factor: float) -> "MappedProjection":
        """The projection with every weight times ``factor`` (unrolled and kernels alike)."""
        kernels = [KernelTerm(k.geometry, k.kernel * factor) for k in self.kernels]
        rest = None if self.rest is None else self.rest.scaled(factor)
        if self._ijw is None:
            unrolled = self._unrolled
            return MappedProjection(self.source, kernels=kernels, rest=rest, unshared=self.unshared,
                                    unrolled=lambda: (lambda i, j, w: (i, j, w * factor))(*unrolled()))
        i, j, w = self._ijw
        return MappedProjection(self.source, i, j, w * factor, kernels=kernels, rest=rest, unshared=self.unshared)

    def __repr__(self):
        return (f"MappedProjection({self.source!r}, kernels={len(self.kernels)}, rest={self.rest is not None}, "
                f"unrolled={'computed' if self._ijw is not None else 'not computed'})")


@dataclass
class MappedPopulation:
    name: str
    kind: str  # input | relu | maxpool | output
    shape: tuple
    neuron: str | None = None
    params: dict = field(default_factory=dict)  # name -> Quantity (scalar or one per unit)
    projections: list[MappedProjection] = field(default_factory=list)
    bias_weight: Quantity | None = None  # per unit, from the bias source ('neuron' bias strategy)
    pool_groups: np.ndarray | None = None
    scale: float = 1.0
    options: tuple = ()  # options of the neuron model switched on (e.g. ("homeostatic",))

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))


@dataclass
class MappedNetwork:
    populations: list[MappedPopulation]
    synapse: str
    synapse_params: dict
    rate_max: Quantity
    bias: str
    reset: str
    readout: str
    scales: Scales

    def population(self, name: str) -> MappedPopulation:
        return next(p for p in self.populations if p.name == name)

    def table(self) -> str:
        """Every population's mapped parameters with units (ranges where they vary per unit)."""
        rows = [f"{'population':14s} {'kind':8s} {'units':>7s} {'scale':>9s} {'synapses':>9s} parameters"]
        for p in self.populations:
            n_syn = sum(q.n_synapses for q in p.projections)
            desc = [f"{k}={_fmt(v)}" for k, v in p.params.items()] + [f"options={list(p.options)}"] * bool(p.options)
            if n_syn:
                w = Quantity(np.concatenate([v for q in p.projections for v in _weight_values(q)]),
                             dim=p.projections[0].weight_dim)
                desc.append(f"w={_fmt(w)}")
            if p.bias_weight is not None:
                desc.append(f"bias_w={_fmt(p.bias_weight)}")
            rows.append(f"{p.name:14s} {p.kind:8s} {p.size:7d} {p.scale:9.4g} {n_syn:9d} " + ", ".join(desc))
        rows.append(f"synapse={self.synapse} {self.synapse_params}, rate_max={self.rate_max}, bias={self.bias}, "
                    f"reset={self.reset}, readout={self.readout}, normalization={self.scales.method}")
        return "\n".join(rows)


def _weight_values(q: MappedProjection) -> list[np.ndarray]:
    """The distinct weights of a projection: its kernels' nonzero taps (no unrolling), else its synapses'."""
    if not q.kernels:
        return [np.asarray(q.w)]
    values = [np.asarray(k.kernel)[np.asarray(k.kernel) != 0] for k in q.kernels]
    return values + ([] if q.rest is None else _weight_values(q.rest))


def _fmt(q) -> str:
    arr = np.asarray(q)
    if arr.size == 0:
        return "-"
    if arr.ndim == 0 or arr.size == 1 or np.all(arr == arr.flat[0]):
        return str(Quantity(arr.flat[0], dim=q.dim)) if hasattr(q, "dim") else str(arr.flat[0])
    lo, hi = Quantity(arr.min(), dim=q.dim), Quantity(arr.max(), dim=q.dim)
    return f"[{lo}, {hi}]"


def check_parameters(*, Cm, v_th, tau_ref, rate_max, synapse, tau_s, bias, reset, leak_rule, readout):
    """Validate the mapping's parameters at the door (units, signs, choices); returns the checked values."""
    owner = "bioconv.mapping"
    Cm = check_quantity(Cm, farad.dim, "Cm", owner, positive=True)
    v_th = check_quantity(v_th, volt.dim, "v_th", owner, positive=True)
    tau_ref = check_quantity(tau_ref, second.dim, "tau_ref", owner, nonnegative=True)
    rate_max = check_quantity(rate_max, Hz.dim, "rate_max", owner, positive=True)
    for value, allowed, name in ((bias, BIAS_STRATEGIES, "bias"), (reset, RESETS, "reset"),
                                 (leak_rule, LEAK_RULES, "leak_rule"), (readout, ("count", "potential", "first_spike"),
                                                                       "readout")):
        if value not in allowed:
            raise ParameterError(f"{owner}: {name} must be one of {allowed}, got {value!r}")
    if readout == "potential" and bias == "leak":
        raise ParameterError(f"{owner}: readout='potential' with bias='leak' compares leaky and non-leaky output "
                             f"membranes on different scales; use bias='current' or 'neuron' with that readout")
    if np.any(np.asarray(tau_ref) * np.asarray(rate_max) >= 1):
        raise ParameterError(f"{owner}: rate_max ({rate_max}) must stay below 1/tau_ref ({1 / tau_ref})")
    syn = models.load(synapse)
    if syn.kind != "synapse":
        raise ParameterError(f"{owner}: {synapse!r} is not a synapse model")
    if syn.conductance:
        raise ParameterError(f"{owner}: synapse {synapse!r} is conductance-based; its effective weight depends on V, "
                             f"so it has no exact linear-LIF mapping (FORMULAS §4)")
    syn_params = {} if syn.kernel == "delta" else {"tau_s": check_quantity(tau_s, second.dim, "tau_s", owner,
                                                                             positive=True)}
    return Cm, v_th, tau_ref, rate_max, syn, syn_params


def _map_projection(proj, lam_source, lam_target, charge_unit, syn, syn_params) -> MappedProjection:
    """A projection's weights as kernel amplitudes: normalized by the source's and the target's
    scales, as charges of ``charge_unit`` per unit weight. The kernels and the unrolled weights go
    through the same elementwise operations, so each synapse's weight is its tap's value exactly."""
    def weights(values):
        w_norm = values * lam_source / lam_target
        return analysis.kernel_weight_for_charge(syn.kernel, w_norm * charge_unit, syn_params.get("tau_s"))

    def unrolled(projection):
        def compute():
            m = projection.matrix.tocoo()
            return m.col.astype(np.int64), m.row.astype(np.int64), weights(m.data)
        return compute

    terms = proj.terms
    kernels = [KernelTerm(t.geometry, weights(t.kernel)) for t in terms if isinstance(t, KernelTerm)]
    if not kernels:
        return MappedProjection(proj.source, *unrolled(proj)(), unshared=proj.unshared)
    rest = [t for t in terms if not isinstance(t, KernelTerm)]
    rest = MappedProjection(rest[0].source, unrolled=unrolled(rest[0])) if rest else None
    return MappedProjection(proj.source, kernels=kernels, rest=rest, unrolled=unrolled(proj), unshared=proj.unshared)


def map_network(pops: list[Population], scales: Scales, *, Cm=100 * pF, v_th=20 * mV, tau_ref=0 * ms,
                rate_max=200 * Hz, synapse="delta", tau_s=5 * ms, bias="current", reset="linear",
                leak_rule="mean_potential", readout="count") -> MappedNetwork:
    """Physical parameters for every population (see the module docstring for the relations)."""
    Cm, v_th, tau_ref, rate_max, syn, syn_params = check_parameters(
        Cm=Cm, v_th=v_th, tau_ref=tau_ref, rate_max=rate_max, synapse=synapse, tau_s=tau_s, bias=bias, reset=reset,
        leak_rule=leak_rule, readout=readout)
    charge_unit = v_th * Cm  # charge that moves V from reset to threshold
    lam = scales.values
    mapped = []
    for p in pops:
        mp = MappedPopulation(p.name, p.kind, p.shape, pool_groups=p.pool_groups, scale=lam[p.name])
        mapped.append(mp)
        if p.kind in ("input", "maxpool"):
            if p.kind == "maxpool":
                mp.projections = [MappedProjection(p.projections[0].source, np.zeros(0, int), np.zeros(0, int),
                                                   Quantity(np.zeros(0), dim=syn.weight_dim))]
            continue
        for proj in p.projections:
            mp.projections.append(_map_projection(proj, lam[proj.source], lam[p.name],
                                                  charge_unit, syn, syn_params))
        bias_norm = np.zeros(p.size) if p.bias is None else p.bias / lam[p.name]
        current = Quantity(bias_norm * float(rate_max * charge_unit / amp), dim=amp.dim)
        base = dict(Cm=Cm, v_th=v_th, v_reset=0 * mV, tau_ref=tau_ref)
        if p.kind == "output" and readout == "potential":
            # A non-firing readout: the membrane integrates its input; threshold out of reach.
            base["v_th"] = v_th * 1e9
        if bias == "leak":
            v_eff = v_th if leak_rule == "table7" else v_th / 2
            negative = np.asarray(current) < 0
            gl = Quantity(np.where(negative, -np.asarray(current) / float(v_eff), 0.0), dim=siemens.dim)
            mp.neuron = "conductance_lif"
            mp.params = dict(base, gl=gl, EL=0 * mV, I_bias=Quantity(np.where(negative, 0.0, np.asarray(current)),
                                                                        dim=amp.dim))
        elif bias == "current":
            mp.neuron = "perfect_integrator"
            mp.params = dict(base, I_bias=current)
        else:
            mp.neuron = "perfect_integrator"
            mp.params = dict(base)
            mp.bias_weight = analysis.kernel_weight_for_charge(syn.kernel, current / rate_max, syn_params.get("tau_s"))
    return MappedNetwork(mapped, synapse, syn_params, rate_max, bias, reset, readout, scales)


def with_homeostasis(net: MappedNetwork, *, tau_r, tau_theta, k_theta, r_target, vt_floor=0.1) -> MappedNetwork:
    """``net`` with seed 001's homeostatic threshold (FORMULAS §9) on every membrane that fires: the
    ``homeostatic`` option of ``conductance_lif`` (a perfect integrator becomes that model with gl = 0
    and EL = v_reset, which it starts from: the same membrane). An output read by its potential never
    fires and stays as it is. ``tau_r``, ``tau_theta``, ``k_theta``: scalars; ``r_target``: a rate for
    every neuron, or a dict population name -> one rate per unit.

    ``vt_floor`` (a number in (0, 1), default 0.1): the floor of the effective threshold, which never
    goes below ``v_reset + vt_floor (v_th - v_reset)`` (theta >= -(1 - vt_floor)(v_th - v_reset)). A
    neuron that stays below its target rate lowers its threshold only down to there, so a leak-free
    membrane fires at most about 1/vt_floor times its plain rate (10 times by default) instead of every
    step (a threshold at or below v_reset, where a linear reset would raise v); a leaky one whose rest
    (EL, or its drive's steady state) lies above the floor fires although its plain rate is 0. theta
    stops at the floor (no wind-up) and rises again as soon as the rate trace exceeds r_target."""
    owner = "bioconv.mapping.with_homeostasis"
    floor = check_quantity(vt_floor, DIMENSIONLESS, "vt_floor", owner, positive=True)
    if np.size(floor) != 1 or not float(floor) < 1:
        raise ParameterError(f"{owner}: vt_floor must be one number in (0, 1) (the floor of the threshold as a "
                             f"fraction of v_th - v_reset above v_reset), got {vt_floor!r}")
    values = dict(tau_r=check_quantity(tau_r, second.dim, "tau_r", owner, positive=True),
                  tau_theta=check_quantity(tau_theta, second.dim, "tau_theta", owner, positive=True),
                  k_theta=check_quantity(k_theta, (volt / Hz).dim, "k_theta", owner, nonnegative=True),
                  vt_floor=floor)
    pops = []
    for p in net.populations:
        silent = p.kind == "output" and net.readout == "potential"
        if p.kind in ("input", "maxpool") or p.neuron is None or silent:
            pops.append(p)
            continue
        params = dict(p.params)
        if p.neuron == "perfect_integrator":
            params.setdefault("gl", 0 * siemens)
            params.setdefault("EL", params.get("v_reset", 0 * mV))
        elif p.neuron != "conductance_lif":
            raise ParameterError(f"{owner}: population {p.name!r} is a {p.neuron!r} membrane, which has no "
                                 f"homeostatic option")
        rt = r_target[p.name] if isinstance(r_target, dict) else r_target
        rt = check_quantity(rt, Hz.dim, f"r_target of population {p.name!r}", owner, nonnegative=True)
        if np.ndim(rt) and np.size(rt) != p.size:
            raise ParameterError(f"{owner}: r_target of population {p.name!r} has {np.size(rt)} values for "
                                 f"{p.size} units")
        params.update(values, r_target=rt.reshape(-1) if np.ndim(rt) else rt)
        pops.append(dataclasses.replace(p, neuron="conductance_lif", params=params,
                                        options=tuple(dict.fromkeys(p.options + ("homeostatic",)))))
    return dataclasses.replace(net, populations=pops)
