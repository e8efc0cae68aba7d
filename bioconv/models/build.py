"""Build Brian2 objects from library models: neuron groups with their synaptic kernel, and synapses."""
from __future__ import annotations

import os
import re
import weakref
from collections.abc import Mapping

import numpy as np
from brian2 import Equations, NeuronGroup, Synapses
from brian2.equations.codestrings import Expression
from brian2.equations.equations import DIFFERENTIAL_EQUATION, PARAMETER, SingleEquation

from ..errors import ModelError, ParameterError
from ..units import check_quantity
from .library import NeuronModel, SynapseModel, _base_unit, compose_equations, load

# Which synapse model each group built here holds the kernel states of (groups are not ours to annotate).
_KERNEL_OF: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
# The initial-value expressions each group built here started from (its rest state).
_INITIAL_OF: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
# The state variables of the model of each group built here, folded ones included.
_STATES_OF: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()

# Relative distance under which tau_m and tau_s count as equal: the exact solution of a LIF with
# an exponential or alpha kernel divides by (tau_m - tau_s) and loses all precision there.
_DEGENERATE_TAU = 1e-6


def _as_model(model, kind):
    model = load(model) if isinstance(model, (str, os.PathLike)) else model
    if getattr(model, "kind", None) != kind:
        raise ModelError(f"model {getattr(model, 'name', model)!r} is a {getattr(model, 'kind', '?')} model, "
                         f"expected a {kind} model")
    return model


def parameters_of(neuron: NeuronModel, synapse: SynapseModel | None = None, options=()) -> dict:
    """All parameters (name -> Parameter) of a neuron with its kernel and options."""
    params = dict(neuron.parameters)
    for o in options:
        params.update(neuron.options[o].parameters)
    if synapse is not None:
        params.update(synapse.parameters)
    return params


def resolve_parameters(n: int, neuron: NeuronModel, synapse: SynapseModel | None, options,
                       values: Mapping) -> dict:
    """Check user values against the model's parameters; fill defaults. Returns name -> Quantity.

    Each value is a Brian2 quantity, scalar or of length ``n`` (one value per neuron).
    """
    params = parameters_of(neuron, synapse, options)
    owner = f"model {neuron.name!r}" + (f" with synapse {synapse.name!r}" if synapse else "")
    unknown = set(values) - set(params)
    if unknown:
        raise ParameterError(f"{owner}: unknown parameter(s) {sorted(unknown)}; "
                             f"known: {sorted(params)}")
    out = {}
    for name, p in params.items():
        value = values.get(name, p.default)
        q = check_quantity(value, p.dim, name, owner, positive=p.constraint == "positive",
                           nonnegative=p.constraint == "nonnegative")
        if q.ndim > 1 or (q.ndim == 1 and len(q) not in (1, n)):
            raise ParameterError(f"{owner}: parameter {name!r} must be a scalar or have one value per "
                                 f"neuron ({n}), got shape {q.shape}")
        out[name] = q
    return out


def neuron_group(n: int, neuron="conductance_lif", synapse=None, *, reset: str = "linear",
                 options: tuple[str, ...] = (), method: str | None = None, name: str | None = None,
                 dt=None, shared: tuple[str, ...] = (), count_spikes: bool = False, fold_static_states: bool = False,
                 leak_step: bool = False, **params) -> NeuronGroup:
    """A NeuronGroup of ``n`` neurons of a library model, with the kernel states of ``synapse``.

    Parameters
    ----------
    n : number of neurons.
    neuron, synapse : model names or loaded models (``synapse=None``: no synaptic input).
    reset : one of the neuron model's reset modes (``"linear"`` subtracts, ``"value"`` sets).
    options : neuron options to switch on, e.g. ``("homeostatic",)``.
    method : Brian2 integration method, or several tried in order; default: the synapse's if it
        sets one, else the neuron's.
    shared : parameters that hold one value for the whole group (Brian2 ``shared``), given as
        scalars: the generated code reads them once per step, not once per neuron, which is most of
        the per-step cost of a large group. They can still change between standalone runs
        (run_args), but not per neuron.
    count_spikes : add an integer ``spike_count`` that every spike increments (a per-neuron count that
        can be sampled and cleared without recording spike times).
    fold_static_states : a state variable whose derivative is zero once the ``shared`` parameters take
        their values (a perfect integrator without bias under delta synapses: only synaptic jumps
        move it) becomes a plain variable, with no integration step. The shared values are then
        fixed for the group: changing them later (run_args) would not bring the integration back.
    leak_step : integrate the leaky membrane exactly for every gl >= 0, Cm and gl per neuron (a
        sweepable build): ``dv/dt = f(v)`` becomes ``dv/dt = leak_exprel * f(v)`` under Euler's
        method, with ``leak_exprel = exprel(-gl dt / Cm)``, which the caller sets from gl and Cm
        (`LEAK_STEP_CODE`) before the steps it applies to. One Euler step of that is the exact
        step of a membrane linear in v whose other inputs are constant over the step: the
        conductance LIF under delta synapses (checked; the exact solver divides by gl, and RK4,
        the alternative valid at gl = 0, costs four evaluations per step).
    **params : parameter values as Brian2 quantities, scalar or one per neuron; missing ones take
        the model file's defaults.

    A discrete-step model (its file has ``step``) gets that update as a ``run_regularly`` operation
    named ``<name>_step`` in the ``groups`` slot, once per time step; each event the model declares
    besides the spike (e.g. ``negative``) becomes a Brian2 event with its reset in the ``resets`` slot.
    """
    neuron = _as_model(neuron, "neuron")
    synapse = None if synapse is None else _as_model(synapse, "synapse")
    if reset not in neuron.resets:
        raise ModelError(f"model {neuron.name!r} has no reset mode {reset!r}; "
                         f"available: {sorted(neuron.resets)}")
    options = (options,) if isinstance(options, str) else tuple(options)
    for o in options:
        if o not in neuron.options:
            raise ModelError(f"model {neuron.name!r} has no option {o!r}; available: {sorted(neuron.options)}")
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
        raise ParameterError(f"model {neuron.name!r}: number of neurons must be a positive integer, got {n!r}")
    values = resolve_parameters(n, neuron, synapse, options, params)
    shared = (shared,) if isinstance(shared, str) else tuple(shared)
    for pname in shared:
        if pname in values and np.size(values[pname]) != 1:
            raise ParameterError(f"model {neuron.name!r}: shared parameter {pname!r} needs one value, got "
                                 f"{np.size(values[pname])}")
    if leak_step:
        method = "euler"  # of the scaled equation: the exact step (see leak_step)
    method = method or (synapse.method if synapse and synapse.method else neuron.method)
    methods = (method,) if isinstance(method, str) else tuple(method)
    exact_first = methods[0] == "exact"
    if exact_first and "gl" in values and np.any(np.asarray(values["gl"]) == 0):
        raise ParameterError(f"model {neuron.name!r}: gl = 0 makes the exact solution of the leaky membrane "
                             f"divide by zero; use the 'perfect_integrator' model for a leak-free membrane")
    if exact_first and synapse is not None and synapse.kernel != "delta":
        _check_distinct_time_constants(neuron, synapse, values)

    reset_code = "\n".join([neuron.resets[reset]] + [neuron.options[o].on_spike for o in options
                                                      if neuron.options[o].on_spike])
    kwargs = {"name": name} if name else {}
    if dt is not None:
        kwargs["dt"] = dt
    # A refractory period of zero shared by the whole group: Brian2's refractoriness test then always
    # passes when the equations are integrated, so the group is built without the mechanism (no
    # per-neuron lastspike and flag to update and test every step); the dynamics are the same.
    refractory = neuron.refractory
    never_refractory = refractory in shared and float(values[refractory]) == 0
    equations = compose_equations(neuron, synapse, options, shared=shared, never_refractory=never_refractory)
    if leak_step:
        equations = _leak_step_equations(equations, neuron, synapse)
    states = sorted(equations.diff_eq_names)
    if fold_static_states and shared:
        static = _static_states(equations, {k: values[k] for k in shared if k in values})
        equations = Equations([SingleEquation(PARAMETER, eq.varname, eq.dim, var_type=eq.var_type)
                               if eq.varname in static else eq for eq in equations.ordered])
    if count_spikes:
        equations += Equations("spike_count : integer")
        reset_code += "\nspike_count += 1"
    threshold = neuron.threshold
    events = {name: e.condition for name, e in neuron.events.items()}
    for o in options:
        threshold = neuron.options[o].threshold or threshold
        events.update(neuron.options[o].events)
    if events:
        kwargs["events"] = events
    if neuron.discrete:  # no differential equations to integrate; refractory only if the model says so
        group = NeuronGroup(int(n), equations, threshold=threshold, reset=reset_code,
                            refractory=refractory or False, **kwargs)
        states = sorted(name for name in Equations(neuron.equations).names
                        if name in equations.names and equations[name].type == PARAMETER)
    else:
        group = NeuronGroup(int(n), equations, threshold=threshold, reset=reset_code,
                            refractory=False if never_refractory else refractory, method=list(methods), **kwargs)
    for name, e in neuron.events.items():
        if e.reset:
            group.run_on_event(name, e.reset, when="resets")
    if neuron.step:
        # Once per step, in the 'groups' slot (where Brian2 integrates continuous models): before
        # the step's thresholds and the synaptic input they send.
        group.run_regularly(neuron.step, when="groups", name=f"{group.name}_step")
    for pname, q in values.items():
        setattr(group, pname, q.reshape(()) if pname in shared else q)
    if leak_step:
        # the factor of the values given here (the caller's LEAK_STEP_CODE sets it again for later ones)
        x = -np.asarray(values["gl"], dtype=float) * float(group.clock.dt) / np.asarray(values["Cm"], dtype=float)
        group.leak_exprel = np.broadcast_to(np.where(x == 0, 1.0, np.expm1(x) / np.where(x == 0, 1.0, x)), (int(n),))
    initial = dict(neuron.initial)
    for o in options:
        initial.update(neuron.options[o].initial)
    for var, expr in initial.items():
        # An initial value that names a parameter with one value is set as that value: on the
        # standalone devices a string would cost a generated code object (compiled, and run).
        value = values.get(str(expr).strip())
        setattr(group, var, value.reshape(()) if value is not None and np.size(value) == 1 else expr)
    _KERNEL_OF[group] = synapse.name if synapse else None
    _INITIAL_OF[group] = initial
    _STATES_OF[group] = states
    return group


#: the code that sets a `leak_step` group's factor (dt in seconds, the group's time step)
LEAK_STEP_CODE = "leak_exprel = exprel(-gl * ({dt!r} * second) / Cm)"


def _leak_step_equations(equations: Equations, neuron, synapse) -> Equations:
    """`neuron_group`'s ``leak_step`` form of ``equations``: v's derivative times ``leak_exprel``.
    Refused unless v is the only integrated state, its inputs are constant parameters, and its
    derivative is linear in v with the slope -gl/Cm (zero while refractory): exact under the
    transformation."""
    import sympy
    from brian2.core.functions import DEFAULT_FUNCTIONS
    from brian2.core.namespace import DEFAULT_CONSTANTS, DEFAULT_UNITS
    from brian2.parsing.sympytools import str_to_sympy
    from brian2.utils.stringtools import get_identifiers

    where = f"model {neuron.name!r} with synapse {synapse.name if synapse else None!r}"
    if sorted(equations.diff_eq_names) != ["v"]:
        raise ModelError(f"{where}: the exact leak step integrates v alone, but the equations integrate "
                         f"{sorted(equations.diff_eq_names)} (a synaptic kernel or an option with its own state)")
    code = dict(equations.get_substituted_expressions())["v"].code
    # inputs must be constant over a step: constant parameters only (not t, noise, a TimedArray, or a
    # variable that code changes during a run)
    varying = sorted(i for i in get_identifiers(code) - {"v", "not_refractory", "int"}
                     if i not in DEFAULT_UNITS and i not in DEFAULT_CONSTANTS and i not in DEFAULT_FUNCTIONS
                     and not (i in equations.names and equations[i].type == PARAMETER and "constant" in equations[i].flags))
    if varying:
        raise ModelError(f"{where}: the exact leak step needs the inputs of dv/dt constant over a step; "
                         f"{varying} are not constant parameters (dv/dt = {code})")
    v, gl, cm = sympy.Symbol("v", real=True), sympy.Symbol("gl", real=True), sympy.Symbol("Cm", real=True)

    def rhs(refractory_factor: str):
        expr = str_to_sympy(re.sub(r"\bint\(\s*not_refractory\s*\)", refractory_factor, code))
        return expr.subs({s: {"v": v, "gl": gl, "Cm": cm}[s.name] for s in expr.free_symbols
                          if s.name in ("v", "gl", "Cm")})
    free = rhs("1")
    exact = (sympy.diff(free, v, 2) == 0 and sympy.simplify(sympy.diff(free, v) + gl / cm) == 0
             and (not re.search(r"\bnot_refractory\b", code) or sympy.simplify(rhs("0")) == 0))
    if not exact:
        raise ModelError(f"{where}: the exact leak step needs dv/dt linear in v with the slope -gl/Cm (and held "
                         f"while refractory); got dv/dt = {code}")
    eq = equations["v"]
    scaled = SingleEquation(DIFFERENTIAL_EQUATION, "v", eq.dim, var_type=eq.var_type,
                            expr=Expression(f"leak_exprel * ({eq.expr.code})"), flags=eq.flags)
    return Equations([scaled if e.varname == "v" else e for e in equations.ordered]) + Equations("leak_exprel : 1")


def _static_states(equations: Equations, shared_values: Mapping) -> set[str]:
    """Names of the differential equations whose right-hand side (subexpressions substituted) is
    identically zero once the shared parameters take their values (in SI units, as Brian2 computes)."""
    import sympy
    from brian2.parsing.sympytools import str_to_sympy
    static = set()
    for var, expr in equations.get_substituted_expressions():
        rhs = str_to_sympy(expr.code)
        rhs = rhs.subs({sym: float(np.asarray(shared_values[sym.name])) for sym in rhs.free_symbols
                        if sym.name in shared_values})
        if sympy.simplify(rhs) == 0:
            static.add(var)
    return static


def rest_state_code(group: NeuronGroup) -> str:
    """Brian2 code that puts a group built by `neuron_group` back into its initial state: every
    state variable to its model's initial value (kernel states to zero), refractoriness cleared.
    Used between samples presented one after another in one run."""
    if group not in _INITIAL_OF:
        raise ModelError(f"group {group.name!r} was not built by bioconv.models.neuron_group")
    initial = _INITIAL_OF[group]
    lines = [f"{var} = {initial[var]}" if var in initial else f"{var} = 0*{var}"
             for var in _STATES_OF.get(group, sorted(group.equations.diff_eq_names))]
    if "lastspike" in group.variables:
        lines += ["lastspike = -1e4*second", "not_refractory = True"]  # Brian2's own initial values
    return "\n".join(lines)


def _check_distinct_time_constants(neuron, synapse, values):
    if "gl" not in values or "tau_s" not in values:
        return
    gl = np.asarray(values["gl"])
    cm = np.asarray(values["Cm"])
    tau_s = np.asarray(values["tau_s"])
    with np.errstate(divide="ignore"):
        tau_m = np.where(gl > 0, cm / np.where(gl > 0, gl, 1.0), np.inf)
    close = np.abs(tau_m - tau_s) <= _DEGENERATE_TAU * tau_s
    if np.any(close):
        idx = np.flatnonzero(np.broadcast_to(close, np.broadcast(tau_m, tau_s).shape))[:5]
        raise ParameterError(
            f"model {neuron.name!r} with synapse {synapse.name!r}: tau_m = Cm/gl equals tau_s "
            f"(neuron(s) {idx.tolist()}), where exact integration divides by (tau_m - tau_s); "
            f"choose different time constants or pass method='rk4'")


def weighted_event_code(code: str, factor: str | None) -> str:
    """A synapse model's event code with every use of the weight ``w`` scaled by the presynaptic
    variable ``factor`` (``w`` -> ``(w * <factor>_pre)``): each spike weighs what its source says it
    is worth (a phase-coded input's spike: the weight of its phase). ``factor=None``: ``code`` as is.
    A Brian2 code string: the generated code changes only through Brian2's code generation of it."""
    if factor is None:
        return code
    from brian2.utils.stringtools import word_substitute
    return word_substitute(code, {"w": f"(w * {factor}_pre)"})


def synapses(pre, post, synapse, *, i, j, w, delay=None, name: str | None = None,
             target_refractory: bool = True, weight_factor: str | None = None) -> Synapses:
    """Connect ``pre`` to ``post`` through ``synapse`` with index arrays ``i``, ``j`` and weights ``w``.

    ``post`` must have been built by `neuron_group` with the same synapse model (its kernel states
    live in the neuron). ``w`` is a quantity in the model's weight unit, scalar or one per synapse.
    ``target_refractory=False`` declares that no target neuron has a refractory period (tau_ref = 0):
    the model's ``on_pre_without_refractoriness`` form, if it has one, is then used.
    Each event of ``pre`` besides the spike gets a pathway of its own, named after the event, running
    the synapse model's ``on_event`` statement for it (a source event the synapse does not transmit is
    refused); ``delay`` then applies to every pathway.
    ``weight_factor``: a variable of ``pre`` by which every event's weight is multiplied
    (`weighted_event_code`): a phase-coded input's spike weight (`bioconv.coding.phase`).
    """
    synapse = _as_model(synapse, "synapse")
    built_with = _KERNEL_OF.get(post, synapse.name)
    if built_with != synapse.name:
        raise ModelError(f"synapse model {synapse.name!r}: target group {post.name!r} was built with synapse "
                         f"model {built_with!r}; its kernel states do not match")
    on_pre = synapse.on_pre
    # a target declared never refractory, or built without the mechanism (tau_ref = 0 shared)
    if (not target_refractory or "lastspike" not in post.variables) and synapse.on_pre_without_refractoriness:
        on_pre = synapse.on_pre_without_refractoriness
    # The source's events besides the spike (a TSA neuron's negative spikes) each get a pathway of
    # their own; one the synapse cannot transmit would be dropped silently, so it is refused.
    source_events = [e for e in getattr(pre, "events", {}) if e != "spike"]
    untransmitted = [e for e in source_events if e not in synapse.on_event]
    if untransmitted:
        raise ModelError(f"synapse model {synapse.name!r}: source group {pre.name!r} fires the event(s) "
                         f"{untransmitted}, which the synapse does not transmit (its on_event: "
                         f"{sorted(synapse.on_event) or 'none'})")
    pathways = {"pre": on_pre, **{e: synapse.on_event[e] for e in source_events}}
    if weight_factor is not None:
        if weight_factor not in pre.variables:
            raise ModelError(f"synapse model {synapse.name!r}: source group {pre.name!r} has no variable "
                             f"{weight_factor!r} to weigh its spikes by")
        pathways = {p: weighted_event_code(code, weight_factor) for p, code in pathways.items()}
        on_pre = pathways["pre"]
    missing = sorted({v for code in pathways.values() for v in _post_names(code) if v not in post.variables})
    if missing:
        raise ModelError(f"synapse model {synapse.name!r}: target group {post.name!r} lacks "
                         f"{missing}; build it with neuron_group(..., synapse={synapse.name!r})")
    w = check_quantity(w, synapse.weight_dim, "w", f"synapse model {synapse.name!r}")
    kwargs = {"name": name} if name else {}
    if delay is not None:  # one delay for every pathway
        kwargs["delay"] = {p: delay for p in pathways} if len(pathways) > 1 else delay
    if len(pathways) > 1:
        kwargs["on_event"] = {p: "spike" if p == "pre" else p for p in pathways}
        on_pre = pathways
    syn = Synapses(pre, post, model=f"w : {_base_unit(synapse.weight_dim)} (constant)", on_pre=on_pre, **kwargs)
    syn.connect(i=np.asarray(i, dtype=np.int32), j=np.asarray(j, dtype=np.int32))
    syn.w = w
    return syn


def _post_names(code: str) -> list[str]:
    return sorted({m[:-5] for m in re.findall(r"\b([A-Za-z_]\w*_post)\b", code)})
