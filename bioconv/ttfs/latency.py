"""Latency (time-to-first-spike) code of seed 004 eq. 7: layer ``l`` codes ``a`` in [0, 1] as one
spike at ``t = (l + 1 - a) T_w``; the input layer (l = 0) fires at ``(1 - a) T_w``."""
from __future__ import annotations

import numpy as np

from ..errors import BioconvError


def check_unit_interval(x, where: str) -> np.ndarray:
    """``x`` as float64 if every value is finite and in [0, 1]; otherwise an error naming the first
    offending sample, its flat index and value."""
    x = np.asarray(x, dtype=np.float64)
    bad = ~np.isfinite(x) | (x < 0) | (x > 1)
    if np.any(bad):
        first = np.unravel_index(int(np.argmax(bad)), x.shape)
        sample = first[0] if x.ndim > 1 else 0
        flat = int(np.ravel_multi_index(first[1:], x.shape[1:])) if x.ndim > 1 else int(first[0])
        raise BioconvError(f"{where}: latency coding needs inputs in [0, 1]; sample {sample}, input {flat} is "
                           f"{float(x[first])!r} ({int(bad.sum())} values outside [0, 1]): rescale the inputs "
                           f"(and train the ANN on that range)")
    return x


def spike_times(a, layer: int, T_w: float) -> np.ndarray:
    """Spike times (s) coding activations ``a`` in layer ``layer``: ``(layer + 1 - a) T_w``."""
    return (layer + 1 - np.asarray(a, dtype=np.float64)) * T_w


def activations(t, layer: int, T_w: float) -> np.ndarray:
    """Activations decoded from spike times ``t`` (s) of layer ``layer``: ``layer + 1 - t / T_w``."""
    return layer + 1 - np.asarray(t, dtype=np.float64) / T_w
