"""Simulate a `CSSNetwork` in Brian2, one time step per coding step, and decode it (seed 002; FORMULAS §7).

Neurons: the input encoder (Theorem 2) is a TSA group (``equations/tsa.toml``, no silent period,
no input) started at ``u(0) = (a / theta_0) / beta^T``; hidden layers are TSA-ReLU groups
(``tsa_relu.toml``); the output is a TSA group that does not fire (option ``readout``); synapses
are ``signed_delta.toml`` (a positive spike adds w to the target's accumulated input v, a
negative spike subtracts it). B samples run at once as disjoint copies.

Schedule: layers are chained within a step. Brian2's default schedule tests thresholds before it
propagates spikes, so a spike fired in step k would reach the next layer after that layer's
threshold test of step k: one step of delay per layer, which silently turns the paper's TSA with
silent period Ts into the Ts = 0 neuron one step later (FORMULAS §7). Here every step runs: the
per-step updates of all layers (slot ``groups``), then, in slot ``thresholds``, layer 0's threshold
tests (order 0), its outgoing pathways (order 1), layer 1's tests (order 2), its pathways (order 3),
and so on by depth; the resets (``g += S``) follow in slot ``resets``. So a spike fired in step k
is part of its targets' input z[k] of step k, as in the paper. `network_schedule` lists the order
(Brian2's ``scheduling_summary``, the same on the runtime and the standalone devices).

Timing (0-based steps): layer l (depth l in weight layers) has its input window
``[(l-1) Ts, (l-1) Ts + T)`` and fires in ``[l Ts, l Ts + T)``; the input fires in ``[0, T)``. The
output layer (depth L) is read from its accumulated input v after step ``(L-1) Ts + T - 1``: the run
lasts ``T + (L-1) Ts`` steps (`bioconv.css.latency`). v is the logits in units of the output's
theta; the decision is its argmax, read after every step (`CSSOutput.trace`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from brian2 import (EventMonitor, Network, NeuronGroup, SpikeGeneratorGroup, SpikeMonitor, StateMonitor, TimedArray,
                    ms, second)

from .. import models
from ..errors import BioconvError, ParameterError
from ..simulate import simulation_device
from ..units import check_quantity
from .code import encodable, latency
from .mapping import CSSNetwork

SIGNED, RECTIFIED, SYNAPSE = "tsa", "tsa_relu", "signed_delta"
#: model parameters holding one value per layer
SHARED = ("beta", "Ts", "T", "k_in", "ternary", "period")
#: input encoder rules (Theorem 2): ternary |u| >= 1/2, or greedy binary u >= 1
RULES = ("ternary", "greedy")
#: synapses per run when the batch is chosen automatically (about 40 bytes each on the runtime device)
SYNAPSES_PER_RUN = 16_000_000
#: samples per run (copies x presentations) when the presentations are chosen automatically: a run's
#: start (building or loading the synapses, Brian2's preparations) is shared by this many
SAMPLES_PER_RUN = 256
#: the physical length of a coding step when none is given (only latencies in seconds depend on it)
DEFAULT_STEP = 1 * ms


@dataclass
class CSSOutput:
    """What a simulation gives for N samples; values in units of each layer's theta at these steps."""

    potential: np.ndarray  # (N, n_out): the output's accumulated input at the readout (logits / theta_L)
    trace: np.ndarray      # (N, n_run, n_out): the same after every step of the run
    decoded: dict = field(default_factory=dict)      # input and hidden layers -> (N, size): value of the train
    accumulated: dict = field(default_factory=dict)  # hidden layers -> (N, size): input W a + b (v / beta^Ts)
    residual: dict = field(default_factory=dict)     # input and hidden -> (N, size): o / beta^Ts at the end
    positive: dict = field(default_factory=dict)     # layer -> (N, size): positive spikes
    negative: dict = field(default_factory=dict)     # layer -> (N, size): negative spikes
    spikes: dict = field(default_factory=dict)       # record_spikes: layer -> (sample, unit, step, sign)
    thetas: dict = field(default_factory=dict)       # layer -> theta_l (activation units)
    steps: int = 0
    silent: int = 0
    beta: float = 0.0
    latency: int = 0
    run_steps: int = 0
    dt: float = 0.0


def _tile(idx: np.ndarray, n: int, B: int) -> np.ndarray:
    return (np.asarray(idx)[None, :] + n * np.arange(B)[:, None]).ravel()


def check_settings(steps, silent, beta, rule, where: str) -> tuple[int, int, float]:
    for name, v, low in (("steps", steps, 1), ("Ts", silent, 0)):
        if isinstance(v, (bool, np.bool_)) or int(v) != v or v < low:
            raise ParameterError(f"{where}: {name} must be an integer >= {low}, got {v!r}")
    beta = float(beta)
    if not 1 < beta <= 2:
        raise ParameterError(f"{where}: beta must be in (1, 2] (amplification; Theorem 2's encoder needs beta <= 2), "
                             f"got {beta!r}")
    if rule not in RULES:
        raise ParameterError(f"{where}: the encoder rule must be one of {RULES}, got {rule!r}")
    return int(steps), int(silent), beta


def initial_potential(fraction, beta: float, steps: int) -> np.ndarray:
    """Theorem 2's start ``u(0) = (a / theta_0) / beta^T`` for inputs given as ``fraction = a / p_0``
    of the encodable range (``theta_0 = p_0 / S_T``)."""
    return np.asarray(fraction, dtype=np.float64) * encodable(beta, steps) / beta ** steps


def _encoder_group(n: int, *, steps: int, beta: float, rule: str, name: str, period: float = 1e9) -> NeuronGroup:
    # Theorem 2: a signed TSA without input, silent period or bias; the greedy rule is the binary
    # neuron (threshold 1, no negative spikes)
    return models.neuron_group(n, SIGNED, None, reset="signed", shared=SHARED, name=name, beta=beta, Ts=0.0,
                               T=float(steps), k_in=0.0, ternary=1.0 if rule == "ternary" else 0.0, period=period)


def _chain(groups: list[tuple], synapses: list[tuple]) -> None:
    """Schedule threshold tests and pathways by depth within the step (see the module docstring).
    ``groups``: (group, depth); ``synapses``: (Synapses, depth of their source)."""
    for g, d in groups:
        if isinstance(g, SpikeGeneratorGroup):  # emits its spikes itself, in its own slot
            g.when, g.order = "thresholds", 2 * d
            continue
        for thresholder in g.thresholder.values():
            thresholder.when, thresholder.order = "thresholds", 2 * d
    for S, d in synapses:
        for pathway in S._pathways:
            pathway.when, pathway.order = "thresholds", 2 * d + 1


class _Built:
    """The Brian2 objects for B copies of the network, each shown K samples one after another
    (presentations of P steps: every model's step count k restarts, its sums are reset and the
    encoder is loaded from the presentation's row of the table ``css_input_table``)."""

    def __init__(self, net: CSSNetwork, B: int, K: int, P: int, *, steps: int, silent: int, beta: float,
                 ternary: bool, rule: str, dt: float, store: bool = True):
        self.net, self.B, self.K, self.P = net, B, K, P
        self.steps, self.silent, self.beta = steps, silent, beta
        T, Ts = steps, silent
        period = P * dt * second
        self.groups, self.pos_mon, self.neg_mon, self.ends = {}, {}, {}, {}
        chained_groups, chained_synapses, objects = [], [], []
        for k, p in enumerate(net.layers):
            n = B * p.size
            if p.kind == "input":
                g = _encoder_group(n, steps=T, beta=beta, rule=rule, name="css_input", period=float(P))
                self.table = TimedArray(np.zeros((K, n)), dt=period, name="css_input_table")
                self.namespace = {self.table.name: self.table}  # what the runs resolve, and nothing else
                start = "v = css_input_table(t, i)\ng = 0"
            else:
                common = dict(reset="signed", shared=SHARED, name=f"css_layer_{k}", beta=beta, Ts=float(Ts),
                              T=float(T), k_in=float((p.depth - 1) * Ts), ternary=1.0 if ternary else 0.0,
                              bias=np.tile(net.bias_per_step(p), B), period=float(P))
                if p.kind == "hidden":
                    g = models.neuron_group(n, RECTIFIED, SYNAPSE, **common)
                else:
                    # Ts = 0 for the non-firing readout: its sums freeze right after its input window,
                    # so v stays the readout however long the presentation goes on
                    g = models.neuron_group(n, SIGNED, SYNAPSE, options=("readout",), **dict(common, Ts=0.0))
                start = models.rest_state_code(g)
            # each presentation starts from rest (slot 'start', before the step update)
            g.run_regularly(start, dt=period, when="start", order=0, name=f"{g.name}_presentation")
            self.groups[p.name] = g
            objects.append(g)
            chained_groups.append((g, p.depth))
            if p.kind != "output":
                self.pos_mon[p.name] = SpikeMonitor(g, when="resets", name=f"css_pos_{k}")
                self.neg_mon[p.name] = EventMonitor(g, "negative", when="resets", name=f"css_neg_{k}")
                # the sums at the end of each presentation but the last, read before the next one's reset
                self.ends[p.name] = StateMonitor(g, ["v", "g"], record=True, dt=period, when="start", order=-1,
                                                 name=f"css_ends_{k}")
            for m, q in enumerate(p.projections):
                src = net.layer(q.source)
                order = np.argsort(q.i, kind="stable")  # source order: a spike's targets sit together
                S = models.synapses(self.groups[q.source], g, SYNAPSE, i=_tile(q.i[order], src.size, B),
                                    j=_tile(q.j[order], p.size, B), w=np.tile(net.weights(p, q)[order], B),
                                    delay=0 * second, name=f"css_syn_{k}_{m}")
                objects.append(S)
                chained_synapses.append((S, src.depth))
        _chain(chained_groups, chained_synapses)
        self.trace = StateMonitor(self.groups[net.layers[-1].name], "v", record=True, when="end", name="css_trace")
        self.network = Network(*objects, *self.pos_mon.values(), *self.neg_mon.values(), *self.ends.values(),
                               self.trace)
        if store:  # not on a standalone device (no store/restore there)
            self.network.store("rest")

    def table_values(self, fraction: np.ndarray) -> np.ndarray:
        """The encoder's start potentials (K, B n_in) for up to K B samples ``fraction`` (flat
        inputs over p_0), sample s in presentation s // B of copy s % B; the rest silent."""
        rows = np.zeros((self.K * self.B, fraction.shape[1]))
        rows[:len(fraction)] = initial_potential(fraction, self.beta, self.steps)
        return rows.reshape(self.K, -1)

    def run(self, fraction: np.ndarray, dt: float) -> CSSOutput:
        """Present ``fraction`` (up to K B samples) on the runtime device."""
        self.network.restore("rest")
        self.table.values[:] = self.table_values(fraction)  # in place: the generated code holds this array
        self.network.run(self.K * self.P * dt * second, namespace=self.namespace)
        return self.read(len(fraction), dt)

    def _per_sample(self, values: np.ndarray, size: int) -> np.ndarray:
        """(B size, K) values of every copy's presentations -> (K B, size), sample by sample."""
        return values.reshape(self.B, size, self.K).transpose(2, 0, 1).reshape(self.K * self.B, size)

    def read(self, b: int, dt: float) -> CSSOutput:
        """What the last run left for its first ``b`` samples. Copies: on the runtime device a
        variable's values are a view of its array, which the next run overwrites."""
        net, B, K, P = self.net, self.B, self.K, self.P
        out_size = net.layers[-1].size
        trace = _copy(self.trace.v).reshape(B, out_size, K, P).transpose(2, 0, 3, 1).reshape(K * B, P, out_size)[:b]
        res = CSSOutput(trace[:, -1].copy(), trace)
        amp = self.beta ** self.silent
        for p in net.layers[:-1]:
            group, mon = self.groups[p.name], self.ends[p.name]
            # the presentations' ends: the monitor's samples at the next presentations' starts, then now
            v = self._per_sample(np.column_stack([_copy(mon.v)[:, 1:], _copy(group.v)]), p.size)[:b]
            g = self._per_sample(np.column_stack([_copy(mon.g)[:, 1:], _copy(group.g)]), p.size)[:b]
            res.decoded[p.name] = g
            # the models' o (tsa: v - g, the encoder has Ts = 0; tsa_relu: max(v, 0) - beta^Ts g), over
            # beta^Ts; computed here because a standalone device cannot evaluate a subexpression
            res.residual[p.name] = v - g if p.kind == "input" else (np.maximum(v, 0.0) - amp * g) / amp
            if p.kind == "hidden":
                res.accumulated[p.name] = v / amp
            parts = []
            for counts, spikes, sign in (("positive", self.pos_mon, 1), ("negative", self.neg_mon, -1)):
                i, t = _copy(spikes[p.name].i), _copy(spikes[p.name].t)
                step = np.rint(t / dt).astype(np.int64)
                sample, unit = (step // P) * B + i // p.size, i % p.size
                keep = sample < b
                sample, unit, step = sample[keep], unit[keep], step[keep] % P
                getattr(res, counts)[p.name] = np.bincount(sample * p.size + unit,
                                                           minlength=b * p.size).reshape(b, p.size)
                parts.append((sample, unit, step, np.full(len(sample), sign)))
            res.spikes[p.name] = tuple(np.concatenate(c) for c in zip(*parts))
        return res


def _copy(variable) -> np.ndarray:
    return np.array(variable[:], copy=True)


def _plan(net: CSSNetwork, n: int, batch: int | None, presentations: int | None) -> tuple[int, int, int]:
    """(copies B, presentations K, runs) for n samples: B from the synapse budget unless given, K
    so that a run holds about `SAMPLES_PER_RUN` samples unless given, spread evenly over the runs."""
    synapses = sum(len(q.weight) for p in net.layers for q in p.projections)
    B = int(max(1, min(n, 64, SYNAPSES_PER_RUN // max(synapses, 1)))) if batch is None else min(int(batch), n)
    per_copy = -(-n // B)  # presentations the data needs on B copies
    K = max(1, min(per_copy, SAMPLES_PER_RUN // B)) if presentations is None else min(int(presentations), per_copy)
    runs = -(-per_copy // K)
    return B, -(-per_copy // runs), runs


def simulate(net: CSSNetwork, x, *, steps: int, silent: int = 1, beta: float = 1.5, ternary: bool = True,
             rule: str = "ternary", batch: int | None = None, step=DEFAULT_STEP, record_spikes: bool = False,
             run_steps: int | None = None, presentations: int | None = None, device: str = "runtime",
             threads: int | None = 1) -> CSSOutput:
    """Run ``net`` on inputs ``x`` (N, *input_shape) with T = ``steps`` coding steps, silent period
    Ts = ``silent``, amplification ``beta``; ``ternary=False``: binary hidden neurons (threshold
    beta^Ts, no negative spikes: the ablation); ``rule``: the input encoder's ('ternary' or
    'greedy'). ``batch`` samples at once as disjoint copies (None: as many as keep a run near
    `SYNAPSES_PER_RUN` synapses, at most 64), each shown ``presentations`` samples one after another
    in a run (None: about `SAMPLES_PER_RUN` samples per run). ``step``: the physical length of a step
    (Brian2's dt). ``record_spikes``: keep every spike (`CSSOutput.spikes`). ``run_steps``: steps per
    presentation instead of the latency (at least the latency; the readout is then taken at the end).
    ``device``: 'runtime' (Brian2's numpy runtime: the network built once and restored for every
    batch) or 'cpp' (bioconv's C++ standalone device: compiled once, the binary run for every batch
    with new inputs; ``threads`` OpenMP threads, 1 by default). Both run the same schedule
    (`network_schedule`) and give the same spikes."""
    where = "bioconv.css.simulate"
    if device not in ("runtime", "cpp"):
        raise ParameterError(f"{where}: device must be 'runtime' or 'cpp', got {device!r}")
    steps, silent, beta = check_settings(steps, silent, beta, rule, where)
    step = check_quantity(step, second.dim, "step", where, positive=True)
    x = np.asarray(x, dtype=np.float64)
    in_shape = net.layers[0].shape
    if x.ndim < 2 or len(x) == 0 or tuple(x.shape[1:]) != tuple(in_shape):
        raise BioconvError(f"{where}: inputs must have shape (N, {', '.join(map(str, in_shape))}), got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise BioconvError(f"{where}: inputs hold NaN or infinite values")
    lat = latency(steps, silent, net.weight_layers)
    run_steps = lat if run_steps is None else int(run_steps)
    if run_steps < lat:
        raise ParameterError(f"{where}: run_steps ({run_steps}) is shorter than the latency T + (L-1) Ts = {lat}")
    for name, value in (("batch", batch), ("presentations", presentations)):
        if value is not None and (isinstance(value, (bool, np.bool_)) or int(value) != value or value < 1):
            raise ParameterError(f"{where}: {name} must be a positive integer, got {value!r}")
    B, K, _ = _plan(net, len(x), batch, presentations)
    fraction = x.reshape(len(x), -1) / net.layers[0].scale
    dt = float(step)
    settings = dict(steps=steps, silent=silent, beta=beta, ternary=ternary, rule=rule, dt=dt)
    chunks = [fraction[k:k + B * K] for k in range(0, len(x), B * K)]
    if device == "runtime":
        with simulation_device("runtime", dt=step):
            built = _Built(net, B, K, run_steps, **settings)
            parts = [built.run(chunk, dt) for chunk in chunks]
    else:
        parts = _run_cpp(net, chunks, B, K, run_steps, settings, threads)
    for k, part in zip(range(0, len(x), B * K), parts):
        for name, (sample, *rest) in part.spikes.items():
            part.spikes[name] = (sample + k, *rest)
    out = CSSOutput(np.concatenate([p.potential for p in parts]), np.concatenate([p.trace for p in parts]),
                    steps=steps, silent=silent, beta=beta, latency=lat, run_steps=run_steps, dt=dt)
    for attr in ("decoded", "accumulated", "residual", "positive", "negative"):
        for name in getattr(parts[0], attr):
            getattr(out, attr)[name] = np.concatenate([getattr(p, attr)[name] for p in parts])
    if record_spikes:
        for name in parts[0].spikes:
            out.spikes[name] = tuple(np.concatenate(c) for c in zip(*(p.spikes[name] for p in parts)))
    out.thetas = {p.name: p.theta(beta, steps) for p in net.layers}
    return out


def _run_cpp(net, chunks, B, K, P, settings, threads) -> list[CSSOutput]:
    """bioconv's C++ standalone device: the network compiled once, the binary run for every chunk of
    samples with their encoder start potentials as a run argument (the table, Brian2's run_args)."""
    from brian2 import device as current
    dt = settings["dt"]
    with simulation_device("cpp", dt=dt * second, build_on_run=False, threads=threads) as folder:
        built = _Built(net, B, K, P, store=False, **settings)
        built.network.run(K * P * dt * second, namespace=built.namespace)
        current.build(directory=str(folder), compile=True, run=False, with_output=False)
        parts = []
        for chunk in chunks:
            current.run(directory=str(folder), with_output=False, run_args={built.table: built.table_values(chunk)})
            parts.append(built.read(len(chunk), dt))
        return parts


def network_schedule(net: CSSNetwork, *, steps: int = 4, silent: int = 1, beta: float = 1.5,
                     device: str = "runtime") -> list[tuple[str, str, int]]:
    """(object name, scheduling slot, order) of every object of the network built for one copy, in
    the order Brian2 runs them in a step (its ``scheduling_summary``), on ``device``: 'runtime' or
    'cpp' (bioconv's C++ standalone device; the network is built, not compiled or run)."""
    if device not in ("runtime", "cpp"):
        raise ParameterError(f"network_schedule: device must be 'runtime' or 'cpp', got {device!r}")
    with simulation_device(device, build_on_run=False):
        built = _Built(net, 1, 1, latency(steps, silent, net.weight_layers), steps=steps, silent=silent, beta=beta,
                       ternary=True, rule="ternary", dt=float(DEFAULT_STEP), store=False)
        summary = built.network.scheduling_summary()
    return [(e.name, e.when, e.order) for e in summary.entries]


@dataclass
class NeuronTrace:
    """One neuron driven by given input (`neuron`): its spike train over the firing window, the
    value it decodes to and the residual, in units of its theta."""

    spikes: np.ndarray  # (T,) in {-1, 0, 1}
    value: float
    residual: float


def neuron(z, *, beta: float, steps: int, silent: int, relu: bool = True, ternary: bool = True,
           weights=None) -> NeuronTrace:
    """Drive one TSA(-ReLU) neuron (input window from step 0) through the signed-delta synapse.

    ``z``: without ``weights``, the input per step (a generator spike of weight z[k] in step k);
    with ``weights`` (n_in,), binary input trains (n_in, K): input j spikes in step k where
    ``z[j, k]`` is 1 and adds ``weights[j]``. The neuron is built from the model files and
    scheduled as in a network (`_chain`)."""
    steps, silent, beta = check_settings(steps, silent, beta, "ternary", "bioconv.css.neuron")
    z = np.asarray(z, dtype=np.float64)
    if weights is None:
        k = np.flatnonzero(z)
        idx, times, w = np.arange(len(k)), k, z[k]
    else:
        j, k = np.nonzero(z)
        idx, times, w = np.arange(len(j)), k, np.asarray(weights, dtype=np.float64)[j]
    with simulation_device("runtime", dt=DEFAULT_STEP):
        src = SpikeGeneratorGroup(max(len(idx), 1), idx, times * DEFAULT_STEP, name="css_drive")
        g = models.neuron_group(1, RECTIFIED if relu else SIGNED, SYNAPSE, reset="signed", shared=SHARED,
                                name="css_neuron", beta=beta, Ts=float(silent), T=float(steps), k_in=0.0,
                                ternary=1.0 if ternary else 0.0)
        S = models.synapses(src, g, SYNAPSE, i=idx, j=np.zeros(len(idx), int),
                            w=w, delay=0 * second, name="css_drive_syn")
        _chain([(src, 0), (g, 1)], [(S, 0)])
        pos, neg = SpikeMonitor(g, when="resets"), EventMonitor(g, "negative", when="resets")
        Network(src, g, S, pos, neg).run((silent + steps) * DEFAULT_STEP, namespace={})
        train = np.zeros(steps)
        for mon, sign in ((pos, 1), (neg, -1)):
            train[np.rint(np.asarray(mon.t[:]) / float(DEFAULT_STEP)).astype(int) - silent] += sign
        return NeuronTrace(train, float(g.g[0]), float(g.o[0]) / beta ** silent)


def encoder_trains(fraction, *, beta: float, steps: int, rule: str = "ternary") -> np.ndarray:
    """The input encoder's spike trains (N, T) for inputs ``fraction`` (N,) = a / p_0, simulated
    (the group of a network's input layer, alone)."""
    steps, _, beta = check_settings(steps, 0, beta, rule, "bioconv.css.encoder_trains")
    fraction = np.asarray(fraction, dtype=np.float64).ravel()
    with simulation_device("runtime", dt=DEFAULT_STEP):
        g = _encoder_group(len(fraction), steps=steps, beta=beta, rule=rule, name="css_input")
        g.v = initial_potential(fraction, beta, steps)
        pos, neg = SpikeMonitor(g, when="resets"), EventMonitor(g, "negative", when="resets")
        Network(g, pos, neg).run(steps * DEFAULT_STEP, namespace={})
        trains = np.zeros((len(fraction), steps))
        for mon, sign in ((pos, 1), (neg, -1)):
            trains[np.asarray(mon.i[:]), np.rint(np.asarray(mon.t[:]) / float(DEFAULT_STEP)).astype(int)] += sign
    return trains
