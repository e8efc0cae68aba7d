"""Save and load a converted network (`SNN`): the file format, schema version 1 (docs/network_file.md).

What a file holds: the imported LayerGraph (``graph.npz``, `LayerGraph.save`'s own format), every
mapped population (kind, shape, neuron model, scale, physical parameters with units, projections,
bias weights, max-pool windows), the per-unit maxima of the calibration activations (all that
`SNN.saturation` needs), the scales, the conversion settings, the coding scheme with its parameters,
and the text and sha256 of every model file used. Loading needs neither torch nor the calibration
data, and checks each model file against the library's current one.
"""
from __future__ import annotations

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
from . import quantities
from .archive import ArchiveReader, ArchiveWriter, NetworkFileError

FORMAT = "bioconv.network"
#: The version `save` writes. `load` reads every version in `_READERS`.
VERSION = 1
#: Projection forms a file may hold. 'sparse': one (i, j, w) triple per synapse. A convolution kept as
#: its kernel and geometry (the weight-shared convolutions issue) will be a form of its own.
PROJECTION_FORMS = ("sparse",)


def _bioconv_version() -> str:
    import bioconv  # at call time: this module is imported while the package itself is being imported
    return bioconv.__version__


class ModelChangedWarning(UserWarning):
    """A saved network's model file differs from the library's current file of that name."""


def check_savable(coding, where: str = "save") -> None:
    """Refuse (`NetworkFileError`, naming the scheme) a coding scheme whose networks the format
    cannot hold. The file holds mapped populations (`bioconv.mapping.MappedNetwork`): what the shared
    simulation runs, i.e. the networks of schemes that do not simulate themselves (rate coding). A
    scheme that simulates its own kind of network (TTFS's layer windows) cannot be saved yet.
    ``coding``: a `bioconv.coding.CodingScheme` (or its class)."""
    if getattr(coding, "simulates_itself", False):
        raise NetworkFileError(f"{where}: saving networks of coding {coding.name!r} is not supported yet (a network "
                               f"file holds mapped populations, as rate coding makes them; a {coding.name!r} network "
                               f"is simulated by its scheme itself)")


def save(snn, path) -> Path:
    """Write ``snn`` (a `bioconv.SNN`) to ``path`` (conventionally ``*.bioconv``); returns the path.
    A network of a scheme the format cannot hold (`check_savable`: TTFS) is refused by name."""
    check_savable(snn.coding)
    if not isinstance(snn.mapped, MappedNetwork):
        raise NetworkFileError(f"save: network of coding {snn.coding.name!r} is a {type(snn.mapped).__name__}; saving "
                               f"it is not supported yet (a network file holds a bioconv.mapping.MappedNetwork)")
    w = ArchiveWriter()
    graph_buf = io.BytesIO()
    snn.graph.save(graph_buf)
    w.add_bytes("graph.npz", graph_buf.getvalue())
    net: MappedNetwork = snn.mapped
    pops = []
    for k, p in enumerate(net.populations):
        where = f"populations/{k}"
        entry = dict(name=p.name, kind=p.kind, shape=[int(d) for d in p.shape], neuron=p.neuron,
                     scale=float(p.scale),
                     params={name: quantities.encode(v, w, f"{where}/params/{name}") for name, v in p.params.items()},
                     projections=[_encode_projection(q, w, f"{where}/projections/{m}")
                                  for m, q in enumerate(p.projections)],
                     bias_weight=None if p.bias_weight is None else quantities.encode(p.bias_weight, w,
                                                                                      f"{where}/bias_weight"),
                     pool_groups=None if p.pool_groups is None else w.add(f"{where}/pool_groups", p.pool_groups),
                     calibration_max=w.add(f"{where}/calibration_max",
                                           np.asarray(snn._calibration_acts[p.name]).max(axis=0)))
        if p.options:  # written only when some are on: a plain network's file is as before
            entry["options"] = list(p.options)
        pops.append(entry)
    used = sorted({p.neuron for p in net.populations if p.neuron} | {net.synapse})
    header = dict(
        format=FORMAT, version=VERSION, bioconv_version=_bioconv_version(),
        network=dict(synapse=net.synapse,
                     synapse_params={k: quantities.encode(v, w, f"synapse_params/{k}")
                                     for k, v in net.synapse_params.items()},
                     rate_max=quantities.encode(net.rate_max, w, "rate_max"), bias=net.bias, reset=net.reset,
                     readout=net.readout),
        scales=dict(method=str(net.scales.method), values={k: float(v) for k, v in net.scales.values.items()}),
        conversion=_encode_settings(getattr(snn, "conversion", None) or {}, w),
        coding=_coding_of(snn),
        models={name: _model_entry(name) for name in used},
        populations=pops,
    )
    return w.write(path, header)


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
        except (KeyError, TypeError, ValueError, IndexError) as err:
            # a header that passed its digest but lacks or mistypes a field: written by something else
            raise NetworkFileError(f"{r.where}: header does not follow format version {version}: "
                                   f"{type(err).__name__}: {err}") from None


def _read_v1(r: ArchiveReader, on_model_change: str):
    from ..converter import SNN  # here: converter imports this package's users, not the other way round

    h = r.header
    for name, entry in h["models"].items():
        _check_model(r, name, entry, on_model_change)
    try:
        graph = G.load(io.BytesIO(r.read_bytes("graph.npz")))
    except NetworkFileError:
        raise
    except Exception as err:  # the graph's own loader names what is wrong with it
        raise NetworkFileError(f"{r.where}: member 'graph.npz': {err}") from None
    net_h = h["network"]
    mapped_pops, calibration_max = [], {}
    for k, e in enumerate(h["populations"]):
        where = f"population {e['name']!r}"
        p = MappedPopulation(e["name"], e["kind"], tuple(int(d) for d in e["shape"]), neuron=e["neuron"],
                             params={n: quantities.decode(v, r, f"{where}, parameter {n!r}")
                                     for n, v in e["params"].items()},
                             projections=[_decode_projection(q, r, f"{where}, projection {m}")
                                          for m, q in enumerate(e["projections"])],
                             bias_weight=None if e["bias_weight"] is None else
                             quantities.decode(e["bias_weight"], r, f"{where}, bias_weight"),
                             pool_groups=None if e["pool_groups"] is None else r.array(e["pool_groups"]),
                             scale=float(e["scale"]), options=tuple(e.get("options", ())))
        mapped_pops.append(p)
        calibration_max[p.name] = r.array(e["calibration_max"])[None, :]
    scales = Scales({k: float(v) for k, v in h["scales"]["values"].items()}, h["scales"]["method"])
    mapped = MappedNetwork(mapped_pops, net_h["synapse"],
                           {k: quantities.decode(v, r, f"synapse parameter {k!r}")
                            for k, v in net_h["synapse_params"].items()},
                           quantities.decode(net_h["rate_max"], r, "rate_max"), net_h["bias"], net_h["reset"],
                           net_h["readout"], scales)
    pops = G.populations(graph)
    _check_populations(r, pops, mapped_pops)
    conversion = _decode_settings(h["conversion"], r)
    try:
        coding = _restore_coding(h["coding"]["name"], h["coding"]["params"], mapped, conversion)
    except (KeyError, BioconvError) as err:  # an unknown scheme, or parameters it refuses
        raise NetworkFileError(f"{r.where}: coding scheme {h['coding'].get('name')!r} cannot be restored: "
                               f"{type(err).__name__}: {err}") from None
    # SNN.saturation needs each unit's largest calibration activation, which is all the file keeps.
    snn = SNN(graph, pops, mapped, calibration_max, coding=coding)
    snn.conversion = conversion
    return snn


def _restore_coding(name: str, params: dict, mapped: MappedNetwork, conversion: dict):
    """The coding scheme a file records. A parameter its record lacks (files of the first version-1
    writer recorded rate coding's ``rate_max`` only) is taken from the file's conversion settings,
    else, for rate coding, from the mapped network (`bioconv.converter.rate_values_of`), never from
    the scheme's defaults where the file knows the value."""
    from ..coding import schemes
    from ..converter import rate_values_of
    cls = schemes[name]
    if set(cls.PARAMETERS) <= set(params):
        return from_params(name, params)
    known = rate_values_of(mapped, conversion) if name == "rate" else \
        {k: v for k, v in conversion.items() if k in cls.PARAMETERS}
    return from_params(name, {**cls(**known).params(), **params})


#: Reader per format version; a new version adds its reader here and keeps the old ones.
_READERS = {1: _read_v1}


def _encode_projection(q: MappedProjection, w: ArchiveWriter, member: str) -> dict:
    i, j = np.asarray(q.i), np.asarray(q.j)
    # Indices are the bulk of a file: int32 where they fit (read back as int64, as `map_network` makes them).
    small = max(int(i.max(initial=0)), int(j.max(initial=0))) < 2 ** 31
    idx = np.int32 if small else np.int64
    return dict(source=q.source, form="sparse", i=w.add(f"{member}/i", i.astype(idx)),
                j=w.add(f"{member}/j", j.astype(idx)), w=quantities.encode(q.w, w, f"{member}/w"))


def _decode_projection(e: dict, r: ArchiveReader, where: str) -> MappedProjection:
    if e["form"] not in PROJECTION_FORMS:
        raise NetworkFileError(f"{r.where}: {where} has projection form {e['form']!r}; this bioconv reads "
                               f"{PROJECTION_FORMS}")
    i, j = r.array(e["i"]).astype(np.int64), r.array(e["j"]).astype(np.int64)
    w = quantities.decode(e["w"], r, f"{where}, weights")
    w = w * np.ones(len(i)) if np.ndim(w) == 0 else w  # an empty projection's weights may be stored as a scalar
    if not (len(i) == len(j) == len(w)):
        raise NetworkFileError(f"{r.where}: {where}: i, j and w have different lengths ({len(i)}, {len(j)}, "
                               f"{len(w)})")
    return MappedProjection(e["source"], i, j, w)


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
            if len(q.i) and (q.i.min() < 0 or q.i.max() >= n_src or q.j.min() < 0 or q.j.max() >= p.size):
                raise NetworkFileError(f"{r.where}: projection {q.source!r} -> {p.name!r} has indices outside its "
                                       f"populations ({n_src} -> {p.size} units)")


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
