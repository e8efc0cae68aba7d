"""Save and load a converted network (`SNN`): the file format, schema version 3 (docs/network_file.md).

What a file holds: the imported LayerGraph (``graph.npz``, `LayerGraph.save`'s own format), the
conversion settings, the coding scheme with its parameters, and the network the scheme mapped:
- rate coding's mapped populations (kind, shape, neuron model, scale, physical parameters with
  units, projections (a convolution as its kernel and geometry, `bioconv.io.projections`), bias
  weights, max-pool windows), the per-unit maxima of the calibration activations (all that
  `SNN.saturation` needs), the scales, and the text and sha256 of every model file used;
- or TTFS's or CSS's layers (`bioconv.io.layered`).
Loading needs neither torch nor the calibration data, and checks each model file against the
library's current one. Version 1 files (rate coding, every projection unrolled) and version 2 files
(TTFS's and CSS's convolutions unrolled) keep loading.
"""
from __future__ import annotations

import functools
import hashlib
import io
import warnings
from pathlib import Path

import numpy as np

from .. import graph as G
from .. import models
from ..coding import from_params
from ..errors import BioconvError, ModelError
from ..mapping import MappedNetwork, MappedPopulation, MappedProjection
from ..normalize import Scales
from . import layered, projections, quantities
from .archive import ArchiveReader, ArchiveWriter, NetworkFileError

FORMAT = "bioconv.network"
#: The version `save` writes. `load` reads every version in `_READERS`.
VERSION = 3


def _bioconv_version() -> str:
    import bioconv  # at call time: this module is imported while the package itself is being imported
    return bioconv.__version__


class ModelChangedWarning(UserWarning):
    """A saved network's model file differs from the library's current file of that name."""


def check_savable(coding, where: str = "save") -> None:
    """Refuse (`NetworkFileError`, naming the scheme) a coding scheme whose networks the format cannot
    hold: a scheme that simulates its own kind of network other than TTFS's and CSS's layers
    (`bioconv.io.layered`). Rate coding's mapped populations and those layers are saved.
    ``coding``: a `bioconv.coding.CodingScheme` (or its class)."""
    if getattr(coding, "simulates_itself", False) and coding.name not in layered.SCHEMES:
        raise NetworkFileError(f"{where}: saving networks of coding {coding.name!r} is not supported yet (a network "
                               f"file holds rate coding's mapped populations, or the layers of "
                               f"{' / '.join(map(repr, layered.SCHEMES))})")


def save(snn, path) -> Path:
    """Write ``snn`` (a `bioconv.SNN`) to ``path`` (conventionally ``*.bioconv``); returns the path."""
    check_savable(snn.coding)
    w = ArchiveWriter()
    graph_buf = io.BytesIO()
    snn.graph.save(graph_buf)
    w.add_bytes("graph.npz", graph_buf.getvalue())
    header = dict(format=FORMAT, version=VERSION, bioconv_version=_bioconv_version(),
                  conversion=_encode_settings(getattr(snn, "conversion", None) or {}, w), coding=_coding_of(snn))
    if isinstance(snn.mapped, MappedNetwork):
        header.update(_encode_mapped(snn, w))
    elif layered.kind_of(snn.mapped) == snn.coding.name:
        network, layers = layered.encode(snn.mapped, w, snn.graph)
        header.update(network=network, layers=layers, models={})
    else:
        raise NetworkFileError(f"save: network of coding {snn.coding.name!r} is a {type(snn.mapped).__name__}; a "
                               f"network file holds a bioconv.mapping.MappedNetwork, or the layers of "
                               f"{' / '.join(map(repr, layered.SCHEMES))} under their own scheme")
    return w.write(path, header)


def _encode_mapped(snn, w: ArchiveWriter) -> dict:
    """The header entries of a rate-coded network's mapped populations."""
    net: MappedNetwork = snn.mapped
    pops = []
    for k, p in enumerate(net.populations):
        where = f"populations/{k}"
        entry = dict(name=p.name, kind=p.kind, shape=[int(d) for d in p.shape], neuron=p.neuron,
                     scale=float(p.scale),
                     params={name: quantities.encode(v, w, f"{where}/params/{name}") for name, v in p.params.items()},
                     projections=[projections.encode(q, w, f"{where}/projections/{m}")
                                  for m, q in enumerate(p.projections)],
                     bias_weight=None if p.bias_weight is None else quantities.encode(p.bias_weight, w,
                                                                                      f"{where}/bias_weight"),
                     pool_groups=None if p.pool_groups is None else w.add(f"{where}/pool_groups", p.pool_groups),
                     calibration_max=None if isinstance(snn._calibration_acts, NoCalibration) else
                     w.add(f"{where}/calibration_max", np.asarray(snn._calibration_acts[p.name]).max(axis=0)))
        if p.options:  # written only when some are on: a plain network's file is as before
            entry["options"] = list(p.options)
        pops.append(entry)
    used = sorted({p.neuron for p in net.populations if p.neuron} | {net.synapse})
    return dict(
        network=dict(kind="mapped", synapse=net.synapse,
                     synapse_params={k: quantities.encode(v, w, f"synapse_params/{k}")
                                     for k, v in net.synapse_params.items()},
                     rate_max=quantities.encode(net.rate_max, w, "rate_max"), bias=net.bias, reset=net.reset,
                     readout=net.readout),
        scales=dict(method=str(net.scales.method), values={k: float(v) for k, v in net.scales.values.items()}),
        models={name: _model_entry(name) for name in used},
        populations=pops)


def load(path, *, on_model_change: str = "error"):
    """Read a network written by `save` (any format version up to `VERSION`; no torch needed).

    ``on_model_change``: what to do when a model file used by the network differs from the library's
    current file of the same name: ``"error"`` (default: the spikes could differ) or ``"warn"``
    (simulate with the library's file; a `ModelChangedWarning` names the model).
    """
    if on_model_change not in ("error", "warn"):
        raise ValueError(f"bioconv.load: on_model_change must be 'error' or 'warn', got {on_model_change!r}")
    with ArchiveReader(path) as r:
        h = r.header
        if h.get("format") != FORMAT:
            raise NetworkFileError(f"{r.where} is not a saved bioconv network (format {h.get('format')!r})")
        version = h.get("version")
        if not isinstance(version, int) or version < 1:
            raise NetworkFileError(f"{r.where}: invalid format version {version!r}")
        if version > VERSION:
            raise NetworkFileError(f"{r.where} was written by a newer bioconv ({h.get('bioconv_version')}, format "
                                   f"version {version}); this bioconv ({_bioconv_version()}) reads versions up to "
                                   f"{VERSION}: upgrade bioconv to load it")
        try:
            return _READERS[version](r, on_model_change)
        except NetworkFileError:
            raise
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as err:
            # a header that passed its digest but lacks or mistypes a field: written by something else
            raise NetworkFileError(f"{r.where}: header does not follow format version {version}: "
                                   f"{type(err).__name__}: {err}") from None


def _read(r: ArchiveReader, on_model_change: str):
    """Versions 1 to 3: version 2 adds the projection forms 'conv' and 'conv_terms' and the networks
    of TTFS and CSS (``network.kind``; a version-1 file holds mapped populations); version 3 the
    form 'conv' in TTFS's and CSS's layers (`bioconv.io.layered.FORMS`)."""
    h = r.header
    version = h["version"]
    for name, entry in h["models"].items():
        _check_model(r, name, entry, on_model_change)
    try:
        graph = G.load(io.BytesIO(r.read_bytes("graph.npz")))
    except NetworkFileError:
        raise
    except Exception as err:  # the graph's own loader names what is wrong with it
        raise NetworkFileError(f"{r.where}: member 'graph.npz': {err}") from None
    conversion = _decode_settings(h["conversion"], r)
    kind = h["network"].get("kind", "mapped") if version >= 2 else "mapped"
    if kind == "mapped":
        return _read_mapped(r, graph, conversion, version)
    if kind not in layered.SCHEMES:
        raise NetworkFileError(f"{r.where}: network kind {kind!r} is not one this bioconv reads ('mapped', "
                               f"{', '.join(map(repr, layered.SCHEMES))})")
    return _read_layered(r, graph, conversion, kind)


def _read_layered(r: ArchiveReader, graph, conversion: dict, kind: str):
    """A TTFS or CSS network: its scheme, then its layers, checked against the scheme's populations."""
    from ..converter import SNN
    h = r.header
    coding = _restore_coding(r, h["coding"], None, conversion)
    if coding.name != kind:
        raise NetworkFileError(f"{r.where}: its network holds {kind!r} layers but its coding is {coding.name!r}")
    net = layered.decode(h["network"], h["layers"], r, h["version"], graph)
    try:
        pops = coding.populations(graph)
    except BioconvError as err:
        raise NetworkFileError(f"{r.where}: its graph does not convert under coding {kind!r}: {err}") from None
    nodes = {n.name: tuple(n.shape) for n in graph.nodes}
    expected = [(p.name, tuple(p.shape)) for p in pops] if pops is not None else None
    got = [(p.name, tuple(p.shape)) for p in net.layers]
    if (expected is not None and got != expected) or any(nodes.get(name) != shape for name, shape in got):
        raise NetworkFileError(f"{r.where}: its layers {got} are not those of its graph under coding {kind!r}")
    snn = SNN(graph, pops, net, None, coding=coding)
    snn.conversion = conversion
    return snn


def _read_mapped(r: ArchiveReader, graph, conversion: dict, version: int):
    from ..converter import SNN  # here: converter imports this package's users, not the other way round

    h = r.header
    net_h = h["network"]
    pops = G.populations(graph)
    graph_pops = {p.name: p for p in pops}
    mapped_pops, calibration_max = [], {}
    for k, e in enumerate(h["populations"]):
        where = f"population {e['name']!r}"
        _check_population_model(r, e, where)

        p = MappedPopulation(e["name"], e["kind"], tuple(int(d) for d in e["shape"]), neuron=e["neuron"],
                             params={n: quantities.decode(v, r, f"{where}, parameter {n!r}")
                                     for n, v in e["params"].items()},
                             projections=[projections.decode(q, r, f"{where}, projection {m}", version,
                                                             functools.partial(_graph_synapses, r, graph_pops,
                                                                               e["name"], q["source"]))
                                          for m, q in enumerate(e["projections"])],
                             bias_weight=None if e["bias_weight"] is None else
                             quantities.decode(e["bias_weight"], r, f"{where}, bias_weight"),
                             pool_groups=None if e["pool_groups"] is None else r.array(e["pool_groups"]),
                             scale=float(e["scale"]), options=tuple(e.get("options", ())))
        mapped_pops.append(p)
        if e["calibration_max"] is None:  # a network without calibration data (from NIR)
            calibration_max = NoCalibration("saved without calibration data")
        elif not isinstance(calibration_max, NoCalibration):
            calibration_max[p.name] = r.array(e["calibration_max"])[None, :]
    scales = Scales({k: float(v) for k, v in h["scales"]["values"].items()}, h["scales"]["method"])
    mapped = MappedNetwork(mapped_pops, net_h["synapse"],
                           {k: quantities.decode(v, r, f"synapse parameter {k!r}")
                            for k, v in net_h["synapse_params"].items()},
                           quantities.decode(net_h["rate_max"], r, "rate_max"), net_h["bias"], net_h["reset"],
                           net_h["readout"], scales)
    _check_populations(r, pops, mapped_pops)
    coding = _restore_coding(r, h["coding"], mapped, conversion)
    # SNN.saturation needs each unit's largest calibration activation, which is all the file keeps.
    snn = SNN(graph, pops, mapped, calibration_max, coding=coding)
    snn.conversion = conversion
    return snn


class NoCalibration:
    """The calibration activations of a network that has none (imported from NIR, or a file saved
    from one): saving records that, and `SNN.saturation` says so when asked."""

    def __init__(self, why: str):
        self.why = why

    def __getitem__(self, name):
        raise BioconvError(f"this network has no calibration data ({self.why}): its saturation is unknown")


def _check_population_model(r: ArchiveReader, e: dict, where: str):
    """A population's neuron model must be one of the file's own models (whose text its digest
    checked), and each of its parameters the model declares must carry that parameter's dimension:
    a header edited past its digest is refused here, not when the network is built or simulated."""
    from brian2.units.fundamentalunits import get_dimensions
    name = e["neuron"]
    if name is None:
        return
    if name not in r.header["models"]:
        raise NetworkFileError(f"{r.where}: {where} names neuron model {name!r}, which is not among the file's "
                               f"models ({', '.join(sorted(r.header['models']))})")
    declared = models.load(name).parameters
    for pname, value in e["params"].items():
        if pname not in declared:
            continue
        got = get_dimensions(quantities.decode(value, r, f"{where}, parameter {pname!r}"))
        if got != declared[pname].dim:
            raise NetworkFileError(f"{r.where}: {where}, parameter {pname!r} has dimension {got}, where model "
                                   f"{name!r} declares {declared[pname].unit}")


def _graph_synapses(r: ArchiveReader, graph_pops: dict, target: str, source: str):
    """The (i, j) of the graph's projection ``source`` -> ``target``, in its order: the synapses the
    mapping unrolled from it."""
    proj = next((q for q in getattr(graph_pops.get(target), "projections", ()) if q.source == source), None)
    if proj is None:
        raise NetworkFileError(f"{r.where}: its graph has no projection {source!r} -> {target!r}, which it maps")
    m = proj.matrix.tocoo()
    return m.col, m.row


def _restore_coding(r: ArchiveReader, record: dict, mapped: MappedNetwork | None, conversion: dict):
    """The coding scheme a file records. A parameter its record lacks (files of the first version-1
    writer recorded rate coding's ``rate_max`` only) is taken from the file's conversion settings,
    else, for rate coding, from the mapped network (`bioconv.converter.rate_values_of`), never from
    the scheme's defaults where the file knows the value."""
    from ..coding import schemes
    from ..converter import rate_values_of
    name = record.get("name")
    try:
        params = record["params"]
        cls = schemes[name]
        if set(cls.PARAMETERS) <= set(params):
            return from_params(name, params)
        known = rate_values_of(mapped, conversion) if name == "rate" and mapped is not None else \
            {k: v for k, v in conversion.items() if k in cls.PARAMETERS}
        return from_params(name, {**cls(**known).params(), **params})
    except (KeyError, BioconvError) as err:  # an unknown scheme, or parameters it refuses
        raise NetworkFileError(f"{r.where}: coding scheme {name!r} cannot be restored: "
                               f"{type(err).__name__}: {err}") from None


#: Reader per format version; a new version adds its reader here and keeps the old ones.
_READERS = {1: _read, 2: _read, 3: _read}


def _check_populations(r: ArchiveReader, pops: list, mapped: list) -> None:
    """The populations the graph reduces to must be those the file maps, in order."""
    got = [(p.name, p.kind, p.size) for p in pops]
    saved = [(p.name, p.kind, p.size) for p in mapped]
    if got != saved:
        raise NetworkFileError(f"{r.where}: its graph reduces to populations {got}, but it maps {saved}")
    for p in mapped:
        for q in p.projections:
            n_src = next((m.size for m in mapped if m.name == q.source), None)
            if n_src is None:
                raise NetworkFileError(f"{r.where}: population {p.name!r} has a projection from unknown "
                                       f"population {q.source!r}")
            shape_src = next(m.shape for m in mapped if m.name == q.source)
            for k in q.kernels:  # a kernel's geometry must join these two populations
                if (tuple(k.geometry.in_shape), tuple(k.geometry.out_shape)) != (tuple(shape_src), tuple(p.shape)):
                    raise NetworkFileError(f"{r.where}: projection {q.source!r} -> {p.name!r} holds a convolution "
                                           f"from {k.geometry.in_shape} to {k.geometry.out_shape}, but joins "
                                           f"populations of shapes {tuple(shape_src)} and {tuple(p.shape)}")
            if len(q.kernels) == 1 and q.rest is None:
                continue  # form 'conv': its synapses follow from the geometry (computed when a simulation asks)
            for s in (q, q.rest) if q.rest is not None else (q,):  # the stored unrolled indices
                if len(s.i) and (s.i.min() < 0 or s.i.max() >= n_src or s.j.min() < 0 or s.j.max() >= p.size):
                    raise NetworkFileError(f"{r.where}: projection {q.source!r} -> {p.name!r} has indices outside "
                                           f"its populations ({n_src} -> {p.size} units)")


def _encode_settings(settings: dict, w: ArchiveWriter) -> dict:
    """Conversion settings: quantities as entries, strings and numbers as they are, dicts recursively."""
    out = {}
    for k, v in settings.items():
        if hasattr(v, "dim"):
            out[k] = {"quantity": quantities.encode(v, w, f"conversion/{k}")}
        elif isinstance(v, dict):
            out[k] = {"dict": {str(a): float(b) for a, b in v.items()}}
        else:
            plain = v if isinstance(v, (str, bool, int, type(None))) else int(v) if isinstance(v, np.integer) else float(v)
            out[k] = {"plain": plain}
    return out


def _decode_settings(entries: dict, r: ArchiveReader) -> dict:
    out = {}
    for k, e in entries.items():
        if "quantity" in e:
            out[k] = quantities.decode(e["quantity"], r, f"conversion setting {k!r}")
        else:
            out[k] = e["dict"] if "dict" in e else e["plain"]
    return out


def _coding_of(snn) -> dict:
    """The coding scheme and its parameters, as the scheme writes them (`CodingScheme.params`: JSON,
    quantities as value and unit string); `bioconv.coding.from_params` reads them back."""
    return dict(name=snn.coding.name, params=snn.coding.params())


def _model_text(name: str) -> bytes:
    return Path(models.load(name).path).read_bytes()


def _model_entry(name: str) -> dict:
    text = _model_text(name)
    m = models.load(name)
    return dict(kind=m.kind, sha256=hashlib.sha256(text).hexdigest(), text=text.decode())


def _check_model(r: ArchiveReader, name: str, entry: dict, on_model_change: str) -> None:
    try:
        current = _model_text(name)
    except ModelError as err:
        raise NetworkFileError(f"{r.where} uses model {name!r}, which this installation lacks ({err}); its text "
                               f"is in the file's header (models.{name}.text): save it as {name}.toml in a "
                               f"folder listed in $BIOCONV_EQUATIONS") from None
    if hashlib.sha256(current).hexdigest() == entry["sha256"]:
        return
    msg = (f"{r.where} was converted with another version of model {name!r} than the library's "
           f"{models.load(name).path} (sha256 {entry['sha256'][:12]}... in the file); the file's version is in its "
           f"header (models.{name}.text)")
    if on_model_change == "error":
        raise NetworkFileError(msg + "; load(..., on_model_change='warn') simulates with the library's version")
    warnings.warn(msg + "; simulating with the library's version", ModelChangedWarning, stacklevel=3)
