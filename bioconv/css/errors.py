"""The per-layer coding error of a simulated CSS network (issue 13's per-layer property).

For every hidden layer l, what its spike trains decode to is compared with what they should code
given what its inputs' trains decoded to: ``ReLU(W_hat (theta_src d_src) + b_hat) / theta_l``,
``d_src`` the decoded values of the source layers in the same simulation. This is computed here
from the decoded values alone (numpy), not read from the neurons, so it checks the simulated
dynamics. Units of theta_l; a neuron whose target is at or above ``S_T`` is saturated (its value is
beyond what a train of T steps codes).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from .code import encodable
from .mapping import CSSNetwork
from .simulate import CSSOutput


@dataclass
class LayerError:
    error: np.ndarray        # (N, size): |decoded - target|, in theta_l
    target: np.ndarray       # (N, size): ReLU of the decoded input, in theta_l
    unsaturated: np.ndarray  # (N, size) bool: target < S_T

    def percentile(self, q: float = 99.9) -> float:
        """The q-th percentile of the error over the unsaturated neurons (NaN if none)."""
        e = self.error[self.unsaturated]
        return float(np.percentile(e, q)) if e.size else float("nan")


def layer_errors(net: CSSNetwork, out: CSSOutput) -> dict[str, LayerError]:
    """Per hidden layer of ``net``, the coding error of the simulation ``out`` (see the module)."""
    S_T = encodable(out.beta, out.steps)
    result = {}
    for p in net.layers:
        if p.kind != "hidden":
            continue
        theta = out.thetas[p.name]
        drive = np.zeros_like(out.decoded[p.name])
        for q in p.projections:
            src = net.layer(q.source)
            m = sp.csr_matrix((q.weight, (q.j, q.i)), shape=(p.size, src.size))
            drive += np.asarray((m @ (out.thetas[q.source] * out.decoded[q.source]).T).T)
        if p.bias is not None:
            drive += p.bias
        target = np.maximum(drive, 0.0) / theta
        result[p.name] = LayerError(np.abs(out.decoded[p.name] - target), target, target < S_T)
    return result
