"""Data-based spike-amplitude adjustment of seed 002 (A.3, eq. A.18): a documented heuristic.

After conversion with the calibrated amplitudes, the network is simulated on calibration inputs;
for every hidden layer the 99.9th percentile ``u_l`` of the end-of-window residual ``|o[T]| /
beta^Ts`` (in units of theta_l) is measured, and a layer with ``u_l > 1`` gets its amplitude
multiplied by the A.18 factor (`bioconv.css.code.adjustment_factor`); the network is re-converted
(Algorithm 2 with the new amplitudes) and the process repeats for the rounds asked. The paper
itself says the rule "lacks strict mathematical support": it assumes the residual accumulates
uniformly over the window, and raising theta_l also coarsens layer l's code and makes the next
layer's decoupling harder. The factors are computed at one T (``steps``); the network they give is
valid at any T, but tuned for that one.
"""
from __future__ import annotations

import numpy as np

from .code import adjustment_factor, encodable
from .mapping import CSSNetwork
from .simulate import simulate

#: the residual percentile of A.3
RESIDUAL_PERCENTILE = 99.9


def adjust_amplitudes(net: CSSNetwork, x, *, rounds: int, steps: int, silent: int = 1, beta: float = 1.5,
                      ternary: bool = True, rule: str = "ternary", batch: int | None = None) -> CSSNetwork:
    """``net`` with its hidden layers' amplitudes adjusted by ``rounds`` rounds of A.18 on inputs
    ``x`` (simulated at T = ``steps``). Each round is recorded in the result's ``adjustments``
    (per layer: the residual percentile before the round and the factor applied). A round in which
    no layer exceeds 1 ends the adjustment early."""
    S_T = encodable(beta, steps)
    for k in range(int(rounds)):
        out = simulate(net, x, steps=steps, silent=silent, beta=beta, ternary=ternary, rule=rule, batch=batch)
        factors, record = {}, {}
        for p in net.layers:
            if p.kind != "hidden":
                continue
            u = float(np.percentile(np.abs(out.residual[p.name]), RESIDUAL_PERCENTILE))
            s = adjustment_factor(u, S_T)
            record[p.name] = dict(residual=u, factor=s)
            factors[p.name] = p.factor * s
        changed = any(r["factor"] != 1.0 for r in record.values())
        net = net.with_factors(factors)
        net.adjustments.append(dict(round=k + 1, steps=int(steps), silent=int(silent), beta=float(beta),
                                    layers=record))
        if not changed:
            break
    return net
