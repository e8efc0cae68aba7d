"""Brian2 quantities in a saved file: the value in SI units plus a unit string `bioconv.units.parse_unit`
reads back ("farad", "volt / second", "1" when dimensionless); scalars in the JSON header, arrays
as ``.npy`` members."""
from __future__ import annotations

import numpy as np
from brian2 import Quantity
from brian2.units.fundamentalunits import DIMENSIONLESS, get_dimensions, get_unit

from ..units import parse_unit
from .archive import ArchiveReader, ArchiveWriter, NetworkFileError


def unit_string(dim) -> str:
    """The SI unit of ``dim`` as a string that `parse_unit` reads back to the same dimension."""
    if dim is DIMENSIONLESS:
        return "1"
    text = repr(get_unit(dim))  # e.g. 'farad', 'volt / second' (Brian2's names, scale 1)
    unit = parse_unit(text)
    if unit.dim is not dim or float(np.asarray(unit)) != 1.0:  # never write what cannot be read back exactly
        raise ValueError(f"no unit string for dimension {dim}: {text!r} reads back as {unit!r}")
    return text


def encode(q, writer: ArchiveWriter, member: str) -> dict:
    """``q`` (a quantity or a plain number) as a JSON entry; an array goes to ``member``.npy."""
    dim = get_dimensions(q)
    arr = np.asarray(q, dtype=np.float64)
    entry = {"unit": unit_string(dim)}
    if arr.ndim == 0:
        entry["value"] = float(arr)
    else:
        entry["array"] = writer.add(member, arr)
    return entry


def decode(entry: dict, reader: ArchiveReader, where: str):
    """The quantity an `encode` entry holds; ``where`` names it in errors (population, parameter)."""
    try:
        unit = parse_unit(entry["unit"])
        value = reader.array(entry["array"]) if "array" in entry else np.float64(entry["value"])
    except NetworkFileError:
        raise
    except (KeyError, TypeError, ValueError) as err:
        raise NetworkFileError(f"{reader.where}: {where}: not a quantity entry ({entry!r}): {err}") from None
    if unit.dim is DIMENSIONLESS:
        return np.asarray(value, dtype=np.float64) * float(np.asarray(unit))
    return Quantity(np.asarray(value, dtype=np.float64) * float(np.asarray(unit)), dim=unit.dim)
