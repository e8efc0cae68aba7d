"""LC-TTFS weight-sum constraint (seed 004 sec. III-B): every hidden neuron's incoming weights sum to 1.

With ``sum_j w_ij = 1`` and the threshold at 1, a ReL-PSP neuron fires at ``l + 1 - sum_j w_ij a_j``
(eq. 15), i.e. exactly ReLU1 of its input; any other sum warps time (eq. 10). The ANN is trained
towards it (penalty, eq. 14) and projected onto it after every step; conversion checks it here.
The output layer, read from its membrane at t = L, is exempt.
"""
from __future__ import annotations

import warnings

import numpy as np

from ..errors import BioconvError

#: Largest |sum_j w_ij - 1| a hidden neuron may have (issue 11).
TOLERANCE = 1e-4


class WeightSumError(BioconvError, ValueError):
    """A hidden layer's weight sums are not 1: its TTFS spike times would be warped (seed 004 eq. 10)."""


class WeightSumWarning(UserWarning):
    """A network violating the weight-sum constraint was converted anyway (``strict=False``)."""


def row_sums(matrix) -> np.ndarray:
    """Incoming weight sum of every target unit of a (n_target x n_source) matrix, dense or sparse."""
    return np.asarray(matrix.sum(axis=1)).ravel()


def check_weight_sums(layer: str, matrix, *, strict: bool = True, tolerance: float = TOLERANCE) -> float:
    """Check ``|sum_j w_ij - 1| <= tolerance`` for every unit of ``layer``; returns the worst deviation.

    A violation raises `WeightSumError` naming the layer, its worst unit and that unit's sum; with
    ``strict=False`` it warns (`WeightSumWarning`) instead, for ablations.
    """
    sums = row_sums(matrix)
    if sums.size == 0:
        return 0.0
    worst = int(np.argmax(np.abs(sums - 1)))
    deviation = float(abs(sums[worst] - 1))
    if deviation > tolerance:
        msg = (f"layer {layer!r}: weight sum of unit {worst} is {sums[worst]:.6g} (|sum - 1| = {deviation:.3g} > "
               f"{tolerance:g}); {int(np.sum(np.abs(sums - 1) > tolerance))} of {sums.size} units violate "
               f"sum_j w_ij = 1, so their spike times are warped (seed 004 eq. 10). Train with "
               f"bioconv.ttfs_train.WeightSumConstraint")
        if strict:
            raise WeightSumError(msg + ", or pass strict=False to convert anyway")
        warnings.warn(msg + "; converted anyway (strict=False)", WeightSumWarning, stacklevel=3)
    return deviation


def project_weight_sums(weight: np.ndarray) -> np.ndarray:
    """The hard constraint (seed 004 sec. III-B): ``w_ij - (sum_j w_ij - 1) / N_i`` for every output
    unit i (axis 0: a linear layer's row, or a conv layer's output channel over C_in x kh x kw)."""
    w = np.asarray(weight, dtype=np.float64)
    flat = w.reshape(len(w), -1)
    return (flat - (flat.sum(axis=1, keepdims=True) - 1.0) / flat.shape[1]).reshape(w.shape)
