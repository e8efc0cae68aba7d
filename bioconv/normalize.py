"""Data-based normalization (FORMULAS §5; Diehl 2015, Rueckauer 2017): per-population activation scales.

The scale ``lambda_p`` of a population is a high percentile of its ANN activations over the whole
calibration set (all samples, all units at once, not a running estimate). Dividing every activation
by its population's scale puts typical activations in [0, 1], where 1 maps to the encoder's maximal
rate; weights become ``W lambda_source / lambda_target`` and biases ``b / lambda_target``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import BioconvError
from .graph import LayerGraph, Population


@dataclass(frozen=True)
class Scales:
    """Per-population scales and how they were obtained."""

    values: dict[str, float]
    method: str


def activations(graph: LayerGraph, pops: list[Population], x: np.ndarray, batch: int = 256,
                nodes: tuple = ()) -> dict[str, np.ndarray]:
    """ANN activations (B, n_units) of every population for inputs ``x`` (B, *input_shape), and of
    the graph ``nodes`` named (e.g. the output node's logits, in the same forward pass), in batches of
    ``batch`` inputs (BLAS may round the last bit of a batch's products differently from one pass over
    all inputs)."""
    names = [p.name for p in pops] + [n for n in nodes if n not in {p.name for p in pops}]
    out = {name: [] for name in names}
    for k in range(0, len(x), batch):
        acts = graph.forward(x[k:k + batch])
        for name in names:
            out[name].append(acts[name].reshape(len(acts[name]), -1))
    return {name: np.concatenate(a) for name, a in out.items()}


def compute_scales(pops: list[Population], acts: dict[str, np.ndarray], method="p99.9") -> Scales:
    """Scales from calibration activations.

    ``method``: ``"max"``, ``"pXX.X"`` (percentile, e.g. ``"p99.9"``), a number (the same scale for
    every population) or a dict population -> scale. Max-pooling gates keep their source's scale
    (the max of inputs is on the input's scale); the output population's scale covers its positive
    activations (the readout spikes for those only).
    """
    if isinstance(method, dict):
        missing = [p.name for p in pops if p.name not in method]
        if missing:
            raise BioconvError(f"normalization: no scale given for population(s) {missing}")
        values = {p.name: float(method[p.name]) for p in pops}
        for p in pops:  # a gate passes spikes unchanged: it cannot change scale
            if p.kind == "maxpool" and values[p.name] != values[p.projections[0].source]:
                raise BioconvError(f"normalization: max-pooling population {p.name!r} must have the scale of its "
                                   f"source {p.projections[0].source!r}")
        label = "given"
    elif isinstance(method, (int, float)):
        values = {p.name: float(method) for p in pops}
        label = f"constant {method}"
    else:
        pct = _percentile_of(method)
        values = {}
        for p in pops:
            if p.kind == "maxpool":
                values[p.name] = values[p.projections[0].source]
                continue
            a = acts[p.name]
            a = a[a > 0] if p.kind == "output" else a
            values[p.name] = float(np.percentile(a, pct)) if a.size else 0.0
        label = method
    for name, v in values.items():
        if not np.isfinite(v) or v <= 0:
            raise BioconvError(f"normalization ({label}): population {name!r} has scale {v!r}; it never activates on "
                               f"the calibration data (or a given scale is not positive)")
    return Scales(values, label)


def _percentile_of(method: str) -> float:
    if method == "max":
        return 100.0
    if isinstance(method, str) and method.startswith("p"):
        try:
            pct = float(method[1:])
        except ValueError:
            pct = -1
        if 0 < pct <= 100:
            return pct
    raise BioconvError(f"normalization: method must be 'max', 'pXX' (percentile in (0, 100]), a number or a "
                       f"dict of scales; got {method!r}")


def saturation(pops: list[Population], acts: dict[str, np.ndarray], scales: Scales, rate_max: float,
               rate_cap: float) -> dict[str, float]:
    """Fraction of units per population whose largest target rate on the calibration data comes within
    10 % of ``rate_cap`` (the lower of 1/tau_ref and 1/dt), in Hz; ``rate_max`` is the rate of activation 1."""
    out = {}
    for p in pops:
        target = acts[p.name].max(axis=0) / scales.values[p.name] * rate_max
        out[p.name] = float(np.mean(target >= 0.9 * rate_cap))
    return out
