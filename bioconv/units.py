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

# A unit expression: unit names joined by * and /, each with an optional integer power ("mV*second",
# "nS", "metre^2", "1"). No numbers, signs or other syntax, so a model file cannot scale or flip a
# value through its unit, and nothing is evaluated.
_FACTOR = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:\^\s*(-?[1-9]))?\s*")


def parse_unit(text: str) -> Quantity:
    """Turn a unit string such as ``"pF"`` or ``"mV*second"`` into a Brian2 quantity of value 1
    in that unit (``"1"`` for dimensionless). Raises ``ValueError`` naming the offending part.
    """
    text = str(text).strip()
    if text in ("", "1"):
        return Quantity(1.0)
    result, op, pos = Quantity(1.0), "*", 0
    while True:
        m = _FACTOR.match(text, pos)
        if not m or not m.group(1):
            raise ValueError(f"not a unit expression: {text!r} (expected unit names joined by * and /)")
        name, power = m.group(1), int(m.group(2) or 1)
        if name not in UNITS:
            raise ValueError(f"unknown unit {name!r} in {text!r}")
        factor = UNITS[name] ** power
        result = result * factor if op == "*" else result / factor
        pos = m.end()
        if pos == len(text):
            return Quantity(result)
        op = text[pos]
        if op not in "*/":
            raise ValueError(f"not a unit expression: {text!r} (unexpected {op!r})")
        pos += 1


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


def check_duration(duration, dt, owner: str) -> int:
    """The number of time steps of a run of ``duration`` at step ``dt`` (both checked quantities):
    at least one, and a whole number up to Brian2's clock tolerance. Brian2 itself would round a
    shorter or fractional duration up to whole steps without a word, so that the network would run
    longer than asked."""
    from brian2 import Clock

    steps = float(duration) / float(dt)
    n = int(np.round(steps))
    if steps < 1 - Clock.epsilon_dt:
        raise ParameterError(f"{owner}: duration ({duration}) is shorter than one time step dt ({dt})")
    if abs(n * float(dt) - float(duration)) > Clock.epsilon_dt * float(dt):
        raise ParameterError(f"{owner}: duration ({duration}) is not a whole number of time steps dt ({dt}): "
                             f"{steps:.6g} steps; choose a duration of {n} dt ({n * dt})")
    return n
