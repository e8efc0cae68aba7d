"""Parameters a sweep can vary, declared as a table per level, and their values in canonical form.

A `Param` says what one sweep parameter is: a Brian2 quantity of fixed dimensions (with an optional
sign constraint), an integer, one of a set of choices, or a file (or one of a set of names); whether
it is structural (changes the
compiled shape, so points that differ in it never share a run) or a per-point value (a run_args
value, so any number of points share one compiled run).

`parse_value` turns what a user wrote (``"100 pF"`` in TOML, ``100*pF`` in Python) into a checked
value, and `canonical` into the plain JSON value a point's config and its hash are made of: a
quantity in SI base units, rounded to 12 significant digits so that ``"0.1 nF"`` and ``"100 pF"``
are the same point.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from brian2 import Quantity
from brian2.units.fundamentalunits import DIMENSIONLESS, Dimension, get_dimensions, get_unit

from ..errors import BioconvError
from ..units import parse_unit


class SweepSpecError(BioconvError, ValueError):
    """A sweep specification is malformed: the message names the parameter, axis or point at fault."""


@dataclass(frozen=True)
class Param:
    """One sweep parameter. ``dim``: the dimensions of a quantity (None for an integer or a choice);
    ``kind``: ``"quantity"``, ``"int"``, ``"choice"`` or ``"path"`` (an existing file, or one of
    ``choices``: e.g. a zoo network's name); ``choices``: the allowed values of a choice;
    ``structural``: whether it shapes the compiled project; ``constraint``: ``"positive"``,
    ``"nonnegative"`` or None."""

    name: str
    kind: str
    dim: Dimension | None = None
    choices: tuple = ()
    structural: bool = False
    constraint: str | None = None
    default: object = None
    description: str = ""

    @property
    def unit(self) -> str:
        """The SI unit canonical values are expressed in, by name (``"farad"``; ``"1"`` for a number):
        what `bioconv.units.parse_unit` reads back."""
        if self.kind != "quantity" or self.dim is DIMENSIONLESS:
            return "1"
        return repr(get_unit(self.dim))


_NUMBER = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*(.*?)\s*$")


def parse_value(param: Param, value, where: str, root=None):
    """``value`` as ``param`` takes it: a Brian2 quantity of the right dimensions (from a Quantity or a
    string such as ``"100 pF"``), an int, one of the choices, or the absolute path of an existing
    file (a relative one read from ``root``, default the working directory). Raises
    `SweepSpecError` naming ``where`` (the axis or point) and the parameter."""
    name = f"{where}: parameter {param.name!r}"
    if param.kind == "path":
        return _parse_path(param, value, name, root)
    if param.kind == "choice":
        if not isinstance(value, str) or value not in param.choices:
            raise SweepSpecError(f"{name}: {value!r} is not supported; choose one of {list(param.choices)}")
        return value
    if param.kind == "int":
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise SweepSpecError(f"{name} takes an integer, got {value!r}")
        if param.constraint == "positive" and value <= 0 or param.constraint == "nonnegative" and value < 0:
            raise SweepSpecError(f"{name} must be {param.constraint}, got {value!r}")
        return int(value)
    # a quantity
    if isinstance(value, str):
        m = _NUMBER.match(value)
        if m is None:
            raise SweepSpecError(f"{name}: cannot read {value!r} as a number with units such as '100 pF'")
        number, unit_text = float(m.group(1)), m.group(2)
        if not unit_text and param.dim is not DIMENSIONLESS:
            raise SweepSpecError(f"{name} needs units of {param.unit}, got the unit-less value {value!r}")
        try:
            # "s" is not a Brian2 unit name (second is), but it is how people write seconds
            q = number * parse_unit(re.sub(r"\bs\b", "second", unit_text) or "1")
        except ValueError as err:
            raise SweepSpecError(f"{name}: {err}") from None
    elif isinstance(value, Quantity):
        q = value
    elif isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
        if param.dim is not DIMENSIONLESS:
            raise SweepSpecError(f"{name} needs units of {param.unit}, got the unit-less value {value!r}")
        q = Quantity(float(value))
    else:
        raise SweepSpecError(f"{name}: {value!r} is neither a Brian2 quantity nor a string such as '100 pF'")
    if np.ndim(q) != 0:
        raise SweepSpecError(f"{name} takes one value per point, got {value!r}")
    if get_dimensions(q) is not param.dim:
        raise SweepSpecError(f"{name} needs units of {param.unit}, got {value!r} (units of "
                             f"{get_unit(get_dimensions(q))!r})")
    x = float(np.asarray(q))
    if not np.isfinite(x):
        raise SweepSpecError(f"{name} must be finite, got {value!r}")
    if param.constraint == "positive" and x <= 0 or param.constraint == "nonnegative" and x < 0:
        raise SweepSpecError(f"{name} must be {param.constraint}, got {value!r}")
    return Quantity(x, dim=param.dim)


def _parse_path(param: Param, value, name: str, root) -> str:
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    names = f" or one of {list(param.choices)}" if param.choices else ""
    if not isinstance(value, str) or not value.strip():
        raise SweepSpecError(f"{name} takes the path of a file{names}, got {value!r}")
    if value in param.choices:
        return value
    path = Path(value).expanduser()
    if not path.is_absolute() and root is not None:
        path = Path(root) / path
    if not path.is_file():
        raise SweepSpecError(f"{name}: file {str(path)!r} does not exist" +
                             (f" (nor is {value!r} one of {list(param.choices)})" if param.choices else ""))
    # absolute: a Dask worker runs elsewhere, in another working directory
    return str(path.resolve())


def canonical(param: Param, value):
    """The JSON value of a checked ``value`` in a point's canonical config (SI base units, 12
    significant digits)."""
    if param.kind == "quantity":
        return float(f"{float(np.asarray(value)):.12g}")
    return value


def as_quantity(param: Param, canonical_value):
    """A canonical value back as what the level's code takes: a Quantity, an int or a string."""
    if param.kind == "quantity":
        return Quantity(float(canonical_value), dim=param.dim)
    return canonical_value


def values_of(axis_values, where: str) -> list:
    """The values of one axis or list as a Python list: a Quantity array becomes its elements, a
    scalar a single value."""
    if isinstance(axis_values, Quantity):
        return [axis_values] if np.ndim(axis_values) == 0 else list(axis_values)
    if isinstance(axis_values, (list, tuple, np.ndarray)):
        return list(axis_values)
    raise SweepSpecError(f"{where}: expected a list of values, got {axis_values!r}")
