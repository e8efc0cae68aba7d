"""A sweep specification: which points to evaluate, at which level, grouped into tasks by shape.

Three designs, in Python or TOML (`Spec.from_toml`):
- ``grid``: every combination of the axes' values;
- ``random``: ``n`` points drawn with ``seed``, each axis a range (``(low, high)`` in Python,
  ``{low = "50 pF", high = "400 pF", log = false}`` in TOML, uniform or log-uniform) or a list of
  choices;
- ``list``: the points given one by one.
``fixed`` holds values shared by every point. Quantities are Brian2 quantities in Python and strings
such as ``"100 pF"`` in TOML; structural values (``dt``, ``T``, ``reset``, the neuron model, ...)
are parameters like any other, and points are grouped by them, so that each shape compiles once.
A file (a saved network, a data set) is a path: a relative one is read from ``root`` (the TOML
file's folder for `Spec.from_toml`, else the working directory) and kept as an absolute path.

Every point becomes a *canonical config* (each parameter of its level, defaults filled in, in SI
base units) and a ``config_hash`` of it: the key of its row in the results store.
Validation happens here, at the door, and names the culprit (`SweepSpecError`): an unknown
parameter, a value without units or with the wrong ones, an empty axis or design, an unsupported
structural value, an invalid combination of values.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import level as levels
from .params import Param, SweepSpecError, canonical, values_of
from .params import parse_value as parse

DESIGNS = ("grid", "random", "list")


def config_hash(config: dict) -> str:
    """A point's key: sha256 of its canonical config as sorted JSON (16 hex digits)."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Task:
    """Points of one shape evaluated together (one compiled run at the neuron level). ``size``: the
    points the compiled project holds (fixed per shape, so that every task of it reuses one project)."""

    level: str
    structure: dict
    configs: list
    hashes: list
    size: int
    names: tuple = ()  # every per-point parameter named by some point of this shape (all its tasks)

    @property
    def task_id(self) -> str:
        return hashlib.sha256(",".join(sorted(self.hashes)).encode()).hexdigest()[:16]


@dataclass(frozen=True, eq=False)
class Spec:
    """A validated sweep specification (see the module's docstring). Exactly one of ``grid``,
    ``random`` (with ``n`` and ``seed``) and ``points`` is given. ``points_per_task``: points per
    Dask task (None: the level's `Level.default_points_per_task`, e.g. 10^4 neurons at the neuron
    level; see `tasks`)."""

    level: str
    grid: dict | None = None
    random: dict | None = None
    points: list | None = None
    fixed: dict = field(default_factory=dict)
    n: int | None = None
    seed: int | None = None
    points_per_task: int | None = None
    name: str = "sweep"
    root: str | None = None  # the folder relative file paths are read from (None: the working directory)

    def __post_init__(self):
        given = [d for d in DESIGNS if self._design_value(d) is not None]
        if len(given) != 1:
            raise SweepSpecError(f"sweep {self.name!r}: give exactly one design of {list(DESIGNS)}, got {given or 'none'}")
        if self.points_per_task is not None and (isinstance(self.points_per_task, bool) or
                                                 not isinstance(self.points_per_task, int) or self.points_per_task < 1):
            raise SweepSpecError(f"sweep {self.name!r}: points_per_task must be a positive integer, got "
                                 f"{self.points_per_task!r}")
        level = levels.get(self.level)
        configs, structures = _resolve(self, level, given[0])
        object.__setattr__(self, "_configs", configs)
        object.__setattr__(self, "_structures", structures)
        object.__setattr__(self, "_hashes", [config_hash(c) for c in configs])

    def _design_value(self, design):
        return {"grid": self.grid, "random": self.random, "list": self.points}[design]

    @property
    def design(self) -> str:
        return next(d for d in DESIGNS if self._design_value(d) is not None)

    # --- construction --------------------------------------------------------------------------
    @classmethod
    def from_toml(cls, path) -> "Spec":
        """Read a spec from a TOML file (see studies/sweep_membrane/config.toml)."""
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as err:
            raise SweepSpecError(f"sweep config {str(path)!r}: {err}") from None
        return cls.from_dict(data, where=str(path), root=str(path.resolve().parent))

    @classmethod
    def from_dict(cls, data: dict, where: str = "sweep config", root=None) -> "Spec":
        """A spec from a TOML-like dict; ``root``: the folder relative file paths are read from."""
        data = dict(data)
        known = {"name", "level", "grid", "random", "points", "fixed", "points_per_task"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise SweepSpecError(f"{where}: unknown key(s) {unknown}; known: {sorted(known)}")
        if "level" not in data:
            raise SweepSpecError(f"{where}: no 'level' (\"neuron\", \"network\" or \"module:attribute\")")
        random = data.get("random")
        n = seed = None
        if random is not None:
            random = dict(random)
            n, seed = random.pop("n", None), random.pop("seed", None)
            random = {k: (_range_from_toml(k, v, where) if isinstance(v, dict) else v) for k, v in random.items()}
        return cls(level=data["level"], grid=data.get("grid"), random=random, points=data.get("points"),
                   fixed=data.get("fixed", {}), n=n, seed=seed, points_per_task=data.get("points_per_task"),
                   name=data.get("name", Path(where).parent.name if where.endswith(".toml") else "sweep"),
                   root=None if root is None else str(root))

    # --- what it holds -------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._configs)

    @property
    def configs(self) -> list[dict]:
        """The canonical config of every point, in the design's order."""
        return self._configs

    @property
    def hashes(self) -> list[str]:
        return self._hashes

    def task_size(self, structure: dict, n_points: int, workers: int | None = None) -> int:
        """Points per task for a shape of ``n_points`` points: ``points_per_task`` if given, else the
        level's default, lowered so that ``workers`` workers get a task each when there are enough
        points. Computed from the shape's whole point count (not the points left), so that a resumed
        sweep keeps the same size (and, at the neuron level, the same compiled project)."""
        if self.points_per_task is not None:
            return min(self.points_per_task, n_points)
        size = min(int(levels.get(self.level).default_points_per_task(structure)), n_points)
        if workers:
            size = min(size, -(-n_points // int(workers)))
        return max(1, size)

    def tasks(self, done: set[str] = frozenset(), workers: int | None = None) -> list[Task]:
        """The points whose hash is not in ``done``, as tasks: grouped by shape, at most
        `task_size` points each. Every task of a shape carries the shape's ``names`` (every
        per-point parameter some point of the shape names), so that a point's result does not depend
        on which other points share its task. A shape's points are dealt out to its tasks in turn
        (task t of n holds points t, t + n, ...): neighbouring points of a design, which tend to
        cost alike (a grid's region of low Cm fires more), spread over the tasks, so that tasks that
        run side by side end together."""
        out = []
        for structure, idx in self._structures:
            size = self.task_size(structure, len(idx), workers)
            names = tuple(sorted({k for i in idx for k in self._configs[i]} - set(structure) - {"level"}))
            left = [i for i in idx if self._hashes[i] not in done]
            n_tasks = -(-len(left) // size)
            for t in range(n_tasks):
                part = left[t::n_tasks]
                out.append(Task(self.level, structure, [self._configs[i] for i in part],
                                [self._hashes[i] for i in part], size, names))
        return out

    @property
    def spec_hash(self) -> str:
        """The identity of the point set (level and every point's config_hash), recorded in a store."""
        return hashlib.sha256((self.level + ":" + ",".join(sorted(self._hashes))).encode()).hexdigest()[:16]

    def describe(self) -> dict:
        """The spec as JSON-able data (quantities as text), recorded beside its results."""
        def text(v):
            if isinstance(v, dict):
                return {k: text(x) for k, x in v.items()}
            if isinstance(v, (list, tuple)):
                return [text(x) for x in v]
            if hasattr(v, "dim") and np.ndim(v) > 0:
                return [str(x) for x in v]
            return v if isinstance(v, (str, int, float, bool, type(None))) else str(v)
        return {"name": self.name, "level": self.level, "design": self.design, "grid": text(self.grid),
                "random": text(self.random), "n": self.n, "seed": self.seed, "points": text(self.points),
                "fixed": text(self.fixed), "points_per_task": self.points_per_task, "n_points": len(self),
                "root": self.root}


def _range_from_toml(name, value: dict, where) -> tuple:
    extra = sorted(set(value) - {"low", "high", "log"})
    if extra or "low" not in value or "high" not in value:
        raise SweepSpecError(f"{where}: random axis {name!r} takes {{low, high, log}}, got {value!r}")
    return (value["low"], value["high"], bool(value.get("log", False)))


# ------------------------------------------------------------------------------------------ resolve
def _resolve(spec: Spec, level: levels.Level, design: str):
    """Canonical configs of every point, and [(structure, point indices)] by shape."""
    structural = level.structural()
    where = f"sweep {spec.name!r}"
    fixed = dict(spec.fixed or {})

    def parse_value(param, value, at):  # files relative to the spec's root
        return parse(param, value, at, root=spec.root)
    if design == "grid":
        axes = dict(spec.grid)
        if not axes:
            raise SweepSpecError(f"{where}: the grid has no axes")
        for name, values in axes.items():
            if len(values_of(values, f"{where}: grid axis {name!r}")) == 0:
                raise SweepSpecError(f"{where}: grid axis {name!r} is empty")
        names = list(axes)
    elif design == "random":
        axes = dict(spec.random)
        if not axes:
            raise SweepSpecError(f"{where}: the random design has no axes")
        if isinstance(spec.n, bool) or not isinstance(spec.n, int) or spec.n < 1:
            raise SweepSpecError(f"{where}: a random design needs n, a positive number of points, got {spec.n!r}")
        if isinstance(spec.seed, bool) or not isinstance(spec.seed, int):
            raise SweepSpecError(f"{where}: a random design needs an integer seed, got {spec.seed!r}")
        names = list(axes)
    else:
        points = list(spec.points)
        if not points:
            raise SweepSpecError(f"{where}: the list of points is empty")
        for k, p in enumerate(points):
            if not isinstance(p, dict):
                raise SweepSpecError(f"{where}: point {k} is not a table of parameter values: {p!r}")
        names = list(dict.fromkeys(name for p in points for name in p))
    both = sorted(set(names) & set(fixed))
    if both:
        raise SweepSpecError(f"{where}: parameter(s) {both} are both fixed and varied")

    # Structural columns first: they decide which point parameters exist (e.g. the neuron model's).
    n_points = {"grid": None, "random": spec.n, "list": len(spec.points or [])}[design]
    rng = np.random.default_rng(spec.seed) if design == "random" else None
    grid_values = {}
    if design == "grid":
        grid_values = {name: values_of(axes[name], f"{where}: grid axis {name!r}") for name in names}
        n_points = int(np.prod([len(v) for v in grid_values.values()]))
        shape = [len(grid_values[name]) for name in names]
        grid_index = dict(zip(names, (ix.ravel() for ix in np.indices(shape))))
    # random draws in sorted name order, so that adding an axis's description order does not move them
    draws = {}
    if design == "random":
        for name in sorted(names):
            draws[name] = _draw(axes[name], name, n_points, rng, where)

    def column(name: str, param: Param) -> np.ndarray:
        """The canonical values of parameter ``name`` for every point (None where a list point omits it)."""
        if name in fixed:
            v = canonical(param, parse_value(param, fixed[name], f"{where}: fixed"))
            return np.array([v] * n_points, dtype=object)
        if design == "grid":
            vals = [canonical(param, parse_value(param, v, f"{where}: grid axis {name!r}")) for v in grid_values[name]]
            return np.array(vals, dtype=object)[grid_index[name]]
        if design == "random":
            kind, a, u = draws[name]
            if kind == "range":
                low, high, log = a
                low = canonical(param, parse_value(param, low, f"{where}: random axis {name!r} (low)"))
                high = canonical(param, parse_value(param, high, f"{where}: random axis {name!r} (high)"))
                if param.kind != "quantity":
                    raise SweepSpecError(f"{where}: random axis {name!r}: a range needs a quantity; give a list "
                                         f"of choices for {param.kind} parameters")
                if not low < high:
                    raise SweepSpecError(f"{where}: random axis {name!r}: low must lie below high, got {a[:2]}")
                if log and low <= 0:
                    raise SweepSpecError(f"{where}: random axis {name!r}: a log-uniform range needs low > 0")
                x = np.exp(np.log(low) + u * (np.log(high) - np.log(low))) if log else low + u * (high - low)
                return np.array([float(f"{v:.12g}") for v in x], dtype=object)
            choices, pick = a, u
            vals = [canonical(param, parse_value(param, v, f"{where}: random axis {name!r}")) for v in choices]
            return np.array(vals, dtype=object)[pick]
        out = np.empty(n_points, dtype=object)
        for k, p in enumerate(spec.points):
            if name in p:
                out[k] = canonical(param, parse_value(param, p[name], f"{where}: point {k}"))
        return out

    given = set(names) | set(fixed)
    cols = {}
    for name, param in structural.items():
        # A structural default of None means "not set": the level decides, and the value stays out
        # of the point's config (so that adding an option to a level keeps existing configs' hashes).
        default = None if param.default is None else canonical(param, parse_value(param, param.default,
                                                                                    f"{where}: default"))
        if name in given:
            cols[name] = column(name, param)
        else:
            cols[name] = np.array([default] * n_points, dtype=object)
        missing = [k for k, v in enumerate(cols[name]) if v is None]
        if missing:  # a list point without a structural value: the default
            cols[name][missing] = default

    keys = list(zip(*(cols[name] for name in structural))) if structural else [()] * n_points
    # the level completes each shape (values it decides, identities of files) once; shapes that
    # complete alike are one shape
    completed = {key: level.complete(dict(zip(structural, key)), f"{where} (shape {_show(dict(zip(structural, key)))})")
                 for key in dict.fromkeys(keys)}
    shapes: dict[str, tuple[dict, list[int]]] = {}
    for k, key in enumerate(keys):
        structure = completed[key]
        shapes.setdefault(json.dumps(structure, sort_keys=True), (structure, []))[1].append(k)

    configs: list[dict | None] = [None] * n_points
    out_structures = []
    for structure, idx in shapes.values():
        params = level.parameters(structure)
        shape_where = f"{where} (shape {_show(structure)})"
        unknown = sorted(n for n in given if n not in structural and n not in params)
        if unknown:
            raise SweepSpecError(f"{shape_where}: unknown parameter(s) {unknown} for level {spec.level!r}; "
                                 f"sweepable: {sorted(params)}, structural: {sorted(structural)}")
        sub = {}
        idx_arr = np.asarray(idx)
        for name, param in params.items():
            if param.default is None and name not in given:
                continue  # the level's own value (e.g. the mapping's), not part of the config
            default = None if param.default is None else canonical(
                param, parse_value(param, param.default, f"{shape_where}: default"))
            if name in given:
                full = cols.setdefault(("point", name), column(name, param))
                vals = full[idx_arr]
                vals = np.array([default if v is None else v for v in vals], dtype=object)
            else:
                vals = np.array([default] * len(idx), dtype=object)
            sub[name] = vals
        arrays = {name: np.asarray(list(v)) for name, v in sub.items() if not any(x is None for x in v)}
        bad = level.check(structure, arrays)
        if bad is not None and np.any(bad):
            first = int(np.flatnonzero(bad)[0])
            shown = {name: sub[name][first] for name in sorted(sub)}
            raise SweepSpecError(f"{shape_where}: invalid combination at point {idx[first]} "
                                 f"({int(np.sum(bad))} point(s) in all): {level.reason(structure, arrays)}; "
                                 f"values (SI) {shown}")
        for j, k in enumerate(idx):
            c = {"level": spec.level}
            c.update({k: v for k, v in structure.items() if v is not None})
            c.update({name: _plain(sub[name][j]) for name in sub if sub[name][j] is not None})
            configs[k] = c
        out_structures.append((structure, idx))
    if n_points == 0:
        raise SweepSpecError(f"{where}: the design has no points")
    return configs, out_structures


def _draw(axis, name, n, rng, where):
    """('range', (low, high, log), u) with uniform draws u, or ('choices', values, picks)."""
    if isinstance(axis, tuple):
        if len(axis) not in (2, 3):
            raise SweepSpecError(f"{where}: random axis {name!r}: a range is (low, high) or (low, high, log)")
        low, high, log = (axis + (False,))[:3]
        return "range", (low, high, bool(log)), rng.uniform(size=n)
    if isinstance(axis, dict):
        return _draw(_range_from_toml(name, axis, where), name, n, rng, where)
    choices = values_of(axis, f"{where}: random axis {name!r}")
    if not choices:
        raise SweepSpecError(f"{where}: random axis {name!r} has no choices")
    return "choices", choices, rng.integers(len(choices), size=n)


def _plain(v):
    """numpy scalars to Python ones, for JSON."""
    return v.item() if isinstance(v, np.generic) else v


def _show(structure: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in structure.items())
