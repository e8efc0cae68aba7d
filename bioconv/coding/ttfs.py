"""Time-to-first-spike coding (LC-TTFS, seed 004; FORMULAS §8) through the coding-scheme seam.

The physics and the decoding live in `bioconv.ttfs`; this module states them as a `CodingScheme`:
``convert(model, coding="ttfs", T_w=..., v_th=..., Cm=..., strict=...)`` maps with
`bioconv.ttfs.map_network` (no calibration data: no normalization), and ``SNN.evaluate`` runs
`bioconv.ttfs.simulate` (the scheme simulates its networks itself: ReL-PSP neurons in layer windows
are not rate-coded populations).

Evaluation timing: ``duration`` is the window length ``T_w`` (the run itself lasts ``L`` windows and
a step); ``steps`` (default 50, the paper's) sets ``dt = T_w / steps``; a ``dt`` given must divide
``T_w``. The decision is the output membrane's argmax at ``t = L T_w`` (a unique winner; ties are
undecided). The membranes are also recorded at every step, so ``times`` holds every step's model
time, 0 to ``L T_w``, and ``accuracy_vs_time`` / ``decision_time`` follow the decision read there
(`bioconv.coding.metrics`).
"""
from __future__ import annotations

import numbers

import numpy as np
from brian2 import farad, mV, ms, pF, second, volt

from .. import ttfs
from . import metrics
from ..errors import BioconvError, ParameterError
from ..units import check_quantity
from .encoders import Encoder, encoders
from .scheme import CodingScheme, Param, check_labels, schemes

#: The paper's steps per window (seed 004 sec. IV-A: dt = 0.02 ms, T_w = 1 ms).
DEFAULT_STEPS = 50


def _check_flag(value, name, owner):
    if not isinstance(value, (bool, np.bool_)):
        raise ParameterError(f"{owner}: {name} must be True or False, got {value!r}")
    return bool(value)


class LatencyEncoder(Encoder):
    """Seed 004 eq. 7 (seed 001's latency code): input ``a`` in [0, 1] fires once at ``(1 - a) T_w``.
    Its values are those spike times (s); `bioconv.ttfs.simulate` places them on the grid (nearest
    step) in a SpikeGeneratorGroup per batch. It serves TTFS coding, which simulates itself."""

    name = "latency"
    value_unit = second
    variable = "t_spike"
    unit = second
    spiking = True
    nonnegative = True
    deterministic = True
    rate_coded = False  # one spike per input: its time, not a rate, codes the value


encoders.register("latency", LatencyEncoder())


def energy(net, spikes: dict, steps: int) -> dict:
    """Seed 004's energy proxy (eq. 22) of each sample of a simulation of the `TTFSNetwork` ``net``:
    ``synops`` (N,), the simulated ``spikes`` ``{layer: (N, size)}`` times each unit's out-degree as
    wired (`TTFSNetwork.out_degree`); ``neuron_ops``, the ReL-PSP neurons (`TTFSNetwork.n_neurons`)
    times the model's ``L x steps`` time steps (``steps`` per window; the simulation's extra first
    step, the origin, is not part of the model and not counted); ``energy_proxy`` (N,), their sum.
    Table IV's autoencoder, every neuron spiking once at 50 steps: 221,184 + 360,000 = 581,184."""
    events = metrics.synops(spikes, {name: net.out_degree(name) for name in spikes})
    neuron_ops = metrics.neuron_updates(net.n_neurons, net.n_windows * int(steps))
    return dict(synops=events, neuron_ops=neuron_ops, energy_proxy=metrics.energy_proxy(events, neuron_ops))


@schemes.register("ttfs")
class TTFSCoding(CodingScheme):
    """LC-TTFS: see the module docstring and `bioconv.ttfs.mapping` for the parameters' meaning."""

    name = "ttfs"
    PARAMETERS = {
        "T_w": Param(1 * ms, dim=second.dim, positive=True, doc="window length of a layer"),
        "v_th": Param(20 * mV, dim=volt.dim, positive=True, doc="threshold (the paper's 1)"),
        "Cm": Param(100 * pF, dim=farad.dim, positive=True, doc="membrane capacitance (sets the step currents)"),
        "strict": Param(True, check=_check_flag, bad="yes",
                        doc="refuse a violated weight sum or a ReLU (False: convert with a warning)"),
        "dynamic_threshold": Param(True, check=_check_flag, bad="yes",
                                   doc="seed 004's windowed threshold (False: fixed threshold, an ablation)"),
        "half_step": Param(False, check=_check_flag, bad="yes",
                           doc="lower the hidden threshold by half a step of slope (not in the paper)"),
    }
    encoders = ("latency",)
    default_encoder = "latency"
    metric_names = ("accuracy", "ann_accuracy", "agreement", "accuracy_vs_time", "agreement_vs_time",
                    "undecided_fraction", "layer_correlation", "scatter", "synaptic_events", "decision_time",
                    "spikes_per_neuron", "energy_proxy")
    needs_calibration = False
    simulates_itself = True

    def check_inputs(self, x, shape, where):
        x = super().check_inputs(x, shape, where)
        return ttfs.check_unit_interval(x, where)

    def populations(self, graph):
        """None: TTFS maps the graph itself (`bioconv.ttfs.map_network` composes its layers, ReLU1 as
        one population, max pooling as a gate after a ReLU1). Rate coding's populations do not apply
        and would refuse a max pooling after a ReLU1."""
        return None

    def map(self, graph, pops, calibration):
        v = self.values
        return ttfs.map_network(graph, T_w=v["T_w"], v_th=v["v_th"], Cm=v["Cm"], strict=v["strict"]), None

    def targets(self, snn, x):
        """The ANN's activation of every TTFS layer (hidden: ReLU1, max pool: the pooled value) and
        its output logits: what the decoded spike times and the output membrane (in v_th) give."""
        acts = snn.graph.forward(x)
        return {p.name: acts[p.name].reshape(len(x), -1) for p in snn.mapped.layers[1:]}

    def encode(self, snn, x, targets=None):
        return ttfs.spike_times(x.reshape(len(x), -1), 0, float(self.values["T_w"]))

    def evaluation_defaults(self):
        return dict(duration=self.values["T_w"], dt=self.values["T_w"] / DEFAULT_STEPS, encoder=self.default_encoder)

    def timing(self, duration, dt, steps, where):
        T_w = self.values["T_w"]
        if duration is not None:
            duration = check_quantity(duration, second.dim, "duration", where, positive=True)
            if not np.isclose(float(duration), float(T_w), rtol=1e-9, atol=0):
                raise ParameterError(f"{where}: under coding 'ttfs' the duration is the window T_w ({T_w}), got "
                                     f"{duration}; set T_w when converting, and steps (per window) here")
        if steps is not None and dt is not None:
            raise ParameterError(f"{where}: give steps (per window) or dt, not both")
        if steps is not None:
            if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 1:
                raise ParameterError(f"{where}: steps must be a positive integer, got {steps!r}")
            return T_w, T_w / int(steps)
        if dt is None:
            return T_w, T_w / DEFAULT_STEPS
        dt = check_quantity(dt, second.dim, "dt", where, positive=True)
        n = float(T_w / dt)
        if abs(n - round(n)) > 1e-9 * n:
            raise ParameterError(f"{where}: dt ({dt}) must divide the window T_w ({T_w}) into whole steps")
        return T_w, dt

    def evaluate(self, snn, x, y, *, duration, dt, encoder, device, batch, progress, scatter_points, float32,
                 presentations, seeds, **unused):
        """``unused``: what the rate pipeline plans with and one runtime simulation has no use for
        (threads, memory_budget, time_points: the output is read at every step)."""
        import time

        if device != "runtime":
            raise ParameterError(f"SNN.evaluate: coding 'ttfs' simulates on Brian2's runtime device only (so far); "
                                 f"pass device='runtime', got {device!r}")
        seeds = tuple(seeds) if np.iterable(seeds) else (seeds,)
        for name, value, ok in (("float32", float32, not float32), ("presentations", presentations, presentations is None),
                                ("seeds", seeds, len(seeds) == 1)):
            if not ok:  # refused rather than ignored: the run would not be what was asked for
                raise ParameterError(f"SNN.evaluate: coding 'ttfs' does not support {name}={value!r} (float64 "
                                     f"runtime simulation, samples as copies, deterministic: one seed)")
        net = snn.mapped
        y = check_labels(y, len(x), net.layers[-1].size, "SNN.evaluate")
        steps = int(round(float(duration / dt)))
        t0 = time.perf_counter()
        out = self.simulate(snn, x, steps=steps, batch=batch, progress=progress)
        res = self.result(snn, x, y, out, scatter_points=scatter_points, encoder=encoder, device=device)
        res.wall_s = res.run_s = res.sim_s = time.perf_counter() - t0
        return res

    def simulate(self, snn, x, *, steps: int = DEFAULT_STEPS, batch=None, progress: bool = False):
        """`bioconv.ttfs.simulate` of ``snn`` on ``x`` with this scheme's parameters (dynamic threshold,
        half step) and the output membranes recorded at every step: what `result` scores."""
        x = self.check_inputs(x, snn.graph.input_shape, "TTFSCoding.simulate")
        return ttfs.simulate(snn.mapped, x, steps=steps, batch=32 if batch is None else batch, device="runtime",
                             dynamic_threshold=self.values["dynamic_threshold"], half_step=self.values["half_step"],
                             record_potential=True, progress=bool(progress))

    def result(self, snn, x, y, out, *, scatter_points: int = 2000, encoder: str = "latency", device: str = "runtime"):
        """The `EvaluationResult` of a simulation ``out`` (`simulate`) of inputs ``x`` with labels
        ``y``: `SNN.evaluate`'s result without the wall times. For callers that also want the spike
        times themselves (``out.times``, e.g. for `bioconv.coding.metrics.plot_spike_times`)."""
        from ..converter import EvaluationResult
        if out.potential_trace is None:
            raise BioconvError("TTFSCoding.result: the simulation did not record the output membranes; "
                               "run it with record_potential=True (TTFSCoding.simulate does)")
        net = snn.mapped
        x = np.asarray(x, dtype=np.float64)
        y = check_labels(y, len(x), net.layers[-1].size, "TTFSCoding.result")
        targets = self.targets(snn, x)
        ann_pred = targets[net.layers[-1].name].argmax(1)
        dt = out.dt
        res = EvaluationResult(**self.metrics(
            x=x, y=y, ann_pred=ann_pred, targets=targets, counts={0: {k: [v] for k, v in out.spikes.items()}},
            scores={0: [out.potential_trace]}, seeds=(0,), times=out.trace_times, duration=float(net.T_w),
            dt=dt, scatter_points=scatter_points, mapped=net, decoded=out.activations))
        res.settings = dict(coding=self.name, coding_params=self.params(), encoder=encoder, device=device,
                            steps_per_window=out.steps, n_windows=net.n_windows,
                            readout_time_s=float(out.trace_times[-1]), synops_per_sample=res.synaptic_events / len(x),
                            neuron_updates_per_sample=metrics.neuron_updates(net.n_neurons, net.n_windows * out.steps))
        return res

    def metrics(self, *, x, y, ann_pred, targets, counts, scores, seeds, times, duration, dt, scatter_points,
                mapped=None, decoded=None):
        """The `EvaluationResult` fields, from `bioconv.coding.metrics`: ``scores`` are the output
        membranes (b, K, n_out) at ``times`` (model time, every step, the last at t = L T_w), so
        ``accuracy_vs_time`` and ``decision_time`` follow the decision through the run; ``counts``
        the spikes per neuron of every layer; ``decoded`` the activations decoded from the spike
        times (hidden layers and max-pool gates), correlated with ``targets``; ``mapped`` the
        `TTFSNetwork` (out-degrees for SynOPs, neurons for NeuronOPs)."""
        s0 = seeds[0]
        scores = np.concatenate(scores[s0])
        pred_t = metrics.decisions(scores)
        pred = pred_t[:, -1]
        spikes = {name: np.concatenate(c) for name, c in counts[s0].items()}
        hidden = [p.name for p in mapped.layers[1:-1]]
        corr = metrics.layer_correlation({k: decoded[k] for k in hidden}, {k: targets[k] for k in hidden})
        scatter, rng = {}, np.random.default_rng(0)
        for name in hidden:
            a, t = decoded[name].ravel(), targets[name].ravel()
            pick = rng.choice(len(a), size=min(scatter_points, len(a)), replace=False)
            scatter[name] = (t[pick], a[pick])
        ops = energy(mapped, spikes, int(round(duration / dt)))
        events, energy_ = ops["synops"], float(ops["energy_proxy"].mean())
        return dict(
            accuracy=float(np.mean(pred == y)), ann_accuracy=float(np.mean(ann_pred == y)),
            agreement=float(np.mean(pred == ann_pred)), layer_correlation=corr, scatter=scatter,
            times=np.asarray(times), accuracy_vs_time=(pred_t == y[:, None]).mean(0),
            agreement_vs_time=(pred_t == ann_pred[:, None]).mean(0), synaptic_events=int(round(events.sum())),
            undecided_fraction=float(np.mean(pred == metrics.UNDECIDED)), n_samples=len(x), duration=duration, dt=dt,
            predictions=pred_t, ann_predictions=ann_pred, decision_time=metrics.decision_time(scores, times),
            spikes_per_neuron=metrics.spikes_per_neuron({k: v for k, v in spikes.items() if k != mapped.layers[0].name}),
            energy_proxy=energy_)

    def settings(self, mapped):
        return dict(n_windows=mapped.n_windows)

    def example(self):
        from .. import graph as G
        rng = np.random.default_rng(0)
        w1 = ttfs.project_weight_sums(rng.normal(0, 0.5, (5, 6)))
        graph = G.sequential((6,), [("linear", {"weight": w1}), "relu1",
                                    ("linear", {"weight": rng.normal(0, 0.6, (3, 5)), "bias": rng.normal(0, 0.1, 3)})])
        return graph, rng.random((16, 6))
