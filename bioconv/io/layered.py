"""The networks of the schemes that simulate themselves, in a network file (format version 2):
TTFS's layers of ReL-PSP neurons (`bioconv.ttfs.TTFSNetwork`) and CSS's layers of TSA neurons
(`bioconv.css.CSSNetwork`). Both are layers of ANN weights (dimensionless, unnormalized: each
scheme derives its currents or amplitudes from them and its parameters when it simulates), so the
file holds them as they are: every layer's fields, each projection as i, j and weight arrays, and
the network's own parameters (TTFS: T_w, v_th, Cm with units; CSS: the calibration percentile and
the amplitude-adjustment rounds applied)."""
from __future__ import annotations

import numpy as np

from . import quantities
from .archive import ArchiveReader, ArchiveWriter, NetworkFileError

#: The schemes whose networks this module stores (a file's ``network.kind``).
SCHEMES = ("ttfs", "css")
#: network kind -> the layer fields stored as JSON values (the rest are arrays or absent)
_PLAIN = {"ttfs": ("name", "kind", "window", "node", "weight_sum_deviation"),
          "css": ("name", "kind", "depth", "scale", "factor")}
_ARRAYS = {"ttfs": ("bias", "pool_groups"), "css": ("bias",)}


def kind_of(net) -> str | None:
    """'ttfs' or 'css' for a network this module stores, else None."""
    from ..css import CSSNetwork
    from ..ttfs import TTFSNetwork
    return "ttfs" if isinstance(net, TTFSNetwork) else "css" if isinstance(net, CSSNetwork) else None


def encode(net, w: ArchiveWriter) -> tuple[dict, list]:
    """(the network entry, the layer entries) of a TTFS or CSS network."""
    kind = kind_of(net)
    layers = []
    for k, p in enumerate(net.layers):
        where = f"layers/{k}"
        entry = {f: _plain(getattr(p, f)) for f in _PLAIN[kind]}
        entry["shape"] = [int(d) for d in p.shape]
        for f in _ARRAYS[kind]:
            v = getattr(p, f)
            entry[f] = None if v is None else w.add(f"{where}/{f}", v)
        entry["projections"] = [dict(source=q.source, i=w.add(f"{where}/projections/{m}/i", q.i),
                                     j=w.add(f"{where}/projections/{m}/j", q.j),
                                     weight=w.add(f"{where}/projections/{m}/weight", q.weight))
                                for m, q in enumerate(p.projections)]
        layers.append(entry)
    if kind == "ttfs":
        network = dict(kind=kind, strict=bool(net.strict), **{name: quantities.encode(getattr(net, name), w, name)
                                                              for name in ("T_w", "v_th", "Cm")})
    else:
        network = dict(kind=kind, percentile=float(net.percentile), adjustments=list(net.adjustments))
    return network, layers


def decode(network: dict, layers: list, r: ArchiveReader):
    """The TTFS or CSS network of a file's entries."""
    from ..css import CSSLayer, CSSNetwork, CSSProjection
    from ..ttfs import TTFSLayer, TTFSNetwork, TTFSProjection
    kind = network["kind"]
    Layer, Projection = (TTFSLayer, TTFSProjection) if kind == "ttfs" else (CSSLayer, CSSProjection)
    out = []
    for e in layers:
        where = f"layer {e['name']!r}"
        fields = {f: e[f] for f in _PLAIN[kind]}
        fields.update({f: None if e[f] is None else r.array(e[f]) for f in _ARRAYS[kind]})
        projections = []
        for m, q in enumerate(e["projections"]):
            i, j, weight = r.array(q["i"]), r.array(q["j"]), r.array(q["weight"])
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
