"""Input encoders: turn rates into spike trains (the network's encoders: `bioconv.coding.encoders`)."""
from __future__ import annotations

import numpy as np
from brian2 import Hz, second

from .units import check_quantity


def regular_spike_trains(rates, duration):
    """Regular trains of seed 003 eq. 15: source ``k`` fires at ``j / rates[k]`` for j = 1, 2, ...

    Returns ``(indices, times)`` arrays for a SpikeGeneratorGroup, times in seconds (plain floats,
    sorted by time). A rate of 0 gives no spikes.
    """
    rates = np.atleast_1d(np.asarray(check_quantity(rates, Hz.dim, "rates", "regular_spike_trains",
                                                    nonnegative=True), dtype=float))
    T = float(check_quantity(duration, second.dim, "duration", "regular_spike_trains", positive=True))
    counts = np.floor(rates * T + 1e-9).astype(np.int64)
    indices = np.repeat(np.arange(len(rates)), counts)
    # j-th spike of each source: j = 1..count, built without a Python loop over sources.
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    j = np.arange(counts.sum()) - starts + 1
    times = j / rates[indices]
    order = np.argsort(times, kind="stable")
    return indices[order], times[order]
