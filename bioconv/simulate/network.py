"""Build a MappedNetwork in Brian2 for B input samples at once, as B disjoint copies.

Copy ``b`` of a population of ``n`` units occupies indices ``b*n .. b*n + n-1`` of its NeuronGroup;
projections are block-diagonal: each is connected once, with vectorized index arrays.

Max pooling is a spiking gate (Rueckauer et al. 2017): every source unit of a pooling window counts
its spikes; a spike passes to the window's gate neuron only if its unit's count is the window's
highest so far, and the gate relays it (one step later) to the next layer. The gate's rate therefore
follows the most active input, which is what max pooling of rates asks for.

The inputs come through the encoder registry (`bioconv.coding.encoders`): the encoder builds the
input group, gives the values a run sets, and its part of the reset between presentations.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from brian2 import NeuronGroup, Quantity, SpikeMonitor, StateMonitor, Synapses, TimedArray

from .. import models
from ..coding.encoders import encoders, spike_counter
from ..mapping import MappedNetwork
from . import sweepable as sw


@dataclass
class BuiltNetwork:
    objects: list
    groups: dict        # population name -> NeuronGroup (input: the encoder's group, absent for 'current')
    spikes: dict        # population name -> SpikeMonitor
    n_copies: int
    output_state: StateMonitor | None = None
    input_vars: dict = None  # population name -> the variable the inputs set (the encoder's: 'rate', 'I_bias')
    # presentations > 1: population name -> TimedArray (K, B*size) of what `input_values` gives for
    # it, one row per presentation (the input rates, or the first layers' bias currents)
    input_tables: dict = None
    presentations: int = 1
    # presentations > 1: population name -> StateMonitor of the group's `spike_count` at the start of
    # every presentation, before it is cleared (every population but the output, whose spike times
    # are recorded)
    counters: dict = None
    # presentations > 1, potential readout: the output's V at the start of every presentation,
    # before the reset (the previous presentation's final V), and the output_state samples per
    # presentation
    final_state: StateMonitor | None = None
    samples_per_presentation: int = 0
    input_units: dict = None  # population name -> the unit of its input variable (Hz, amp)


def input_values(net: MappedNetwork, x: np.ndarray, encoder: str) -> dict[str, np.ndarray]:
    """What the inputs set, per population name, for ``B = len(x)`` samples of encoded values (B,
    n_input), in the encoder's ``value_unit`` (Hz for rates): the encoder's run_args values
    (`bioconv.coding.encoders`), in its ``unit``."""
    return encoders[encoder].values(net, x)


def set_inputs(built: "BuiltNetwork", values: dict[str, np.ndarray]):
    """Assign `input_values` to the built groups (runtime, or before a standalone build)."""
    for name, v in values.items():
        var = built.input_vars[name]
        setattr(built.groups[name], var, v * built.input_units[name])


def build(net: MappedNetwork, x_rates: np.ndarray, *, encoder: str = "regular", record_output_every=None,
          record_times: str = "all", presentations: int = 1, period=None, sweepable=()) -> BuiltNetwork:
    """Create the Brian2 objects for ``B = len(x_rates)`` samples; ``x_rates`` (B, n_input): the coding
    scheme's encoded inputs, in the encoder's ``value_unit`` (Hz for rate coding's encoders).

    Must be called inside `bioconv.simulate.simulation_device`. Returns the objects to run and the
    monitors to read. ``record_times="output"`` records spike times only in the output layer (the
    other monitors keep per-neuron counts, ``monitor.count``: less work and memory per spike).
    ``presentations`` K > 1 presents K samples one after another to every copy in one run, each for
    ``period``, with every state variable reset to its initial value between them: the inputs then
    come from ``BuiltNetwork.input_tables`` (K, B*size per population; every row ``x_rates``'s
    values until set), the output's spike times must be split by presentation, and every other
    population's counts per presentation come from ``BuiltNetwork.counters``. With the potential
    readout, ``record_output_every`` must divide ``period``: ``output_state`` then holds
    ``samples_per_presentation`` samples per presentation and ``final_state`` each presentation's
    final V. The inputs can change later without rebuilding: `input_values` gives the new values of
    the variables named in ``BuiltNetwork.input_vars``.
    ``sweepable``: names of `sweepable.SWEEPABLE` the build keeps changeable per neuron and per copy
    (see `sweepable`): no model variable they move is shared or specialized on, and when a run
    starts every state is set to its rest value from the variables, which run_args may have
    changed (needs ``period``).
    """
    names = sw.check_names(sweepable, "build")
    swept = sw.swept_variables(net, names)
    net = sw.sweepable_form(net, names)
    enc = encoders[encoder]
    B = len(x_rates)
    K = int(presentations)
    if (K > 1 or names) and period is None:
        raise ValueError("presentations > 1 and sweepable builds need the period")
    samples = samples_per_presentation(period, record_output_every) if K > 1 and net.readout == "potential" else 0
    groups, spikes, objects = {}, {}, []
    input_pop = net.populations[0]
    inputs = enc.values(net, x_rates)
    input_vars, input_units = {}, {}
    # One row per presentation, read when a presentation starts (a TimedArray looked up at t = k*period
    # gives row k): all of a run's inputs travel as one run_args table per population.
    tables = {name: TimedArray(np.tile(v, (K, 1)) * enc.unit, dt=period, name=enc.table_name(name))
              for name, v in inputs.items()} if K > 1 else {}
    resets = []  # (group or synapses, code): run at the start of every presentation when K > 1
    if enc.spiking:
        groups[input_pop.name] = enc.group(B * input_pop.size, inputs[input_pop.name], "pop_input",
                                           table=tables.get(input_pop.name), count_spikes=K > 1)
        input_vars[input_pop.name], input_units[input_pop.name] = enc.variable, enc.unit
        if K > 1:
            resets.append((groups[input_pop.name], "\n".join(filter(None, [enc.presentation_reset(),
                                                                           "spike_count = 0"]))))
    bias_source = None
    for p in net.populations[1:]:
        counting = K > 1 and p is not net.populations[-1]
        if p.kind == "maxpool":
            groups[p.name] = _maxpool_gate(p, B, groups, objects, counting)
            resets += [(groups[p.name], "maxc = 0\npending = 0" + ("\nspike_count = 0" if counting else "")),
                       (objects[-1], "c = 0")]
            continue
        # Parameters with one value in the whole population are shared by the group: the generated
        # code then reads them once per step instead of once per neuron and step (about a third
        # of a ConvNet's simulation loop).
        # Swept variables stay per neuron: each copy may hold another parameter point.
        uniform = {k: _uniform(v) if k not in swept[p.name] else None for k, v in p.params.items()}
        params = {k: (u if u is not None else _tile(p.params[k], B, p.size)) for k, u in uniform.items()}
        shared = {k for k, u in uniform.items() if u is not None} | {k for k, v in net.synapse_params.items()
                                                                     if np.size(v) == 1 and k not in swept[p.name]}
        if p.name in inputs:  # a non-spiking encoder drives this population
            params[enc.variable] = Quantity(inputs[p.name], dim=enc.unit.dim)
            input_vars[p.name], input_units[p.name] = enc.variable, enc.unit
            shared.discard(enc.variable)  # set per neuron and per batch
        method = None
        if p.neuron == "conductance_lif" and (np.any(np.asarray(params["gl"]) == 0) or "gl" in swept[p.name]):
            method = "rk4"  # exact integration of the leaky membrane divides by gl (units with gl = 0 here)
        g = models.neuron_group(B * p.size, p.neuron, net.synapse, reset=net.reset, method=method,
                                name=f"pop_{_safe(p.name)}", shared=tuple(sorted(shared)), count_spikes=counting,
                                fold_static_states=True,
                                **net.synapse_params, **params)
        groups[p.name] = g
        reset = models.rest_state_code(g) + ("\nspike_count = 0" if counting else "")
        if p.name in tables:  # driven by a non-spiking encoder: its values are loaded when a presentation starts
            g.namespace[tables[p.name].name] = tables[p.name]
            reset += "\n" + enc.presentation_reset(tables[p.name].name)
        resets.append((g, reset))
        refractory = bool(np.any(np.asarray(params.get("tau_ref", 1.0)) > 0)) or "tau_ref" in swept[p.name]
        for k, q in enumerate(p.projections):
            if q.source == input_pop.name and not enc.spiking:
                continue
            src = groups[q.source]
            n_src = int(np.prod(net.population(q.source).shape))
            # Synapses in source order: a spike's targets then sit together in memory, which makes
            # event propagation (most of a ConvNet's run time) read w and the targets sequentially.
            order = np.argsort(q.i, kind="stable")
            i = (q.i[order][None, :] + n_src * np.arange(B)[:, None]).ravel()
            j = (q.j[order][None, :] + p.size * np.arange(B)[:, None]).ravel()
            name = f"syn_{_safe(q.source)}_to_{_safe(p.name)}_{k}"
            w = Quantity(weight_values(net, B, encoder)[name], dim=q.w.dim)
            objects.append(models.synapses(src, g, net.synapse, i=i, j=j, w=w, target_refractory=refractory,
                                           name=name))
        if p.bias_weight is not None:
            # one source for all copies, or one per copy where each copy may have its own rate_max
            per_copy = sw.bias_sources_per_copy(net, names)
            if bias_source is None:
                bias_source = encoders["regular"].group(B if per_copy else 1, np.full(B if per_copy else 1, float(net.rate_max)),
                                                         "bias_source")
                objects.append(bias_source)
                resets.append((bias_source, "phase = 0"))
            nz = np.flatnonzero(np.asarray(p.bias_weight))
            if len(nz):
                j = (nz[None, :] + p.size * np.arange(B)[:, None]).ravel()
                i = np.repeat(np.arange(B), len(nz)) if per_copy else np.zeros(len(j), int)
                name = f"syn_bias_to_{_safe(p.name)}"
                w = Quantity(weight_values(net, B, encoder)[name], dim=p.bias_weight.dim)
                objects.append(models.synapses(bias_source, g, net.synapse, i=i, j=j, w=w,
                                               target_refractory=refractory, name=name))
    if record_times not in ("all", "output"):
        raise ValueError(f"record_times must be 'all' or 'output', got {record_times!r}")
    out_name = net.populations[-1].name
    counters = {}
    for name, g in groups.items():
        if K > 1 and name != out_name:
            # Counts per presentation without recording every spike: the group's spike_count, sampled
            # at the start of each presentation just before the reset clears it (the last one is
            # the group's final value).
            counters[name] = StateMonitor(g, "spike_count", record=True, dt=period, when="start", order=-1,
                                          name=f"counts_{_safe(name)}")
        else:
            spikes[name] = SpikeMonitor(g, record=record_times == "all" or name == out_name,
                                        name=f"spikes_{_safe(name)}")
    objects += list(groups.values()) + list(spikes.values()) + list(counters.values())
    state = final = None
    if net.readout == "potential":
        out = groups[net.populations[-1].name]
        state = StateMonitor(out, "v", record=True, dt=record_output_every)
        objects.append(state)
        if K > 1:
            # Sampled as the counters are, before the reset: the V each presentation ends with.
            final = StateMonitor(out, "v", record=True, dt=period, when="start", order=-1, name="final_v")
            objects.append(final)
    if K > 1 or names:  # sweepable with K = 1: the rest state from the (run_args) variables at the start
        for k, (obj, code) in enumerate(resets):
            objects.append(obj.run_regularly(code, dt=period, when="start", name=f"rest_{k}_{obj.name}"))
    return BuiltNetwork(objects, groups, spikes, B, state, input_vars, tables, K, counters, final, samples,
                        input_units)


def samples_per_presentation(period, every) -> int:
    """How many membrane samples (one every ``every``) fall in each presentation of ``period``: the
    samples of a run of presentations can be split by presentation only if ``every`` divides it."""
    if every is None:
        raise ValueError("presentations > 1 with the potential readout needs record_output_every")
    n = int(round(float(period / every)))
    if n < 1 or abs(n * float(every) - float(period)) > 1e-9 * float(period):
        raise ValueError(f"presentations > 1 with the potential readout needs record_output_every ({every}) to "
                         f"divide the presentation's duration ({period})")
    return n


def weight_values(net: MappedNetwork, B: int, encoder: str) -> dict[str, np.ndarray]:
    """The weight of every synapse `build` creates, per Synapses name, in SI units and in the order
    `build` connects them (source order, copy after copy): `build` sets them, and a launch of a
    compiled project passes them as run_args, so that the project serves any weights of its topology."""
    out = {}
    input_name = net.populations[0].name
    for p in net.populations[1:]:
        if p.kind == "maxpool":
            continue
        for k, q in enumerate(p.projections):
            if q.source == input_name and not encoders[encoder].spiking:
                continue
            order = np.argsort(q.i, kind="stable")
            out[f"syn_{_safe(q.source)}_to_{_safe(p.name)}_{k}"] = np.tile(np.asarray(q.w)[order], B)
        if p.bias_weight is not None:
            nz = np.flatnonzero(np.asarray(p.bias_weight))
            if len(nz):
                out[f"syn_bias_to_{_safe(p.name)}"] = np.tile(np.asarray(p.bias_weight)[nz], B)
    return out


def parameter_values(net: MappedNetwork, B: int, encoder: str, sweepable=()) -> dict[tuple[str, str], np.ndarray]:
    """The per-neuron parameters `build` sets, as (group name, parameter) -> values in SI units for the
    B copies: those that vary within their population (uniform ones are shared by the group, and the
    build specializes on some of their values). The inputs' currents are left out: they change per
    batch. ``sweepable``: the build's swept variables are passed whether uniform or not (with tau_s
    per group, and the bias sources' rates where each copy has its own)."""
    names = sw.check_names(sweepable, "parameter_values")
    swept = sw.swept_variables(net, names)
    net = sw.sweepable_form(net, names)
    enc = encoders[encoder]
    inputs = set() if enc.spiking else set(enc.driven(net))
    out = {}
    for p in net.populations[1:]:
        if p.kind == "maxpool":
            continue
        for k, v in p.params.items():
            if (_uniform(v) is None or k in swept.get(p.name, ())) and not (k == "I_bias" and p.name in inputs):
                out[(f"pop_{_safe(p.name)}", k)] = np.tile(np.broadcast_to(np.asarray(v, dtype=float), (p.size,)), B)
        if "tau_s" in swept.get(p.name, ()):
            out[(f"pop_{_safe(p.name)}", "tau_s")] = np.full(B * p.size, float(net.synapse_params["tau_s"]))
    if sw.bias_sources_per_copy(net, names):
        out[("bias_source", "rate")] = np.full(B, float(net.rate_max))
    return out


def shape_signature(net: MappedNetwork, sweepable=()) -> list:
    """What of a network's mapped values shapes `build`'s code: the topology, which parameters are
    uniform and their values (shared by the group, specialized on), and the decisions `build` takes
    from per-neuron values (a refractory period anywhere, gl = 0 anywhere). Not the weights, nor the
    per-neuron values themselves: a launch passes them (`weight_values`, `parameter_values`).
    ``sweepable``: swept variables count as "swept", whatever their values (a launch passes them)."""
    names = sw.check_names(sweepable, "shape_signature")
    swept = sw.swept_variables(net, names)
    net = sw.sweepable_form(net, names)
    pops = []
    for p in net.populations:
        params = {}
        mine = swept.get(p.name, set())
        for k, v in sorted(p.params.items()):
            u = _uniform(v) if k not in mine else None
            params[k] = [str(getattr(v, "dim", "")), "swept" if k in mine else
                         np.asarray(u) if u is not None else "per-neuron"]
        decisions = {"tau_ref>0": "swept" if "tau_ref" in mine else
                     bool(np.any(np.asarray(p.params.get("tau_ref", 1.0)) > 0)),
                     "gl==0": "swept" if "gl" in mine else
                     bool(np.any(np.asarray(p.params["gl"]) == 0)) if "gl" in p.params else None,
                     "tau_s": "swept" if "tau_s" in mine else None}
        pops.append({"name": p.name, "kind": p.kind, "shape": list(p.shape), "neuron": p.neuron, "params": params,
                     "decisions": decisions,
                     "projections": [[q.source, np.asarray(q.i), np.asarray(q.j), str(getattr(q.w, "dim", ""))]
                                     for q in p.projections],
                     "bias": None if p.bias_weight is None else np.flatnonzero(np.asarray(p.bias_weight)),
                     "pool_groups": None if p.pool_groups is None else np.asarray(p.pool_groups)})
    return pops


def _maxpool_gate(p, B, groups, objects, count_spikes=False) -> NeuronGroup:
    source_name = p.projections[0].source
    src = groups[source_name]
    n_windows = p.size
    # `pending` counts passes not yet relayed: a pass arriving in the step the gate fires (synapses
    # run between threshold and reset) must not be wiped by the reset, so the reset decrements.
    count, counting = spike_counter(count_spikes)
    gate = NeuronGroup(B * n_windows, "maxc : 1\npending : 1" + count, threshold="pending > 0.5",
                       reset="pending -= 1" + counting, name=f"pop_{_safe(p.name)}")
    member = np.flatnonzero(p.pool_groups >= 0)
    n_src = len(p.pool_groups)
    i = (member[None, :] + n_src * np.arange(B)[:, None]).ravel()
    j = (p.pool_groups[member][None, :] + n_windows * np.arange(B)[:, None]).ravel()
    # The synapse's own counter is its source unit's spike count (one synapse per unit). A spike
    # passes when it lifts its unit's count above the window's running maximum (which then rises by
    # exactly one), so the gate emits exactly max_u N_u(t) spikes, at most one per step.
    s = Synapses(src, gate, model="c : 1", on_pre="""
        c += 1
        pending_post += int(c > maxc_post)
        maxc_post = maxc_post + (c - maxc_post) * int(c > maxc_post)
        """, name=f"gate_{_safe(source_name)}_to_{_safe(p.name)}")
    s.connect(i=i.astype(np.int32), j=j.astype(np.int32))
    objects.append(s)
    return gate


def _uniform(v):
    """``v`` as a scalar quantity if all its values are equal, else None."""
    arr = np.asarray(v)
    if arr.size and np.all(arr == arr.flat[0]):
        return Quantity(arr.flat[0], dim=v.dim) if hasattr(v, "dim") else arr.flat[0]
    return None


def _tile(v, B, n):
    arr = np.asarray(v)
    if arr.ndim == 0:
        return v
    return Quantity(np.tile(arr, B), dim=v.dim)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name)
