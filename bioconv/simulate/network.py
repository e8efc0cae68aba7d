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

import logging
from dataclasses import dataclass

import numpy as np
from brian2 import NeuronGroup, Quantity, SpikeMonitor, StateMonitor, Synapses, TimedArray, get_device

from .. import models
from ..coding.encoders import encoders, spike_counter
from ..conv_geometry import KernelTerm
from ..errors import ParameterError
from ..mapping import MappedNetwork, MappedProjection
from . import sweepable as sw

logger = logging.getLogger(__name__)

#: How a build gives a convolution's projection: "shared" (its kernel stored once, the targets of a
#: spike computed from its geometry: `shared_conv`; bioconv's standalone device only) or "unrolled"
#: (one stored synapse per source-target pair, Brian2's `Synapses`).
CONV_FORMS = ("shared", "unrolled")


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
    weight_owners: dict = None  # weight name (`weight_values`) -> the Brian2 object holding it as `w`
    conv: str = "unrolled"  # the form the convolutions were built in (CONV_FORMS)


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


def check_conv(conv, where: str) -> str:
    if conv not in CONV_FORMS:
        raise ParameterError(f"{where}: conv must be one of {CONV_FORMS}, got {conv!r}")
    return conv


def conv_form(conv: str, kind: str, where: str = "build") -> str:
    """The form a build on device ``kind`` ('cpp', 'runtime', 'cuda') gives convolutions when
    ``conv`` is asked for: 'shared' needs bioconv's standalone device (the template of the
    shared-kernel pathway); on the other devices convolutions stay unrolled, which costs memory
    and speed only, and is logged (``bioconv.simulate.network``, INFO)."""
    check_conv(conv, where)
    if conv == "shared" and kind != "cpp":
        logger.info("%s: conv='shared' is not available on the %r device (the shared-kernel pathway is a template of "
                    "bioconv's standalone device, 'cpp'); convolutions stay unrolled", where, kind)
        return "unrolled"
    return conv


def kernel_copies(n_copies: int, sweepable=()) -> int:
    """Kernels a shared pathway stores: one for all copies, or one per copy when a sweepable build
    moves the weights per copy (tau_s: the amplitude that keeps the charge)."""
    return int(n_copies) if "tau_s" in sw.check_names(sweepable, "kernel_copies") else 1


def input_sharing_obstacle(net: MappedNetwork, encoder: str, conv: str, sweepable=()) -> str | None:
    """Why copies of ``net`` cannot share input copies (`build`'s ``input_copies``), or None where they
    can: copies that show the same samples then read one input group, whose spikes reach every such
    copy's first layer through one pathway. That needs input that is the same for those copies: a
    deterministic spiking encoder (not Poisson, whose copies draw their own numbers; not a current,
    which is no spike group), rates that no point changes (rate_max) and input weights that no point
    changes (tau_s), and input pathways of stored synapses (not a shared kernel, nor a max-pool gate)."""
    enc = encoders[encoder]
    names = sw.check_names(sweepable, "input_sharing_obstacle")
    if not enc.spiking:
        return f"encoder {encoder!r} drives the first layers with currents, not an input group"
    if not enc.deterministic:
        return f"encoder {encoder!r} draws random numbers per copy"
    for name in ("rate_max", "tau_s"):
        if name in names:
            return f"{name} is swept: each point gives the input layer {'rates' if name == 'rate_max' else 'weights'} of its own"
    input_name = net.populations[0].name
    for p in net.populations[1:]:
        for k, q in enumerate(p.projections):
            if q.source != input_name:
                continue
            if p.kind == "maxpool":
                return f"population {p.name!r} max-pools the input"
            for name, part in pathway_parts(net, q, f"syn_{_safe(q.source)}_to_{_safe(p.name)}_{k}", conv):
                if isinstance(part, KernelTerm):
                    return f"projection {name} from the input is a shared-kernel pathway"
    return None


def check_input_copies(n_copies: int, input_copies, net: MappedNetwork, encoder: str, conv: str, sweepable,
                       where: str) -> int:
    """``input_copies`` as a build takes it: None gives every copy its own input (``n_copies``);
    otherwise a divisor of ``n_copies``, refused with `input_sharing_obstacle`'s reason when there is one."""
    if input_copies is None or int(input_copies) == int(n_copies):
        return int(n_copies)
    if isinstance(input_copies, bool) or int(input_copies) != input_copies or not 1 <= input_copies < n_copies \
            or n_copies % int(input_copies):
        raise ParameterError(f"{where}: input_copies must divide the {n_copies} copies, got {input_copies!r}")
    obstacle = input_sharing_obstacle(net, encoder, conv, sweepable)
    if obstacle is not None:
        raise ParameterError(f"{where}: copies cannot share input copies: {obstacle}")
    return int(input_copies)


def input_pathway(part: MappedProjection, n_src: int, n_tgt: int, B: int, C: int):
    """The synapses (i, j) of an unrolled pathway from the input for B copies of which copy b reads
    input copy b % C, and the order of the B tiled copies of ``part`` they are stored in (weights
    follow it): source after source (a spike's targets together, over every copy that reads it),
    each source's synapses copy after copy. With C = B this is `build`'s usual block-diagonal
    order, unpermuted (``order`` None)."""
    order = np.argsort(part.i, kind="stable")
    i = (part.i[order][None, :] + n_src * (np.arange(B) % C)[:, None]).ravel()
    j = (part.j[order][None, :] + n_tgt * np.arange(B)[:, None]).ravel()
    if C == B:
        return i, j, order, None
    by_source = _source_major(np.asarray(part.i)[order], B, C)
    return i[by_source], j[by_source], order, by_source


def _source_major(sources: np.ndarray, B: int, C: int) -> np.ndarray:
    """The stable sort by source of B tiled copies of a pathway whose synapses run source after
    source (``sources``, sorted), where copy b's sources are shifted to input copy b % C: input copy
    after input copy, source after source, then copy after copy, each copy's run of that source in
    its order. Built from the runs directly (an argsort of the B-fold arrays cost 0.3 s for the MLP)."""
    n = len(sources)
    cut = np.flatnonzero(np.diff(sources)) + 1
    starts = np.concatenate([[0], cut]).astype(np.int64)
    lengths = np.diff(np.concatenate([starts, [n]]))
    P = B // C
    # segments in output order: input copy c, source run r, copy b = c + C*p
    b = (np.arange(C)[:, None, None] + C * np.arange(P)[None, None, :])  # (C, 1, P)
    seg_start = (b * n + starts[None, :, None]).ravel()                 # (C, runs, P) flattened
    seg_len = np.broadcast_to(lengths[None, :, None], (C, len(starts), P)).ravel()
    out_start = np.concatenate([[0], np.cumsum(seg_len)[:-1]])
    return np.arange(B * n, dtype=np.int64) + np.repeat(seg_start - out_start, seg_len)


def pathway_parts(net: MappedNetwork, q: MappedProjection, name: str, conv: str, log: bool = False):
    """The pathways a build makes of projection ``q`` (whose unrolled Synapses is called ``name``):
    (name, `KernelTerm`) for each convolution kept shared, (name, MappedProjection) for what is
    unrolled. With conv='shared', a projection made of one kernel gives one shared pathway of the
    Synapses' own name (so it runs in the schedule where the Synapses' pathway would); one with
    several parts names its kernels ``<name>_conv<m>`` and its unrolled rest ``<name>``."""
    if conv != "shared" or not q.kernels:
        return [(name, q)]
    events = [e for e in getattr(models.load(net.population(q.source).neuron), "events", {}) or {}
              if e != "spike"] if net.population(q.source).neuron else []
    if events:
        if log:
            logger.info("projection %s: its source fires events besides the spike (%s), which the shared-kernel "
                        "pathway does not transmit; it stays unrolled", name, events)
        return [(name, q)]
    if len(q.kernels) == 1 and q.rest is None:
        return [(name, q.kernels[0])]
    parts = [(f"{name}_conv{m}", k) for m, k in enumerate(q.kernels)]
    return parts + ([(name, q.rest)] if q.rest is not None else [])


def _device_supports_shared() -> bool:
    from .standalone.device import BioconvStandaloneDevice
    return isinstance(get_device(), BioconvStandaloneDevice)


def build(net: MappedNetwork, x_rates: np.ndarray, *, encoder: str = "regular", record_output_every=None,
          record_times: str = "all", presentations: int = 1, period=None, sweepable=(),
          conv: str = "shared", input_copies: int | None = None) -> BuiltNetwork:
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
    ``conv``: the form of the convolutions (`CONV_FORMS`); 'shared' needs bioconv's standalone
    device, elsewhere they stay unrolled (logged). ``BuiltNetwork.conv`` says which.
    ``input_copies``: C, a divisor of B (default B): copy ``b`` shows the samples of input copy
    ``b % C``, so the input group holds C copies (its inputs, tables and counts too: ``x_rates``'s
    first C rows) and every spike reaches the first layer of each copy that reads it through one
    pathway, its synapses stored source after source (`input_pathway`). Copies of parameter points
    that show the same samples need the input layer once (`input_sharing_obstacle` says where they
    cannot). Each target receives the same charges in the same order as with its own input copy.
    """
    check_conv(conv, "build")
    if conv == "shared" and not _device_supports_shared():
        conv = conv_form(conv, type(get_device()).__name__, "build")
    names = sw.check_names(sweepable, "build")
    sw.check_homeostatic(net, names, "build")
    swept = sw.swept_variables(net, names)
    net = sw.sweepable_form(net, names)
    enc = encoders[encoder]
    if "rate_max" in names and enc.uses_rate_max:
        raise ParameterError(f"build: encoder {encoder!r} codes its input against the network's rate_max (its full "
                             f"scale, a constant of the compiled input group); rate_max cannot be swept with it")
    B = len(x_rates)
    C = check_input_copies(B, input_copies, net, encoder, conv, names, "build")
    K = int(presentations)
    if (K > 1 or names) and period is None:
        raise ValueError("presentations > 1 and sweepable builds need the period")
    samples = samples_per_presentation(period, record_output_every) if K > 1 and net.readout == "potential" else 0
    groups, spikes, objects, weight_owners = {}, {}, [], {}
    input_pop = net.populations[0]
    inputs = enc.values(net, x_rates[:C])  # C = B unless copies share the input group
    input_vars, input_units = {}, {}
    # One row per presentation, read when a presentation starts (a TimedArray looked up at t = k*period
    # gives row k): all of a run's inputs travel as one run_args table per population.
    tables = {name: TimedArray(np.tile(v, (K, 1)) * enc.unit, dt=period, name=enc.table_name(name))
              for name, v in inputs.items()} if K > 1 else {}
    resets = []  # (group or synapses, code): run at the start of every presentation when K > 1
    if enc.spiking:
        groups[input_pop.name] = enc.group(C * input_pop.size, inputs[input_pop.name], "pop_input",
                                           table=tables.get(input_pop.name), count_spikes=K > 1)
        enc.configure(groups[input_pop.name], net)
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
        # exact integration of the leaky membrane divides by gl (units with gl = 0 here); in a sweepable
        # build under delta synapses the exact step for every gl >= 0 instead (`neuron_group`'s
        # leak_step: one Euler step scaled by exprel(-gl dt / Cm), set with the rest state at the start
        # of every presentation, after run_args may have changed gl and Cm); RK4 where the membrane
        # has other states (a synaptic kernel, the homeostatic threshold)
        zero_leak = p.neuron == "conductance_lif" and (np.any(np.asarray(params["gl"]) == 0) or "gl" in swept[p.name])
        leak_step = zero_leak and bool(names) and not p.options and models.load(net.synapse).kernel == "delta"
        method = "rk4" if zero_leak and not leak_step else None
        g = models.neuron_group(B * p.size, p.neuron, net.synapse, reset=net.reset, method=method,
                                options=p.options, name=f"pop_{_safe(p.name)}", shared=tuple(sorted(shared)),
                                count_spikes=counting,
                                fold_static_states=True, leak_step=leak_step,
                                **net.synapse_params, **params)
        groups[p.name] = g
        reset = models.rest_state_code(g) + ("\nspike_count = 0" if counting else "")
        if leak_step:
            reset += "\n" + models.LEAK_STEP_CODE.format(dt=float(g.clock.dt))
        if p.name in tables:  # driven by a non-spiking encoder: its values are loaded when a presentation starts
            g.namespace[tables[p.name].name] = tables[p.name]
            reset += "\n" + enc.presentation_reset(tables[p.name].name)
        resets.append((g, reset))
        refractory = bool(np.any(np.asarray(params.get("tau_ref", 1.0)) > 0)) or "tau_ref" in swept[p.name]
        for k, q in enumerate(p.projections):
            if q.source == input_pop.name and not enc.spiking:
                continue
            src = groups[q.source]
            # a phase-coded input's spikes weigh what their phase is worth (`Encoder.spike_weight`)
            weight_factor = enc.spike_weight if q.source == input_pop.name else None
            n_src = int(np.prod(net.population(q.source).shape))
            name = f"syn_{_safe(q.source)}_to_{_safe(p.name)}_{k}"
            if conv == "shared" and q.unshared:
                logger.info("projection %s stays unrolled: %s", name, q.unshared)
            for name, part in pathway_parts(net, q, name, conv, log=True):
                if isinstance(part, KernelTerm):
                    from .shared_conv import SharedConvPathway
                    on_pre = models.weighted_event_code(_on_pre(net.synapse, g, refractory), weight_factor)
                    objects.append(SharedConvPathway(src, g, part, on_pre, n_copies=B,
                                                     kernel_copies=kernel_copies(B, names), name=name))
                    weight_owners[name] = objects[-1]
                    continue
                # Synapses in source order: a spike's targets then sit together in memory, which makes
                # event propagation (most of a ConvNet's run time) read w and the targets sequentially.
                # From a shared input group, a spike's targets in every copy that reads it sit together.
                i, j, order, by_source = input_pathway(part, n_src, p.size, B, C if q.source == input_pop.name else B)
                w = np.tile(np.asarray(part.w)[order], B)
                w = Quantity(w if by_source is None else w[by_source], dim=part.w.dim)
                objects.append(models.synapses(src, g, net.synapse, i=i, j=j, w=w, target_refractory=refractory,
                                               name=name, weight_factor=weight_factor))
                weight_owners[name] = objects[-1]
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
                w = Quantity(np.tile(np.asarray(p.bias_weight)[nz], B), dim=p.bias_weight.dim)
                objects.append(models.synapses(bias_source, g, net.synapse, i=i, j=j, w=w,
                                               target_refractory=refractory, name=name))
                weight_owners[name] = objects[-1]
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
                        input_units, weight_owners, conv)


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


def weight_values(net: MappedNetwork, B: int, encoder: str, conv: str = "unrolled", sweepable=(),
                  input_copies: int | None = None) -> dict[str, np.ndarray]:
    """The weights `build` sets, per pathway name, in SI units, as a launch of a compiled project
    passes them (run_args), so that the project serves any weights of its topology: for a Synapses,
    every synapse's in the order `build` connects them (source order, copy after copy); for a
    shared-kernel pathway (``conv="shared"``), its kernel in the pathway's layout
    (`shared_conv.kernel_layout`), once or once per copy (`kernel_copies`). ``input_copies``: as
    `build` takes it (the input's pathways in `input_pathway`'s order)."""
    from .shared_conv import kernel_layout
    out = {}
    input_name = net.populations[0].name
    for p in net.populations[1:]:
        if p.kind == "maxpool":
            continue
        for k, q in enumerate(p.projections):
            if q.source == input_name and not encoders[encoder].spiking:
                continue
            for name, part in pathway_parts(net, q, f"syn_{_safe(q.source)}_to_{_safe(p.name)}_{k}", conv):
                if isinstance(part, KernelTerm):
                    out[name] = np.tile(kernel_layout(part.kernel), kernel_copies(B, sweepable))
                else:
                    order = np.argsort(part.i, kind="stable")
                    out[name] = np.tile(np.asarray(part.w)[order], B)
                    C = B if input_copies is None or q.source != input_name else int(input_copies)
                    if C != B:
                        out[name] = out[name][_source_major(np.asarray(part.i)[order], B, C)]
        if p.bias_weight is not None:
            nz = np.flatnonzero(np.asarray(p.bias_weight))
            if len(nz):
                out[f"syn_bias_to_{_safe(p.name)}"] = np.tile(np.asarray(p.bias_weight)[nz], B)
    return out


def _on_pre(synapse: str, target, target_refractory: bool) -> str:
    """The synapse model's event code as `models.synapses` picks it for ``target``: the form without
    the refractoriness test where no target can be refractory."""
    model = models.load(synapse)
    if (not target_refractory or "lastspike" not in target.variables) and model.on_pre_without_refractoriness:
        return model.on_pre_without_refractoriness
    return model.on_pre


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


def shape_signature(net: MappedNetwork, sweepable=(), conv: str = "unrolled") -> list:
    """What of a network's mapped values shapes `build`'s code: the topology, which parameters are
    uniform and their values (shared by the group, specialized on), and the decisions `build` takes
    from per-neuron values (a refractory period anywhere, gl = 0 anywhere). Not the weights, nor the
    per-neuron values themselves: a launch passes them (`weight_values`, `parameter_values`).
    ``sweepable``: swept variables count as "swept", whatever their values (a launch passes them).
    ``conv``: the form of the convolutions; a shared pathway counts by its geometry (its kernel is
    passed at launch), an unrolled one by its synapses."""
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
                     **({"options": list(p.options)} if p.options else {}),
                     "decisions": decisions,
                     "projections": [_projection_signature(net, q, f"syn_{_safe(q.source)}_to_{_safe(p.name)}_{k}",
                                                           conv) for k, q in enumerate(p.projections)],
                     "bias": None if p.bias_weight is None else np.flatnonzero(np.asarray(p.bias_weight)),
                     "pool_groups": None if p.pool_groups is None else np.asarray(p.pool_groups)})
    return pops


def _projection_signature(net, q, name, conv) -> list:
    parts = []
    for part_name, part in pathway_parts(net, q, name, conv):
        if isinstance(part, KernelTerm):
            parts.append([part_name, "shared", part.geometry.to_dict(), str(part.kernel.dim)])
        else:
            parts.append([part_name, np.asarray(part.i), np.asarray(part.j), str(getattr(part.w, "dim", ""))])
    return [q.source, parts]


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
