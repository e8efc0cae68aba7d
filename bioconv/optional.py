"""torch is optional (the ``torch`` extra): only importing torch networks needs it. nir is optional
too (the ``nir`` extra): only `bioconv.io.to_nir` and `from_nir` need it.

Everything else (the model library, the formulas, LayerGraphs built from numpy arrays, converting
and simulating them) runs without it, which is how the Python 3.12 lane tests bioconv: torch for
3.12 is a download of several GB.
"""
from __future__ import annotations

from .errors import BioconvError


class MissingDependencyError(BioconvError, ImportError):
    """An optional dependency that a function needs is not installed."""


def require_torch(what: str):
    """Import and return torch, or raise MissingDependencyError saying that ``what`` needs it."""
    try:
        import torch
    except ImportError as err:
        raise MissingDependencyError(
            f"{what} needs torch, which is not installed ({err}). Install it with "
            f"pip install 'bioconv[torch]', or build the network from numpy arrays "
            f"(bioconv.graph.sequential, from_nodes or load) and pass that LayerGraph to bioconv.convert"
        ) from None
    return torch


def require_nir(what: str):
    """Import and return nir, or raise MissingDependencyError saying that ``what`` needs it."""
    try:
        import nir
    except ImportError as err:
        raise MissingDependencyError(f"{what} needs nir, which is not installed ({err}). Install it with "
                                     f"pip install 'bioconv[nir]'") from None
    return nir
