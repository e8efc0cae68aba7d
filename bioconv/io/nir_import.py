"""`from_nir`: a NIR graph (written by bioconv or any other tool) as a bioconv network simulated in
continuous time by Brian2.

Units: NIR is unitless; bioconv reads it in SI units (`bioconv.io.nir_export.NIR_UNITS`): seconds,
volts, ohms, amperes, and a weight into a neuron node as the charge (coulomb) each spike delivers.
A graph written for another convention (e.g. weights as voltage jumps, times in time steps) must be
rescaled before import. NIR's time-step semantics: a discrete-time source's graph holds the
continuous-time parameters its tool derived (e.g. snnTorch's beta becomes tau = dt / (1 - beta));
bioconv simulates those equations at its own dt, so the discrete model's per-step updates are not
reproduced step for step (graph metadata ``bioconv.dt_s``, when present, is bioconv's own hint).

Mapping: IF -> perfect_integrator (Cm = 1/r); LIF -> conductance_lif (gl = 1/r, Cm = tau/r,
EL = v_leak); CubaLIF -> conductance_lif with the exponential synapse (tau_s = tau_syn); LI (output
only) -> a non-firing conductance_lif read out by its potential; Affine/Linear, Conv2d (groups 1,
dilation 1), AvgPool2d, SumPool2d, Flatten and Scale -> the LayerGraph's linear operations; several
edges into one node are summed. A pooling node whose metadata names a bioconv max-pool gate
(``bioconv.kind`` 'maxpool', written by `to_nir`) becomes the gate again. NIR fires on
``v > v_threshold``: bioconv's threshold is the next
float64 above it (bioconv fires on ``v >= v_th``). NIR resets to v_reset (bioconv's value reset) and
has no refractory period, unless the node's ``bioconv.*`` metadata (written by `to_nir`) says
otherwise. Membranes start at bioconv's rest: ``v_reset`` (IF) or ``v_leak`` (LIF, CubaLIF, LI).

The imported network's "ANN" (its LayerGraph, used for target rates and agreement) is the IF rate
law ``f = (sum q f_in + I) / ((v_th - v_reset) Cm)`` in units of ``rate_max``; for leaky membranes it
is only the linear approximation. Input: bioconv's input population spikes at ``x * rate_max`` for
an input ``x`` (``x * rate_max / scale`` with the scale of a bioconv export).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from brian2 import Hz, Quantity, amp, farad, second, siemens, volt

from .. import analysis, models
from .. import graph as G
from ..errors import BioconvError
from ..mapping import MappedNetwork, MappedPopulation, MappedProjection
from ..normalize import Scales
from ..units import check_quantity
from .network_file import NoCalibration

NEURONS = ("IF", "LIF", "CubaLIF", "LI")
LINEAR = ("Affine", "Linear", "Conv2d", "AvgPool2d", "SumPool2d", "Flatten", "Scale")


class NIRImportError(BioconvError, ValueError):
    """A NIR graph holds a node bioconv cannot simulate, or does not fit together."""


def from_nir(graph, *, rate_max=200 * Hz, dt=None):
    """A `bioconv.SNN` from ``graph`` (a `nir.NIRGraph`, or the path of a NIR file). ``rate_max``: the
    rate that stands for activation 1 (inputs ``x`` spike at ``x * rate_max``); a bioconv export's
    own value (graph metadata) takes precedence.

    ``dt``: for a graph from a discrete-time tool (snnTorch, ...), the time step its parameters were
    derived with. There a spike enters as a value of 1 for one step, where NIR's continuous reading
    (and bioconv's) takes a Dirac pulse of area 1: every spike's weight is then multiplied by ``dt``,
    so that a spike moves v as it did in the source's step. Biases (constant inputs) are the same in
    both readings and stay as they are."""
    from ..optional import require_nir
    nir = require_nir('bioconv.io.from_nir')

    from ..converter import SNN

    if isinstance(graph, (str, Path)):
        try:
            graph = nir.read(graph)
        except Exception as err:
            raise NIRImportError(f"from_nir: cannot read NIR file {str(graph)!r}: {type(err).__name__}: {err}") from None
    meta = dict(graph.metadata or {})
    rate_max = float(meta.get("bioconv.rate_max_hz",
                              float(check_quantity(rate_max, Hz.dim, "rate_max", "from_nir", positive=True))))
    step = 1.0 if dt is None else float(check_quantity(dt, second.dim, "dt", "from_nir", positive=True))
    input_scale = float(meta.get("bioconv.input_scale", 1.0))
    order, preds = _topological(graph)
    kinds = {name: type(node).__name__ for name, node in graph.nodes.items()}
    for name in order:
        if kinds[name] not in NEURONS + LINEAR + ("Input", "Output"):
            raise NIRImportError(f"from_nir: node {name!r} is a NIR {kinds[name]}, which bioconv cannot simulate; it "
                                 f"simulates {', '.join(NEURONS + LINEAR)}")
    inputs = [n for n in order if kinds[n] == "Input"]
    outputs = [n for n in order if kinds[n] == "Output"]
    if len(inputs) != 1 or len(outputs) != 1:
        raise NIRImportError(f"from_nir: bioconv needs one Input and one Output node, got inputs {inputs} and "
                             f"outputs {outputs}")
    out_neuron = preds[outputs[0]]
    if len(out_neuron) != 1 or kinds[out_neuron[0]] not in NEURONS:
        raise NIRImportError(f"from_nir: the Output node must follow one neuron node (IF, LIF, CubaLIF or LI), "
                             f"got {out_neuron}")
    out_neuron = out_neuron[0]
    kernel_of = {"IF": "delta", "LIF": "delta", "LI": "delta", "CubaLIF": "exponential"}
    kernels = {kernel_of[kinds[n]] for n in order if kinds[n] in NEURONS and kinds[n] != "LI"}
    synapse = meta.get("bioconv.synapse") or (kernels.pop() if len(kernels) == 1 else None)
    if synapse is None:
        raise NIRImportError("from_nir: the graph mixes CubaLIF with IF/LIF nodes; bioconv uses one synaptic kernel "
                             "per network")
    for name in order:
        if kinds[name] == "LI" and name != out_neuron:
            raise NIRImportError(f"from_nir: LI node {name!r} is not the output; a non-firing membrane can only be "
                                 f"read out")

    # populations keep the names a bioconv export gave them (so a round trip is the same network,
    # down to the compiled project's cache key); other graphs name them by their neuron nodes
    gates = [n for n in order if (graph.nodes[n].metadata or {}).get("bioconv.kind") == "maxpool"]
    for n in gates:
        if kinds[n] not in ("AvgPool2d", "SumPool2d"):
            raise NIRImportError(f"from_nir: node {n!r} is a NIR {kinds[n]} whose metadata names a bioconv max-pool "
                                 f"gate; a gate is exported as a pooling node (AvgPool2d)")
    pop_name = {n: str((graph.nodes[n].metadata or {}).get("bioconv.population", n)) for n in order
                if kinds[n] in NEURONS or n in gates}
    if len(set(pop_name.values())) != len(pop_name) or "input" in pop_name.values():
        pop_name = {n: n for n in pop_name}
    input_node = graph.nodes[inputs[0]]
    input_shape = tuple(int(d) for d in np.asarray(input_node.input_type["input"]).ravel())
    nodes = [G.Node("input", "input", [])]
    value_of = {inputs[0]: "rate:input"}  # NIR node -> graph node holding its value (spike rates for neurons)
    # spike rates (times dt for a discrete-time source's per-step spikes)
    nodes.append(G.Node("rate:input", "scale", ["input"], {"scale": np.asarray(rate_max / input_scale * step)}))
    shapes = {"input": input_shape, "rate:input": input_shape}
    neuron_params = {}
    for name in order:
        kind = kinds[name]
        if kind in ("Input", "Output"):
            continue
        node = graph.nodes[name]
        src = _summed(name, [value_of[p] for p in preds[name]], nodes, shapes)
        in_shape = shapes[src]
        where = f"from_nir: node {name!r} ({kind})"
        if kind in NEURONS:
            shape = in_shape
            params = _neuron(node, kind, shape, where, meta)
            pname = pop_name[name]
            neuron_params[pname] = params
            # pre-activation in units of rate_max: the input current over (v_th - v_reset) Cm rate_max
            factor = 1.0 / (params["charge_unit"] * rate_max)
            factor = np.asarray(factor[0]) if np.all(factor == factor[0]) else factor.reshape(shape)
            nodes.append(G.Node(pname if name == out_neuron else f"in:{pname}", "scale", [src], {"scale": factor}))
            shapes[nodes[-1].name] = shape
            if name != out_neuron:
                nodes.append(G.Node(pname, "relu", [nodes[-1].name]))
                nodes.append(G.Node(f"rate:{pname}", "scale", [pname], {"scale": np.asarray(rate_max * step)}))
                shapes[pname] = shapes[f"rate:{pname}"] = shape
                value_of[name] = f"rate:{pname}"
            continue
        gname = f"op:{name}"
        if name in gates:  # a bioconv max-pool gate (exported as a pooling node): it gates its source's spikes
            source = preds[name]
            if len(source) != 1 or kinds[source[0]] not in NEURONS or source[0] == out_neuron:
                raise NIRImportError(f"{where}: a max-pool gate must follow one firing neuron node directly, got "
                                     f"{source}")
            gate = pop_name[name]
            p = {k: tuple(int(v) for v in np.broadcast_to(getattr(node, f), 2))
                 for k, f in (("kernel", "kernel_size"), ("stride", "stride"), ("padding", "padding"))}
            # on the source's activation (a max commutes with the positive factor to its rate)
            nodes.append(G.Node(gate, "maxpool2d", [pop_name[source[0]]], p))
            gname = f"rate:{gate}"
            nodes.append(G.Node(gname, "scale", [gate], {"scale": np.asarray(rate_max * step)}))
        elif kind in ("Affine", "Linear"):
            p = {"weight": np.asarray(node.weight, dtype=float)}
            if kind == "Affine":
                p["bias"] = np.asarray(node.bias, dtype=float)
            if len(in_shape) != 1:
                nodes.append(G.Node(f"flat:{name}", "flatten", [src]))
                shapes[f"flat:{name}"] = (int(np.prod(in_shape)),)
                src = f"flat:{name}"
            nodes.append(G.Node(gname, "linear", [src], p))
        elif kind == "Conv2d":
            if int(node.groups) != 1 or np.any(np.asarray(node.dilation) != 1):
                raise NIRImportError(f"{where}: groups {node.groups} and dilation {node.dilation}; bioconv's "
                                     f"convolutions have groups 1 and dilation 1")
            w = np.asarray(node.weight, dtype=float)
            padding = _padding(node.padding, w.shape[2:], where)
            p = {"weight": w, "stride": tuple(np.broadcast_to(node.stride, 2)), "padding": padding}
            if node.bias is not None and np.ndim(node.bias) > 0:
                p["bias"] = np.asarray(node.bias, dtype=float)
            nodes.append(G.Node(gname, "conv2d", [src], p))
        elif kind in ("AvgPool2d", "SumPool2d"):
            kernel = tuple(int(k) for k in np.broadcast_to(node.kernel_size, 2))
            p = {"kernel": kernel, "stride": tuple(int(k) for k in np.broadcast_to(node.stride, 2)),
                 "padding": tuple(int(k) for k in np.broadcast_to(node.padding, 2))}
            nodes.append(G.Node(gname if kind == "AvgPool2d" else f"mean:{name}", "avgpool2d", [src], p))
            if kind == "SumPool2d":  # the sum of a window is its mean times its size
                nodes.append(G.Node(gname, "scale", [nodes[-1].name], {"scale": np.asarray(float(np.prod(kernel)))}))
        elif kind == "Flatten":
            nodes.append(G.Node(gname, "flatten", [src]))
        else:  # Scale
            nodes.append(G.Node(gname, "scale", [src], {"scale": np.asarray(node.scale, dtype=float)}))
        try:
            layer = G.from_nodes(nodes, input_shape, nodes[-1].name)  # shapes so far, and checks naming this node
        except G.UnsupportedLayerError as err:
            raise NIRImportError(f"{where}: {err}") from None
        shapes.update({n.name: n.shape for n in layer.nodes})
        value_of[name] = gname
    try:
        layer = G.from_nodes(nodes, input_shape, pop_name[out_neuron])
    except G.UnsupportedLayerError as err:
        raise NIRImportError(f"from_nir: {err}") from None
    pops = G.populations(layer)
    scales = Scales({p.name: (input_scale if p.kind == "input" else 1.0) for p in pops}, "nir")
    mapped = _mapped(pops, scales, neuron_params, synapse, rate_max, meta, pop_name[out_neuron])
    snn = SNN(layer, pops, mapped, NoCalibration("imported from NIR"))
    # what the network's (rate) coding scheme is made from (SNN.coding)
    snn.conversion = dict(source="nir", rate_max=mapped.rate_max, synapse=synapse, bias=mapped.bias,
                          reset=mapped.reset, readout=mapped.readout, **mapped.synapse_params)
    return snn


def _topological(graph):
    preds = {name: [] for name in graph.nodes}
    succ = {name: [] for name in graph.nodes}
    for a, b in graph.edges:
        if a not in graph.nodes or b not in graph.nodes:
            raise NIRImportError(f"from_nir: edge ({a!r}, {b!r}) names a node the graph does not hold")
        preds[b].append(a)
        succ[a].append(b)
    indeg = {n: len(p) for n, p in preds.items()}
    ready = [n for n in graph.nodes if indeg[n] == 0]
    order = []
    while ready:
        n = ready.pop(0)
        order.append(n)
        for m in succ[n]:
            indeg[m] -= 1
            if indeg[m] == 0:
                ready.append(m)
    if len(order) != len(graph.nodes):
        cyclic = sorted(n for n in graph.nodes if indeg[n] > 0)
        raise NIRImportError(f"from_nir: the graph is recurrent (nodes {cyclic} lie on a cycle); bioconv converts "
                             f"feed-forward graphs")
    return order, preds


def _summed(name, sources, nodes, shapes) -> str:
    """One graph node holding the sum of ``sources`` (NIR sums the edges into a node)."""
    if not sources:
        raise NIRImportError(f"from_nir: node {name!r} has no input")
    total = sources[0]
    for k, s in enumerate(sources[1:]):
        if shapes[s] != shapes[total]:
            raise NIRImportError(f"from_nir: node {name!r} sums inputs of shapes {shapes[total]} and {shapes[s]}")
        nodes.append(G.Node(f"sum{k}:{name}", "add", [total, s]))
        shapes[nodes[-1].name] = shapes[s]
        total = nodes[-1].name
    return total


def _padding(padding, kernel, where):
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0)
        if padding == "same" and all(k % 2 == 1 for k in kernel):
            return tuple(int(k) // 2 for k in kernel)
        raise NIRImportError(f"{where}: padding {padding!r} with kernel {tuple(kernel)} is not supported")
    return tuple(int(p) for p in np.broadcast_to(padding, 2))


def _array(node, field, shape, where):
    v = np.asarray(getattr(node, field), dtype=float)
    n = int(np.prod(shape))
    if v.size == 1:
        return np.full(n, float(v.ravel()[0]))
    if v.size != n:
        raise NIRImportError(f"{where}: {field} has {v.size} values for {n} units")
    if not np.all(np.isfinite(v)):
        raise NIRImportError(f"{where}: {field} holds non-finite values")
    return v.ravel().copy()


def _neuron(node, kind, shape, where, meta) -> dict:
    """bioconv's parameters of a NIR neuron node, per unit (flat arrays, SI values)."""
    m = dict(node.metadata or {})
    out = {"kind": kind, "meta": m}
    r = _array(node, "r", shape, where)
    if np.any(r <= 0):
        raise NIRImportError(f"{where}: r must be positive")
    if kind == "IF":
        out.update(neuron="perfect_integrator", Cm=1.0 / r)
    else:
        tau = _array(node, "tau_mem" if kind == "CubaLIF" else "tau", shape, where)
        if np.any(tau <= 0):
            raise NIRImportError(f"{where}: its time constant must be positive")
        out.update(neuron="conductance_lif", gl=1.0 / r, Cm=tau / r, EL=_array(node, "v_leak", shape, where))
        if "bioconv.EL_V" in m:  # a bioconv export: v_leak - EL is its bias current over gl (CubaLIF)
            out["EL"], out["bias_from_leak"] = np.full(r.shape, float(m["bioconv.EL_V"])), out["EL"] - float(m["bioconv.EL_V"])
    if kind == "LI":
        out.update(v_th=np.full(r.shape, 1e9), v_reset=np.zeros_like(r))
        out["charge_unit"] = out["Cm"] * 1.0  # any positive factor: the readout is the argmax of V
        return out
    v_threshold = _array(node, "v_threshold", shape, where)
    # NIR fires on v > v_threshold, bioconv on v >= v_th: the next float above
    v_th = np.full(r.shape, float(m["bioconv.v_th_V"])) if "bioconv.v_th_V" in m else np.nextafter(v_threshold, np.inf)
    v_reset = _array(node, "v_reset", shape, where) if node.v_reset is not None else np.zeros_like(r)
    if np.any(v_th <= v_reset):
        raise NIRImportError(f"{where}: v_threshold must lie above v_reset")
    out.update(v_th=v_th, v_reset=v_reset, charge_unit=(v_th - v_reset) * out["Cm"])
    if kind == "CubaLIF":
        tau_syn = _array(node, "tau_syn", shape, where)
        if np.any(tau_syn != tau_syn[0]) or tau_syn[0] <= 0:
            raise NIRImportError(f"{where}: tau_syn must be one positive value (bioconv's synapse model has one)")
        out.update(tau_syn=float(tau_syn[0]), w_in=_array(node, "w_in", shape, where))
    return out


def _q(values, dim):
    """One value for the population where all units share it (as `map_network` gives), else one per unit."""
    arr = np.asarray(values, dtype=float)
    return Quantity(arr.flat[0] if arr.size and np.all(arr == arr.flat[0]) else arr, dim=dim)


def _mapped(pops, scales, neuron_params, synapse, rate_max, meta, out_neuron) -> MappedNetwork:
    syn = models.load(synapse)
    tau_syns = {p["tau_syn"] for p in neuron_params.values() if "tau_syn" in p}
    if "bioconv.tau_s_s" in meta:
        tau_syns = {float(meta["bioconv.tau_s_s"])}
    if len(tau_syns) > 1:
        raise NIRImportError(f"from_nir: CubaLIF nodes with different tau_syn {sorted(tau_syns)}; bioconv's synapse "
                             f"model has one")
    syn_params = {"tau_s": next(iter(tau_syns)) * second} if syn.kernel != "delta" else {}
    resets = {p["meta"].get("bioconv.reset", "value") for p in neuron_params.values()}
    if len(resets) != 1:
        raise NIRImportError(f"from_nir: the neuron nodes' metadata ask for different resets {sorted(resets)}")
    mapped = []
    for p in pops:
        mp = MappedPopulation(p.name, p.kind, p.shape, pool_groups=p.pool_groups, scale=scales.values[p.name])
        mapped.append(mp)
        if p.kind == "input":
            continue
        if p.kind == "maxpool":  # a gate has no synapses: the simulator wires it from its pool_groups
            mp.projections = [MappedProjection(p.projections[0].source, np.zeros(0, np.int64), np.zeros(0, np.int64),
                                               Quantity(np.zeros(0), dim=syn.weight_dim))]
            continue
        par = neuron_params[p.name]
        c = par["charge_unit"]
        for proj in p.projections:
            m = proj.matrix.tocoo()
            if m.nnz == 0:  # e.g. an Affine with zero weights that only brings its bias: no synapses
                continue
            q = m.data * scales.values[proj.source] * c[m.row]  # the NIR weight (x dt): the charge per spike
            w = np.asarray(analysis.kernel_weight_for_charge(syn.kernel, q * amp * second, syn_params.get("tau_s")))
            if "w_in" in par:
                w = w * par["w_in"][m.row]
            mp.projections.append(MappedProjection(proj.source, m.col.astype(np.int64), m.row.astype(np.int64),
                                                   Quantity(w, dim=syn.weight_dim)))
        bias = np.zeros(p.size) if p.bias is None else p.bias * c * rate_max
        if "bias_from_leak" in par:
            bias = bias + par["bias_from_leak"] * par["gl"]
        tau_ref = float(par["meta"].get("bioconv.tau_ref_s", 0.0))
        mp.neuron = par["meta"].get("bioconv.neuron", par["neuron"])
        params = dict(Cm=_q(par["Cm"], farad.dim), v_th=_q(par["v_th"], volt.dim), v_reset=_q(par["v_reset"], volt.dim),
                      tau_ref=tau_ref * second)
        if mp.neuron == "conductance_lif":
            params.update(gl=_q(par["gl"], siemens.dim), EL=_q(par["EL"], volt.dim))
        params["I_bias"] = _q(bias, amp.dim)
        mp.params = params
    readout = meta.get("bioconv.readout") or ("potential" if neuron_params[out_neuron]["kind"] == "LI" else "count")
    # biases arrive as currents whatever strategy made them (a bias spike source travels as its mean current)
    return MappedNetwork(mapped, synapse, syn_params, rate_max * Hz, "current", resets.pop(), readout, scales)
