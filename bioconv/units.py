"""Unit handling at the API's door: parse unit strings from model files, check quantities."""
from __future__ import annotations

import re

import numpy as np
from brian2 import Quantity
from brian2.core.namespace import DEFAULT_UNITS
from brian2.units import allunits
from brian2.units.fundamentalunits import DIMENSIONLESS, Dimension, get_dimensions, get_unit

from .errors import ParameterError

# Every unit Brian2 defines (DEFAULT_UNITS lacks some prefixed ones such as pC).
UNITS = {name: u for name, u in vars(allunits).items() if isinstance(u, Quantity)} | dict(DEFAULT_UNITS)

# A unit expression: unit names combined with *, / and integer powers, e.g. "mV*second", "nS", "1".
_UNIT_EXPR = re.compile(r"^[A-Za-z0-9_ */().^-]+$")


def parse_unit(text: str) -> Quantity:
    """Turn a unit string such as ``"pF"`` or ``"mV*second"`` into a Brian2 quantity of value 1.

    Only Brian2's unit names may appear; anything else raises ``ValueError`` naming the token.
    """
    text = str(text).strip()
    if text in ("", "1"):
        return Quantity(1.0)
    if not _UNIT_EXPR.match(text) or "__" in text:
        raise ValueError(f"not a unit expression: {text!r}")
    for token in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", text):
        if token not in UNITS:
            raise ValueError(f"unknown unit {token!r} in {text!r}")
    value = eval(text.replace("^", "**"), {"__builtins__": {}}, dict(UNITS))  # names checked above
    return Quantity(value)


def check_quantity(value, dimensions: Dimension, name: str, owner: str, *, nonnegative: bool = False,
                   positive: bool = False) -> Quantity:
    """Return ``value`` as a Quantity after checking its dimensions (and sign if asked).

    ``owner`` names where the parameter belongs (a model, a function), so the error tells the user
    which parameter of what is wrong. Plain numbers are accepted only for dimensionless parameters.
    """
    if value is None:
        raise ParameterError(f"{owner}: parameter {name!r} is missing")
    if get_dimensions(value) is DIMENSIONLESS and not isinstance(value, Quantity) and dimensions is not DIMENSIONLESS:
        raise ParameterError(
            f"{owner}: parameter {name!r} needs units of {_dim_str(dimensions)}, got the unit-less value {value!r}")
    q = Quantity(value, copy=False)
    if q.dim is not dimensions:
        raise ParameterError(
            f"{owner}: parameter {name!r} needs units of {_dim_str(dimensions)}, got {value!r} "
            f"({_dim_str(q.dim)})")
    arr = np.asarray(q)
    if not np.all(np.isfinite(arr)):
        raise ParameterError(f"{owner}: parameter {name!r} must be finite, got {value!r}")
    if positive and np.any(arr <= 0):
        raise ParameterError(f"{owner}: parameter {name!r} must be positive, got {value!r}")
    if nonnegative and np.any(arr < 0):
        raise ParameterError(f"{owner}: parameter {name!r} must not be negative, got {value!r}")
    return q


def _dim_str(dim: Dimension) -> str:
    if dim is DIMENSIONLESS:
        return "1 (dimensionless)"
    return f"{get_unit(dim)!r} ({dim})"
