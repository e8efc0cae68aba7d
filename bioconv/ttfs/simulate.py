"""Simulate a `TTFSNetwork` in Brian2 and decode it (LC-TTFS, seed 004; FORMULAS §8).

Timing. Brian2 tests in a step the state at the step's end and stamps a spike with the step's start,
so a spike's effective time is its stamp + dt: that is when its current starts in the targets and
when the threshold was crossed (crossings snap up to the grid). The run starts one step before the
model's t = 0 (``origin = dt``), so that the brightest input (a = 1, model time 0) has the stamp 0:
a spike stamped ``s`` happened at model time ``s + dt - origin = s``, and a hidden layer ``l``
decodes ``a = l + 1 - (s + dt - origin) / T_w``. Inputs are placed on the grid, at the nearest step
to ``(1 - a) T_w``. Hidden windows are ``[origin + l T_w, origin + (l + 1) T_w)`` in state time;
the output membrane is read at ``origin + L T_w`` (model time ``L T_w``), the end of the run.

Max pooling is a gate per pooling window that fires on the window's first spike: max of activations
is min of spike times. Its spike must reach the next layer in the step of the first input spike,
or every pooled activation would lose one step: the gate's threshold and its outgoing pathway run
in the ``after_synapses`` slot, after the input spikes of the step have set its ``got`` flag.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from brian2 import Network, NeuronGroup, SpikeGeneratorGroup, SpikeMonitor, StateMonitor, Synapses, second

from .. import models
from ..errors import BioconvError, ParameterError
from ..simulate import simulation_device
from .latency import check_unit_interval
from .mapping import TTFSNetwork

NEURON, SYNAPSE = "relpsp", "step_current"


@dataclass
class TTFSOutput:
    """What a simulation gives for N samples."""

    potential: np.ndarray                 # (N, n_out): output V at t = L T_w, in units of v_th (the logits)
    activations: dict = field(default_factory=dict)  # layer -> (N, size): decoded a (NaN: no spike)
    times: dict = field(default_factory=dict)        # layer -> (N, size): model spike time, s (NaN: none)
    spikes: dict = field(default_factory=dict)       # layer -> (N, size): spikes per neuron
    steps: int = 0
    dt: float = 0.0
    # record_potential=True: the output membranes (N, K, n_out) in units of v_th at the model times
    # trace_times (K,) = 0, dt, ..., L T_w (the last one is `potential`): the decision read at each time
    potential_trace: np.ndarray | None = None
    trace_times: np.ndarray | None = None


def _tile(idx: np.ndarray, n: int, B: int) -> np.ndarray:
    return (np.asarray(idx)[None, :] + n * np.arange(B)[:, None]).ravel()


class _Built:
    """The Brian2 objects for B copies of the network."""

    def __init__(self, net: TTFSNetwork, B: int, dt: float, dynamic_threshold: bool = True, half_step: bool = False,
                 record_potential: bool = False):
        self.net, self.B, self.dt = net, B, dt
        T_w = float(net.T_w)
        origin = dt
        self.groups, self.monitors, objects = {}, {}, []
        inp = net.layers[0]
        self.generator = SpikeGeneratorGroup(B * inp.size, [], [] * second, name="ttfs_input")
        self.groups[inp.name] = self.generator
        objects.append(self.generator)
        for k, p in enumerate(net.layers[1:], start=1):
            if p.kind == "maxpool":
                n_gates = p.size
                gate = NeuronGroup(B * n_gates, "got : boolean\nfired : boolean", threshold="got and not fired",
                                   reset="fired = True", name=f"ttfs_gate_{k}")
                gate.thresholder["spike"].when = "after_synapses"
                src_layer = net.layer(p.projections[0].source)
                units = np.flatnonzero(p.pool_groups >= 0)
                feed = Synapses(self.groups[src_layer.name], gate, on_pre="got_post = True", name=f"ttfs_pool_{k}")
                feed.connect(i=_tile(units, src_layer.size, B).astype(np.int32),
                             j=_tile(p.pool_groups[units], n_gates, B).astype(np.int32))
                self.groups[p.name] = gate
                objects += [gate, feed]
                self.monitors[p.name] = SpikeMonitor(gate, name=f"ttfs_spikes_{k}")
                continue
            common = dict(Cm=net.Cm, v_th=net.v_th)
            if p.kind == "hidden":
                if half_step:  # the currents keep net.v_th: only the threshold moves
                    common["v_th"] = net.v_th * (1 - dt / (2 * T_w))
                # without the dynamic threshold (an ablation): a fixed threshold v_th from t = 0 on
                window = dict(options=("window",), t_on=(origin + p.window * T_w) * second, T_w=net.T_w,
                              shared=("Cm", "v_th", "I_bias", "t_on", "T_w")) if dynamic_threshold else \
                    dict(shared=("Cm", "v_th", "I_bias"))
                g = models.neuron_group(B * p.size, NEURON, SYNAPSE, reset="hold", name=f"ttfs_layer_{k}",
                                        **window, **common)
                self.monitors[p.name] = SpikeMonitor(g, name=f"ttfs_spikes_{k}")
            else:
                g = models.neuron_group(B * p.size, NEURON, SYNAPSE, reset="hold", options=("readout",),
                                        shared=("Cm", "v_th", "I_bias"), name="ttfs_output", **common)
            self.groups[p.name] = g
            objects.append(g)
            for q in p.projections:
                src = self.groups[q.source]
                n_src = net.layer(q.source).size
                order = np.argsort(q.i, kind="stable")  # source order: a spike's targets sit together
                S = models.synapses(src, g, SYNAPSE, i=_tile(q.i[order], n_src, B), j=_tile(q.j[order], p.size, B),
                                    w=net.current(np.tile(q.weight[order], B)), name=f"ttfs_syn_{k}_{len(objects)}")
                if net.layer(q.source).kind == "maxpool":
                    S.pre.when, S.pre.order = "after_synapses", 1  # after the gate's threshold (order 0)
                objects.append(S)
        self.output = self.groups[net.layers[-1].name]
        # the output membranes at the start of every step (before its update): V at t = k dt
        self.trace = StateMonitor(self.output, "v", record=True, name="ttfs_output_v") if record_potential else None
        # (a StateMonitor with no data yet has length 0, so it is tested against None, never for truth)
        self.network = Network(*objects, *self.monitors.values(), *([self.trace] if self.trace is not None else []))
        self.duration = origin + net.n_windows * T_w
        self.network.store("rest")

    def run(self, x: np.ndarray, steps: int) -> TTFSOutput:
        """Present ``x`` (b <= B samples, flat inputs in [0, 1]) once; read out and decode."""
        b, n_in = x.shape
        net, dt = self.net, self.dt
        self.network.restore("rest")
        # model time (1 - a) T_w on the grid; the stamp is the model time (origin = dt)
        k = np.rint((1.0 - x) * steps).astype(np.int64)
        idx = (np.arange(n_in)[None, :] + n_in * np.arange(b)[:, None]).ravel()
        self.generator.set_spikes(idx, k.ravel() * dt * second)
        out_layer = net.layers[-1]
        self.output.v = np.tile(out_layer.bias, self.B) * net.v_th
        self.network.run(self.duration * second, namespace={})
        v = np.asarray(self.output.v[:]).reshape(self.B, out_layer.size)[:b] / float(net.v_th)
        result = TTFSOutput(v, steps=steps, dt=dt)
        if self.trace is not None:
            # state time k dt is model time (k - 1) dt (origin = dt): drop k = 0 (model time -dt), and
            # append the final V, at model time L T_w
            rec = np.asarray(self.trace.v[:]).reshape(self.B, out_layer.size, -1)[:b, :, 1:] / float(net.v_th)
            result.potential_trace = np.concatenate([rec, v[:, :, None]], axis=2).transpose(0, 2, 1)
            result.trace_times = np.arange(result.potential_trace.shape[1]) * dt
        result.activations[net.layers[0].name] = 1.0 - k / steps
        result.times[net.layers[0].name] = k * dt
        result.spikes[net.layers[0].name] = np.ones_like(x)
        for name, mon in self.monitors.items():
            layer = net.layer(name)
            i, t = np.asarray(mon.i[:]), np.asarray(mon.t[:])
            counts = np.bincount(i, minlength=self.B * layer.size).reshape(self.B, layer.size)[:b]
            stamp_steps = np.rint(t / dt).astype(np.int64)
            first = np.full(self.B * layer.size, np.nan)
            # first spike of each neuron (there is one at most): model time = stamp + dt - origin = stamp
            first[i[::-1]] = stamp_steps[::-1] * dt
            first = first.reshape(self.B, layer.size)[:b]
            result.times[name] = first
            result.activations[name] = layer.window + 1 - first / float(net.T_w)
            result.spikes[name] = counts
        return result


def simulate(net: TTFSNetwork, x, *, steps: int = 50, batch: int = 32, device: str = "runtime",
             dynamic_threshold: bool = True, half_step: bool = False, record_potential: bool = False,
             progress: bool = False) -> TTFSOutput:
    """Run ``net`` on inputs ``x`` (N, *input_shape) in [0, 1], ``steps`` time steps per window
    (dt = T_w / steps), ``batch`` samples at once as disjoint copies. Returns the output membranes at
    t = L T_w (units of v_th) and every layer's decoded activations and spike counts.
    ``dynamic_threshold=False`` (an ablation, seed 004 Table III) gives hidden neurons a fixed
    threshold from t = 0 on: they may fire early (premature spikes) or never (NaN activations).
    ``half_step=True`` (not in the paper) lowers the hidden threshold by half a step of the slope a
    unit with weight sum 1 has (``v_th dt / (2 T_w)``): a crossing is seen at the next grid point, up
    to a step late and half a step on average, so this centres the timing error on zero instead of
    letting each layer read about half a step low. The decode rule is unchanged.
    ``record_potential=True`` also records the output membranes at every step (``potential_trace``
    at ``trace_times``, model time), from which the decision at each time is read (decision time,
    `bioconv.coding.metrics`). ``progress``: a progress bar over the samples.
    Only Brian2's runtime device: the batch's input spikes change between runs of one built network."""
    if device != "runtime":
        raise ParameterError(f"bioconv.ttfs.simulate: device {device!r} is not supported yet; use 'runtime'")
    if int(steps) != steps or steps < 1 or int(batch) != batch or batch < 1:
        raise ParameterError(f"bioconv.ttfs.simulate: steps and batch must be positive integers, got {steps!r}, {batch!r}")
    x = np.asarray(x, dtype=np.float64)
    in_shape = net.layers[0].shape
    if x.ndim < 2 or tuple(x.shape[1:]) != tuple(in_shape):
        raise BioconvError(f"bioconv.ttfs.simulate: inputs must have shape (N, {', '.join(map(str, in_shape))}), "
                           f"got {x.shape}")
    x = check_unit_interval(x, "bioconv.ttfs.simulate").reshape(len(x), -1)
    steps, B = int(steps), min(int(batch), len(x))
    dt = float(net.T_w) / steps
    parts = []
    from tqdm.auto import tqdm
    with simulation_device("runtime", dt=dt * second), \
            tqdm(total=len(x), desc=f"ttfs ({B} copies, {steps} steps/window)", unit="sample",
                 disable=not progress) as bar:
        built = _Built(net, B, dt, dynamic_threshold, half_step, record_potential)
        for k in range(0, len(x), B):
            parts.append(built.run(x[k:k + B], steps))
            bar.update(len(parts[-1].potential))
    out = TTFSOutput(np.concatenate([p.potential for p in parts]), steps=steps, dt=dt)
    if record_potential:
        out.potential_trace = np.concatenate([p.potential_trace for p in parts])
        out.trace_times = parts[0].trace_times
    for name in parts[0].activations:
        out.activations[name] = np.concatenate([p.activations[name] for p in parts])
        out.times[name] = np.concatenate([p.times[name] for p in parts])
        out.spikes[name] = np.concatenate([p.spikes[name] for p in parts])
    return out
