"""What a sweep evaluates at its points: a *level* (one neuron per point, or one converted network per
point) declares its parameters and computes one metrics row per point.

A level is named in a spec: ``"neuron"`` (`bioconv.sweep.neuron`), ``"network"``
(`bioconv.sweep.network`), or ``"package.module:attribute"`` for a level of one's own, imported by
name wherever it runs (so a Dask worker needs only the name, never the client's objects).
"""
from __future__ import annotations

import importlib

import numpy as np

from .params import Param, SweepSpecError

# Structural parameters every level has: the time grid of a run.
TIME_GRID = {
    "dt": ("simulation time step", "0.1 ms"),
    "T": ("simulated time per point (per presentation at the network level)", "1 s"),
}


class Level:
    """Base class of sweep levels. A subclass sets ``name`` and implements `structural`,
    `parameters`, `evaluate`, and optionally `check` (invalid combinations)."""

    name = "level"
    #: points per task when the spec gives no ``points_per_task``
    points_per_task = 1000
    #: whether `evaluate` takes ``names=`` (the per-point parameter names of the whole shape)
    takes_shape_names = False

    def default_points_per_task(self, structure: dict) -> int:
        """Points per task for this shape when the spec gives no ``points_per_task``."""
        return self.points_per_task

    def structural(self) -> dict[str, Param]:
        """Parameters that shape the compiled project (name -> Param, each with its default)."""
        raise NotImplementedError

    def complete(self, structure: dict, where: str) -> dict:
        """A shape's structural values (canonical), completed by the level: values left unset (a
        default of None) that the level decides, and whatever identifies the shape beyond its values
        (e.g. the sha256 of a file it reads). Raises `SweepSpecError` naming a value the level cannot
        take. Every key it returns goes into the shape's points' configs unless its value is None."""
        return structure

    def parameters(self, structure: dict) -> dict[str, Param]:
        """Per-point parameters (name -> Param with its default), given the structural values
        (canonical): e.g. the neuron model's parameters."""
        raise NotImplementedError

    def check(self, structure: dict, columns: dict[str, np.ndarray]) -> np.ndarray | None:
        """Invalid combinations among the points of one shape: return a boolean mask of bad points
        with `reason`, or None when all are valid. ``columns``: canonical values by name."""
        return None

    def reason(self, structure: dict, columns: dict[str, np.ndarray]) -> str:
        return "invalid combination"

    def evaluate(self, structure: dict, points: list[dict], *, size: int | None = None) -> list[dict]:
        """One metrics dict per point (canonical configs, same structure). ``size``: the number of
        points the compiled project holds (a task's points padded to it), so that tasks of one
        shape share one project. A point whose evaluation failed gets ``{"error": message}``."""
        raise NotImplementedError


def get(name: str) -> Level:
    """The level named ``name``: ``"neuron"``, ``"network"``, or ``"module:attribute"``."""
    if name == "neuron":
        from .neuron import NeuronLevel
        return NeuronLevel()
    if name == "network":
        from .network import NetworkLevel
        return NetworkLevel()
    if isinstance(name, str) and ":" in name:
        module, _, attr = name.partition(":")
        try:
            obj = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as err:
            raise SweepSpecError(f"sweep level {name!r} cannot be imported: {err}") from None
        level = obj() if isinstance(obj, type) else obj
        if not isinstance(level, Level):
            raise SweepSpecError(f"sweep level {name!r} is not a bioconv.sweep.Level")
        return level
    raise SweepSpecError(f"unknown sweep level {name!r}; choose 'neuron', 'network' or 'module:attribute'")
