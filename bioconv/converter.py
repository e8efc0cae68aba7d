"""`convert`: a trained torch network (or a LayerGraph) to a Brian2 SNN; `SNN.evaluate`: how far it departs from the ANN."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from brian2 import Hz, ms, pF, mV, second
from tqdm.auto import tqdm

from . import graph as G
from .errors import BioconvError, ParameterError
from .mapping import MappedNetwork, check_parameters, map_network
from .normalize import Scales, activations, compute_scales, saturation
from .optional import require_torch
from .simulate.devices import check_device, default_threads
from .simulate.network import ENCODERS
from .simulate.runner import (BatchOutput, CompiledNetwork, aligned_presentations, batch_for_budget,
                              default_memory_budget, network_size, run_steps)
from .units import check_duration, check_quantity


def load_weights(model, path):
    """Load a state dict or a checkpoint ({'state_dict': ...}) from ``path`` into ``model``, safely
    (``torch.load(weights_only=True)``: no code from the file is run). Needs torch."""
    torch = require_torch("bioconv.load_weights")

    path = Path(path)
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
    except FileNotFoundError:
        raise BioconvError(f"model file {str(path)!r} does not exist") from None
    except Exception as err:  # pickle errors, zip errors: the file is not a plain weights file
        raise BioconvError(f"model file {str(path)!r} cannot be loaded as weights only "
                           f"(torch.load(weights_only=True)): {type(err).__name__}: {err}") from None
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise BioconvError(f"model file {str(path)!r} holds a {type(state).__name__}, not a state dict")
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise BioconvError(f"model file {str(path)!r} does not fit {type(model).__name__}: {err}") from None
    return model.eval()


def _check_inputs(x, shape, where) -> np.ndarray:
    """Inputs as float64 of the graph's input shape; rate coding has no negative rates, so refuse them."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim < 2 or len(x) == 0:
        raise BioconvError(f"{where}: inputs must be a non-empty batch (N, ...), got shape {x.shape}")
    if shape and tuple(x.shape[1:]) != tuple(shape):
        raise BioconvError(f"{where}: inputs have shape {x.shape[1:]} per sample, the network expects {tuple(shape)}")
    if not np.all(np.isfinite(x)):
        raise BioconvError(f"{where}: inputs hold NaN or infinite values")
    if np.any(x < 0):
        raise BioconvError(f"{where}: inputs hold negative values (min {x.min():.3g}); rate-coded inputs must be "
                           f">= 0: rescale them (e.g. to [0, 1]) and train the ANN on that range")
    return x


def convert(model, calibration, *, input_shape=None, normalization="p99.9", Cm=100 * pF, v_th=20 * mV,
            tau_ref=0 * ms, rate_max=200 * Hz, synapse="delta", tau_s=5 * ms, bias="current", reset="linear",
            leak_rule="mean_potential", readout="count") -> "SNN":
    """Convert a ReLU network into a spiking network of LIF membranes.

    ``model``: a torch module (imported by `bioconv.graph.from_torch`, which needs torch) or a
    `bioconv.graph.LayerGraph` (e.g. built from numpy arrays by `bioconv.graph.sequential`, or read by
    `bioconv.graph.load`; no torch needed). The graph is not changed, so it can be converted again.
    ``calibration``: inputs (N, *input_shape) for data-based normalization. ``normalization``: 'max',
    'pXX.X' (default p99.9), a number, or a dict of per-population scales. The physical parameters
    and strategies are described in `bioconv.mapping`.
    """
    check_parameters(Cm=Cm, v_th=v_th, tau_ref=tau_ref, rate_max=rate_max, synapse=synapse, tau_s=tau_s, bias=bias,
                     reset=reset, leak_rule=leak_rule, readout=readout)  # before any work on the data
    if isinstance(model, G.LayerGraph):
        if input_shape is not None and tuple(input_shape) != model.input_shape:
            raise BioconvError(f"convert: input_shape {tuple(input_shape)} is not the graph's input shape "
                               f"{model.input_shape}")
        input_shape = model.input_shape
    calibration = _check_inputs(calibration, input_shape, "convert (calibration data)")
    graph = model if isinstance(model, G.LayerGraph) else _import_torch(model, input_shape, calibration)
    pops = G.populations(graph)
    acts = activations(graph, pops, calibration)
    scales = compute_scales(pops, acts, normalization)
    mapped = map_network(pops, scales, Cm=Cm, v_th=v_th, tau_ref=tau_ref, rate_max=rate_max, synapse=synapse,
                         tau_s=tau_s, bias=bias, reset=reset, leak_rule=leak_rule, readout=readout)
    snn = SNN(graph, pops, mapped, acts)
    # what `snn.save` records of how the network was made
    snn.conversion = dict(normalization=normalization, Cm=Cm, v_th=v_th, tau_ref=tau_ref, rate_max=rate_max,
                          synapse=synapse, tau_s=tau_s, bias=bias, reset=reset, leak_rule=leak_rule, readout=readout,
                          n_calibration=len(calibration))
    return snn


def _import_torch(model, input_shape, calibration) -> G.LayerGraph:
    """`G.from_torch`, with the input shape taken from the calibration data unless given: a shape that
    does not fit the network is then the data's fault, and the error says so."""
    shape = tuple(input_shape) if input_shape is not None else tuple(calibration.shape[1:])
    try:
        return G.from_torch(model, shape)
    except G.ShapeError as err:
        culprit = ("input_shape" if input_shape is not None else "the calibration data's shape per sample")
        raise BioconvError(f"convert: {culprit} {shape} does not fit {type(model).__name__}: {err}") from None


@dataclass
class EvaluationResult:
    """What `SNN.evaluate` measured. Rates in Hz, times in seconds."""

    accuracy: float
    ann_accuracy: float
    agreement: float
    layer_correlation: dict[str, float]
    scatter: dict[str, tuple[np.ndarray, np.ndarray]]  # population -> (ANN target rate, SNN rate), subsampled
    times: np.ndarray
    accuracy_vs_time: np.ndarray
    agreement_vs_time: np.ndarray
    synaptic_events: int
    undecided_fraction: float  # no unique winner at T (no output, or a tie)
    n_samples: int
    duration: float
    dt: float
    settings: dict = field(default_factory=dict)
    error_terms: dict | None = None  # population -> {'bias2', 'variance'} (several seeds)
    predictions: np.ndarray | None = None  # (N, len(times)) SNN decision per sample and time, -1 = undecided
    ann_predictions: np.ndarray | None = None
    wall_s: float = 0.0
    build_s: float = 0.0  # of wall_s: building (and compiling) the network
    run_s: float = 0.0    # of wall_s: running it, batch after batch
    sim_s: float = 0.0    # of run_s: the simulation loops themselves (the rest: process start, loading, output)

    def summary(self) -> dict:
        return dict(accuracy=self.accuracy, ann_accuracy=self.ann_accuracy, agreement=self.agreement,
                    n_samples=self.n_samples, duration_s=self.duration, dt_s=self.dt,
                    synaptic_events=self.synaptic_events, undecided_fraction=self.undecided_fraction,
                    min_layer_correlation=float(np.min(list(self.layer_correlation.values()))), wall_s=self.wall_s,
                    build_s=self.build_s, run_s=self.run_s, sim_s=self.sim_s, **self.settings)


# When samples also run one after another within a run, the default number of disjoint copies keeps
# a run's neurons near this many: their states then stay in the CPU caches, and a step costs least
# per sample (measured on the MNIST ConvNet, 14,654 neurons per copy: 2 copies beat 4, 8 and 32;
# bench/README.md).
SEQUENTIAL_NEURONS = 32_000
# Samples per run of the compiled binary when samples run in sequence (see `SNN.evaluate`).
SAMPLES_PER_RUN = 256


class SNN:
    """A converted network: the imported graph, its populations and their mapped physical parameters."""

    def __init__(self, graph: G.LayerGraph, pops: list[G.Population], mapped: MappedNetwork, calibration_acts):
        self.graph, self.populations, self.mapped = graph, pops, mapped
        self._calibration_acts = calibration_acts
        self.conversion: dict = {}  # the settings `convert` was called with (saved with the network)

    @property
    def scales(self) -> Scales:
        return self.mapped.scales

    def save(self, path) -> Path:
        """Write the network to ``path`` (bioconv's open, versioned format: `bioconv.io.save`);
        `bioconv.load` reads it back, without torch."""
        from .io import save
        return save(self, path)

    def table(self) -> str:
        """Every layer's mapped parameters with units."""
        return self.mapped.table()

    def saturation(self, dt=0.1 * ms) -> dict[str, float]:
        """Fraction of units per population whose calibration target rate comes within 10 % of the
        lower of 1/tau_ref and 1/dt."""
        tau_ref = float(self.mapped.populations[-1].params.get("tau_ref", 0 * ms))
        cap = min(1 / tau_ref if tau_ref > 0 else np.inf, 1 / float(dt))
        return saturation(self.populations, self._calibration_acts, self.scales, float(self.mapped.rate_max), cap)

    def target_rates(self, x) -> dict[str, np.ndarray]:
        """The rate (Hz) each unit should fire at for inputs ``x``: normalized ANN activation x rate_max."""
        x = _check_inputs(x, self.graph.input_shape, "SNN")
        acts = activations(self.graph, self.populations, x)
        r = float(self.mapped.rate_max)
        return {name: np.maximum(a, 0) / self.scales.values[name] * r for name, a in acts.items()}

    def evaluate(self, x, y, *, duration=200 * ms, dt=0.1 * ms, encoder="regular", device="cpp", batch=None,
                 memory_budget=None, presentations=None, seeds=(0,), time_points=20, threads=None, float32=False,
                 progress=True, scatter_points=2000) -> EvaluationResult:
        """Simulate the SNN on inputs ``x`` (N, *input_shape) with labels ``y`` (N,).

        The network is built (and on ``device="cpp"``/``"cuda"`` compiled) once for ``batch`` samples
        as disjoint copies, then run for every batch with new inputs. ``threads``: cores to use on
        ``cpp`` (None = all, or $BIOCONV_THREADS): that many runs of the binary go at once as separate
        processes, and OpenMP threads take the cores left when there are fewer runs than cores.
        ``batch=None`` picks the largest batch whose estimated memory, once per parallel run, fits
        ``memory_budget`` bytes (default: a quarter of the RAM, at most 8 GiB); when samples run in
        sequence, at most about 32,000 neurons per run (`SEQUENTIAL_NEURONS`). ``presentations``:
        samples shown one after another to each copy within one run of the compiled binary, states
        reset in between (standalone devices; None = about `SAMPLES_PER_RUN` samples per run, each
        run's start-up then shared by many, within the memory budget for records and the
        clock-alignment limit). On ``cpp`` the compiled project comes from the project cache when a
        call of the same shape compiled it before (`bioconv.simulate.cache`; copies and presentations
        do not depend on the number of samples): ``settings['cache_hit']``. ``float32``:
        single-precision state variables. With several ``seeds`` (Poisson encoding) each sample runs
        once per seed, and the error of each layer's rates is split into bias and variance (FORMULAS §6).
        """
        duration = check_quantity(duration, second.dim, "duration", "SNN.evaluate", positive=True)
        dt = check_quantity(dt, second.dim, "dt", "SNN.evaluate", positive=True)
        check_duration(duration, dt, "SNN.evaluate")
        if encoder not in ENCODERS:
            raise ParameterError(f"SNN.evaluate: encoder must be one of {ENCODERS}, got {encoder!r}")
        check_device(device, "SNN.evaluate")
        x = _check_inputs(x, self.graph.input_shape, "SNN.evaluate")
        y = np.asarray(y)
        n_out = self.mapped.populations[-1].size
        if y.ndim != 1 or len(x) != len(y) or not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= n_out:
            raise BioconvError(f"SNN.evaluate: labels must be integers in [0, {n_out}) of shape ({len(x)},), got "
                               f"dtype {y.dtype}, shape {y.shape}")
        sequential = device != "runtime"
        # cpp: the runs go in parallel processes, one per core (Brian2 propagates spikes on one thread
        # whatever the OpenMP setting); each process holds its own network, so each gets a share of
        # the memory budget. OpenMP threads only use the cores that runs leave idle.
        cores = default_threads() if threads is None else max(1, int(threads))
        workers = cores if device == "cpp" else 1
        auto_batch = batch is None
        if batch is None:
            # In sequence, copies come from the network and the memory budget alone (not from the number
            # of samples), so that calls with other data reuse the same compiled project.
            batch = max(1, batch_for_budget(self.mapped, 2 ** 62 if sequential else len(x), memory_budget) // workers)
            if sequential and (presentations is None or presentations > 1):
                batch = min(batch, max(1, SEQUENTIAL_NEURONS // network_size(self.mapped)[0]))
        if int(batch) != batch or batch < 1 or int(time_points) != time_points or time_points < 1:
            raise ParameterError(f"SNN.evaluate: batch and time_points must be positive integers, got {batch!r}, "
                                 f"{time_points!r}")
        seeds = tuple(seeds) if np.iterable(seeds) else (seeds,)
        if not seeds:
            raise ParameterError("SNN.evaluate: seeds must name at least one seed")
        if sequential and auto_batch:
            # fewer samples than full runs on every core: the next power of two that covers them (a few
            # shapes per network, each reused by later calls; at most 2x padding)
            batch = min(int(batch), 1 << (-(-len(x) // workers) - 1).bit_length())
        # an automatic batch keeps its planned size (the project's shape); one asked for is cut to the data
        batch, time_points = (int(batch) if sequential and auto_batch else min(int(batch), len(x))), int(time_points)
        if presentations is not None and (int(presentations) != presentations or presentations < 1):
            raise ParameterError(f"SNN.evaluate: presentations must be a positive integer, got {presentations!r}")
        if presentations is not None and presentations > 1 and not sequential:
            raise ParameterError(f"SNN.evaluate: presentations > 1 needs device 'cpp' or 'cuda', got {device!r}")
        t0 = time.perf_counter()
        targets = self.target_rates(x)
        names = [p.name for p in self.mapped.populations]
        n_pres = -(-len(x) // batch)  # presentations needed in all
        auto_presentations = presentations is None
        sample_every = duration / time_points if self.mapped.readout == "potential" else None
        if auto_presentations and sequential:
            # A run of the binary costs a start-up (loading the network): about SAMPLES_PER_RUN samples
            # per run share it (ConvNet, 1000 digits on 2 cores: 4 runs of 250 samples beat 2 of 500;
            # bench/README.md). B and K depend on the network, duration and memory, not on the data,
            # so calls with other samples reuse the compiled project; only a call with fewer samples
            # than one round of full runs takes the next powers of two that cover them.
            presentations = max(1, SAMPLES_PER_RUN // batch)
            fewer = -(-len(x) // (batch * workers))  # presentations that hold the data
            if fewer < presentations:
                presentations = 1 << (fewer - 1).bit_length()
            # Samples in sequence record the output's spikes (about 64 bytes each, binary and Python
            # side; at most rate_max x T per unit), every other neuron's count (16 bytes) and, for
            # the potential readout, the output's membrane samples (16 bytes): keep the records of
            # the runs in flight within half the memory budget.
            per_sample = n_out * float(self.mapped.rate_max) * float(duration) * 64 + network_size(self.mapped)[0] * 16
            if self.mapped.readout == "potential":
                per_sample += n_out * (time_points + 1) * 16
            budget = (default_memory_budget() if memory_budget is None else int(memory_budget)) / 2 / workers
            presentations = max(1, min(presentations, int(budget // max(per_sample * batch, 1.0))))
            presentations = min(presentations, aligned_presentations(duration, dt, presentations, sample_every))
        elif auto_presentations:
            presentations = 1
        else:  # as asked, within what the data needs, the samples spread evenly over the runs
            presentations = min(int(presentations), n_pres)
            if presentations > 1:
                runs = -(-len(x) // (batch * presentations))
                batch = -(-len(x) // (runs * presentations))
        presentations = int(presentations)
        workers = min(workers, -(-len(x) // (batch * presentations)))
        omp_threads = max(1, cores // workers) if device == "cpp" else threads
        logits = self.graph.forward(x)[self.graph.output].reshape(len(x), -1)
        ann_pred = logits.argmax(1)
        T, step = float(duration), float(dt)
        times = np.linspace(T / time_points, T, time_points)
        counts = {s: {n: [] for n in names} for s in seeds}
        readout_scores = {s: [] for s in seeds}  # (B, n_times, n_out)
        per_run = batch * presentations
        starts = range(0, len(x), per_run)
        bar = tqdm(total=len(seeds) * len(x), desc=f"evaluate ({device}, {batch} copies x {presentations}"
                   + (f", {workers} runs at once" if workers > 1 else "") + ")", unit="sample", disable=not progress)
        build_s = run_s = sim_s = 0.0
        cache_hits, optimizations = [], {}
        for s in seeds:
            tb = time.perf_counter()
            with CompiledNetwork(self.mapped, batch, duration=duration, dt=dt, encoder=encoder, device=device,
                                 seed=s, threads=omp_threads, float32=float32,
                                 record_output_every=duration / time_points, presentations=presentations) as compiled:
                build_s += time.perf_counter() - tb
                cache_hits.append(compiled.cache_hit)
                optimizations = compiled.project_edits
                batches = (targets[names[0]][k:k + per_run] for k in starts)
                for k, out in zip(starts, compiled.run_many(batches, workers=workers)):
                    for name, c in out.counts.items():
                        counts[s][name].append(c)
                    readout_scores[s].append(self._scores(out, times, step))
                    bar.update(min(per_run, len(x) - k))
                run_s += compiled.run_seconds
                sim_s += compiled.sim_seconds
        bar.close()
        result = self._metrics(x, y, ann_pred, targets, counts, readout_scores, seeds, times, T, step,
                               scatter_points)
        # events of one presentation of the data set: each unit's spikes times its out-degree
        result.synaptic_events = sum(int(np.dot(np.concatenate(c).sum(0), self._out_degree(name)))
                                     for name, c in counts[seeds[0]].items() if c)
        result.settings = dict(encoder=encoder, device=device, batch=batch, presentations=presentations,
                               parallel_runs=workers, openmp_threads=omp_threads if device == "cpp" else None,
                               seeds=list(seeds), float32=bool(float32), cache_hit=cache_hits,
                               optimizations=optimizations,
                               rate_max_hz=float(self.mapped.rate_max), bias=self.mapped.bias,
                               reset=self.mapped.reset, synapse=self.mapped.synapse, readout=self.mapped.readout,
                               normalization=self.scales.method)
        result.wall_s = time.perf_counter() - t0
        result.build_s, result.run_s, result.sim_s = build_s, run_s, sim_s
        return result

    def _out_degree(self, name: str) -> np.ndarray:
        n = next(p.size for p in self.mapped.populations if p.name == name)
        deg = np.zeros(n)
        for p in self.mapped.populations:
            for q in p.projections:
                if q.source == name:
                    deg += np.bincount(q.i, minlength=n)
            if p.kind == "maxpool" and p.projections[0].source == name:
                deg += (p.pool_groups >= 0)
        return deg

    def _scores(self, out: BatchOutput, times, dt) -> np.ndarray:
        """Readout score (b, n_times, n_out) at each of ``times`` (s), what a run of that duration
        at step ``dt`` (s) would read: higher wins."""
        n_out = self.mapped.populations[-1].size
        b = len(next(iter(out.counts.values()))) if out.counts else len(out.final_v)
        if self.mapped.readout == "potential":
            # The monitor samples V at 0, T/n, ..., (n-1) T/n; the value at T is read from the group.
            v = np.concatenate([out.out_v[:, :, 1:len(times)], out.final_v[:, :, None]], axis=2)
            return np.transpose(v, (0, 2, 1))
        sample, unit, t = out.out_sample, out.out_unit, out.out_t
        # A spike is stamped with the start of the step it happened in: a run of duration tk holds
        # the spikes of its run_steps(tk) steps, those stamped before tk.
        spike_step = np.rint(t / dt)
        ends = [run_steps(tk, dt) for tk in times]
        scores = np.zeros((b, len(times), n_out))
        if self.mapped.readout == "count":
            for k, end in enumerate(ends):
                sel = spike_step < end
                np.add.at(scores[:, k], (sample[sel], unit[sel]), 1)
        else:  # first_spike: earlier is better; no spike scores -inf
            first = np.full((b, n_out), np.inf)
            np.minimum.at(first, (sample, unit), t)
            first_step = np.rint(first / dt)
            for k, end in enumerate(ends):
                scores[:, k] = np.where(first_step < end, -first, -np.inf)
        return scores

    def _metrics(self, x, y, ann_pred, targets, counts, readout_scores, seeds, times, T, step, scatter_points):
        s0 = seeds[0]
        scores = np.concatenate(readout_scores[s0])
        # A decision needs a unique winner: ties (including "no output spike yet") count as undecided
        # (-1), never as class 0, so early-time accuracy is not inflated.
        top = scores.max(axis=2, keepdims=True)
        unique = (scores == top).sum(axis=2) == 1
        pred_t = np.where(unique, scores.argmax(2), -1)
        pred = pred_t[:, -1]
        rates = {s: {n: np.concatenate(c) / T for n, c in counts[s].items() if c} for s in seeds}
        corr, scatter = {}, {}
        rng = np.random.default_rng(0)
        for name, r in rates[s0].items():
            tgt = targets[name].reshape(r.shape) if name in targets else None
            if tgt is None:
                continue
            a, b = tgt.ravel(), r.ravel()
            corr[name] = float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else float("nan")
            pick = rng.choice(len(a), size=min(scatter_points, len(a)), replace=False)
            scatter[name] = (a[pick], b[pick])
        terms = None
        if len(seeds) > 1:
            terms = {}
            for name in rates[s0]:
                stack = np.stack([rates[s][name] for s in seeds])  # (seeds, N, units)
                tgt = targets[name].reshape(stack.shape[1:])
                var = stack.var(0, ddof=1)
                # (mean over S seeds - target)^2 carries var/S of noise: remove it for an unbiased bias^2.
                terms[name] = dict(bias2=float(np.mean((stack.mean(0) - tgt) ** 2 - var / len(seeds))),
                                   variance=float(np.mean(var)))
        return EvaluationResult(
            accuracy=float(np.mean(pred == y)), ann_accuracy=float(np.mean(ann_pred == y)),
            agreement=float(np.mean(pred == ann_pred)), layer_correlation=corr, scatter=scatter, times=times,
            accuracy_vs_time=(pred_t == y[:, None]).mean(0), agreement_vs_time=(pred_t == ann_pred[:, None]).mean(0),
            synaptic_events=0, undecided_fraction=float(np.mean(pred == -1)), n_samples=len(x), duration=T, dt=step,
            error_terms=terms, predictions=pred_t, ann_predictions=ann_pred)
