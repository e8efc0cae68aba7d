"""The model library: read the TOML files in equations/ into checked, immutable model records.

A model file is data, not code. Loading one parses every field, turns parameter defaults into
Brian2 quantities and checks, with Brian2's own unit checker, that each equation, threshold,
reset and on-spike statement is dimensionally consistent. Any problem raises `ModelError`
naming the model file and the field.

Besides continuous-time models (differential equations integrated by Brian2), a neuron can be a
discrete-step model: a ``step`` field holds statements applied once per time step (dt = one step of
the model, e.g. a coding step of CSS coding), and its equations declare only plain state variables
and subexpressions. A neuron can also declare events besides the spike (``[events.NAME]``, e.g. the
negative spike of a TSA neuron) with their condition and reset, and a synapse says what a
presynaptic event does (``[on_event]``) and which neuron it is written for (``host``).
"""
from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType

from brian2 import Equations, Quantity, second
from brian2.core.functions import DEFAULT_FUNCTIONS
from brian2.core.namespace import DEFAULT_CONSTANTS, DEFAULT_UNITS
from brian2.core.variables import Constant
from brian2.equations.equations import DIFFERENTIAL_EQUATION, SUBEXPRESSION
from brian2.equations.unitcheck import check_dimensions, check_units_statements
from brian2.units.fundamentalunits import DIMENSIONLESS, DimensionMismatchError, get_unit

from ..errors import ModelError
from ..units import parse_unit

#: The repository's model library; more folders can be added with the BIOCONV_EQUATIONS variable
#: (os.pathsep-separated), searched first.
LIBRARY_DIR = Path(__file__).resolve().parents[2] / "equations"

NEURON_KINDS = ("neuron",)
SYNAPSE_KINDS = ("synapse",)
KERNELS = ("delta", "exponential", "alpha", "step")
CONSTRAINTS = ("", "positive", "nonnegative")


@dataclass(frozen=True)
class Parameter:
    """A model parameter: its default value (a Brian2 quantity) and what it means."""

    name: str
    default: Quantity
    unit: str
    description: str = ""
    constraint: str = ""  # "", "positive" or "nonnegative"

    @property
    def dim(self):
        return self.default.dim


@dataclass(frozen=True)
class NeuronOption:
    """An optional extension of a neuron model (e.g. the homeostatic threshold)."""

    name: str
    description: str
    seed: str
    equations: str
    threshold_value: str | None
    on_spike: str
    initial: MappingProxyType
    parameters: MappingProxyType
    # A spike condition replacing the model's (e.g. a windowed or an infinite threshold); None: keep it.
    threshold: str | None = None
    # Conditions replacing those of the model's events (event name -> condition).
    events: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class Event:
    """An event of a neuron model besides the spike (e.g. a negative spike): when it happens and the
    statements it runs on the neuron (like a reset)."""

    name: str
    condition: str
    reset: str = ""


@dataclass(frozen=True)
class NeuronModel:
    """A neuron model from equations/. Build it into Brian2 with `bioconv.models.neuron_group`."""

    name: str
    path: Path
    description: str
    seed: str
    method: tuple[str, ...]
    equations: str
    threshold_value: str
    threshold: str
    refractory: str
    resets: MappingProxyType
    initial: MappingProxyType
    parameters: MappingProxyType
    options: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    kind: str = "neuron"
    # Discrete-step models: statements applied once per time step (empty: a continuous-time model).
    step: str = ""
    # Events besides the spike, by name (`Event`).
    events: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))

    @property
    def discrete(self) -> bool:
        return bool(self.step)


@dataclass(frozen=True)
class SynapseModel:
    """A synaptic kernel from equations/: states held in the postsynaptic neuron, `on_pre` per spike."""

    name: str
    path: Path
    description: str
    seed: str
    kernel: str
    conductance: bool
    weight_unit: str
    neuron_equations: str
    on_pre: str
    method: tuple[str, ...] | None
    parameters: MappingProxyType
    kind: str = "synapse"
    # The same jump for targets that are never refractory (tau_ref = 0 everywhere), where the
    # refractoriness test of `on_pre` always passes: cheaper per spike. None: use `on_pre`.
    on_pre_without_refractoriness: str | None = None
    # What a presynaptic event besides the spike does (event name -> statements), e.g. a negative spike.
    on_event: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    # The library neuron the synapse is written for, against which its statements are checked.
    host: str = "conductance_lif"

    @property
    def weight_dim(self):
        return parse_unit(self.weight_unit).dim


def search_path() -> list[Path]:
    """Folders searched for model files, first match wins."""
    extra = [Path(p) for p in os.environ.get("BIOCONV_EQUATIONS", "").split(os.pathsep) if p]
    return extra + [LIBRARY_DIR]


def available(kind: str | None = None) -> list[str]:
    """Names of the models in the library, optionally only ``kind`` ('neuron' or 'synapse')."""
    names = {}
    for folder in search_path():
        for path in sorted(folder.glob("*.toml")):
            names.setdefault(path.stem, path)
    if kind is None:
        return sorted(names)
    if kind not in NEURON_KINDS + SYNAPSE_KINDS:
        raise ValueError(f"kind must be 'neuron' or 'synapse', got {kind!r}")
    return sorted(n for n, p in names.items() if _read_toml(p).get("kind") == kind)


def load(name_or_path: str | os.PathLike) -> NeuronModel | SynapseModel:
    """Load a model by library name (e.g. ``"conductance_lif"``) or by the path of a .toml file."""
    path = _resolve(name_or_path)
    return _load_path(path, path.stat().st_mtime_ns)


def _resolve(name_or_path) -> Path:
    candidate = Path(name_or_path)
    if candidate.suffix == ".toml":
        if not candidate.is_file():
            raise ModelError(f"model file {str(candidate)!r} does not exist")
        return candidate.resolve()
    for folder in search_path():
        path = folder / f"{name_or_path}.toml"
        if path.is_file():
            return path.resolve()
    raise ModelError(f"unknown model {str(name_or_path)!r}; available: {', '.join(available())}")


def _read_toml(path: Path) -> dict:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as err:
        raise ModelError(f"model file {str(path)!r} is not valid TOML: {err}") from None


@lru_cache(maxsize=None)
def _load_path(path: Path, _mtime: int) -> NeuronModel | SynapseModel:
    data = _read_toml(path)
    reader = _Fields(data, f"model {path.stem!r} ({path})")
    kind = reader.text("kind")
    if kind in NEURON_KINDS:
        model = _neuron_from(reader, path)
    elif kind in SYNAPSE_KINDS:
        model = _synapse_from(reader, path)
    else:
        raise ModelError(f"{reader.where}: field 'kind' must be 'neuron' or 'synapse', got {kind!r}")
    if reader.text("name") != path.stem:
        raise ModelError(f"{reader.where}: field 'name' ({reader.text('name')!r}) must match the file name "
                         f"({path.stem!r})")
    check_model_units(model)
    return model


class _Fields:
    """Typed access to a model file's fields; errors name the model and the field."""

    def __init__(self, data: dict, where: str, prefix: str = ""):
        self.data, self.where, self.prefix = data, where, prefix

    def _fail(self, key, what):
        raise ModelError(f"{self.where}: field '{self.prefix}{key}' {what}")

    def text(self, key, default=...):
        if key not in self.data:
            if default is ...:
                self._fail(key, "is missing")
            return default
        value = self.data[key]
        if not isinstance(value, str):
            self._fail(key, f"must be a string, got {type(value).__name__}")
        return value.strip()

    def table(self, key, default=...):
        if key not in self.data:
            if default is ...:
                self._fail(key, "is missing")
            return default
        value = self.data[key]
        if not isinstance(value, dict):
            self._fail(key, f"must be a table, got {type(value).__name__}")
        return value

    def methods(self, key, default):
        """Integration method(s): a Brian2 method name, or a list tried in order."""
        value = self.data.get(key, default)
        if isinstance(value, str):
            value = [value]
        if value is not None and (not value or not all(isinstance(m, str) for m in value)):
            self._fail(key, f"must be a method name or a list of method names, got {value!r}")
        return None if value is None else tuple(value)

    def flag(self, key, default):
        value = self.data.get(key, default)
        if not isinstance(value, bool):
            self._fail(key, f"must be true or false, got {value!r}")
        return value

    def sub(self, key):
        return _Fields(self.table(key), self.where, f"{self.prefix}{key}.")

    def parameters(self, key="parameters") -> MappingProxyType:
        params = {}
        for pname, spec in self.table(key, {}).items():
            label = f"{key}.{pname}"
            if not isinstance(spec, dict) or "value" not in spec or "unit" not in spec:
                self._fail(label, "must be a table with 'value' and 'unit'")
            if not isinstance(spec["value"], (int, float)) or isinstance(spec["value"], bool):
                self._fail(f"{label}.value", f"must be a number, got {spec['value']!r}")
            try:
                unit = parse_unit(spec["unit"])
            except ValueError as err:
                self._fail(f"{label}.unit", f"is not a Brian2 unit: {err}")
            constraint = spec.get("constraint", "")
            if constraint not in CONSTRAINTS:
                self._fail(f"{label}.constraint", f"must be one of {CONSTRAINTS}, got {constraint!r}")
            # Quantity(): a dimensionless product is a plain float, which has no .dim
            params[pname] = Parameter(pname, Quantity(float(spec["value"]) * unit), str(spec["unit"]),
                                      str(spec.get("description", "")), constraint)
        return MappingProxyType(params)

    def strings(self, key, default=...) -> MappingProxyType:
        table = self.table(key, {} if default is ... else default)
        for k, v in table.items():
            if not isinstance(v, str):
                self._fail(f"{key}.{k}", f"must be a string, got {v!r}")
        return MappingProxyType(dict(table))


def _neuron_from(f: _Fields, path: Path) -> NeuronModel:
    resets = f.strings("reset")
    if not resets:
        f._fail("reset", "must define at least one reset mode (e.g. linear, value)")
    step = f.text("step", "")
    events = {}
    for ename in f.table("events", {}):
        _check_event_name(f, "events", ename)
        e = f.sub("events").sub(ename)
        events[ename] = Event(ename, e.text("condition"), e.text("reset", ""))
    options = {}
    for oname in f.table("options", {}):
        o = f.sub("options").sub(oname)
        overrides = o.strings("events", {})
        for ename in overrides:
            if ename not in events:
                o._fail(f"events.{ename}", f"names no event of the model (its events: {sorted(events) or 'none'})")
        options[oname] = NeuronOption(
            name=oname, description=o.text("description", ""), seed=o.text("seed", ""),
            equations=o.text("equations", ""), threshold_value=o.text("threshold_value", None),
            on_spike=o.text("on_spike", ""), initial=o.strings("initial", {}),
            parameters=o.parameters(), threshold=o.text("threshold", None), events=overrides)
    # A discrete-step model has no refractory period unless it declares one.
    return NeuronModel(
        name=f.text("name"), path=path, description=f.text("description"), seed=f.text("seed"),
        method=f.methods("method", ("exact",)), equations=f.text("equations"),
        threshold_value=f.text("threshold_value"), threshold=f.text("threshold"),
        refractory=f.text("refractory", "" if step else ...), resets=resets, initial=f.strings("initial", {}),
        parameters=f.parameters(), options=MappingProxyType(options), step=step,
        events=MappingProxyType(events))


def _check_event_name(f: _Fields, key: str, name: str) -> None:
    if not name.isidentifier() or name == "spike":
        f._fail(f"{key}.{name}", "must be a name (letters, digits, _) other than 'spike' (the spike is the "
                                 "model's threshold and reset)")


def _synapse_from(f: _Fields, path: Path) -> SynapseModel:
    kernel = f.text("kernel")
    if kernel not in KERNELS:
        f._fail("kernel", f"must be one of {KERNELS}, got {kernel!r}")
    weight_unit = f.text("weight_unit")
    try:
        parse_unit(weight_unit)
    except ValueError as err:
        f._fail("weight_unit", f"is not a Brian2 unit: {err}")
    on_event = f.strings("on_event", {})
    for ename in on_event:
        _check_event_name(f, "on_event", ename)
    return SynapseModel(
        name=f.text("name"), path=path, description=f.text("description"), seed=f.text("seed"),
        kernel=kernel, conductance=f.flag("conductance", False), weight_unit=weight_unit,
        neuron_equations=f.text("neuron_equations"), on_pre=f.text("on_pre"),
        method=f.methods("method", None), parameters=f.parameters(),
        on_pre_without_refractoriness=f.text("on_pre_without_refractoriness", None),
        on_event=on_event, host=f.text("host", "conductance_lif"))


# --- unit checking -------------------------------------------------------------------------------

# A stand-in synapse used to check a neuron model on its own: no synaptic current.
_NO_SYNAPSE = "I_syn = 0*amp : amp"


def compose_equations(neuron: NeuronModel, synapse: SynapseModel | None = None,
                      options: tuple[str, ...] = (), *, flags: str = "constant",
                      shared: tuple[str, ...] = (), never_refractory: bool = False) -> Equations:
    """The full Brian2 equations of a neuron with its synaptic kernel and options.

    Parameters become per-neuron ``(constant)`` variables, so one group can hold many parameter
    points (vectorized sweeps) and they can be changed between standalone runs with run_args.
    Those named in ``shared`` become one value for the whole group ``(constant, shared)``: the
    generated code then reads them once per step instead of once per neuron.
    ``never_refractory``: the group has no refractory period, so Brian2's ``not_refractory`` flag is
    the constant True in the equations (the group is then built without the refractory mechanism).
    """
    threshold_value = neuron.threshold_value
    parts = [neuron.equations, synapse.neuron_equations if synapse else _NO_SYNAPSE]
    params = dict(neuron.parameters)
    for oname in options:
        opt = neuron.options[oname]
        parts.append(opt.equations)
        threshold_value = opt.threshold_value or threshold_value
        params.update(opt.parameters)
    if synapse is not None:
        params.update(synapse.parameters)
    # The effective threshold `vt` is compared with the membrane potential, so it takes v's unit.
    v_unit = _base_unit(Equations(neuron.equations).dimensions["v"])
    parts.append(f"vt = {threshold_value} : {v_unit}")
    if never_refractory:
        # int(True) would reach sympy as a function call the exact solver rejects: write 1 for it
        parts = [re.sub(r"\bnot_refractory\b", "True", re.sub(r"\bint\(\s*not_refractory\s*\)", "1", part))
                 for part in parts]
    unknown = set(shared) - set(params)
    if unknown:
        raise ModelError(f"model {neuron.name!r}: shared parameter(s) {sorted(unknown)} are not parameters; "
                         f"known: {sorted(params)}")
    for p in params.values():
        parts.append(f"{p.name} : {_base_unit(p.dim)} ({flags}{', shared' if p.name in shared else ''})")
    return Equations("\n".join(parts))


def _base_unit(dim) -> str:
    """Brian2 equations accept only base units ('farad', not 'pF')."""
    return "1" if dim is DIMENSIONLESS else repr(get_unit(dim))


def check_model_units(model: NeuronModel | SynapseModel) -> None:
    """Check every equation and statement of ``model`` with Brian2's unit checker."""
    where = f"model {model.name!r} ({model.path})"
    if isinstance(model, SynapseModel):
        # A synapse is checked attached to the reference membrane it is written for (its `host`).
        # Always the library's own membrane, whatever a user folder shadows it with.
        host_path = LIBRARY_DIR / f"{model.host}.toml"
        if not host_path.is_file() or _read_toml(host_path).get("kind") != "neuron":
            raise ModelError(f"{where}: field 'host' must name a neuron model of the library "
                             f"({LIBRARY_DIR}), got {model.host!r}")
        host = _load_path(host_path.resolve(), host_path.stat().st_mtime_ns)
        for ename in model.on_event:
            if ename not in host.events:
                raise ModelError(f"{where}: field 'on_event.{ename}': the host model {host.name!r} has no event "
                                 f"{ename!r} (its events: {sorted(host.events) or 'none'})")
        _check(host, model, (), where)
        return
    _check(model, None, (), where)
    for oname in model.options:
        _check(model, None, (oname,), f"{where}, option {oname!r}")


def _check(neuron: NeuronModel, synapse: SynapseModel | None, options, where: str) -> None:
    try:
        eqs = compose_equations(neuron, synapse, options)
    except Exception as err:  # Brian2 raises several types for malformed equations
        field_name = "neuron_equations" if synapse else "equations"
        raise ModelError(f"{where}: field '{field_name}' cannot be parsed: {err}") from None
    variables = _variables_for(eqs)
    if neuron.discrete and eqs.diff_eq_names:
        raise ModelError(f"{where}: field 'equations' has differential equations ({sorted(eqs.diff_eq_names)}); "
                         f"a discrete-step model (field 'step') updates its state in 'step' only")
    for name, eq in eqs.items():
        if eq.type == DIFFERENTIAL_EQUATION:
            expected = eqs.dimensions[name] / _second_dim()
        elif eq.type == SUBEXPRESSION:
            expected = eqs.dimensions[name]
        else:
            continue
        _guard(lambda: check_dimensions(str(eq.expr), expected, variables), where,
               "equations" if synapse is None else "neuron_equations", f"equation of {name!r}")
    threshold, threshold_field = neuron.threshold, "threshold"
    for o in options:
        if neuron.options[o].threshold is not None:
            threshold, threshold_field = neuron.options[o].threshold, f"options.{o}.threshold"
    _guard(lambda: check_dimensions(threshold, DIMENSIONLESS, variables), where, threshold_field, "")
    for mode, code in neuron.resets.items():
        code = "\n".join([code] + [neuron.options[o].on_spike for o in options if neuron.options[o].on_spike])
        _guard(lambda: check_units_statements(code, variables), where, f"reset.{mode}", "")
    if neuron.refractory:  # a discrete-step model may have none
        _guard(lambda: check_dimensions(neuron.refractory, _second_dim(), variables), where, "refractory", "")
    if neuron.step:
        _guard(lambda: check_units_statements(neuron.step, variables), where, "step", "")
    for ename, event in neuron.events.items():
        condition, condition_field = event.condition, f"events.{ename}.condition"
        for o in options:
            if ename in neuron.options[o].events:
                condition, condition_field = neuron.options[o].events[ename], f"options.{o}.events.{ename}"
        _guard(lambda: check_dimensions(condition, DIMENSIONLESS, variables), where, condition_field, "")
        if event.reset:
            _guard(lambda: check_units_statements(event.reset, variables), where, f"events.{ename}.reset", "")
    initial = dict(neuron.initial)
    for o in options:
        initial.update(neuron.options[o].initial)
    for var, expr in initial.items():
        if var not in eqs.dimensions:
            raise ModelError(f"{where}: field 'initial.{var}' names no state variable of the model")
        _guard(lambda: check_dimensions(expr, eqs.dimensions[var], variables), where, f"initial.{var}", "")
    if synapse is not None:
        syn_vars = {f"{k}_post": v for k, v in variables.items()
                    if k in eqs.names or k in ("not_refractory", "lastspike")}
        syn_vars.update({k: v for k, v in variables.items() if k not in eqs.names})
        syn_vars["w"] = Constant("w", 1.0, dimensions=synapse.weight_dim)
        _guard(lambda: check_units_statements(synapse.on_pre, syn_vars), where, "on_pre", "")
        if synapse.on_pre_without_refractoriness:
            _guard(lambda: check_units_statements(synapse.on_pre_without_refractoriness, syn_vars), where,
                   "on_pre_without_refractoriness", "")
        for ename, code in synapse.on_event.items():
            _guard(lambda: check_units_statements(code, syn_vars), where, f"on_event.{ename}", "")


def _variables_for(eqs: Equations) -> dict:
    variables = {name: Constant(name, 1.0, dimensions=dim) for name, dim in eqs.dimensions.items()}
    variables.update({name: Constant(name, float(q), dimensions=q.dim) for name, q in DEFAULT_UNITS.items()})
    variables.update({name: Constant(name, 1.0) for name in DEFAULT_CONSTANTS})  # pi, e, inf, ...
    variables.update(DEFAULT_FUNCTIONS)
    variables["t"] = Constant("t", 0.0, dimensions=_second_dim())
    variables["dt"] = Constant("dt", 1e-4, dimensions=_second_dim())
    variables["not_refractory"] = Constant("not_refractory", True)
    variables["lastspike"] = Constant("lastspike", 0.0, dimensions=_second_dim())
    return variables


def _second_dim():
    return second.dim


def _guard(check, where: str, field_name: str, what: str) -> None:
    try:
        check()
    except DimensionMismatchError as err:
        raise ModelError(f"{where}: field '{field_name}'{' (' + what + ')' if what else ''} is not "
                         f"unit-consistent: {err}") from None
    except (KeyError, SyntaxError, ValueError, AssertionError, TypeError) as err:
        raise ModelError(f"{where}: field '{field_name}'{' (' + what + ')' if what else ''} is malformed "
                         f"or uses an unknown name: {err}") from None
