"""The encoder registry: how a batch of encoded inputs enters the Brian2 network.

A coding scheme turns samples into per-input-unit values (`CodingScheme.encode`: rates in Hz for
rate coding). An encoder turns those values into the network's input: it builds the input group
(`Encoder.group`), says which variable of which population a run sets and in what unit
(`Encoder.driven`, `Encoder.variable`, `Encoder.unit`), computes those variables' values for a batch
(`Encoder.values`: what a compiled project takes as run_args), and says how its input is put back to
rest when samples are presented one after another (`Encoder.presentation_reset`).

Registered here: ``regular`` (seed 003 eq. 15), ``poisson`` and ``current`` (no input spikes: each
first-layer unit receives the mean current of its inputs); ``phase`` (`bioconv.coding.phase`: weighted
spikes against a global oscillation) in its own module. A new encoder (latency, phase, ...) is a
subclass registered with ``encoders.register(name, instance)``; tests/test_coding_conformance.py
checks every registered encoder against this contract.

Besides its group, an encoder can declare what the rest of the build needs from it: a variable of its
group that weighs every spike (`Encoder.spike_weight`: the input projections' synapses multiply their
weight by it, `bioconv.models.weighted_event_code`), constants its group takes from the mapped network
(`Encoder.configure`), and the parameters that shape its group's code (`Encoder.params`, part of a
compiled project's cache key).
"""
from __future__ import annotations

import numpy as np
from brian2 import Hz, NeuronGroup, TimedArray, amp

from .. import models
from ..errors import BioconvError
from .registry import Registry

encoders = Registry("encoder")


class Encoder:
    """What every encoder declares and does; see the module docstring.

    ``value_unit``: the unit of the values the scheme gives per input unit (Hz for rates).
    ``variable``, ``unit``: the state variable a run sets on each driven population, and its unit.
    ``spiking``: the input population is a group of spike sources whose spikes cross the input's
    projections; otherwise (``current``) the input has no group and its projections are replaced by
    what the encoder sets on the populations it drives.
    """

    name: str = ""
    value_unit = Hz
    variable: str = "rate"
    unit = Hz
    spiking: bool = True
    nonnegative: bool = True  # rates (and latencies) below zero mean nothing
    deterministic: bool = True  # the same values give the same input in every presentation (not Poisson)
    #: a variable of the input group by which each of its spikes' weight is multiplied on every input
    #: projection (None: every spike carries the synapse's weight)
    spike_weight: str | None = None
    #: the group takes constants from the network's rate_max (`configure`): a build cannot sweep it
    uses_rate_max: bool = False
    #: the input group's spike rates code its values, so rate metrics of the input population (its
    #: correlation of rates with targets, error terms, scatter) mean something; False (the phase code,
    #: whose spikes are a binary expansion with weights): the input population is left out of them
    rate_coded: bool = True

    def check(self, values: np.ndarray, where: str) -> np.ndarray:
        """The scheme's encoded values (b, n_input) as floats in ``value_unit``, refused if they are
        outside what the encoder can represent."""
        values = np.asarray(values, dtype=float)
        if values.ndim != 2:
            raise BioconvError(f"{where}: encoder {self.name!r} takes (samples, input units) values, got shape "
                               f"{values.shape}")
        if not np.all(np.isfinite(values)):
            raise BioconvError(f"{where}: encoder {self.name!r} got NaN or infinite values")
        if self.nonnegative and np.any(values < 0):
            raise BioconvError(f"{where}: encoder {self.name!r} got negative values (min {values.min():.3g} "
                               f"{self.value_unit}); it codes values >= 0")
        return values

    def driven(self, net) -> list[str]:
        """Names of the populations whose ``variable`` a run sets."""
        return [net.populations[0].name]

    def values(self, net, x: np.ndarray) -> dict[str, np.ndarray]:
        """Per driven population, the values (in ``unit``, flat: copy after copy) of ``variable`` for
        the batch ``x`` (b, n_input) of encoded values in ``value_unit``."""
        x = self.check(x, f"encoder {self.name!r}")
        return {net.populations[0].name: x.ravel()}

    def group(self, n: int, values: np.ndarray | None, name: str, table: TimedArray | None = None,
              count_spikes: bool = False) -> NeuronGroup:
        """The input group of ``n`` spike sources, its ``variable`` set to ``values`` (in ``unit``), or,
        with ``table`` (a TimedArray (presentations, n)), read from it per presentation.
        ``count_spikes``: as in `models.neuron_group` (a ``spike_count`` the group increments)."""
        raise NotImplementedError(f"encoder {self.name!r} builds no input group")

    def configure(self, group: NeuronGroup, net) -> None:
        """Set what the input ``group`` (built by `group`) takes from the mapped network ``net``,
        before the build is run or compiled (a compiled project holds these values: they must be
        part of its cache key, as the network's rate_max is)."""

    def params(self) -> dict:
        """The encoder's parameters that shape its group's generated code, as plain data (part of a
        compiled project's cache key; {} for an encoder without parameters)."""
        return {}

    def presentation_reset(self, table_name: str | None = None) -> str:
        """Brian2 code run on each driven group (the input group if ``spiking``) at the start of every
        presentation: what puts the encoder back to rest, or loads the presentation's values from the
        table named ``table_name``. The caller adds the reset of ``spike_count``."""
        return ""

    def table_name(self, population: str) -> str:
        """The name of the TimedArray that carries ``population``'s values, one row per presentation."""
        return "input_rates"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


def spike_counter(count_spikes: bool) -> tuple[str, str]:
    """(equation line, reset line) of a group's `spike_count`, as `models.neuron_group` adds them."""
    return ("\nspike_count : integer", "\nspike_count += 1") if count_spikes else ("", "")


def _rate_line(table: TimedArray | None) -> tuple[str, dict | None]:
    if table is not None:
        return f"rate = {table.name}(t, i) : Hz", {table.name: table}
    return "rate : Hz (constant)", None


class RegularEncoder(Encoder):
    """Regular spike trains at the given rates (seed 003 eq. 15): unit k fires at j / rate_k."""

    name = "regular"

    def group(self, n, values, name, table=None, count_spikes=False):
        rate, namespace = _rate_line(table)
        count, counting = spike_counter(count_spikes)
        # A phase oscillator fires at j / rate for j = 1, 2, ...: exact regular trains on the grid.
        g = NeuronGroup(n, f"{rate}\ndphase/dt = rate : 1{count}", threshold="phase >= 1",
                        reset="phase -= 1" + counting, method="euler", name=name, namespace=namespace)
        if table is None:
            g.rate = values * Hz
        return g

    def presentation_reset(self, table_name=None):
        return "phase = 0"


class PoissonEncoder(Encoder):
    """Poisson spike trains at the given rates (Brian2's ``rand()``, seeded per run)."""

    name = "poisson"
    deterministic = False

    def group(self, n, values, name, table=None, count_spikes=False):
        rate, namespace = _rate_line(table)
        count, counting = spike_counter(count_spikes)
        g = NeuronGroup(n, rate + count, threshold="rand() < rate*dt", reset=counting.strip() or None, name=name,
                        namespace=namespace)
        if table is None:
            g.rate = values * Hz
        return g


class CurrentEncoder(Encoder):
    """No input spikes: each first-layer unit receives, added to its ``I_bias``, the mean current its
    inputs would bring at the given rates (charge per spike x rate)."""

    name = "current"
    variable = "I_bias"
    unit = amp
    spiking = False

    def driven(self, net):
        source = net.populations[0].name
        return [p.name for p in net.populations if any(q.source == source for q in p.projections)]

    def values(self, net, x):
        x_rates = self.check(x, f"encoder {self.name!r}")
        input_pop = net.populations[0]
        syn_model = models.load(net.synapse)
        B = len(x_rates)
        out = {}
        for p in net.populations:
            for q in p.projections:
                if q.source == input_pop.name:
                    charge = np.asarray(q.w) * (1.0 if syn_model.kernel == "delta"
                                                else float(net.synapse_params["tau_s"]))
                    cur = np.zeros((B, p.size))
                    np.add.at(cur, (slice(None), q.j), charge * x_rates[:, q.i])  # all samples at once
                    base = np.broadcast_to(np.asarray(p.params.get("I_bias", 0 * amp), dtype=float), (p.size,))
                    out[p.name] = out.get(p.name, base[None, :]) + cur
        return {name: v.ravel() for name, v in out.items()}

    def presentation_reset(self, table_name=None):
        # The presentation's currents, set once when it starts: cheaper than a table lookup per
        # neuron and step, and I_bias stays the variable that single-presentation runs set.
        return f"I_bias = {table_name}(t, i)" if table_name else ""

    def table_name(self, population):
        return f"input_bias_{_safe(population)}"


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name)


for _encoder in (RegularEncoder(), PoissonEncoder(), CurrentEncoder()):
    encoders.register(_encoder.name, _encoder)


def get(name: str) -> Encoder:
    """The registered encoder ``name`` (an error names an unknown one and lists the registered)."""
    return encoders[name]
