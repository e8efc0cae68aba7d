"""The networks of the schemes that simulate themselves, in a network file (format version 2 and
later): TTFS's layers of ReL-PSP neurons (`bioconv.ttfs.TTFSNetwork`) and CSS's layers of TSA neurons
(`bioconv.css.CSSNetwork`). Both are layers of ANN weights (dimensionless, unnormalized: each
scheme derives its currents or amplitudes from them and its parameters when it simulates), so the
file holds them as they are: every layer's fields, each projection, and the network's own
parameters (TTFS: T_w, v_th, Cm with units; CSS: the calibration percentile and the
amplitude-adjustment rounds applied).

A projection is stored in one of two forms:
- ``"sparse"``: its i, j and weight arrays (the only form of version 2, whose entries name no form);
- ``"conv"`` (version 3): a projection that is exactly one convolution of the graph, the conv2d node
  that reads the source layer and feeds the layer (directly, or through its activation), as the
  node's kernel and its `bioconv.conv_geometry.ConvGeometry`. `encode` recomputes the synapses from
  them (each synapse's weight is its tap's value, in the order the schemes' mappings unroll the
  graph's conv2d node) and keeps this form only where the result is bit for bit the projection's
  i, j and weight; anything else (a convolution after a pooling, a composed chain, synapses in
  another order) stays ``"sparse"``. `decode` recomputes the synapses the same way, from the file's
  kernel and the file's graph (which sets their order).
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .. import graph as G
from ..conv_geometry import ConvGeometry, KernelTerm
from . import projections, quantities
from .archive import ArchiveReader, ArchiveWriter, NetworkFileError

#: The schemes whose networks this module stores (a file's ``network.kind``).
SCHEMES = ("ttfs", "css")
#: network kind -> the layer fields stored as JSON values (the rest are arrays or absent)
_PLAIN = {"ttfs": ("name", "kind", "window", "node", "weight_sum_deviation"),
          "css": ("name", "kind", "depth", "scale", "factor")}
_ARRAYS = {"ttfs": ("bias", "pool_groups"), "css": ("bias",)}
#: The projection forms each format version holds in these networks.
FORMS = {2: ("sparse",), 3: ("sparse", "conv")}


def kind_of(net) -> str | None:
    """'ttfs' or 'css' for a network this module stores, else None."""
    from ..css import CSSNetwork
    from ..ttfs import TTFSNetwork
    return "ttfs" if isinstance(net, TTFSNetwork) else "css" if isinstance(net, CSSNetwork) else None


def encode(net, w: ArchiveWriter, graph=None) -> tuple[dict, list]:
    """(the network entry, the layer entries) of a TTFS or CSS network; ``graph``: the LayerGraph it
    was converted from, whose convolutions let a projection be stored as a kernel (None: none is)."""
    kind = kind_of(net)
    layers = []
    for k, p in enumerate(net.layers):
        where = f"layers/{k}"
        entry = {f: _plain(getattr(p, f)) for f in _PLAIN[kind]}
        entry["shape"] = [int(d) for d in p.shape]
        for f in _ARRAYS[kind]:
            v = getattr(p, f)
            entry[f] = None if v is None else w.add(f"{where}/{f}", v)
        entry["projections"] = [_encode_projection(q, p, graph, w, f"{where}/projections/{m}")
                                for m, q in enumerate(p.projections)]
        layers.append(entry)
    if kind == "ttfs":
        network = dict(kind=kind, strict=bool(net.strict), **{name: quantities.encode(getattr(net, name), w, name)
                                                              for name in ("T_w", "v_th", "Cm")})
    else:
        network = dict(kind=kind, percentile=float(net.percentile), adjustments=list(net.adjustments))
    return network, layers


def _encode_projection(q, layer, graph, w: ArchiveWriter, member: str) -> dict:
    found = None if graph is None else _convolution(graph, layer.name, q.source)
    if found is not None:
        node, term = found
        i, j, weight = _synapses(term, _graph_synapses(graph, node, q.source), member)
        if all(a.dtype == b.dtype and np.array_equal(a, b) for a, b in ((i, q.i), (j, q.j), (weight, q.weight))):
            return dict(source=q.source, form="conv", geometry=term.geometry.to_dict(),
                        kernel=w.add(f"{member}/kernel", np.asarray(term.kernel)))
    return dict(source=q.source, form="sparse", i=w.add(f"{member}/i", q.i), j=w.add(f"{member}/j", q.j),
                weight=w.add(f"{member}/weight", q.weight))


def _convolution(graph, layer: str, source: str):
    """(the conv2d node of ``graph`` that reads layer ``source`` and feeds layer ``layer``, directly or
    through its activation; its weights as a KernelTerm), or None where there is none."""
    try:
        node = graph.node(layer)
        if node.op in ("relu", "relu1"):
            node = graph.node(node.inputs[0])
        if node.op != "conv2d" or list(node.inputs) != [source]:
            return None
        weight = np.asarray(node.params["weight"], dtype=np.float64)
        geometry = ConvGeometry(in_shape=graph.node(source).shape, out_shape=node.shape, kernel=weight.shape[2:],
                                stride=node.params["stride"], padding=node.params["padding"])
        return node, KernelTerm(geometry, weight)
    except (KeyError, ValueError, StopIteration):  # not a plain convolution between these two layers
        return None


def _graph_synapses(graph, node, source: str):
    """A function giving the (i, j) of the conv2d ``node``'s synapses in the order the schemes' mappings
    unroll them: the rows of its operator composed with the source layer's identity (the product,
    not the operator alone, sets the order within a row)."""
    def synapses():
        op = G._linear_operator(node, graph.node(source).shape)[0]
        m = (op @ sp.identity(op.shape[1], format="csr")).tocsr().tocoo()
        return m.col, m.row
    return synapses


def _synapses(term: KernelTerm, synapses, where: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(i, j, weight) of a convolution: each synapse's weight is its tap's value, in the order
    ``synapses()`` gives."""
    i, j, weight = projections._unrolled(term, synapses, where)
    return i.astype(np.int64), j.astype(np.int64), np.asarray(weight, dtype=np.float64)


def _decode_projection(q: dict, version: int, graph, shapes: dict, layer: dict, r: ArchiveReader, where: str):
    form = q.get("form", "sparse")
    if form not in FORMS.get(version, ()):
        raise NetworkFileError(f"{r.where}: {where} has projection form {form!r}; format version {version} holds "
                               f"{FORMS.get(version, ())} in TTFS's and CSS's layers")
    if form == "sparse":
        return r.array(q["i"]), r.array(q["j"]), r.array(q["weight"])
    try:
        geometry = ConvGeometry.from_dict(q["geometry"])
        term = KernelTerm(geometry, r.array(q["kernel"]))
    except (TypeError, ValueError, ArithmeticError) as err:
        raise NetworkFileError(f"{r.where}: {where}: not a convolution's kernel and geometry "
                               f"({q.get('geometry')!r}): {err}") from None
    joins = (tuple(geometry.in_shape), tuple(geometry.out_shape))
    if joins != (shapes.get(q["source"]), tuple(int(d) for d in layer["shape"])) or geometry.pool is not None:
        raise NetworkFileError(f"{r.where}: {where}: its convolution maps {joins[0]} onto {joins[1]}"
                               f"{'' if geometry.pool is None else ' after a pooling'}, not layer "
                               f"{q['source']!r} {shapes.get(q['source'])} onto {tuple(layer['shape'])}")
    found = None if graph is None else _convolution(graph, layer["name"], q["source"])
    if found is None:
        raise NetworkFileError(f"{r.where}: {where} is stored as a convolution, but its graph has no conv2d node "
                               f"from layer {q['source']!r} to layer {layer['name']!r}")
    return _synapses(term, _graph_synapses(graph, found[0], q["source"]), f"{r.where}: {where}")


def decode(network: dict, layers: list, r: ArchiveReader, version: int = 2, graph=None):
    """The TTFS or CSS network of a file's entries (format ``version``; ``graph``: the file's
    LayerGraph, which orders the synapses of a convolution stored as its kernel)."""
    from ..css import CSSLayer, CSSNetwork, CSSProjection
    from ..ttfs import TTFSLayer, TTFSNetwork, TTFSProjection
    kind = network["kind"]
    Layer, Projection = (TTFSLayer, TTFSProjection) if kind == "ttfs" else (CSSLayer, CSSProjection)
    out = []
    shapes = {e["name"]: tuple(int(d) for d in e["shape"]) for e in layers}
    for e in layers:
        where = f"layer {e['name']!r}"
        fields = {f: e[f] for f in _PLAIN[kind]}
        fields.update({f: None if e[f] is None else r.array(e[f]) for f in _ARRAYS[kind]})
        projections = []
        for m, q in enumerate(e["projections"]):
            i, j, weight = _decode_projection(q, version, graph, shapes, e, r, f"{where}, projection {m}")
            if not (i.ndim == j.ndim == weight.ndim == 1 and len(i) == len(j) == len(weight)):
                raise NetworkFileError(f"{r.where}: {where}, projection {m}: i, j and weight are not three arrays "
                                       f"of one length ({i.shape}, {j.shape}, {weight.shape})")
            projections.append(Projection(q["source"], i, j, weight))
        out.append(Layer(shape=tuple(int(d) for d in e["shape"]), projections=projections, **fields))
    _check_indices(r, out)
    if kind == "ttfs":
        q = {name: quantities.decode(network[name], r, f"network parameter {name!r}") for name in ("T_w", "v_th", "Cm")}
        return TTFSNetwork(out, q["T_w"], q["v_th"], q["Cm"], bool(network["strict"]))
    return CSSNetwork(out, float(network["percentile"]), list(network["adjustments"]))


def _check_indices(r: ArchiveReader, layers: list) -> None:
    sizes = {p.name: p.size for p in layers}
    for p in layers:
        for q in p.projections:
            if q.source not in sizes:
                raise NetworkFileError(f"{r.where}: layer {p.name!r} has a projection from unknown layer {q.source!r}")
            if len(q.i) and (q.i.min() < 0 or q.i.max() >= sizes[q.source] or q.j.min() < 0 or q.j.max() >= p.size):
                raise NetworkFileError(f"{r.where}: projection {q.source!r} -> {p.name!r} has indices outside its "
                                       f"layers ({sizes[q.source]} -> {p.size} units)")


def _plain(v):
    return v.item() if isinstance(v, np.generic) else v
