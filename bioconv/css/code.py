"""The arithmetic of canonic signed spike (CSS) coding (seed 002; FORMULAS §7), in units of a
layer's spike amplitude theta: what a signed spike train codes, the encodable range, the latency of
a converted network and the amplitude-adjustment factor of A.18. No simulation here."""
from __future__ import annotations

import numpy as np


def encodable(beta: float, steps: int) -> float:
    """``S_T = sum_{t=1..T} beta^(T-t)``: the largest value (in theta) a train of T steps codes."""
    return float(sum(beta ** k for k in range(int(steps))))


def value(spikes, beta: float) -> np.ndarray:
    """The value (in theta) of signed spike trains ``spikes`` (..., T) with entries in {-1, 0, 1}:
    ``sum_t beta^(T-t) S[t]``, t counted from the first step of the train."""
    s = np.asarray(spikes, dtype=np.float64)
    weights = float(beta) ** np.arange(s.shape[-1] - 1, -1, -1)
    return s @ weights


def latency(steps: int, silent: int, weight_layers: int) -> int:
    """Steps from the first input step to bioconv's CSS readout: ``T + (L - 1) Ts``.

    Layers are chained within a step (a spike reaches the next layer in the step it is fired), so
    layer l (l = 1 .. L, counted in weight layers) receives its input in steps ``(l-1) Ts + 1 ..
    (l-1) Ts + T`` and fires ``Ts`` steps later. The output layer (l = L) is read from its
    accumulated input, complete at the end of its input window: it needs no firing window. The
    paper's ``T + L Ts`` (Table 2) also counts a silent period of the output layer."""
    if weight_layers < 1:
        raise ValueError(f"latency: a network has at least one weight layer, got {weight_layers}")
    return int(steps) + (int(weight_layers) - 1) * int(silent)


def adjustment_factor(residual: float, steps_sum: float) -> float:
    """A.18 (a heuristic of seed 002, A.3): the factor ``s`` by which a layer's amplitude theta grows
    when the 99.9th percentile ``residual`` of its end-of-window residual (in theta) exceeds 1;
    ``steps_sum`` is S_T. With ``d = residual - 1``: ``1 + d/S_T`` above ``0.05 S_T``, ``1.03 +
    d/S_T`` in ``(0.01 S_T, 0.05 S_T]``, ``1 + 4d/S_T`` in ``(0, 0.01 S_T]``; 1 when ``d <= 0``.
    The paper's reasoning: raising theta by ``dtheta`` lowers the residual by about
    ``dtheta S_T``; the middle and small ranges are raised so that slight excesses still move theta
    (the rule is discontinuous at ``0.05 S_T``, as printed)."""
    d = float(residual) - 1.0
    if d <= 0:
        return 1.0
    if d > 0.05 * steps_sum:
        return 1.0 + d / steps_sum
    if d > 0.01 * steps_sum:
        return 1.03 + d / steps_sum
    return 1.0 + 4.0 * d / steps_sum
