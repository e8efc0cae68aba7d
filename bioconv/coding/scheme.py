"""The coding-scheme seam: what every scheme (rate, TTFS, ...) declares and does.

A `CodingScheme` owns everything that depends on how activations are coded in spikes, so that a new
scheme is a module (plus its models in ``equations/``), not edits across the simulator:

- its parameters, declared in `CodingScheme.PARAMETERS` and validated at the door (`__init__`); a
  parameter that only another registered scheme knows is refused by name (`from_arguments`);
- which inputs it accepts (`check_inputs`) and whether conversion needs calibration data;
- the mapping of a populations graph (`populations`) onto neuron and synapse models (`map`);
- the targets each unit should reach for given inputs (`targets`), and the encoding of inputs into
  the values an encoder takes (`encode`, with `encoders` / `default_encoder`);
- the evaluation's defaults (`evaluation_defaults`) and its timing from ``steps`` (`timing`);
- decoding a run's output into readout scores (`score`) and scoring them (`metrics`, whose fields
  are declared in `metric_names` from the catalogue `METRICS`).

A scheme's parameters are plain data (`params`: a JSON-able dict; `from_params` reads it back), so a
saved network records its scheme. tests/test_coding_conformance.py checks every registered scheme
against this contract.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from brian2 import Quantity
from brian2.units.fundamentalunits import DIMENSIONLESS, Dimension, get_unit

from ..errors import BioconvError, ParameterError
from ..units import check_quantity, parse_unit
from .registry import Registry

schemes = Registry("coding scheme")

#: The metrics a scheme can declare (`CodingScheme.metric_names`), each a field of
#: `bioconv.converter.EvaluationResult`, and what it means.
METRICS = {
    "accuracy": "fraction of samples whose decision at the end of the run is their label",
    "ann_accuracy": "the ANN's accuracy on the same samples",
    "agreement": "fraction of samples whose decision is the ANN's",
    "accuracy_vs_time": "accuracy of the decision read at each of `times`",
    "agreement_vs_time": "agreement of the decision read at each of `times`",
    "undecided_fraction": "fraction of samples with no unique winner at the end",
    "layer_correlation": "per population, the correlation of the units' decoded activity with their targets",
    "scatter": "per population, a subsample of (target, decoded) pairs",
    "synaptic_events": "spikes times out-degrees over the data set (SynOps)",
    "error_terms": "per population, the bias^2 and variance of the decoded activity over seeds",
    # temporal codes (bioconv.coding.metrics)
    "decision_time": "per sample, the first read time from which on the decision is the final one",
    "spikes_per_neuron": "per population (and 'all'), mean spikes per neuron and sample",
    "energy_proxy": "seed 004 eq. 22 per sample: SynOPs (spikes x out-degrees) + NeuronOPs (neurons x steps)",
}


@dataclass(frozen=True)
class Param:
    """A declared scheme parameter: its default and its constraint.

    ``dim``: a Brian2 dimension (the value must be a quantity of it; ``positive`` / ``nonnegative``
    restrict its sign); ``choices``: the allowed values; ``check``: a function value -> checked value
    raising `ParameterError` (for free-form parameters). ``bad``: a value the constraint refuses (for
    the conformance test; derived from ``dim`` or ``choices`` when not given)."""

    default: Any
    dim: Dimension | None = None
    positive: bool = False
    nonnegative: bool = False
    choices: tuple | None = None
    check: Callable | None = None
    doc: str = ""
    bad: Any = None

    def validate(self, value, name: str, owner: str):
        if self.dim is not None:
            value = check_quantity(value, self.dim, name, owner, positive=self.positive, nonnegative=self.nonnegative)
        if self.choices is not None and value not in self.choices:
            raise ParameterError(f"{owner}: {name} must be one of {self.choices}, got {value!r}")
        if self.check is not None:
            value = self.check(value, name, owner)
        return value

    def bad_example(self):
        """A value this parameter refuses."""
        if self.bad is not None:
            return self.bad
        if self.choices is not None:
            return "<not one of the choices>"
        if self.dim is not None:  # a plain number for a dimensioned parameter, a string for a dimensionless one
            return 1.0 if self.dim is not DIMENSIONLESS else "not a number"
        raise NotImplementedError("a free-form parameter must declare a bad example")


class CodingScheme:
    """Base class of coding schemes: see the module docstring. Subclasses set ``name``,
    ``PARAMETERS``, ``encoders`` and ``default_encoder``, and implement the methods that raise
    NotImplementedError here. An instance holds validated parameter values (``self.values``)."""

    name: str = ""
    PARAMETERS: dict[str, Param] = {}
    #: the encoders (names in `bioconv.coding.encoders`) this scheme's inputs can go through
    encoders: tuple[str, ...] = ()
    default_encoder: str = ""
    #: the `METRICS` that `metrics` computes for this scheme
    metric_names: tuple[str, ...] = ()
    #: conversion needs calibration data (data-based normalization)
    needs_calibration: bool = False
    #: the scheme runs its own simulation (`evaluate` overridden) instead of the shared pipeline
    simulates_itself: bool = False

    def __init__(self, **params):
        owner = f"coding {self.name!r}"
        unknown = sorted(set(params) - set(self.PARAMETERS))
        if unknown:
            raise ParameterError(_unknown_message(unknown, self.name))
        values = {}
        for name, spec in self.PARAMETERS.items():
            values[name] = spec.validate(params.get(name, spec.default), name, owner)
        self.values = self.check_parameters(values)

    def check_parameters(self, values: dict) -> dict:
        """Checks between parameters (after each one's own constraint); returns the checked values."""
        return values

    def __getitem__(self, name):
        return self.values[name]

    # --- parameters as data -------------------------------------------------------------------
    def params(self) -> dict:
        """The parameters as a plain JSON-able dict: quantities as ``{"value": ..., "unit": ...}``
        (value in the unit, unit a string `bioconv.units.parse_unit` reads), numpy values as lists."""
        return {name: _to_json(v) for name, v in self.values.items()}

    @classmethod
    def from_params(cls, params: dict) -> "CodingScheme":
        """The scheme with the parameters `params` wrote (validated again)."""
        return cls(**{name: _from_json(v) for name, v in params.items()})

    def __eq__(self, other):
        return type(self) is type(other) and self.params() == other.params()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.values.items())})"

    # --- inputs -------------------------------------------------------------------------------
    def check_inputs(self, x, shape, where: str) -> np.ndarray:
        """Inputs as float64 (N, *shape), refused (naming ``where``) if the scheme cannot code them.
        The base class checks the batch's shape and finiteness."""
        return check_batch(x, shape, where)

    def encode(self, snn, x: np.ndarray, targets: dict | None = None) -> np.ndarray:
        """The values (N, n_input) an encoder takes for inputs ``x`` (already checked), in its
        ``value_unit``. ``targets``: `targets` of ``x`` when the caller has them."""
        raise NotImplementedError

    def check_encoder(self, encoder: str, where: str) -> str:
        from .encoders import encoders as registered
        registered[encoder]  # unknown: an error naming it and the registered ones
        if encoder not in self.encoders:
            raise ParameterError(f"{where}: coding {self.name!r} takes the encoders {self.encoders}, not {encoder!r}")
        return encoder

    # --- mapping and targets ------------------------------------------------------------------
    def populations(self, graph):
        """The spiking populations of ``graph`` this scheme maps (default: `bioconv.graph.populations`,
        linear chains composed, ReLU1 as rate coding's pair of populations)."""
        from .. import graph as G
        return G.populations(graph)

    def map(self, graph, pops, calibration):
        """Map the populations ``pops`` of ``graph`` onto models: returns ``(mapped, calibration_acts)``,
        the `bioconv.mapping.MappedNetwork` and the calibration activations it used (or None)."""
        raise NotImplementedError

    def targets(self, snn, x: np.ndarray) -> dict[str, np.ndarray]:
        """Per population, what each unit should produce for inputs ``x`` (N, n_units), in the
        scheme's decoded quantity (rate coding: Hz)."""
        raise NotImplementedError

    def targets_and_logits(self, snn, x: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """`targets` and the ANN's output (N, n_out) for inputs ``x``. This default runs two forward
        passes; a scheme whose targets come from one pass returns the output from it."""
        return self.targets(snn, x), snn.graph.forward(x)[snn.graph.output].reshape(len(x), -1)

    # --- evaluation ---------------------------------------------------------------------------
    def evaluation_defaults(self) -> dict:
        """``duration``, ``dt`` and ``encoder`` of an `SNN.evaluate` call that gives none."""
        raise NotImplementedError

    def timing(self, duration, dt, steps, where: str):
        """``(duration, dt)`` of an evaluation from what the caller gave (None: the scheme's default);
        ``steps`` sets the scheme's coding steps (e.g. steps per window for TTFS)."""
        raise NotImplementedError

    def evaluate(self, snn, x, y, **settings):
        """The escape hatch for a scheme whose networks the shared pipeline (`simulate.network`,
        `CompiledNetwork`) does not build: it runs its own evaluation here and returns an
        `EvaluationResult` (and sets ``simulates_itself``). None (this default) runs the shared
        pipeline, which asks the scheme to encode, score and compute the metrics. ``x``: checked by
        `check_inputs`; ``y``: as given (see `check_labels`); ``settings``: `SNN.evaluate`'s other
        arguments, with ``duration``, ``dt`` and ``encoder`` resolved by the scheme."""
        return None

    def max_output_spikes(self, mapped, duration) -> float:
        """The most spikes the output population fires in a presentation of ``duration`` (to plan
        the memory of a run's records)."""
        raise NotImplementedError

    def score(self, mapped, out, times, dt) -> np.ndarray:
        """Readout scores (b, len(times), n_out) of one run's output ``out`` (a `BatchOutput`) at
        each of ``times`` (s), what a run of that duration at step ``dt`` (s) would read; higher wins."""
        raise NotImplementedError

    def metrics(self, *, x, y, ann_pred, targets, counts, scores, seeds, times, duration, dt,
                scatter_points) -> dict:
        """The `EvaluationResult` fields of an evaluation (at least those in `metric_names`)."""
        raise NotImplementedError

    def settings(self, mapped) -> dict:
        """Flat settings an `EvaluationResult` records besides ``coding`` and ``coding_params``."""
        return {}

    def example(self):
        """``(graph, inputs)``: a small `LayerGraph` this scheme converts (with these parameters) and
        inputs (N, *input_shape) it accepts, used as calibration data where the scheme needs it. The
        conformance test converts, encodes, simulates and decodes it."""
        raise NotImplementedError


def check_batch(x, shape, where: str) -> np.ndarray:
    """A non-empty batch of finite float64 inputs of the given per-sample shape (if any)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim < 2 or len(x) == 0:
        raise BioconvError(f"{where}: inputs must be a non-empty batch (N, ...), got shape {x.shape}")
    if shape and tuple(x.shape[1:]) != tuple(shape):
        raise BioconvError(f"{where}: inputs have shape {x.shape[1:]} per sample, the network expects {tuple(shape)}")
    if not np.all(np.isfinite(x)):
        raise BioconvError(f"{where}: inputs hold NaN or infinite values")
    return x


def check_labels(y, n: int, n_out: int, where: str) -> np.ndarray:
    """Labels (n,) as integers in [0, n_out)."""
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != n or not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= n_out:
        raise BioconvError(f"{where}: labels must be integers in [0, {n_out}) of shape ({n},), got "
                           f"dtype {y.dtype}, shape {y.shape}")
    return y


def _unknown_message(names, scheme: str) -> str:
    parts = []
    for name in names:
        owners = [s for s in schemes if s != scheme and name in schemes[s].PARAMETERS]
        if owners:
            parts.append(f"{name!r} is a parameter of coding {' / '.join(map(repr, owners))}, not of coding {scheme!r}")
        else:
            parts.append(f"{name!r} is not a parameter of coding {scheme!r}")
    return (f"coding {scheme!r}: " + "; ".join(parts)
            + f" (its parameters: {', '.join(schemes[scheme].PARAMETERS) if scheme in schemes else '?'})")


def scheme(name: str = "rate", **params) -> CodingScheme:
    """The registered scheme ``name`` with ``params`` (validated; an unknown scheme or a parameter
    the scheme does not take is refused by name)."""
    return schemes[name](**params)


def from_params(name: str, params: dict) -> CodingScheme:
    """The scheme ``name`` with the parameters its `CodingScheme.params` wrote."""
    return schemes[name].from_params(params)


def _to_json(v):
    if isinstance(v, Quantity):
        unit = get_unit(v.dim)
        arr = np.asarray(v / unit) if v.dim is not DIMENSIONLESS else np.asarray(v)
        return {"value": arr.tolist(), "unit": "1" if v.dim is DIMENSIONLESS else _unit_name(unit)}
    if isinstance(v, dict):
        return {str(k): _to_json(x) for k, x in v.items()}
    if isinstance(v, (np.generic, np.ndarray)):
        return np.asarray(v).tolist()
    if isinstance(v, (tuple, list)):
        return [_to_json(x) for x in v]
    return v


def _from_json(v):
    if isinstance(v, dict) and set(v) == {"value", "unit"}:
        return np.asarray(v["value"], dtype=float) * parse_unit(v["unit"]) if np.ndim(v["value"]) else \
            float(v["value"]) * parse_unit(v["unit"])
    if isinstance(v, dict):
        return {k: _from_json(x) for k, x in v.items()}
    return v


def _unit_name(unit) -> str:
    """A unit's name as `parse_unit` reads it (Brian2's repr of a unit, e.g. 'metre ** 2 * kilogram',
    written with ^ and *)."""
    text = repr(unit)
    return text.replace(" ** ", "^").replace(" * ", "*").replace(" / ", "/")
