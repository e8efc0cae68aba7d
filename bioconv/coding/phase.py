"""Phase coding (seed 001: spikes timed against a background oscillation), the weighted-spike phase
code of Kim et al. 2018 ("Deep neural networks with weighted spikes"), as an input encoder of rate
coding.

The code
--------
A global oscillation of ``K`` phases (``bits``), each ``m`` simulation steps long
(``steps_per_phase``), repeats every period ``P = K m dt`` from the start of a presentation. An input
of value ``a = rate / rate_max`` (its activation, clipped to [0, 1]) fires, in the first step of phase
``k = 0 .. K-1``, if bit ``k`` of its K-bit binary expansion is set (most significant bit first):
``a ~ sum_k b_k 2^-(k+1)`` with ``b_k = floor(a 2^(k+1)) mod 2``, truncated (`quantize`). The same
K bits are emitted in every period. ``a = 1``, which K bits cannot hold, is coded as ``1 - 2^-K``.

The phase-weighted input synapse
--------------------------------
A spike at phase ``k`` is worth ``2^-(k+1)`` of the value: the input group's shared variable
``spike_weight`` is ``A 2^-(k+1)`` in the step of phase ``k``, and every input projection's synapse
multiplies its weight ``w`` by it (`Encoder.spike_weight`; the synapse model's own event code with
``w`` scaled, `bioconv.models.weighted_event_code`: delta, exponential and alpha kernels alike, in
Synapses and in shared-kernel convolution pathways). So one period delivers ``A w quantize(a)``.

The relation to rate_max
------------------------
``w`` is the charge of one regular spike (rate coding's mapping); a regular input of value ``a`` fires
``a rate_max`` spikes per second, so in one period it delivers ``a rate_max P`` of them. One period
of the phase code carries the drive that ``rate_max`` carries in the same time when

    A = rate_max P = rate_max K m dt        (the full scale: the value 1 in regular spikes per period).

The mean drive is then the rate code's (exactly, for values that K bits represent; short by less
than ``A 2^-K w`` per period otherwise), delivered in steps of at most ``A / 2`` regular spikes
instead of whole ones. ``A = 1`` when the period is ``1 / rate_max`` (``K m dt rate_max = 1``): a
phase-coded period then replaces exactly one regular spike at full scale. bioconv's default, Kim et
al.'s, is one step per phase (``m = 1``): at dt = 0.1 ms, K = 8 and rate_max = 200 Hz the period is
0.8 ms and A = 0.16, so each period moves the first layer by at most 0.16 of a regular spike and
the drive is nearly as even as the ``current`` encoder's, at up to K spikes per input and period.

A run of duration T holds ``floor(T / P)`` whole periods; a last partial period delivers its most
significant bits first. Presentations in sequence restart the oscillation at phase 0.

Use: ``snn.evaluate(x, y, encoder="phase")`` (K = 8, m = 1); another K or m is a `PhaseEncoder`
registered under a name of its own (``encoders.register("phase4", PhaseEncoder(bits=4,
name="phase4"))``), which rate coding then takes as an encoder too.
"""
from __future__ import annotations

import numbers
import warnings

import numpy as np
from brian2 import Hz, NeuronGroup, second

from ..errors import ParameterError
from ..units import check_quantity
from .encoders import Encoder, _rate_line, encoders, spike_counter

#: The most bits K: the K-bit code of a value is held as a float, an exact integer up to 2^24 in float32
#: builds too (whose values a = rate / rate_max are themselves within about 2^-24 of the double's).
MAX_BITS = 24


def _check_int(value, name, low, high=None):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or value < low or \
            (high is not None and value > high):
        bounds = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise ParameterError(f"PhaseEncoder: {name} must be an integer {bounds}, got {value!r}")
    return int(value)


def quantize(a, bits: int) -> np.ndarray:
    """What the phase code delivers per period for values ``a`` (fractions of rate_max), in units of
    the full scale: the K-bit binary expansion of ``a`` clipped to [0, 1 - 2^-K], truncated. Within
    ``2^-K`` of ``clip(a, 0, 1)``, never above it."""
    bits = _check_int(bits, "bits", 1, MAX_BITS)
    levels = 2.0 ** bits
    return np.floor(np.clip(np.asarray(a, dtype=float) * levels, 0, levels - 1)) / levels


def phase_bits(a, bits: int) -> np.ndarray:
    """The bits ``b_k`` (..., K) the code emits for values ``a``, most significant (phase 0) first:
    ``sum_k b_k 2^-(k+1) = quantize(a, bits)``."""
    level = np.round(quantize(a, bits) * 2.0 ** bits).astype(np.int64)
    shifts = np.arange(bits - 1, -1, -1)
    return (level[..., None] >> shifts) & 1


class PhaseEncoder(Encoder):
    """The weighted-spike phase code: see the module docstring. ``bits`` K (1 .. `MAX_BITS`) phases
    per period, ``steps_per_phase`` m simulation steps per phase (spikes in its first step); ``name``
    the one it is registered under. Its values are rates in Hz, as the regular encoder's."""

    value_unit = Hz
    variable = "rate"
    unit = Hz
    spiking = True
    deterministic = True
    spike_weight = "spike_weight"
    uses_rate_max = True
    # An input's spike count per period is the popcount of its K-bit code, not a rate proportional to
    # its value: rate metrics of the input population would compare that with rate targets.
    rate_coded = False

    def __init__(self, bits: int = 8, steps_per_phase: int = 1, name: str = "phase"):
        self.bits = _check_int(bits, "bits", 1, MAX_BITS)
        self.steps_per_phase = _check_int(steps_per_phase, "steps_per_phase", 1)
        if not isinstance(name, str) or not name:
            raise ParameterError(f"PhaseEncoder: name must be a non-empty string, got {name!r}")
        self.name = name

    def params(self):
        return {"bits": self.bits, "steps_per_phase": self.steps_per_phase}

    def period_steps(self) -> int:
        """Simulation steps per period: K m."""
        return self.bits * self.steps_per_phase

    def full_scale(self, rate_max, dt) -> float:
        """A = rate_max K m dt: what one period of the value 1 is worth, in regular spikes."""
        rate_max = check_quantity(rate_max, Hz.dim, "rate_max", f"encoder {self.name!r}", positive=True)
        dt = check_quantity(dt, second.dim, "dt", f"encoder {self.name!r}", positive=True)
        return float(rate_max) * self.period_steps() * float(dt)

    def values(self, net, x: np.ndarray) -> dict[str, np.ndarray]:
        """As `Encoder.values`, warning by name where values exceed rate_max: the K-bit code clips
        them to full scale (1 - 2^-K), where regular input would fire faster."""
        out = super().values(net, x)
        vals = next(iter(out.values()))
        top = float(net.rate_max)
        over = vals > top
        if np.any(over):
            warnings.warn(f"encoder {self.name!r}: {int(over.sum())} of {vals.size} input values exceed rate_max "
                          f"({vals.max():.4g} Hz > {top:.4g} Hz); the phase code clips them to full scale",
                          stacklevel=2)
        return out

    def spikes(self, a, steps: int) -> np.ndarray:
        """Spikes an input of value ``a`` (fraction of rate_max) fires in a presentation of ``steps``
        simulation steps: its set bits in every whole period, and those of the phases a last partial
        period starts."""
        bits = phase_bits(a, self.bits)
        periods, rest = divmod(int(steps), self.period_steps())
        started = -(-rest // self.steps_per_phase)  # phases whose first step the run reaches
        return bits.sum(-1) * periods + bits[..., :started].sum(-1)

    def group(self, n, values, name, table=None, count_spikes=False):
        rate, namespace = _rate_line(table)
        count, counting = spike_counter(count_spikes)
        K, m = self.bits, self.steps_per_phase
        # level: the value's K-bit code, an integer in [0, 2^K - 1] (held as a float: exact up to
        # MAX_BITS); place: 2^(K-1-k), the place value of phase k's bit in it.
        eqs = f"""{rate}
rate_max : Hz (shared, constant)
level = floor(clip(rate / rate_max * 2.0**{K}, 0, 2.0**{K} - 1)) : 1
t_start : second (shared)
phase : integer (shared)
active : integer (shared)
place : 1 (shared)
spike_weight : 1 (shared){count}"""
        g = NeuronGroup(n, eqs, threshold="active == 1 and floor(level / place) % 2 > 0.5",
                        reset=counting.strip(), name=name, namespace=namespace,
                        dtype={"t_start": np.float64})  # as t itself, in float32 builds too
        # The global oscillation, once per step before the thresholds (shared values only: one
        # evaluation per step for the whole group): the phase of this step since the presentation
        # started, whether it is a phase's first step, and what a spike of this step is worth:
        # A 2^-(k+1) with A = rate_max K m dt.
        n_step = "timestep(t - t_start, dt)"  # (inlined: a temporary would count as a vector variable)
        g.run_regularly(f"""phase = ({n_step} // {m}) % {K}
active = int({n_step} % {m} == 0)
place = 2.0**({K - 1} - phase)
spike_weight = rate_max * {K * m} * dt * place / 2.0**{K}""", when="groups", name=f"{name}_oscillation")
        if table is None:
            g.rate = values * Hz
        return g

    def configure(self, group, net):
        group.rate_max = net.rate_max

    def presentation_reset(self, table_name=None):
        return "t_start = t"  # the oscillation restarts at phase 0

    def __repr__(self):
        return f"<PhaseEncoder {self.name!r} bits={self.bits} steps_per_phase={self.steps_per_phase}>"


encoders.register("phase", PhaseEncoder())
