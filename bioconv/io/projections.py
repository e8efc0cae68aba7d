"""A mapped projection (`bioconv.mapping.MappedProjection`) in a network file, in one of three forms:

- ``"sparse"``: one (i, j, w) triple per synapse (every version);
- ``"conv"`` (version 2): a projection that is one convolution, stored as its geometry
  (`bioconv.conv_geometry.ConvGeometry.to_dict`) and its kernel (C_out, C_in, kh, kw) in the
  synapse model's weight unit: C_out x C_in x kh x kw values instead of one per synapse. The
  unrolled synapses are computed from them when a simulation asks for them: each synapse's weight
  is its tap's value (`KernelTerm.unrolled`), in the order of the synapses of the graph's own
  projection (``synapses``: what the mapping unrolled), so a loaded network runs the shared-kernel
  pathway (``conv="shared"``) or the unrolled synapses (``conv="unrolled"``) exactly as the
  original does;
- ``"conv_terms"`` (version 2): a projection that sums several convolutions, or convolutions and
  other linear paths, from one source (e.g. parallel branches added): each kernel with its geometry,
  the rest as a ``"sparse"`` entry, and the unrolled sum as i, j, w. The sum is stored because it
  cannot be recomputed exactly from the mapped terms: the mapping scales the summed ANN weights,
  and a sum of scaled terms differs from the scaled sum in the last bits, which could move a spike.
"""
from __future__ import annotations

import numpy as np
from brian2 import Quantity

from ..conv_geometry import ConvGeometry, KernelTerm
from ..mapping import MappedProjection
from . import quantities
from .archive import ArchiveReader, ArchiveWriter, NetworkFileError

#: The forms each format version may hold.
FORMS = {1: ("sparse",), 2: ("sparse", "conv", "conv_terms"), 3: ("sparse", "conv", "conv_terms")}


def encode(q: MappedProjection, w: ArchiveWriter, member: str) -> dict:
    """The header entry of ``q``; its arrays go to members under ``member``."""
    entry = dict(source=q.source, unshared=q.unshared)
    if not q.kernels:
        return dict(entry, form="sparse", **_encode_ijw(q.i, q.j, q.w, w, member))
    kernels = [_encode_kernel(k, w, f"{member}/kernels/{m}") for m, k in enumerate(q.kernels)]
    if len(q.kernels) == 1 and q.rest is None:
        return dict(entry, form="conv", **kernels[0])
    rest = None if q.rest is None else encode(q.rest, w, f"{member}/rest")
    return dict(entry, form="conv_terms", kernels=kernels, rest=rest, **_encode_ijw(q.i, q.j, q.w, w, member))


def decode(e: dict, r: ArchiveReader, where: str, version: int, synapses=None) -> MappedProjection:
    """The projection of entry ``e``. ``synapses``: for form 'conv', a function giving the (i, j) of
    the graph's projection it was mapped from, in the graph's order (None: the kernel's own order,
    by target, then source)."""
    form = e["form"]
    if form not in FORMS[version]:
        raise NetworkFileError(f"{r.where}: {where} has projection form {form!r}; format version {version} holds "
                               f"{FORMS[version]}")
    unshared = e.get("unshared")
    if form == "sparse":
        return MappedProjection(e["source"], *_decode_ijw(e, r, where), unshared=unshared)
    if form == "conv":
        term = _decode_kernel(e, r, where)
        return MappedProjection(e["source"], kernels=[term], unrolled=lambda: _unrolled(term, synapses, f"{r.where}: {where}"),
                                unshared=unshared)
    kernels = [_decode_kernel(k, r, f"{where}, kernel {m}") for m, k in enumerate(e["kernels"])]
    rest = None if e["rest"] is None else decode(e["rest"], r, f"{where}, rest", version)
    if rest is not None and rest.kernels:
        raise NetworkFileError(f"{r.where}: {where}: its rest holds kernels (form {e['rest']['form']!r})")
    return MappedProjection(e["source"], *_decode_ijw(e, r, where), kernels=kernels, rest=rest, unshared=unshared)


def _unrolled(term: KernelTerm, synapses=None, where: str = ""):
    """The kernel's synapses (i, j, w): each synapse's weight is its tap's value; in the order
    ``synapses()`` gives (i, j), else by target, then source. ``where`` names the file and projection."""
    i, j, w = term.unrolled()
    n_src = term.geometry.n_source
    key = j.astype(np.int64) * n_src + i
    if synapses is None:
        order = np.argsort(key, kind="stable")
        return i[order].astype(np.int64), j[order].astype(np.int64), w[order]
    gi, gj = (np.asarray(a, dtype=np.int64) for a in synapses())
    gkey = gj * n_src + gi
    by_key = np.argsort(key)
    pos = np.minimum(np.searchsorted(key, gkey, sorter=by_key), max(len(key) - 1, 0))
    found = by_key[pos] if len(key) else np.zeros(len(gkey), dtype=np.int64)
    ok = key[found] == gkey if len(key) else np.zeros(len(gkey), dtype=bool)
    if int(ok.sum()) != len(key):  # every nonzero tap must be a synapse of the graph the file holds
        raise NetworkFileError(f"{where}: its kernel makes {len(key)} synapses, of which {int(ok.sum())} are in "
                               f"its graph's projection: the kernel is not its graph's")
    # a synapse of the graph that no nonzero tap makes (an explicit zero) carries weight 0, as mapped
    values = np.where(ok, np.asarray(w)[found] if len(key) else 0.0, 0.0)
    return gi, gj, Quantity(values, dim=w.dim) if hasattr(w, "dim") else values


def _encode_kernel(k: KernelTerm, w: ArchiveWriter, member: str) -> dict:
    return dict(geometry=k.geometry.to_dict(), kernel=quantities.encode(k.kernel, w, f"{member}/kernel"))


def _decode_kernel(e: dict, r: ArchiveReader, where: str) -> KernelTerm:
    try:
        geometry = ConvGeometry.from_dict(e["geometry"])
    except (TypeError, ValueError, ArithmeticError) as err:  # ArithmeticError: a zero stride or pooling
        raise NetworkFileError(f"{r.where}: {where}: not a convolution's geometry ({e.get('geometry')!r}): "
                               f"{err}") from None
    kernel = quantities.decode(e["kernel"], r, f"{where}, kernel")
    try:
        return KernelTerm(geometry, kernel)
    except ValueError as err:
        raise NetworkFileError(f"{r.where}: {where}: {err}") from None


def _encode_ijw(i, j, weights, w: ArchiveWriter, member: str) -> dict:
    i, j = np.asarray(i), np.asarray(j)
    # Indices are the bulk of a sparse projection: int32 where they fit (read back as int64, as the mapping makes them).
    small = max(int(i.max(initial=0)), int(j.max(initial=0))) < 2 ** 31
    idx = np.int32 if small else np.int64
    return dict(i=w.add(f"{member}/i", i.astype(idx)), j=w.add(f"{member}/j", j.astype(idx)),
                w=quantities.encode(weights, w, f"{member}/w"))


def _decode_ijw(e: dict, r: ArchiveReader, where: str):
    i, j = r.array(e["i"]).astype(np.int64), r.array(e["j"]).astype(np.int64)
    w = quantities.decode(e["w"], r, f"{where}, weights")
    w = w * np.ones(len(i)) if np.ndim(w) == 0 else w  # an empty projection's weights may be stored as a scalar
    if not (len(i) == len(j) == len(w)):
        raise NetworkFileError(f"{r.where}: {where}: i, j and w have different lengths ({len(i)}, {len(j)}, "
                               f"{len(w)})")
    return i, j, w
