"""`to_nir`: a converted network as a NIR graph (Neuromorphic Intermediate Representation, `nir` 1.0).

Unit convention (NIR itself is unitless): SI units throughout. Times in seconds, potentials in
volts, ``r`` in ohms for LIF/CubaLIF/LI (1/gl) and in 1/farad for IF (1/Cm, so that NIR's
``dv/dt = R I`` is bioconv's ``Cm dv/dt = I``), currents in amperes. The signal into a neuron node is
its input current: every spike arriving there is a Dirac pulse carrying the weight of its edge in
coulombs (a charge per spike: ``dv = q / Cm`` for IF and LIF, a current jump of ``q / tau_syn`` for
CubaLIF), and a constant bias is a current (the bias of the Affine or Conv2d node before an IF node;
folded into ``v_leak`` of a CubaLIF node, ``v_leak = EL + I_bias / gl``, since an
Affine bias there would pass the synaptic filter). The graph's input is the
spike trains of bioconv's input population (rate ``x * rate_max / scale`` for an input ``x``;
graph metadata ``bioconv.input_rate_hz``).

The LayerGraph's structure is kept: Linear/Affine, Conv2d, AvgPool2d, Flatten, with residual
additions as several edges into one node (NIR sums a node's inputs). Each weighted node's weights
carry the network's normalization and the charge per unit of activation; a `nir.Scale` node is
added only where no weighted node can absorb them.

Thresholds: NIR fires on ``v > v_threshold``, bioconv on ``v >= v_th``. The exported threshold is
the largest float64 below ``v_th``, so that both fire on the same values of v in float64.

What NIR cannot carry (refractory period, subtractive reset, the bias spike source, the alpha
kernel, a potential readout on a leak-free membrane, the max-pool gate) is warned about by name
(`NIRExportWarning`) and recorded in the node's metadata (``bioconv.*`` keys, which `from_nir` reads
back, so that a round trip through bioconv is exact); ``strict=True`` refuses it instead. NIR 1.0
has no max pooling node: a max-pool gate is exported as an AvgPool2d of its windows, its metadata
naming the gate. What NIR cannot express at all (ReLU1's two populations, a leak-free membrane
behind an exponential kernel, a population mixing leaky and leak-free units) is refused by name.
"""
from __future__ import annotations

import warnings

import numpy as np
from brian2 import second

from .. import analysis, models
from ..errors import BioconvError, ParameterError
from ..graph import EXCESS, RELU_PART
from ..mapping import MappedNetwork
from ..units import check_quantity

NIR_UNITS = ("SI: seconds, volts, amperes; r in ohm (LIF, CubaLIF, LI) or 1/farad (IF); weights into neuron "
             "nodes in coulomb per spike; biases in ampere")
THRESHOLD_RULE = ("NIR v > v_threshold; bioconv v >= v_th; v_threshold = nextafter(v_th, -inf) in float64")


class NIRExportWarning(UserWarning):
    """A part of the network that NIR cannot carry was exported approximately (see the node's metadata)."""


class NIRExportError(BioconvError, ValueError):
    """The network holds something NIR has no node for, or that ``strict=True`` refuses."""


def inexpressible(coding) -> list[str]:
    """What NIR cannot express of the neurons of a temporal coding scheme (``coding``: a
    `bioconv.coding.CodingScheme` with its parameters), each with its reason; empty for a scheme
    not listed here. NIR's neuron nodes (IF, LIF, CubaLIF, LI, ...) are continuous-time ODEs with
    constant parameters that emit one kind of spike and reset after it."""
    v = coding.values
    if coding.name == "ttfs":
        out = ["the ReL-PSP neuron fires once and keeps its potential (a 'fired' flag; NIR's IF and LIF reset "
               "and fire again)",
               "each input spike starts a constant current that never decays (a step-current synapse; NIR's "
               "synaptic filter, CubaLIF, decays)"]
        if v["dynamic_threshold"]:
            out.append("the dynamic threshold (infinite before the layer's window, v_th within it, a forced spike "
                       "at its end; NIR's v_threshold is constant)")
        return out
    if coding.name == "css":
        out = ["the TSA neuron's discrete-step amplification (v <- beta v once per coding step, for "
               "T + Ts steps, then frozen; NIR's neurons are continuous-time with constant parameters)",
               "the bias added only during the layer's T input steps (NIR's biases are constant)",
               "the silent period Ts before a layer fires (a time-gated threshold)"]
        if v["ternary"]:
            out.append("ternary spikes (a negative spike when the membrane falls to -beta^Ts / 2; NIR's neurons "
                       "emit one kind of spike)")
        return out
    return []


def _uniform(q, what: str, pop: str) -> float:
    arr = np.asarray(q, dtype=float)
    if arr.size == 0 or np.any(arr != arr.flat[0]):
        raise NIRExportError(f"to_nir: population {pop!r}: {what} varies between units; bioconv's NIR export "
                             f"expects one value per population")
    return float(arr.flat[0])


def _per_unit(q, shape) -> np.ndarray:
    return np.broadcast_to(np.asarray(q, dtype=float), (int(np.prod(shape)),)).reshape(shape).copy()


def to_nir(snn, *, strict: bool = False, dt=None):
    """The NIR graph (`nir.NIRGraph`) of ``snn`` (see the module docstring). ``dt``: a time step to
    record as a hint for discrete-time consumers (graph metadata ``bioconv.dt_s``); bioconv itself
    simulates in continuous time; a time (Brian2 quantity, e.g. ``0.1*ms``), checked here.
    ``strict``: refuse what NIR cannot carry instead of warning. Only rate-coded networks are
    exported: a TTFS or CSS network is refused by name with what NIR cannot express of it
    (`inexpressible`)."""
    if dt is not None:
        dt = check_quantity(dt, second.dim, "dt", "to_nir", positive=True)
        if np.ndim(dt) != 0:
            raise ParameterError(f"to_nir: parameter 'dt' must be one time step, got {np.shape(dt)} values")
    if snn.coding.name != "rate" or not isinstance(snn.mapped, MappedNetwork):
        reasons = inexpressible(snn.coding)
        raise NIRExportError(f"to_nir: a network of coding {snn.coding.name!r} cannot be exported to NIR: "
                             + ("; ".join(reasons) if reasons else
                                f"the export reads rate coding's mapped populations; this network is a "
                                f"{type(snn.mapped).__name__}")
                             + ". NIR carries its layers' weights (Affine, Conv2d, pooling) but no neuron node "
                               "that codes as this scheme's do; rate coding's networks export")
    from ..optional import require_nir
    nir = require_nir('bioconv.io.to_nir')

    net = snn.mapped
    graph = snn.graph
    syn = models.load(net.synapse)
    rate_max = float(net.rate_max)
    pops = {p.name: p for p in net.populations}
    for p in net.populations:
        if p.options:
            raise NIRExportError(f"to_nir: population {p.name!r} has the neuron option(s) {list(p.options)} (e.g. "
                                 f"the homeostatic threshold of rate coding's homeostasis), which no NIR node "
                                 f"expresses; convert without them to export")
        if p.name.endswith(RELU_PART) or p.name.endswith(EXCESS):
            raise NIRExportError(f"to_nir: population {p.name!r} is half of a ReLU1 (two populations whose "
                                 f"difference is the clamp), which NIR has no node for")
    consumers = {n.name: [] for n in graph.nodes}
    for n in graph.nodes:
        for i in n.inputs:
            consumers[i].append(n.name)

    def target_population(name: str) -> str:
        """The population a linear-chain node feeds (its factor kappa depends on it)."""
        seen, frontier = set(), [name]
        found = set()
        while frontier:
            m = frontier.pop()
            for c in consumers[m]:
                if c in pops:
                    found.add(c)
                elif c not in seen:
                    seen.add(c)
                    frontier.append(c)
        if len(found) != 1:
            raise NIRExportError(f"to_nir: node {name!r} feeds populations {sorted(found)}; the export needs each "
                                 f"linear node to feed one population")
        return found.pop()

    def kappa(pop_name: str) -> float:
        """Amperes per unit of the population's normalized pre-activation: rate_max v_th Cm / scale."""
        p = pops[pop_name]
        v_th, Cm = _threshold_distance(p), _uniform(p.params["Cm"], "Cm", p.name)
        return rate_max * v_th * Cm / p.scale

    nodes, edges = {}, []
    # signal[name] = list of (NIR node, factor): the node's value times `factor` flows out of those NIR
    # nodes (several for a residual sum). A population's spikes carry rate_max / scale per unit of activation.
    signal: dict[str, tuple[list[str], float]] = {}
    scales_added = 0

    def connect(sources: list[str], factor: float, dst: str, wanted: float, shape):
        nonlocal scales_added
        if factor != wanted:  # no weighted node absorbs the change of factor here: a Scale node does
            scales_added += 1
            name = f"scale_{scales_added}"
            nodes[name] = nir.Scale(np.full(tuple(shape), wanted / factor))
            for s in sources:
                edges.append((s, name))
            sources = [name]
        for s in sources:
            edges.append((s, dst))

    for n in graph.nodes:
        if n.op == "input":
            nodes["input"] = nir.Input(input_type={"input": np.array(n.shape)})
            signal[n.name] = (["input"], rate_max / pops[n.name].scale)
            continue
        if n.name in pops and pops[n.name].kind == "maxpool":  # a gate: spikes pass, on its source's scale
            srcs, f = signal[n.inputs[0]]
            nodes[n.name] = _gate_node(nir, pops[n.name], n, strict)
            edges.extend((s_, n.name) for s_ in srcs)
            signal[n.name] = ([n.name], f)
            continue
        if n.name in pops and n.op != "input" and n.name != graph.output:  # a population's neuron node
            p = pops[n.name]
            src = n.inputs[0]
            nodes[n.name] = _neuron_node(nir, p, net, syn, rate_max, strict)
            connect(*signal[src], n.name, kappa(p.name), graph.node(src).shape)
            signal[n.name] = ([n.name], rate_max / p.scale)
            continue
        target = n.name if n.name == graph.output else target_population(n.name)
        # the node whose output a population's neuron node reads; the output population is its own
        # affine node, so a flatten or pooling feeding it is not an end
        is_end = n.name == graph.output or (consumers[n.name] == [target] and target != graph.output)
        wanted = kappa(target) if is_end else 1.0
        if n.op == "add":  # no node: NIR sums the edges into a node; each branch brought to one factor
            sources = []
            for i in n.inputs:
                srcs, f = signal[i]
                if f != wanted:
                    scales_added += 1
                    name = f"scale_{scales_added}"
                    nodes[name] = nir.Scale(np.full(tuple(graph.node(i).shape), wanted / f))
                    edges.extend((s_, name) for s_ in srcs)
                    srcs = [name]
                sources += srcs
            signal[n.name] = (sources, wanted)
        elif n.op in ("linear", "conv2d"):
            srcs, f = signal[n.inputs[0]]
            W = n.params["weight"] * (wanted / f)
            bias = _bias_at_end(p=pops[target], net=net, syn=syn, rate_max=rate_max, strict=strict, shape=n.shape,
                                op=n.op) if is_end else np.zeros(n.shape[0])
            if n.op == "linear":
                nodes[n.name] = nir.Affine(weight=W, bias=bias)
            else:
                nodes[n.name] = nir.Conv2d(input_shape=tuple(graph.node(n.inputs[0]).shape[1:]), weight=W,
                                           stride=tuple(n.params["stride"]), padding=tuple(n.params["padding"]),
                                           dilation=(1, 1), groups=1, bias=bias)
            for s in srcs:
                edges.append((s, n.name))
            signal[n.name] = ([n.name], wanted)
        elif n.op in ("avgpool2d", "flatten", "scale"):
            srcs, f = signal[n.inputs[0]]
            if n.op == "avgpool2d":
                nodes[n.name] = nir.AvgPool2d(kernel_size=np.array(n.params["kernel"]),
                                              stride=np.array(n.params["stride"]),
                                              padding=np.array(n.params["padding"]))
            elif n.op == "flatten":
                nodes[n.name] = nir.Flatten(input_type={"input": np.array(graph.node(n.inputs[0]).shape)},
                                            start_dim=0)
            else:
                nodes[n.name] = nir.Scale(np.broadcast_to(n.params["scale"], n.shape).copy())
            for s in srcs:
                edges.append((s, n.name))
            signal[n.name] = ([n.name], f)  # the neuron node's edge adds a Scale where f is not kappa
            p = pops[target]
            if is_end and not (syn.kernel != "delta" and p.neuron == "conductance_lif") and \
                    np.any(_bias_current(p, net, syn, rate_max) != 0):
                raise NIRExportError(f"to_nir: population {target!r}: its bias current needs an Affine or Conv2d "
                                     f"node before it, but its input ends in {n.op} node {n.name!r}")
        else:
            raise NIRExportError(f"to_nir: node {n.name!r} ({n.op}) has no NIR counterpart")
        if n.name == graph.output:  # the output population's neuron node follows the last affine node
            p = pops[graph.output]
            name = f"{p.name}.neurons"
            nodes[name] = _neuron_node(nir, p, net, syn, rate_max, strict)
            srcs, f = signal[n.name]
            connect(srcs, f, name, kappa(p.name), n.shape)
            nodes["output"] = nir.Output(output_type={"output": np.array(n.shape)})
            edges.append((name, "output"))
    input_pop = net.populations[0]
    metadata = {"bioconv.units": NIR_UNITS, "bioconv.threshold_rule": THRESHOLD_RULE,
                "bioconv.rate_max_hz": rate_max, "bioconv.input_scale": float(input_pop.scale),
                "bioconv.input_rate_hz": rate_max / float(input_pop.scale),
                "bioconv.coding": "rate", "bioconv.synapse": net.synapse, "bioconv.bias": net.bias,
                "bioconv.readout": net.readout}
    if "tau_s" in net.synapse_params:
        metadata["bioconv.tau_s_s"] = float(net.synapse_params["tau_s"])
    if dt is not None:
        metadata["bioconv.dt_s"] = float(dt)
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata)


def _threshold_distance(p) -> float:
    v_th = _uniform(p.params["v_th"], "v_th", p.name)
    return v_th - _uniform(p.params.get("v_reset", 0.0), "v_reset", p.name)


def _not_carried(p, what: str, strict: bool, notes: list):
    if strict:
        raise NIRExportError(f"to_nir(strict=True): population {p.name!r}: {what}, which NIR cannot carry")
    warnings.warn(f"to_nir: population {p.name!r}: {what}, which NIR cannot carry; recorded in the node's "
                  f"metadata (bioconv.not_carried)", NIRExportWarning, stacklevel=4)
    notes.append(what)


def _bias_current(p, net, syn, rate_max) -> np.ndarray:
    """The population's bias as a constant current per unit (A)."""
    current = np.broadcast_to(np.asarray(p.params.get("I_bias", 0.0), dtype=float), (p.size,)).copy()
    if p.bias_weight is not None:  # the bias spike source's mean current: its charge per spike at rate_max
        tau_s = net.synapse_params.get("tau_s")
        current = current + np.asarray(analysis.kernel_charge(syn.kernel, p.bias_weight, tau_s)) * rate_max
    return current


def _bias_at_end(*, p, net, syn, rate_max, strict, shape, op) -> np.ndarray:
    """The bias of the affine node before population ``p``'s neurons: its bias current, except before
    a CubaLIF node, whose input passes the synaptic filter (bioconv's bias does not): there v_leak
    carries it."""
    if syn.kernel != "delta" and p.neuron == "conductance_lif":
        return np.zeros(shape[0])
    current = _bias_current(p, net, syn, rate_max)
    if op == "linear":
        return current
    per_channel = current.reshape(shape)
    flat = per_channel.reshape(shape[0], -1)
    if np.any(flat != flat[:, :1]):
        raise NIRExportError(f"to_nir: population {p.name!r}: its bias current varies within a channel, which a "
                             f"Conv2d bias cannot carry")
    return flat[:, 0].copy()


def _gate_node(nir, p, node, strict):
    """A max-pool gate as the NIR node closest to it. NIR 1.0 has no max pooling, and no node that
    relays a spike only when it lifts its unit's count above its window's running maximum: the gate
    becomes an AvgPool2d of the same windows (a consumer reading the bare graph averages the window's
    spikes, never more than the gate's maximum, and the same where the window's units fire alike),
    with the gate recorded in its metadata (``bioconv.kind`` 'maxpool'), from which `from_nir`
    restores it."""
    notes: list[str] = []
    kernel, stride, padding = (tuple(int(v) for v in node.params[k]) for k in ("kernel", "stride", "padding"))
    _not_carried(p, f"max-pool gate over {kernel[0]}x{kernel[1]} windows (it relays a spike when the spike lifts its "
                    f"unit's count above the window's running maximum), exported as an AvgPool2d of the same windows",
                 strict, notes)
    meta = {"bioconv.population": p.name, "bioconv.kind": "maxpool", "bioconv.scale": float(p.scale),
            "bioconv.gate": "max-pool gate: relays a spike when it lifts its unit's spike count above the window's "
                            "running maximum (the gate emits max over the window of the units' counts)",
            "bioconv.not_carried": "; ".join(notes)}
    return nir.AvgPool2d(kernel_size=np.array(kernel), stride=np.array(stride), padding=np.array(padding),
                         metadata=meta)


def _neuron_node(nir, p, net, syn, rate_max, strict):
    shape = tuple(p.shape)
    notes: list[str] = []
    v_th = _uniform(p.params["v_th"], "v_th", p.name)
    v_reset = _uniform(p.params.get("v_reset", 0.0), "v_reset", p.name)
    Cm = _uniform(p.params["Cm"], "Cm", p.name)
    tau_ref = _uniform(p.params.get("tau_ref", 0.0), "tau_ref", p.name)
    potential = p.kind == "output" and net.readout == "potential"
    if tau_ref > 0:
        _not_carried(p, f"refractory period tau_ref = {tau_ref} s", strict, notes)
    if net.reset == "linear" and not potential:
        _not_carried(p, "subtractive (linear) reset v -= v_th - v_reset", strict, notes)
    if p.bias_weight is not None and np.any(np.asarray(p.bias_weight) != 0):
        _not_carried(p, "bias spike source (bias='neuron'), exported as its mean current", strict, notes)
    if syn.kernel == "alpha":
        _not_carried(p, f"alpha synaptic kernel ({net.synapse}), exported as CubaLIF's exponential kernel", strict,
                     notes)
    meta = {"bioconv.population": p.name, "bioconv.kind": p.kind, "bioconv.neuron": p.neuron,
            "bioconv.reset": net.reset, "bioconv.tau_ref_s": tau_ref, "bioconv.v_th_V": v_th,
            "bioconv.scale": float(p.scale), "bioconv.threshold_rule": THRESHOLD_RULE,
            "bioconv.not_carried": "; ".join(notes)}
    threshold = _per_unit(np.nextafter(v_th, -np.inf), shape)
    reset = _per_unit(v_reset, shape)
    if p.neuron == "perfect_integrator":
        if syn.kernel != "delta":
            raise NIRExportError(f"to_nir: population {p.name!r}: a leak-free membrane behind the {syn.kernel} kernel "
                                 f"has no NIR node (CubaLIF needs a leak); use delta synapses or a leaky membrane")
        if potential:
            _not_carried(p, "potential readout of a leak-free membrane (NIR's LI needs a leak), exported as an IF "
                         "node that never fires", strict, notes)
            meta["bioconv.not_carried"] = "; ".join(notes)
        return nir.IF(r=_per_unit(1.0 / Cm, shape), v_threshold=threshold, v_reset=reset, metadata=meta)
    gl = np.asarray(p.params["gl"], dtype=float)
    gl = _per_unit(gl, shape)
    if np.any(gl <= 0):
        # NIR's LIF carries per-unit tau, r and v_leak (a population whose units all leak exports, each unit
        # with its own gl); what it cannot carry is a unit without leak among them
        raise NIRExportError(
            f"to_nir: population {p.name!r} has units without leak: {int(np.sum(gl <= 0))} of {gl.size} have gl = 0 "
            f"(bias='leak' leaves a unit whose bias is not negative leak-free, its bias a current). NIR cannot carry "
            f"leak-free units in a LIF node: LIF is tau dv/dt = (v_leak - v) + r I with tau = Cm/gl and r = 1/gl, "
            f"so gl = 0 needs tau = r = infinity (their finite ratio 1/Cm has no NIR value), and one NIR node holds "
            f"one neuron type (IF has no leak for the other units). Convert with bias='current' or 'neuron' (IF "
            f"nodes), or give every unit a leak")
    EL = _per_unit(p.params.get("EL", 0.0), shape)
    tau = Cm / gl
    meta["bioconv.EL_V"] = _uniform(EL, "EL", p.name)
    if potential:
        return nir.LI(tau=tau, r=1.0 / gl, v_leak=EL, metadata=meta)
    if syn.kernel == "delta":
        return nir.LIF(tau=tau, r=1.0 / gl, v_leak=EL, v_threshold=threshold, v_reset=reset, metadata=meta)
    # CubaLIF: the bias current as a shift of v_leak (an Affine bias would pass the synaptic filter)
    v_leak = EL + _bias_current(p, net, syn, rate_max).reshape(shape) / gl
    tau_s = float(net.synapse_params["tau_s"])
    return nir.CubaLIF(tau_syn=_per_unit(tau_s, shape), tau_mem=tau, r=1.0 / gl, v_leak=v_leak,
                       v_threshold=threshold, v_reset=reset, w_in=_per_unit(1.0, shape), metadata=meta)
